"""The audit trail through HTTP: every writer's records are hash-chained per service, readable by officers
and auditors, exported and verified; a row altered or deleted directly in SQL (its triggers disabled, as a
DBA could) makes the verification fail at exactly that record, online and offline alike.

Records are linked into their chain when their transaction commits. The rolled-back tests stand in for the
commit with `SET CONSTRAINTS desk.audit_log_link IMMEDIATE`, which runs the same trigger at that point (and
after each later statement); the click-day test really commits."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from desk.cli import app as cli
from shared.audit_chain import GENESIS, Failure, canonical, main, parse_record, record_hash, verify_export
from shared.db import plain_url
from shared.settings import REPO_ROOT
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, draft_body
from tests.services.intake import test_applications as intake_tests
from tests.services.intake.test_submit_concurrency import _committed_world

World = intake_tests.World
world = intake_tests.world  # the same seeded world (a call, a partner delegated by a company) as intake's tests

LINK_NOW = text("SET CONSTRAINTS desk.audit_log_link IMMEDIATE")


async def history(client, w: World, session) -> tuple[str, list[dict[str, Any]]]:
    """A draft created, edited, given its stamp duty and submitted (the submit's record is written by
    intake.commit_submission, the others by record_audit); committed as far as the chain is concerned."""
    r = await client.post("/v1/applications", json=draft_body(w.call.id, w.company.id), headers=w.headers)
    app = r.json()
    doc = {k: v for k, v in draft_body(w.call.id, w.company.id).items() if k not in ("call_id", "company_id")}
    doc["title"] = "Nuovi mercati, seconda stesura"
    r = await client.put(f"/v1/applications/{app['id']}", json=doc, headers={**w.headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    await declare_stamp_duty(client, app["id"], w.headers)
    assert (await client.post(f"/v1/applications/{app['id']}/submit", headers=w.headers)).status_code == 201
    await session.execute(LINK_NOW)
    rows = (
        (
            await session.execute(
                text("SELECT id, seq, prev_hash, hash, action FROM desk.audit_log WHERE resource_id = :a ORDER BY id"),
                {"a": app["id"]},
            )
        )
        .mappings()
        .all()
    )
    return app["id"], [dict(r) for r in rows]


async def export_lines(client, headers: dict[str, str], **params: Any) -> list[str]:
    r = await client.get("/v1/audit/export", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return r.text.splitlines()


async def tamper(session, sql: str, **params: Any) -> None:
    """As a DBA could: with every trigger of the session off (the append-only ones included)."""
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    await session.execute(text(sql), params)
    await session.execute(text("SET LOCAL session_replication_role = origin"))


async def test_a_record_hashes_to_the_documented_canonical_form(client, session, auditor, tmp_path):
    chain = f"t-{uuid.uuid4().hex[:8]}"
    insert = text(
        "INSERT INTO desk.audit_log (at, service, request_id, principal_kind, principal_client_id, action,"
        " resource_type, resource_id, before, after) VALUES (:at, :s, :rid, 'officer', :client, 'a.b', 'r', :res,"
        " CAST(:before AS jsonb), NULL) RETURNING id"
    )
    first = (
        await session.execute(
            insert,
            {
                "at": datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
                "s": chain,
                "rid": None,
                "client": 'cli"x',
                "res": "1\n€",
                "before": '{"bb": 1, "a": [1.50, "x\\ty"], "ccc": {"z": null, "y": true}}',
            },
        )
    ).scalar_one()
    second = (
        await session.execute(
            insert,
            {
                "at": datetime(2026, 12, 2, 10, 0, 1, tzinfo=UTC),
                "s": chain,
                "rid": "req-2",
                "client": "c",
                "res": "2",
                "before": "{}",
            },
        )
    ).scalar_one()
    await session.execute(LINK_NOW)
    rows = (
        await session.execute(
            text("SELECT id, seq, prev_hash, hash FROM desk.audit_log WHERE service = :s ORDER BY seq"), {"s": chain}
        )
    ).all()
    # Worked by hand from the README's canonical form: jsonb orders keys by length, keeps 1.50 as written.
    expected_first = (
        f'["desk-audit/1",1,{first},"{chain}","2026-12-02T09:00:00.123456Z",null,"officer",'
        '"cli\\"x","a.b","r","1\\n€",{"a": [1.50, "x\\ty"], "bb": 1, "ccc": {"y": true, "z": null}},'
        f'null,"{GENESIS}"]'
    )
    hash_first = hashlib.sha256(expected_first.encode()).hexdigest()
    expected_second = (
        f'["desk-audit/1",2,{second},"{chain}","2026-12-02T10:00:01.000000Z","req-2","officer",'
        f'"c","a.b","r","2",{{}},null,"{hash_first}"]'
    )
    assert [tuple(r) for r in rows] == [
        (first, 1, GENESIS, hash_first),
        (second, 2, hash_first, hashlib.sha256(expected_second.encode()).hexdigest()),
    ]
    # the export carries what the verifier needs to rebuild exactly those bytes
    lines = await export_lines(client, auditor, service=chain)
    assert parse_record(lines[0])["head_hash"] == rows[1].hash
    assert [canonical(parse_record(line)) for line in lines[1:]] == [expected_first, expected_second]
    verdict = verify_export(lines)
    assert verdict.ok and verdict.records == 2 and verdict.last_hash == rows[1].hash
    # offline: the verifier file alone, on a bare Python (no site-packages), and `desk audit-verify`
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    alone = tmp_path / "audit_chain.py"
    alone.write_text((REPO_ROOT / "shared" / "audit_chain.py").read_text(encoding="utf-8"), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", str(alone), str(export), stdout=asyncio.subprocess.PIPE, cwd=tmp_path
    )
    stdout, _ = await proc.communicate()
    assert proc.returncode == 0 and stdout.decode().strip() == f"OK 2 records, seq 1..2, last hash {rows[1].hash}"
    out = CliRunner().invoke(cli, ["audit-verify", str(export), "--anchor", "f" * 64])
    assert out.exit_code == 1 and "FAILED at seq 1 (id " in out.output and "prev_hash_mismatch" in out.output


async def test_linking_a_record_inlines_its_canonical_form_and_hashes_the_same_bytes(session):
    """`desk.audit_canonical` is inlined into the linking trigger's cached plan (declared STABLE, as its body
    is; as IMMUTABLE PostgreSQL ran it as a separate function, planned in every transaction): linking calls
    no such function, and the record still hashes to the documented canonical form."""
    chain = f"t-{uuid.uuid4().hex[:8]}"
    await session.execute(text("SET LOCAL track_functions = 'all'"))
    record = (
        await session.execute(
            text(
                "INSERT INTO desk.audit_log (at, service, principal_kind, principal_client_id, action,"
                " resource_type, resource_id, before, after) VALUES (:at, :s, 'partner', 'p', 'a.b', 'r', '1',"
                " NULL, CAST(:after AS jsonb)) RETURNING id"
            ),
            {"at": datetime(2026, 12, 4, 8, 30, tzinfo=UTC), "s": chain, "after": '{"status": "submitted"}'},
        )
    ).scalar_one()
    await session.execute(LINK_NOW)
    calls = dict(
        (
            await session.execute(
                text("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'desk'")
            )
        ).all()
    )
    assert calls.get("audit_link") == 1 and "audit_canonical" not in calls, calls
    stored = (await session.execute(text("SELECT hash FROM desk.audit_log WHERE id = :i"), {"i": record})).scalar_one()
    expected = (
        f'["desk-audit/1",1,{record},"{chain}","2026-12-04T08:30:00.000000Z",null,"partner","p","a.b","r","1",'
        f'null,{{"status": "submitted"}},"{GENESIS}"]'
    )
    assert stored == hashlib.sha256(expected.encode()).hexdigest()


async def test_records_of_the_routes_and_of_the_submit_function_chain_and_verify(client, world, session, auditor):
    app_id, rows = await history(client, world, session)
    assert [r["action"] for r in rows] == [
        "application.created",
        "application.updated",
        "application.stamp_duty_declared",
        "application.submitted",
    ]
    assert [r["seq"] for r in rows] == [rows[0]["seq"] + i for i in range(4)]
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    # the API shows the resource's history with the chain columns
    got = (
        await client.get("/v1/audit", params={"resource_type": "application", "resource_id": app_id}, headers=auditor)
    ).json()
    assert [(i["seq"], i["hash"], i["service"]) for i in got["items"]] == [
        (r["seq"], r["hash"], "intake") for r in rows
    ]
    assert got["items"][3]["after"]["status"] == "submitted" and got["next_cursor"] is None
    # the Python verifier rebuilds the SQL trigger's hash of both writers' records
    lines = await export_lines(client, auditor, service="intake", from_seq=rows[0]["seq"], to_seq=rows[3]["seq"])
    assert [record_hash(parse_record(line)) for line in lines[1:]] == [r["hash"] for r in rows]
    # the whole intake chain verifies, up to its head (the submit's record)
    out = (await client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["ok"] is True and out["failure"] is None
    assert out["head_seq"] == out["to_seq"] == out["records"] == rows[3]["seq"] and out["head_hash"] == rows[3]["hash"]
    # the service's own chain by default
    assert (await client.get("/v1/audit/verify", headers=auditor)).json()["service"] == "intake"


async def test_an_altered_record_fails_verification_at_exactly_that_record(
    client, world, session, auditor, tmp_path, capsys
):
    _, rows = await history(client, world, session)
    mid = rows[1]
    with pytest.raises(Exception, match="append-only"):  # the trigger still refuses it as an application would
        async with session.begin_nested():
            await session.execute(text("UPDATE desk.audit_log SET after = '{}' WHERE id = :i"), {"i": mid["id"]})
    await tamper(
        session,
        "UPDATE desk.audit_log SET after = coalesce(after, '{}') || CAST(:forged AS jsonb) WHERE id = :i",
        i=mid["id"],
        forged='{"title": "Altro"}',
    )
    out = (await client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["ok"] is False
    assert out["failure"] == {"seq": mid["seq"], "id": mid["id"], "reason": "hash_mismatch"}
    assert out["records"] == mid["seq"] - 1
    # offline, on an export, the same verdict
    lines = await export_lines(client, auditor, service="intake")
    assert verify_export(lines).failure == Failure(mid["seq"], mid["id"], "hash_mismatch")
    file = tmp_path / "audit.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main([str(file)]) == 1
    assert f"FAILED at seq {mid['seq']} (id {mid['id']}): hash_mismatch" in capsys.readouterr().out
    # re-hashing the altered record too moves the failure to the next one, which no longer links to it
    await tamper(
        session,
        "UPDATE desk.audit_log SET hash = :h WHERE id = :i",
        i=mid["id"],
        h=record_hash(parse_record(lines[mid["seq"]])),
    )
    out = (await client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["failure"] == {"seq": rows[2]["seq"], "id": rows[2]["id"], "reason": "prev_hash_mismatch"}


async def test_a_deleted_record_fails_verification_at_the_next_one_and_a_deleted_last_at_the_head(
    client, world, session, auditor
):
    _, rows = await history(client, world, session)
    await tamper(session, "DELETE FROM desk.audit_log WHERE id = :i", i=rows[1]["id"])
    out = (await client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["failure"] == {"seq": rows[2]["seq"], "id": rows[2]["id"], "reason": "seq_gap"}
    lines = await export_lines(client, auditor, service="intake")
    assert verify_export(lines).failure == Failure(rows[2]["seq"], rows[2]["id"], "seq_gap")
    # a range that ends before the gap still holds
    early = await client.get(
        "/v1/audit/verify", params={"service": "intake", "to_seq": rows[0]["seq"]}, headers=auditor
    )
    assert early.json()["ok"] is True and early.json()["to_seq"] == rows[0]["seq"]
    # the records after it gone too: the chain's head still names the last
    await tamper(session, "DELETE FROM desk.audit_log WHERE id = :i", i=rows[2]["id"])
    await tamper(session, "DELETE FROM desk.audit_log WHERE id = :i", i=rows[3]["id"])
    out = (await client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["failure"] == {"seq": rows[1]["seq"], "id": None, "reason": "missing_tail"}
    tail = (
        await client.get("/v1/audit/verify", params={"service": "intake", "from_seq": rows[2]["seq"]}, headers=auditor)
    ).json()
    assert tail["failure"] == {"seq": rows[2]["seq"], "id": None, "reason": "missing_tail"}
    lines = await export_lines(client, auditor, service="intake", from_seq=rows[2]["seq"])
    assert verify_export(lines).failure == Failure(rows[2]["seq"], None, "missing_tail")


async def test_officers_and_auditors_read_the_trail_partners_and_companies_get_403(
    client, evaluation_client, monitoring_client, world, session, auditor, officer, token_factory
):
    app_id, _ = await history(client, world, session)
    params = {"resource_type": "application", "resource_id": app_id}
    for headers in (auditor, officer):
        r = await client.get("/v1/audit", params=params, headers=headers)
        assert r.status_code == 200 and len(r.json()["items"]) == 4
    company = await token_factory("company", company_id=world.company.id)
    for headers in (world.headers, company, await token_factory("service")):
        for path in ("/v1/audit", "/v1/audit/export", "/v1/audit/verify"):
            assert (await client.get(path, params=params, headers=headers)).status_code == 403
    # every service answers for the whole trail
    for other in (evaluation_client, monitoring_client):
        r = await other.get("/v1/audit", params=params, headers=auditor)
        assert [i["action"] for i in r.json()["items"]][-1] == "application.submitted"
        r = await other.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)
        assert r.json()["ok"] is True
    # and by default verifies its own chain
    for other, name in ((evaluation_client, "evaluation"), (monitoring_client, "monitoring")):
        r = await other.get("/v1/audit/verify", headers=auditor)
        assert r.status_code == 200 and r.json()["service"] == name and r.json()["ok"] is True


async def test_the_history_pages_with_a_cursor(client, world, session, auditor):
    app_id, rows = await history(client, world, session)
    params = {"resource_type": "application", "resource_id": app_id, "limit": 2}
    first = (await client.get("/v1/audit", params=params, headers=auditor)).json()
    assert [i["id"] for i in first["items"]] == [rows[0]["id"], rows[1]["id"]] and first["next_cursor"]
    second = (await client.get("/v1/audit", params={**params, "cursor": first["next_cursor"]}, headers=auditor)).json()
    assert [i["id"] for i in second["items"]] == [rows[2]["id"], rows[3]["id"]] and second["next_cursor"] is None
    r = await client.get("/v1/audit", params={**params, "cursor": "bm9wZQ"}, headers=auditor)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "cursor_invalid"
    r = await client.get("/v1/audit/export", params={"from_seq": 5, "to_seq": 4}, headers=auditor)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "range_invalid"


async def test_click_day_submits_that_really_commit_are_chained_and_verify(committing_client, engine):
    call, headers, comps = await _committed_world(engine, 5)
    from shared.db import make_sessionmaker

    async with make_sessionmaker(engine)() as s:
        auditor = await make_token(s, "auditor")
        await s.commit()
    ids = []
    for c in comps:
        r = await committing_client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        ids.append(r.json()["id"])
        await declare_stamp_duty(committing_client, r.json()["id"], headers)
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in ids]
    )
    assert [r.status_code for r in results] == [201] * 5
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT seq, hash FROM desk.audit_log WHERE action = 'application.submitted'"
                    " AND resource_id = ANY(:ids) ORDER BY seq"
                ),
                {"ids": ids},
            )
        ).all()
    assert len(rows) == 5 and all(r.seq is not None for r in rows)
    out = (await committing_client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["ok"] is True and out["records"] == out["head_seq"] >= rows[-1].seq
    lines = await export_lines(committing_client, auditor, service="intake", from_seq=rows[0].seq, to_seq=rows[-1].seq)
    by_seq = {int(parse_record(line)["seq"]): parse_record(line) for line in lines[1:]}
    assert all(record_hash(by_seq[r.seq]) == r.hash for r in rows)
    assert verify_export(lines).ok


async def test_an_evaluation_route_record_joins_the_evaluation_chain(evaluation_client, officer, auditor, session):
    from tests.factories import vat_number
    from tests.services.evaluation.test_de_minimis import aid

    r = await evaluation_client.post(
        "/v1/de-minimis/aids", json=aid(f"IT{vat_number()}", date(2025, 3, 1), "12500.50"), headers=officer
    )
    assert r.status_code == 201, r.text
    await session.execute(LINK_NOW)
    got = (
        await evaluation_client.get(
            "/v1/audit", params={"resource_type": "de_minimis_aid", "resource_id": r.json()["id"]}, headers=auditor
        )
    ).json()
    (record,) = got["items"]
    assert record["service"] == "evaluation" and record["after"]["amount"] == "12500.50"
    out = (await evaluation_client.get("/v1/audit/verify", headers=auditor)).json()
    assert out["ok"] is True and (out["head_seq"], out["head_hash"]) == (record["seq"], record["hash"])
    lines = await export_lines(evaluation_client, auditor, from_seq=record["seq"])
    assert record_hash(parse_record(lines[1])) == record["hash"] and verify_export(lines).ok


async def test_a_service_name_that_is_no_chain_name_is_422_not_500(client, auditor):
    # found by fuzzing: a name outside latin-1 reached the export's Content-Disposition header and answered 500
    for path in ("/v1/audit", "/v1/audit/export", "/v1/audit/verify"):
        r = await client.get(path, params={"service": "\u0080\U00088311"}, headers=auditor)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["path"].endswith("service")
    r = await client.get("/v1/audit/export", params={"service": "intake", "from_seq": 1}, headers=auditor)
    assert r.status_code == 200 and r.headers["content-disposition"].startswith('attachment; filename="audit-intake-')


async def test_linking_finds_its_record_by_key_on_a_log_that_grew_from_empty(server_url):
    """A desk's first day: the log was analysed nearly empty and each connection links its first records while
    it is small, then thousands follow. Linking must still find each record through the primary key: a plan
    kept from the small log (a scan of the whole table) made every link cost in proportion to the log, most
    of PostgreSQL's time per submit on a click day. Own database, so the log really starts empty."""
    name = f"desk_audit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(plain_url(server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        cfg = Config(str(REPO_ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = url
        cfg.attributes["skip_logging"] = True
        await asyncio.to_thread(command.upgrade, cfg, "head")
        conn = await asyncpg.connect(plain_url(url))
        try:
            await conn.execute("ANALYZE desk.audit_log")
            insert = (
                "INSERT INTO desk.audit_log (service, principal_kind, principal_client_id, action, resource_type,"
                " resource_id, after) VALUES ('intake', 'partner', 'p', 'application.submitted', 'application', $1,"
                ' \'{"status": "submitted"}\')'
            )
            for i in range(1500):  # one commit, so one link, each: the connection's plans are made while it grows
                await conn.execute(insert, str(i))
            scans = (
                "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
                " WHERE schemaname = 'desk' AND relname = 'audit_log'"
            )
            async with conn.transaction():  # the counters read before and after the one link, in one transaction
                before = await conn.fetchrow(scans)
                await conn.execute(insert, "last")
                await conn.execute("SET CONSTRAINTS desk.audit_log_link IMMEDIATE")
                after = await conn.fetchrow(scans)
            assert (after[0] - before[0], after[1] - before[1]) == (0, 1)
            linked = await conn.fetchrow(
                "SELECT count(*) AS n, max(seq) AS last FROM desk.audit_log"
                " WHERE service = 'intake' AND hash IS NOT NULL"
            )
            assert (linked["n"], linked["last"]) == (1501, 1501)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


