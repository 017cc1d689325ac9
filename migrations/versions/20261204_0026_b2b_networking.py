"""Networking with international operators: foreign operators, B2B events with time slots, companies'
interests and operators' preferences, the agenda's meetings and their outcomes (intake), and the outcomes
monitoring keeps for the plan's results and the statistics.

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("status IN ('proposed', 'confirmed')")


def upgrade() -> None:
    op.create_table(
        "b2b_operators",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("sectors", postgresql.ARRAY(sa.String(8)), nullable=False),
        sa.Column("interests", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_b2b_operators")),
        schema="intake",
    )
    op.create_table(
        "b2b_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slots", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_b2b_events")),
        schema="intake",
    )
    op.create_table(
        "b2b_event_operators",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("operator_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["intake.b2b_events.id"], name=op.f("fk_b2b_event_operators_event_id_b2b_events")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["intake.b2b_operators.id"], name=op.f("fk_b2b_event_operators_operator_id_b2b_operators")
        ),
        sa.PrimaryKeyConstraint("event_id", "operator_id", name=op.f("pk_b2b_event_operators")),
        schema="intake",
    )
    op.create_table(
        "b2b_interests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("operator_id", sa.UUID(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["intake.companies.id"], name=op.f("fk_b2b_interests_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["intake.b2b_events.id"], name=op.f("fk_b2b_interests_event_id_b2b_events")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["intake.b2b_operators.id"], name=op.f("fk_b2b_interests_operator_id_b2b_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_b2b_interests")),
        sa.UniqueConstraint(
            "event_id", "company_id", "operator_id", name=op.f("uq_b2b_interests_event_id_company_id_operator_id")
        ),
        schema="intake",
    )
    op.create_index(op.f("ix_b2b_interests_company_id"), "b2b_interests", ["company_id"], schema="intake")
    op.create_table(
        "b2b_operator_preferences",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("operator_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["intake.companies.id"], name=op.f("fk_b2b_operator_preferences_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["intake.b2b_events.id"], name=op.f("fk_b2b_operator_preferences_event_id_b2b_events")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["intake.b2b_operators.id"],
            name=op.f("fk_b2b_operator_preferences_operator_id_b2b_operators"),
        ),
        sa.PrimaryKeyConstraint("event_id", "operator_id", "company_id", name=op.f("pk_b2b_operator_preferences")),
        schema="intake",
    )
    op.create_table(
        "b2b_meetings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("operator_id", sa.UUID(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("confirmed_by", sa.String(64), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("contract_value", sa.Numeric(14, 2), nullable=True),
        sa.Column("market", sa.String(2), nullable=True),
        sa.Column("outcome_recorded_by", sa.String(64), nullable=True),
        sa.Column("outcome_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome <> 'contract' OR (contract_value IS NOT NULL AND market IS NOT NULL)",
            name=op.f("ck_b2b_meetings_contract_has_value_and_market"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["intake.companies.id"], name=op.f("fk_b2b_meetings_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["intake.b2b_events.id"], name=op.f("fk_b2b_meetings_event_id_b2b_events")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["intake.b2b_operators.id"], name=op.f("fk_b2b_meetings_operator_id_b2b_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_b2b_meetings")),
        schema="intake",
    )
    for name, cols in (
        ("uq_b2b_meetings_company_slot", ["event_id", "slot", "company_id"]),
        ("uq_b2b_meetings_operator_slot", ["event_id", "slot", "operator_id"]),
        ("uq_b2b_meetings_pair", ["event_id", "company_id", "operator_id"]),
    ):
        op.create_index(name, "b2b_meetings", cols, unique=True, schema="intake", postgresql_where=_LIVE)
    op.create_index(op.f("ix_b2b_meetings_company_id"), "b2b_meetings", ["company_id"], schema="intake")

    op.create_table(
        "b2b_outcomes",
        sa.Column("meeting_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_title", sa.Text(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("operator_country", sa.String(2), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=True),
        sa.Column("application_id", sa.UUID(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("contract_value", sa.Numeric(14, 2), nullable=True),
        sa.Column("market", sa.String(2), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meeting_id", name=op.f("pk_b2b_outcomes")),
        schema="monitoring",
    )
    op.create_index(op.f("ix_b2b_outcomes_project_id"), "b2b_outcomes", ["project_id"], schema="monitoring")
    op.create_index(op.f("ix_b2b_outcomes_event_id"), "b2b_outcomes", ["event_id"], schema="monitoring")


def downgrade() -> None:
    op.drop_table("b2b_outcomes", schema="monitoring")
    for table in (
        "b2b_meetings",
        "b2b_operator_preferences",
        "b2b_interests",
        "b2b_event_operators",
        "b2b_events",
        "b2b_operators",
    ):
        op.drop_table(table, schema="intake")
