"""Idempotency keys belong to the partner or company acting, not to one of its API clients.

A partner's second client retrying a request with the same Idempotency-Key executed it again (or got a
409 from its side effect) instead of the stored response. `desk.idempotency_keys.principal` now holds
the key's owner as `shared.routing.idempotency_owner` names it: `partner:<uuid>`, `company:<uuid>`, or
`client:<client_id>` for a client acting for neither (officers, auditors, services). The column widens
to fit the last form.

`intake.commit_submission` took the API client's id for both its audit record and its idempotency
record; it now takes the owner separately (`p_idem_owner`, before `p_idem_key`). Its body is 0007's
otherwise.

Live records are renamed to their owner (through `desk.api_clients`), so a retry across the upgrade
still replays. Where two clients of one owner used the same key, the oldest record keeps it; the others
stay under their client's name until they expire.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMIT = r"""
CREATE FUNCTION intake.commit_submission(
    p_application_id uuid, p_prechecked boolean, p_reach text, p_reach_id uuid,
    p_version integer, p_call_id uuid, p_call_code text, p_call_version integer, p_company_vat text,
    p_content_sha256 text, p_event_payload jsonb, p_partner_id uuid, p_company_id uuid,
    p_key_id text, p_principal text, p_principal_kind text, p_request_id text, p_service text,
    p_idem_owner text, p_idem_key text, p_idem_hash bytea, p_idem_path text, p_idem_expires timestamptz,
    p_event_id uuid
) RETURNS TABLE (outcome text, protocol_number bigint, submitted_at timestamptz, receipt_json text,
                 previous_hash text, chain_hash text, call_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r record;
    v_now timestamptz := clock_timestamp();
    v_status text;
    v_version integer;
    v_n bigint;
    v_at timestamptz;
    v_at_text text;
    v_prev text;
    v_json text;
    v_hash text;
    v_old_hash bytea;
    v_call_id uuid := p_call_id;
    v_call_code text := p_call_code;
    v_call_version integer := p_call_version;
    v_vat text := p_company_vat;
    v_sha text := p_content_sha256;
    v_payload jsonb := p_event_payload;
    v_partner_id uuid := p_partner_id;
    v_company_id uuid := p_company_id;
BEGIN
    -- The counter row stays locked until the transaction ends: do not hold it across the WAL flush. The
    -- service makes the commit durable before it answers (a transactional WAL message, committed
    -- synchronously, flushes the log up to and past this commit), so the lock covers the work only and
    -- concurrent submits share their flushes.
    PERFORM set_config('synchronous_commit', 'off', true);

    IF p_prechecked THEN
        -- The draft with its current verdict, within the caller's reach ($3/$4, as services.intake.access),
        -- in its call's window (as calls.service.effective_window), locked; or nothing, and no side effect.
        SELECT a.call_id, a.company_id, a.partner_id, c.code, c.current_version, co.vat_number,
               a.precheck_content_sha256, a.precheck_estimate
          INTO r
          FROM intake.applications a
          JOIN intake.calls c ON c.id = a.call_id
          JOIN intake.companies co ON co.id = a.company_id
         WHERE a.id = p_application_id AND a.status = 'draft'
           AND a.precheck_version = a.version AND a.precheck_company_version = co.version
           AND a.precheck_call_version = c.current_version AND a.precheck_valid_until > v_now
           AND coalesce(c.demo_opens_at, c.opens_at) <= v_now AND v_now < coalesce(c.demo_closes_at, c.closes_at)
           AND CASE p_reach
                   WHEN 'all' THEN true
                   WHEN 'company' THEN a.company_id = p_reach_id
                   ELSE EXISTS (SELECT 1 FROM intake.delegations d WHERE d.company_id = a.company_id
                                    AND d.partner_id = p_reach_id AND d.status = 'active')
               END
           FOR UPDATE OF a;
        IF NOT FOUND THEN
            outcome := 'not_prechecked';
            RETURN NEXT;
            RETURN;
        END IF;
        v_call_id := r.call_id;
        v_call_code := r.code;
        v_call_version := r.current_version;
        v_vat := r.vat_number;
        v_sha := r.precheck_content_sha256;
        v_partner_id := r.partner_id;
        v_company_id := r.company_id;
        v_payload := jsonb_build_object('application_id', p_application_id, 'call_id', r.call_id,
                                        'company_id', r.company_id, 'content_sha256', r.precheck_content_sha256,
                                        'estimate', coalesce(r.precheck_estimate, 'null'::jsonb));
    END IF;

    -- The key belongs to the partner or company acting (p_idem_owner, shared.routing.idempotency_owner),
    -- not to the API client (p_principal, which the audit record names).
    IF p_idem_key IS NOT NULL THEN
        INSERT INTO desk.idempotency_keys AS k (principal, key, method, path, request_hash, status_code, render_ref,
                                               expires_at)
        VALUES (p_idem_owner, p_idem_key, 'POST', p_idem_path, p_idem_hash, 201,
                'application-receipt:' || p_application_id, p_idem_expires)
        ON CONFLICT (principal, key) DO UPDATE
            SET method = 'POST', path = EXCLUDED.path, request_hash = EXCLUDED.request_hash, status_code = 201,
                response_body = NULL, response_headers = NULL, render_ref = EXCLUDED.render_ref,
                created_at = now(), expires_at = EXCLUDED.expires_at
            WHERE k.expires_at <= now();
        IF NOT FOUND THEN
            SELECT k.request_hash INTO v_old_hash FROM desk.idempotency_keys k
             WHERE k.principal = p_idem_owner AND k.key = p_idem_key;
            outcome := CASE WHEN v_old_hash IS DISTINCT FROM p_idem_hash THEN 'idempotency_mismatch' ELSE 'replay' END;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    IF NOT p_prechecked THEN
        SELECT a.status, a.version INTO v_status, v_version FROM intake.applications a
         WHERE a.id = p_application_id FOR UPDATE;
        IF v_status IS DISTINCT FROM 'draft' THEN
            RAISE EXCEPTION 'application % is %', p_application_id, coalesce(v_status, 'missing')
                USING ERRCODE = 'DK001';
        END IF;
        -- The content checked and hashed is the content committed: an edit in between refuses the submit.
        IF v_version <> p_version THEN
            RAISE EXCEPTION 'application % changed while being submitted', p_application_id USING ERRCODE = 'DK002';
        END IF;
    END IF;

    -- From here to the commit the call's counter is locked: keep it short (one locking read, three writes).
    SELECT c.last_protocol + 1, c.last_chain_hash, clock_timestamp() INTO v_n, v_prev, v_at
      FROM intake.call_counters c WHERE c.call_id = v_call_id FOR NO KEY UPDATE;
    v_at_text := to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    -- The receipt's canonical JSON (sorted keys, no spaces), byte for byte what shared.domain.receipts makes.
    v_json := format('{"application_id":%s,"call_code":%s,"call_id":%s,"call_version":%s,'
                     '"company_vat_number":%s,"content_sha256":%s,"key_id":%s,"protocol_number":%s,'
                     '"submitted_at":%s}',
                     to_json(p_application_id::text), to_json(v_call_code), to_json(v_call_id::text), v_call_version,
                     to_json(v_vat), to_json(v_sha), to_json(p_key_id), v_n, to_json(v_at_text));
    v_hash := encode(sha256(convert_to(v_prev || v_json, 'UTF8')), 'hex');
    UPDATE intake.call_counters c SET last_protocol = v_n, last_chain_hash = v_hash WHERE c.call_id = v_call_id;

    UPDATE intake.applications a
       SET status = 'submitted', protocol_number = v_n, submitted_at = v_at, call_version = v_call_version,
           content_sha256 = v_sha, receipt = v_json::jsonb, chain_hash = v_hash,
           version = a.version + 1, updated_at = v_at
     WHERE a.id = p_application_id;

    -- The event and the audit record, in one statement.
    WITH event AS (
        INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id,
                                 partner_id, company_id, payload)
        VALUES (p_event_id, 'application.submitted', 1, p_service, 'application', p_application_id::text,
                v_partner_id, v_company_id,
                v_payload || jsonb_build_object('protocol_number', v_n, 'submitted_at', v_at_text))
    )
    INSERT INTO desk.audit_log (service, request_id, principal_kind, principal_client_id, action, resource_type,
                                resource_id, before, after)
    VALUES (p_service, p_request_id, p_principal_kind, p_principal, 'application.submitted', 'application',
            p_application_id::text, jsonb_build_object('status', 'draft'),
            jsonb_build_object('status', 'submitted', 'protocol_number', v_n, 'content_sha256', v_sha,
                               'chain_hash', v_hash));

    outcome := 'submitted';
    protocol_number := v_n;
    submitted_at := v_at;
    receipt_json := v_json;
    previous_hash := v_prev;
    chain_hash := v_hash;
    call_id := v_call_id;
    RETURN NEXT;
