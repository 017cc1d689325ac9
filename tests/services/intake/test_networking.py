"""Networking with international operators through HTTP on real PostgreSQL: operators and B2B events
(officers), interests by the company's partner (404 for another partner), operators' preferences, the agenda
planned from mutual preferences (worked out by hand from the README's rules), re-planning after a withdrawal
keeps the confirmed meetings, refusals that change nothing (a meeting in a taken slot, double booking, an
outcome for a meeting that did not happen), the `meeting.outcome_recorded` event, and the capacity and
no double booking under concurrent requests."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.models import B2bEvent, B2bEventOperator, B2bMeeting, B2bOperator, Company
from shared.db import make_sessionmaker
from tests.conftest import TokenFactory
from tests.factories import delegate, make_company, make_partner

Headers = dict[str, str]


async def _post(client: httpx.AsyncClient, url: str, body: Any, headers: Headers, status: int = 201) -> Any:
    r = await client.post(url, json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def _operator(client: httpx.AsyncClient, officer: Headers, name: str, country: str = "VN") -> str:
    body = {"name": name, "kind": "distributor", "country": country, "sectors": ["10.1"], "interests": ["food"]}
    return str((await _post(client, "/v1/b2b/operators", body, officer))["id"])


def _slots(start: datetime, capacities: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "starts_at": (start + timedelta(minutes=30 * i)).isoformat(),
            "ends_at": (start + timedelta(minutes=30 * i + 25)).isoformat(),
            "capacity": cap,
        }
        for i, cap in enumerate(capacities)
    ]


async def _event(
    client: httpx.AsyncClient, officer: Headers, operators: list[str], capacities: list[int], *, past: bool = False
) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + (timedelta(days=-3) if past else timedelta(days=10))
    body = {
        "title": "Missione incoming Vietnam",
        "kind": "incoming_mission",
        "slots": _slots(start, capacities),
        "operator_ids": operators,
    }
    return await _post(client, "/v1/b2b/events", body, officer)  # type: ignore[no-any-return]


async def _world(session: AsyncSession, token_factory: TokenFactory, n: int) -> tuple[Headers, list[str]]:
    """A partner acting for n companies, its token, and the companies' ids."""
    partner = await make_partner(session)
    ids = []
    for _ in range(n):
        company = await make_company(session)
        await delegate(session, partner, company)
        ids.append(str(company.id))
    return await token_factory("partner", partner_id=partner.id), ids


async def _count(session: AsyncSession, sql: str, **params: Any) -> int:
    return int((await session.execute(text(sql), params)).scalar_one())


