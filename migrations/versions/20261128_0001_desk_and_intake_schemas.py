"""desk and intake schemas: one Postgres schema per service, `desk` for cross-cutting tables.

The audit log is append-only: a trigger refuses UPDATE and DELETE on it.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 06:20:18.293813
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY = (
    """CREATE FUNCTION desk.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'desk.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON desk.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION desk.refuse_change()""",
)


def upgrade() -> None:
    for schema in ("desk", "intake", "evaluation", "monitoring"):
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.create_table(
        "api_clients",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("company_id", sa.UUID(), nullable=True),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_api_clients_client_id")),
        schema="desk",
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("principal_kind", sa.String(length=16), nullable=False),
        sa.Column("principal_client_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        schema="desk",
    )
    op.create_index(
        op.f("ix_audit_log_resource_type_resource_id"),
        "audit_log",
        ["resource_type", "resource_id"],
        unique=False,
        schema="desk",
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name=op.f("pk_idempotency_keys")),
        schema="desk",
    )
    op.create_index(
        op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False, schema="desk"
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("event_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("aggregate_type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("company_id", sa.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
        schema="desk",
    )
    op.create_index(
        op.f("ix_outbox_aggregate_type_aggregate_id_id"),
        "outbox",
        ["aggregate_type", "aggregate_id", "id"],
        unique=False,
        schema="desk",
    )
    op.create_index(
        "ix_outbox_undelivered", "outbox", ["id"], unique=False, schema="desk", postgresql_where="published_at IS NULL"
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("procedure", sa.String(length=16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("demo_opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("demo_closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("budget_total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("code", name=op.f("uq_calls_code")),
        schema="intake",
    )
    op.create_table(
        "companies",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("vat_number", sa.String(length=11), nullable=False),
        sa.Column("fiscal_code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("legal_form", sa.String(length=32), nullable=False),
        sa.Column("ateco_code", sa.String(length=8), nullable=False),
        sa.Column("registered_office", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("operating_sites", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("lombardy_site_commitment", sa.Boolean(), nullable=False),
        sa.Column("incorporation_date", sa.Date(), nullable=False),
        sa.Column("approved_financial_statements", sa.Integer(), nullable=False),
        sa.Column("headcount_awu", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("turnover", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("balance_sheet_total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("previous_year_export_sales", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("related_enterprises", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("export_history", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("size_class", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("vat_number", name=op.f("uq_companies_vat_number")),
        schema="intake",
    )
    op.create_table(
        "partners",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("fiscal_code", sa.String(length=16), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint("fiscal_code", name=op.f("uq_partners_fiscal_code")),
        schema="intake",
    )
    op.create_table(
        "trainings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainings")),
        schema="intake",
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("action_plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("network", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("flat_rates", postgresql.ARRAY(sa.String(length=8)), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("call_version", sa.Integer(), nullable=True),
        sa.Column("protocol_number", sa.BigInteger(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("receipt", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("receipt_signature", sa.Text(), nullable=True),
        sa.Column("chain_hash", sa.String(length=64), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["intake.calls.id"], name=op.f("fk_applications_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["intake.companies.id"], name=op.f("fk_applications_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["intake.partners.id"], name=op.f("fk_applications_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("call_id", "protocol_number", name=op.f("uq_applications_call_id_protocol_number")),
        schema="intake",
    )
    op.create_index(op.f("ix_applications_company_id"), "applications", ["company_id"], unique=False, schema="intake")
    op.create_index(op.f("ix_applications_partner_id"), "applications", ["partner_id"], unique=False, schema="intake")
    op.create_index(
        "uq_applications_one_submitted",
        "applications",
        ["call_id", "company_id"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("status = 'submitted'"),
    )
    op.create_table(
        "call_counters",
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("last_protocol", sa.BigInteger(), nullable=False),
        sa.Column("last_chain_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["intake.calls.id"], name=op.f("fk_call_counters_call_id_calls")),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_counters")),
        schema="intake",
    )
    op.create_table(
        "call_versions",
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["intake.calls.id"], name=op.f("fk_call_versions_call_id_calls")),
        sa.PrimaryKeyConstraint("call_id", "version", name=op.f("pk_call_versions")),
        schema="intake",
    )
    op.create_table(
        "delegations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["intake.companies.id"], name=op.f("fk_delegations_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["intake.partners.id"], name=op.f("fk_delegations_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
        schema="intake",
    )
    op.create_index(op.f("ix_delegations_company_id"), "delegations", ["company_id"], unique=False, schema="intake")
    op.create_index(
        "uq_delegations_live",
        "delegations",
        ["partner_id", "company_id"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("status IN ('pending', 'active')"),
    )
    op.create_table(
        "enrolments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("training_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("participant_name", sa.Text(), nullable=False),
        sa.Column("participant_email", sa.Text(), nullable=False),
        sa.Column("participant_role", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["intake.companies.id"], name=op.f("fk_enrolments_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["training_id"], ["intake.trainings.id"], name=op.f("fk_enrolments_training_id_trainings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
        schema="intake",
    )
    op.create_index(op.f("ix_enrolments_company_id"), "enrolments", ["company_id"], unique=False, schema="intake")
    op.create_index(
        "uq_enrolments_live",
        "enrolments",
        ["training_id", "participant_email"],
        unique=True,
        schema="intake",
        postgresql_where=sa.text("status = 'enrolled'"),
    )
    op.create_table(
        "expense_lines",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("target_market", sa.String(length=2), nullable=True),
        sa.Column("supplier", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["intake.applications.id"],
            name=op.f("fk_expense_lines_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expense_lines")),
        sa.UniqueConstraint("application_id", "position", name=op.f("uq_expense_lines_application_id_position")),
        schema="intake",
    )
    for statement in APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_append_only ON desk.audit_log")
    op.execute("DROP FUNCTION desk.refuse_change()")
    op.drop_table("expense_lines", schema="intake")
    op.drop_index(
        "uq_enrolments_live", table_name="enrolments", schema="intake", postgresql_where=sa.text("status = 'enrolled'")
    )
    op.drop_index(op.f("ix_enrolments_company_id"), table_name="enrolments", schema="intake")
    op.drop_table("enrolments", schema="intake")
    op.drop_index(
        "uq_delegations_live",
        table_name="delegations",
        schema="intake",
        postgresql_where=sa.text("status IN ('pending', 'active')"),
    )
    op.drop_index(op.f("ix_delegations_company_id"), table_name="delegations", schema="intake")
    op.drop_table("delegations", schema="intake")
    op.drop_table("call_versions", schema="intake")
    op.drop_table("call_counters", schema="intake")
    op.drop_index(
        "uq_applications_one_submitted",
        table_name="applications",
        schema="intake",
        postgresql_where=sa.text("status = 'submitted'"),
    )
    op.drop_index(op.f("ix_applications_partner_id"), table_name="applications", schema="intake")
    op.drop_index(op.f("ix_applications_company_id"), table_name="applications", schema="intake")
    op.drop_table("applications", schema="intake")
    op.drop_table("trainings", schema="intake")
    op.drop_table("partners", schema="intake")
    op.drop_table("companies", schema="intake")
    op.drop_table("calls", schema="intake")
    op.drop_index("ix_outbox_undelivered", table_name="outbox", schema="desk", postgresql_where="published_at IS NULL")
    op.drop_index(op.f("ix_outbox_aggregate_type_aggregate_id_id"), table_name="outbox", schema="desk")
    op.drop_table("outbox", schema="desk")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys", schema="desk")
    op.drop_table("idempotency_keys", schema="desk")
    op.drop_index(op.f("ix_audit_log_resource_type_resource_id"), table_name="audit_log", schema="desk")
    op.drop_table("audit_log", schema="desk")
    op.drop_table("api_clients", schema="desk")
    for schema in ("monitoring", "evaluation", "intake"):
        op.execute(f"DROP SCHEMA IF EXISTS {schema}")
