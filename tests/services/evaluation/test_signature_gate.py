"""Admissibility waits for the legal representative's signed form (issue 15 §4), through HTTP: the real intake
on loopback (committed data) takes the submission and the signed upload, evaluation's inbox receives
`application.submitted` and then `application.form_signed` as the delivery worker posts them.

A call that requires the signed form: the submitted but unsigned application's evaluation is
`awaiting_signature`, with no verdict, no checks and no `evaluation.admissibility_completed` event, and is not
in the officers' review queue; after the signed upload and the event's delivery it is evaluated. Past the
call's signing deadline without a signature it is not admissible, the reason being the failed
`signed_form_missing` check."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call
from tests.services.evaluation.test_inbox import count, deliver, outbox_event
from tests.services.intake.test_formalities import LEGAL_REPRESENTATIVE, make_ca, sign


async def _submitted(engine: Any, intake_url: str, *, signature_days: int = 10) -> dict[str, Any]:
    """A call requiring the signed form (within `signature_days`), its application submitted through intake."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        await s.execute(
            text(
                "UPDATE intake.call_versions SET rules = jsonb_set(jsonb_set(rules, "
                "'{formalities,signed_form_required}', 'true'), '{formalities,signature_days}', "
                "to_jsonb(CAST(:d AS int))) WHERE call_id = :c"
            ),
            {"c": call.id, "d": signature_days},
        )
        partner = await make_partner(s)
        firm = await make_company(s, legal_representative_fiscal_code=LEGAL_REPRESENTATIVE)
        await delegate(s, partner, firm)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.post("/v1/applications", json=draft_body(call.id, firm.id), headers=headers)
        assert r.status_code == 201, r.text
        await declare_stamp_duty(http, r.json()["id"], headers)
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=headers)
        assert r.status_code == 201, r.text
    return {"application_id": r.json()["receipt"]["application_id"], "call_id": str(call.id), "headers": headers}


async def _completed_events(session: Any, app_id: str) -> int:
    return await count(
        session,
        "SELECT count(*) FROM desk.outbox WHERE aggregate_id = :a "
        "AND event_type = 'evaluation.admissibility_completed'",
        a=app_id,
    )


@pytest.fixture
def trust_roots(intake_server, tmp_path, monkeypatch):
    """The test CA among intake's trust roots (what production configures with the EU trusted lists)."""
    ca = make_ca(tmp_path)
    monkeypatch.setattr(intake_server.app.state.settings, "signature_trust_roots", [ca.pem_path])
    return ca


async def test_admissibility_waits_for_the_signed_form_then_runs(
    evaluation_client, intake, intake_server, engine, officer, session, trust_roots
):
    sub = await _submitted(engine, intake_server.url)
    app_id = sub["application_id"]
    r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.submitted"))
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text

    # submitted, unsigned: awaiting the signature, no verdict
    r = await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert (ev["stage"], ev["admissibility_verdict"], ev["checks"], ev["eligible_total"]) == (
        "awaiting_signature",
        None,
        [],
        None,
    )
    assert r.headers["etag"] == '"1"'
    assert await _completed_events(session, app_id) == 0
    # not ready for an officer's review; listed under its own stage
    queue = await evaluation_client.get(
        "/v1/queues/admissibility-reviews", params={"call_id": sub["call_id"]}, headers=officer
    )
    assert queue.status_code == 200 and queue.json()["items"] == []
    listed = await evaluation_client.get(
        "/v1/evaluations", params={"call_id": sub["call_id"], "stage": "awaiting_signature"}, headers=officer
    )
    assert [i["application_id"] for i in listed.json()["items"]] == [app_id]

    # the partner downloads the form, the legal representative signs it, the partner uploads it
    async with httpx.AsyncClient(base_url=intake_server.url) as http:
        form = await http.get(f"/v1/applications/{app_id}/form.pdf", headers=sub["headers"])
        assert form.status_code == 200, form.text
        signed = await sign(form.content, trust_roots.issue(LEGAL_REPRESENTATIVE))
        r = await http.post(
            f"/v1/applications/{app_id}/signed-form",
            content=signed,
            headers={**sub["headers"], "Content-Type": "application/pdf"},
        )
        assert r.status_code == 201, r.text

    body = await outbox_event(engine, app_id, "application.form_signed")
    r = await deliver(evaluation_client, body)
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    r = await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)
    ev = r.json()
    assert ev["stage"] == "admissible" and ev["admissibility_verdict"] == "admissible"
    assert ev["checks"] and all(c["outcome"] in ("pass", "deferred") for c in ev["checks"])
    assert "signed_form_missing" not in {c["code"] for c in ev["checks"]}
    # its version moved on: an ETag read while it waited no longer matches
    assert r.headers["etag"] == '"2"'
    assert await _completed_events(session, app_id) == 1
    # a redelivery changes nothing
    again = await deliver(evaluation_client, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert await _completed_events(session, app_id) == 1


async def test_past_the_signing_deadline_without_a_signature_it_is_not_admissible(
    evaluation_client, intake, intake_server, engine, officer, session
):
    # no days to sign: when the submission reaches evaluation the deadline has passed, and nothing was signed
    sub = await _submitted(engine, intake_server.url, signature_days=0)
    app_id = sub["application_id"]
    r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.submitted"))
    assert r.status_code == 200, r.text
    ev = (await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)).json()
    assert ev["stage"] == "not_admissible" and ev["admissibility_verdict"] == "not_admissible"
    failed = [c for c in ev["checks"] if c["outcome"] == "fail"]
    assert [c["code"] for c in failed] == ["signed_form_missing"]
    assert failed[0]["blocking"] is True and failed[0]["message_en"].startswith("The form signed by the legal")
    payloads = (
        await session.execute(
            text(
                "SELECT payload FROM desk.outbox WHERE aggregate_id = :a "
                "AND event_type = 'evaluation.admissibility_completed'"
            ),
            {"a": app_id},
        )
    ).scalars()
    assert [(p["verdict"], p["failed_checks"]) for p in payloads] == [("not_admissible", ["signed_form_missing"])]