RECORD = text(
    "INSERT INTO desk.audit_log (service, principal_kind, principal_client_id, action, resource_type, resource_id,"
    " after) VALUES (:s, 'partner', 'p', 'a.b', 'r', :r, CAST(:after AS jsonb))"
)


async def chain_rows(session, service: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT id, seq, prev_hash, hash, resource_id FROM desk.audit_log WHERE service = :s ORDER BY id"),
        {"s": service},
    )
    return [dict(r) for r in rows.mappings()]


async def updates(session) -> dict[str, int]:
    """Rows updated so far in this transaction, per table of the chain."""
    rows = await session.execute(
        text(
            "SELECT relname, n_tup_upd FROM pg_stat_xact_user_tables"
            " WHERE schemaname = 'desk' AND relname IN ('audit_log', 'audit_chains')"
        )
    )
    return {name: count for name, count in rows}


async def test_the_records_of_one_transaction_are_linked_in_one_pass_chain_by_chain(client, session, auditor):
    """The first record to be linked links every record its transaction inserted (migration 0034): each chain's
    head is read and written once, each record updated once, and each chain still runs 1, 2, 3... in id order
    and verifies. Two chains interleaved, as a transaction writing for two services would."""
    tag = uuid.uuid4().hex[:8]
    first, second = f"t-{tag}-a", f"t-{tag}-b"
    order = [first, second, first, first, second, first, second, second, first, first, first, second]
    await session.execute(RECORD, [{"s": s, "r": str(i), "after": f'{{"n": {i}}}'} for i, s in enumerate(order)])
    before = await updates(session)
    await session.execute(LINK_NOW)
    after = await updates(session)
    assert after["audit_chains"] - before.get("audit_chains", 0) == 2  # one head written per chain, not per record
    assert after["audit_log"] - before.get("audit_log", 0) == len(order)  # each record updated once
    for service, count in ((first, 7), (second, 5)):
        rows = await chain_rows(session, service)
        assert [r["seq"] for r in rows] == list(range(1, count + 1))
        assert [r["prev_hash"] for r in rows] == [GENESIS] + [r["hash"] for r in rows[:-1]]
        out = (await client.get("/v1/audit/verify", params={"service": service}, headers=auditor)).json()
        assert out["ok"] is True and out["records"] == out["head_seq"] == count, out
        assert out["head_hash"] == rows[-1]["hash"]


