"""The order check of a claim reads only the candidate's application, through a partial index of pending deliveries.

A claim takes a delivery only when it is the oldest pending one of its (subscription, aggregate). PostgreSQL
answered that subquery through the queue's index `(subscription_id, id) WHERE status = 'pending'`, filtering on
the aggregate: for each candidate it walked the queue from its start, past every delivery sent since the last
vacuum (their entries stay in a partial index until then) and every one in flight. After a click day's burst that
was hundreds of index pages per candidate and a third of a second per claim of 200. The index on
`(subscription_id, aggregate_key, id)` over all deliveries, which the check was meant to use, becomes partial on
the pending ones: the planner prefers it, each lookup reads only that application's pending deliveries, and
a delivery leaves it (at the next vacuum) once sent. A partner's list of a subscription's deliveries, newest first,
could read that index too (every delivery of the subscription, then sorted): it gets `(subscription_id, id)`,
an index in the order it reads, which can stop at its page.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_pending_by_aggregate",
        "deliveries",
        ["subscription_id", "aggregate_key", "id"],
        schema="desk",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(op.f("ix_deliveries_subscription_id_id"), "deliveries", ["subscription_id", "id"], schema="desk")
    op.drop_index("ix_deliveries_subscription_id_aggregate_key_id", table_name="deliveries", schema="desk")


def downgrade() -> None:
    op.create_index(
        "ix_deliveries_subscription_id_aggregate_key_id",
        "deliveries",
        ["subscription_id", "aggregate_key", "id"],
        schema="desk",
    )
    op.drop_index(op.f("ix_deliveries_subscription_id_id"), table_name="deliveries", schema="desk")
    op.drop_index("ix_deliveries_pending_by_aggregate", table_name="deliveries", schema="desk")
