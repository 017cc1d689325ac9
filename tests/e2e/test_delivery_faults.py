"""Faults the event delivery survives, over real HTTP on loopback: a partner endpoint that is down, slow or
failing for a while, a worker process killed in the middle of a delivery, evaluation down when intake
accepts a submission, and a dead letter replayed. Every wait is bounded; every server and process stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from shared.settings import REPO_ROOT
from tests.conftest import KEYRING
from tests.e2e.harness import (
    Receiver,
    applicant,
    attempts_of,
    dead_url,
    deliveries_of,
    evaluation_server,
    intake_server,
    running_worker,
    settle_deliveries,
    submit_new,
    subscribe,
    wait_for,
    withdraw,
    worker_settings,
)
from tests.loopback import LoopbackServer


@pytest_asyncio.fixture(loop_scope="session")
async def intake(engine: AsyncEngine) -> AsyncIterator[LoopbackServer]:
    await settle_deliveries(engine)
    server = intake_server(engine)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def http(intake: LoopbackServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=intake.url, timeout=10, trust_env=False) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    yield r
    await r.stop()


def delivered(rows: list[Any]) -> bool:
    return bool(rows) and all(r.status == "delivered" for r in rows)


async def test_endpoint_down_then_up_gets_every_event_in_order_per_application(engine, intake, http, receiver):
    who = await applicant(engine, companies=3)
    sub = await subscribe(http, who, receiver.url, ["application.submitted", "application.withdrawn"])
    apps = [await submit_new(http, who, i) for i in range(3)]
    await withdraw(http, who, apps[0])
    await withdraw(http, who, apps[2])

    async with running_worker(engine, worker_settings()):
        # down: the port is closed; every delivery fails and backs off
        async def failed_twice() -> bool:
            # two failed attempts recorded (a claim counts its attempt before sending it: the count alone could be
            # an attempt still in flight, which would then find the endpoint up)
            rows = await deliveries_of(engine, sub["id"])
            submitted = [r for r in rows if r.event_type == "application.submitted"]
            if len(rows) != 5 or any(r.status != "pending" for r in submitted):
                return False
            for r in submitted:
                if len([a for a in await attempts_of(engine, r.id) if a.error is not None]) < 2:
                    return False
            return True

        await wait_for(failed_twice, within=15, what="failed attempts while the endpoint is down")
        assert receiver.hits == []

        await receiver.start()
        rows = await wait_for(lambda: _all_delivered(engine, sub["id"]), within=20, what="every delivery")

    by_event = {str(r.event_id): r for r in rows}
    assert receiver.unique_ids() and set(receiver.unique_ids()) == set(by_event), "no event lost, none foreign"
    for app_id in apps:
        arrived = [
            orjson.loads(h.body)["type"] for h in receiver.hits if orjson.loads(h.body)["subject"]["id"] == app_id
        ]
        expected = (
            ["application.submitted", "application.withdrawn"] if app_id != apps[1] else ["application.submitted"]
        )
        assert list(dict.fromkeys(arrived)) == expected, f"order of {app_id}: {arrived}"
    for h in receiver.hits:
        Webhook(sub["secret"]).verify(h.body, h.headers)
    first = min(rows, key=lambda r: r.id)
    log = await attempts_of(engine, first.id)
    assert len(log) >= 3 and all(a.status_code is None and a.error == "connect_failed" for a in log[:-1])
    assert log[-1].status_code == 204


async def _all_delivered(engine: AsyncEngine, subscription_id: str) -> list[Any] | None:
    rows = await deliveries_of(engine, subscription_id)
    return rows if delivered(rows) else None


async def test_a_slow_endpoint_times_out_is_retried_and_gets_the_event(engine, intake, http, receiver):
    receiver.sleep_first, receiver.sleep_seconds = 2, 1.0
    await receiver.start()
    who = await applicant(engine)
    sub = await subscribe(http, who, receiver.url, ["application.submitted"])
    app_id = await submit_new(http, who)

    async with running_worker(engine, worker_settings(webhook_timeout_seconds=0.3)):
        (row,) = await wait_for(lambda: _all_delivered(engine, sub["id"]), within=20, what="the slow delivery")

    log = await attempts_of(engine, row.id)
    assert [(a.attempt, a.status_code) for a in log] == [(1, None), (2, None), (3, 204)]
    assert all(a.error == "timeout" and a.latency_ms >= 250 for a in log[:2])
    assert receiver.unique_ids() == [str(row.event_id)] and len(receiver.hits) == 3
    assert orjson.loads(receiver.hits[-1].body)["subject"]["id"] == app_id


async def test_an_endpoint_answering_500_for_a_while_gets_the_event_with_attempts_logged(
    engine, intake, http, receiver
):
    receiver.fail_first = 3
    await receiver.start()
    who = await applicant(engine)
    sub = await subscribe(http, who, receiver.url, ["application.submitted"])
    await submit_new(http, who)

    async with running_worker(engine, worker_settings()):
        (row,) = await wait_for(lambda: _all_delivered(engine, sub["id"]), within=20, what="the delivery")

    log = await attempts_of(engine, row.id)
    assert [(a.attempt, a.status_code) for a in log] == [(1, 500), (2, 500), (3, 500), (4, 204)]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in log)
    # the receiver's answer ("temporarily broken") is not kept: a status code and an error code only
    assert [a.error for a in log] == ["http_error", "http_error", "http_error", None]
    assert row.attempts == 4 and row.last_status_code == 204
    # the partner reads the same log through the API
    r = await http.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=who.headers)
    (item,) = r.json()["items"]
    assert [(a["attempt"], a["status_code"]) for a in item["attempt_log"]] == [(1, 500), (2, 500), (3, 500), (4, 204)]
    assert "temporarily broken" not in r.text


def _worker_process(database_url: str, data_dir: str) -> subprocess.Popen[bytes]:
    """`desk worker` as its own process on the test database (generous timeout: the receiver blocks)."""
    env = {
        **os.environ,
        "DESK_DATABASE_URL": database_url,
        "DESK_ENVIRONMENT": "test",
        "DESK_LOG_LEVEL": "WARNING",
        "DESK_SIGNING_KEY": KEYRING.private_pem().decode(),
        "DESK_DATA_DIR": data_dir,
        "DESK_WEBHOOK_TIMEOUT_SECONDS": "30",
        "DESK_WORKER_POLL_SECONDS": "0.05",
        "DESK_WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
        "DESK_WEBHOOK_BACKOFF_MAX_SECONDS": "0.5",
        "DESK_INTAKE_URL": dead_url(),
        "DESK_EVALUATION_URL": dead_url(),
        "DESK_MONITORING_URL": dead_url(),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "desk.cli", "worker"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_worker_killed_mid_delivery_leaves_it_to_the_next_worker(
    engine, database_url, intake, http, receiver, tmp_path
):
    receiver.block_first = 1
    await receiver.start()
    who = await applicant(engine)
    sub = await subscribe(http, who, receiver.url, ["application.submitted"])
    await submit_new(http, who)

    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_worker_process(database_url, str(tmp_path)))
        await wait_for(lambda: _true_if(receiver.arrived.is_set()), within=30, what="the first request")
        procs[0].send_signal(signal.SIGKILL)  # in the middle of the delivery: the request is still open
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
        receiver.release.set()
        (row,) = await deliveries_of(engine, sub["id"])
        # the claim (attempt counted, lease taken) was committed before the request; nothing was recorded after
        assert row.status == "pending" and row.attempts == 1, "claimed, then nothing recorded"
        assert await attempts_of(engine, row.id) == []
        async with engine.begin() as conn:  # the lease (three timeouts and more) runs out
            await conn.execute(text("UPDATE desk.deliveries SET next_attempt_at = now() WHERE id = :d"), {"d": row.id})

        procs.append(_worker_process(database_url, str(tmp_path)))
        (row,) = await wait_for(lambda: _all_delivered(engine, sub["id"]), within=30, what="redelivery")
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(timeout=15) == 0, "SIGTERM stops the worker gracefully"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    assert len(receiver.hits) == 2 and receiver.hits[0].webhook_id == receiver.hits[1].webhook_id
    assert receiver.unique_ids() == [str(row.event_id)], "the receiver deduplicates on webhook-id"
    assert row.attempts == 2 and row.last_status_code == 204
    assert [(a.attempt, a.status_code) for a in await attempts_of(engine, row.id)] == [(2, 204)]
    Webhook(sub["secret"]).verify(receiver.hits[1].body, receiver.hits[1].headers)


async def _true_if(value: bool) -> bool:
    return value


async def test_evaluation_down_when_intake_submits_receives_the_event_when_back(engine, intake, http):
    who = await applicant(engine)
    evaluation, intake_client = evaluation_server(engine, intake.url)  # not started: evaluation is down
    try:
        async with running_worker(engine, worker_settings(evaluation_url=evaluation.url)):
            app_id = await submit_new(http, who)  # 201: the submission does not wait for evaluation

            async def failing() -> Any:
                # two attempts failed and recorded (a claim counts its attempt before sending it, so the count
                # alone could be an attempt still in flight, which would then find evaluation up)
                rows = await _internal_deliveries(engine, app_id)
                if not rows or rows[0].status != "pending" or await _failed_attempts(engine, rows[0].id) < 2:
                    return None
                return rows

            (row,) = await wait_for(failing, within=15, what="failed deliveries to evaluation")
            assert row.last_error == "connect_failed"

            await evaluation.start()
            async with httpx.AsyncClient(base_url=evaluation.url, trust_env=False, timeout=10) as ev:

                async def received() -> Any:
                    r = await ev.get(f"/v1/applications/{app_id}", headers=who.officer)
                    return r.json() if r.status_code == 200 else None

                got = await wait_for(received, within=20, what="evaluation to store the application")
        assert got["status"] == "received" and got["id"] == app_id and got["protocol_number"] >= 1
        (row,) = await _internal_deliveries(engine, app_id)
        assert row.status == "delivered" and row.last_status_code == 200 and row.attempts >= 3
    finally:
        await evaluation.stop()
        await intake_client.aclose()


async def _failed_attempts(engine: AsyncEngine, delivery_id: int) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM desk.delivery_attempts WHERE delivery_id = :d AND error IS NOT NULL")
        return int((await conn.execute(query, {"d": delivery_id})).scalar_one())


async def _internal_deliveries(engine: AsyncEngine, app_id: str) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT d.id, d.status, d.attempts, d.last_status_code, d.last_error FROM desk.deliveries d"
                        " JOIN desk.outbox o ON o.id = d.event_id JOIN desk.subscriptions s ON s.id = d.subscription_id"
                        " WHERE s.service = 'evaluation' AND o.aggregate_id = :a AND o.event_type = "
                        "'application.submitted'"
                    ),
                    {"a": app_id},
                )
            ).all()
        )


async def test_a_dead_letter_after_max_attempts_is_delivered_by_a_replay(engine, intake, http, receiver):
    who = await applicant(engine)
    sub = await subscribe(http, who, receiver.url, ["application.submitted"])
    await submit_new(http, who)

    async with running_worker(engine, worker_settings(webhook_max_attempts=3)):

        async def dead() -> Any:
            rows = await deliveries_of(engine, sub["id"])
            return rows if rows and rows[0].status == "dead" else None

        (row,) = await wait_for(dead, within=15, what="the dead letter")
        log = await attempts_of(engine, row.id)
        assert row.attempts == 3 and [a.attempt for a in log] == [1, 2, 3]
        assert all(a.status_code is None and a.error for a in log)

        await receiver.start()
        r = await http.post(f"/v1/webhooks/{sub['id']}/deliveries/{row.id}/replay", headers=who.headers)
        assert r.status_code == 202, r.text
        (replay_id,) = r.json()["delivery_ids"]

        async def replayed() -> Any:
            rows = {d.id: d for d in await deliveries_of(engine, sub["id"])}
            return rows if rows[replay_id].status == "delivered" else None

        rows = await wait_for(replayed, within=15, what="the replay")

    assert rows[row.id].status == "dead", "the dead letter stays as it was, for the record"
    assert len(receiver.hits) == 1 and receiver.hits[0].webhook_id == str(row.event_id)
    Webhook(sub["secret"]).verify(receiver.hits[0].body, receiver.hits[0].headers)
