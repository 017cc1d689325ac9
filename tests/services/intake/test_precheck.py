"""The pre-check verdict kept on a draft, and the one-statement submit it allows.

A draft saved (or checked) with no blocking problem keeps its verdict: the versions it was computed for,
until when it holds, the content hash and the estimate. Its submit commits in one statement
(`intake.commit_submission` in its pre-checked mode); any other draft takes the full path. Both paths
must give the same receipt content and event."""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy import text

from services.intake.applications import repository, service
from services.intake.applications.fastpath import CommitBatcher
from shared.auth import Principal
from shared.db import make_sessionmaker, plain_url
from shared.errors import Conflict
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call
from tests.services.intake.test_applications import World, create

ROME = ZoneInfo("Europe/Rome")


@pytest.fixture
async def world(session) -> World:
    call = await open_call(session)
    partner = await make_partner(session)
    company = await make_company(session)
    await delegate(session, partner, company)
    headers = await make_token(session, "partner", partner_id=partner.id)
    return World(call, partner, company, headers)


async def verdict(session, application_id: Any) -> Any:
    return (
        await session.execute(
            text(
                "SELECT version, precheck_version, precheck_company_version, precheck_call_version, "
                "precheck_valid_until,"
                " precheck_content_sha256, precheck_estimate FROM intake.applications WHERE id = :a"
            ),
            {"a": application_id},
        )
    ).one()


async def test_saving_a_draft_keeps_its_verdict_and_its_submit_commits_that_content(client, world, session):
    app = await create(client, world)
    v = await verdict(session, app["id"])
    start = date.fromisoformat(app["action_plan"]["start_date"])
    assert v.precheck_version == v.version == 1 and v.precheck_call_version == world.call.current_version
    assert v.precheck_company_version == world.company.version
    # it holds through the planned start date (in Rome), or the end of the year if that comes first
    last = min(start, date(datetime.now(ROME).year, 12, 31))
    assert v.precheck_valid_until == datetime.combine(last + timedelta(days=1), time(), tzinfo=ROME)
    check = (await client.post(f"/v1/applications/{app['id']}/check", headers=world.headers)).json()
    assert v.precheck_estimate == {k: check["estimate"][k] for k in ("eligible_total", "grant", "loan")}

    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 201, r.text
    assert r.json()["receipt"]["content_sha256"] == v.precheck_content_sha256
    ev = (
        await session.execute(
            text("SELECT payload FROM desk.outbox WHERE aggregate_id = :a AND event_type = 'application.submitted'"),
            {"a": app["id"]},
        )
    ).one()
    assert ev.payload["content_sha256"] == v.precheck_content_sha256
    assert ev.payload["estimate"] == v.precheck_estimate and ev.payload["protocol_number"] == 1


@pytest.mark.parametrize(
    "staleness",
    [
        "UPDATE intake.companies SET version = version + 1 WHERE id = :c",  # the company was edited
        "UPDATE intake.applications SET precheck_valid_until = now() - interval '1 second' WHERE id = :a",  # expired
        "UPDATE intake.applications SET precheck_call_version = precheck_call_version - 1 WHERE id = :a",  # new rules
    ],
)
async def test_a_stale_verdict_takes_the_full_path_to_the_same_receipt_content_and_event(
    client, world, session, staleness
):
    app = await create(client, world)
    v = await verdict(session, app["id"])
    await session.execute(text(staleness), {"a": app["id"], "c": world.company.id})
    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 201, r.text
    assert r.json()["receipt"]["content_sha256"] == v.precheck_content_sha256  # recomputed, identical
    ev = (
        await session.execute(
            text("SELECT payload FROM desk.outbox WHERE aggregate_id = :a AND event_type = 'application.submitted'"),
            {"a": app["id"]},
        )
    ).one()
    assert ev.payload["estimate"] == v.precheck_estimate


