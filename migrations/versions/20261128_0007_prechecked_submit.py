"""Pre-checked drafts: the click-day submit commits in one round trip.

A draft's pre-check (the call's rules applied to the draft and its company) used to run inside every
submit, after a query that loaded the draft, its lines and its company. It now also runs whenever a
draft is saved or checked, and by `desk precheck` before a window opens; a passing verdict is kept on
the application with what it was computed for (draft, company and call versions) and until when it
holds. `intake.commit_submission(p_prechecked => true)` commits a draft whose verdict is still current
in a single statement, applying the caller's reach and the window itself; any other draft (no verdict, a
stale one, a closed window, out of reach, no longer a draft) is reported as `not_prechecked` without side
effects, and the service runs the full path: it loads and checks the draft, then calls the same function
with what it computed.

On the full path the function now takes the draft version that was checked and refuses the commit
(SQLSTATE DK002) if the draft changed in between, so the content hashed is the content committed. Both
paths commit without waiting for the WAL flush (the call's counter row, locked until commit, was held
across every flush and serialised them); the service waits for durability before it answers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMIT = r"""
CREATE FUNCTION intake.commit_submission(
    p_application_id uuid, p_prechecked boolean, p_reach text, p_reach_id uuid,
    p_version integer, p_call_id uuid, p_call_code text, p_call_version integer, p_company_vat text,
    p_content_sha256 text, p_event_payload jsonb, p_partner_id uuid, p_company_id uuid,
    p_key_id text, p_principal text, p_principal_kind text, p_request_id text, p_service text,
    p_idem_key text, p_idem_hash bytea, p_idem_path text, p_idem_expires timestamptz, p_event_id uuid
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

    IF p_idem_key IS NOT NULL THEN
        INSERT INTO desk.idempotency_keys AS k (principal, key, method, path, request_hash, status_code, render_ref,
                                               expires_at)
        VALUES (p_principal, p_idem_key, 'POST', p_idem_path, p_idem_hash, 201,
                'application-receipt:' || p_application_id, p_idem_expires)
        ON CONFLICT (principal, key) DO UPDATE
            SET method = 'POST', path = EXCLUDED.path, request_hash = EXCLUDED.request_hash, status_code = 201,
                response_body = NULL, response_headers = NULL, render_ref = EXCLUDED.render_ref,
                created_at = now(), expires_at = EXCLUDED.expires_at
            WHERE k.expires_at <= now();
        IF NOT FOUND THEN
            SELECT k.request_hash INTO v_old_hash FROM desk.idempotency_keys k
             WHERE k.principal = p_principal AND k.key = p_idem_key;
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

_COLUMNS = (
    ("precheck_version", sa.Integer()),
    ("precheck_company_version", sa.Integer()),
    ("precheck_call_version", sa.Integer()),
    ("precheck_valid_until", sa.DateTime(timezone=True)),
    ("precheck_content_sha256", sa.String(length=64)),
    ("precheck_estimate", postgresql.JSONB(astext_type=sa.Text())),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("applications", sa.Column(name, type_, nullable=True), schema="intake")
    op.execute("DROP FUNCTION intake.commit_submission")
    op.execute(COMMIT)


def downgrade() -> None:
    op.execute("DROP FUNCTION intake.commit_submission")
    spec = spec_from_file_location(
        "m0004", Path(__file__).with_name("20261128_0004_submission_committed_server_side.py")
    )
    assert spec is not None and spec.loader is not None
    m0004 = module_from_spec(spec)
    spec.loader.exec_module(m0004)
    op.execute(m0004.FUNCTION)
    for name, _type in reversed(_COLUMNS):
        op.drop_column("applications", name, schema="intake")
