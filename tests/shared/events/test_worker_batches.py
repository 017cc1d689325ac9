"""The delivery worker's internal batches, pacing and kept-alive webhook connections, on committed data.

Internal deliveries go one request per service carrying many events, and only the failed ones are sent again;
pacing holds internal batches while `application.submitted` arrives fast and releases them after the maximum lag
(a stepped clock, no sleeping); partners' deliveries reuse one TCP connection per checked address."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_sessionmaker
from shared.events.worker import DeliveryWorker, ensure_internal_subscriptions
from shared.models import Delivery, OutboxEvent, Subscription
from shared.settings import DeskSettings
from tests.conftest import KEYRING
from tests.e2e.harness import settle_deliveries, worker_settings
from tests.factories import make_partner

EVALUATION, MONITORING = "http://evaluation.test", "http://monitoring.test"


class Services:
    """Evaluation and monitoring as the worker sees them: each batch request noted; the events named in
    `failing` answered `failed` once by evaluation (as an inbox does when intake is down), the rest `processed`.
    The two services' batches go out side by side, in either order."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, str, list[str]]] = []  # (host, path, event ids)
        self.failing: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Bearer ")
        ids = [e["id"] for e in orjson.loads(request.content)["events"]]
        self.batches.append((request.url.host, request.url.path, ids))
        results = []
        for i in ids:
            if i in self.failing and request.url.host == "evaluation.test":
                self.failing.discard(i)
                problem = {"type": "/problems/peer-unavailable", "status": 503, "detail": "intake down"}
                results.append({"event_id": i, "status": "failed", "problem": problem})
            else:
                results.append({"event_id": i, "status": "processed"})
        return httpx.Response(200, json={"results": results})

    def to(self, host: str) -> list[list[str]]:
        return [ids for h, _p, ids in self.batches if h == host]


def settings(**kw: Any) -> DeskSettings:
    return worker_settings(evaluation_url=EVALUATION, monitoring_url=MONITORING, **kw)


async def write_events(engine: AsyncEngine, n: int, event_type: str = "application.submitted", **kw: Any) -> list[str]:
    async with make_sessionmaker(engine)() as s:
        events = [
            OutboxEvent(
                event_id=uuid.uuid4(),
                event_type=event_type,
                source="intake",
                aggregate_type="application",
                aggregate_id=str(uuid.uuid4()),
                payload={},
                **kw,
            )
            for _ in range(n)
        ]
        s.add_all(events)
        await s.commit()
    return [str(e.event_id) for e in events]


async def unpublished(engine: AsyncEngine, event_ids: list[str]) -> int:
    """How many of these events the fan-out has not published yet."""
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM desk.outbox WHERE published_at IS NULL"
                        " AND event_id = ANY(CAST(:e AS uuid[]))"
                    ),
                    {"e": event_ids},
                )
            ).scalar_one()
        )


async def statuses(engine: AsyncEngine, event_ids: list[str], service: str) -> list[tuple[str, int, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT d.status, d.attempts, d.last_error FROM desk.deliveries d"
                " JOIN desk.outbox o ON o.id = d.event_id JOIN desk.subscriptions s ON s.id = d.subscription_id"
                " WHERE s.service = :s AND o.event_id = ANY(CAST(:e AS uuid[])) ORDER BY o.id"
            ),
            {"s": service, "e": event_ids},
        )
        return [tuple(r) for r in rows]


async def prepared(engine: AsyncEngine, conf: DeskSettings) -> None:
    await settle_deliveries(engine)
    async with engine.begin() as conn:
        await ensure_internal_subscriptions(conn, conf)


