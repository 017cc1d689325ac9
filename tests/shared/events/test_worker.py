"""The delivery worker's claim on committed data: deliveries to a subscription deactivated or deleted after
the fan-out are dead-lettered with the reason and never sent; a live sibling is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, text, update

from shared.audit import record_event
from shared.auth import Principal
from shared.db import make_sessionmaker
from shared.events.worker import DeliveryWorker, publish_pending
from shared.models import Delivery, OutboxEvent, Subscription
from shared.routing import Actor
from tests.conftest import KEYRING
from tests.e2e.harness import settle_deliveries, worker_settings
from tests.factories import make_partner


def resolving_to(*addresses: str) -> Any:
    """A resolver the test controls: every name resolves to these addresses."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"active": False}, "subscription inactive"), ({"deleted_at": datetime.now(UTC)}, "subscription deleted")],
)
async def test_deliveries_to_a_removed_subscription_are_dead_lettered_not_sent(engine, change, reason):
    await settle_deliveries(engine)
    async with make_sessionmaker(engine)() as s:
        partner = await make_partner(s)
        subs = [
            Subscription(
                id=uuid.uuid4(),
                owner_kind="partner",
                partner_id=partner.id,
                url=f"http://partner.test/{name}",
                event_types=["*"],
                active=True,
                secret="whsec_" + "A" * 44,
                created_by="test",
            )
            for name in ("gone", "live")
        ]
        s.add_all(subs)
        s.add(
            OutboxEvent(
                event_id=uuid.uuid4(),
                event_type="application.submitted",
                source="intake",
                aggregate_type="application",
                aggregate_id=str(uuid.uuid4()),
                partner_id=partner.id,
                payload={},
            )
        )
        await s.commit()
    gone, live = subs
    async with engine.begin() as conn:
        while await publish_pending(conn):
            pass
        await conn.execute(update(Subscription).where(Subscription.id == gone.id).values(**change))

    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(f"http://{request.headers['host']}{request.url.path}")
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        worker = DeliveryWorker(engine, KEYRING, worker_settings(), http=http, resolver=resolving_to("192.0.2.10"))
        assert await worker.deliver_due() >= 1

    async with engine.connect() as conn:
        rows = {
            r.subscription_id: r
            for r in (
                await conn.execute(
                    select(Delivery.id, Delivery.subscription_id, Delivery.status, Delivery.last_error).where(
                        Delivery.subscription_id.in_([gone.id, live.id])
                    )
                )
            ).all()
        }
        attempts = (
            await conn.execute(
                text("SELECT count(*) FROM desk.delivery_attempts WHERE delivery_id = :d"), {"d": rows[gone.id].id}
            )
        ).scalar_one()
    assert rows[gone.id].status == "dead" and rows[gone.id].last_error == reason and attempts == 0
    assert rows[live.id].status == "delivered"
    assert "http://partner.test/gone" not in sent and "http://partner.test/live" in sent


async def test_the_worker_sweeps_expired_idempotency_keys(engine):
    import uuid as _uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text as _text

    from shared.events.worker import DeliveryWorker
    from tests.conftest import KEYRING

    who = f"sweep-{_uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        for key, expires in (
            ("old", datetime.now(UTC) - timedelta(hours=1)),
            ("live", datetime.now(UTC) + timedelta(hours=24)),
        ):
            await conn.execute(
                _text(
                    "INSERT INTO desk.idempotency_keys (principal, key, method, path, request_hash, expires_at) "
                    "VALUES (:p, :k, 'POST', '/x', '\\x00', :e)"
                ),
                {"p": who, "k": key, "e": expires},
            )
    worker = DeliveryWorker(engine, KEYRING, worker_settings())
    assert await worker.sweep_expired_keys() >= 1
    async with engine.connect() as conn:
        left = (
            (await conn.execute(_text("SELECT key FROM desk.idempotency_keys WHERE principal = :p"), {"p": who}))
            .scalars()
            .all()
        )
    await worker.http.aclose()
    assert left == ["live"]


async def test_one_applications_events_go_out_in_order_whatever_their_subject(engine):
    """A decision's acceptance (subject: the decision) and the project it starts (subject: the project) share
    the application's ordering key: while the first is pending (its endpoint answered 500), the second waits;
    an event of another application goes out meanwhile. Once the first is delivered, the second follows."""
    await settle_deliveries(engine)
    application, other_application = uuid.uuid4(), uuid.uuid4()
    decision, project, other_decision = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    actor = Actor(Principal("worker-order-test", "service", frozenset()), None, "evaluation")
    async with make_sessionmaker(engine)() as s:
        partner = await make_partner(s)
        sub = Subscription(
            id=uuid.uuid4(),
            owner_kind="partner",
            partner_id=partner.id,
            url="http://partner.test/ordered",
            event_types=["*"],
            active=True,
            secret="whsec_" + "A" * 44,
            created_by="test",
        )
        s.add(sub)
        for event_type, kind, subject, key in (
            ("decision.accepted", "decision", decision, application),
            ("project.started", "project", project, application),
            ("decision.accepted", "decision", other_decision, other_application),
        ):
            await record_event(
                s,
                actor,
                event_type=event_type,
                subject_type=kind,
                subject_id=subject,
                ordering_key=key,
                payload={"application_id": str(key)},
                partner_id=partner.id,
            )
        await s.commit()
    async with engine.begin() as conn:
        while await publish_pending(conn):
            pass

    sent: list[tuple[str, str, int]] = []
    failing = {str(decision)}

    def answer(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        status = 500 if body["subject"]["id"] in failing else 204
        sent.append((body["type"], body["subject"]["id"], status))
        return httpx.Response(status)

    async def deliver() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            worker = DeliveryWorker(engine, KEYRING, worker_settings(), http=http, resolver=resolving_to("192.0.2.10"))
            while await worker.deliver_due():
                pass

    await deliver()
    assert sent == [("decision.accepted", str(decision), 500), ("decision.accepted", str(other_decision), 204)]

    # the endpoint recovers and the failed delivery comes due: the decision, then the project
    failing.clear()
    async with engine.begin() as conn:
        await conn.execute(
            update(Delivery)
            .where(Delivery.subscription_id == sub.id, Delivery.status == "pending")
            .values(next_attempt_at=datetime.now(UTC))
        )
    await deliver()
    assert sent[2:] == [("decision.accepted", str(decision), 204), ("project.started", str(project), 204)]
    async with engine.connect() as conn:
        keys = (await conn.execute(select(Delivery.aggregate_key).where(Delivery.subscription_id == sub.id))).scalars()
        assert sorted(keys) == sorted([str(application), str(application), str(other_application)])
