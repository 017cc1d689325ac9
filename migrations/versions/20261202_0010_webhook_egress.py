"""Webhook egress: officer-allowed ports, and no partner response bodies kept in the delivery log.

A webhook in production may only use port 443; `desk.webhook_port_allowances` holds the other (host,
port) pairs an officer allowed. The delivery worker used to store the first 500 characters of a failed
response in `last_error` and in the attempt log, where the subscriber could read them: a blind request
forgery became a readable one. The worker now stores a stable error code only; the excerpts already
stored are replaced by `http_error` here (the status code stays).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_port_allowances",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_port_allowances")),
        sa.UniqueConstraint("host", "port", name=op.f("uq_webhook_port_allowances_host_port")),
        schema="desk",
    )
    # A status code with an error text means the text was the partner's response body.
    op.execute(
        "UPDATE desk.delivery_attempts SET error = 'http_error' WHERE status_code IS NOT NULL AND error IS NOT NULL"
    )
    op.execute(
        "UPDATE desk.deliveries SET last_error = 'http_error' "
        "WHERE last_status_code IS NOT NULL AND last_error IS NOT NULL "
        "AND last_error NOT IN ('subscription deleted', 'subscription inactive')"
    )


def downgrade() -> None:
    op.drop_table("webhook_port_allowances", schema="desk")