async def test_one_request_per_service_carries_many_events_and_only_the_failed_are_sent_again(engine):
    conf = settings(pacing_submits_per_second=0)
    await prepared(engine, conf)
    ids = await write_events(engine, 30)
    services = Services()
    services.failing = {ids[3], ids[17], ids[29]}
    async with httpx.AsyncClient(transport=httpx.MockTransport(services)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http)
        assert await worker.fan_out() >= 30
        writes: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            words = statement.split()
            if words[0] in ("INSERT", "UPDATE"):
                writes.append(" ".join(words[:3]) if words[0] == "INSERT" else " ".join(words[:2]))
                # one statement for PostgreSQL to run, not one per row (an executemany is run once per row)
                assert not executemany, statement

        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        try:
            assert await worker.deliver_internal() == 60  # 30 events to each of the two services
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", seen)
        # each service's round recorded set-based: its attempts logged by one statement, its delivered ones
        # marked by one; each failed one has its own back-off (one statement each)
        assert writes.count("INSERT INTO desk.delivery_attempts") == 2
        assert writes.count("UPDATE desk.deliveries") == 2 + 3

        # one request per service, at the batch route, with every event in it
        assert services.to("evaluation.test") == [ids] and services.to("monitoring.test") == [ids]
        assert {p for _h, p, _i in services.batches} == {"/v1/internal/events/batch"}
        evaluation = await statuses(engine, ids, "evaluation")
        failed = [i for i, (status, _a, _e) in zip(ids, evaluation, strict=True) if status == "pending"]
        assert failed == [ids[3], ids[17], ids[29]]
        assert {row for i, row in zip(ids, evaluation, strict=True) if i in failed} == {("pending", 1, "http_error")}
        assert {r[0] for r in await statuses(engine, ids, "monitoring")} == {"delivered"}

        async with engine.begin() as conn:  # their back-off ends
            await conn.execute(text("UPDATE desk.deliveries SET next_attempt_at = now() WHERE status = 'pending'"))
        assert await worker.deliver_internal() == 3
    # the second request carries only the three that failed, to evaluation only
    assert services.to("evaluation.test") == [ids, failed] and services.to("monitoring.test") == [ids]
    assert {r[:2] for r in await statuses(engine, ids, "evaluation")} == {("delivered", 1), ("delivered", 2)}
    async with engine.connect() as conn:
        logged = (
            await conn.execute(
                text(
                    "SELECT a.attempt, a.status_code, a.error FROM desk.delivery_attempts a"
                    " JOIN desk.deliveries d ON d.id = a.delivery_id JOIN desk.outbox o ON o.id = d.event_id"
                    " JOIN desk.subscriptions s ON s.id = d.subscription_id"
                    " WHERE s.service = 'evaluation' AND o.event_id = :e ORDER BY a.attempt"
                ),
                {"e": ids[17]},
            )
        ).all()
    assert [tuple(r) for r in logged] == [(1, 503, "http_error"), (2, 200, None)]


async def test_a_batch_request_that_fails_as_a_whole_keeps_every_event_for_later(engine):
    conf = settings(pacing_submits_per_second=0)
    await prepared(engine, conf)
    ids = await write_events(engine, 5)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503))) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http)
        await worker.fan_out()
        assert await worker.deliver_internal() == 10
    assert set(await statuses(engine, ids, "evaluation")) == {("pending", 1, "http_error")}


