"""`intake.commit_submission` from its versioned source, `migrations/sql/commit_submission.sql`.

The function's body was copied whole into every migration that changed it (0004, 0007, 0011). Its source
is now one file, applied here with CREATE OR REPLACE; the next change is a diff to that file and a
migration that runs `sql_files.execute("commit_submission")` again. The signature and the answers are
0011's: the receipt's canonical JSON and its chain link move into two helpers,
`intake.submission_receipt` and `intake.receipt_chain_link` (with `intake.receipt_instant`), which the
twins test compares with `shared.domain.receipts` on random content.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from alembic import op

from migrations import sql as sql_files

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sql_files.execute("commit_submission")


def downgrade() -> None:
    spec = spec_from_file_location("m0011", Path(__file__).with_name("20261202_0011_idempotency_owner.py"))
    assert spec is not None and spec.loader is not None
    m0011 = module_from_spec(spec)
    spec.loader.exec_module(m0011)
    op.execute(m0011.COMMIT.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION intake.receipt_chain_link(text, text)")
    op.execute(
        "DROP FUNCTION intake.submission_receipt(uuid, text, uuid, integer, text, text, text, bigint, timestamptz)"
    )
    op.execute("DROP FUNCTION intake.receipt_instant(timestamptz)")
