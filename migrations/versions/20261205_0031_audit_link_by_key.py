"""Linking an audit record finds it through the primary key however the log has grown.

`desk.audit_link` (migration 0013) updated the record it links with a static statement, whose plan
PostgreSQL keeps per connection: on a new desk, where the log was analysed nearly empty, the kept plan was a
scan of the whole table, and each link then cost in proportion to the log (on a click day most of
PostgreSQL's time per submit, and evaluation's and monitoring's records too, since the log is shared). The
update is now planned for each record with its key and the table as it is (EXECUTE ... USING), so it goes
through the primary key once the log is more than a page or two. Nothing else changes: the same columns, the
same canonical form, the same order of linking.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK = r"""
CREATE OR REPLACE FUNCTION desk.audit_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r desk.audit_log := NEW;
BEGIN
    -- Runs at commit (a deferred constraint trigger): the chain's head is locked from here to the end of
    -- the commit only, after every other lock the transaction takes, so linking adds no lock-order cycle
    -- to any transaction; records of one service join the chain in commit order, and a rolled-back record
    -- never takes a seq.
    SELECT c.last_seq + 1, c.last_hash INTO r.seq, r.prev_hash FROM desk.audit_chains c
     WHERE c.service = r.service FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        INSERT INTO desk.audit_chains (service, last_seq, last_hash) VALUES (r.service, 0, repeat('0', 64))
        ON CONFLICT (service) DO NOTHING;
        SELECT c.last_seq + 1, c.last_hash INTO r.seq, r.prev_hash FROM desk.audit_chains c
         WHERE c.service = r.service FOR NO KEY UPDATE;
    END IF;
    r.hash := encode(sha256(convert_to(desk.audit_canonical(r), 'UTF8')), 'hex');
    -- Planned for this record (EXECUTE): a plan kept from when the log was small would scan all of it.
    EXECUTE 'UPDATE desk.audit_log SET seq = $1, prev_hash = $2, hash = $3 WHERE id = $4'
        USING r.seq, r.prev_hash, r.hash, r.id;
    UPDATE desk.audit_chains c SET last_seq = r.seq, last_hash = r.hash WHERE c.service = r.service;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(LINK)


def downgrade() -> None:
    spec = spec_from_file_location("m0013", Path(__file__).with_name("20261202_0013_audit_chain.py"))
    assert spec is not None and spec.loader is not None
    m0013 = module_from_spec(spec)
    spec.loader.exec_module(m0013)
    op.execute(m0013.LINK.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