async def test_a_service_without_the_batch_route_gets_the_events_one_by_one(engine):
    conf = settings(pacing_submits_per_second=0)
    await prepared(engine, conf)
    ids = await write_events(engine, 4)
    singles: list[str] = []

    def older_service(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch"):
            return httpx.Response(404)
        singles.append(orjson.loads(request.content)["id"])
        assert request.headers["webhook-id"] == singles[-1]
        return httpx.Response(200, json={"event_id": singles[-1], "status": "processed"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(older_service)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http)
        await worker.fan_out()
        assert await worker.deliver_internal() == 8
    assert sorted(singles) == sorted(ids * 2)
    assert {r[0] for r in await statuses(engine, ids, "evaluation")} == {"delivered"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_pacing_holds_internal_batches_while_submits_arrive_fast_and_releases_them_after_the_max_lag(engine):
    # 5 submits/s over a 2 s window: 20 submits in a round is 10/s, above the threshold
    conf = settings(pacing_submits_per_second=5, pacing_window_seconds=2, pacing_max_lag_seconds=15)
    await prepared(engine, conf)
    clock = Clock()
    services = Services()
    sent: list[str] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(services)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http, clock=clock)

        async def round_at(t: float, submits: int) -> None:
            clock.now = 1000.0 + t
            sent.extend(await write_events(engine, submits))
            await worker.run_once()

        for t in (0, 5, 10):  # the burst lasts: held (the lag is below 15 s)
            await round_at(t, 20)
            assert services.batches == [], f"nothing delivered at t={t}"
        # the fan-out waits too: the events are kept in the outbox, not yet published nor given deliveries
        assert await statuses(engine, sent, "evaluation") == []
        assert await unpublished(engine, sent) == len(sent) == 60

        await round_at(15, 20)  # 15 s held: published and delivered anyway, the whole backlog in one request each
        assert services.to("evaluation.test") == [sent] and services.to("monitoring.test") == [sent]
        assert {r[0] for r in await statuses(engine, sent, "evaluation")} == {"delivered"}
        assert await unpublished(engine, sent) == 0

        await round_at(16, 20)  # the burst goes on: held again
        await round_at(17, 0)
        assert len(services.to("evaluation.test")) == 1

        await round_at(18.5, 0)  # no submit in the last 2 s: the rate fell, released at once
        assert len(services.to("evaluation.test")) == 2
        assert services.to("evaluation.test")[1] == sent[80:]
    assert {r[0] for r in await statuses(engine, sent, "evaluation")} == {"delivered"}
    assert {r[0] for r in await statuses(engine, sent, "monitoring")} == {"delivered"}


async def test_the_rate_counts_submits_as_they_arrive_not_as_a_catch_up_publishes_them(engine):
    """A burst's backlog published at once after it is not a new burst: the rate counts the events as they
    reach the outbox (whoever publishes them), so the next submits after the burst go out at once. And a second
    worker, which published none of them, sees the same burst."""
    conf = settings(pacing_submits_per_second=5, pacing_window_seconds=2, pacing_max_lag_seconds=15)
    await prepared(engine, conf)
    clock = Clock()
    services = Services()
    async with httpx.AsyncClient(transport=httpx.MockTransport(services)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http, clock=clock)
        other = DeliveryWorker(engine, KEYRING, conf, http=http, clock=clock)
        burst = await write_events(engine, 30)  # 15/s over the window
        await worker.run_once()
        assert services.batches == [] and await unpublished(engine, burst) == 30
        await other.run_once()
        assert services.batches == [], "the other worker sees the burst too"

        clock.now += 3  # no submit for 3 s: the burst is over, its 30 events published and delivered at once
        await worker.run_once()
        assert services.to("evaluation.test") == [burst] and await unpublished(engine, burst) == 0

        clock.now += 0.5  # a straggler right after the catch-up: not held back by the 30 just published
        straggler = await write_events(engine, 1)
        await worker.run_once()
        assert services.to("evaluation.test") == [burst, straggler]


async def test_a_slow_trickle_of_submits_is_delivered_at_once(engine):
    conf = settings(pacing_submits_per_second=5, pacing_window_seconds=2, pacing_max_lag_seconds=15)
    await prepared(engine, conf)
    services = Services()
    async with httpx.AsyncClient(transport=httpx.MockTransport(services)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http, clock=Clock())
        ids = await write_events(engine, 10)  # 5/s over the window: not above the threshold
        await worker.run_once()
    assert services.to("evaluation.test") == [ids]


# ---------------------------------------------------------------- partners: kept-alive connections


class Receiver:
    """A partner's HTTP/1.1 endpoint on loopback that counts TCP connections and keeps them alive."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.connections = 0
        self.ids: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                headers = {
                    k.lower(): v for k, v in (line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                await asyncio.sleep(self.delay)
                self.in_flight -= 1
                self.ids.append(headers["webhook-id"])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def resolving_to(*addresses: str) -> Callable[[str, int], Any]:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def subscribed_partner(engine: AsyncEngine, url: str) -> uuid.UUID:
    async with make_sessionmaker(engine)() as s:
        partner = await make_partner(s)
        s.add(
            Subscription(
                id=uuid.uuid4(),
                owner_kind="partner",
                partner_id=partner.id,
                url=url,
                event_types=["training.enrolled"],
                active=True,
                secret="whsec_" + "A" * 44,
                created_by="test",
            )
        )
        await s.commit()
        return partner.id


async def delivered(engine: AsyncEngine, event_ids: list[str]) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(text("count(*)"))
                    .select_from(Delivery.__table__.join(OutboxEvent.__table__, OutboxEvent.id == Delivery.event_id))
                    .where(Delivery.status == "delivered", OutboxEvent.event_id.in_([uuid.UUID(i) for i in event_ids]))
                )
            ).scalar_one()
        )


async def test_many_deliveries_to_one_receiver_share_one_kept_alive_connection(engine):
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conf = settings(pacing_submits_per_second=0, webhook_connections_per_host=1)
    await settle_deliveries(engine)
    partner_id = await subscribed_partner(engine, f"http://hooks.partner.example:{port}/hook")
    worker = DeliveryWorker(engine, KEYRING, conf, resolver=resolving_to("127.0.0.1"))
    try:
        first = await write_events(engine, 20, "training.enrolled", partner_id=partner_id)
        await worker.fan_out()
        assert await worker.deliver_due() == 20
        later = await write_events(engine, 5, "training.enrolled", partner_id=partner_id)
        await worker.fan_out()
        assert await worker.deliver_due() == 5
    finally:
        await worker.aclose()
        server.close()
        await server.wait_closed()
    assert sorted(receiver.ids) == sorted(first + later)
    assert receiver.connections == 1, "every delivery over the one kept-alive connection"
    assert await delivered(engine, first + later) == 25


async def test_deliveries_to_one_receiver_go_concurrently_up_to_the_connection_limit(engine):
    receiver = Receiver(delay=0.05)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conf = settings(pacing_submits_per_second=0, webhook_connections_per_host=3)
    await settle_deliveries(engine)
    partner_id = await subscribed_partner(engine, f"http://hooks.partner.example:{port}/hook")
    worker = DeliveryWorker(engine, KEYRING, conf, resolver=resolving_to("127.0.0.1"))
    try:
        ids = await write_events(engine, 12, "training.enrolled", partner_id=partner_id)
        await worker.fan_out()
        assert await worker.deliver_due() == 12
    finally:
        await worker.aclose()
        server.close()
        await server.wait_closed()
    assert sorted(receiver.ids) == sorted(ids)
    assert receiver.connections == 3 and receiver.most_in_flight == 3
    assert await delivered(engine, ids) == 12


async def test_another_name_on_the_same_address_gets_a_connection_of_its_own(engine):
    # a connection (and, over TLS, its session) made for one name never carries another name's deliveries
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conf = settings(pacing_submits_per_second=0, webhook_connections_per_host=1)
    await settle_deliveries(engine)
    one = await subscribed_partner(engine, f"http://one.partner.example:{port}/hook")
    two = await subscribed_partner(engine, f"http://two.partner.example:{port}/hook")
    worker = DeliveryWorker(engine, KEYRING, conf, resolver=resolving_to("127.0.0.1"))
    try:
        ids = await write_events(engine, 6, "training.enrolled", partner_id=one)
        ids += await write_events(engine, 6, "training.enrolled", partner_id=two)
        await worker.fan_out()
        assert await worker.deliver_due() == 12
    finally:
        await worker.aclose()
        server.close()
        await server.wait_closed()
    assert sorted(receiver.ids) == sorted(ids)
    assert receiver.connections == 2


async def test_every_claim_is_planned_for_its_own_parameters(engine):
    """After five runs PostgreSQL may plan a prepared statement once for any parameters; for the claim that plan
    walks every delivery in id order, seconds per claim behind a click day's backlog. Each claim's transaction asks
    for a plan of its own first, whichever kind of delivery it claims."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    worker = DeliveryWorker(engine, KEYRING, settings(pacing_submits_per_second=0))
    try:
        for _ in range(7):  # past the five runs after which a generic plan may be chosen
            await worker.claim()
            await worker.claim_internal("evaluation")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await worker.aclose()
    claims = [i for i, s in enumerate(statements) if "WITH due AS" in s]
    assert len(claims) == 14
    assert all(
        "set_config('plan_cache_mode', 'force_custom_plan', true)" in statements[i - 1]
        and "set_config('enable_sort', 'off', true)" in statements[i - 1]
        for i in claims
    )


async def test_a_slow_inbox_batch_does_not_hold_the_partners_webhooks_back(engine):
    """Evaluation's batch can take seconds (admissibility for each application): the partners' webhooks go out
    meanwhile, not after it. Each batch request here answers only once a partner's webhook has arrived (or after
    5 s): served one after the other, both batches would time out first."""
    conf = settings(pacing_submits_per_second=0)
    await settle_deliveries(engine)
    await prepared(engine, conf)
    partner_id = await subscribed_partner(engine, "http://hooks.partner.example/hook")
    await write_events(engine, 3)  # application.submitted: to evaluation and to monitoring
    webhooks = await write_events(engine, 2, "training.enrolled", partner_id=partner_id)
    partner_called = asyncio.Event()
    partner_seen_during_batch: list[bool] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch"):
            try:
                await asyncio.wait_for(partner_called.wait(), 5)
            except TimeoutError:
                pass
            partner_seen_during_batch.append(partner_called.is_set())
            ids = [e["id"] for e in orjson.loads(request.content)["events"]]
            return httpx.Response(200, json={"results": [{"event_id": i, "status": "processed"} for i in ids]})
        partner_called.set()
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http, resolver=resolving_to("127.0.0.1"))
        await worker.fan_out()
        assert await worker.deliver_due() == 3 * 2 + 2
    assert partner_seen_during_batch == [True, True]
    assert await delivered(engine, webhooks) == 2


async def test_pacing_holds_the_partners_webhooks_too_and_loses_none(engine):
    """During a burst the partners' webhooks wait with the internal batches (the worker's sending and its
    receivers' answers would take CPU from intake); once the maximum lag is reached they all go out."""
    conf = settings(pacing_submits_per_second=5, pacing_window_seconds=2, pacing_max_lag_seconds=15)
    await prepared(engine, conf)
    partner_id = await subscribed_partner(engine, "http://hooks.partner.example/hook")
    clock = Clock()
    hooks: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch"):
            ids = [e["id"] for e in orjson.loads(request.content)["events"]]
            return httpx.Response(200, json={"results": [{"event_id": i, "status": "processed"} for i in ids]})
        hooks.append(request.headers["webhook-id"])
        return httpx.Response(204)

    webhooks: list[str] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http, clock=clock, resolver=resolving_to("127.0.0.1"))
        for t in (0, 5, 10):  # the burst lasts: nothing goes out
            clock.now = 1000.0 + t
            await write_events(engine, 20)
            webhooks += await write_events(engine, 2, "training.enrolled", partner_id=partner_id)
            await worker.run_once()
            assert hooks == [], f"no webhook during the burst, t={t}"
        clock.now = 1015.0  # 15 s held: everything goes out
        await write_events(engine, 20)
        await worker.run_once()
    assert len(hooks) == 6
    assert await delivered(engine, webhooks) == 6