async def test_records_written_after_a_pass_are_linked_by_the_next_and_a_lone_one_alone(client, session, auditor):
    """Linked at the end of every statement once the constraint is immediate: a first pass over three records, a
    second over the two of one later statement, then one record alone. One chain, gap-free, verifying."""
    service = f"t-{uuid.uuid4().hex[:8]}"
    await session.execute(RECORD, [{"s": service, "r": str(i), "after": "{}"} for i in range(3)])
    await session.execute(LINK_NOW)
    assert [r["seq"] for r in await chain_rows(session, service)] == [1, 2, 3]
    await session.execute(
        text(
            "INSERT INTO desk.audit_log (service, principal_kind, principal_client_id, action, resource_type,"
            " resource_id) VALUES (:s, 'partner', 'p', 'a.b', 'r', '3'), (:s, 'partner', 'p', 'a.b', 'r', '4')"
        ),
        {"s": service},
    )
    await session.execute(RECORD, {"s": service, "r": "5", "after": None})
    rows = await chain_rows(session, service)
    assert [(r["resource_id"], r["seq"]) for r in rows] == [(str(i), i + 1) for i in range(6)]
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    out = (await client.get("/v1/audit/verify", params={"service": service}, headers=auditor)).json()
    assert out["ok"] is True and out["records"] == 6


