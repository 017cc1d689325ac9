"""Decrees and decisions through HTTP: a decree filled with the allocation's outcomes (funded, waiting, not admitted
with every reason), closed with one `decision.issued` each; CUP and COR; the company's acceptance (what
monitoring needs) or renunciation (the waiting list moves); and the refusals that change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest_asyncio
from sqlalchemy import text

from tests.conftest import make_token
from tests.services.evaluation.builders import FakeIntake, evaluated_application, failed_check


@pytest_asyncio.fixture(loop_scope="session")
async def intake(evaluation_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    evaluation_app.state.intake_client = fake
    yield fake
    evaluation_app.state.intake_client = None


async def outbox(session: Any, event_type: str, application_id: Any | None = None) -> list[Any]:
    """The events of that type, about one application: their ordering key is the application's id."""
    sql = "SELECT payload, partner_id, company_id, aggregate_type, aggregate_id FROM desk.outbox WHERE event_type = :t"
    params: dict[str, Any] = {"t": event_type}
    if application_id is not None:
        sql += " AND ordering_key = :a"
        params["a"] = str(application_id)
    return list((await session.execute(text(sql + " ORDER BY id"), params)).all())


async def open_decree(client: Any, call_id: uuid.UUID, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post(
        "/v1/decrees",
        headers=headers,
        json={"call_id": str(call_id), "number": f"DDS-{uuid.uuid4().hex[:10]}", "decree_date": "2026-12-15"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def scenario(client: Any, intake: FakeIntake, session: Any, officer: dict[str, str]) -> dict[str, Any]:
    """Budget 100k: a funded (its partner known), w waiting, n not admitted (two failed checks); all allocated."""
    call_id = intake.add_call(budget_total="100000.00")
    partner_id = uuid.uuid4()
    funded = await evaluated_application(
        session,
        call_id=call_id,
        grant="20000.00",
        loan="80000.00",
        partner_id=partner_id,
        loan_gge="7149.49",
        cuts=[
            {
                "path": "/expense_lines/0",
                "category": "a",
                "requested": "10000.00",
                "allowed": "0.00",
                "reasons": ["intra_group_purchase"],
            }
        ],
    )
    waiting = await evaluated_application(session, call_id=call_id, grant="10000.00", loan="40000.00")
    refused = await evaluated_application(
        session,
        call_id=call_id,
        grant="0.00",
        loan="0.00",
        stage="not_admissible",
        admissibility_checks=[
            failed_check("export_share", "Art. 3.1"),
            failed_check("ateco", "Art. 3.2"),
            {**failed_check("sme_class"), "outcome": "pass"},
        ],
    )
    r = await client.post(f"/v1/calls/{call_id}/allocation", headers=officer)
    assert r.status_code == 200, r.text
    return {"call_id": call_id, "partner_id": partner_id, "funded": funded, "waiting": waiting, "refused": refused}


async def decide_all(client: Any, decree: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post(
        f"/v1/decrees/{decree['id']}/decisions",
        headers={**headers, "If-Match": decree["etag"]},
        json={"all_pending": True},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def close(client: Any, decree_id: str, etag: str, headers: dict[str, str], confirmer: dict[str, str]) -> Any:
    """Four-eyes: `headers` proposes the closing (202), `confirmer` confirms it; the refusal if either is one."""
    r = await client.post(f"/v1/decrees/{decree_id}/close", headers={**headers, "If-Match": etag})
    if r.status_code != 202:
        return r
    return await client.post(f"/v1/decrees/{decree_id}/close/confirm", headers={**confirmer, "If-Match": etag})


async def test_a_decree_issues_every_outcome_with_its_reasons(
    evaluation_client, intake, session, officer, auditor, second_officer
):
    s = await scenario(evaluation_client, intake, session, officer)
    decree = await open_decree(evaluation_client, s["call_id"], officer)
    assert decree["status"] == "open" and decree["decisions"] == 0

    batch = await decide_all(evaluation_client, decree, officer)
    by_app = {d["application_id"]: d for d in batch["created"]}
    funded, waiting, refused = (by_app[str(s[k].application_id)] for k in ("funded", "waiting", "refused"))
    assert (funded["outcome"], funded["grant"], funded["loan"], funded["status"]) == (
        "funded",
        "20000.00",
        "80000.00",
        "draft",
    )
    assert waiting["outcome"] == "waiting" and waiting["reasons"][0]["code"] == "budget_exhausted"
    assert refused["outcome"] == "not_admitted"
    assert [(r["code"], r["article"]) for r in refused["reasons"]] == [
        ("export_share", "Art. 3.1"),
        ("ateco", "Art. 3.2"),
    ], "every failed check"
    assert batch["decree"]["decisions"] == 3 and batch["decree"]["etag"] == '"2"'

    again = await decide_all(evaluation_client, batch["decree"], officer)
    assert again["created"] == [], "nothing is pending any more"

    stale = await close(evaluation_client, decree["id"], decree["etag"], officer, second_officer)
    assert stale.status_code == 412
    r = await close(evaluation_client, decree["id"], batch["decree"]["etag"], officer, second_officer)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["closed_at"]

    issued = await outbox(session, "decision.issued", s["funded"].application_id)
    assert len(issued) == 1
    data = issued[0].payload
    assert (data["outcome"], data["grant"], data["loan"], data["decree_number"], data["decree_date"]) == (
        "funded",
        "20000.00",
        "80000.00",
        decree["number"],
        "2026-12-15",
    )
    assert issued[0].partner_id == s["partner_id"] and issued[0].company_id == s["funded"].company_id
    # the subject is the decision itself, the application is in the data
    assert (issued[0].aggregate_type, issued[0].aggregate_id) == ("decision", data["decision_id"])
    assert data["application_id"] == str(s["funded"].application_id)
    refused_event = (await outbox(session, "decision.issued", s["refused"].application_id))[0].payload
    assert [r["code"] for r in refused_event["reasons"]] == ["export_share", "ateco"]

    listed = await evaluation_client.get(f"/v1/decrees/{decree['id']}/decisions", headers=auditor)
    assert listed.status_code == 200 and {d["status"] for d in listed.json()["items"]} == {"issued"}

    # a closed decree takes nothing more
    late = await evaluation_client.post(
        f"/v1/decrees/{decree['id']}/decisions",
        headers={**officer, "If-Match": r.headers["etag"]},
        json={"application_ids": [str(s["waiting"].application_id)]},
    )
    assert late.status_code == 409, late.text


async def test_closing_a_decree_needs_a_second_officer(evaluation_client, intake, session, officer, second_officer):
    """Four-eyes: the officer who proposes the closing cannot confirm it (403, nothing issued); proposing it again
    unchanged is 409; a second officer confirms, and the decree's audit record names both."""
    s = await scenario(evaluation_client, intake, session, officer)
    decree = await open_decree(evaluation_client, s["call_id"], officer)
    batch = await decide_all(evaluation_client, decree, officer)
    etag = batch["decree"]["etag"]
    url = f"/v1/decrees/{decree['id']}/close"
    proposed = await evaluation_client.post(url, headers={**officer, "If-Match": etag})
    assert proposed.status_code == 202 and proposed.json()["action"] == "decree.close", proposed.text
    again = await evaluation_client.post(url, headers={**officer, "If-Match": etag})
    assert again.status_code == 409 and again.json()["type"] == "/problems/confirmation-pending"
    own = await evaluation_client.post(f"{url}/confirm", headers={**officer, "If-Match": etag})
    assert own.status_code == 403 and own.json()["type"] == "/problems/four-eyes-same-officer", own.text
    still = await evaluation_client.get(f"/v1/decrees/{decree['id']}", headers=officer)
    assert still.json()["status"] == "open"
    assert await outbox(session, "decision.issued", s["funded"].application_id) == []

    confirmed = await evaluation_client.post(f"{url}/confirm", headers={**second_officer, "If-Match": etag})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "closed", confirmed.text
    assert len(await outbox(session, "decision.issued", s["funded"].application_id)) == 1
    record = (
        await session.execute(
            text("SELECT after FROM desk.audit_log WHERE resource_id = :d AND action = 'decree.closed'"),
            {"d": decree["id"]},
        )
    ).scalar_one()
    assert record["proposed_by"] != record["confirmed_by"]


async def test_a_decision_on_an_application_not_evaluated_is_refused_and_nothing_changes(
    evaluation_client, intake, session, officer
):
    s = await scenario(evaluation_client, intake, session, officer)
    in_progress = await evaluated_application(
        session, call_id=s["call_id"], grant="1.00", loan="1.00", stage="admissible"
    )
    decree = await open_decree(evaluation_client, s["call_id"], officer)
    r = await evaluation_client.post(
        f"/v1/decrees/{decree['id']}/decisions",
        headers={**officer, "If-Match": decree["etag"]},
        json={"application_ids": [str(s["funded"].application_id), str(in_progress.application_id)]},
    )
    assert r.status_code == 409, r.text
    assert r.json()["applications"] == [
        {"application_id": str(in_progress.application_id), "reason": "not_evaluated_or_allocated"}
    ]
    count = (
        await session.execute(
            text("SELECT count(*) FROM evaluation.decisions WHERE decree_id = :d"), {"d": decree["id"]}
        )
    ).scalar_one()
    assert count == 0
    no_match = await evaluation_client.post(
        f"/v1/decrees/{decree['id']}/decisions", headers=officer, json={"all_pending": True}
    )
    assert no_match.status_code == 428
    both = await evaluation_client.post(
        f"/v1/decrees/{decree['id']}/decisions",
        headers={**officer, "If-Match": decree["etag"]},
        json={"all_pending": True, "application_ids": [str(uuid.uuid4())]},
    )
    assert both.status_code == 422
    dup = await evaluation_client.post(
        "/v1/decrees",
        headers=officer,
        json={"call_id": str(s["call_id"]), "number": decree["number"], "decree_date": "2026-12-16"},
    )
    assert dup.status_code == 409


async def issued_decision(
    client: Any, intake: FakeIntake, session: Any, officer: dict[str, str], second_officer: dict[str, str] | None = None
) -> dict[str, Any]:
    second_officer = second_officer or await make_token(session, "officer")
    s = await scenario(client, intake, session, officer)
    decree = await open_decree(client, s["call_id"], officer)
    batch = await decide_all(client, decree, officer)
    assert (await close(client, decree["id"], batch["decree"]["etag"], officer, second_officer)).status_code == 200
    s["decree"] = decree
    s["decision"] = next(d for d in batch["created"] if d["application_id"] == str(s["funded"].application_id))
    s["waiting_decision"] = next(d for d in batch["created"] if d["application_id"] == str(s["waiting"].application_id))
    return s


async def put(client: Any, decision_id: str, what: str, value: str, headers: dict[str, str]) -> Any:
    etag = (await client.get(f"/v1/decisions/{decision_id}", headers=headers)).headers["etag"]
    return await client.put(
        f"/v1/decisions/{decision_id}/{what}", headers={**headers, "If-Match": etag}, json={what: value}
    )


async def test_the_company_accepts_a_funded_decision_with_its_cup_and_cor(
    evaluation_client, intake, session, officer, token_factory
):
    s = await issued_decision(evaluation_client, intake, session, officer)
    decision_id = s["decision"]["id"]
    company = await token_factory("company", company_id=s["funded"].company_id)

    r = await evaluation_client.get(f"/v1/decisions/{decision_id}", headers=company)
    assert r.status_code == 200 and r.json()["status"] == "issued"
    early = await evaluation_client.post(
        f"/v1/decisions/{decision_id}/accept", headers={**company, "If-Match": r.headers["etag"]}
    )
    assert early.status_code == 409 and early.json()["cup"] is None, "no CUP and COR yet"

    for bad in ("E14D2300001000", "e14d23000010007", "E14D23000010007X", "E1-D23000010007"):
        assert (await put(evaluation_client, decision_id, "cup", bad, officer)).status_code == 422, bad
    r = await put(evaluation_client, decision_id, "cup", "E14D23000010007", officer)
    assert r.status_code == 200 and r.json()["cup"] == "E14D23000010007"
    assert (await put(evaluation_client, decision_id, "cor", "1234567", officer)).status_code == 200
    waiting_id = s["waiting_decision"]["id"]
    assert (await put(evaluation_client, waiting_id, "cup", "E14D23000010008", officer)).status_code == 409, (
        "a waiting decision has no project code"
    )
    stale = await evaluation_client.put(
        f"/v1/decisions/{decision_id}/cor", headers={**officer, "If-Match": '"1"'}, json={"cor": "7654321"}
    )
    assert stale.status_code == 412
    assert (await put(evaluation_client, decision_id, "cor", "1", company)).status_code == 403

    etag = (await evaluation_client.get(f"/v1/decisions/{decision_id}", headers=company)).headers["etag"]
    assert (await evaluation_client.post(f"/v1/decisions/{decision_id}/accept", headers=company)).status_code == 428
    r = await evaluation_client.post(f"/v1/decisions/{decision_id}/accept", headers={**company, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.json()["accepted_at"]
    twice = await evaluation_client.post(
        f"/v1/decisions/{decision_id}/accept", headers={**company, "If-Match": r.headers["etag"]}
    )
    assert twice.status_code == 409, "only once"

    accepted = await outbox(session, "decision.accepted", s["funded"].application_id)
    assert len(accepted) == 1
    data = accepted[0].payload
    assert (data["grant"], data["loan"], data["cup"], data["cor"], data["call_id"], data["company_id"]) == (
        "20000.00",
        "80000.00",
        "E14D23000010007",
        "1234567",
        str(s["call_id"]),
        str(s["funded"].company_id),
    )
    assert (data["decree_number"], data["decree_date"]) == (s["decree"]["number"], "2026-12-15")
    assert data["partner_id"] == str(s["partner_id"]) and accepted[0].partner_id == s["partner_id"]
    budget = data["approved_budget"]
    by_category = {c["category"]: c["amount"] for c in budget["by_category"]}
    assert by_category["a"] == "0.00" and by_category["b"] == "80000.00", "the cut consultancy line is out"
    by_market = {m["country"]: m["amount"] for m in budget["by_market"]}
    assert by_market == {"BR": "35000.00", "VN": "45000.00", None: "5000.00"}
    assert data["action_plan"]["start_date"] and data["action_plan"]["milestones"]


async def test_renouncing_frees_the_aid_and_the_next_on_the_waiting_list_is_funded(
    evaluation_client, intake, session, officer, token_factory
):
    s = await issued_decision(evaluation_client, intake, session, officer)
    decision_id = s["decision"]["id"]
    partner = await token_factory("partner", partner_id=s["partner_id"])
    stranger = await token_factory("partner", partner_id=uuid.uuid4())
    assert (await evaluation_client.get(f"/v1/decisions/{decision_id}", headers=stranger)).status_code == 404
    assert (
        await evaluation_client.post(
            f"/v1/decisions/{decision_id}/renounce",
            headers={**stranger, "If-Match": "*"},
            json={"reason": "non nostro"},
        )
    ).status_code == 404
    assert (
        await evaluation_client.post(
            f"/v1/decisions/{decision_id}/renounce", headers={**officer, "If-Match": "*"}, json={"reason": "ufficio"}
        )
    ).status_code == 403

    etag = (await evaluation_client.get(f"/v1/decisions/{decision_id}", headers=partner)).headers["etag"]
    r = await evaluation_client.post(
        f"/v1/decisions/{decision_id}/renounce",
        headers={**partner, "If-Match": etag},
        json={"reason": "L'impresa rinuncia al progetto"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "renounced"
    renounced = await outbox(session, "decision.renounced", s["funded"].application_id)
    assert len(renounced) == 1 and renounced[0].payload["reason"] == "L'impresa rinuncia al progetto"

    statuses = dict(
        (
            await session.execute(
                text("SELECT application_id::text, status FROM evaluation.fundings WHERE call_id = :c"),
                {"c": s["call_id"]},
            )
        ).all()
    )
    assert statuses[str(s["funded"].application_id)] == "renounced"
    assert statuses[str(s["waiting"].application_id)] == "funded", "scorrimento"
    granted = await outbox(session, "funding.granted_from_waiting_list", s["waiting"].application_id)
    assert len(granted) == 1 and granted[0].payload["reason"] == "scorrimento after renunciation"
    budget = (await evaluation_client.get(f"/v1/calls/{s['call_id']}/budget", headers=officer)).json()
    assert (budget["committed"], budget["freed"]) == ("50000.00", "100000.00")

    accept = await evaluation_client.post(
        f"/v1/decisions/{decision_id}/accept", headers={**partner, "If-Match": r.headers["etag"]}
    )
    assert accept.status_code == 409, "renounced: no second answer"
    # the application funded from the waiting list is pending again: it goes in the next decree, funded
    decree = await open_decree(evaluation_client, s["call_id"], officer)
    batch = await decide_all(evaluation_client, decree, officer)
    assert [(d["application_id"], d["outcome"]) for d in batch["created"]] == [
        (str(s["waiting"].application_id), "funded")
    ]
    waiting_decision = s["waiting_decision"]["id"]
    old = await evaluation_client.get(f"/v1/decisions/{waiting_decision}", headers=officer)
    assert old.json()["outcome"] == "waiting" and date.fromisoformat(old.json()["decree_date"]) == date(2026, 12, 15)
