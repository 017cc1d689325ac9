-- The click-day submit's commit: `intake.commit_submission` and the two helpers it shares with anyone who
-- must reproduce a receipt in SQL. This file is the function's one source. A change is a diff here plus a
-- migration whose upgrade is `sql_files.execute("commit_submission")`: every statement is CREATE OR
-- REPLACE, so the file can be applied again at any time (a change of a parameter list or of the returned
-- columns needs a DROP FUNCTION in that migration first). Migrations up to 0011 keep their own copies:
-- they are history, and their downgrades need them.
--
-- Twins: `intake.submission_receipt` writes byte for byte what `shared.domain.receipts.canonical_json` writes
-- for the receipt, `intake.receipt_chain_link` is `shared.domain.receipts.chain_link`; the pre-checked
-- mode's event payload is the one `services.intake.applications.service` builds on the full path.
-- tests/services/intake/test_submit_twins.py checks them against each other on random content.

-- An instant as the receipts write it: UTC, microseconds, `Z` (shared.domain.receipts._normalise).
CREATE OR REPLACE FUNCTION intake.receipt_instant(instant timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(instant AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The receipt's canonical JSON: sorted keys, no spaces, strings escaped as JSON (to_json), UTF-8 kept as is.
CREATE OR REPLACE FUNCTION intake.submission_receipt(
    application_id uuid, call_code text, call_id uuid, call_version integer, company_vat_number text,
    content_sha256 text, key_id text, protocol_number bigint, submitted_at timestamptz
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT format('{"application_id":%s,"call_code":%s,"call_id":%s,"call_version":%s,'
                  '"company_vat_number":%s,"content_sha256":%s,"key_id":%s,"protocol_number":%s,'
                  '"submitted_at":%s}',
                  to_json(application_id::text), to_json(call_code), to_json(call_id::text), call_version,
                  to_json(company_vat_number), to_json(content_sha256), to_json(key_id), protocol_number,
                  to_json(intake.receipt_instant(submitted_at)))
$$;

-- The receipt chained to the previous receipt's hash of its call (64 zeros for the first).
CREATE OR REPLACE FUNCTION intake.receipt_chain_link(previous_hash text, receipt_json text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(previous_hash || receipt_json, 'UTF8')), 'hex')
$$;

-- One submit, in one statement. Called with named arguments (services.intake.applications.service.CommitArgs).
--
-- p_prechecked: the draft's kept pre-check verdict is used if still current (the caller's reach and the
-- call's window applied here); otherwise `not_prechecked` and no side effect, and the service runs the full
-- path, which passes what it checked (p_version .. p_company_id) with p_prechecked false.
-- Returns one row: `submitted`, `replay`, `idempotency_mismatch` or `not_prechecked`; refuses with
-- SQLSTATE DK001 (not a draft) or DK002 (the draft changed since it was checked).
--
-- Order: everything that does not depend on the protocol number is done before the call's counter row is
-- locked (the draft's lock and verdict, the idempotency record, the event's payload); from the counter's
-- read to the commit only the number's own work runs: the receipt, its chain link, and the three writes
-- that carry the number (counter, application, event with its audit record).
CREATE OR REPLACE FUNCTION intake.commit_submission(
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
        -- The draft with its current verdict, within the caller's reach (as shared.access), in its call's
        -- window (as calls.service.effective_window), locked; or nothing, and no side effect. Here and not
        -- in the service because the click-day submit is one round trip.
        SELECT a.call_id, a.company_id, a.partner_id, c.code, c.current_version, co.vat_number,
               a.precheck_content_sha256, a.precheck_estimate
          INTO r
          FROM intake.applications a
          JOIN intake.calls c ON c.id = a.call_id
          JOIN intake.companies co ON co.id = a.company_id
          JOIN intake.call_versions cv ON cv.call_id = a.call_id AND cv.version = c.current_version
         WHERE a.id = p_application_id AND a.status = 'draft'
           AND a.precheck_version = a.version AND a.precheck_company_version = co.version
           AND a.precheck_call_version = c.current_version AND a.precheck_valid_until > v_now
           AND coalesce(c.demo_opens_at, c.opens_at) <= v_now AND v_now < coalesce(c.demo_closes_at, c.closes_at)
           -- the stamp duty the call requires (shared.domain.formalities): the verdict counted it, this keeps a
           -- verdict kept before the requirement existed from committing without it
           AND (a.stamp_duty_id IS NOT NULL
                OR NOT coalesce((cv.rules #>> '{formalities,stamp_duty_required}')::boolean, false))
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
        -- The full path's payload (service._submit_checking), from the kept verdict.
        v_payload := jsonb_build_object('application_id', p_application_id, 'call_id', r.call_id,
                                        'company_id', r.company_id, 'content_sha256', r.precheck_content_sha256,
                                        'estimate', coalesce(r.precheck_estimate, 'null'::jsonb));
    END IF;

    -- The key belongs to the partner or company acting (p_idem_owner, shared.routing.idempotency_owner),
    -- not to the API client (p_principal, which the audit record names). Written here, in the submit's own
    -- statement, so that a retry finds either the committed submission or nothing.
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

    -- From here to the commit the call's counter is locked: only the number's own work (one locking read,
    -- the receipt and its link, three writes).
    SELECT c.last_protocol + 1, c.last_chain_hash, clock_timestamp() INTO v_n, v_prev, v_at
      FROM intake.call_counters c WHERE c.call_id = v_call_id FOR NO KEY UPDATE;
    v_at_text := intake.receipt_instant(v_at);
    v_json := intake.submission_receipt(p_application_id, v_call_code, v_call_id, v_call_version, v_vat, v_sha,
                                        p_key_id, v_n, v_at);
    v_hash := intake.receipt_chain_link(v_prev, v_json);
    UPDATE intake.call_counters c SET last_protocol = v_n, last_chain_hash = v_hash WHERE c.call_id = v_call_id;

    UPDATE intake.applications a
       SET status = 'submitted', protocol_number = v_n, submitted_at = v_at, call_version = v_call_version,
           content_sha256 = v_sha, receipt = v_json::jsonb, chain_hash = v_hash,
           version = a.version + 1, updated_at = v_at
     WHERE a.id = p_application_id;

    -- The event and the audit record, in one statement: both carry the number.
    WITH event AS (
        INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id,
                                 ordering_key, partner_id, company_id, payload)
        VALUES (p_event_id, 'application.submitted', 1, p_service, 'application', p_application_id::text,
                p_application_id::text, v_partner_id, v_company_id,
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
END $$;
