"""De minimis declarations: the applicant's self-declaration of the aid its single undertaking received.

`intake.applications.de_minimis_declarations` holds the list (vat_number, granting_authority, granted_on,
amount, regulation, reference), empty for the applications drafted before.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column(
            "de_minimis_declarations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema="intake",
    )


def downgrade() -> None:
    op.drop_column("applications", "de_minimis_declarations", schema="intake")
