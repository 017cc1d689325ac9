"""The outcome of a project through HTTP, with worked figures, and the budget it frees given back to evaluation.

The real intake and evaluation apps answer on loopback ports with committed data: the application is evaluated
and funded at evaluation (grant 20,000.00 + loan 65,000.00 = 85,000.00 committed on the call's budget); the
project (approved eligible total 100,000.00, advance 8,000.00 paid) is built as a row in the test's transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import delegate, make_company, make_partner, open_call
from tests.services.evaluation.builders import approve_funding, evaluated_application
from tests.services.monitoring.builders import VALID_IBAN, make_payment, make_project


async def funded_at_evaluation(engine: Any, evaluation_url: str, *, grant: str = "20000.00",
                               loan: str = "65000.00") -> dict[str, Any]:
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        company = await make_company(s)
        await delegate(s, partner, company)
        app = await evaluated_application(s, call_id=call.id, grant=grant, loan=loan, score="75.00",
                                          company_id=company.id, partner_id=partner.id)
        officer = await make_token(s, "officer")
        second_officer = await make_token(s, "officer")
        call.demo_closes_at = datetime.now(UTC) - timedelta(seconds=1)  # a ranking is funded after the close
        await s.commit()
    async with httpx.AsyncClient(base_url=evaluation_url) as http:
        r = await approve_funding(http, app.application_id, officer, second_officer)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "funded" and r.json()["granted"] == "85000.00"
    return {"call_id": call.id, "company_id": company.id, "partner_id": partner.id,
            "application_id": app.application_id, "officer": officer}


async def at_evaluation(evaluation_url: str, headers: dict[str, str], path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=evaluation_url) as http:
        r = await http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


async def project_with_paid_advance(session: Any, funded: dict[str, Any], **kw: Any) -> Any:
    project = await make_project(session, call_id=funded["call_id"], company_id=funded["company_id"],
                                 partner_id=funded["partner_id"], application_id=funded["application_id"],
                                 grant="20000.00", loan="65000.00", eligible_total="100000.00", iban=VALID_IBAN, **kw)
    await make_payment(session, project, amount="8000.00", status="paid")
    return project


async def payments_of(client: Any, headers: dict[str, str], project_id: Any) -> list[tuple[str, str, str]]:
    items = (await client.get("/v1/payments", params={"project_id": str(project_id)}, headers=headers)).json()["items"]
    return sorted((p["kind"], p["amount"], p["status"]) for p in items)


async def outbox(session: Any, project_id: Any, event_type: str) -> list[dict[str, Any]]:
    return list((await session.execute(text(
        "SELECT payload FROM desk.outbox WHERE aggregate_id = :p AND event_type = :t ORDER BY id"),
        {"p": str(project_id), "t": event_type})).scalars().all())


async def test_full_spend_keeps_the_aid_and_orders_the_balance(monitoring_client, intake, evaluation,
                                                               evaluation_server, engine, session, officer):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)

    stale = await monitoring_client.post(f"/v1/projects/{project.id}/outcome", json={"recognised_total": "100000.00"},
                                         headers={**officer, "If-Match": '"9"'})
    assert stale.status_code == 412
    r = await monitoring_client.post(f"/v1/projects/{project.id}/outcome", json={"recognised_total": "103500.00"},
                                     headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "completed" and got["final_grant"] == "20000.00" and got["final_loan"] == "65000.00"
    out = got["outcome"]
    assert (out["kind"], out["released"], out["balance"], out["recovery"]) == ("full", "0.00", "12000.00", "0.00")
    # balance = final grant 20,000.00 - advance 8,000.00
    assert await payments_of(monitoring_client, officer, project.id) == [("advance", "8000.00", "paid"),
                                                                         ("balance", "12000.00", "ordered")]
    funding = await at_evaluation(evaluation_server.url, funded["officer"],
                                  f"/v1/fundings/{funded['application_id']}")
    assert funding["granted"] == "85000.00" and funding["status"] == "funded"  # nothing released

    twice = await monitoring_client.post(f"/v1/projects/{project.id}/outcome", json={"recognised_total": "1.00"},
                                         headers={**officer, "If-Match": '"2"'})
    assert twice.status_code == 409
    assert len(await outbox(session, project.id, "project.completed")) == 1


async def test_85_percent_reduces_the_aid_in_proportion_and_releases_the_difference(
        monitoring_client, intake, evaluation, evaluation_server, engine, session, officer, token_factory):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)

    r = await monitoring_client.post(f"/v1/projects/{project.id}/outcome", json={"recognised_total": "85000.00"},
                                     headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    got = r.json()
    # 85 % of the aid: grant 20,000.00 x 0.85 = 17,000.00; loan 65,000.00 x 0.85 = 55,250.00
    assert got["final_grant"] == "17000.00" and got["final_loan"] == "55250.00"
    out = got["outcome"]
    assert (out["kind"], out["ratio"], out["released"], out["balance"]) == ("reduced", "0.8500", "12750.00",
                                                                            "9000.00")
    assert await payments_of(monitoring_client, officer, project.id) == [("advance", "8000.00", "paid"),
                                                                         ("balance", "9000.00", "ordered")]

    # evaluation got back 85,000.00 - 72,250.00 = 12,750.00: the funding keeps 72,250.00
    funding = await at_evaluation(evaluation_server.url, funded["officer"],
                                  f"/v1/fundings/{funded['application_id']}")
    assert (funding["granted"], funding["status"]) == ("72250.00", "funded")
    budget = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/calls/{funded['call_id']}/budget")
    releases = [e for e in budget["entries"] if e["kind"] == "release"]
    assert [(e["amount"], e["application_id"]) for e in releases] == [("12750.00", str(funded["application_id"]))]
    assert releases[0]["reason"].startswith("reduction:")
    assert budget["committed"] == "72250.00"

    # the loan's plan follows the reduced loan
    company = await token_factory("company", company_id=funded["company_id"])
    plan = (await monitoring_client.get(f"/v1/projects/{project.id}/loan-schedule", headers=company)).json()
    assert plan["principal"] == "55250.00"
    event = (await outbox(session, project.id, "project.completed"))[0]
    assert (event["outcome"], event["released"], event["grant"]) == ("reduced", "12750.00", "17000.00")


async def test_60_percent_revokes_and_recovers_the_advance(monitoring_client, intake, evaluation, evaluation_server,
                                                           engine, session, officer):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)

    r = await monitoring_client.post(f"/v1/projects/{project.id}/outcome", json={"recognised_total": "60000.00"},
                                     headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "revoked" and got["final_grant"] == "0.00" and got["final_loan"] == "0.00"
    out = got["outcome"]
    assert (out["kind"], out["reason_code"], out["recovery"], out["released"]) == (
        "revoked", "below_threshold", "8000.00", "85000.00")
    assert await payments_of(monitoring_client, officer, project.id) == [("advance", "8000.00", "paid"),
                                                                         ("recovery", "8000.00", "ordered")]
    funding = await at_evaluation(evaluation_server.url, funded["officer"],
                                  f"/v1/fundings/{funded['application_id']}")
    assert (funding["granted"], funding["status"]) == ("0.00", "revoked")
    event = (await outbox(session, project.id, "project.revoked"))[0]
    assert (event["reason_code"], event["recovery"], event["released"]) == ("below_threshold", "8000.00", "85000.00")
    # no payment on a revoked project
    again = await monitoring_client.post(f"/v1/projects/{project.id}/payments", json={"kind": "balance"},
                                         headers=officer)
    assert again.status_code == 409


async def test_a_site_never_opened_is_revoked_by_an_officer(monitoring_client, intake, evaluation,
                                                            evaluation_server, engine, session, officer):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await make_project(session, call_id=funded["call_id"], company_id=funded["company_id"],
                                 partner_id=funded["partner_id"], application_id=funded["application_id"],
                                 iban=VALID_IBAN, lombardy_site_verified=False)
    advance = await make_payment(session, project, amount="8000.00")  # ordered, not paid yet
    url = f"/v1/projects/{project.id}/revocation"

    early = await monitoring_client.post(url, json={"reason_code": "deadline_missed", "reason": "Termine scaduto"},
                                         headers={**officer, "If-Match": '"1"'})
    assert early.status_code == 409  # the deadline has not passed
    r = await monitoring_client.post(url, json={"reason_code": "site_never_opened",
                                                "reason": "Nessuna sede aperta in Lombardia"},
                                     headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    out = r.json()["outcome"]
    assert (out["kind"], out["reason_code"], out["recovery"], out["released"], out["recognised"]) == (
        "revoked", "site_never_opened", "0.00", "85000.00", None)
    # the unpaid advance will never be paid; nothing was paid, so nothing is recovered
    assert await payments_of(monitoring_client, officer, project.id) == [("advance", "8000.00", "cancelled")]
    assert (await monitoring_client.post(f"/v1/payments/{advance.id}/paid",
                                         headers={**officer, "If-Match": '"2"'})).status_code == 409
    funding = await at_evaluation(evaluation_server.url, funded["officer"],
                                  f"/v1/fundings/{funded['application_id']}")
    assert funding["status"] == "revoked"


async def test_evaluation_down_changes_nothing(monitoring_client, intake, monitoring_app, engine, session, officer):
    from shared.clients.evaluation import EvaluationClient

    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        await s.commit()
    project = await make_project(session, call_id=call.id, iban=VALID_IBAN)
    down = EvaluationClient("http://127.0.0.1:9", service="monitoring", keyring=None, issuer="regional-desk",
                            retries=0)
    monitoring_app.state.evaluation_client = down
    try:
        r = await monitoring_client.post(f"/v1/projects/{project.id}/outcome",
                                         json={"recognised_total": "85000.00"},
                                         headers={**officer, "If-Match": '"1"'})
    finally:
        monitoring_app.state.evaluation_client = None
        await down.aclose()
    assert r.status_code == 503
    got = await monitoring_client.get(f"/v1/projects/{project.id}", headers=officer)
    assert got.json()["status"] == "active" and got.json()["outcome"] is None and got.headers["etag"] == '"1"'
    assert await payments_of(monitoring_client, officer, project.id) == []
    assert uuid.UUID(got.json()["id"]) == project.id
