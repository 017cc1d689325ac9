"""The call's budget through HTTP: the ledger created from the call's rules, the allocation in protocol order or
by ranking with the waiting list, single approvals, releases and withdrawals moving the waiting list
(scorrimento), and the public view. Evaluations are arranged directly (builders), intake's call is a fake."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.services.evaluation.builders import FakeIntake, approve_funding, evaluated_application, failed_check
from tests.services.evaluation.test_inbox import deliver, fake_event, service_headers


@pytest_asyncio.fixture(loop_scope="session")
async def intake(evaluation_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    evaluation_app.state.intake_client = fake
    yield fake
    evaluation_app.state.intake_client = None


async def rows(session: Any, sql: str, **params: Any) -> list[Any]:
    return list((await session.execute(text(sql), params)).all())


async def fundings(session: Any, call_id: uuid.UUID) -> dict[str, Any]:
    return {
        str(r.application_id): r
        for r in await rows(
            session,
            'SELECT application_id, status, granted, "grant", loan, partial FROM evaluation.fundings '
            "WHERE call_id = :c",
            c=call_id,
        )
    }


async def events(session: Any, event_type: str, aggregate_id: Any = None) -> list[Any]:
    sql = "SELECT payload, partner_id, company_id FROM desk.outbox WHERE event_type = :t"
    params: dict[str, Any] = {"t": event_type}
    if aggregate_id is not None:
        sql += " AND aggregate_id = :a"
        params["a"] = str(aggregate_id)
    return await rows(session, sql + " ORDER BY id", **params)


async def allocate(client: Any, call_id: uuid.UUID, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post(f"/v1/calls/{call_id}/allocation", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---------------------------------------------------------------- the ledger


async def test_the_budget_is_created_from_the_calls_rules_and_shows_the_ledger(
    evaluation_client, intake, session, officer, auditor, token_factory
):
    call_id = intake.add_call(budget_total="250000.00")
    r = await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=auditor)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["total"], body["committed"], body["freed"], body["available"]) == (
        "250000.00",
        "0.00",
        "0.00",
        "250000.00",
    )
    assert body["items"] == [] and r.headers["etag"] == '"1"'

    a = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    await allocate(evaluation_client, call_id, officer)
    r = await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=officer)
    body = r.json()
    assert (body["committed"], body["available"]) == ("100000.00", "150000.00"), "grant + loan are committed"
    assert [(e["application_id"], e["kind"], e["amount"]) for e in body["items"]] == [
        (str(a.application_id), "commitment", "100000.00")
    ]
    assert r.headers["etag"] == '"2"' and body["next_cursor"] is None
    b = await evaluated_application(session, call_id=call_id, grant="1000.00", loan="0.00")
    await allocate(evaluation_client, call_id, officer)
    first = (await evaluation_client.get(f"/v1/calls/{call_id}/budget", params={"limit": 1}, headers=officer)).json()
    assert [e["application_id"] for e in first["items"]] == [str(a.application_id)] and first["next_cursor"]
    second = (
        await evaluation_client.get(
            f"/v1/calls/{call_id}/budget", params={"limit": 1, "cursor": first["next_cursor"]}, headers=officer
        )
    ).json()
    assert [(e["application_id"], e["amount"]) for e in second["items"]] == [(str(b.application_id), "1000.00")]
    assert second["next_cursor"] is None

    partner = await token_factory("partner", partner_id=uuid.uuid4())
    assert (await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=partner)).status_code == 403
    assert (await evaluation_client.get(f"/v1/calls/{uuid.uuid4()}/budget", headers=officer)).status_code == 404


async def test_the_database_refuses_an_over_commitment_whatever_the_code_does(
    evaluation_client, intake, session, officer
):
    call_id = intake.add_call(budget_total="1000.00")
    assert (await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=officer)).status_code == 200
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            await session.execute(
                text("UPDATE evaluation.budgets SET committed = 1000.01 WHERE call_id = :c"), {"c": call_id}
            )


# ---------------------------------------------------------------- allocation


async def test_first_come_funds_in_protocol_order_strictly_and_the_rest_waits(
    evaluation_client, intake, session, officer, auditor
):
    call_id = intake.add_call(budget_total="300000.00", procedure="first_come")
    company = uuid.uuid4()
    # protocol order: 100k, 150k, 100k (does not fit: 50k left), 10k (would fit, but the order is strict)
    a1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", company_id=company)
    a2 = await evaluated_application(session, call_id=call_id, grant="30000.00", loan="120000.00")
    a3 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a4 = await evaluated_application(session, call_id=call_id, grant="2000.00", loan="8000.00")
    refused = await evaluated_application(
        session,
        call_id=call_id,
        grant="0.00",
        loan="0.00",
        stage="not_admissible",
        admissibility_checks=[failed_check()],
    )
    pending = await evaluated_application(session, call_id=call_id, grant="1.00", loan="1.00", stage="admissible")

    out = await allocate(evaluation_client, call_id, officer)
    assert (out["considered"], out["funded"], out["partially_funded"], out["waiting"], out["not_admitted"]) == (
        5,
        2,
        0,
        2,
        1,
    )
    assert out["committed_now"] == "250000.00" and out["budget"]["available"] == "50000.00"
    got = await fundings(session, call_id)
    assert {k: v.status for k, v in got.items()} == {
        str(a1.application_id): "funded",
        str(a2.application_id): "funded",
        str(a3.application_id): "waiting",
        str(a4.application_id): "waiting",
        str(refused.application_id): "not_admitted",
    }
    assert str(pending.application_id) not in got, "an evaluation still in progress is not allocated"
    assert (got[str(a1.application_id)].grant, got[str(a1.application_id)].loan) == (
        Decimal("20000.00"),
        Decimal("80000.00"),
    )

    again = await allocate(evaluation_client, call_id, officer)
    assert again["considered"] == 0 and again["committed_now"] == "0.00", "allocating twice changes nothing"

    r = await evaluation_client.get(f"/v1/calls/{call_id}/ranking", headers=auditor)
    assert r.status_code == 200, r.text
    ranking = r.json()["items"]
    assert [(i["position"], i["application_id"], i["status"]) for i in ranking] == [
        (1, str(a1.application_id), "funded"),
        (2, str(a2.application_id), "funded"),
        (3, str(a3.application_id), "waiting"),
        (4, str(a4.application_id), "waiting"),
        (None, str(refused.application_id), "not_admitted"),
    ]
    assert ranking[0]["company_id"] == str(company)
    assert r.json()["next_cursor"] is None
    # the one pagination: cursor in, next_cursor out, two at a time
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await evaluation_client.get(f"/v1/calls/{call_id}/ranking", params=params, headers=auditor)).json()
        pages.append([i["application_id"] for i in page["items"]])
        if not (cursor := page["next_cursor"]):
            break
    assert pages == [[i["application_id"] for i in ranking[k : k + 2]] for k in (0, 2, 4)]
    public_page = (await evaluation_client.get(f"/v1/public/calls/{call_id}/ranking", params={"limit": 4})).json()
    assert len(public_page["items"]) == 4 and public_page["next_cursor"]
    last = (
        await evaluation_client.get(
            f"/v1/public/calls/{call_id}/ranking", params={"cursor": public_page["next_cursor"]}
        )
    ).json()
    assert [i["outcome"] for i in last["items"]] == ["not_admitted"] and last["next_cursor"] is None
    for bad in ({"after": 2}, {"cursor": "bm90LWEtY3Vyc29y"}, {"limit": 101}):
        r = await evaluation_client.get(f"/v1/calls/{call_id}/ranking", params=bad, headers=auditor)
        assert r.status_code == (200 if "after" in bad else 422), (bad, r.text)

    public = await evaluation_client.get(f"/v1/public/calls/{call_id}/ranking")
    assert public.status_code == 200, public.text
    item = public.json()["items"][0]
    assert item == {
        "position": 1,
        "protocol_number": a1.protocol_number,
        "score": None,
        "outcome": "funded",
        "requested": "100000.00",
        "granted": "100000.00",
        "grant": "20000.00",
        "loan": "80000.00",
    }
    assert str(company) not in public.text and str(a1.application_id) not in public.text, "anonymised"
    budget = (await evaluation_client.get(f"/v1/public/calls/{call_id}/budget")).json()
    assert (budget["total"], budget["committed"], budget["available"], budget["funded"], budget["waiting"]) == (
        "300000.00",
        "250000.00",
        "50000.00",
        2,
        2,
    )
    audit = await rows(
        session,
        "SELECT after FROM desk.audit_log WHERE action = 'budget.allocated' AND resource_id = :c ORDER BY id",
        c=str(call_id),
    )
    # in the order they were written (without ORDER BY the heap's order, which the audit chain's link moves)
    assert len(audit) == 2 and len(audit[0].after["fundings"]) == 5 and audit[1].after["fundings"] == []


async def test_the_last_that_does_not_fit_is_funded_in_part_when_the_call_allows_it(
    evaluation_client, intake, session, officer
):
    call_id = intake.add_call(budget_total="250000.00", partial_funding_of_last=True)
    a1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a2 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a3 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a4 = await evaluated_application(session, call_id=call_id, grant="1000.00", loan="1000.00")

    out = await allocate(evaluation_client, call_id, officer)
    assert (out["funded"], out["partially_funded"], out["waiting"]) == (2, 1, 1)
    got = await fundings(session, call_id)
    third = got[str(a3.application_id)]
    assert (third.status, third.granted, third.grant, third.loan, third.partial) == (
        "partially_funded",
        Decimal("50000.00"),
        Decimal("10000.00"),
        Decimal("40000.00"),
        True,
    ), "grant and loan keep the evaluation's proportion"
    assert got[str(a4.application_id)].status == "waiting"
    assert {got[str(a.application_id)].status for a in (a1, a2)} == {"funded"}
    assert out["budget"]["available"] == "0.00"


async def test_a_ranking_call_funds_by_score_with_ties_by_protocol(evaluation_client, intake, session, officer):
    call_id = intake.add_call(budget_total="200000.00", procedure="ranking")
    low = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", score="61.00")
    tie_first = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", score="80.00")
    tie_second = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", score="80.00")
    failed = await evaluated_application(
        session, call_id=call_id, grant="20000.00", loan="80000.00", score="40.00", merit_verdict="failed"
    )

    out = await allocate(evaluation_client, call_id, officer)
    assert out["procedure"] == "ranking" and out["not_admitted"] == 1
    got = await fundings(session, call_id)
    assert got[str(tie_first.application_id)].status == "funded"
    assert got[str(tie_second.application_id)].status == "funded"
    assert got[str(low.application_id)].status == "waiting"
    assert got[str(failed.application_id)].status == "not_admitted"
    ranking = (await evaluation_client.get(f"/v1/calls/{call_id}/ranking", headers=officer)).json()["items"]
    assert [i["application_id"] for i in ranking[:3]] == [
        str(tie_first.application_id),
        str(tie_second.application_id),
        str(low.application_id),
    ]


async def test_a_ranking_call_refuses_to_allocate_an_unscored_application(evaluation_client, intake, session, officer):
    call_id = intake.add_call(budget_total="200000.00", procedure="ranking")
    await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    r = await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 409, r.text
    assert await fundings(session, call_id) == {}, "nothing changed"


# ---------------------------------------------------------------- single approvals


async def test_approving_funds_while_the_budget_fits_then_puts_on_the_waiting_list(
    evaluation_client, intake, session, officer, second_officer, token_factory
):
    call_id = intake.add_call(budget_total="150000.00")
    a1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a2 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    in_progress = await evaluated_application(session, call_id=call_id, grant="1.00", loan="1.00", stage="admissible")

    # four-eyes: the proposal changes nothing; its author cannot confirm it; a second officer does
    r = await evaluation_client.post(f"/v1/fundings/{a1.application_id}/approve", headers=officer)
    assert r.status_code == 202, r.text
    proposal = r.json()
    assert (proposal["action"], proposal["status"], proposal["confirm"]) == (
        "funding.approve",
        "proposed",
        f"/v1/fundings/{a1.application_id}/confirm",
    )
    assert await fundings(session, call_id) == {}
    twice = await evaluation_client.post(f"/v1/fundings/{a1.application_id}/approve", headers=second_officer)
    assert twice.status_code == 409 and twice.json()["type"] == "/problems/confirmation-pending", twice.text
    own = await evaluation_client.post(f"/v1/fundings/{a1.application_id}/confirm", headers=officer)
    assert own.status_code == 403 and own.json()["type"] == "/problems/four-eyes-same-officer", own.text
    assert await fundings(session, call_id) == {}, "refused: nothing changed"
    r = await evaluation_client.post(f"/v1/fundings/{a1.application_id}/confirm", headers=second_officer)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["granted"]) == ("funded", "100000.00")
    (audit,) = await rows(
        session,
        "SELECT principal_client_id, after FROM desk.audit_log WHERE action = 'funding.approved' AND resource_id = :a",
        a=str(a1.application_id),
    )
    assert audit.after["proposed_by"] == proposal["proposed_by"] != audit.after["confirmed_by"]
    assert audit.principal_client_id == audit.after["confirmed_by"]
    again_confirm = await evaluation_client.post(f"/v1/fundings/{a1.application_id}/confirm", headers=second_officer)
    assert again_confirm.status_code == 409, again_confirm.text
    r = await approve_funding(evaluation_client, a2.application_id, officer, second_officer)
    assert (r.json()["status"], r.json()["granted"]) == ("waiting", "0.00")

    again = await evaluation_client.post(f"/v1/fundings/{a1.application_id}/approve", headers=officer)
    assert again.status_code == 409 and again.json()["allocation_status"] == "funded"
    assert (
        await evaluation_client.post(f"/v1/fundings/{in_progress.application_id}/approve", headers=officer)
    ).status_code == 409
    assert (await evaluation_client.post(f"/v1/fundings/{uuid.uuid4()}/approve", headers=officer)).status_code == 404
    partner = await token_factory("partner", partner_id=uuid.uuid4())
    assert (
        await evaluation_client.post(f"/v1/fundings/{a2.application_id}/approve", headers=partner)
    ).status_code == 403
    committed = (await rows(session, "SELECT committed FROM evaluation.budgets WHERE call_id = :c", c=call_id))[0]
    assert committed.committed == Decimal("100000.00")


# ---------------------------------------------------------------- releases and scorrimento


async def test_a_revocation_frees_budget_and_the_waiting_list_is_funded_in_order(
    evaluation_client, intake, session, officer
):
    call_id = intake.add_call(budget_total="200000.00")
    partner_id = uuid.uuid4()
    a1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a2 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    w1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00", partner_id=partner_id)
    w2 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    await allocate(evaluation_client, call_id, officer)

    # a reduction of 30k frees too little for the next (100k): nobody moves, a1 stays funded with less
    r = await evaluation_client.post(
        f"/v1/calls/{call_id}/budget/releases",
        headers=service_headers(),
        json={"application_id": str(a1.application_id), "amount": "30000.00", "reason": "Spese rendicontate inferiori"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["funding"]["status"] == "funded" and body["funding"]["granted"] == "70000.00"
    assert (body["funding"]["grant"], body["funding"]["loan"]) == ("14000.00", "56000.00")
    assert body["granted_from_waiting_list"] == [] and body["budget"]["available"] == "30000.00"

    # revoking a2 frees 100k: w1 (first on the list) is funded, w2 still waits (30k + 100k = 130k < 200k)
    r = await evaluation_client.post(
        f"/v1/calls/{call_id}/budget/releases",
        headers=service_headers(),
        json={
            "application_id": str(a2.application_id),
            "amount": "100000.00",
            "reason": "Revoca per mancata realizzazione",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["funding"]["status"] == "revoked"
    assert body["granted_from_waiting_list"] == [str(w1.application_id)]
    assert (body["budget"]["committed"], body["budget"]["freed"]) == ("170000.00", "130000.00")
    got = await fundings(session, call_id)
    assert got[str(w1.application_id)].status == "funded" and got[str(w2.application_id)].status == "waiting"

    granted = await events(session, "funding.granted_from_waiting_list", w1.application_id)
    assert len(granted) == 1
    assert granted[0].partner_id == partner_id and granted[0].company_id == w1.company_id, "the partner is notified"
    assert granted[0].payload["granted"] == "100000.00" and granted[0].payload["previous_status"] == "waiting"
    released = await events(session, "funding.released", a2.application_id)
    assert [e.payload["kind"] for e in released] == ["revocation"]

    ledger = await rows(
        session,
        "SELECT kind, sum(amount) AS s FROM evaluation.budget_entries WHERE call_id = :c GROUP BY kind ORDER BY kind",
        c=call_id,
    )
    assert [(e.kind, e.s) for e in ledger] == [("commitment", Decimal("300000.00")), ("release", Decimal("130000.00"))]

    too_much = await evaluation_client.post(
        f"/v1/calls/{call_id}/budget/releases",
        headers=service_headers(),
        json={"application_id": str(w1.application_id), "amount": "100000.01", "reason": "troppo"},
    )
    assert too_much.status_code == 422
    as_officer = await evaluation_client.post(
        f"/v1/calls/{call_id}/budget/releases",
        headers=officer,
        json={"application_id": str(w1.application_id), "amount": "1.00", "reason": "not mine"},
    )
    assert as_officer.status_code == 403


async def test_a_withdrawal_received_from_intake_releases_the_aid_and_moves_the_waiting_list(
    evaluation_client, intake, session, officer
):
    call_id = intake.add_call(budget_total="100000.00")
    funded = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    waiting = await evaluated_application(session, call_id=call_id, grant="10000.00", loan="40000.00")
    await allocate(evaluation_client, call_id, officer)

    body = fake_event(
        "application.withdrawn",
        {
            "application_id": str(funded.application_id),
            "call_id": str(call_id),
            "company_id": str(funded.company_id),
            "protocol_number": funded.protocol_number,
            "reason": "Rinuncia al progetto",
            "withdrawn_at": "2026-12-01T10:00:00Z",
        },
    )
    r = await deliver(evaluation_client, body)
    assert r.status_code == 200, r.text

    got = await fundings(session, call_id)
    assert (got[str(funded.application_id)].status, got[str(funded.application_id)].granted) == (
        "withdrawn",
        Decimal("0.00"),
    )
    assert got[str(waiting.application_id)].status == "funded"
    budget = (await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=officer)).json()
    assert (budget["committed"], budget["freed"]) == ("50000.00", "100000.00")
    assert len(await events(session, "funding.granted_from_waiting_list", waiting.application_id)) == 1

    # the same event again is a duplicate: nothing is released twice
    r = await deliver(evaluation_client, body)
    assert r.json()["status"] == "duplicate"
    assert (await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=officer)).json()["freed"] == "100000.00"
    assert orjson.loads(body)["type"] == "application.withdrawn"


# ---------------------------------------------------------------- a budget amended at intake


async def test_a_budget_raised_at_intake_reaches_the_ledger_and_funds_the_waiting_list(
    evaluation_client, intake, client, session, officer
):
    """Intake publishes a version raising the budget (with its decree); the `call.amended` event it writes in the
    outbox, delivered to evaluation, gives the ledger the new total and funds the next waiting application."""
    from tests.services.intake.test_calls import rules as call_rules

    doc = call_rules(code=f"VNM-A-{uuid.uuid4().hex[:8]}", budget_total="200000.00", procedure="first_come")
    r = await client.post("/v1/calls", json={"rules": doc}, headers=officer)  # its 2025 window has opened
    assert r.status_code == 201, r.text
    call_id = uuid.UUID(r.json()["id"])
    intake.add_call(call_id, budget_total="200000.00")
    a1 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    a2 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    w1 = await evaluated_application(session, call_id=call_id, grant="15000.00", loan="60000.00")
    w2 = await evaluated_application(session, call_id=call_id, grant="20000.00", loan="80000.00")
    out = await allocate(evaluation_client, call_id, officer)
    assert (out["funded"], out["waiting"]) == (2, 2)

    doc["budget_total"] = "300000.00"
    r = await client.post(
        f"/v1/calls/{call_id}/versions",
        headers={**officer, "If-Match": r.json()["etag"]},
        json={"rules": doc, "reason": "Rifinanziamento", "decree": {"number": "Decreto n. 9012", "date": "2025-07-15"}},
    )
    assert r.status_code == 201, r.text
    intake.add_call(call_id, budget_total="300000.00")  # what intake now serves as the version in force
    row = (
        await session.execute(
            text(
                "SELECT event_id, event_type, event_version, source, occurred_at, aggregate_type, aggregate_id, payload"
                " FROM desk.outbox WHERE aggregate_id = :a AND event_type = 'call.amended'"
            ),
            {"a": str(call_id)},
        )
    ).one()
    from shared.events.catalogue import envelope

    body = orjson.dumps(envelope(row)).decode()

    r = await deliver(evaluation_client, body)
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    budget = (await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=officer)).json()
    # 300,000 - 200,000 committed = 100,000 available: w1 (75,000, first in protocol order) is funded; w2
    # (100,000) does not fit in the 25,000 left and keeps waiting
    assert (budget["total"], budget["committed"], budget["available"]) == ("300000.00", "275000.00", "25000.00")
    assert [(e["kind"], e["amount"]) for e in budget["items"] if e["kind"] == "amendment"] == [
        ("amendment", "100000.00")
    ]
    got = await fundings(session, call_id)
    assert got[str(w1.application_id)].status == "funded" and got[str(w2.application_id)].status == "waiting"
    assert got[str(a1.application_id)].status == got[str(a2.application_id)].status == "funded"
    granted = await events(session, "funding.granted_from_waiting_list", w1.application_id)
    assert len(granted) == 1 and granted[0].payload["reason"] == "scorrimento after budget increase"
    public = (await evaluation_client.get(f"/v1/public/calls/{call_id}/budget")).json()
    assert public["total"] == "300000.00"

    # the same event again is a duplicate; an older version changes nothing
    assert (await deliver(evaluation_client, body)).json()["status"] == "duplicate"
    stale = orjson.loads(body)
    stale.update(id=str(uuid.uuid4()))
    stale["data"].update(version=1, budget_total="250000.00")
    assert (await deliver(evaluation_client, orjson.dumps(stale).decode())).status_code == 200
    again = (await evaluation_client.get(f"/v1/calls/{call_id}/budget", headers=officer)).json()
    assert again["total"] == "300000.00"
