"""evaluation: admissibility, reviews, de minimis register, budget ledger, decrees

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:34:06.122289
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("committed", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("freed", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("committed >= 0 AND committed <= total", name=op.f("ck_budgets_within_total")),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_budgets")),
        schema="evaluation",
    )
    op.create_table(
        "conflict_declarations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=True),
        sa.Column("conflict", sa.Boolean(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("declared_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflict_declarations")),
        schema="evaluation",
    )
    op.create_index(
        op.f("ix_conflict_declarations_reviewer_company_id"),
        "conflict_declarations",
        ["reviewer", "company_id"],
        unique=False,
        schema="evaluation",
    )
    op.create_table(
        "de_minimis_aids",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("vat_number", sa.String(length=11), nullable=False),
        sa.Column("granted_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("granting_authority", sa.Text(), nullable=False),
        sa.Column("regulation", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_de_minimis_aids")),
        sa.UniqueConstraint("source", "reference", name=op.f("uq_de_minimis_aids_source_reference")),
        schema="evaluation",
    )
    op.create_index(
        op.f("ix_de_minimis_aids_vat_number_granted_on"),
        "de_minimis_aids",
        ["vat_number", "granted_on"],
        unique=False,
        schema="evaluation",
    )
    op.create_table(
        "decrees",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("decree_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decrees")),
        sa.UniqueConstraint("number", name=op.f("uq_decrees_number")),
        schema="evaluation",
    )
    op.create_table(
        "budget_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["evaluation.budgets.call_id"], name=op.f("fk_budget_entries_call_id_budgets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_entries")),
        schema="evaluation",
    )
    op.create_index(
        op.f("ix_budget_entries_call_id_id"), "budget_entries", ["call_id", "id"], unique=False, schema="evaluation"
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("decree_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("grant", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("loan", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("cup", sa.String(length=15), nullable=True),
        sa.Column("cor", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renounced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["evaluation.applications.application_id"],
            name=op.f("fk_decisions_application_id_applications"),
        ),
        sa.ForeignKeyConstraint(["decree_id"], ["evaluation.decrees.id"], name=op.f("fk_decisions_decree_id_decrees")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("application_id", "decree_id", name=op.f("uq_decisions_application_id_decree_id")),
        sa.UniqueConstraint("cup", name=op.f("uq_decisions_cup")),
        schema="evaluation",
    )
    op.create_table(
        "evaluations",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("admissibility_verdict", sa.String(length=16), nullable=True),
        sa.Column("admissibility_checks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("cuts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("eligible_total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("credit_class", sa.String(length=8), nullable=True),
        sa.Column("score", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("merit_verdict", sa.String(length=16), nullable=True),
        sa.Column("grant", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("loan", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("loan_gge", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("funding", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("de_minimis", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["evaluation.applications.application_id"],
            name=op.f("fk_evaluations_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_evaluations")),
        schema="evaluation",
    )
    op.create_index(op.f("ix_evaluations_call_id"), "evaluations", ["call_id"], unique=False, schema="evaluation")
    op.create_table(
        "fundings",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("granted", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("grant", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("loan", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("protocol_number", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["evaluation.applications.application_id"],
            name=op.f("fk_fundings_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_fundings")),
        schema="evaluation",
    )
    op.create_index(
        op.f("ix_fundings_call_id_status"), "fundings", ["call_id", "status"], unique=False, schema="evaluation"
    )
    op.create_table(
        "review_assignments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("assigned_by", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("no_conflict_declared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scores", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("total", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["evaluation.applications.application_id"],
            name=op.f("fk_review_assignments_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_assignments")),
        sa.UniqueConstraint("application_id", "reviewer", name=op.f("uq_review_assignments_application_id_reviewer")),
        schema="evaluation",
    )


def downgrade() -> None:
    op.drop_table("review_assignments", schema="evaluation")
    op.drop_index(op.f("ix_fundings_call_id_status"), table_name="fundings", schema="evaluation")
    op.drop_table("fundings", schema="evaluation")
    op.drop_index(op.f("ix_evaluations_call_id"), table_name="evaluations", schema="evaluation")
    op.drop_table("evaluations", schema="evaluation")
    op.drop_table("decisions", schema="evaluation")
    op.drop_index(op.f("ix_budget_entries_call_id_id"), table_name="budget_entries", schema="evaluation")
    op.drop_table("budget_entries", schema="evaluation")
    op.drop_table("decrees", schema="evaluation")
    op.drop_index(op.f("ix_de_minimis_aids_vat_number_granted_on"), table_name="de_minimis_aids", schema="evaluation")
    op.drop_table("de_minimis_aids", schema="evaluation")
    op.drop_index(
        op.f("ix_conflict_declarations_reviewer_company_id"), table_name="conflict_declarations", schema="evaluation"
    )
    op.drop_table("conflict_declarations", schema="evaluation")
    op.drop_table("budgets", schema="evaluation")
