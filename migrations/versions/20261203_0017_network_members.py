"""Business networks: an evaluation keeps each network member's eligible expenses.

`evaluation.evaluations.network` holds, for a network application, each member's company, VAT number and
eligible total after the cuts (the admissibility run), then each member's aid (the funding computation):
the aid is computed and recorded per member. Null for an application of a single company.

Revision ID: 0017
Revises: 0020
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "evaluations", sa.Column("network", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema="evaluation"
    )


def downgrade() -> None:
    op.drop_column("evaluations", "network", schema="evaluation")
