"""Deliveries know whether they go to a desk service, and pending ones are indexed in the order they are claimed.

The delivery worker claims the oldest due deliveries of one desk service (a batch to its inbox) or of the partners
and companies (their webhooks). Both claims read the pending deliveries through the index on `next_attempt_at`
and sorted all that were due to keep the oldest: after a click day's burst, tens of thousands, for every claim of
fifty (about 50 ms of PostgreSQL each). `internal` (the subscription is a desk service's, set when the delivery is
made) and two partial indexes on the pending deliveries let each claim walk its own queue in id order and stop at
its batch: `(subscription_id, id)` for a service's queue, `(id)` where not internal for the partners'. The index
on `next_attempt_at`, which served only the claims, goes: left there, a plan made from stale statistics would
still read and sort every pending delivery through it.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deliveries", sa.Column("internal", sa.Boolean(), server_default="false", nullable=False), schema="desk"
    )
    op.execute(
        "UPDATE desk.deliveries d SET internal = true FROM desk.subscriptions s"
        " WHERE s.id = d.subscription_id AND s.owner_kind = 'service'"
    )
    op.create_index(
        "ix_deliveries_pending_by_subscription",
        "deliveries",
        ["subscription_id", "id"],
        schema="desk",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_deliveries_pending_external",
        "deliveries",
        ["id"],
        schema="desk",
        postgresql_where=sa.text("status = 'pending' AND NOT internal"),
    )
    op.drop_index("ix_deliveries_due", table_name="deliveries", schema="desk")


def downgrade() -> None:
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        schema="desk",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_deliveries_pending_external", table_name="deliveries", schema="desk")
    op.drop_index("ix_deliveries_pending_by_subscription", table_name="deliveries", schema="desk")
    op.drop_column("deliveries", "internal", schema="desk")
