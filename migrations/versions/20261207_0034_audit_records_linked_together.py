"""The audit records of one transaction are linked together, by the first of them to be linked.

`desk.audit_link` ran once per record at commit, each time locking the chain's head, reading it, planning and
running an update of the record and writing the head back: a click-day group commit of 64 submits did that 64
times. The trigger still fires for every record, but the first one to fire now links every record the
transaction inserted, in one pass: each chain's head read and written once, one read of the records, one update
of them all. The records that follow find themselves linked and return at once. Measured on one backend
(records inserted and committed in a loop by a procedure): 92–100 µs of PostgreSQL per record in transactions
of 64 records, against 217–227 µs before.

Which records a transaction inserted: every one lies between the record being linked and this session's last id
(`currval` of the log's identity sequence), because ids come from that sequence in order, and no longer from
the inserter (the identity becomes GENERATED ALWAYS: an explicit id could fall in a range already linked; a
session that forces one with OVERRIDING SYSTEM VALUE without ever drawing an id is refused at commit, `currval`
being undefined for it, while pg_restore loads the log before creating its triggers). Within that range the
pass takes the records it sees that are not linked (those committed by others were linked by their own commit;
those still in progress are not visible), each into its service's chain in id order, the chains one after the
other in the order of their names. It then notes the range in a setting local to the transaction and bound to
its id (`desk.audit_linked`), which the records that follow compare with. A transaction that inserted one
record (most of them outside a click day) takes the old path: that record alone, from the trigger's row.

Nothing else changes: the canonical form, the hashes, gap-free seq per service, the heads locked from linking
to the commit, a rolled-back record taking no seq. The update that links a record no longer calls the
append-only check (a WHEN clause tells it apart from any other update without a call): any other update of the
log still reaches `desk.audit_refuse_update` and is refused.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK = r"""
CREATE OR REPLACE FUNCTION desk.audit_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r desk.audit_log := NEW;
    -- Every record this transaction inserted and has not linked has an id from NEW's to this session's last.
    v_last bigint := currval('desk.audit_log_id_seq');
    v_mark text;
    v_rows desk.audit_log[];
    v_service text;
    v_seq bigint;
    v_prev text;
    v_n integer;
    v_ids bigint[];
    v_seqs bigint[];
    v_prevs text[];
    v_hashes text[];
BEGIN
    -- Runs at commit (a deferred constraint trigger): the chain heads are locked from here to the end of the
    -- commit only, after every other lock the transaction takes, so linking adds no lock-order cycle to any
    -- transaction; records of one service join the chain in commit order, and a rolled-back record never
    -- takes a seq.
    IF v_last <= NEW.id THEN
        -- Alone, or the last record of the transaction (then linked already if a pass ran: `seq IS NULL`).
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
        EXECUTE 'UPDATE desk.audit_log SET seq = $1, prev_hash = $2, hash = $3 WHERE id = $4 AND seq IS NULL'
            USING r.seq, r.prev_hash, r.hash, r.id;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n = 1 THEN
            UPDATE desk.audit_chains c SET last_seq = r.seq, last_hash = r.hash WHERE c.service = r.service;
        END IF;
        RETURN NULL;
    END IF;
    -- The first and last id this transaction's last pass linked, and the transaction's id, colon-separated.
    v_mark := current_setting('desk.audit_linked', true);
    IF (CASE WHEN split_part(v_mark, ':', 3) = pg_current_xact_id()::text
             THEN NEW.id BETWEEN split_part(v_mark, ':', 1)::bigint AND split_part(v_mark, ':', 2)::bigint
             ELSE false END) THEN
        RETURN NULL;  -- linked by that pass
    END IF;
    -- The pass. The range through the primary key only (seq is tested here, so that no other index can look
    -- cheaper to a planner without statistics yet). Committed records there are linked; others' uncommitted
    -- ones are not seen.
    FOR r IN EXECUTE 'SELECT * FROM desk.audit_log WHERE id BETWEEN $1 AND $2 ORDER BY id' USING NEW.id, v_last
    LOOP
        CONTINUE WHEN r.seq IS NOT NULL;
        v_rows := v_rows || r;
    END LOOP;
    -- One chain after the other, in the order of their names (so two transactions lock them in one order).
    FOR v_service IN SELECT DISTINCT x.service FROM unnest(v_rows) x ORDER BY 1 LOOP
        SELECT c.last_seq, c.last_hash INTO v_seq, v_prev FROM desk.audit_chains c
         WHERE c.service = v_service FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            INSERT INTO desk.audit_chains (service, last_seq, last_hash) VALUES (v_service, 0, repeat('0', 64))
            ON CONFLICT (service) DO NOTHING;
            SELECT c.last_seq, c.last_hash INTO v_seq, v_prev FROM desk.audit_chains c
             WHERE c.service = v_service FOR NO KEY UPDATE;
        END IF;
        FOREACH r IN ARRAY v_rows LOOP
            CONTINUE WHEN r.service <> v_service;
            v_seq := v_seq + 1;
            r.seq := v_seq;
            r.prev_hash := v_prev;
            v_prev := encode(sha256(convert_to(desk.audit_canonical(r), 'UTF8')), 'hex');
            v_ids := v_ids || r.id;
            v_seqs := v_seqs || v_seq;
            v_prevs := v_prevs || r.prev_hash;
            v_hashes := v_hashes || v_prev;
        END LOOP;
        UPDATE desk.audit_chains c SET last_seq = v_seq, last_hash = v_prev WHERE c.service = v_service;
    END LOOP;
    IF v_ids IS NOT NULL THEN
        EXECUTE 'UPDATE desk.audit_log a SET seq = u.seq, prev_hash = u.prev_hash, hash = u.hash'
                ' FROM unnest($1, $2, $3, $4) AS u (id, seq, prev_hash, hash) WHERE a.id = u.id'
            USING v_ids, v_seqs, v_prevs, v_hashes;
    END IF;
    PERFORM set_config('desk.audit_linked', concat_ws(':', NEW.id, v_last, pg_current_xact_id()), true);
    RETURN NULL;
END $$
"""

# The one update allowed (desk.audit_link filling in a record's chain columns, from inside that trigger, on a
# record not linked yet) no longer calls the check: it still refuses every other update.
NO_UPDATE_WHEN = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON desk.audit_log FOR EACH ROW"
    " WHEN (pg_trigger_depth() < 1 OR OLD.seq IS NOT NULL OR NEW.id IS DISTINCT FROM OLD.id)"
    " EXECUTE FUNCTION desk.audit_refuse_update()"
)


def upgrade() -> None:
    op.execute("ALTER TABLE desk.audit_log ALTER COLUMN id SET GENERATED ALWAYS")
    op.execute("DROP TRIGGER audit_log_no_update ON desk.audit_log")
    op.execute(NO_UPDATE_WHEN)
    op.execute(LINK)


def downgrade() -> None:
    spec = spec_from_file_location("m0031", Path(__file__).with_name("20261205_0031_audit_link_by_key.py"))
    assert spec is not None and spec.loader is not None
    m0031 = module_from_spec(spec)
    spec.loader.exec_module(m0031)
    op.execute(m0031.LINK)
    op.execute("DROP TRIGGER audit_log_no_update ON desk.audit_log")
    op.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON desk.audit_log"
        " FOR EACH ROW EXECUTE FUNCTION desk.audit_refuse_update()"
    )
    op.execute("ALTER TABLE desk.audit_log ALTER COLUMN id SET GENERATED BY DEFAULT")
