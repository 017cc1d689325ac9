"""Expert accompaniment: the roster of accredited experts, the companies' engagements, and their sessions.

`intake.experts` is the roster officers manage (an expert acts through the API client named in `client_id`);
`intake.engagements` holds a company's request for accompaniment in one phase of an application's plan and, once
assigned and confirmed, the hours its expert logged; `intake.accompaniment_sessions` the sessions themselves.
Only the intake service writes them.

Revision ID: 0025
Revises: 0023
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)


def _now() -> sa.Column[sa.DateTime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "experts",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("fiscal_code", sa.String(16), nullable=False),
        sa.Column("vat_number", sa.String(11), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("markets", postgresql.ARRAY(sa.String(2)), nullable=False),
        sa.Column("sectors", postgresql.ARRAY(sa.String(8)), nullable=False),
        sa.Column("languages", postgresql.ARRAY(sa.String(2)), nullable=False),
        sa.Column("phases", postgresql.ARRAY(sa.String(16)), nullable=False),
        sa.Column("hours_per_month", sa.Numeric(6, 2), nullable=False),
        sa.Column("accredited_from", sa.Date(), nullable=False),
        sa.Column("accredited_to", sa.Date(), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("hours_per_month > 0", name=op.f("ck_experts_hours_per_month_positive")),
        sa.CheckConstraint(
            "accredited_to IS NULL OR accredited_to >= accredited_from", name=op.f("ck_experts_accreditation_order")
        ),
        sa.UniqueConstraint("fiscal_code", name=op.f("uq_experts_fiscal_code")),
        sa.UniqueConstraint("client_id", name=op.f("uq_experts_client_id")),
        schema="intake",
    )
    op.create_table(
        "engagements",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("company_id", UUID, sa.ForeignKey("intake.companies.id"), nullable=False),
        sa.Column("application_id", UUID, sa.ForeignKey("intake.applications.id"), nullable=False),
        sa.Column("call_id", UUID, sa.ForeignKey("intake.calls.id"), nullable=False),
        sa.Column("partner_id", UUID, sa.ForeignKey("intake.partners.id"), nullable=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("markets", postgresql.ARRAY(sa.String(2)), nullable=False),
        sa.Column("sector", sa.String(8), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("drafting_consultant", sa.String(16), nullable=True),
        sa.Column("declared_conflicts", postgresql.ARRAY(sa.String(16)), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expert_id", UUID, sa.ForeignKey("intake.experts.id"), nullable=True),
        sa.Column("declined_by", postgresql.ARRAY(UUID), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hours_logged", sa.Numeric(8, 2), nullable=False),
        sa.Column("sessions_count", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        _now(),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name=op.f("ck_engagements_rating_range")),
        schema="intake",
    )
    op.create_index(op.f("ix_engagements_company_id"), "engagements", ["company_id"], schema="intake")
    op.create_index(op.f("ix_engagements_expert_id"), "engagements", ["expert_id"], schema="intake")
    op.create_table(
        "accompaniment_sessions",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("engagement_id", UUID, sa.ForeignKey("intake.engagements.id"), nullable=False),
        sa.Column("expert_id", UUID, sa.ForeignKey("intake.experts.id"), nullable=False),
        sa.Column("company_id", UUID, sa.ForeignKey("intake.companies.id"), nullable=False),
        sa.Column("call_id", UUID, sa.ForeignKey("intake.calls.id"), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("hours", sa.Numeric(5, 2), nullable=False),
        sa.Column("topics", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("outcome_notes", sa.Text(), nullable=False),
        sa.Column("next_steps", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        _now(),
        sa.CheckConstraint("hours > 0", name=op.f("ck_accompaniment_sessions_hours_positive")),
        schema="intake",
    )
    op.create_index(
        op.f("ix_accompaniment_sessions_engagement_id"), "accompaniment_sessions", ["engagement_id"], schema="intake"
    )
    op.create_index(
        op.f("ix_accompaniment_sessions_expert_id_held_on"),
        "accompaniment_sessions",
        ["expert_id", "held_on"],
        schema="intake",
    )
    op.create_index(
        op.f("ix_accompaniment_sessions_company_id_call_id"),
        "accompaniment_sessions",
        ["company_id", "call_id"],
        schema="intake",
    )


def downgrade() -> None:
    op.drop_table("accompaniment_sessions", schema="intake")
    op.drop_table("engagements", schema="intake")
    op.drop_table("experts", schema="intake")
