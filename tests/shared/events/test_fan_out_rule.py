"""The fan-out gives each event to exactly the subscriptions that hear it, on committed data.

The fan-out finds a partner's subscriptions through the event's recorded partner and its company's delegates
instead of trying every partner's subscription against every event (on a click day with fifty partners that
was most of the fan-out's time). These tests hold it to the rule as written here, independently of the SQL,
over random desks: services hear what they subscribe to; a company its own events; a partner an event it is
recorded on unless its delegation on the company has ended, and any event about a company it is an active
delegate of (events about a delegation go to the recorded partner only); inactive and deleted subscriptions
hear nothing."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from shared.events.worker import publish_pending
from shared.models import CompanyDelegate, Delivery, OutboxEvent, Subscription
from tests.e2e.harness import settle_deliveries

TYPES = ["application.submitted", "application.withdrawn", "delegation.accepted", "company.delegation_changed"]


def hears(event: dict[str, Any], partner: uuid.UUID, delegates: dict[tuple[uuid.UUID, uuid.UUID], bool]) -> bool:
    """The rule, written out: `delegates[(company, partner)]` is whether that delegation is active."""
    company = event["company_id"]
    about_delegation = event["aggregate_type"] == "delegation" or event["event_type"] == "company.delegation_changed"
    if partner == event["partner_id"] and (
        company is None or about_delegation or delegates.get((company, partner)) is not False
    ):
        return True
    return company is not None and not about_delegation and delegates.get((company, partner)) is True


def expected(
    events: list[dict[str, Any]],
    subscriptions: list[dict[str, Any]],
    delegates: dict[tuple[uuid.UUID, uuid.UUID], bool],
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    out = set()
    for e in events:
        for s in subscriptions:
            if not s["active"] or s["deleted_at"] is not None:
                continue
            if e["event_type"] not in s["event_types"] and "*" not in s["event_types"]:
                continue
            if (s["owner_kind"] == "company" and s["company_id"] == e["company_id"]) or (
                s["owner_kind"] == "partner" and hears(e, s["partner_id"], delegates)
            ):
                out.add((e["event_id"], s["id"]))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_each_event_goes_to_exactly_the_subscriptions_that_hear_it(engine, seed):
    rng = random.Random(seed)
    await settle_deliveries(engine)
    partners = [uuid.uuid4() for _ in range(8)]
    companies = [uuid.uuid4() for _ in range(5)]
    # each (company, partner) pair: no delegation, an active one, or one that has ended
    delegates = {
        (c, p): rng.random() < 0.5 for c in companies for p in partners if rng.random() < 0.4
    }  # True active, False ended
    subscriptions = [
        {
            "id": uuid.uuid4(),
            "owner_kind": kind,
            "partner_id": owner if kind == "partner" else None,
            "company_id": owner if kind == "company" else None,
            "url": "http://partner.test/hook",
            "event_types": rng.choice([["*"], [rng.choice(TYPES)], rng.sample(TYPES, 2)]),
            "active": rng.random() < 0.85,
            "deleted_at": datetime.now(UTC) if rng.random() < 0.1 else None,
            "secret": "whsec_" + "A" * 44,
            "created_by": "test",
        }
        for kind, owner in [("partner", rng.choice(partners)) for _ in range(14)]
        + [("company", rng.choice(companies)) for _ in range(4)]
    ]
    events = []
    for _ in range(60):
        event_type = rng.choice(TYPES)
        aggregate_type = "delegation" if event_type == "delegation.accepted" else "application"
        if event_type == "company.delegation_changed":
            aggregate_type = "company"
        aggregate = str(uuid.uuid4())
        events.append(
            {
                "event_id": uuid.uuid4(),
                "event_type": event_type,
                "source": "intake",
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate,
                "ordering_key": aggregate,
                "partner_id": rng.choice([*partners, None]),
                "company_id": rng.choice([*companies, None]),
                "payload": {},
            }
        )
    async with engine.begin() as conn:
        await conn.execute(
            insert(CompanyDelegate),
            [
                {"company_id": c, "partner_id": p, "delegation_id": uuid.uuid4(), "active": active}
                for (c, p), active in delegates.items()
            ],
        )
        await conn.execute(insert(Subscription), subscriptions)
        await conn.execute(insert(OutboxEvent), events)
    try:
        while True:
            async with engine.begin() as conn:
                if not await publish_pending(conn, limit=25):  # several fan-outs, as the worker runs them
                    break
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(OutboxEvent.event_id, Delivery.subscription_id)
                .join(Delivery, Delivery.event_id == OutboxEvent.id)
                .where(
                    OutboxEvent.event_id.in_([e["event_id"] for e in events]),
                    Delivery.subscription_id.in_([s["id"] for s in subscriptions]),
                )
            )
            got = [(r.event_id, r.subscription_id) for r in rows]
        want = expected(events, subscriptions, delegates)
        assert len(got) == len(set(got)), "one delivery per event and subscription"
        assert set(got) == want
        assert any(s["owner_kind"] == "partner" for s in subscriptions) and len(want) >= 10, "the desk is not trivial"
    finally:
        async with engine.begin() as conn:  # the random subscriptions must not hear other tests' events
            await conn.execute(
                text("UPDATE desk.subscriptions SET deleted_at = now() WHERE id = ANY(:ids)"),
                {"ids": [s["id"] for s in subscriptions]},
            )
            await conn.execute(text("DELETE FROM desk.company_delegates WHERE company_id = ANY(:c)"), {"c": companies})
        await settle_deliveries(engine)