async def test_a_running_worker_keeps_sending_webhooks_while_a_services_batch_is_answered(engine):
    """A running worker has a lane per desk service and one for the partners, none waiting for another: while
    evaluation's one batch is being answered (seconds on a click day), claim after claim of webhooks goes out,
    and monitoring's batch too. Here evaluation answers only once every webhook has arrived (or after 5 s); three
    claims of two are needed for the six webhooks, so a worker that waited for evaluation between claims would
    leave four of them until after that answer."""
    conf = settings(pacing_submits_per_second=0, worker_batch=2, worker_poll_seconds=0.05)
    await settle_deliveries(engine)
    await prepared(engine, conf)
    partner_id = await subscribed_partner(engine, "http://hooks.partner.example/hook")
    submitted = await write_events(engine, 3)  # application.submitted: to evaluation and to monitoring
    webhooks = await write_events(engine, 6, "training.enrolled", partner_id=partner_id)
    hooks: list[str] = []
    all_hooks_in = asyncio.Event()
    evaluation_saw: list[int] = []
    monitoring_answered_before_evaluation: list[bool] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch"):
            if request.url.host == "evaluation.test":
                try:
                    await asyncio.wait_for(all_hooks_in.wait(), 5)
                except TimeoutError:
                    pass
                evaluation_saw.append(len(hooks))
            else:
                monitoring_answered_before_evaluation.append(not evaluation_saw)
            ids = [e["id"] for e in orjson.loads(request.content)["events"]]
            return httpx.Response(200, json={"results": [{"event_id": i, "status": "processed"} for i in ids]})
        hooks.append(request.headers["webhook-id"])
        if len(hooks) == 6:
            all_hooks_in.set()
        return httpx.Response(204)

    stop = asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        worker = DeliveryWorker(engine, KEYRING, conf, http=http, resolver=resolving_to("127.0.0.1"))
        running = asyncio.create_task(worker.run(stop))
        try:
            for _ in range(200):
                if await delivered(engine, webhooks + submitted) == 6 + 3 * 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)
    assert evaluation_saw == [6], "every webhook went out while evaluation's batch was being answered"
    assert monitoring_answered_before_evaluation == [True]
    assert await delivered(engine, webhooks + submitted) == 12


