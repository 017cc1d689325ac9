"""The budget under concurrency, on committed data: hundreds of approvals at once against a budget that fits
fewer, two allocations at once, and releases racing approvals. The ledger never goes below zero or over the
total, nobody is funded twice, and the ledger adds up to what is committed."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.services.evaluation.builders import FakeIntake, evaluated_application
from tests.services.evaluation.test_inbox import service_headers

APPLICATIONS = 200
DUPLICATES = 50


async def arrange(engine: AsyncEngine, app: Any, *, budget: str, amounts: list[Decimal]) -> tuple[uuid.UUID, list[str],
                                                                                                  dict[str, str]]:
    """A fresh call (fake intake) with one evaluated application per amount (grant 20 %, loan the rest), committed."""
    fake = FakeIntake()
    call_id = fake.add_call(budget_total=budget, procedure="first_come")
    app.state.intake_client = fake
    ids = []
    async with make_sessionmaker(engine)() as s:
        for i, amount in enumerate(amounts, start=1):
            grant = (amount / 5).quantize(Decimal("0.01"))
            a = await evaluated_application(s, call_id=call_id, grant=str(grant), loan=str(amount - grant),
                                            protocol_number=i)
            ids.append(str(a.application_id))
        headers = await make_token(s, "officer")
        await s.commit()
    return call_id, ids, headers


async def check_ledger(engine: AsyncEngine, call_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as c:
        b = (await c.execute(text("SELECT total, committed, freed FROM evaluation.budgets WHERE call_id = :c"),
                             {"c": call_id})).one()
        funded = (await c.execute(text(
            "SELECT count(*) AS n, coalesce(sum(granted), 0) AS s, coalesce(sum(\"grant\" + loan), 0) AS gl "
            "FROM evaluation.fundings WHERE call_id = :c AND status IN ('funded', 'partially_funded')"),
            {"c": call_id})).one()
        statuses = dict((await c.execute(text(
            "SELECT status, count(*) FROM evaluation.fundings WHERE call_id = :c GROUP BY status"),
            {"c": call_id})).all())
        ledger = (await c.execute(text(
            "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'commitment'), 0) AS committed, "
            "coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) AS released FROM evaluation.budget_entries "
            "WHERE call_id = :c"), {"c": call_id})).one()
        mismatched = (await c.execute(text(
            "SELECT count(*) FROM evaluation.fundings f LEFT JOIN (SELECT application_id, sum(CASE kind WHEN "
            "'commitment' THEN amount ELSE -amount END) AS net FROM evaluation.budget_entries WHERE call_id = :c "
            "GROUP BY application_id) e USING (application_id) "
            "WHERE f.call_id = :c AND f.granted <> coalesce(e.net, 0)"),
            {"c": call_id})).scalar_one()
        committed_twice = (await c.execute(text(
            "SELECT count(*) FROM (SELECT application_id FROM evaluation.budget_entries WHERE call_id = :c AND "
            "kind = 'commitment' AND reason = 'approval' GROUP BY application_id HAVING count(*) > 1) x"),
            {"c": call_id})).scalar_one()
    assert b.committed <= b.total, "never over-committed"
    assert funded.s == b.committed == funded.gl, "what the fundings hold is what the budget committed"
    assert ledger.committed - ledger.released == b.committed and ledger.released == b.freed, "the ledger adds up"
    assert mismatched == 0, "each application's ledger entries add up to its granted aid"
    return {"total": b.total, "committed": b.committed, "freed": b.freed, "funded": funded.n, "statuses": statuses,
            "committed_twice": committed_twice}


async def test_200_concurrent_approvals_never_over_commit_nor_fund_twice(engine, evaluation_committing_app,
                                                                         evaluation_committing_client):
    rng = random.Random(20261128)
    amounts = [Decimal(rng.randrange(5_000_00, 15_000_00)) / 100 for _ in range(APPLICATIONS)]
    budget = sum(amounts[:APPLICATIONS // 2], Decimal(0)) - Decimal("0.01")  # fits fewer than half
    call_id, ids, officer = await arrange(engine, evaluation_committing_app, budget=str(budget), amounts=amounts)
    targets = ids + rng.sample(ids, DUPLICATES)  # some applications approved twice at once
    rng.shuffle(targets)

    started = time.perf_counter()
    responses = await asyncio.gather(*(evaluation_committing_client.post(f"/v1/fundings/{a}/approve",
                                                                         headers=officer) for a in targets))
    elapsed = time.perf_counter() - started

    codes = [r.status_code for r in responses]
    assert codes.count(200) == APPLICATIONS and codes.count(409) == DUPLICATES, sorted(set(codes))
    ok = {r.json()["application_id"] for r in responses if r.status_code == 200}
    assert ok == set(ids), "every application got exactly one answer that allocated it"
    figures = await check_ledger(engine, call_id)
    assert figures["committed_twice"] == 0
    assert figures["statuses"].get("funded", 0) + figures["statuses"].get("waiting", 0) == APPLICATIONS
    assert 0 < figures["funded"] < APPLICATIONS, "the budget fits some, not all"
    assert figures["total"] - figures["committed"] < max(amounts), "nobody left waiting would have fitted"
    print(f"\n{len(targets)} concurrent approvals ({APPLICATIONS} applications, {DUPLICATES} approved twice) in "
          f"{elapsed:.2f}s: funded {figures['funded']}, waiting {figures['statuses'].get('waiting', 0)}, "
          f"committed {figures['committed']} of {figures['total']}")


async def test_two_allocations_at_once_allocate_each_application_once(engine, evaluation_committing_app,
                                                                      evaluation_committing_client):
    amounts = [Decimal("10000.00")] * 60
    call_id, _, officer = await arrange(engine, evaluation_committing_app, budget="255000.00", amounts=amounts)
    first, second = await asyncio.gather(
        *(evaluation_committing_client.post(f"/v1/calls/{call_id}/allocation", headers=officer) for _ in range(2)))
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    considered = sorted(r.json()["considered"] for r in (first, second))
    assert considered == [0, 60], "one allocation took everything, the other found nothing left"
    figures = await check_ledger(engine, call_id)
    assert (figures["funded"], figures["committed"], figures["statuses"]["waiting"]) == (25, Decimal("250000.00"), 35)


async def test_releases_racing_approvals_keep_the_ledger_consistent(engine, evaluation_committing_app,
                                                                    evaluation_committing_client):
    amounts = [Decimal("10000.00")] * 80
    call_id, ids, officer = await arrange(engine, evaluation_committing_app, budget="300000.00", amounts=amounts)
    first = ids[:30]
    for a in first:  # 30 funded: the budget is full
        r = await evaluation_committing_client.post(f"/v1/fundings/{a}/approve", headers=officer)
        assert r.status_code == 200, r.text
    service = service_headers()
    releases = [evaluation_committing_client.post(f"/v1/calls/{call_id}/budget/releases", headers=service, json={
        "application_id": a, "amount": "10000.00", "reason": "Revoca"}) for a in first[:10]]
    approvals = [evaluation_committing_client.post(f"/v1/fundings/{a}/approve", headers=officer) for a in ids[30:]]
    responses = await asyncio.gather(*releases, *approvals)
    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    figures = await check_ledger(engine, call_id)
    assert figures["committed"] == figures["total"] == Decimal("300000.00"), "every freed euro was funded again"
    assert figures["statuses"]["revoked"] == 10 and figures["funded"] == 30
    assert figures["freed"] == Decimal("100000.00")
