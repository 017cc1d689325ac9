"""SQL objects whose source is a versioned file here, not a copy inside a migration.

A file holds `CREATE OR REPLACE` statements only, so applying it again is harmless: the migration that
introduces a change to it is one line, `sql_files.execute("NAME")` (see migration 0018). Older
migrations keep the copies they ran, as history.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

HERE = Path(__file__).resolve().parent


def statements(name: str) -> list[str]:
    """The statements of `NAME.sql`, one per item. A statement ends at a line ending in `;` outside a
    dollar-quoted body (asyncpg runs one statement per call)."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for line in (HERE / f"{name}.sql").read_text(encoding="utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue  # comments between statements
        current.append(line)
        quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.rstrip().endswith(";"):
            out.append("\n".join(current).rstrip().removesuffix(";"))
            current = []
    if current:
        raise ValueError(f"{name}.sql ends inside a statement")
    return out


def execute(name: str) -> None:
    """Apply `NAME.sql` in the running migration."""
    for statement in statements(name):
        op.execute(statement)