async def test_each_lane_claims_from_its_own_queue(engine):
    """A delivery knows at fan-out whether it goes to a desk service; a service's claim takes only its own
    deliveries and the partners' claim only theirs, however many of the others come first."""
    conf = settings(pacing_submits_per_second=0)
    await prepared(engine, conf)
    partner_id = await subscribed_partner(engine, "http://hooks.partner.example/hook")
    submitted = await write_events(engine, 5)
    webhooks = await write_events(engine, 2, "training.enrolled", partner_id=partner_id)
    worker = DeliveryWorker(engine, KEYRING, conf)
    try:
        await worker.fan_out()
        async with engine.connect() as conn:
            flags = (
                await conn.execute(
                    text(
                        "SELECT coalesce(s.service, s.owner_kind), d.internal, count(*) FROM desk.deliveries d"
                        " JOIN desk.outbox o ON o.id = d.event_id JOIN desk.subscriptions s ON s.id = d.subscription_id"
                        " WHERE o.event_id = ANY(CAST(:e AS uuid[])) GROUP BY 1, 2 ORDER BY 1"
                    ),
                    {"e": submitted + webhooks},
                )
            ).all()
        assert [tuple(r) for r in flags] == [("evaluation", True, 5), ("monitoring", True, 5), ("partner", False, 2)]
        monitoring = await worker.claim_internal("monitoring")
        assert {r.service for r in monitoring} == {"monitoring"} and len(monitoring) == 5
        partners, _allowances = await worker.claim()
        assert {str(r.event_id) for r in partners} == set(webhooks)
        evaluation = await worker.claim_internal("evaluation")
        assert {str(r.event_id) for r in evaluation} == set(submitted)
    finally:
        await worker.aclose()


