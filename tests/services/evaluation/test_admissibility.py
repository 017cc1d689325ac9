"""Automatic admissibility through HTTP: intake (the real app on loopback, committed data) publishes
`application.submitted`, evaluation's inbox receives it and evaluates the application in the same
transaction; officers settle the checks that need a review; partners read their own evaluations."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import text

import services.evaluation.admissibility.service as admissibility_service
from tests.services.evaluation.builders import submit_through_intake
from tests.services.evaluation.test_inbox import count, deliver, outbox_event


async def evaluated(
    client: Any,
    engine: Any,
    intake_url: str,
    *,
    company: dict[str, Any] | None = None,
    draft: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit at intake, deliver the event to evaluation; returns the submission's data and the event body."""
    sub = await submit_through_intake(engine, intake_url, company=company, draft=draft)
    sub["event"] = await outbox_event(engine, sub["application_id"], "application.submitted")
    r = await deliver(client, sub["event"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed"
    return sub


async def events_of(session: Any, app_id: str, event_type: str) -> list[Any]:
    return list(
        (
            await session.execute(
                text(
                    "SELECT payload, partner_id, company_id FROM desk.outbox WHERE aggregate_id = :a AND "
                    "event_type = :t "
                    "ORDER BY id"
                ),
                {"a": app_id, "t": event_type},
            )
        ).all()
    )


def by_code(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in evaluation["checks"]}


# ---------------------------------------------------------------- the automatic run


async def test_a_complete_application_is_admissible_with_every_check_passing(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await evaluated(evaluation_client, engine, intake_server.url)
    app_id = sub["application_id"]

    r = await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert r.headers["etag"] == '"1"' and ev["etag"] == '"1"'
    assert ev["stage"] == "admissible" and ev["admissibility_verdict"] == "admissible"
    assert ev["protocol_number"] == sub["receipt"]["protocol_number"]
    checks = by_code(ev)
    assert list(checks) == [
        "sme_class",
        "ateco",
        "financial_statements",
        "lombardy_site",
        "export_share",
        "credit_class",
        "target_markets",
        "eligible_categories",
        "category_caps",
        "eligible_total",
        "new_or_emerging_share",
        "project_duration",
        "plan_completeness",
        "de_minimis",
    ]
    assert {c: v["outcome"] for c, v in checks.items() if v["outcome"] != "pass"} == {"credit_class": "deferred"}
    assert checks["sme_class"]["article"] == "A.3" and checks["eligible_total"]["article"] == "B.3"
    assert checks["plan_completeness"]["article"] == "C.1"
    # 10,000 + 80,000 + 5,000 direct; staff 20 % = 19,000; indirect 7 % of 114,000 = 7,980
    assert ev["eligible_total"] == "121980.00" and ev["cuts"] == []
    assert "121.980,00 €" in checks["eligible_total"]["message"]  # Italian by default
    assert ev["grant"] is None and ev["funding"] is None

    events = await events_of(session, app_id, "evaluation.admissibility_completed")
    assert len(events) == 1
    assert events[0].payload["verdict"] == "admissible" and events[0].payload["failed_checks"] == []
    assert events[0].partner_id == sub["partner_id"] and events[0].company_id == sub["company_id"]
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE action = 'evaluation.admissibility_run' AND resource_id = :a",
            a=app_id,
        )
        == 1
    )

    # the partner reads its own evaluation, in English on request
    r = await evaluation_client.get(
        f"/v1/evaluations/{app_id}", headers={**sub["partner_headers"], "Accept-Language": "en"}
    )
    assert r.status_code == 200
    assert "EUR 121,980.00" in by_code(r.json())["eligible_total"]["message"]

    listed = await evaluation_client.get(
        "/v1/evaluations", params={"call_id": sub["call_id"], "stage": "admissible"}, headers=officer
    )
    assert [e["application_id"] for e in listed.json()["items"]] == [app_id]
    listed = await evaluation_client.get(
        "/v1/evaluations", params={"call_id": sub["call_id"], "stage": "not_admissible"}, headers=officer
    )
    assert listed.json()["items"] == []


async def test_a_redelivered_event_does_not_evaluate_twice(evaluation_client, intake, intake_server, engine, session):
    sub = await evaluated(evaluation_client, engine, intake_server.url)
    app_id = sub["application_id"]
    r = await deliver(evaluation_client, sub["event"])
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    # the same submission under another event id (the worker re-published it) is not evaluated again either
    again = orjson.loads(sub["event"])
    again["id"] = str(uuid.uuid4())
    r = await deliver(evaluation_client, orjson.dumps(again).decode())
    assert r.status_code == 200 and r.json()["status"] == "processed"

    assert await count(session, "SELECT count(*) FROM evaluation.evaluations WHERE application_id = :a", a=app_id) == 1
    assert len(await events_of(session, app_id, "evaluation.admissibility_completed")) == 1
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE action = 'evaluation.admissibility_run' AND resource_id = :a",
            a=app_id,
        )
        == 1
    )


