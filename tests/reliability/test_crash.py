"""Crash during click day: intake is SIGKILLed in the middle of a burst of submits, restarted, and every
request is retried with its Idempotency-Key. Nothing accepted is lost or doubled, every retry gets the
original receipt, protocol numbers stay unique and gap-free, the register's hash chain still verifies."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_sessionmaker
from shared.domain.receipts import verify_chain
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call
from tests.reliability.processes import IntakeProcess

BURST = 200
KILL_AFTER = 40  # 2xx answers seen before the SIGKILL


@pytest.fixture
def intake(database_url: str) -> Iterator[IntakeProcess]:
    proc = IntakeProcess(database_url)
    try:
        yield proc
    finally:
        proc.close()


async def test_sigkill_mid_burst_loses_nothing_and_retries_get_the_original_receipt(
    intake: IntakeProcess, engine: AsyncEngine
) -> None:
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        companies = [await make_company(s) for _ in range(BURST)]
        for c in companies:
            await delegate(s, partner, c)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()

    intake.start()
    # idle connections dropped well before the server's 5 s keep-alive: a request sent on one the server is
    # closing at that instant would fail with a reset (seen when a slow machine spreads a chunk's answers)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=intake.url, headers=headers, timeout=20, limits=limits, trust_env=False
    ) as http:
        drafts: list[str] = []
        for chunk in range(0, BURST, 50):
            made = await asyncio.gather(
                *[http.post("/v1/applications", json=draft_body(call.id, c.id)) for c in companies[chunk : chunk + 50]]
            )
            assert all(r.status_code == 201 for r in made), [r.text for r in made if r.status_code != 201][:1]
            drafts += [r.json()["id"] for r in made]
            await asyncio.gather(*[declare_stamp_duty(http, r.json()["id"], {}) for r in made])
        keys = {app_id: f"clickday-{uuid.uuid4()}" for app_id in drafts}

        first: dict[str, httpx.Response | BaseException] = {}
        accepted = 0
        killed = asyncio.Event()

        async def submit(app_id: str) -> None:
            nonlocal accepted
            try:
                resp = await http.post(f"/v1/applications/{app_id}/submit", headers={"Idempotency-Key": keys[app_id]})
            except httpx.HTTPError as e:
                first[app_id] = e
                return
            first[app_id] = resp
            if 200 <= resp.status_code < 300:
                accepted += 1
                if accepted >= KILL_AFTER and not killed.is_set():
                    killed.set()
                    intake.signal(signal.SIGKILL)

        await asyncio.wait_for(asyncio.gather(*[submit(a) for a in drafts]), timeout=60)
        assert killed.is_set(), "the burst finished before the kill: nothing was tested"
        assert intake.wait(timeout=10) == -signal.SIGKILL

    ok_before = {a: r.json() for a, r in first.items() if isinstance(r, httpx.Response) and r.status_code == 201}
    others = {a: r for a, r in first.items() if a not in ok_before}
    assert len(ok_before) >= KILL_AFTER
    assert others, "every submit finished before the kill"
    # the only answers before the kill are receipts (nothing else was wrong with these drafts)
    assert all(not isinstance(r, httpx.Response) for r in others.values()), {
        a: r.status_code for a, r in others.items() if isinstance(r, httpx.Response)
    }

    intake.start()  # same database, same signing key; a fresh process
    async with httpx.AsyncClient(
        base_url=intake.url, headers=headers, timeout=20, limits=limits, trust_env=False
    ) as http:
        try:
            retried = await asyncio.gather(
                *[http.post(f"/v1/applications/{a}/submit", headers={"Idempotency-Key": keys[a]}) for a in drafts]
            )
        except httpx.HTTPError as e:
            raise AssertionError(f"retry failed: {e!r}\n{intake.output()}") from e
        again: dict[str, Any] = {}
        for a, resp in zip(drafts, retried, strict=True):
            assert resp.status_code == 201, (a, resp.status_code, resp.text)
            again[a] = resp.json()
            if a in ok_before:
                assert resp.headers.get("idempotent-replayed") == "true", a
                assert resp.json() == ok_before[a], "a retry must get the original receipt, byte for byte"
        register: dict[str, Any] = {"items": []}
        cursor = None
        while True:  # the whole register, a page (at most 100) at a time
            page = (
                await http.get(
                    f"/v1/calls/{call.id}/register", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
                )
            ).json()
            register["items"] += page["items"]
            if not (cursor := page["next_cursor"]):
                break

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, protocol_number, content_sha256, chain_hash FROM intake.applications "
                    "WHERE call_id = :c AND status = 'submitted' ORDER BY protocol_number"
                ),
                {"c": call.id},
            )
        ).all()
        events = (
            await conn.execute(
                text(
                    "SELECT aggregate_id, count(*) AS n FROM desk.outbox WHERE event_type = 'application.submitted' "
                    "AND aggregate_id = ANY(:ids) GROUP BY aggregate_id"
                ),
                {"ids": list(drafts)},
            )
        ).all()
        counter = (
            await conn.execute(
                text("SELECT last_protocol FROM intake.call_counters WHERE call_id = :c"), {"c": call.id}
            )
        ).scalar_one()

    # every draft stored exactly once, numbers unique and gap-free, the counter agrees
    assert sorted(str(r.id) for r in rows) == sorted(drafts)
    assert [r.protocol_number for r in rows] == list(range(1, BURST + 1))
    assert counter == BURST
    assert len(events) == BURST and all(e.n == 1 for e in events), "one submitted event per application"
    by_id = {str(r.id): r for r in rows}
    for a, body in again.items():
        receipt = body["receipt"]
        assert receipt["protocol_number"] == by_id[a].protocol_number
        assert receipt["content_sha256"] == by_id[a].content_sha256
        assert body["chain_hash"] == by_id[a].chain_hash
    assert [e["protocol_number"] for e in register["items"]] == list(range(1, BURST + 1))
    assert verify_chain((e["receipt"], e["chain_hash"]) for e in register["items"]) is None
