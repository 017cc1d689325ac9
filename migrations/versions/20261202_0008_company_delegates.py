"""Company delegates: one access rule for every service, from the company's current delegations.

`desk.company_delegates` projects intake's delegations (one row per company and partner, `active` while the
partner holds an active delegation); `shared.access` alone writes it, in intake's transaction, and every
service's access rule reads it, so a revoked partner loses the company's whole file at once and the partner
delegated next sees all of it. Backfilled from `intake.delegations` (a pair's latest delegation decides).

Evaluation keeps, per received application, the partner to notify (`partner_id`): the submitting partner at
first, the company's current delegate after a `company.delegation_changed` event. Backfilled from the
snapshot, then moved to the current delegate where the snapshot's partner no longer acts for the company.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_DELEGATES = """
INSERT INTO desk.company_delegates (company_id, partner_id, delegation_id, active, changed_at)
SELECT DISTINCT ON (company_id, partner_id) company_id, partner_id, id, status = 'active',
       coalesce(revoked_at, activated_at, created_at)
  FROM intake.delegations
 ORDER BY company_id, partner_id, (status IN ('pending', 'active')) DESC,
          coalesce(revoked_at, activated_at, created_at) DESC
"""

# The partner to notify: the recorded one while it acts for the company, else its most recent delegate (if any).
MOVE_TO_CURRENT_DELEGATE = """
UPDATE {table} t SET partner_id = (
    SELECT cd.partner_id FROM desk.company_delegates cd WHERE cd.company_id = t.company_id AND cd.active
     ORDER BY cd.changed_at DESC, cd.partner_id LIMIT 1)
 WHERE EXISTS (SELECT 1 FROM desk.company_delegates cd WHERE cd.company_id = t.company_id AND cd.active)
   AND NOT EXISTS (SELECT 1 FROM desk.company_delegates cd
                    WHERE cd.company_id = t.company_id AND cd.partner_id = t.partner_id AND cd.active)
"""


def upgrade() -> None:
    op.create_table(
        "company_delegates",
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("partner_id", sa.UUID(), nullable=False),
        sa.Column("delegation_id", sa.UUID(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "partner_id", name=op.f("pk_company_delegates")),
        schema="desk",
    )
    op.create_index(
        op.f("ix_company_delegates_partner_id"),
        "company_delegates",
        ["partner_id"],
        unique=False,
        schema="desk",
        postgresql_where=sa.text("active"),
    )
    op.execute(BACKFILL_DELEGATES)
    op.add_column("applications", sa.Column("partner_id", sa.UUID(), nullable=True), schema="evaluation")
    op.execute("UPDATE evaluation.applications SET partner_id = (snapshot->>'partner_id')::uuid")
    op.execute(MOVE_TO_CURRENT_DELEGATE.format(table="evaluation.applications"))
    op.execute(MOVE_TO_CURRENT_DELEGATE.format(table="monitoring.projects"))


def downgrade() -> None:
    op.drop_column("applications", "partner_id", schema="evaluation")
    op.drop_index(
        op.f("ix_company_delegates_partner_id"),
        table_name="company_delegates",
        schema="desk",
        postgresql_where=sa.text("active"),
    )
    op.drop_table("company_delegates", schema="desk")
