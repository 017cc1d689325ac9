"""The audit trail becomes a hash chain per service, so an altered or deleted record shows.

Each `desk.audit_log` row gets `seq` (gap-free per service), `prev_hash` (the previous record's `hash`,
64 zeros for the first) and `hash` = SHA-256 of the record's canonical form (`desk.audit_canonical`,
described in the README's "Audit trail"; `shared.audit_chain` reproduces it byte for byte). A deferred
constraint trigger links every row when its transaction commits, whoever wrote it (the shared library's
`record_audit` or the click-day function `intake.commit_submission`), so there is one definition of the
canonical form. Linking locks the service's row in `desk.audit_chains` for the commit only: records of
one service join the chain in commit order, intake's head is not shared with evaluation's or
monitoring's, and as the last lock a transaction takes it cannot close a deadlock.

Still append-only: DELETE and TRUNCATE are refused as before, and UPDATE too except the linking one.
The chain is what still shows a change made by someone who disables those triggers. Existing rows are
linked in id order.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64

# The canonical form: a JSON array, no spaces between its elements, of the format tag, seq, id, service,
# the instant (UTC, microseconds), request id, principal kind and client id, action, resource type and id,
# before, after (PostgreSQL's jsonb text) and prev_hash. Strings are escaped by to_json (PostgreSQL's JSON
# string escaping); a missing value is null.
CANONICAL = r"""
CREATE FUNCTION desk.audit_canonical(r desk.audit_log) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '["desk-audit/1",' || r.seq || ',' || r.id || ',' || to_json(r.service::text)
        || ',' || to_json(to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || ',' || coalesce(to_json(r.request_id::text)::text, 'null')
        || ',' || to_json(r.principal_kind::text) || ',' || to_json(r.principal_client_id::text)
        || ',' || to_json(r.action::text) || ',' || to_json(r.resource_type::text) || ',' || to_json(r.resource_id::text)
        || ',' || coalesce(r.before::text, 'null') || ',' || coalesce(r.after::text, 'null')
        || ',' || to_json(r.prev_hash::text) || ']'
$$
"""

LINK = r"""
CREATE FUNCTION desk.audit_link() RETURNS trigger LANGUAGE plpgsql AS $$
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
    UPDATE desk.audit_log a SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE a.id = r.id;
    UPDATE desk.audit_chains c SET last_seq = r.seq, last_hash = r.hash WHERE c.service = r.service;
    RETURN NULL;
END $$
"""

# Append-only still: the one update allowed is desk.audit_link filling in a new record's chain columns, from
# inside that trigger (nobody issues an UPDATE from a trigger of their own without the right to create one),
# on a record not linked yet. Kept to those cheap checks: it runs once per record on the commit path.
REFUSE_UPDATE = r"""
CREATE FUNCTION desk.audit_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 AND OLD.seq IS NULL AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'desk.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$
"""

BACKFILL = r"""
DO $$
DECLARE
    r desk.audit_log;
    v_seq bigint;
    v_prev text;
BEGIN
    FOR r IN SELECT * FROM desk.audit_log ORDER BY id LOOP
        SELECT c.last_seq, c.last_hash INTO v_seq, v_prev FROM desk.audit_chains c WHERE c.service = r.service;
        IF NOT FOUND THEN
            INSERT INTO desk.audit_chains (service, last_seq, last_hash) VALUES (r.service, 0, repeat('0', 64));
            v_seq := 0;
            v_prev := repeat('0', 64);
        END IF;
        r.seq := v_seq + 1;
        r.prev_hash := v_prev;
        r.hash := encode(sha256(convert_to(desk.audit_canonical(r), 'UTF8')), 'hex');
        UPDATE desk.audit_log a SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE a.id = r.id;
        UPDATE desk.audit_chains c SET last_seq = r.seq, last_hash = r.hash WHERE c.service = r.service;
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "audit_chains",
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_audit_chains")),
        schema="desk",
    )
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True), schema="desk")
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(length=64), nullable=True), schema="desk")
    op.add_column("audit_log", sa.Column("hash", sa.String(length=64), nullable=True), schema="desk")
    op.create_unique_constraint(op.f("uq_audit_log_service_seq"), "audit_log", ["service", "seq"], schema="desk")
    op.execute(CANONICAL)
    op.execute(
        f"INSERT INTO desk.audit_chains (service, last_seq, last_hash) VALUES ('intake', 0, '{GENESIS}'),"
        f" ('evaluation', 0, '{GENESIS}'), ('monitoring', 0, '{GENESIS}')"
    )
    op.execute("ALTER TABLE desk.audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute(BACKFILL)
    op.execute("DROP TRIGGER audit_log_append_only ON desk.audit_log")
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE DELETE OR TRUNCATE ON desk.audit_log"
        " FOR EACH STATEMENT EXECUTE FUNCTION desk.refuse_change()"
    )
    op.execute(REFUSE_UPDATE)
    op.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON desk.audit_log"
        " FOR EACH ROW EXECUTE FUNCTION desk.audit_refuse_update()"
    )
    op.execute(LINK)
    op.execute(
        "CREATE CONSTRAINT TRIGGER audit_log_link AFTER INSERT ON desk.audit_log"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION desk.audit_link()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_link ON desk.audit_log")
    op.execute("DROP FUNCTION desk.audit_link()")
    op.execute("DROP TRIGGER audit_log_no_update ON desk.audit_log")
    op.execute("DROP FUNCTION desk.audit_refuse_update()")
    op.execute("DROP TRIGGER audit_log_append_only ON desk.audit_log")
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON desk.audit_log"
        " FOR EACH STATEMENT EXECUTE FUNCTION desk.refuse_change()"
    )
    op.drop_constraint(op.f("uq_audit_log_service_seq"), "audit_log", schema="desk", type_="unique")
    op.execute("DROP FUNCTION desk.audit_canonical(desk.audit_log)")
    for column in ("hash", "prev_hash", "seq"):
        op.drop_column("audit_log", column, schema="desk")
    op.drop_table("audit_chains", schema="desk")
