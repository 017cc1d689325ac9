"""The budget under concurrency, on committed data: hundreds of approvals clicked at once against a budget that
fits fewer (first-come takes them in protocol order only, each confirmed by a second officer), two allocations at
once, and releases racing approvals. The ledger never goes below zero or over the
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
from tests.services.evaluation.builders import FakeIntake, approve_funding, evaluated_application
from tests.services.evaluation.test_inbox import service_headers

APPLICATIONS = 200
DUPLICATES = 50


async def arrange(
    engine: AsyncEngine, app: Any, *, budget: str, amounts: list[Decimal]
) -> tuple[uuid.UUID, list[str], dict[str, str]]:
    """A fresh call (fake intake) with one evaluated application per amount (grant 20 %, loan the rest), committed."""
    fake = FakeIntake()
    call_id = fake.add_call(budget_total=budget, procedure="first_come")
    app.state.intake_client = fake
    ids = []
    async with make_sessionmaker(engine)() as s:
        for i, amount in enumerate(amounts, start=1):
            grant = (amount / 5).quantize(Decimal("0.01"))
            a = await evaluated_application(
                s, call_id=call_id, grant=str(grant), loan=str(amount - grant), protocol_number=i
            )
            ids.append(str(a.application_id))
        headers = await make_token(s, "officer")
        await s.commit()
    return call_id, ids, headers


async def check_ledger(engine: AsyncEngine, call_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as c:
        b = (
            await c.execute(
                text("SELECT total, committed, freed FROM evaluation.budgets WHERE call_id = :c"), {"c": call_id}
            )
        ).one()
        funded = (
            await c.execute(
                text(
                    'SELECT count(*) AS n, coalesce(sum(granted), 0) AS s, coalesce(sum("grant" + loan), 0) AS gl '
                    "FROM evaluation.fundings WHERE call_id = :c AND status IN ('funded', 'partially_funded')"
                ),
                {"c": call_id},
            )
        ).one()
        statuses = dict(
            (
                await c.execute(
                    text("SELECT status, count(*) FROM evaluation.fundings WHERE call_id = :c GROUP BY status"),
                    {"c": call_id},
                )
            ).all()
        )
        ledger = (
            await c.execute(
                text(
                    "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'commitment'), 0) AS committed, "
                    "coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) AS released FROM "
                    "evaluation.budget_entries "
                    "WHERE call_id = :c"
                ),
                {"c": call_id},
            )
        ).one()
        mismatched = (
            await c.execute(
                text(
                    "SELECT count(*) FROM evaluation.fundings f LEFT JOIN (SELECT application_id, sum(CASE "
                    "kind WHEN "
                    "'commitment' THEN amount ELSE -amount END) AS net FROM evaluation.budget_entries "
                    "WHERE call_id = :c "
                    "GROUP BY application_id) e USING (application_id) "
                    "WHERE f.call_id = :c AND f.granted <> coalesce(e.net, 0)"
                ),
                {"c": call_id},
            )
        ).scalar_one()
        committed_twice = (
            await c.execute(
                text(
                    "SELECT count(*) FROM (SELECT application_id FROM evaluation.budget_entries WHERE call_id = :c AND "
                    "kind = 'commitment' AND reason = 'approval' GROUP BY application_id HAVING count(*) > 1) x"
                ),
                {"c": call_id},
            )
        ).scalar_one()
    assert b.committed <= b.total, "never over-committed"
    assert funded.s == b.committed == funded.gl, "what the fundings hold is what the budget committed"
    assert ledger.committed - ledger.released == b.committed and ledger.released == b.freed, "the ledger adds up"
    assert mismatched == 0, "each application's ledger entries add up to its granted aid"
    return {
        "total": b.total,
        "committed": b.committed,
        "freed": b.freed,
        "funded": funded.n,
        "statuses": statuses,
        "committed_twice": committed_twice,
    }


async def test_200_approvals_clicked_at_once_fund_in_protocol_order_never_over_commit_nor_fund_twice(
    engine, evaluation_committing_app, evaluation_committing_client
):
    rng = random.Random(20261128)
    amounts = [Decimal(rng.randrange(5_000_00, 15_000_00)) / 100 for _ in range(APPLICATIONS)]
    budget = sum(amounts[: APPLICATIONS // 2], Decimal(0)) - Decimal("0.01")  # fits fewer than half
    call_id, ids, officer = await arrange(engine, evaluation_committing_app, budget=str(budget), amounts=amounts)
    async with make_sessionmaker(engine)() as s:
        others = [await make_token(s, "officer") for _ in range(2)]
        await s.commit()
    targets = ids + rng.sample(ids, DUPLICATES)  # some applications clicked twice at once
    rng.shuffle(targets)
    http = evaluation_committing_client

    # every application clicked at once, in any order: first-come takes only the first in protocol order
    started = time.perf_counter()
    responses = await asyncio.gather(*(http.post(f"/v1/fundings/{a}/approve", headers=officer) for a in targets))
    codes = [r.status_code for r in responses]
    assert codes.count(202) == 1 and codes.count(409) == len(targets) - 1, sorted(set(codes))
    assert next(r for r in responses if r.status_code == 202).json()["resource_id"] == ids[0]
    assert {r.json()["type"] for r in responses if r.status_code == 409} <= {
        "/problems/protocol-order-pending",
        "/problems/confirmation-pending",
    }

    # then in protocol order, each proposal confirmed by two other officers at once: exactly one funds it
    for n, a in enumerate(ids):
        if n:
            assert (await http.post(f"/v1/fundings/{a}/approve", headers=officer)).status_code == 202
        confirms = await asyncio.gather(
            *(http.post(f"/v1/fundings/{a}/confirm", headers=h) for h in (others[0], others[1], others[0]))
        )
        assert sorted(r.status_code for r in confirms) == [200, 409, 409], [r.text for r in confirms]
    elapsed = time.perf_counter() - started

    figures = await check_ledger(engine, call_id)
    assert figures["committed_twice"] == 0
    assert figures["statuses"].get("funded", 0) + figures["statuses"].get("waiting", 0) == APPLICATIONS
    assert 0 < figures["funded"] < APPLICATIONS, "the budget fits some, not all"
    assert figures["total"] - figures["committed"] < max(amounts), "nobody left waiting would have fitted"
    async with engine.connect() as c:
        order = (
            await c.execute(
                text(
                    "SELECT application_id::text FROM evaluation.fundings WHERE call_id = :c AND "
                    "status = 'funded' ORDER BY protocol_number"
                ),
                {"c": call_id},
            )
        ).scalars()
        assert list(order) == ids[: figures["funded"]], "the funded are the first in protocol order"
    print(
        f"\n{len(targets)} approvals clicked at once, then {APPLICATIONS} four-eyes approvals in protocol order "
        f"in {elapsed:.2f}s: funded {figures['funded']}, waiting {figures['statuses'].get('waiting', 0)}, "
        f"committed {figures['committed']} of {figures['total']}"
    )


async def test_two_allocations_at_once_allocate_each_application_once(
    engine, evaluation_committing_app, evaluation_committing_client
):
    amounts = [Decimal("10000.00")] * 60
    call_id, _, officer = await arrange(engine, evaluation_committing_app, budget="255000.00", amounts=amounts)
    first, second = await asyncio.gather(
        *(evaluation_committing_client.post(f"/v1/calls/{call_id}/allocation", headers=officer) for _ in range(2))
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    considered = sorted(r.json()["considered"] for r in (first, second))
    assert considered == [0, 60], "one allocation took everything, the other found nothing left"
    figures = await check_ledger(engine, call_id)
    assert (figures["funded"], figures["committed"], figures["statuses"]["waiting"]) == (25, Decimal("250000.00"), 35)


async def test_releases_racing_approvals_keep_the_ledger_consistent(
    engine, evaluation_committing_app, evaluation_committing_client
):
    amounts = [Decimal("10000.00")] * 80
    call_id, ids, officer = await arrange(engine, evaluation_committing_app, budget="300000.00", amounts=amounts)
    async with make_sessionmaker(engine)() as s:
        second = await make_token(s, "officer")
        await s.commit()
    http = evaluation_committing_client
    first = ids[:30]
    for a in first:  # 30 funded: the budget is full
        r = await approve_funding(http, a, officer, second)
        assert r.status_code == 200, r.text
    service = service_headers()
    releases = [
        http.post(
            f"/v1/calls/{call_id}/budget/releases",
            headers=service,
            json={"application_id": a, "amount": "10000.00", "reason": "Revoca"},
        )
        for a in first[:10]
    ]

    async def approvals_in_protocol_order() -> list[Any]:
        return [await approve_funding(http, a, officer, second) for a in ids[30:]]

    *released, approved = await asyncio.gather(*releases, approvals_in_protocol_order())
    responses = [*released, *approved]
    assert all(r.status_code == 200 for r in responses), {r.status_code: r.text for r in responses}
    figures = await check_ledger(engine, call_id)
    assert figures["committed"] == figures["total"] == Decimal("300000.00"), "every freed euro was funded again"
    assert figures["statuses"]["revoked"] == 10 and figures["funded"] == 30
    assert figures["freed"] == Decimal("100000.00")
