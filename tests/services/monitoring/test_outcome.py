"""The outcome of a project through HTTP, with worked figures, and the budget it frees given back to evaluation.

The outcome is never typed: it is computed when the officer completes the review of the project's final claim
(`POST /v1/claims/{id}/review/complete`). The real intake and evaluation apps answer on loopback ports with
committed data: the application is evaluated and funded at evaluation (grant 20,000.00 + loan 65,000.00 =
85,000.00 committed on the call's budget); the project (approved eligible total 100,000.00 in category b, advance
8,000.00 paid) is built as a row in the test's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text

from services.monitoring.storage import DiskStorage
from shared.db import make_sessionmaker
from shared.domain.recovery import LEGAL_INTEREST_RATES
from tests.conftest import make_token
from tests.factories import delegate, make_company, make_partner, open_call
from tests.services.evaluation.builders import approve_funding, evaluated_application
from tests.services.monitoring.builders import VALID_IBAN, FakeIntake, make_payment, make_project

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class SeededIntake(FakeIntake):
    """Intake as the claims flow reads it: every call has the seeded rules, every application a title."""

    async def get_call(self, call_id: uuid.UUID) -> Any:
        if call_id not in self.calls:
            self.add_call(call_id)
        return await super().get_call(call_id)

    async def get_application(self, application_id: uuid.UUID) -> Any:
        if application_id not in self.applications:
            self.add_application(application_id, "Piano export")
        return await super().get_application(application_id)


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def storage(monitoring_app: Any, intake: Any, tmp_path: Path) -> AsyncIterator[Path]:
    monitoring_app.state.storage = DiskStorage(tmp_path / "evidence")
    monitoring_app.state.intake_client = SeededIntake()
    yield tmp_path / "evidence"
    monitoring_app.state.storage = None


async def funded_at_evaluation(
    engine: Any, evaluation_url: str, *, grant: str = "20000.00", loan: str = "65000.00"
) -> dict[str, Any]:
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        company = await make_company(s)
        await delegate(s, partner, company)
        app = await evaluated_application(
            s, call_id=call.id, grant=grant, loan=loan, score="75.00", company_id=company.id, partner_id=partner.id
        )
        officer = await make_token(s, "officer")
        second_officer = await make_token(s, "officer")
        call.demo_closes_at = datetime.now(UTC) - timedelta(seconds=1)  # a ranking is funded after the close
        await s.commit()
    async with httpx.AsyncClient(base_url=evaluation_url) as http:
        r = await approve_funding(http, app.application_id, officer, second_officer)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "funded" and r.json()["granted"] == "85000.00"
    return {
        "call_id": call.id,
        "company_id": company.id,
        "partner_id": partner.id,
        "application_id": app.application_id,
        "officer": officer,
    }


async def at_evaluation(evaluation_url: str, headers: dict[str, str], path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=evaluation_url) as http:
        r = await http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


async def project_with_paid_advance(session: Any, funded: dict[str, Any], **kw: Any) -> Any:
    project = await make_project(
        session,
        call_id=funded["call_id"],
        company_id=funded["company_id"],
        partner_id=funded["partner_id"],
        application_id=funded["application_id"],
        grant="20000.00",
        loan="65000.00",
        eligible_total="100000.00",
        iban=VALID_IBAN,
        **kw,
    )
    await make_payment(session, project, amount="8000.00", status="paid")
    return project


async def claim_under_review(
    client: Any, project: Any, officer: dict[str, str], company: dict[str, str], recognised: str, *, kind: str = "final"
) -> str:
    """The company files a claim of one invoice (category b, 120,000.00 taxable), the officer recognises
    `recognised` of it: the claim waits for the review to be completed. Returns its id."""
    r = await client.post(f"/v1/projects/{project.id}/claims", json={"kind": kind}, headers=company)
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    line = {
        "kind": "invoice",
        "supplier_vat": "IT01234560157",
        "supplier_name": "Fiere S.r.l.",
        "document_number": f"F-{uuid.uuid4().hex[:8]}",
        "issue_date": str(project.start_date),
        "taxable_amount": "120000.00",
        "category": "b",
        "market": "VN",
        "payment_date": str(project.start_date),
        "payment_method": "bank_transfer",
    }
    r = await client.post(f"/v1/claims/{cid}/lines", json=line, headers={**company, "If-Match": '"1"'})
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    r = await client.post(
        f"/v1/claims/{cid}/lines/{lid}/evidence",
        files={"file": ("fattura.pdf", PDF, "application/pdf")},
        headers=company,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/claims/{cid}/submit", headers={**company, "If-Match": await claim_etag(client, cid, officer)}
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/v1/claims/{cid}/lines/{lid}/review",
        json={"outcome": "partially", "recognised_amount": recognised, "note": "verificato"},
        headers={**officer, "If-Match": await claim_etag(client, cid, officer)},
    )
    assert r.status_code == 200, r.text
    return cid


async def claim_etag(client: Any, cid: str, headers: dict[str, str]) -> str:
    return str((await client.get(f"/v1/claims/{cid}", headers=headers)).headers["etag"])


async def reviewed_final_claim(
    client: Any, project: Any, officer: dict[str, str], company: dict[str, str], recognised: str, *, expect: int = 200
) -> httpx.Response:
    """A final claim of one invoice, `recognised` of it recognised, its review completed: the project's outcome
    follows from it."""
    cid = await claim_under_review(client, project, officer, company, recognised)
    r = await client.post(
        f"/v1/claims/{cid}/review/complete", headers={**officer, "If-Match": await claim_etag(client, cid, officer)}
    )
    assert r.status_code == expect, r.text
    return r


async def project_out(client: Any, project: Any, officer: dict[str, str]) -> dict[str, Any]:
    r = await client.get(f"/v1/projects/{project.id}", headers=officer)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def payments_of(client: Any, headers: dict[str, str], project_id: Any) -> list[tuple[str, str, str]]:
    items = (await client.get("/v1/payments", params={"project_id": str(project_id)}, headers=headers)).json()["items"]
    return sorted((p["kind"], p["amount"], p["status"]) for p in items)


async def outbox(session: Any, project_id: Any, event_type: str) -> list[dict[str, Any]]:
    return list(
        (
            await session.execute(
                text("SELECT payload FROM desk.outbox WHERE aggregate_id = :p AND event_type = :t ORDER BY id"),
                {"p": str(project_id), "t": event_type},
            )
        )
        .scalars()
        .all()
    )


async def test_full_spend_keeps_the_aid_and_orders_the_balance(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer, token_factory
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)
    company = await token_factory("company", company_id=funded["company_id"])

    # the typed figure is gone: no route takes an officer's recognised_total
    typed = await monitoring_client.post(
        f"/v1/projects/{project.id}/outcome",
        json={"recognised_total": "100000.00"},
        headers={**officer, "If-Match": '"1"'},
    )
    assert typed.status_code in (404, 405)
    await reviewed_final_claim(monitoring_client, project, officer, company, "103500.00")
    got = await project_out(monitoring_client, project, officer)
    assert got["status"] == "completed" and got["final_grant"] == "20000.00" and got["final_loan"] == "65000.00"
    out = got["outcome"]
    # 103,500.00 recognised of 100,000.00 approved (within the 20 % tolerance): full aid
    assert (out["kind"], out["recognised"], out["released"], out["balance"], out["recovery"]) == (
        "full",
        "103500.00",
        "0.00",
        "12000.00",
        "0.00",
    )
    # balance = final grant 20,000.00 - advance 8,000.00
    assert await payments_of(monitoring_client, officer, project.id) == [
        ("advance", "8000.00", "paid"),
        ("balance", "12000.00", "ordered"),
    ]
    funding = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/fundings/{funded['application_id']}")
    assert funding["granted"] == "85000.00" and funding["status"] == "funded"  # nothing released
    assert len(await outbox(session, project.id, "project.completed")) == 1


async def test_85_percent_reduces_the_aid_in_proportion_and_releases_the_difference(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer, token_factory
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)

    company = await token_factory("company", company_id=funded["company_id"])
    await reviewed_final_claim(monitoring_client, project, officer, company, "85000.00")
    got = await project_out(monitoring_client, project, officer)
    # 85 % of the aid: grant 20,000.00 x 0.85 = 17,000.00; loan 65,000.00 x 0.85 = 55,250.00
    assert got["final_grant"] == "17000.00" and got["final_loan"] == "55250.00"
    out = got["outcome"]
    assert (out["kind"], out["ratio"], out["released"], out["balance"]) == ("reduced", "0.8500", "12750.00", "9000.00")
    assert await payments_of(monitoring_client, officer, project.id) == [
        ("advance", "8000.00", "paid"),
        ("balance", "9000.00", "ordered"),
    ]

    # evaluation got back 85,000.00 - 72,250.00 = 12,750.00: the funding keeps 72,250.00
    funding = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/fundings/{funded['application_id']}")
    assert (funding["granted"], funding["status"]) == ("72250.00", "funded")
    budget = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/calls/{funded['call_id']}/budget")
    releases = [e for e in budget["items"] if e["kind"] == "release"]
    assert [(e["amount"], e["application_id"]) for e in releases] == [("12750.00", str(funded["application_id"]))]
    assert releases[0]["reason"].startswith("reduction:")
    assert budget["committed"] == "72250.00"

    # the loan's plan follows the reduced loan
    plan = (await monitoring_client.get(f"/v1/projects/{project.id}/loan-schedule", headers=company)).json()
    assert plan["principal"] == "55250.00"
    event = (await outbox(session, project.id, "project.completed"))[0]
    assert (event["outcome"], event["released"], event["grant"]) == ("reduced", "12750.00", "17000.00")


async def test_60_percent_revokes_and_recovers_the_advance_with_interest_and_the_loan(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer, token_factory
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)
    company = await token_factory("company", company_id=funded["company_id"])

    await reviewed_final_claim(monitoring_client, project, officer, company, "60000.00")
    got = await project_out(monitoring_client, project, officer)
    assert got["status"] == "revoked" and got["final_grant"] == "0.00" and got["final_loan"] == "0.00"
    out = got["outcome"]
    detail = out["recovery_detail"]
    # the advance was paid today: no day of interest yet; the loan, paid out with it, is in its 12 months' grace:
    # all its capital is owed back at once
    assert (detail["capital"], detail["interest"], detail["loan_outstanding"], detail["total"]) == (
        "8000.00",
        "0.00",
        "65000.00",
        "73000.00",
    )
    assert (out["kind"], out["reason_code"], out["article"], out["recovery"], out["released"]) == (
        "revoked",
        "below_threshold",
        "D.2",
        "73000.00",
        "85000.00",
    )
    assert await payments_of(monitoring_client, officer, project.id) == [
        ("advance", "8000.00", "paid"),
        ("recovery", "73000.00", "ordered"),
    ]
    funding = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/fundings/{funded['application_id']}")
    assert (funding["granted"], funding["status"]) == ("0.00", "revoked")
    event = (await outbox(session, project.id, "project.revoked"))[0]
    assert (event["reason_code"], event["recovery"], event["released"]) == ("below_threshold", "73000.00", "85000.00")
    # no payment on a revoked project
    again = await monitoring_client.post(
        f"/v1/projects/{project.id}/payments", json={"kind": "balance"}, headers=officer
    )
    assert again.status_code == 409


async def test_a_site_never_opened_is_revoked_by_an_officer(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await make_project(
        session,
        call_id=funded["call_id"],
        company_id=funded["company_id"],
        partner_id=funded["partner_id"],
        application_id=funded["application_id"],
        iban=VALID_IBAN,
        lombardy_site_verified=False,
    )
    advance = await make_payment(session, project, amount="8000.00")  # ordered, not paid yet
    url = f"/v1/projects/{project.id}/revocation"

    early = await monitoring_client.post(
        url,
        json={"reason_code": "deadline_missed", "reason": "Termine scaduto"},
        headers={**officer, "If-Match": '"1"'},
    )
    assert early.status_code == 409  # the deadline has not passed
    r = await monitoring_client.post(
        url,
        json={"reason_code": "site_never_opened", "reason": "Nessuna sede aperta in Lombardia"},
        headers={**officer, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    out = r.json()["outcome"]
    assert (out["kind"], out["reason_code"], out["recovery"], out["released"], out["recognised"]) == (
        "revoked",
        "site_never_opened",
        "0.00",
        "85000.00",
        None,
    )
    # the unpaid advance will never be paid; nothing was paid, so nothing is recovered
    assert await payments_of(monitoring_client, officer, project.id) == [("advance", "8000.00", "cancelled")]
    assert (
        await monitoring_client.post(f"/v1/payments/{advance.id}/paid", headers={**officer, "If-Match": '"2"'})
    ).status_code == 409
    funding = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/fundings/{funded['application_id']}")
    assert funding["status"] == "revoked"


async def test_evaluation_down_changes_nothing(
    monitoring_client, intake, monitoring_app, engine, session, officer, token_factory
):
    from shared.clients.evaluation import EvaluationClient

    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        await s.commit()
    project = await make_project(session, call_id=call.id, iban=VALID_IBAN)
    company = await token_factory("company", company_id=project.company_id)
    down = EvaluationClient("http://127.0.0.1:9", service="monitoring", keyring=None, issuer="regional-desk", retries=0)
    monitoring_app.state.evaluation_client = down
    try:
        r = await reviewed_final_claim(monitoring_client, project, officer, company, "85000.00", expect=503)
    finally:
        monitoring_app.state.evaluation_client = None
        await down.aclose()
    assert r.status_code == 503
    got = await monitoring_client.get(f"/v1/projects/{project.id}", headers=officer)
    assert got.json()["status"] == "active" and got.json()["outcome"] is None and got.headers["etag"] == '"1"'
    assert await payments_of(monitoring_client, officer, project.id) == []
    assert uuid.UUID(got.json()["id"]) == project.id


async def test_false_declaration_revokes_with_statutory_interest_and_the_loans_early_repayment(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)
    advance = (
        await session.execute(text("SELECT id FROM monitoring.payments WHERE project_id = :p"), {"p": str(project.id)})
    ).scalar_one()
    await session.execute(
        text("UPDATE monitoring.payments SET paid_at = '2025-10-01T08:00:00Z' WHERE id = :i"), {"i": str(advance)}
    )
    url = f"/v1/projects/{project.id}/revocation"
    body = {
        "reason_code": "false_declaration",
        "recovery_date": "2026-03-02",
        "reason": "DSAN sulla dimensione d'impresa non veritiera (verbale del 20/02/2026)",
    }

    early = await monitoring_client.post(
        url, json={**body, "recovery_date": "2025-09-30"}, headers={**officer, "If-Match": '"1"'}
    )
    assert early.status_code == 422 and early.json()["errors"][0]["code"] == "recovery_date_before_payment"
    known = max(LEGAL_INTEREST_RATES)  # the last year whose rate the table has (2026 when written)
    unknown = await monitoring_client.post(
        url, json={**body, "recovery_date": f"{known + 5}-01-02"}, headers={**officer, "If-Match": '"1"'}
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["code"] == "legal_rate_unknown"
    assert unknown.json()["errors"][0]["years"] == list(range(known + 1, known + 6))
    late = await monitoring_client.post(
        url, json={**body, "reason_code": "obligations_broken"}, headers={**officer, "If-Match": '"1"'}
    )
    assert late.status_code == 409  # obligations after completion: only once completed

    r = await monitoring_client.post(url, json=body, headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    out = r.json()["outcome"]
    assert (out["kind"], out["reason_code"], out["article"]) == ("revoked", "false_declaration", "DPR 445/2000 art. 75")
    detail = out["recovery_detail"]
    # 8,000.00 paid on 1 Oct 2025, recovered on 2 Mar 2026:
    #   2025: 91 days at 2 %   -> 8000 x 0.02 x 91/365  = 14560/365 = 39.8904...
    #   2026: 61 days at 1.6 % -> 8000 x 0.016 x 61/365 =  7808/365 = 21.3917...
    #   interest 22368/365 = 61.2821... -> 61.28 (half-up, once)
    # the loan (65,000.00, paid out with the advance on 1 Oct 2025, 12 months' grace: no capital repaid by
    # 2 Mar 2026) is due at once: 65,000.00
    assert [(g["year"], g["days"], g["rate"]) for g in detail["items"][0]["segments"]] == [
        (2025, 91, "0.02"),
        (2026, 61, "0.016"),
    ]
    assert (detail["capital"], detail["interest"], detail["loan_outstanding"], detail["total"]) == (
        "8000.00",
        "61.28",
        "65000.00",
        "73061.28",
    )
    assert detail["recovered_on"] == "2026-03-02" and out["recovery"] == "73061.28"
    assert await payments_of(monitoring_client, officer, project.id) == [
        ("advance", "8000.00", "paid"),
        ("recovery", "73061.28", "ordered"),
    ]
    funding = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/fundings/{funded['application_id']}")
    assert (funding["granted"], funding["status"]) == ("0.00", "revoked")


async def test_obligations_broken_after_completion_revokes_the_final_aid(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer, token_factory
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)
    company = await token_factory("company", company_id=funded["company_id"])
    await reviewed_final_claim(monitoring_client, project, officer, company, "85000.00")
    done = await project_out(monitoring_client, project, officer)
    assert (done["status"], done["final_grant"], done["final_loan"]) == ("completed", "17000.00", "55250.00")
    today = done["outcome"]["follow_up"]["completed_on"]
    year = int(today[:4])
    assert done["outcome"]["follow_up"]["last_year"] == year + 2
    assert done["outcome"]["follow_up"]["until"] == f"{year + 3}-03-31"
    assert [(f["period"], f["due_date"]) for f in done["outcome"]["follow_up"]["reports"]] == [
        (str(year + 1), f"{year + 2}-03-31"),
        (str(year + 2), f"{year + 3}-03-31"),
    ]

    r = await monitoring_client.post(
        f"/v1/projects/{project.id}/revocation",
        json={"reason_code": "obligations_broken", "reason": "Sede in Lombardia chiusa entro tre anni"},
        headers={**officer, "If-Match": done["etag"]},
    )
    assert r.status_code == 200, r.text
    out = r.json()["outcome"]
    # the reduced aid still committed (17,000.00 + 55,250.00 = 72,250.00) goes back; paid today: no interest;
    # the reduced loan 55,250.00 is in its grace period, all due
    assert (out["reason_code"], out["article"], out["released"]) == ("obligations_broken", "D.4", "72250.00")
    assert (out["recovery_detail"]["capital"], out["recovery_detail"]["loan_outstanding"]) == ("8000.00", "55250.00")
    funding = await at_evaluation(evaluation_server.url, funded["officer"], f"/v1/fundings/{funded['application_id']}")
    assert (funding["granted"], funding["status"]) == ("0.00", "revoked")


async def test_an_override_of_the_computed_outcome_needs_a_reason_and_a_second_officer(
    monitoring_client, intake, evaluation, evaluation_server, engine, session, officer, second_officer, token_factory
):
    funded = await funded_at_evaluation(engine, evaluation_server.url)
    project = await project_with_paid_advance(session, funded)
    company = await token_factory("company", company_id=funded["company_id"])
    # 60,000.00 recognised of 100,000.00 approved: the rules would revoke (below the 70 % threshold)
    cid = await claim_under_review(monitoring_client, project, officer, company, "60000.00")
    url = f"/v1/claims/{cid}/outcome-override"

    async def propose(
        total: str, reason: str = "Ricorso accolto: le spese di fiera sono documentate", who: dict[str, str] = officer
    ) -> httpx.Response:
        return await monitoring_client.post(
            url,
            json={"recognised_total": total, "reason": reason},
            headers={**who, "If-Match": await claim_etag(monitoring_client, cid, who)},
        )

    async def unchanged() -> None:
        claim = (await monitoring_client.get(f"/v1/claims/{cid}", headers=officer)).json()
        assert (claim["status"], claim["recognised_total"]) == ("submitted", None)
        assert (await project_out(monitoring_client, project, officer))["status"] == "active"

    # refused with a problem, nothing changed: more than claimed, the computed figure, no written reason, a company
    too_much = await propose("120000.01")
    assert too_much.status_code == 422
    assert too_much.json()["errors"][0]["code"] == "override_exceeds_claimed"
    same = await propose("60000.00")
    assert same.status_code == 422 and same.json()["errors"][0]["code"] == "override_equals_computed"
    assert (await propose("85000.00", reason="perché")).status_code == 422
    assert (await propose("85000.00", who=company)).status_code == 403
    await unchanged()

    proposed = await propose("85000.00")
    assert proposed.status_code == 202, proposed.text
    body = proposed.json()
    assert (body["action"], body["status"], body["confirm"]) == ("claim.override", "proposed", f"{url}/confirm")
    assert body["detail"]["computed_total"] == "60000.00" and body["detail"]["recognised_total"] == "85000.00"
    again = await propose("85000.00")
    assert again.status_code == 409 and again.json()["type"].endswith("confirmation-pending")
    await unchanged()

    # the proposer cannot confirm it
    own = await monitoring_client.post(
        f"{url}/confirm", headers={**officer, "If-Match": await claim_etag(monitoring_client, cid, officer)}
    )
    assert own.status_code == 403 and own.json()["type"].endswith("four-eyes-same-officer")
    await unchanged()

    confirmed = await monitoring_client.post(
        f"{url}/confirm",
        headers={**second_officer, "If-Match": await claim_etag(monitoring_client, cid, second_officer)},
    )
    assert confirmed.status_code == 200, confirmed.text
    claim = confirmed.json()
    assert (claim["status"], claim["recognised_total"]) == ("partially_approved", "85000.00")
    review = claim["review"]["review"]
    assert (review["computed_total"], review["recognised_total"]) == ("60000.00", "85000.00")
    override = review["override"]
    assert override["reason"] == "Ricorso accolto: le spese di fiera sono documentate"
    assert override["proposed_by"] != override["confirmed_by"]
    assert override["confirmed_by"] == review["reviewed_by"]

    # the project's outcome follows from the overriding total: 85 % of the aid, as in the reduction above
    got = await project_out(monitoring_client, project, officer)
    assert (got["status"], got["final_grant"], got["final_loan"]) == ("completed", "17000.00", "55250.00")
    assert (got["outcome"]["kind"], got["outcome"]["recognised"], got["outcome"]["released"]) == (
        "reduced",
        "85000.00",
        "12750.00",
    )
    audit = (
        (
            await session.execute(
                text("SELECT after FROM desk.audit_log WHERE resource_id = :c AND action = 'claim.reviewed'"),
                {"c": cid},
            )
        )
        .scalars()
        .all()
    )
    assert len(audit) == 1 and audit[0]["override"]["proposed_by"] == override["proposed_by"]
    # nothing left to confirm
    late = await monitoring_client.post(
        f"{url}/confirm",
        headers={**second_officer, "If-Match": await claim_etag(monitoring_client, cid, second_officer)},
    )
    assert late.status_code == 409


async def test_an_override_is_stale_once_the_claim_changes_and_the_computed_review_supersedes_it(
    monitoring_client, intake, session, officer, second_officer, token_factory
):
    project = await make_project(
        session, grant="20000.00", loan="65000.00", eligible_total="100000.00", iban=VALID_IBAN
    )
    company = await token_factory("company", company_id=project.company_id)
    cid = await claim_under_review(monitoring_client, project, officer, company, "50000.00", kind="intermediate")
    url = f"/v1/claims/{cid}/outcome-override"
    r = await monitoring_client.post(
        url,
        json={"recognised_total": "55000.00", "reason": "Verifica in loco: spese ulteriori documentate"},
        headers={**officer, "If-Match": await claim_etag(monitoring_client, cid, officer)},
    )
    assert r.status_code == 202, r.text

    # a line reviewed again after the proposal: the confirmation would decide on another claim
    line = (await monitoring_client.get(f"/v1/claims/{cid}", headers=officer)).json()["lines"][0]
    r = await monitoring_client.put(
        f"/v1/claims/{cid}/lines/{line['id']}/review",
        json={"outcome": "partially", "recognised_amount": "52000.00"},
        headers={**officer, "If-Match": await claim_etag(monitoring_client, cid, officer)},
    )
    assert r.status_code == 200, r.text
    stale = await monitoring_client.post(
        f"{url}/confirm",
        headers={**second_officer, "If-Match": await claim_etag(monitoring_client, cid, second_officer)},
    )
    assert stale.status_code == 409 and stale.json()["proposed_version"] != stale.json()["version"]
    claim = (await monitoring_client.get(f"/v1/claims/{cid}", headers=officer)).json()
    assert (claim["status"], claim["recognised_total"]) == ("submitted", None)

    # completing the review as computed supersedes the open proposal: 52,000.00 recognised, no override
    done = await monitoring_client.post(
        f"/v1/claims/{cid}/review/complete",
        headers={**officer, "If-Match": await claim_etag(monitoring_client, cid, officer)},
    )
    assert done.status_code == 200, done.text
    assert (done.json()["recognised_total"], done.json()["review"]["review"]["override"]) == ("52000.00", None)
    rows = (
        (
            await session.execute(
                text(
                    "SELECT status FROM desk.money_confirmations WHERE resource_id = :c AND action = 'claim.override'"
                ),
                {"c": cid},
            )
        )
        .scalars()
        .all()
    )
    assert rows == ["superseded"]
