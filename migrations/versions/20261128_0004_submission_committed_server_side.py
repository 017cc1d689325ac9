"""Submissions committed in one server-side statement, so the call's counter is locked only inside PostgreSQL.

A gap-free protocol number needs the call's counter row locked until commit. Held across client
round trips, that lock serialises every submit of the call behind network and event-loop delays.
`intake.commit_submission` does the whole state change in one statement (idempotency record,
draft check, number, hash-chain link, application row, outbox event, audit record); run in
autocommit, the lock lasts for the function's execution and the commit's WAL flush only.
Validation stays in Python, before the call; only the commit of an already-checked submission is here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = r"""
CREATE FUNCTION intake.commit_submission(
    p_application_id uuid, p_call_id uuid, p_call_code text, p_call_version integer, p_company_vat text,
    p_content_sha256 text, p_key_id text,
    p_principal text, p_principal_kind text, p_request_id text, p_service text,
    p_idem_key text, p_idem_hash bytea, p_idem_path text, p_idem_expires timestamptz,
    p_event_id uuid, p_event_payload jsonb, p_partner_id uuid, p_company_id uuid
) RETURNS TABLE (outcome text, protocol_number bigint, submitted_at timestamptz, receipt_json text,
                 previous_hash text, chain_hash text)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_n bigint;
    v_at timestamptz;
    v_at_text text;
    v_prev text;
    v_json text;
    v_hash text;
    v_old_hash bytea;
BEGIN
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
            SELECT request_hash INTO v_old_hash FROM desk.idempotency_keys
             WHERE principal = p_principal AND key = p_idem_key;
            IF v_old_hash IS DISTINCT FROM p_idem_hash THEN
                RETURN QUERY SELECT 'idempotency_mismatch'::text, NULL::bigint, NULL::timestamptz, NULL::text,
                                    NULL::text, NULL::text;
            ELSE
                RETURN QUERY SELECT 'replay'::text, NULL::bigint, NULL::timestamptz, NULL::text, NULL::text,
                                    NULL::text;
            END IF;
            RETURN;
        END IF;
    END IF;

    SELECT a.status INTO v_status FROM intake.applications a WHERE a.id = p_application_id FOR UPDATE;
    IF v_status IS DISTINCT FROM 'draft' THEN
        RAISE EXCEPTION 'application % is %', p_application_id, coalesce(v_status, 'missing')
            USING ERRCODE = 'DK001';
    END IF;

    -- From here to the commit the call's counter is locked: keep it short (one locking read, one update).
    SELECT c.last_protocol + 1, c.last_chain_hash, clock_timestamp() INTO v_n, v_prev, v_at
      FROM intake.call_counters c WHERE c.call_id = p_call_id FOR NO KEY UPDATE;
    v_at_text := to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    -- The receipt's canonical JSON (sorted keys, no spaces), byte for byte what shared.domain.receipts makes.
    v_json := format('{"application_id":%s,"call_code":%s,"call_id":%s,"call_version":%s,'
                     '"company_vat_number":%s,"content_sha256":%s,"key_id":%s,"protocol_number":%s,'
                     '"submitted_at":%s}',
                     to_json(p_application_id::text), to_json(p_call_code), to_json(p_call_id::text), p_call_version,
                     to_json(p_company_vat), to_json(p_content_sha256), to_json(p_key_id), v_n, to_json(v_at_text));
    v_hash := encode(sha256(convert_to(v_prev || v_json, 'UTF8')), 'hex');
    UPDATE intake.call_counters c SET last_protocol = v_n, last_chain_hash = v_hash WHERE c.call_id = p_call_id;

    UPDATE intake.applications a
       SET status = 'submitted', protocol_number = v_n, submitted_at = v_at, call_version = p_call_version,
           content_sha256 = p_content_sha256, receipt = v_json::jsonb, chain_hash = v_hash,
           version = a.version + 1, updated_at = v_at
     WHERE a.id = p_application_id;

    INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id, partner_id,
                             company_id, payload)
    VALUES (p_event_id, 'application.submitted', 1, p_service, 'application', p_application_id::text, p_partner_id,
            p_company_id, p_event_payload || jsonb_build_object('protocol_number', v_n, 'submitted_at', v_at_text));

    INSERT INTO desk.audit_log (service, request_id, principal_kind, principal_client_id, action, resource_type,
                                resource_id, before, after)
    VALUES (p_service, p_request_id, p_principal_kind, p_principal, 'application.submitted', 'application',
            p_application_id::text, jsonb_build_object('status', 'draft'),
            jsonb_build_object('status', 'submitted', 'protocol_number', v_n, 'content_sha256', p_content_sha256,
                               'chain_hash', v_hash));

    RETURN QUERY SELECT 'submitted'::text, v_n, v_at, v_json, v_prev, v_hash;
END $$
"""


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("render_ref", sa.Text(), nullable=True), schema="desk")
    # Ed25519 signatures are deterministic: a receipt's signature is recomputed when read, not stored.
    op.drop_column("applications", "receipt_signature", schema="intake")
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION intake.commit_submission")
    op.drop_column("idempotency_keys", "render_ref", schema="desk")
    op.add_column("applications", sa.Column("receipt_signature", sa.Text(), nullable=True), schema="intake")