END $$
"""

_OWNER = """
CASE WHEN c.kind = 'partner' AND c.partner_id IS NOT NULL THEN 'partner:' || c.partner_id
     WHEN c.kind = 'company' AND c.company_id IS NOT NULL THEN 'company:' || c.company_id
     ELSE 'client:' || k.principal END
"""

RENAME_TO_OWNERS = f"""
WITH mapped AS (
    SELECT k.principal AS old, k.key, {_OWNER} AS owner,
           row_number() OVER (PARTITION BY {_OWNER}, k.key ORDER BY k.created_at, k.principal) AS rank
      FROM desk.idempotency_keys k LEFT JOIN desk.api_clients c ON c.client_id = k.principal
)
UPDATE desk.idempotency_keys k
   SET principal = CASE WHEN m.rank = 1 THEN m.owner ELSE 'client:' || m.old END
  FROM mapped m
 WHERE k.principal = m.old AND k.key = m.key
"""


def _m0007():  # type: ignore[no-untyped-def]
    spec = spec_from_file_location("m0007", Path(__file__).with_name("20261128_0007_prechecked_submit.py"))
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.alter_column(
        "idempotency_keys",
        "principal",
        type_=sa.String(length=80),
        existing_type=sa.String(length=64),
        existing_nullable=False,
        schema="desk",
    )
    op.execute(RENAME_TO_OWNERS)
    op.execute("DROP FUNCTION intake.commit_submission")
    op.execute(COMMIT)


def downgrade() -> None:
    op.execute("DROP FUNCTION intake.commit_submission")
    op.execute(_m0007().COMMIT)
    # Owners cannot be told back into one client: their records go (a retry then executes once more).
    op.execute(
        "DELETE FROM desk.idempotency_keys WHERE principal LIKE 'partner:%' OR principal LIKE 'company:%'"
        " OR principal LIKE 'client:%'"
    )
    op.alter_column(
        "idempotency_keys",
        "principal",
        type_=sa.String(length=64),
        existing_type=sa.String(length=80),
        existing_nullable=False,
        schema="desk",
    )
