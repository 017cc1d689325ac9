"""Evaluation's reads through HTTP on real PostgreSQL: a partner lists and reads its own evaluations (the merit
score only once the call's ranking is published), fundings and decisions, and another partner sees none of them
(404 on a single read); officers list decrees and work two queues (admissibility checks to review, issued
decisions awaiting the company's answer), each item dropping out once handled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.services.evaluation.builders import FakeIntake, evaluated_application, evaluation_of, failed_check
from tests.services.evaluation.builders import received_application as received
from tests.services.evaluation.test_decisions import close, decide_all, open_decree


@pytest_asyncio.fixture(loop_scope="session")
async def intake(evaluation_app: Any) -> AsyncIterator[FakeIntake]:
    fake = FakeIntake()
    evaluation_app.state.intake_client = fake
    yield fake
    evaluation_app.state.intake_client = None


def items(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def ids(r: Any, key: str = "id") -> set[str]:
    return {x[key] for x in items(r)}


async def test_a_partner_reads_its_own_evaluations_and_their_score_once_the_ranking_is_published(
    evaluation_client, intake, session, officer, token_factory
):
    call_id = intake.add_call(budget_total="100000.00", procedure="ranking")  # window closed: rankable
    partner_a, partner_b = uuid.uuid4(), uuid.uuid4()
    own = await evaluated_application(
        session, call_id=call_id, grant="20000.00", loan="80000.00", score="72.50", partner_id=partner_a
    )
    refused = await evaluated_application(
        session,
        call_id=call_id,
        grant="0.00",
        loan="0.00",
        stage="not_admissible",
        admissibility_checks=[failed_check()],
        partner_id=partner_a,
        company_id=own.company_id,
    )
    theirs = await evaluated_application(
        session, call_id=call_id, grant="10000.00", loan="40000.00", score="90.00", partner_id=partner_b
    )
    a = await token_factory("partner", partner_id=partner_a)
    b = await token_factory("partner", partner_id=partner_b)
    mine, refused_id, theirs_id = (str(x.application_id) for x in (own, refused, theirs))

    def listed(headers: dict[str, str], **params: Any) -> Any:
        return evaluation_client.get("/v1/evaluations", params={"call_id": str(call_id), **params}, headers=headers)

    assert ids(await listed(a), "application_id") == {mine, refused_id}
    assert ids(await listed(a, admissibility_verdict="not_admissible"), "application_id") == {refused_id}
    assert ids(await listed(a, stage="evaluated"), "application_id") == {mine}
    assert ids(await listed(b), "application_id") == {theirs_id}
    assert ids(await listed(officer), "application_id") == {mine, refused_id, theirs_id}
    assert (await listed(a, admissibility_verdict="maybe")).status_code == 422

    # before the ranking is published: the partner sees its evaluation, not the score; officers see it
    (ev,) = items(await listed(a, stage="evaluated"))
    assert (ev["score"], ev["merit_verdict"]) == (None, None)
    r = await evaluation_client.get(f"/v1/evaluations/{mine}", headers=a)
    assert r.status_code == 200 and r.json()["score"] is None and r.json()["admissibility_verdict"] == "admissible"
    assert (await evaluation_client.get(f"/v1/evaluations/{mine}", headers=officer)).json()["score"] == "72.50"
    assert (await evaluation_client.get(f"/v1/evaluations/{mine}", headers=b)).status_code == 404

    # the allocation of a ranking call publishes ranking no. 1: from then on the partner sees its score
    assert (await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)).status_code == 200
    assert [
        v["number"] for v in items(await evaluation_client.get(f"/v1/calls/{call_id}/rankings", headers=officer))
    ] == [1]
    assert (await evaluation_client.get(f"/v1/evaluations/{mine}", headers=a)).json()["score"] == "72.50"
    (ev,) = items(await listed(a, stage="evaluated"))
    assert ev["score"] == "72.50"
    # the funding shows it too, to its own partner only
    r = await evaluation_client.get(f"/v1/fundings/{mine}", headers=a)
    assert r.status_code == 200 and r.json()["score"] == "72.50"
    assert (await evaluation_client.get(f"/v1/fundings/{mine}", headers=b)).status_code == 404


async def test_fundings_decrees_and_decisions_are_listed_within_reach_and_the_acceptance_queue_empties(
    evaluation_client, intake, session, officer, second_officer, auditor, token_factory
):
    call_id = intake.add_call(budget_total="100000.00")  # first come: 100k funds the first, the second waits
    partner_a, partner_b = uuid.uuid4(), uuid.uuid4()
    funded = await evaluated_application(
        session, call_id=call_id, grant="20000.00", loan="80000.00", partner_id=partner_a, protocol_number=1
    )
    waiting = await evaluated_application(
        session, call_id=call_id, grant="10000.00", loan="40000.00", partner_id=partner_b, protocol_number=2
    )
    a = await token_factory("partner", partner_id=partner_a)
    b = await token_factory("partner", partner_id=partner_b)
    f_id, w_id = str(funded.application_id), str(waiting.application_id)
    assert (await evaluation_client.post(f"/v1/calls/{call_id}/allocation", headers=officer)).status_code == 200
    c = {"call_id": str(call_id)}

    # fundings
    (mine,) = items(await evaluation_client.get("/v1/fundings", params=c, headers=a))
    assert (mine["application_id"], mine["status"], mine["granted"]) == (f_id, "funded", "100000.00")
    (theirs,) = items(await evaluation_client.get("/v1/fundings", params=c, headers=b))
    assert (theirs["application_id"], theirs["status"], theirs["granted"]) == (w_id, "waiting", "0.00")
    waiting_only = await evaluation_client.get("/v1/fundings", params={**c, "status": "waiting"}, headers=officer)
    assert ids(waiting_only, "application_id") == {w_id}
    assert ids(await evaluation_client.get("/v1/fundings", params=c, headers=auditor), "application_id") == {f_id, w_id}
    assert (await evaluation_client.get(f"/v1/fundings/{f_id}", headers=a)).json()["status"] == "funded"
    assert (await evaluation_client.get(f"/v1/fundings/{w_id}", headers=a)).status_code == 404

    # a decree: its draft decisions are nobody's to answer yet
    decree = await open_decree(evaluation_client, call_id, officer)
    batch = await decide_all(evaluation_client, decree, officer)
    by_app = {d["application_id"]: d for d in batch["created"]}
    decision, waiting_decision = by_app[f_id], by_app[w_id]
    queue = "/v1/queues/decisions-awaiting-acceptance"
    assert items(await evaluation_client.get(queue, params=c, headers=officer)) == []
    closed = await close(evaluation_client, decree["id"], batch["decree"]["etag"], officer, second_officer)
    assert closed.status_code == 200, closed.text

    # decrees: officers and auditors
    (d,) = items(await evaluation_client.get("/v1/decrees", params=c, headers=auditor))
    assert (d["id"], d["status"], d["decisions"]) == (decree["id"], "closed", 2)
    assert items(await evaluation_client.get("/v1/decrees", params={**c, "status": "open"}, headers=officer)) == []
    assert (await evaluation_client.get("/v1/decrees", headers=a)).status_code == 403

    # decisions: each partner its own
    assert ids(await evaluation_client.get("/v1/decisions", params=c, headers=a)) == {decision["id"]}
    assert ids(await evaluation_client.get("/v1/decisions", params=c, headers=b)) == {waiting_decision["id"]}
    assert items(await evaluation_client.get("/v1/decisions", params={**c, "outcome": "waiting"}, headers=a)) == []
    assert ids(await evaluation_client.get("/v1/decisions", params={**c, "outcome": "funded"}, headers=officer)) == {
        decision["id"]
    }
    assert ids(await evaluation_client.get("/v1/decisions", params={"decree_id": decree["id"]}, headers=officer)) == {
        decision["id"],
        waiting_decision["id"],
    }
    assert (await evaluation_client.get(f"/v1/decisions/{decision['id']}", headers=b)).status_code == 404

    # the queue: the funded decision waits for the company's answer (the waiting one needs none)
    (queued,) = items(await evaluation_client.get(queue, params=c, headers=officer))
    assert (queued["id"], queued["status"], queued["outcome"]) == (decision["id"], "issued", "funded")
    assert (await evaluation_client.get(queue, headers=a)).status_code == 403
    etag = (await evaluation_client.get(f"/v1/decisions/{decision['id']}", headers=a)).headers["etag"]
    r = await evaluation_client.post(
        f"/v1/decisions/{decision['id']}/renounce",
        headers={**a, "If-Match": etag},
        json={"reason": "L'impresa rinuncia al progetto"},
    )
    assert r.status_code == 200, r.text
    assert items(await evaluation_client.get(queue, params=c, headers=officer)) == [], "answered: out of the queue"


async def test_the_admissibility_queue_lists_the_checks_to_review_and_drops_one_once_reviewed(
    evaluation_client, intake, session, officer, auditor, token_factory
):
    call_id = uuid.uuid4()
    check = {
        "code": "lombardy_site",
        "outcome": "needs_review",
        "automatic_outcome": "needs_review",
        "article": "Art. 2",
        "detail_it": "Sede in Lombardia da verificare.",
        "detail_en": "Lombardy site to be verified.",
        "review": None,
    }
    pending = await received(session, call_id=call_id, company_id=uuid.uuid4())
    await evaluation_of(
        session, pending, stage="needs_review", admissibility_verdict="needs_review", admissibility_checks=[check]
    )
    settled = await received(session, call_id=call_id, company_id=uuid.uuid4())
    await evaluation_of(session, settled)
    queue = "/v1/queues/admissibility-reviews"
    c = {"call_id": str(call_id)}

    (item,) = items(await evaluation_client.get(queue, params=c, headers=officer))
    assert item["application_id"] == str(pending.application_id) and item["stage"] == "needs_review"
    assert ids(await evaluation_client.get(queue, params=c, headers=auditor), "application_id") == {
        str(pending.application_id)
    }
    partner = await token_factory("partner", partner_id=uuid.uuid4())
    assert (await evaluation_client.get(queue, headers=partner)).status_code == 403

    r = await evaluation_client.post(
        f"/v1/evaluations/{pending.application_id}/admissibility-reviews",
        json={"check_code": "lombardy_site", "outcome": "pass", "note": "Sede di Brescia verificata."},
        headers={**officer, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert items(await evaluation_client.get(queue, params=c, headers=officer)) == [], "reviewed: out of the queue"