async def test_a_draft_with_blocking_problems_keeps_no_verdict_until_it_is_fixed(client, world, session):
    body = draft_body(world.call.id, world.company.id)
    good_lines = copy.deepcopy(body["expense_lines"])
    body["expense_lines"] = [{"category": "b", "description": "Fiera", "amount": "1000.00", "target_market": "VN"}]
    app = (await client.post("/v1/applications", json=body, headers=world.headers)).json()
    assert (await verdict(session, app["id"])).precheck_version is None
    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 422 and r.json()["type"] == "/problems/application-not-submittable"

    fixed = {k: body[k] for k in ("title", "action_plan", "flat_rates", "network")} | {"expense_lines": good_lines}
    r = await client.put(f"/v1/applications/{app['id']}", json=fixed, headers={**world.headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    v = await verdict(session, app["id"])
    assert v.version == v.precheck_version == 2


async def test_checking_a_draft_renews_a_stale_verdict(client, world, session):
    app = await create(client, world)
    await session.execute(
        text("UPDATE intake.applications SET precheck_version = NULL WHERE id = :a"), {"a": app["id"]}
    )
    assert (await client.post(f"/v1/applications/{app['id']}/check", headers=world.headers)).status_code == 200
    assert (await verdict(session, app["id"])).precheck_version == 1


async def test_a_verdict_does_not_reach_past_the_submitters_reach(client, world, session):
    """The one-statement submit applies the reach rule: another partner's submit is 404, nothing written."""
    app = await create(client, world)
    stranger = await make_partner(session)
    other = await make_token(session, "partner", partner_id=stranger.id)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=other)
    assert r.status_code == 404
    assert (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).json()["status"] == "draft"


async def test_record_prechecks_renews_verdicts_in_bulk_and_counts_the_submittable(client, world, session):
    apps = [await create(client, world, title=f"Bozza {i}") for i in range(3)]
    await session.execute(
        text("UPDATE intake.applications SET precheck_version = NULL, precheck_estimate = NULL WHERE id = ANY(:ids)"),
        {"ids": [uuid.UUID(a["id"]) for a in apps]},
    )
    conn = await repository.driver_connection(session)
    assert await service.record_prechecks(conn, [uuid.UUID(a["id"]) for a in apps]) == 3
    for a in apps:
        assert (await verdict(session, a["id"])).precheck_version == 1


async def test_the_commit_refuses_a_draft_changed_since_it_was_checked(client, world, session):
    """commit_submission takes the checked version: a concurrent edit in between refuses the commit (DK002),
    which the service answers with 409."""
    app = await create(client, world)
    conn = await repository.driver_connection(session)
    row = await repository.load_for_submit(conn, _officer(), uuid.UUID(app["id"]))
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.fetchrow(
            service.COMMIT_SQL,
            *service.CommitArgs(
                application_id=row.id,
                prechecked=False,
                reach=None,
                reach_id=None,
                version=row.version - 1,
                call_id=row.call_id,
                call_code=row.call_code,
                call_version=row.current_version,
                company_vat=row.vat_number,
                content_sha256="0" * 64,
                event_payload="{}",
                partner_id=row.partner_id,
                company_id=row.company_id,
                key_id="k",
                principal="c",
                principal_kind="partner",
                request_id=None,
                service="intake",
                idem_owner=None,
                idem_key=None,
                idem_hash=None,
                idem_path=None,
                idem_expires=None,
                event_id=uuid.uuid4(),
            ),
        )
    assert info.value.sqlstate == "DK002"
    refused = service._commit_refused(info.value)
    assert isinstance(refused, Conflict) and refused.kind.status == 409


def _officer() -> Principal:
    return Principal(client_id="test-officer", kind="officer", scopes=frozenset())


async def test_concurrent_full_path_submits_still_get_gap_free_ordered_numbers(committing_client, engine):
    """With no verdict (every draft takes the full path) the click-day guarantees hold as on the fast path."""
    sm = make_sessionmaker(engine)
    async with sm() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        comps = [await make_company(s) for _ in range(12)]
        for c in comps:
            await delegate(s, partner, c)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    ids = []
    for c in comps:
        r = await committing_client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        ids.append(r.json()["id"])
        await declare_stamp_duty(committing_client, r.json()["id"], headers)
    async with sm() as s:
        await s.execute(
            text("UPDATE intake.applications SET precheck_version = NULL WHERE call_id = :c"), {"c": call.id}
        )
        await s.commit()
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in ids]
    )
    assert [r.status_code for r in results] == [201] * 12
    numbers = sorted(r.json()["receipt"]["protocol_number"] for r in results)
    assert numbers == list(range(1, 13))