async def test_a_pass_undone_with_its_savepoint_is_done_again_and_rolled_back_records_take_no_seq(
    client, session, auditor
):
    """A pass inside a savepoint that is rolled back: its links go with it and the records left are linked
    again, from the chain's real head; the rolled-back ones take no seq."""
    service = f"t-{uuid.uuid4().hex[:8]}"
    await session.execute(RECORD, {"s": service, "r": "kept", "after": None})
    await session.execute(text("SAVEPOINT before_the_pass"))
    await session.execute(RECORD, [{"s": service, "r": "undone", "after": None}] * 2)
    await session.execute(LINK_NOW)
    assert [r["seq"] for r in await chain_rows(session, service)] == [1, 2, 3]
    await session.execute(text("ROLLBACK TO SAVEPOINT before_the_pass"))
    assert [r["seq"] for r in await chain_rows(session, service)] == [None]
    await session.execute(RECORD, [{"s": service, "r": "later", "after": None}] * 2)
    await session.execute(LINK_NOW)
    rows = await chain_rows(session, service)
    assert [(r["resource_id"], r["seq"]) for r in rows] == [("kept", 1), ("later", 2), ("later", 3)]
    out = (await client.get("/v1/audit/verify", params={"service": service}, headers=auditor)).json()
    assert out["ok"] is True and out["records"] == 3


