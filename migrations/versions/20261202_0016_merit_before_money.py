"""Merit before money: four-eyes confirmations of money decisions, and numbered, immutable rankings.

`desk.money_confirmations` holds one row per proposal of a money decision (funding approval, decree
closing, payment order): who proposed it and when, what was proposed, and who confirmed it. A second,
different officer confirms; at most one open proposal per action and resource (partial unique index).
`evaluation.rankings` holds every published ranking of a call, numbered per call; a trigger refuses
UPDATE, DELETE and TRUNCATE, so a new ranking is a new number with its reason and history stays readable.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "money_confirmations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("confirmed_by", sa.String(length=64), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_money_confirmations")),
        schema="desk",
    )
    op.create_index(
        "uq_money_confirmations_open",
        "money_confirmations",
        ["action", "resource_id"],
        unique=True,
        schema="desk",
        postgresql_where=sa.text("status = 'proposed'"),
    )

    op.create_table(
        "rankings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("procedure", sa.String(length=16), nullable=False),
        sa.Column("entries", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rankings")),
        sa.UniqueConstraint("call_id", "number", name=op.f("uq_rankings_call_id_number")),
        schema="evaluation",
    )
    op.execute("""CREATE FUNCTION evaluation.refuse_ranking_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'evaluation.rankings is immutable: publish a new version' USING ERRCODE = 'insufficient_privilege';
    END $$""")
    op.execute("""CREATE TRIGGER rankings_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON evaluation.rankings
        FOR EACH STATEMENT EXECUTE FUNCTION evaluation.refuse_ranking_change()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER rankings_immutable ON evaluation.rankings")
    op.execute("DROP FUNCTION evaluation.refuse_ranking_change()")
    op.drop_table("rankings", schema="evaluation")
    op.drop_index("uq_money_confirmations_open", table_name="money_confirmations", schema="desk")
    op.drop_table("money_confirmations", schema="desk")