async def test_operators_and_events_are_published_by_officers_and_read_by_anyone(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner, _ = await _world(session, token_factory, 0)
    op = await _post(
        client,
        "/v1/b2b/operators",
        {"name": "Saigon Foods", "kind": "importer", "country": "vn", "sectors": ["10.1"], "interests": ["food"]},
        officer,
    )
    assert (op["country"], op["kind"], op["sectors"]) == ("VN", "importer", ["10.1"])
    bad = await client.post(
        "/v1/b2b/operators", json={"name": "X Ltd", "kind": "buyer", "country": "XX", "sectors": []}, headers=officer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "country_unknown"
    assert (await client.post("/v1/b2b/operators", json={"name": "Y"}, headers=partner)).status_code == 403

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
    # slots given out of order are numbered by time; overlapping slots are refused
    slots = list(reversed(_slots(start, [2, 1])))
    event = await _post(
        client,
        "/v1/b2b/events",
        {"title": "Matchmaking day", "kind": "virtual_matchmaking", "slots": slots, "operator_ids": [op["id"]]},
        officer,
    )
    assert [(s["index"], s["capacity"], s["taken"]) for s in event["slots"]] == [(0, 2, 0), (1, 1, 0)]
    assert event["starts_at"] == start.isoformat().replace("+00:00", "Z")
    overlapping = _slots(start, [1, 1])
    overlapping[1]["starts_at"] = (start + timedelta(minutes=10)).isoformat()
    r = await client.post(
        "/v1/b2b/events",
        json={"title": "Overlap", "kind": "incoming_mission", "slots": overlapping, "operator_ids": [op["id"]]},
        headers=officer,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "slots_overlap"
    ancient = [{"starts_at": "0001-01-01T00:00:00+01:00", "ends_at": "0001-01-01T01:00:00+01:00", "capacity": 1}]
    r = await client.post(
        "/v1/b2b/events",
        json={"title": "Ancient", "kind": "incoming_mission", "slots": ancient, "operator_ids": [op["id"]]},
        headers=officer,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "year_out_of_range"
    r = await client.get(f"/v1/b2b/events/{event['id']}", headers=partner)
    assert r.status_code == 200 and r.json()["operators"] == [{"operator_id": op["id"], "status": "active"}]


async def test_agenda_from_mutual_preferences_without_double_booking_and_within_capacity(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner, (a, b, c) = await _world(session, token_factory, 3)
    x = await _operator(client, officer, "Operator X")
    y = await _operator(client, officer, "Operator Y", "BR")
    event = await _event(client, officer, [x, y], [1, 2])
    url = f"/v1/b2b/events/{event['id']}"
    for company, operator, rank in ((a, x, 1), (a, y, 2), (b, x, 1), (c, y, 1), (c, x, 3)):
        await _post(client, f"{url}/interests", {"company_id": company, "operator_id": operator, "rank": rank}, partner)
    for company, rank in ((b, 1), (a, 2)):
        await _post(
            client, f"{url}/operator-preferences", {"operator_id": x, "company_id": company, "rank": rank}, officer
        )

    # scores: B-X 1+1, A-X 1+2, C-Y 1+1000, A-Y 2+1000, C-X 3+1000 (Y ranked nobody)
    # round 1: B-X slot 0 (one table), A-X slot 1 (X busy in 0), C-Y slot 1 (second table); then all full
    planned = await _post(client, f"{url}/agenda", None, officer, 200)
    got = sorted((m["slot"], m["company_id"], m["operator_id"], m["status"]) for m in planned["added"])
    assert got == sorted([(0, b, x, "proposed"), (1, a, x, "proposed"), (1, c, y, "proposed")])
    again = await _post(client, f"{url}/agenda", None, officer, 200)
    assert again["added"] == [] and len(again["meetings"]) == 3
    read = (await client.get(url, headers=partner)).json()
    assert [(s["capacity"], s["taken"]) for s in read["slots"]] == [(1, 1), (2, 2)]

    # the company's agenda (its partner) and the operator's (officer)
    mine = (await client.get(f"{url}/meetings", params={"company_id": a}, headers=partner)).json()["items"]
    assert [(m["slot"], m["operator_id"]) for m in mine] == [(1, x)]
    of_x = (await client.get(f"{url}/meetings", params={"operator_id": x}, headers=officer)).json()["items"]
    assert sorted((m["slot"], m["company_id"]) for m in of_x) == sorted([(0, b), (1, a)])


async def test_an_operators_sectors_stand_for_its_preferences_when_no_officer_ranked(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner = await make_partner(session)
    food, machines = await make_company(session, ateco_code="10.11.00"), await make_company(session)
    for company in (food, machines):
        await delegate(session, partner, company)
    as_partner = await token_factory("partner", partner_id=partner.id)
    # a buyer of machinery (ATECO 28): it covers the machine maker (28.29.30), not the food company (10.11.00)
    buyer = await _post(
        client,
        "/v1/b2b/operators",
        {"name": "Hanoi Machinery", "kind": "buyer", "country": "VN", "sectors": ["28"], "interests": ["macchine"]},
        officer,
    )
    event = await _event(client, officer, [buyer["id"]], [1])
    url = f"/v1/b2b/events/{event['id']}"
    for company in (food, machines):
        body = {"company_id": str(company.id), "operator_id": buyer["id"], "rank": 1}
        await _post(client, f"{url}/interests", body, as_partner)
    # one table: machines 1 + 101 (sector) beats food 1 + 1000 (unranked)
    planned = await _post(client, f"{url}/agenda", None, officer, 200)
    assert [(m["company_id"], m["slot"]) for m in planned["added"]] == [(str(machines.id), 0)]


async def test_meeting_in_a_taken_slot_and_double_booking_are_refused_and_change_nothing(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner, (a, b, c) = await _world(session, token_factory, 3)
    x = await _operator(client, officer, "Operator X")
    y = await _operator(client, officer, "Operator Y")
    z = await _operator(client, officer, "Operator Z")
    event = await _event(client, officer, [x, y, z], [2, 1])
    url = f"/v1/b2b/events/{event['id']}"
    first = await _post(client, f"{url}/meetings", {"company_id": a, "operator_id": x, "slot": 0}, officer)
    assert (first["origin"], first["status"]) == ("manual", "proposed")
    before = await _count(session, "SELECT count(*) FROM intake.b2b_meetings WHERE event_id = :e", e=event["id"])

    async def refused(body: dict[str, Any], reason: str) -> None:
        r = await client.post(f"{url}/meetings", json=body, headers={**officer, "Accept-Language": "it"})
        assert r.status_code == 409, r.text
        assert r.json()["type"].endswith("/slot-taken") and r.json()["reason"] == reason
        assert "fascia" in r.json()["detail"].lower()

    await refused({"company_id": a, "operator_id": y, "slot": 0}, "company_busy")  # A double-booked
    await refused({"company_id": b, "operator_id": x, "slot": 0}, "operator_busy")  # X double-booked
    await _post(client, f"{url}/meetings", {"company_id": b, "operator_id": y, "slot": 1}, officer)
    await refused({"company_id": c, "operator_id": z, "slot": 1}, "capacity")  # slot 1's only table taken
    r = await client.post(f"{url}/meetings", json={"company_id": a, "operator_id": x, "slot": 1}, headers=officer)
    assert r.status_code == 409 and r.json()["type"].endswith("/already-exists")  # the pair meets once
    after = await _count(session, "SELECT count(*) FROM intake.b2b_meetings WHERE event_id = :e", e=event["id"])
    assert after == before + 1  # only B-Y was added
    # officers only
    r = await client.post(f"{url}/meetings", json={"company_id": c, "operator_id": z, "slot": 0}, headers=partner)
    assert r.status_code == 403


async def test_replanning_after_a_withdrawal_keeps_confirmed_meetings_and_fills_only_freed_places(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner, (a, b, c) = await _world(session, token_factory, 3)
    x = await _operator(client, officer, "Operator X")
    y = await _operator(client, officer, "Operator Y")
    event = await _event(client, officer, [x, y], [1, 2])
    url = f"/v1/b2b/events/{event['id']}"
    for company, operator, rank in ((a, x, 1), (a, y, 2), (b, x, 1), (c, y, 1), (c, x, 3)):
        await _post(client, f"{url}/interests", {"company_id": company, "operator_id": operator, "rank": rank}, partner)
    for company, rank in ((b, 1), (a, 2)):
        await _post(
            client, f"{url}/operator-preferences", {"operator_id": x, "company_id": company, "rank": rank}, officer
        )
    planned = {
        (m["company_id"], m["operator_id"]): m
        for m in (await _post(client, f"{url}/agenda", None, officer, 200))["added"]
    }
    # A confirms its meeting with X (slot 1), the officer confirms C-Y (slot 1)
    for key, who in (((a, x), partner), ((c, y), officer)):
        m = planned[key]
        r = await client.post(f"/v1/b2b/meetings/{m['id']}/confirm", headers={**who, "If-Match": m["etag"]})
        assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text

    # B withdraws: its meeting with X (slot 0) is withdrawn; the re-plan keeps A-X and C-Y in slot 1 and gives the
    # freed slot 0 to A-Y (A and C have one meeting each, so round 2: A-Y 1002 before C-X 1003; then slot 0 is full)
    out = await _post(client, f"{url}/withdrawals", {"company_id": b}, partner, 200)
    assert [(m["company_id"], m["slot"], m["status"]) for m in out["withdrawn_meetings"]] == [(b, 0, "withdrawn")]
    replanned = await _post(client, f"{url}/agenda", None, officer, 200)
    assert [(m["company_id"], m["operator_id"], m["slot"]) for m in replanned["added"]] == [(a, y, 0)]
    kept = {(m["company_id"], m["operator_id"]): (m["id"], m["slot"], m["status"]) for m in replanned["meetings"]}
    assert kept[(a, x)] == (planned[(a, x)]["id"], 1, "confirmed")
    assert kept[(c, y)] == (planned[(c, y)]["id"], 1, "confirmed")
    assert len(kept) == 3
    # a withdrawn company cannot come back through a new interest; a second withdrawal is a conflict
    r = await client.post(f"{url}/interests", json={"company_id": b, "operator_id": y, "rank": 2}, headers=partner)
    assert r.status_code == 409
    assert (await client.post(f"{url}/withdrawals", json={"company_id": b}, headers=partner)).status_code == 409

    # the operator Y withdraws (officers only): A-Y and C-Y (confirmed) are withdrawn; only officers may do so
    r = await client.post(f"{url}/withdrawals", json={"operator_id": y}, headers=partner)
    assert r.status_code == 403
    out = await _post(client, f"{url}/withdrawals", {"operator_id": y}, officer, 200)
    assert sorted(m["company_id"] for m in out["withdrawn_meetings"]) == sorted([a, c])
    # re-plan: C-X (C has no meeting left) takes slot 0; A-X stays confirmed in slot 1
    replanned = await _post(client, f"{url}/agenda", None, officer, 200)
    assert [(m["company_id"], m["operator_id"], m["slot"]) for m in replanned["added"]] == [(c, x, 0)]
    assert {(m["company_id"], m["slot"], m["status"]) for m in replanned["meetings"]} == {
        (a, 1, "confirmed"),
        (c, 0, "proposed"),
    }


async def test_other_partner_gets_404_on_a_company_it_does_not_act_for(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner, (a,) = await _world(session, token_factory, 1)
    other, _ = await _world(session, token_factory, 0)
    x = await _operator(client, officer, "Operator X")
    event = await _event(client, officer, [x], [1])
    url = f"/v1/b2b/events/{event['id']}"
    r = await client.post(f"{url}/interests", json={"company_id": a, "operator_id": x, "rank": 1}, headers=other)
    assert r.status_code == 404
    assert await _count(session, "SELECT count(*) FROM intake.b2b_interests WHERE company_id = :c", c=a) == 0
    await _post(client, f"{url}/interests", {"company_id": a, "operator_id": x, "rank": 1}, partner)
    meeting = (await _post(client, f"{url}/agenda", None, officer, 200))["added"][0]
    assert (await client.get(f"/v1/b2b/meetings/{meeting['id']}", headers=other)).status_code == 404
    r = await client.post(f"/v1/b2b/meetings/{meeting['id']}/confirm", headers={**other, "If-Match": meeting["etag"]})
    assert r.status_code == 404
    assert (await client.get(f"{url}/meetings", headers=other)).json()["items"] == []
    assert (await client.get(f"{url}/interests", headers=other)).json()["items"] == []
    r = await client.post(f"{url}/withdrawals", json={"company_id": a}, headers=other)
    assert r.status_code == 404
    assert (await client.get(f"/v1/b2b/meetings/{meeting['id']}", headers=partner)).json()["status"] == "proposed"


async def test_outcomes_only_for_meetings_that_took_place_and_the_event_carries_them(
    client: httpx.AsyncClient, officer: Headers, session: AsyncSession, token_factory: TokenFactory
) -> None:
    partner, (a, b) = await _world(session, token_factory, 2)
    x = await _operator(client, officer, "Operator X", "BR")
    held = await _event(client, officer, [x], [1, 1], past=True)
    coming = await _event(client, officer, [x], [1])
    meetings = {}
    for event, company, slot in ((held, a, 0), (held, b, 1), (coming, a, 0)):
        m = await _post(
            client,
            f"/v1/b2b/events/{event['id']}/meetings",
            {"company_id": company, "operator_id": x, "slot": slot},
            officer,
        )
        meetings[(event["id"], company)] = m
    # confirm A's meeting at the held event and at the coming one; B's stays proposed (never confirmed)
    for key in ((held["id"], a), (coming["id"], a)):
        m = meetings[key]
        r = await client.post(f"/v1/b2b/meetings/{m['id']}/confirm", headers={**partner, "If-Match": m["etag"]})
        assert r.status_code == 200
        meetings[key] = r.json()
    contract = {"outcome": "contract", "contract_value": "48000.00", "market": "BR"}

    async def not_held(m: dict[str, Any], reason: str) -> None:
        r = await client.post(
            f"/v1/b2b/meetings/{m['id']}/outcome", json=contract, headers={**partner, "If-Match": m["etag"]}
        )
        assert r.status_code == 409 and r.json()["type"].endswith("/meeting-not-held"), r.text
        assert r.json()["reason"] == reason

    await not_held(meetings[(coming["id"], a)], "event_not_ended")
    await not_held(meetings[(held["id"], b)], "not_confirmed")
    # B withdraws from the held event: its meeting did not happen
    await _post(client, f"/v1/b2b/events/{held['id']}/withdrawals", {"company_id": b}, officer, 200)
    withdrawn = (await client.get(f"/v1/b2b/meetings/{meetings[(held['id'], b)]['id']}", headers=partner)).json()
    assert withdrawn["status"] == "withdrawn"
    await not_held(withdrawn, "withdrawn")
    assert (
        await _count(
            session,
            "SELECT count(*) FROM intake.b2b_meetings WHERE outcome IS NOT NULL AND company_id IN (:a, :b)",
            a=a,
            b=b,
        )
        == 0
    )
    assert (
        await _count(
            session,
            "SELECT count(*) FROM desk.outbox WHERE event_type = 'meeting.outcome_recorded' AND company_id IN (:a, :b)",
            a=a,
            b=b,
        )
        == 0
    )

    m = meetings[(held["id"], a)]
    # a contract needs its value and market
    r = await client.post(
        f"/v1/b2b/meetings/{m['id']}/outcome", json={"outcome": "contract"}, headers={**partner, "If-Match": m["etag"]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "contract_terms_required"
    r = await client.post(
        f"/v1/b2b/meetings/{m['id']}/outcome", json=contract, headers={**partner, "If-Match": m["etag"]}
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["outcome"], done["contract_value"], done["market"]) == ("contract", "48000.00", "BR")
    again = await client.post(
        f"/v1/b2b/meetings/{m['id']}/outcome", json={"outcome": "lead"}, headers={**partner, "If-Match": done["etag"]}
    )
    assert again.status_code == 409 and again.json()["type"].endswith("/already-exists")
    payload = (
        await session.execute(
            text("SELECT payload FROM desk.outbox WHERE event_type = 'meeting.outcome_recorded' AND aggregate_id = :m"),
            {"m": m["id"]},
        )
    ).scalar_one()
    assert payload["company_id"] == a and payload["event_id"] == held["id"]
    assert (payload["outcome"], payload["value"], payload["market"], payload["operator_country"]) == (
        "contract",
        "48000.00",
        "BR",
        "BR",
    )


# ---------------------------------------------------------------- concurrency (real commits)


async def test_no_double_booking_and_capacity_hold_under_16_concurrent_requests(
    committing_client: httpx.AsyncClient, engine: AsyncEngine, officer: Headers
) -> None:
    """Six companies, six operators, one slot of three tables; sixteen requests at once: each company i with
    operator i, and company 0 with every other operator and every other company with operator 0. Whatever the
    order, exactly three meetings are taken (a fourth always fits until three are: the pairs i-i are disjoint),
    no company or operator twice; the others are 409 `slot-taken`."""
    sm = make_sessionmaker(engine)
    companies = [await make_company_row(sm) for _ in range(6)]
    event_id: str | None = None
    operators: list[str] = []
    try:
        for i in range(6):
            operators.append(await _operator(committing_client, officer, f"Concurrent operator {i}"))
        event_id = str((await _event(committing_client, officer, operators, [3]))["id"])
        pairs = [(i, i) for i in range(6)] + [(0, j) for j in range(1, 6)] + [(j, 0) for j in range(1, 6)]

        async def book(ci: int, oi: int) -> httpx.Response:
            body = {"company_id": companies[ci], "operator_id": operators[oi], "slot": 0}
            return await committing_client.post(f"/v1/b2b/events/{event_id}/meetings", json=body, headers=officer)

        responses = await asyncio.gather(*(book(c, o) for c, o in pairs))
        won = [r.json() for r in responses if r.status_code == 201]
        lost = [r for r in responses if r.status_code != 201]
        assert len(won) == 3, [r.text for r in lost]
        assert all(r.status_code == 409 and r.json()["type"].endswith("/slot-taken") for r in lost)
        assert len({m["company_id"] for m in won}) == 3 and len({m["operator_id"] for m in won}) == 3
        async with sm() as s:
            live = (
                await s.execute(
                    text("SELECT count(*) FROM intake.b2b_meetings WHERE event_id = :e AND status = 'proposed'"),
                    {"e": event_id},
                )
            ).scalar_one()
        assert live == 3
    finally:
        async with sm() as s:
            if event_id is not None:
                eid = uuid.UUID(event_id)
                await s.execute(delete(B2bMeeting).where(B2bMeeting.event_id == eid))
                await s.execute(delete(B2bEventOperator).where(B2bEventOperator.event_id == eid))
                await s.execute(delete(B2bEvent).where(B2bEvent.id == eid))
            await s.execute(delete(B2bOperator).where(B2bOperator.id.in_([uuid.UUID(o) for o in operators])))
            await s.execute(delete(Company).where(Company.id.in_([uuid.UUID(c) for c in companies])))
            await s.commit()


async def make_company_row(sm: Any) -> str:
    async with sm() as s:
        company = await make_company(s)
        await s.commit()
        return str(company.id)