async def test_a_linked_range_noted_outside_the_transaction_skips_nothing(session):
    """The note of what a pass linked is bound to its transaction: a value set for the session (by mistake or
    on purpose) does not make a record look linked."""
    service = f"t-{uuid.uuid4().hex[:8]}"
    await session.execute(text("SELECT set_config('desk.audit_linked', '1:9223372036854775807:1', false)"))
    await session.execute(RECORD, [{"s": service, "r": str(i), "after": None} for i in range(2)])
    await session.execute(LINK_NOW)
    assert [r["seq"] for r in await chain_rows(session, service)] == [1, 2]


async def test_a_record_id_comes_from_the_log_not_from_the_writer(session):
    """Linking finds a transaction's records by their ids: the writer cannot choose one."""
    with pytest.raises(Exception, match="non-DEFAULT value into column"):
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO desk.audit_log (id, service, principal_kind, principal_client_id, action,"
                    " resource_type, resource_id) VALUES (1, 'intake', 'partner', 'p', 'a.b', 'r', '1')"
                )
            )


async def test_a_forced_id_from_a_session_that_never_drew_one_is_refused_at_commit(database_url):
    """OVERRIDING SYSTEM VALUE gets past GENERATED ALWAYS, but linking needs the session's last id to know the
    transaction's records: a session that never drew one cannot commit the record (migration 0034), and
    nothing is left behind."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        forced = await conn.fetchval("SELECT coalesce(max(id), 0) + 1000000 FROM desk.audit_log")
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="currval"):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO desk.audit_log (id, service, principal_kind, principal_client_id, action,"
                    " resource_type, resource_id) OVERRIDING SYSTEM VALUE"
                    " VALUES ($1, 'intake', 'partner', 'p', 'a.b', 'r', 'forced')",
                    forced,
                )
        assert await conn.fetchval("SELECT count(*) FROM desk.audit_log WHERE id = $1", forced) == 0
    finally:
        await conn.close()
