"""API clients managed through the API: rotation with an overlap, revocation, last use, a version for If-Match.

`previous_secrets` holds the argon2 hashes of secrets replaced by a rotation, each with the instant its
overlap ends (`[{"hash": ..., "expires_at": ...}]`); the token endpoint accepts them until then.
`revoked_at` marks a revoked client: the token endpoint refuses it and every service refuses the tokens
already issued to it (`shared.revocation`, which reads the clients revoked recently through the partial
index). `active` stays as the single flag older readers test (false exactly when revoked). Clients that
were deactivated before this revision count as revoked from now on.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_clients", sa.Column("version", sa.Integer(), server_default="1", nullable=False), schema="desk")
    op.add_column(
        "api_clients",
        sa.Column(
            "previous_secrets",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema="desk",
    )
    op.add_column("api_clients", sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True), schema="desk")
    op.add_column("api_clients", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True), schema="desk")
    op.add_column("api_clients", sa.Column("revoked_reason", sa.Text(), nullable=True), schema="desk")
    op.add_column("api_clients", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True), schema="desk")
    op.execute(
        "UPDATE desk.api_clients SET revoked_at = now(), revoked_reason = 'deactivated before revision 0019'"
        " WHERE NOT active"
    )
    op.create_index(
        "ix_api_clients_revoked_at",
        "api_clients",
        ["revoked_at"],
        schema="desk",
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )
    op.create_index("ix_api_clients_partner_id", "api_clients", ["partner_id"], schema="desk")


def downgrade() -> None:
    op.drop_index("ix_api_clients_partner_id", table_name="api_clients", schema="desk")
    op.drop_index("ix_api_clients_revoked_at", table_name="api_clients", schema="desk")
    for column in ("last_used_at", "revoked_reason", "revoked_at", "rotated_at", "previous_secrets", "version"):
        op.drop_column("api_clients", column, schema="desk")