async def test_a_claim_walks_its_queue_in_order_and_stops_at_its_batch(engine):
    """Each claim reads its queue's index in id order and stops at its batch, never reading and sorting the whole
    backlog, whatever the statistics say (on a click day they predate the burst)."""
    from shared.events.worker import CLAIM, CLAIM_INTERNAL, CUSTOM_PLAN, SERVICE_SUBSCRIPTION

    conf = settings(pacing_submits_per_second=0)
    await prepared(engine, conf)
    async with engine.begin() as conn:
        subscription = (await conn.execute(SERVICE_SUBSCRIPTION, {"service": "evaluation"})).scalar_one()
        await conn.execute(CUSTOM_PLAN)
        plans = {}
        for name, claim, params in (
            ("internal", CLAIM_INTERNAL, {"n": 200, "lease": 60, "subscription": subscription}),
            ("partners", CLAIM, {"n": 50, "lease": 60}),
        ):
            rows = await conn.execute(text("EXPLAIN " + claim.text), params)
            plans[name] = "\n".join(r[0] for r in rows)
        await conn.rollback()
    for name, index in (
        ("internal", "ix_deliveries_pending_by_subscription"),
        ("partners", "ix_deliveries_pending_external"),
    ):
        assert f"Index Scan using {index} on deliveries d" in plans[name], plans[name]
        assert "Sort" not in plans[name] and "Bitmap" not in plans[name], plans[name]


