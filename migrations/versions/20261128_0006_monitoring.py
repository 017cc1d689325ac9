"""Monitoring: projects, payments, claims with lines and evidence, KPI and milestone reports, reminders,
and the application facts behind the statistics.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 06:56:30.678535
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "application_facts",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=True),
        sa.Column("ateco_section", sa.String(length=1), nullable=True),
        sa.Column("size_class", sa.String(length=8), nullable=True),
        sa.Column("markets", postgresql.ARRAY(sa.String(length=2)), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_aid", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("funded", sa.Boolean(), nullable=False),
        sa.Column("committed", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("paid", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("foreign_share_baseline", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("foreign_share_latest", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_application_facts")),
        schema="monitoring",
    )
    op.create_index(
        op.f("ix_application_facts_call_id_province"),
        "application_facts",
        ["call_id", "province"],
        unique=False,
        schema="monitoring",
    )
    op.create_index(
        op.f("ix_application_facts_call_id_submitted_at"),
        "application_facts",
        ["call_id", "submitted_at"],
        unique=False,
        schema="monitoring",
    )
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_inbox")),
        schema="monitoring",
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("decision_id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("cup", sa.String(length=15), nullable=True),
        sa.Column("cor", sa.String(length=32), nullable=True),
        sa.Column("decree_number", sa.String(length=40), nullable=False),
        sa.Column("decree_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("grant", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("loan", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("eligible_total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("approved_budget", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("timeline", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("kpis", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("extension_granted", sa.Boolean(), nullable=False),
        sa.Column("lombardy_site_verified", sa.Boolean(), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("final_grant", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("final_loan", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("application_id", name=op.f("uq_projects_application_id")),
        sa.UniqueConstraint("cup", name=op.f("uq_projects_cup")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_projects_decision_id")),
        schema="monitoring",
    )
    op.create_index(
        op.f("ix_projects_call_id_status"), "projects", ["call_id", "status"], unique=False, schema="monitoring"
    )
    op.create_index(op.f("ix_projects_company_id"), "projects", ["company_id"], unique=False, schema="monitoring")
    op.create_table(
        "claims",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("recognised_total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("review", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["monitoring.projects.id"], name=op.f("fk_claims_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        schema="monitoring",
    )
    op.create_index(op.f("ix_claims_project_id"), "claims", ["project_id"], unique=False, schema="monitoring")
    op.create_table(
        "kpi_reports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("kpi", sa.Text(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["monitoring.projects.id"], name=op.f("fk_kpi_reports_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_reports")),
        sa.UniqueConstraint("project_id", "kpi", "period", name=op.f("uq_kpi_reports_project_id_kpi_period")),
        schema="monitoring",
    )
    op.create_table(
        "milestone_reports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("milestone", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["monitoring.projects.id"], name=op.f("fk_milestone_reports_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_milestone_reports")),
        sa.UniqueConstraint("project_id", "milestone", name=op.f("uq_milestone_reports_project_id_milestone")),
        schema="monitoring",
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["monitoring.projects.id"], name=op.f("fk_payments_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        schema="monitoring",
    )
    op.create_index(
        "uq_payments_one_live_per_kind",
        "payments",
        ["project_id", "kind"],
        unique=True,
        schema="monitoring",
        postgresql_where=sa.text("status IN ('ordered', 'paid')"),
    )
    op.create_table(
        "reminders",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["monitoring.projects.id"], name=op.f("fk_reminders_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
        sa.UniqueConstraint("project_id", "kind", "due_date", name=op.f("uq_reminders_project_id_kind_due_date")),
        schema="monitoring",
    )
    op.create_table(
        "claim_lines",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("claim_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("supplier_vat", sa.String(length=16), nullable=False),
        sa.Column("supplier_name", sa.Text(), nullable=True),
        sa.Column("document_number", sa.String(length=40), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("taxable_amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("market", sa.String(length=2), nullable=True),
        sa.Column("payment_date", sa.Date(), nullable=True),
        sa.Column("payment_method", sa.String(length=24), nullable=True),
        sa.Column("cup_quoted", sa.Boolean(), nullable=False),
        sa.Column("checks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("recognised_amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("officer_note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["monitoring.claims.id"], name=op.f("fk_claim_lines_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["monitoring.projects.id"], name=op.f("fk_claim_lines_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_lines")),
        schema="monitoring",
    )
    op.create_index(op.f("ix_claim_lines_claim_id"), "claim_lines", ["claim_id"], unique=False, schema="monitoring")
    op.create_index(
        op.f("ix_claim_lines_project_id_category_market"),
        "claim_lines",
        ["project_id", "category", "market"],
        unique=False,
        schema="monitoring",
    )
    op.create_index(
        "uq_claim_lines_invoice_once",
        "claim_lines",
        ["supplier_vat", "document_number", "issue_date"],
        unique=True,
        schema="monitoring",
        postgresql_where=sa.text("outcome <> 'rejected'"),
    )
    op.create_table(
        "evidence_files",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("claim_line_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("invoice_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_line_id"], ["monitoring.claim_lines.id"], name=op.f("fk_evidence_files_claim_line_id_claim_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_files")),
        schema="monitoring",
    )
    op.create_index(
        op.f("ix_evidence_files_claim_line_id"), "evidence_files", ["claim_line_id"], unique=False, schema="monitoring"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_evidence_files_claim_line_id"), table_name="evidence_files", schema="monitoring")
    op.drop_table("evidence_files", schema="monitoring")
    op.drop_index(
        "uq_claim_lines_invoice_once",
        table_name="claim_lines",
        schema="monitoring",
        postgresql_where=sa.text("outcome <> 'rejected'"),
    )
    op.drop_index(op.f("ix_claim_lines_project_id_category_market"), table_name="claim_lines", schema="monitoring")
    op.drop_index(op.f("ix_claim_lines_claim_id"), table_name="claim_lines", schema="monitoring")
    op.drop_table("claim_lines", schema="monitoring")
    op.drop_table("reminders", schema="monitoring")
    op.drop_index(
        "uq_payments_one_live_per_kind",
        table_name="payments",
        schema="monitoring",
        postgresql_where=sa.text("status IN ('ordered', 'paid')"),
    )
    op.drop_table("payments", schema="monitoring")
    op.drop_table("milestone_reports", schema="monitoring")
    op.drop_table("kpi_reports", schema="monitoring")
    op.drop_index(op.f("ix_claims_project_id"), table_name="claims", schema="monitoring")
    op.drop_table("claims", schema="monitoring")
    op.drop_index(op.f("ix_projects_company_id"), table_name="projects", schema="monitoring")
    op.drop_index(op.f("ix_projects_call_id_status"), table_name="projects", schema="monitoring")
    op.drop_table("projects", schema="monitoring")
    op.drop_table("inbox", schema="monitoring")
    op.drop_index(
        op.f("ix_application_facts_call_id_submitted_at"), table_name="application_facts", schema="monitoring"
    )
    op.drop_index(op.f("ix_application_facts_call_id_province"), table_name="application_facts", schema="monitoring")
    op.drop_table("application_facts", schema="monitoring")
