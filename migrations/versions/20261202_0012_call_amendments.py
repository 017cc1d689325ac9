"""Call amendments: the decree behind a version, and the version evaluation's budget last applied.

Once a call's window has opened a new version of its rules may only extend the window or raise the
budget, each ordered by a decree: `intake.call_versions.decree` keeps it ({"number", "date"}).
Evaluation's budget row applies the `call.amended` events: `evaluation.budgets.call_version` is the
version of the call's rules its total comes from, so an event older than it changes nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "call_versions", sa.Column("decree", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema="intake"
    )
    op.add_column("budgets", sa.Column("call_version", sa.Integer(), nullable=True), schema="evaluation")


def downgrade() -> None:
    op.drop_column("budgets", "call_version", schema="evaluation")
    op.drop_column("call_versions", "decree", schema="intake")
