"""B2B outcomes from intake to monitoring through HTTP on real PostgreSQL: an outcome recorded at intake
(`meeting.outcome_recorded` in intake's outbox) is delivered to monitoring's inbox as the delivery worker does,
and appears among the company's project results (`GET /v1/projects/{id}/kpis`, entry `b2b`) and in the B2B
statistics (`GET /v1/stats/b2b`), once whatever the redeliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.catalogue import envelope
from tests.conftest import TokenFactory
from tests.factories import delegate, make_company, make_partner
from tests.services.monitoring.builders import deliver, make_project

Headers = dict[str, str]


async def _post(client: httpx.AsyncClient, url: str, body: Any, headers: Headers, status: int = 201) -> Any:
    r = await client.post(url, json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def _held_event(
    client: httpx.AsyncClient, officer: Headers, title: str, countries: list[str]
) -> tuple[str, list[str]]:
    """An event that took place three days ago, with one operator per country, four slots of two tables."""
    operators = [
        (
            await _post(
                client,
                "/v1/b2b/operators",
                {"name": f"Operator {c}", "kind": "buyer", "country": c, "sectors": [], "interests": []},
                officer,
            )
        )["id"]
        for c in countries
    ]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    slots = [
        {
            "starts_at": (start + timedelta(minutes=30 * i)).isoformat(),
            "ends_at": (start + timedelta(minutes=30 * i + 25)).isoformat(),
            "capacity": 2,
        }
        for i in range(4)
    ]
    body = {"title": title, "kind": "virtual_matchmaking", "slots": slots, "operator_ids": operators}
    return (await _post(client, "/v1/b2b/events", body, officer))["id"], operators


async def _meeting_with_outcome(
    client: httpx.AsyncClient,
    who: Headers,
    officer: Headers,
    event_id: str,
    company: str,
    operator: str,
    slot: int,
    outcome: dict[str, Any],
) -> str:
    m = await _post(
        client,
        f"/v1/b2b/events/{event_id}/meetings",
        {"company_id": company, "operator_id": operator, "slot": slot},
        officer,
    )
    r = await client.post(f"/v1/b2b/meetings/{m['id']}/confirm", headers={**who, "If-Match": m["etag"]})
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/b2b/meetings/{m['id']}/outcome", json=outcome, headers={**who, "If-Match": r.json()["etag"]}
    )
    assert r.status_code == 200, r.text
    return str(m["id"])


async def _outbox_envelope(session: AsyncSession, meeting_id: str) -> str:
    row = (
        await session.execute(
            text(
                "SELECT event_id, event_type, event_version, source, occurred_at, aggregate_type, aggregate_id, payload"
                " FROM desk.outbox WHERE aggregate_id = :m AND event_type = 'meeting.outcome_recorded'"
            ),
            {"m": meeting_id},
        )
    ).one()
    return orjson.dumps(envelope(row)).decode()


async def test_an_outcome_recorded_at_intake_appears_among_the_projects_results_and_the_statistics(
    client: httpx.AsyncClient,
    monitoring_client: httpx.AsyncClient,
    intake: Any,
    officer: Headers,
    auditor: Headers,
    session: AsyncSession,
    token_factory: TokenFactory,
) -> None:
    partner = await make_partner(session)
    funded, unfunded = await make_company(session), await make_company(session)
    for company in (funded, unfunded):
        await delegate(session, partner, company)
    as_partner = await token_factory("partner", partner_id=partner.id)
    project = await make_project(session, company_id=funded.id, partner_id=partner.id)
    event_id, (br, vn, us) = await _held_event(
        client, officer, f"Matchmaking {uuid.uuid4().hex[:6]}", ["BR", "VN", "US"]
    )
    f, u = str(funded.id), str(unfunded.id)

    outcomes = [
        (f, br, 0, {"outcome": "contract", "contract_value": "48000.00", "market": "BR"}),
        (f, vn, 1, {"outcome": "contract", "contract_value": "12500.50", "market": "VN"}),
        (f, us, 2, {"outcome": "lead"}),
        (u, br, 1, {"outcome": "offer"}),
        (u, vn, 0, {"outcome": "no_follow_up"}),
        (u, us, 3, {"outcome": "contract", "contract_value": "1000.00", "market": "BR"}),
    ]
    ids = [await _meeting_with_outcome(client, as_partner, officer, event_id, *o) for o in outcomes]

    # before delivery monitoring knows nothing
    kpis = (await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=as_partner)).json()
    assert kpis["b2b"]["meetings"] == 0 and kpis["b2b"]["by_market"] == []

    bodies = [await _outbox_envelope(session, m) for m in ids]
    for body in bodies:
        r = await deliver(monitoring_client, body)
        assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    again = await deliver(monitoring_client, bodies[0])  # a redelivery counts once
    assert again.status_code == 200 and again.json()["status"] == "duplicate"

    # the funded company's three outcomes count for its project: 2 contracts 48000.00 + 12500.50 = 60500.50
    b2b = (await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=as_partner)).json()["b2b"]
    assert b2b == {
        "meetings": 3,
        "no_follow_up": 0,
        "leads": 1,
        "offers": 0,
        "contracts": 2,
        "contract_value": "60500.50",
        "by_market": [
            {"market": "BR", "contracts": 1, "contract_value": "48000.00"},
            {"market": "VN", "contracts": 1, "contract_value": "12500.50"},
        ],
    }
    kept = (
        (await session.execute(text("SELECT project_id FROM monitoring.b2b_outcomes WHERE company_id = :c"), {"c": u}))
        .scalars()
        .all()
    )
    assert kept == [None, None, None]  # the other company has no funded project

    # statistics of the event: all six; by market (a contract's market, else the operator's country):
    # BR: f contract 48000.00 (BR), u offer (operator BR), u contract 1000.00 (market BR) -> 3 meetings, 2 contracts
    # VN: f contract 12500.50, u no follow-up (operator VN) -> 2 meetings, 1 contract; US: f lead -> 1 meeting
    stats = (await monitoring_client.get("/v1/stats/b2b", params={"event_id": event_id}, headers=auditor)).json()
    assert [(e["event_id"], e["meetings"], e["contracts"], e["contract_value"]) for e in stats["by_event"]] == [
        (event_id, 6, 3, "61500.50")
    ]
    assert [(m["market"], m["meetings"], m["contracts"], m["contract_value"]) for m in stats["by_market"]] == [
        ("BR", 3, 2, "49000.00"),
        ("US", 1, 0, "0.00"),
        ("VN", 2, 1, "12500.50"),
    ]
    assert [(o["outcome"], o["meetings"], o["contract_value"]) for o in stats["by_outcome"]] == [
        ("contract", 3, "61500.50"),
        ("lead", 1, "0.00"),
        ("no_follow_up", 1, "0.00"),
        ("offer", 1, "0.00"),
    ]
    # statistics are for officers, auditors and services
    assert (await monitoring_client.get("/v1/stats/b2b", headers=as_partner)).status_code == 403


async def test_project_results_of_another_partners_company_are_404(
    monitoring_client: httpx.AsyncClient, session: AsyncSession, token_factory: TokenFactory
) -> None:
    mine, other = await make_partner(session), await make_partner(session)
    company = await make_company(session)
    project = await make_project(session, company_id=company.id, partner_id=mine.id)
    as_other = await token_factory("partner", partner_id=other.id)
    assert (await monitoring_client.get(f"/v1/projects/{project.id}/kpis", headers=as_other)).status_code == 404