async def test_a_run_killed_half_way_leaves_nothing_and_the_redelivery_evaluates_once(
    evaluation_client, intake, intake_server, engine, session, monkeypatch
):
    sub = await submit_through_intake(engine, intake_server.url)
    app_id = sub["application_id"]
    body = await outbox_event(engine, app_id, "application.submitted")

    real = vars(admissibility_service)["record_event"]

    async def killed(*args: Any, **kw: Any) -> None:
        raise RuntimeError("process killed after the evaluation insert")

    monkeypatch.setattr(admissibility_service, "record_event", killed)
    try:
        r = await deliver(evaluation_client, body)
        assert r.status_code == 500
    except RuntimeError:
        pass  # the ASGI transport re-raises the app's exception: the request failed either way
    event_id = orjson.loads(body)["id"]
    for table, column, value in (
        ("evaluation.inbox", "event_id", event_id),
        ("evaluation.applications", "application_id", app_id),
        ("evaluation.evaluations", "application_id", app_id),
    ):
        assert await count(session, f"SELECT count(*) FROM {table} WHERE {column} = :v", v=value) == 0, table

    monkeypatch.setattr(admissibility_service, "record_event", real)
    r = await deliver(evaluation_client, body)
    assert r.status_code == 200 and r.json()["status"] == "processed"
    assert await count(session, "SELECT count(*) FROM evaluation.evaluations WHERE application_id = :a", a=app_id) == 1
    assert len(await events_of(session, app_id, "evaluation.admissibility_completed")) == 1
    assert (await deliver(evaluation_client, body)).json()["status"] == "duplicate"


async def test_a_cap_excess_is_cut_and_the_application_stays_admissible(
    evaluation_client, intake, intake_server, engine, officer
):
    from tests.factories import draft_body

    lines = draft_body(uuid.uuid4(), uuid.uuid4())["expense_lines"]
    lines[0]["amount"] = "20000.00"  # consulting: at most 20 % of implementation + training = 17,000.00
    sub = await evaluated(evaluation_client, engine, intake_server.url, draft={"expense_lines": lines})
    ev = (
        await evaluation_client.get(
            f"/v1/evaluations/{sub['application_id']}", headers={**officer, "Accept-Language": "en"}
        )
    ).json()
    assert ev["stage"] == "admissible"
    assert len(ev["cuts"]) == 1
    cut = ev["cuts"][0]
    assert (cut["path"], cut["category"], cut["requested"], cut["allowed"], cut["reasons"]) == (
        "/expense_lines",
        "a",
        "20000.00",
        "17000.00",
        ["category_cap_exceeded"],
    )
    assert cut["detail"] == cut["detail_en"] and cut["detail_it"] != cut["detail_en"]
    # 17,000 + 80,000 + 5,000 = 102,000; + 20,400 staff; + 7 % of 122,400 = 8,568
    assert ev["eligible_total"] == "130968.00"
    assert by_code(ev)["category_caps"]["outcome"] == "pass"


