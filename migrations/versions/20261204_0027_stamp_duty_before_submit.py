"""The click-day commit refuses a kept pre-check verdict of a draft without the stamp duty its call requires.

`intake.commit_submission` (source: `migrations/sql/commit_submission.sql`) joins the call's rules version and,
on the pre-checked path, takes the draft only if its stamp duty is declared or the call does not require one.
The verdict itself already counts the missing stamp (shared.domain.formalities); this keeps a verdict recorded
before the requirement existed from committing without it. Nothing else changes.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

from migrations import sql as sql_files

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOIN = "          JOIN intake.call_versions cv ON cv.call_id = a.call_id AND cv.version = c.current_version\n"


def upgrade() -> None:
    sql_files.execute("commit_submission")


def downgrade() -> None:
    # the same function without the stamp duty's join and condition (the four lines this revision added)
    for statement in sql_files.statements("commit_submission"):
        if "FUNCTION intake.commit_submission(" in statement:
            lines = statement.replace(_JOIN, "").splitlines(keepends=True)
            start = next(i for i, line in enumerate(lines) if "the stamp duty the call requires" in line)
            statement = "".join(lines[:start] + lines[start + 4 :])
        op.execute(statement)