async def test_full_path_submits_on_the_click_day_route_are_checked_apart_and_committed_in_groups(
    committing_client, engine, monkeypatch
):
    """Drafts with no verdict on the click-day route: the pre-checked attempt brings each draft back, the rules
    run holding no connection and the commits join the group commit. A group with a refused submit (the
    company's second draft) is retried submit by submit, so each gets its own answer; a draft failing the
    rules is a 422 and a draft out of reach a 404, with nothing committed for either."""
    grouped: list[uuid.UUID | None] = []
    real = service.submit_grouped

    async def spy(**kw: Any) -> Any:
        grouped.append(kw["attempt"]["draft_id"])
        assert isinstance(kw["commit"].__self__, CommitBatcher)  # the commit joins the group commit
        return await real(**kw)

    monkeypatch.setattr(service, "submit_grouped", spy)
    sm = make_sessionmaker(engine)
    async with sm() as s:
        call = await open_call(s)
        partner, stranger = await make_partner(s), await make_partner(s)
        comps = [await make_company(s) for _ in range(8)]
        for c in comps:
            await delegate(s, partner, c)
        outsider = await make_company(s)
        await delegate(s, stranger, outsider)
        headers = await make_token(s, "partner", partner_id=partner.id)
        stranger_headers = await make_token(s, "partner", partner_id=stranger.id)
        await s.commit()
    ids = []
    for c in [*comps, comps[0]]:  # comps[0] has two drafts
        r = await committing_client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        ids.append(r.json()["id"])
        await declare_stamp_duty(committing_client, r.json()["id"], headers)
    failing = draft_body(call.id, comps[1].id)
    failing["expense_lines"] = [{"category": "b", "description": "Fiera", "amount": "1000.00", "target_market": "VN"}]
    bad = (await committing_client.post("/v1/applications", json=failing, headers=headers)).json()["id"]
    await declare_stamp_duty(committing_client, bad, headers)
    theirs = (
        await committing_client.post(
            "/v1/applications", json=draft_body(call.id, outsider.id), headers=stranger_headers
        )
    ).json()["id"]
    async with sm() as s:
        await s.execute(
            text("UPDATE intake.applications SET precheck_version = NULL WHERE call_id = :c"), {"c": call.id}
        )
        await s.commit()
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in [*ids, bad, theirs]]
    )
    codes = [r.status_code for r in results]
    assert sorted(codes[:9]) == [201] * 8 + [409], [r.text for r in results]
    assert next(r for r in results if r.status_code == 409).json()["detail"] == (
        "L'impresa ha già presentato una domanda su questo bando."
    )
    assert codes[9] == 422 and results[9].json()["type"] == "/problems/application-not-submittable"
    assert codes[10] == 404
    # every one took the full path; out of reach, no draft came back with the attempt
    assert sorted(str(g) for g in grouped if g is not None) == sorted([*ids, bad]) and grouped.count(None) == 1
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, protocol_number, submitted_at, xmin::text AS tx FROM intake.applications"
                    " WHERE call_id = :c AND status = 'submitted' ORDER BY protocol_number"
                ),
                {"c": call.id},
            )
        ).all()
    assert [r.protocol_number for r in rows] == list(range(1, 9))
    assert [r.submitted_at for r in rows] == sorted(r.submitted_at for r in rows)
    assert str(bad) not in {str(r.id) for r in rows} and theirs not in {str(r.id) for r in rows}
    numbers = sorted(r.json()["receipt"]["protocol_number"] for r in results if r.status_code == 201)
    assert numbers == list(range(1, 9))


async def test_the_durability_barrier_flushes_the_log_past_earlier_asynchronous_commits(database_url):
    """The submit commits asynchronously; `wait_durable` returns only once the WAL is flushed past it."""
    conn = await asyncpg.connect(plain_url(database_url))
    table = f"durability_probe_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE TABLE {table} (x int)")
        flushed = 0
        for _ in range(20):
            await conn.execute(f"BEGIN; SET LOCAL synchronous_commit = off; INSERT INTO {table} VALUES (1); COMMIT")
            written = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
            await service.wait_durable(lambda: service._same(conn))
            flushed += await conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn", written)
        assert flushed == 20
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