async def test_an_excluded_ateco_code_is_not_admissible_with_its_article(
    evaluation_client, intake, intake_server, engine, officer, session
):
    # intake refuses to submit it: the company's activity changed (registry update) between submission and evaluation
    sub = await submit_through_intake(engine, intake_server.url)
    async with engine.begin() as c:
        await c.execute(
            text("UPDATE intake.companies SET ateco_code = '64.19.10' WHERE id = :c"), {"c": sub["company_id"]}
        )
    event = await outbox_event(engine, sub["application_id"], "application.submitted")
    assert (await deliver(evaluation_client, event)).status_code == 200
    ev = (await evaluation_client.get(f"/v1/evaluations/{sub['application_id']}", headers=officer)).json()
    assert ev["stage"] == "not_admissible" and ev["admissibility_verdict"] == "not_admissible"
    ateco = by_code(ev)["ateco"]
    assert ateco["outcome"] == "fail" and ateco["article"] == "A.3"
    assert "64.19.10" in ateco["message_it"] and "64.19.10" in ateco["message_en"]
    assert ateco["blocking"] is True and ateco["details"] == {}
    assert [c for c, v in by_code(ev).items() if v["outcome"] == "fail"] == ["ateco"]
    (event,) = await events_of(session, sub["application_id"], "evaluation.admissibility_completed")
    assert event.payload["verdict"] == "not_admissible" and event.payload["failed_checks"] == ["ateco"]


# ---------------------------------------------------------------- officers' reviews


LOMBARDY_COMMITMENT = {
    "registered_office": {"address": "Via Po 1", "municipality": "Torino", "postal_code": "10121", "province": "TO"},
    "operating_sites": [],
    "lombardy_site_commitment": True,
}


async def test_a_lombardy_commitment_needs_review_and_an_officer_makes_it_admissible(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await evaluated(evaluation_client, engine, intake_server.url, company=LOMBARDY_COMMITMENT)
    app_id = sub["application_id"]
    url = f"/v1/evaluations/{app_id}/admissibility-reviews"
    r = await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)
    ev = r.json()
    assert ev["stage"] == "needs_review"
    assert {c: v["outcome"] for c, v in by_code(ev).items() if v["outcome"] not in ("pass", "deferred")} == {
        "lombardy_site": "needs_review"
    }
    (event,) = await events_of(session, app_id, "evaluation.admissibility_completed")
    assert event.payload["verdict"] == "needs_review" and event.payload["review_checks"] == ["lombardy_site"]

    body = {"check_code": "lombardy_site", "outcome": "pass", "note": "Contratto di locazione a Brescia verificato."}
    # a partner cannot review (403); no If-Match (428); a stale one (412): nothing changes
    assert (
        await evaluation_client.post(url, json=body, headers={**sub["partner_headers"], "If-Match": '"1"'})
    ).status_code == 403
    assert (await evaluation_client.post(url, json=body, headers=officer)).status_code == 428
    r = await evaluation_client.post(url, json=body, headers={**officer, "If-Match": '"7"'})
    assert r.status_code == 412 and r.json()["type"] == "/problems/precondition-failed"
    r = await evaluation_client.post(url, json={**body, "check_code": "ateco"}, headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 409  # not under review
    assert (await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=officer)).json()["stage"] == "needs_review"

    r = await evaluation_client.post(url, json=body, headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    ev = r.json()
    assert ev["stage"] == "admissible" and ev["admissibility_verdict"] == "admissible"
    check = by_code(ev)["lombardy_site"]
    assert check["outcome"] == "pass" and check["automatic_outcome"] == "needs_review"
    assert check["review"]["note"] == body["note"] and check["review"]["outcome"] == "pass"

    events = await events_of(session, app_id, "evaluation.admissibility_completed")
    assert [e.payload["verdict"] for e in events] == ["needs_review", "admissible"]
    audit = (
        await session.execute(
            text(
                "SELECT before, after FROM desk.audit_log WHERE action = 'evaluation.admissibility_reviewed' "
                "AND resource_id = :a"
            ),
            {"a": app_id},
        )
    ).one()
    assert audit.before["stage"] == "needs_review" and audit.after["stage"] == "admissible"
    # nothing left to review
    assert (await evaluation_client.post(url, json=body, headers={**officer, "If-Match": '"2"'})).status_code == 409


async def test_a_failed_review_makes_the_application_not_admissible(
    evaluation_client, intake, intake_server, engine, officer
):
    sub = await evaluated(evaluation_client, engine, intake_server.url, company=LOMBARDY_COMMITMENT)
    r = await evaluation_client.post(
        f"/v1/evaluations/{sub['application_id']}/admissibility-reviews",
        json={"check_code": "lombardy_site", "outcome": "fail", "note": "Nessuna sede individuata."},
        headers={**officer, "If-Match": '"1"'},
    )
    assert r.status_code == 200
    assert r.json()["stage"] == "not_admissible"


# ---------------------------------------------------------------- who may read


async def test_a_partner_of_another_company_gets_404_and_partners_list_only_their_own(
    evaluation_client, intake, intake_server, engine, token_factory, auditor, session
):
    sub = await evaluated(evaluation_client, engine, intake_server.url)
    app_id = sub["application_id"]
    from tests.factories import make_company, make_partner

    other = await make_partner(session)
    other_headers = await token_factory("partner", partner_id=other.id)
    r = await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=other_headers)
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
    other_company = await make_company(session)
    r = await evaluation_client.get(
        f"/v1/evaluations/{app_id}", headers=await token_factory("company", company_id=other_company.id)
    )
    assert r.status_code == 404
    own = await evaluation_client.get(
        f"/v1/evaluations/{app_id}", headers=await token_factory("company", company_id=sub["company_id"])
    )
    assert own.status_code == 200
    assert (await evaluation_client.get(f"/v1/evaluations/{app_id}", headers=auditor)).status_code == 200
    listed = await evaluation_client.get("/v1/evaluations", headers=sub["partner_headers"])
    assert [e["application_id"] for e in listed.json()["items"]] == [app_id], "partners list their own only"
    assert (await evaluation_client.get("/v1/evaluations", headers=other_headers)).json()["items"] == []
    assert (await evaluation_client.get(f"/v1/evaluations/{uuid.uuid4()}", headers=auditor)).status_code == 404


