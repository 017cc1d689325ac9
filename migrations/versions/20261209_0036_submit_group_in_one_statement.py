"""The click-day group commit in one statement: `intake.commit_submission_group`.

Intake commits the pre-checked submits that arrive together as one group (services.intake.applications.
fastpath.CommitBatcher). It ran `intake.commit_submission` once per submit, pipelined in one transaction, and
each run started and ended the executor of each of that function's seven statements: under a burst, the
largest share of PostgreSQL's time per submit (`perf record -g` on the bench database: executor start-up and
the per-call portal about a quarter of the backends' samples, index insertions a fifth). The new function
(source: `migrations/sql/commit_submission_group.sql`) takes the same arguments as arrays, one element per
submit, and runs each step once for the group; only the receipt and its chain link run per submit, as
expressions. Same outcomes, writes, receipts and errors; a group it cannot commit as such raises, and its
submits are committed one by one with `intake.commit_submission`, as before.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-09
"""

from collections.abc import Sequence

from alembic import op

from migrations import sql as sql_files

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sql_files.execute("commit_submission_group")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION intake.commit_submission_group(uuid[], boolean[], text[], uuid[], integer[], uuid[], text[],"
        " integer[], text[], text[], text[], uuid[], uuid[], text[], text[], text[], text[], text[], text[], text[],"
        " bytea[], text[], timestamptz[], uuid[])"
    )
