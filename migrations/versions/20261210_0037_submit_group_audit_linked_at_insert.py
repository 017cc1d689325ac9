"""The click-day group writes its audit records already linked, and the link at commit passes over them.

`desk.audit_link` linked each audit record at commit with an update: a second version of the record, three more
index entries and four more WAL records per submit, and the largest part of a pre-checked submit's PostgreSQL
time that no rule needs (pg_stat_statements over a production burst: 23 µs per record). The group function
(`migrations/sql/commit_submission_group.sql`) now locks the chain's head itself, just before it writes the
records, and writes each one with its seq, previous hash and hash, computed as the trigger computes them
(`desk.audit_canonical`). The head stays locked to the commit, as the trigger keeps it from the commit's start:
records still join the chain in commit order, gap-free, and the group takes no lock after the head, so no
lock-order cycle appears (its only other lock, the call's counter, is taken before it, as every submit does).

`desk.audit_link` now returns at once for a record inserted linked (`NEW.seq` set), before reading the session's
last id; every other record is linked at commit as before.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-10
"""

from collections.abc import Sequence
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from alembic import op

from migrations import sql as sql_files

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _m0034() -> object:
    spec = spec_from_file_location("m0034", Path(__file__).with_name("20261207_0034_audit_records_linked_together.py"))
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LAST = "    v_last bigint := currval('desk.audit_log_id_seq');\n"


def link_function() -> str:
    """0034's `desk.audit_link` with the early return for a record inserted linked."""
    source: str = _m0034().LINK  # type: ignore[attr-defined]
    assert source.count(_LAST) == 1 and source.count("\nBEGIN\n") == 1
    return source.replace(_LAST, "    v_last bigint;\n").replace(
        "\nBEGIN\n",
        "\nBEGIN\n"
        "    -- Written linked (the click-day group links its records as it writes them): nothing to do.\n"
        "    IF NEW.seq IS NOT NULL THEN\n"
        "        RETURN NULL;\n"
        "    END IF;\n"
        "    v_last := currval('desk.audit_log_id_seq');\n",
        1,
    )


# The group function's audit block as revision 0036 wrote it (the file now holds 0037's).
_BEFORE_START = "        -- The audit records, linked as they are written:"
_BEFORE_END = "        -- The events and the audit records, in arrival order"
_INSERT_NOW = """        INSERT INTO desk.audit_log OVERRIDING SYSTEM VALUE
        SELECT (v_audit[g.i]).*
"""
_INSERT_0036 = """        INSERT INTO desk.audit_log (service, request_id, principal_kind, principal_client_id, action, resource_type,
                                    resource_id, before, after)
        SELECT p_service[g.i], p_request_id[g.i], p_principal_kind[g.i], p_principal[g.i], 'application.submitted',
               'application', p_application_id[g.i]::text, jsonb_build_object('status', 'draft'),
               jsonb_build_object('status', 'submitted', 'protocol_number', o_n[g.i], 'content_sha256', v_sha[g.i],
                                  'chain_hash', o_hash[g.i])
"""


def upgrade() -> None:
    op.execute(link_function())
    sql_files.execute("commit_submission_group")


def downgrade() -> None:
    op.execute(_m0034().LINK)  # type: ignore[attr-defined]
    for statement in sql_files.statements("commit_submission_group"):
        start, end = statement.index(_BEFORE_START), statement.index(_BEFORE_END)
        statement = statement[:start] + statement[end:]
        op.execute(statement.replace(_INSERT_NOW, _INSERT_0036))
