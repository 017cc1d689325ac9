-- The click-day group commit: `intake.commit_submission_group`, the submits that arrive together committed by
-- one statement. This file is the function's one source (see commit_submission.sql for the convention: a
-- change is a diff here plus a migration whose upgrade is `sql_files.execute("commit_submission_group")`).
--
-- It does for a group what `intake.commit_submission` does for each of its submits, in the group's order, with
-- the same outcomes, writes, receipts and errors: the arguments are that function's, each an array with one
-- element per submit (element i of every array is submit i). What differs is how: the function ran each of
-- its statements once per submit, and under a burst PostgreSQL spent most of a submit in starting and ending
-- those statements' executors, not in their work. Here each step is one statement for the whole group (the
-- drafts' locks and verdicts, the idempotency records, the full-path drafts' locks, the counters, the
-- applications' update, the events and audit records), and only the number's own work (receipt, chain link)
-- runs per submit, as expressions, from the counter's read to the commit.
--
-- Returns one row per submit, `ord` its position (1-based), with commit_submission's columns.
-- A group that cannot be committed as such raises, and the caller commits its submits one by one with
-- `intake.commit_submission`, which gives each its own answer: a submit refused (DK001, DK002), an
-- application named twice (DK003), an idempotency key used twice in the group (PostgreSQL's 21000), a call
-- without its counter (DK004).
CREATE OR REPLACE FUNCTION intake.commit_submission_group(
    p_application_id uuid[], p_prechecked boolean[], p_reach text[], p_reach_id uuid[],
    p_version integer[], p_call_id uuid[], p_call_code text[], p_call_version integer[], p_company_vat text[],
    p_content_sha256 text[], p_event_payload text[], p_partner_id uuid[], p_company_id uuid[],
    p_key_id text[], p_principal text[], p_principal_kind text[], p_request_id text[], p_service text[],
    p_idem_owner text[], p_idem_key text[], p_idem_hash bytea[], p_idem_path text[], p_idem_expires timestamptz[],
    p_event_id uuid[]
) RETURNS TABLE (ord integer, outcome text, protocol_number bigint, submitted_at timestamptz, receipt_json text,
                 previous_hash text, chain_hash text, call_id uuid)
LANGUAGE plpgsql
-- Its statements are planned once per connection, for tables that grow through the burst from what their
-- statistics last said (a new desk's tables are analysed nearly empty): a plan that scans one of them would be
-- kept. Every lookup here is by a key of an index, for a few dozen submits: index scans and nested loops only.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    n integer := cardinality(p_application_id);
    v_now timestamptz := clock_timestamp();
    r record;
    i integer;
    j integer;
    v_outcome text[] := array_fill(NULL::text, ARRAY[n]);
    v_call uuid[] := p_call_id;
    v_code text[] := p_call_code;
    v_cver integer[] := p_call_version;
    v_vat text[] := p_company_vat;
    v_sha text[] := p_content_sha256;
    v_partner uuid[] := p_partner_id;
    v_company uuid[] := p_company_id;
    v_payload jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    v_owners text[];
    v_keys text[];
    v_keyed integer := 0;
    v_full integer := 0;
    v_counted integer := 0;
    v_cc_id uuid[];
    v_cc_n bigint[];
    v_cc_hash text[];
    o_n bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    o_at timestamptz[] := array_fill(NULL::timestamptz, ARRAY[n]);
    o_json text[] := array_fill(NULL::text, ARRAY[n]);
    o_prev text[] := array_fill(NULL::text, ARRAY[n]);
    o_hash text[] := array_fill(NULL::text, ARRAY[n]);
    a desk.audit_log;
    v_audit desk.audit_log[] := array_fill(NULL::desk.audit_log, ARRAY[n]);
    v_aseq bigint;
    v_ahash text;
BEGIN
    -- As commit_submission: the commit does not wait for the WAL flush, the service does before answering.
    PERFORM set_config('synchronous_commit', 'off', true);

    -- One draft, one submit: the second of two submits of an application must see the first's commit.
    IF (SELECT count(DISTINCT x) FROM unnest(p_application_id) x) <> n THEN
        RAISE EXCEPTION 'a submit group names an application twice' USING ERRCODE = 'DK003';
    END IF;

    -- The pre-checked submits: each draft with its current verdict, within its caller's reach, in its call's
    -- window, locked (commit_submission's first query, for all of them at once); the others are not_prechecked.
    FOR r IN
        SELECT g.i, a.call_id, a.company_id, a.partner_id, c.code, c.current_version, co.vat_number,
               a.precheck_content_sha256, a.precheck_estimate
          FROM unnest(p_application_id, p_reach, p_reach_id, p_prechecked) WITH ORDINALITY AS g (id, reach, reach_id,
                                                                                                prechecked, i)
          JOIN intake.applications a ON a.id = g.id
          JOIN intake.calls c ON c.id = a.call_id
          JOIN intake.companies co ON co.id = a.company_id
          JOIN intake.call_versions cv ON cv.call_id = a.call_id AND cv.version = c.current_version
         WHERE g.prechecked AND a.status = 'draft'
           AND a.precheck_version = a.version AND a.precheck_company_version = co.version
           AND a.precheck_call_version = c.current_version AND a.precheck_valid_until > v_now
           AND coalesce(c.demo_opens_at, c.opens_at) <= v_now AND v_now < coalesce(c.demo_closes_at, c.closes_at)
           AND (a.stamp_duty_id IS NOT NULL
                OR NOT coalesce((cv.rules #>> '{formalities,stamp_duty_required}')::boolean, false))
           AND CASE g.reach
                   WHEN 'all' THEN true
                   WHEN 'company' THEN a.company_id = g.reach_id
                   ELSE EXISTS (SELECT 1 FROM intake.delegations d WHERE d.company_id = a.company_id
                                    AND d.partner_id = g.reach_id AND d.status = 'active')
               END
           FOR UPDATE OF a
    LOOP
        i := r.i;
        v_call[i] := r.call_id;
        v_code[i] := r.code;
        v_cver[i] := r.current_version;
        v_vat[i] := r.vat_number;
        v_sha[i] := r.precheck_content_sha256;
        v_partner[i] := r.partner_id;
        v_company[i] := r.company_id;
        v_payload[i] := jsonb_build_object('application_id', p_application_id[i], 'call_id', r.call_id,
                                           'company_id', r.company_id, 'content_sha256', r.precheck_content_sha256,
                                           'estimate', coalesce(r.precheck_estimate, 'null'::jsonb));
    END LOOP;
    FOR i IN 1 .. n LOOP
        IF p_prechecked[i] THEN
            IF v_payload[i] IS NULL THEN
                v_outcome[i] := 'not_prechecked';
                CONTINUE;
            END IF;
        ELSE
            v_payload[i] := p_event_payload[i]::jsonb;
        END IF;
        IF p_idem_key[i] IS NOT NULL THEN
            v_keyed := v_keyed + 1;
        END IF;
    END LOOP;

    -- The idempotency records of the submits still in (commit_submission's second step), in one insert; a key
    -- taken and not expired makes its submit a replay or a mismatch, with no further effect.
    IF v_keyed > 0 THEN
        WITH written AS (
            INSERT INTO desk.idempotency_keys AS k (principal, key, method, path, request_hash, status_code, render_ref,
                                                   expires_at)
            SELECT p_idem_owner[g.i], p_idem_key[g.i], 'POST', p_idem_path[g.i], p_idem_hash[g.i], 201,
                   'application-receipt:' || p_application_id[g.i], p_idem_expires[g.i]
              FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
             WHERE v_outcome[g.i] IS NULL AND p_idem_key[g.i] IS NOT NULL
             ORDER BY g.i
            ON CONFLICT (principal, key) DO UPDATE
                SET method = 'POST', path = EXCLUDED.path, request_hash = EXCLUDED.request_hash, status_code = 201,
                    response_body = NULL, response_headers = NULL, render_ref = EXCLUDED.render_ref,
                    created_at = now(), expires_at = EXCLUDED.expires_at
                WHERE k.expires_at <= now()
            RETURNING k.principal, k.key
        )
        SELECT array_agg(w.principal), array_agg(w.key) INTO v_owners, v_keys FROM written w;
    END IF;
    IF coalesce(cardinality(v_owners), 0) < v_keyed THEN
        FOR r IN
            SELECT g.i, k.request_hash
              FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
              JOIN desk.idempotency_keys k ON k.principal = p_idem_owner[g.i] AND k.key = p_idem_key[g.i]
             WHERE v_outcome[g.i] IS NULL AND p_idem_key[g.i] IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM unnest(v_owners, v_keys) AS w (owner, key)
                                WHERE w.owner = p_idem_owner[g.i] AND w.key = p_idem_key[g.i])
        LOOP
            v_outcome[r.i] := CASE WHEN r.request_hash IS DISTINCT FROM p_idem_hash[r.i]
                                   THEN 'idempotency_mismatch' ELSE 'replay' END;
        END LOOP;
    END IF;

    -- The full-path submits: each draft locked, still a draft, at the version that was checked.
    FOR i IN 1 .. n LOOP
        IF NOT p_prechecked[i] AND v_outcome[i] IS NULL THEN
            v_full := v_full + 1;
        END IF;
    END LOOP;
    IF v_full > 0 THEN
        FOR r IN
            SELECT g.i, a.status, a.version
              FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
              JOIN intake.applications a ON a.id = g.id
             WHERE NOT p_prechecked[g.i] AND v_outcome[g.i] IS NULL
               FOR UPDATE OF a
        LOOP
            v_counted := v_counted + 1;
            IF r.status IS DISTINCT FROM 'draft' THEN
                RAISE EXCEPTION 'application % is %', p_application_id[r.i], r.status USING ERRCODE = 'DK001';
            END IF;
            IF r.version <> p_version[r.i] THEN
                RAISE EXCEPTION 'application % changed while being submitted', p_application_id[r.i]
                    USING ERRCODE = 'DK002';
            END IF;
        END LOOP;
        IF v_counted <> v_full THEN
            RAISE EXCEPTION 'an application of the group is missing' USING ERRCODE = 'DK001';
        END IF;
    END IF;

    -- From here to the commit the calls' counters are locked (in the order of their ids: two groups of two
    -- calls lock them in one order), and only the numbers' own work runs.
    SELECT array_agg(c.call_id ORDER BY c.call_id), array_agg(c.last_protocol ORDER BY c.call_id),
           array_agg(c.last_chain_hash ORDER BY c.call_id)
      INTO v_cc_id, v_cc_n, v_cc_hash
      FROM (SELECT c.call_id, c.last_protocol, c.last_chain_hash FROM intake.call_counters c
             WHERE c.call_id IN (SELECT v_call[g.i] FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
                                  WHERE v_outcome[g.i] IS NULL)
             ORDER BY c.call_id FOR NO KEY UPDATE) c;
    FOR i IN 1 .. n LOOP
        CONTINUE WHEN v_outcome[i] IS NOT NULL;
        j := array_position(v_cc_id, v_call[i]);
        IF j IS NULL THEN
            RAISE EXCEPTION 'call % has no counter', v_call[i] USING ERRCODE = 'DK004';
        END IF;
        o_n[i] := v_cc_n[j] + 1;
        o_prev[i] := v_cc_hash[j];
        o_at[i] := clock_timestamp();
        o_json[i] := intake.submission_receipt(p_application_id[i], v_code[i], v_call[i], v_cver[i], v_vat[i],
                                               v_sha[i], p_key_id[i], o_n[i], o_at[i]);
        o_hash[i] := intake.receipt_chain_link(o_prev[i], o_json[i]);
        v_cc_n[j] := o_n[i];
        v_cc_hash[j] := o_hash[i];
        v_outcome[i] := 'submitted';
    END LOOP;

    IF 'submitted' = ANY(v_outcome) THEN
        UPDATE intake.call_counters c SET last_protocol = u.n, last_chain_hash = u.hash
          FROM unnest(v_cc_id, v_cc_n, v_cc_hash) AS u (id, n, hash)
         WHERE c.call_id = u.id AND c.last_protocol <> u.n;

        UPDATE intake.applications a
           SET status = 'submitted', protocol_number = o_n[u.i], submitted_at = o_at[u.i],
               call_version = v_cver[u.i], content_sha256 = v_sha[u.i], receipt = o_json[u.i]::jsonb,
               chain_hash = o_hash[u.i], version = a.version + 1, updated_at = o_at[u.i]
          FROM unnest(p_application_id) WITH ORDINALITY AS u (id, i)
         WHERE a.id = u.id AND v_outcome[u.i] = 'submitted';

        -- The audit records, linked as they are written: the chain's head is locked from here to the commit
        -- (as desk.audit_link locks it from the commit's start: nothing else is locked after it, and the records
        -- join the chain in commit order), each record takes the next seq and its hash in arrival order, and
        -- the head moves on. Written already linked, a record is not updated at commit (desk.audit_link passes
        -- over it): one tuple and three index entries per record instead of two and six.
        SELECT c.last_seq, c.last_hash INTO v_aseq, v_ahash FROM desk.audit_chains c
         WHERE c.service = p_service[1] FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            INSERT INTO desk.audit_chains (service, last_seq, last_hash) VALUES (p_service[1], 0, repeat('0', 64))
            ON CONFLICT (service) DO NOTHING;
            SELECT c.last_seq, c.last_hash INTO v_aseq, v_ahash FROM desk.audit_chains c
             WHERE c.service = p_service[1] FOR NO KEY UPDATE;
        END IF;
        FOR i IN 1 .. n LOOP
            CONTINUE WHEN v_outcome[i] IS DISTINCT FROM 'submitted';
            IF p_service[i] IS DISTINCT FROM p_service[1] THEN
                RAISE EXCEPTION 'a submit group names two services' USING ERRCODE = 'DK005';
            END IF;
            v_aseq := v_aseq + 1;
            a := ROW(nextval('desk.audit_log_id_seq'), now(), p_service[i], p_request_id[i], p_principal_kind[i],
                     p_principal[i], 'application.submitted', 'application', p_application_id[i]::text,
                     jsonb_build_object('status', 'draft'),
                     jsonb_build_object('status', 'submitted', 'protocol_number', o_n[i],
                                        'content_sha256', v_sha[i], 'chain_hash', o_hash[i]),
                     v_aseq, v_ahash, NULL);
            a.hash := encode(sha256(convert_to(desk.audit_canonical(a), 'UTF8')), 'hex');
            v_audit[i] := a;
            v_ahash := a.hash;
        END LOOP;
        UPDATE desk.audit_chains c SET last_seq = v_aseq, last_hash = v_ahash WHERE c.service = p_service[1];

        -- The events and the audit records, in arrival order (their ids follow it, and so the audit chain).
        WITH event AS (
            INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id,
                                     ordering_key, partner_id, company_id, payload)
            SELECT p_event_id[g.i], 'application.submitted', 1, p_service[g.i], 'application',
                   p_application_id[g.i]::text, p_application_id[g.i]::text, v_partner[g.i], v_company[g.i],
                   v_payload[g.i] || jsonb_build_object('protocol_number', o_n[g.i],
                                                        'submitted_at', intake.receipt_instant(o_at[g.i]))
              FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
             WHERE v_outcome[g.i] = 'submitted'
             ORDER BY g.i
        )
        INSERT INTO desk.audit_log OVERRIDING SYSTEM VALUE
        SELECT (v_audit[g.i]).*
          FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
         WHERE v_outcome[g.i] = 'submitted'
         ORDER BY g.i;
    END IF;

    RETURN QUERY
        SELECT g.i::integer, v_outcome[g.i], o_n[g.i], o_at[g.i], o_json[g.i], o_prev[g.i], o_hash[g.i],
               CASE WHEN v_outcome[g.i] = 'submitted' THEN v_call[g.i] END
          FROM unnest(p_application_id) WITH ORDINALITY AS g (id, i)
         ORDER BY g.i;
END $$;
