"""The outbox's publication order: `published_seq`, the cursor of `GET /v1/events`.

The outbox id is taken at INSERT, but transactions commit in another order: a poller paging by id
could move past an id whose transaction had not committed yet and never see that event. The
delivery worker's fan-out now numbers the events it publishes from `desk.outbox_published_seq`
while holding a transaction-level advisory lock, so fan-outs never interleave and a higher number
is always committed after (or with) every lower one. Already published events are numbered here
in id order; pings (aimed at one subscription) are not polled and stay unnumbered.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE desk.outbox_published_seq AS bigint")
    op.add_column("outbox", sa.Column("published_seq", sa.BigInteger(), nullable=True), schema="desk")
    op.execute("""
        UPDATE desk.outbox o SET published_seq = n.seq
          FROM (SELECT id, nextval('desk.outbox_published_seq') AS seq
                  FROM (SELECT id FROM desk.outbox
                         WHERE published_at IS NOT NULL AND event_type <> 'webhook.ping' ORDER BY id) ordered) n
         WHERE o.id = n.id
    """)
    op.create_index("ix_outbox_published_seq", "outbox", ["published_seq"], unique=True, schema="desk")


def downgrade() -> None:
    op.drop_index("ix_outbox_published_seq", table_name="outbox", schema="desk")
    op.drop_column("outbox", "published_seq", schema="desk")
    op.execute("DROP SEQUENCE desk.outbox_published_seq")
