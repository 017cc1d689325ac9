"""Merit before money, through HTTP: a ranking is formed only once the call's window has closed and every
admissible application has a final score or an exclusion (409 `ranking-not-ready` listing what is pending, and
nothing changes); first-come funds strictly in protocol order, whatever order the officer approves in (409
`protocol-order-pending`). Evaluations are arranged directly (builders), intake's call is a fake."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest_asyncio
from sqlalchemy import text

from tests.services.evaluation.builders import (
    FakeIntake,
    approve_funding,
    evaluated_application,
    evaluation_of,
    failed_check,
    received_application,
)


@pytest_asyncio.fixture(loop_scope="session")
async def intake(evaluation_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    evaluation_app.state.intake_client = fake
    yield fake
    evaluation_app.state.intake_client = None


async def statuses(session: Any, call_id: uuid.UUID) -> dict[str, str]:
    rows = await session.execute(
        text("SELECT application_id, status FROM evaluation.fundings WHERE call_id = :c"), {"c": call_id}
    )
    return {str(r.application_id): r.status for r in rows}


async def committed(session: Any, call_id: uuid.UUID) -> Decimal | None:
    row = (
        await session.execute(text("SELECT committed FROM evaluation.budgets WHERE call_id = :c"), {"c": call_id})
    ).first()
    return row.committed if row is not None else None


async def finish_merit(session: Any, app: Any, score: str) -> None:
    """The reviewers are done: the application is evaluated with its final score and its aid (100,000)."""
    await session.execute(
        text(
            "UPDATE evaluation.evaluations SET stage = 'evaluated', score = :s, merit_verdict = 'passed', "
            '"grant" = 20000.00, loan = 80000.00 WHERE application_id = :a'
        ),
        {"s": Decimal(score), "a": app.application_id},
    )


def pending_of(problem: dict[str, Any]) -> list[tuple[int, str]]:
    return [(p["protocol_number"], p["reason"]) for p in problem["pending"]]


async def test_a_ranking_waits_for_the_close_and_every_score_then_funds_90_and_70_before_65(
    evaluation_client, intake, session, officer
):
    # The incident: the window open, an application scored 65 funded while those that would score 90 and 70
    # were still with their reviewers. Each asks 100,000; the budget funds two.
    call_id = uuid.uuid4()
    intake.add_call(
        call_id, budget_total="200000.00", procedure="ranking", closes_at=datetime.now(UTC) + timedelta(days=3)
    )
    scored_65 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", score="65.00")
    will_be_90 = await evaluated_application(session, call_id=call_id, grant="0.00", loan="0.00", stage="admissible")
    will_be_70 = await evaluated_application(session, call_id=call_id, grant="0.00", loan="0.00", stage="admissible")
    unread = await received_application(session, call_id=call_id, company_id=uuid.uuid4())  # no evaluation yet

    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "/problems/ranking-not-ready" and problem["window_open"] is True
    assert pending_of(problem) == [
        (will_be_90.protocol_number, "evaluation_in_progress"),
        (will_be_70.protocol_number, "evaluation_in_progress"),
        (unread.protocol_number, "not_evaluated"),
    ]
    assert problem["pending_count"] == 3
    # nor can the 65 be approved on its own
    r = await evaluation_client.post(f"/v1/fundings/{scored_65.application_id}/approve", headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/ranking-not-ready", r.text
    assert await statuses(session, call_id) == {} and await committed(session, call_id) in (None, Decimal("0.00"))

    # the window closes: still refused while scores are pending, and the problem says only that now
    intake.add_call(
        call_id, budget_total="200000.00", procedure="ranking", closes_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    await finish_merit(session, will_be_90, "90.00")
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 409, r.text
    assert r.json()["window_open"] is False
    assert pending_of(r.json()) == [
        (will_be_70.protocol_number, "evaluation_in_progress"),
        (unread.protocol_number, "not_evaluated"),
    ]
    assert await statuses(session, call_id) == {}

    # an exclusion with its reason is a final outcome too; a tie at 70 goes to the earlier protocol
    await finish_merit(session, will_be_70, "70.00")
    await evaluation_of(
        session,
        unread,
        stage="not_admissible",
        admissibility_verdict="not_admissible",
        admissibility_checks=[failed_check()],
        grant=Decimal("0.00"),
        loan=Decimal("0.00"),
    )
    tie_70_later = await evaluated_application(
        session, call_id=call_id, grant="20000.00", loan="80000.00", score="70.00"
    )
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 200, r.text
    assert (r.json()["funded"], r.json()["waiting"], r.json()["not_admitted"]) == (2, 2, 1)
    assert await statuses(session, call_id) == {
        str(will_be_90.application_id): "funded",
        str(will_be_70.application_id): "funded",
        str(tie_70_later.application_id): "waiting",
        str(scored_65.application_id): "waiting",
        str(unread.application_id): "not_admitted",
    }
    assert await committed(session, call_id) == Decimal("200000.00")
    ranking = (await evaluation_client.get(f"/v1/calls/{call_id}/ranking", headers=officer)).json()["items"]
    assert [(i["position"], i["score"]) for i in ranking] == [
        (1, "90.00"),
        (2, "70.00"),
        (3, "70.00"),
        (4, "65.00"),
        (None, None),
    ]
    assert ranking[1]["protocol_number"] < ranking[2]["protocol_number"], "tie by protocol order"


async def test_an_admitted_application_without_a_score_holds_the_ranking(evaluation_client, intake, session, officer):
    call_id = intake.add_call(budget_total="200000.00", procedure="ranking")  # window closed in 2025
    unscored = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/ranking-not-ready", r.text
    assert pending_of(r.json()) == [(unscored.protocol_number, "merit_score_missing")]
    assert await statuses(session, call_id) == {}


async def test_first_come_approvals_follow_protocol_order_not_the_officers_clicks(
    evaluation_client, intake, session, officer, second_officer
):
    call_id = intake.add_call(budget_total="150000.00", procedure="first_come")
    first = await evaluated_application(session, call_id=call_id, grant="0.00", loan="0.00", stage="admissible")
    second = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    third = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")

    # the officer clicks the second while the first is still being evaluated: refused, nothing changes
    r = await evaluation_client.post(f"/v1/fundings/{second.application_id}/approve", headers=officer)
    assert r.status_code == 409, r.text
    assert r.json()["type"] == "/problems/protocol-order-pending"
    assert pending_of(r.json()) == [(first.protocol_number, "evaluation_in_progress")]
    assert await statuses(session, call_id) == {}
    # the allocation takes nobody after the first still undecided
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 200, r.text
    assert (r.json()["considered"], r.json()["held_back"], r.json()["committed_now"]) == (0, 3, "0.00")
    assert await statuses(session, call_id) == {}

    # the first is decided: clicking the third still may not skip the first and the second
    await finish_merit(session, first, "0.00")
    r = await evaluation_client.post(f"/v1/fundings/{third.application_id}/approve", headers=officer)
    assert r.status_code == 409, r.text
    assert pending_of(r.json()) == [(first.protocol_number, "not_allocated"), (second.protocol_number, "not_allocated")]
    for app, status in ((first, "funded"), (second, "waiting"), (third, "waiting")):
        r = await approve_funding(evaluation_client, app.application_id, officer, second_officer)
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    assert await committed(session, call_id) == Decimal("100000.00"), "150,000 covers the first; the second waits"


async def test_first_come_allocation_funds_the_decided_prefix_in_protocol_order(
    evaluation_client, intake, session, officer
):
    call_id = intake.add_call(budget_total="500000.00", procedure="first_come")
    a1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a2 = await evaluated_application(session, call_id=call_id, grant="0.00", loan="0.00", stage="admissible")
    a3 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 200, r.text
    assert (r.json()["funded"], r.json()["held_back"]) == (1, 2)
    assert await statuses(session, call_id) == {str(a1.application_id): "funded"}
    await finish_merit(session, a2, "0.00")
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert (r.json()["funded"], r.json()["held_back"]) == (2, 0)
    assert set((await statuses(session, call_id)).values()) == {"funded"} and str(a3.application_id) in await statuses(
        session, call_id
    )


async def test_the_ranking_is_published_numbered_and_immutable_and_a_new_version_keeps_the_history(
    evaluation_client, intake, session, officer, auditor
):
    call_id = intake.add_call(budget_total="100000.00", procedure="ranking")  # window closed in 2025
    low = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", score="65.00")
    high = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", score="90.00")
    excluded = await evaluated_application(
        session,
        call_id=call_id,
        grant="0.00",
        loan="0.00",
        stage="not_admissible",
        admissibility_checks=[failed_check()],
    )
    assert (await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)).status_code == 200

    listed = (await evaluation_client.get(f"/v1/calls/{call_id}/rankings", headers=auditor)).json()["items"]
    assert [(v["number"], v["reason"]) for v in listed] == [(1, "Graduatoria")]
    public = await evaluation_client.get(f"/v1/public/calls/{call_id}/rankings/1")
    assert public.status_code == 200, public.text

    def name(app: Any) -> str:
        return f"Impresa {str(app.company_id)[:8]} S.r.l."

    assert public.json()["entries"] == [
        {
            "position": 1,
            "company_name": name(high),
            "protocol_number": high.protocol_number,
            "score": "90.00",
            "outcome": "funded",
        },
        {
            "position": 2,
            "company_name": name(low),
            "protocol_number": low.protocol_number,
            "score": "65.00",
            "outcome": "waiting",
        },
        {
            "position": None,
            "company_name": name(excluded),
            "protocol_number": excluded.protocol_number,
            "score": None,
            "outcome": "not_admitted",
        },
    ]

    # immutable: the database refuses to change a published version
    async with session.begin_nested() as nested:
        try:
            await session.execute(
                text("UPDATE evaluation.rankings SET reason = 'x' WHERE call_id = :c"), {"c": call_id}
            )
            changed = True
        except Exception:
            changed = False
        await nested.rollback()
    assert changed is False

    # after an appeal the 65 is re-scored 95 (say) and an officer publishes version 2 with its reason
    await session.execute(
        text("UPDATE evaluation.fundings SET score = 95.00 WHERE application_id = :a"), {"a": low.application_id}
    )
    r = await evaluation_client.post(
        f"/v1/calls/{call_id}/rankings", json={"reason": "Ricorso accolto, prot. 7"}, headers=officer
    )
    assert r.status_code == 201, r.text
    assert (r.json()["number"], r.json()["reason"]) == (2, "Ricorso accolto, prot. 7")
    assert [e["protocol_number"] for e in r.json()["entries"][:2]] == [low.protocol_number, high.protocol_number]
    first = (await evaluation_client.get(f"/v1/calls/{call_id}/rankings/1", headers=auditor)).json()
    assert [e["score"] for e in first["entries"][:2]] == ["90.00", "65.00"], "version 1 is unchanged"
    assert (await evaluation_client.get(f"/v1/public/calls/{call_id}/rankings/3")).status_code == 404
    no_reason = await evaluation_client.post(f"/v1/calls/{call_id}/rankings", json={}, headers=officer)
    assert no_reason.status_code == 422