async def test_the_order_check_of_a_claim_reads_only_its_own_aggregate(engine):
    """Only the oldest pending delivery of an application may go; the check reads that application's pending
    deliveries alone, not the queue in front of it. After a burst the queue's index still holds every delivery
    made since the last vacuum (thousands already sent, and the in-flight ones leased ahead): walking it from
    the start for each of a batch's candidates cost a third of a second per claim on a click day."""
    from shared.events.worker import CLAIM_INTERNAL, CUSTOM_PLAN, SERVICE_SUBSCRIPTION

    conf = settings(pacing_submits_per_second=0)
    await prepared(engine, conf)
    await write_events(engine, 3000)
    worker = DeliveryWorker(engine, KEYRING, conf)
    try:
        while await worker.fan_out():
            pass
    finally:
        await worker.aclose()
    async with engine.begin() as conn:
        subscription = (await conn.execute(SERVICE_SUBSCRIPTION, {"service": "evaluation"})).scalar_one()
        # the first 2,500 sent (their entries stay in the pending indexes until a vacuum), the next 200 in flight
        await conn.execute(
            text(
                "UPDATE desk.deliveries SET status = 'delivered' WHERE id IN (SELECT id FROM desk.deliveries"
                " WHERE subscription_id = :s AND status = 'pending' ORDER BY id LIMIT 2500)"
            ),
            {"s": subscription},
        )
        await conn.execute(
            text(
                "UPDATE desk.deliveries SET next_attempt_at = now() + interval '1 minute' WHERE id IN (SELECT id"
                " FROM desk.deliveries WHERE subscription_id = :s AND status = 'pending' ORDER BY id LIMIT 200)"
            ),
            {"s": subscription},
        )
    async with engine.begin() as conn:
        await conn.execute(CUSTOM_PLAN)
        params = {"n": 200, "lease": 60, "subscription": subscription}
        rows = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + CLAIM_INTERNAL.text), params)
        plan = rows.scalar_one()[0]
        await conn.rollback()

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node] + [n for child in node.get("Plans", []) for n in nodes(child)]

    checks = [n for n in nodes(plan["Plan"]) if n.get("Alias") == "e"]
    assert checks, plan
    for check in checks:
        assert check.get("Index Name") == "ix_deliveries_pending_by_aggregate", check
        # one application's deliveries per candidate: a handful of index pages each, never the queue
        assert check["Shared Hit Blocks"] + check.get("Shared Read Blocks", 0) <= 10 * check["Actual Loops"], check
