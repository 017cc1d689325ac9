"""Graceful shutdown: SIGTERM while submits are in flight (held on the call's counter row, locked by the test,
or queued in the service behind those) lets them finish with their receipts, refuses new connections at
once, and the process exits 0 in time."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call
from tests.reliability.processes import IntakeProcess

IN_FLIGHT = 5
SUBMIT_POOL = 3  # connections of the submit path
GRACE = 15  # uvicorn's --timeout-graceful-shutdown


@pytest.fixture
def intake(database_url: str) -> Iterator[IntakeProcess]:
    proc = IntakeProcess(database_url, graceful_seconds=GRACE, env={"INTAKE_SUBMIT_POOL_SIZE": str(SUBMIT_POOL)})
    try:
        yield proc
    finally:
        proc.close()


async def _waiting_on_locks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'intake' AND "
                        "wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        )


async def test_sigterm_lets_in_flight_submits_finish_and_refuses_new_connections(
    intake: IntakeProcess, engine: AsyncEngine
) -> None:
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        companies = [await make_company(s) for _ in range(IN_FLIGHT)]
        for c in companies:
            await delegate(s, partner, c)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()

    intake.start()
    async with httpx.AsyncClient(base_url=intake.url, headers=headers, timeout=30, trust_env=False) as http:
        drafts = []
        for c in companies:
            r = await http.post("/v1/applications", json=draft_body(call.id, c.id))
            assert r.status_code == 201, r.text
            drafts.append(r.json()["id"])
            await declare_stamp_duty(http, r.json()["id"], {})

        async with engine.connect() as holder:
            lock = await holder.begin()
            await holder.execute(
                text("SELECT 1 FROM intake.call_counters WHERE call_id = :c FOR UPDATE"), {"c": call.id}
            )
            submits = [asyncio.create_task(http.post(f"/v1/applications/{a}/submit")) for a in drafts]
            deadline = time.monotonic() + 15
            # Pre-checked submits commit in groups (one transaction per group): at least one group waits on
            # the lock in PostgreSQL, the others wait in the service for it.
            while await _waiting_on_locks(engine) < 1:
                assert time.monotonic() < deadline, "the submits never reached the counter's lock"
                assert not any(t.done() for t in submits), [t.result().text for t in submits if t.done()]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # every request has reached the service by now
            assert not any(t.done() for t in submits), [t.result().text for t in submits if t.done()]

            intake.signal(signal.SIGTERM)
            refused = False
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # a new connection is refused while the old ones drain
                try:
                    async with httpx.AsyncClient(timeout=1, trust_env=False) as fresh:
                        await fresh.get(intake.url + "/healthz")
                except (httpx.ConnectError, httpx.RemoteProtocolError):  # refused, or accepted in the race and
                    refused = True  # closed unanswered: no new request runs
                    break
                await asyncio.sleep(0.05)
            assert refused, "the server still accepted new connections after SIGTERM"
            assert not any(t.done() for t in submits), "an in-flight submit ended before the lock was released"
            assert intake.proc is not None and intake.proc.poll() is None, "exited without waiting for them"
            await lock.rollback()

        results = await asyncio.wait_for(asyncio.gather(*submits), timeout=GRACE)
    assert [r.status_code for r in results] == [201] * IN_FLIGHT, [r.text for r in results]
    assert sorted(r.json()["receipt"]["protocol_number"] for r in results) == list(range(1, IN_FLIGHT + 1))
    # uvicorn drains, then re-raises the captured SIGTERM so a supervisor sees why it stopped: a clean exit is
    # 0 or "terminated by SIGTERM" (143 in a shell), never a crash code, and within the grace period
    assert await asyncio.to_thread(intake.wait, GRACE + 5) in (0, -signal.SIGTERM), intake.output()
    assert "Traceback" not in intake.output(), intake.output()

    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT count(*) FROM intake.applications WHERE call_id = :c AND status = 'submitted'"),
                {"c": call.id},
            )
        ).scalar_one()
    assert stored == IN_FLIGHT