@pytest.mark.parametrize("stage", ["bogus"])
async def test_an_unknown_stage_filter_is_422(evaluation_client, officer, stage):
    r = await evaluation_client.get("/v1/evaluations", params={"stage": stage}, headers=officer)
    assert r.status_code == 422


async def test_an_application_submitted_under_v1_is_evaluated_under_v1_after_v2(
    evaluation_client, intake, intake_server, engine, officer, session
):
    """The call's rules change after the submission (a version 2 that admits micro firms only, written as the
    store would hold it): the small firm submitted under version 1 is still judged under version 1."""
    import copy

    sub = await submit_through_intake(engine, intake_server.url)  # a small firm, under version 1
    async with engine.begin() as c:
        v1 = (
            await c.execute(
                text("SELECT rules FROM intake.call_versions WHERE call_id = :c AND version = 1"), {"c": sub["call_id"]}
            )
        ).scalar_one()
        v2 = copy.deepcopy(v1)
        v2["eligibility"]["sizes"] = ["micro"]
        await c.execute(
            text(
                "INSERT INTO intake.call_versions (call_id, version, rules, reason, created_by) "
                "VALUES (:c, 2, CAST(:r AS jsonb), 'test', 'test')"
            ),
            {"c": sub["call_id"], "r": orjson.dumps(v2).decode()},
        )
        await c.execute(text("UPDATE intake.calls SET current_version = 2 WHERE id = :c"), {"c": sub["call_id"]})
    app = await intake_server_get(intake_server.url, sub)
    assert app["call_version"] == 1, "intake records the version in force at submission"

    sub["event"] = await outbox_event(engine, sub["application_id"], "application.submitted")
    r = await deliver(evaluation_client, sub["event"])
    assert r.status_code == 200, r.text
    ev = (await evaluation_client.get(f"/v1/evaluations/{sub['application_id']}", headers=officer)).json()
    assert by_code(ev)["sme_class"]["outcome"] == "pass", "judged under version 1, which admits small firms"
    assert ev["admissibility_verdict"] == "admissible"


async def intake_server_get(intake_url: str, sub: dict[str, Any]) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.get(f"/v1/applications/{sub['application_id']}", headers=sub["partner_headers"])
        assert r.status_code == 200, r.text
        return dict(r.json())
