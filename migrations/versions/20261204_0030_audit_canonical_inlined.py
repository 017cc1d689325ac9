"""The audit record's canonical form is declared STABLE, so PostgreSQL inlines it where it is used.

`desk.audit_canonical` was declared IMMUTABLE while its body calls `to_char` and casts to text, which are
STABLE. PostgreSQL never inlines an IMMUTABLE SQL function whose body is not immutable: every audit record
linked at commit (`desk.audit_link`) then ran it as a separate SQL function, parsed and planned anew in each
transaction, most of the linking's cost (about 0.2 ms of PostgreSQL time per submit). Declared STABLE, which
is what it is, it is inlined into the trigger's cached plan. The body, and so the canonical form and every
hash of the chain, is unchanged (`shared.audit_chain` reproduces it byte for byte).

Revision ID: 0030
Revises: 0027
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER FUNCTION desk.audit_canonical(desk.audit_log) STABLE")


def downgrade() -> None:
    op.execute("ALTER FUNCTION desk.audit_canonical(desk.audit_log) IMMUTABLE")
