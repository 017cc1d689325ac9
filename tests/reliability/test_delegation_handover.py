"""A company takes its delegation from partner A and gives it to partner B: every service follows at once.

Partner A is delegated, submits an application, which is funded (decision), becomes a project with a claim line
and an ordered payment. The company revokes A and delegates B (through intake's API). From the moment the
revocation commits, A gets 404 on every read and write of the company's file in intake, evaluation and
monitoring, and changes nothing; B, the active delegate, reads the whole file, history included, although
everything in it was recorded with A. The `company.delegation_changed` event then moves the partner notified
by evaluation and monitoring to B, and the webhook fan-out sends the company's new events to B, not to A.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.catalogue import envelope
from shared.events.worker import publish_pending
from tests.conftest import TokenFactory
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call
from tests.services.evaluation.builders import FakeIntake as EvaluationIntake
from tests.services.evaluation.builders import evaluated_application
from tests.services.monitoring.builders import VALID_IBAN, deliver, make_payment, make_project
from tests.services.monitoring.builders import FakeIntake as MonitoringIntake

CUP = "E18H25000120007"
LINE = {
    "kind": "invoice",
    "supplier_vat": "IT01234560157",
    "supplier_name": "Fiere e Mercati Esteri S.r.l.",
    "document_number": "2025/0147",
    "issue_date": "2025-04-15",
    "taxable_amount": "4000.00",
    "category": "b",
    "market": "VN",
    "payment_date": "2025-05-10",
    "payment_method": "bank_transfer",
}
BUDGET = [
    {"dimension": "category", "category": "b", "kind": "direct", "amount": "10000.00"},
    {"dimension": "market", "country": "VN", "amount": "10000.00"},
]
KPI = {
    "name": "Quota di fatturato estero",
    "metric": "foreign_turnover_share",
    "unit": "%",
    "baseline": "10",
    "target": "25",
}
MILESTONE = {"title": "Fiera di Ho Chi Minh", "due_date": "2026-06-30"}


async def _ok(resp: httpx.Response, *codes: int) -> dict[str, Any]:
    assert resp.status_code in (codes or (200, 201)), (
        resp.request.method,
        resp.request.url,
        resp.status_code,
        resp.text,
    )
    return dict(resp.json()) if resp.content else {}


async def _state(session: AsyncSession, sql: str, **params: Any) -> list[Any]:
    return [tuple(r) for r in (await session.execute(text(sql), params)).all()]


async def test_a_revoked_delegate_loses_the_company_and_the_new_delegate_gets_it_all(
    client: httpx.AsyncClient,
    evaluation_client: httpx.AsyncClient,
    evaluation_app: Any,
    monitoring_client: httpx.AsyncClient,
    monitoring_app: Any,
    session: AsyncSession,
    token_factory: TokenFactory,
    officer: dict[str, str],
) -> None:
    call = await open_call(session)
    partner_a, partner_b = await make_partner(session), await make_partner(session)
    company = await make_company(session)
    delegation_a = await delegate(session, partner_a, company)
    a = await token_factory("partner", partner_id=partner_a.id)
    b = await token_factory("partner", partner_id=partner_b.id)
    firm = await token_factory("company", company_id=company.id)

    # ---- partner A's file: application, decision, project with a claim line, KPI report, payment
    draft = await _ok(await client.post("/v1/applications", json=draft_body(call.id, company.id), headers=a))
    await declare_stamp_duty(client, draft["id"], a)
    await _ok(await client.post(f"/v1/applications/{draft['id']}/submit", json={}, headers=a), 201)

    evaluation_intake = EvaluationIntake()
    evaluation_app.state.intake_client = evaluation_intake
    monitoring_intake = MonitoringIntake()
    monitoring_app.state.intake_client = monitoring_intake
    try:
        eval_call = evaluation_intake.add_call(budget_total="100000.00")
        received = await evaluated_application(
            session,
            call_id=eval_call,
            company_id=company.id,
            partner_id=partner_a.id,
            grant="20000.00",
            loan="65000.00",
        )
        await _ok(await evaluation_client.post(f"/v1/calls/{eval_call}/allocation", headers=officer))
        decree = await _ok(
            await evaluation_client.post(
                "/v1/decrees",
                headers=officer,
                json={"call_id": str(eval_call), "number": f"DDS-{uuid.uuid4().hex[:10]}", "decree_date": "2026-12-15"},
            ),
            201,
        )
        batch = await _ok(
            await evaluation_client.post(
                f"/v1/decrees/{decree['id']}/decisions",
                json={"all_pending": True},
                headers={**officer, "If-Match": decree["etag"]},
            ),
            201,
        )
        decision = batch["created"][0]
        assert decision["application_id"] == str(received.application_id) and decision["outcome"] == "funded"

        project = await make_project(
            session,
            company_id=company.id,
            partner_id=partner_a.id,
            cup=CUP,
            application_id=received.application_id,
            iban=VALID_IBAN,
            eligible_total="10000.00",
            grant="2000.00",
            loan="6500.00",
        )
        project.approved_budget = BUDGET
        project.start_date = date(2025, 3, 10)
        project.kpis = [KPI]
        project.timeline = {**project.timeline, "milestones": [MILESTONE]}
        await session.flush()
        monitoring_intake.add_call(project.call_id)
        monitoring_intake.add_application(project.application_id, "Export plan")
        payment = await make_payment(session, project, amount="1600.00")
        pid = project.id
        claim = await _ok(
            await monitoring_client.post(f"/v1/projects/{pid}/claims", json={"kind": "intermediate"}, headers=a), 201
        )
        line = await _ok(
            await monitoring_client.post(
                f"/v1/claims/{claim['id']}/lines", json=LINE, headers={**a, "If-Match": '"1"'}
            ),
            201,
        )
        await _ok(
            await monitoring_client.post(
                f"/v1/projects/{pid}/kpi-reports", headers=a, json={"kpi": KPI["name"], "period": "2025", "value": "12"}
            ),
            201,
        )
        assert (await monitoring_client.get(f"/v1/projects/{pid}", headers=a)).status_code == 200
        # before the change, B is a stranger
        assert (await monitoring_client.get(f"/v1/projects/{pid}", headers=b)).status_code == 404
        assert (await evaluation_client.get(f"/v1/decisions/{decision['id']}", headers=b)).status_code == 404

        # ---- the company revokes A and delegates B, through intake's API
        await _ok(await client.post(f"/v1/delegations/{delegation_a.id}/revoke", headers={**firm, "If-Match": '"1"'}))
        asked = await _ok(await client.post("/v1/delegations", json={"vat_number": company.vat_number}, headers=b), 202)
        await _ok(await client.post(f"/v1/delegations/{asked['id']}/accept", headers={**firm, "If-Match": '"1"'}))

        claim_url, line_url = f"/v1/claims/{claim['id']}", f"/v1/claims/{claim['id']}/lines/{line['id']}"
        reads = [
            (client, f"/v1/applications/{draft['id']}"),
            (client, f"/v1/applications/{draft['id']}/receipt"),
            (client, f"/v1/companies/{company.id}"),
            (evaluation_client, f"/v1/evaluations/{received.application_id}"),
            (evaluation_client, f"/v1/decisions/{decision['id']}"),
            (monitoring_client, f"/v1/projects/{pid}"),
            (monitoring_client, f"/v1/projects/{pid}/claims"),
            (monitoring_client, claim_url),
            (monitoring_client, f"/v1/payments/{payment.id}"),
            (monitoring_client, f"/v1/projects/{pid}/kpis"),
            (monitoring_client, f"/v1/projects/{pid}/loan-schedule"),
            (monitoring_client, f"/v1/projects/{pid}/milestones"),
        ]
        writes = [
            (evaluation_client, "POST", f"/v1/decisions/{decision['id']}/accept", None),
            (evaluation_client, "POST", f"/v1/decisions/{decision['id']}/renounce", {"reason": "Non più interessati"}),
            (monitoring_client, "POST", f"/v1/projects/{pid}/claims", {"kind": "final"}),
            (monitoring_client, "POST", f"{claim_url}/lines", {**LINE, "document_number": "2025/0148"}),
            (monitoring_client, "DELETE", line_url, None),
            (monitoring_client, "POST", f"{claim_url}/submit", None),
            (
                monitoring_client,
                "POST",
                f"/v1/projects/{pid}/kpi-reports",
                {"kpi": KPI["name"], "period": "2026", "value": "15"},
            ),
            (monitoring_client, "POST", f"/v1/projects/{pid}/milestones/0/completion", {"completed_on": "2025-06-01"}),
            (monitoring_client, "PUT", f"/v1/projects/{pid}/iban", {"iban": "IT42L1234512345123456789012"}),
            (client, "PUT", f"/v1/applications/{draft['id']}", draft_body(call.id, company.id)),
            (client, "POST", f"/v1/applications/{draft['id']}/withdraw", {"reason": "Ritirata dal vecchio partner"}),
        ]
        watched = {
            "project": ("SELECT iban, partner_id, version, status FROM monitoring.projects WHERE id = :i", pid),
            "claim": ("SELECT status, version FROM monitoring.claims WHERE id = :i", claim["id"]),
            "lines": (
                "SELECT id, document_number FROM monitoring.claim_lines WHERE claim_id = :i ORDER BY id",
                claim["id"],
            ),
            "claims": ("SELECT id FROM monitoring.claims WHERE project_id = :i ORDER BY id", pid),
            "kpis": (
                "SELECT kpi, period, value FROM monitoring.kpi_reports WHERE project_id = :i ORDER BY period",
                pid,
            ),
            "milestones": ("SELECT milestone FROM monitoring.milestone_reports WHERE project_id = :i", pid),
            "payment": ("SELECT iban, status, version FROM monitoring.payments WHERE id = :i", payment.id),
            "decision": ("SELECT status, version FROM evaluation.decisions WHERE id = :i", decision["id"]),
            "application": ("SELECT status, version FROM intake.applications WHERE id = :i", draft["id"]),
        }
        before = {k: await _state(session, sql, i=v) for k, (sql, v) in watched.items()}
        assert before["lines"] and before["kpis"] and before["payment"][0][0] == VALID_IBAN

        # ---- A: 404 on everything, reads and writes, and nothing changes
        wrong = []
        for http, url in reads:
            if (r := await http.get(url, headers=a)).status_code != 404:
                wrong.append(f"GET {url}: {r.status_code}")
        for http, method, url, body in writes:
            kw: dict[str, Any] = {"json": body} if body is not None else {}
            headers = {**a, "If-Match": '"1"', "Idempotency-Key": str(uuid.uuid4())}
            if (r := await http.request(method, url, headers=headers, **kw)).status_code != 404:
                wrong.append(f"{method} {url}: {r.status_code} {r.text[:120]}")
        assert not wrong, "\n".join(wrong)
        for http, url in (
            (client, "/v1/applications"),
            (monitoring_client, "/v1/projects"),
            (monitoring_client, "/v1/payments"),
        ):
            listed = await _ok(await http.get(url, headers=a))
            assert listed["items"] == [], url
        after = {k: await _state(session, sql, i=v) for k, (sql, v) in watched.items()}
        assert after == before

        # ---- B: the whole file, history included (everything in it was recorded with A)
        for http, url in reads:
            r = await http.get(url, headers=b)
            assert r.status_code == 200, (url, r.status_code, r.text[:200])
        seen = await _ok(await monitoring_client.get(f"/v1/payments/{payment.id}", headers=b))
        assert seen["iban"] == VALID_IBAN and seen["amount"] == "1600.00"
        claim_seen = await _ok(await monitoring_client.get(claim_url, headers=b))
        assert [ln["id"] for ln in claim_seen["lines"]] == [line["id"]]
        assert [p["id"] for p in (await _ok(await monitoring_client.get("/v1/projects", headers=b)))["items"]] == [
            str(pid)
        ]
        assert draft["id"] in (await client.get("/v1/applications", headers=b)).text

        # ---- the event: emitted by intake in the change's transaction, applied by evaluation and monitoring
        events = (
            await session.execute(
                text(
                    "SELECT * FROM desk.outbox WHERE event_type = 'company.delegation_changed' AND aggregate_id = :c "
                    "ORDER BY id"
                ),
                {"c": str(company.id)},
            )
        ).all()
        assert [(e.payload["partner_id"], e.payload["status"], e.payload["delegates"]) for e in events] == [
            (str(partner_a.id), "revoked", []),
            (str(partner_b.id), "pending", []),
            (str(partner_b.id), "active", [str(partner_b.id)]),
        ]
        for event in events:
            body = orjson.dumps(envelope(event)).decode()
            await _ok(await deliver(evaluation_client, body))
            await _ok(await deliver(monitoring_client, body))
        assert await _state(
            session,
            "SELECT partner_id FROM evaluation.applications WHERE application_id = :i",
            i=received.application_id,
        ) == [(partner_b.id,)]
        assert await _state(session, "SELECT partner_id FROM monitoring.projects WHERE id = :i", i=pid) == [
            (partner_b.id,)
        ]
        assert (await _ok(await monitoring_client.get(f"/v1/projects/{pid}", headers=b)))["partner_id"] == str(
            partner_b.id
        )
    finally:
        evaluation_app.state.intake_client = None
        monitoring_app.state.intake_client = None


async def test_the_company_events_go_to_its_current_delegate_not_to_the_partner_recorded(
    client: httpx.AsyncClient,
    monitoring_client: httpx.AsyncClient,
    session: AsyncSession,
    token_factory: TokenFactory,
    officer: dict[str, str],
) -> None:
    """An event written for partner A (the project still records A) after A's revocation is fanned out to B's
    webhook; A hears only its own delegation's events."""
    partner_a, partner_b = await make_partner(session), await make_partner(session)
    company = await make_company(session)
    delegation_a = await delegate(session, partner_a, company)
    a = await token_factory("partner", partner_id=partner_a.id)
    b = await token_factory("partner", partner_id=partner_b.id)
    firm = await token_factory("company", company_id=company.id)
    hooks = {}
    for name, headers in (("a", a), ("b", b)):
        hooks[name] = (
            await _ok(
                await client.post(
                    "/v1/webhooks", headers=headers, json={"url": f"http://127.0.0.1:9/{name}", "event_types": ["*"]}
                ),
                201,
            )
        )["id"]
    project = await make_project(session, company_id=company.id, partner_id=partner_a.id, iban=VALID_IBAN)
    payment = await make_payment(session, project, amount="1600.00")
    await publish_pending(session)  # what was there before

    await _ok(await client.post(f"/v1/delegations/{delegation_a.id}/revoke", headers={**firm, "If-Match": '"1"'}))
    asked = await _ok(await client.post("/v1/delegations", json={"vat_number": company.vat_number}, headers=b), 202)
    await _ok(await client.post(f"/v1/delegations/{asked['id']}/accept", headers={**firm, "If-Match": '"1"'}))
    paid = await monitoring_client.post(f"/v1/payments/{payment.id}/paid", headers={**officer, "If-Match": '"1"'})
    assert paid.status_code == 200, paid.text
    recorded = await _state(
        session,
        "SELECT partner_id FROM desk.outbox WHERE event_type = 'payment.paid' AND payload->>'payment_id' = :p",
        p=str(payment.id),
    )
    assert recorded == [(partner_a.id,)]  # written for the partner the project recorded
    await publish_pending(session)

    heard = await _state(
        session,
        """
        SELECT s.url, o.event_type, o.payload->>'status' FROM desk.deliveries d
          JOIN desk.subscriptions s ON s.id = d.subscription_id JOIN desk.outbox o ON o.id = d.event_id
         WHERE s.id = ANY(:subs) ORDER BY o.id, s.url""",
        subs=[uuid.UUID(h) for h in hooks.values()],
    )
    by_hook: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
    for url, event_type, status in heard:
        by_hook[url.rsplit("/", 1)[1]].append((event_type, status))
    assert ("payment.paid", "paid") in by_hook["b"]
    assert ("payment.paid", "paid") not in by_hook["a"]
    assert by_hook["a"] == [("delegation.revoked", "revoked"), ("company.delegation_changed", "revoked")]
    # B hears its own delegation's steps and the company's change once it acts for it
    assert ("delegation.activated", "active") in by_hook["b"]
    # the polling API follows the same rule
    polled_a = (await client.get("/v1/events", headers=a)).text
    polled_b = (await client.get("/v1/events", headers=b)).text
    assert str(payment.id) in polled_b and str(payment.id) not in polled_a