async def test_a_call_that_does_not_require_the_signature_is_evaluated_at_once(
    evaluation_client, intake, intake_server, engine, officer
):
    from tests.services.evaluation.builders import submit_through_intake

    sub = await submit_through_intake(engine, intake_server.url)
    app_id = sub["application_id"]
    r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.submitted"))
    assert r.status_code == 200, r.text
    ev = (await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)).json()
    assert ev["stage"] == "admissible"


async def test_awaiting_evaluations_past_their_deadline_are_settled_not_admissible_by_an_officer(
    evaluation_client, intake, intake_server, engine, officer, session, token_factory
):
    """Two applications wait for their signature; the first's 10 days pass (its submission instant moved back, as
    time would do), the second's do not: settling the call's deadlines evaluates the first only."""
    late = await _submitted(engine, intake_server.url)
    call_id = late["call_id"]
    async with make_sessionmaker(engine)() as s:
        firm = await make_company(s, legal_representative_fiscal_code=LEGAL_REPRESENTATIVE)
        partner = await make_partner(s)
        await delegate(s, partner, firm)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    async with httpx.AsyncClient(base_url=intake_server.url) as http:
        r = await http.post("/v1/applications", json=draft_body(call_id, firm.id), headers=headers)
        await declare_stamp_duty(http, r.json()["id"], headers)
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=headers)
        assert r.status_code == 201, r.text
    on_time = r.json()["receipt"]["application_id"]
    for app_id in (late["application_id"], on_time):
        r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.submitted"))
        assert r.status_code == 200, r.text
    async with engine.begin() as c:
        await c.execute(
            text(
                "UPDATE intake.applications SET submitted_at = submitted_at - interval '10 days 1 minute' WHERE id = :a"
            ),
            {"a": late["application_id"]},
        )
    # partners may not; officers may
    partner = await token_factory("partner", partner_id=partner.id)
    url = f"/v1/calls/{call_id}/signature-deadlines"
    assert (await evaluation_client.post(url, headers=partner)).status_code == 403
    r = await evaluation_client.post(url, headers=officer)
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": call_id, "evaluated": [late["application_id"]], "awaiting_signature": [on_time]}
    ev = (await evaluation_client.get(f"/v1/evaluations/{late['application_id']}", headers=officer)).json()
    assert (ev["stage"], [c["code"] for c in ev["checks"] if c["outcome"] == "fail"]) == (
        "not_admissible",
        ["signed_form_missing"],
    )
    assert ev["etag"] == '"2"'
    waiting = (await evaluation_client.get(f"/v1/evaluations/{on_time}", headers=officer)).json()
    assert (waiting["stage"], waiting["etag"]) == ("awaiting_signature", '"1"')
    assert await _completed_events(session, late["application_id"]) == 1
    assert await _completed_events(session, on_time) == 0
    # again: nothing new
    again = (await evaluation_client.post(url, headers=officer)).json()
    assert again == {"call_id": call_id, "evaluated": [], "awaiting_signature": [on_time]}


async def test_settling_the_deadlines_of_an_unknown_call_is_404(evaluation_client, intake, intake_server, officer):
    r = await evaluation_client.post(
        "/v1/calls/00000000-0000-4000-8000-000000000000/signature-deadlines", headers=officer
    )
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"


def test_the_budget_does_not_move_past_an_application_awaiting_its_signature() -> None:
    """Merit before money: a ranking counts it as pending, first-come allocation holds back from it."""
    from services.evaluation.budget.service import _first_come_prefix, _ranking_wait, is_decided
    from services.evaluation.models import Evaluation

    waiting = Evaluation(stage="awaiting_signature", merit_verdict=None)
    assert not is_decided(waiting) and _ranking_wait(waiting) == "evaluation_in_progress"
    decided = Evaluation(stage="not_admissible", merit_verdict=None)

    class Row:
        def __init__(self, ev: Evaluation) -> None:
            self.Evaluation = ev

    rows = [Row(decided), Row(waiting), Row(decided)]
    assert _first_come_prefix(rows) == (rows[:1], 2)
