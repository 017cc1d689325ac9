"""Access control, table-driven (OWASP API Top 10: BOLA, BFLA, mass assignment).

Every route of the three apps has an entry in `TABLE`: which kinds of principal may call it, and which
seeded resource its path names (company A's, delegated to partner A). Each route is called by every kind of
principal: nobody (401 unless public), partner A, partner B, company A, officer, auditor, service, and two
partners of company A's history: the revoked delegate (company A revoked its delegation; much of company A's
file still records it: the evaluation, the decision, the project) and the new delegate (company A delegated
it afterwards, through intake's API). A role that lacks the function gets 403 (BFLA); partner B and the
revoked delegate on company A's resources get 404, never 403, so nothing leaks (BOLA); the new delegate
reaches company A's resources like partner A (though not partner A's own things: its delegation, its
webhooks); whoever may call it gets past authorisation (the request itself is made harmless: an empty body
and a stale `If-Match`, so the call stops at 412/422/428 and changes nothing).

A route added without an entry fails `test_every_route_has_an_entry`, so the table stays complete.
Mass assignment: server-owned fields in create/update bodies are refused (422 extra_forbidden) and nothing
changes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.auth import create_client
from shared.db import make_sessionmaker
from tests.conftest import TokenFactory, app_for
from tests.factories import (
    declare_stamp_duty,
    delegate,
    draft_body,
    expert_body,
    make_company,
    make_partner,
    open_call,
)

P, C, O, A, S, E = "partner", "company", "officer", "auditor", "service", "expert"  # noqa: E741
PUBLIC: frozenset[str] | None = None
PRINCIPALS = (
    "none",
    "partner_b",
    "revoked_delegate",
    "auditor",
    "service",
    "company",
    "new_delegate",
    "partner_a",
    "officer",
    "expert",
)
KIND_OF = {
    "partner_a": P,
    "partner_b": P,
    "revoked_delegate": P,
    "new_delegate": P,
    "company": C,
    "officer": O,
    "auditor": A,
    "service": S,
    "expert": E,
}
# who sees a resource of company A (partner B and the revoked delegate never do)
OWNED = frozenset({"partner_a", "new_delegate", "company", "officer", "auditor", "service"})
PARTNER_OWNED = frozenset({"partner_a", "officer", "auditor", "service"})  # a partner's own things
DELEGATION_OWNED = frozenset({"partner_a", "company", "officer", "auditor", "service"})  # partner A's delegation
ENGAGED = OWNED | {"expert"}  # company A's engagement, assigned to the table's expert
EXPERT_OWNED = frozenset({"expert"})


@dataclass(frozen=True)
class Rule:
    kinds: frozenset[str] | None  # None: public
    visible: frozenset[str] | None = None  # the path names a seeded resource: who may see it
    exists: bool = True  # False: the path's ids name nothing (no such row seeded): 404 is fine for anyone
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> world key, when not the default


def r(*kinds: str, visible: frozenset[str] | None = None, exists: bool = True, **params: str) -> Rule:
    return Rule(frozenset(kinds), visible, exists, params)


PUB = Rule(PUBLIC)
ALL = (P, C, O, A, S)

TABLE: dict[tuple[str, str, str], Rule] = {
    # ------------------------------------------------------------ every service: system and token
    **{
        (svc, "GET", path): PUB
        for svc in ("intake", "evaluation", "monitoring")
        for path in ("/healthz", "/readyz", "/metrics", "/problems", "/problems/{slug}", "/v1/labels")
    },
    **{(svc, "POST", "/v1/oauth/token"): PUB for svc in ("intake", "evaluation", "monitoring")},
    **{
        (svc, "GET", path): r(O, A)
        for svc in ("intake", "evaluation", "monitoring")
        for path in ("/v1/audit", "/v1/audit/export", "/v1/audit/verify")
    },
    # ------------------------------------------------------------ intake: calls
    ("intake", "GET", "/v1/calls"): PUB,
    ("intake", "GET", "/v1/calls/{call_id}"): PUB,
    ("intake", "GET", "/v1/calls/{call_id}/versions/{version}"): PUB,
    ("intake", "GET", "/v1/calls/{call_id}/register"): PUB,
    ("intake", "POST", "/v1/calls"): r(O),
    ("intake", "POST", "/v1/calls/{call_id}/versions"): r(O),
    # ------------------------------------------------------------ intake: applications
    ("intake", "POST", "/v1/applications"): r(P, C),
    ("intake", "GET", "/v1/applications"): r(*ALL),
    ("intake", "GET", "/v1/applications/{application_id}"): r(*ALL, visible=OWNED),
    ("intake", "PUT", "/v1/applications/{application_id}"): r(P, C, visible=OWNED),
    ("intake", "DELETE", "/v1/applications/{application_id}"): r(P, C, visible=OWNED),
    ("intake", "POST", "/v1/applications/{application_id}/check"): r(*ALL, visible=OWNED),
    ("intake", "GET", "/v1/applications/{application_id}/receipt"): r(*ALL, visible=OWNED, application_id="submitted"),
    ("intake", "POST", "/v1/applications/{application_id}/withdraw"): r(
        P, C, visible=OWNED, application_id="submitted"
    ),
    ("intake", "POST", "/v1/applications/{application_id}/submit"): r(P, C, visible=OWNED),
    ("intake", "PUT", "/v1/applications/{application_id}/stamp-duty"): r(P, C, visible=OWNED),
    ("intake", "GET", "/v1/applications/{application_id}/stamp-duty"): r(*ALL, visible=OWNED, exists=False),
    ("intake", "GET", "/v1/applications/{application_id}/form.pdf"): r(*ALL, visible=OWNED, application_id="submitted"),
    ("intake", "POST", "/v1/applications/{application_id}/signed-form"): r(
        P, C, visible=OWNED, application_id="submitted"
    ),
    ("intake", "GET", "/v1/applications/{application_id}/signed-form"): r(
        *ALL, visible=OWNED, exists=False, application_id="submitted"
    ),
    # ------------------------------------------------------------ intake: trainings and enrolments
    ("intake", "POST", "/v1/trainings"): r(O),
    ("intake", "GET", "/v1/trainings"): r(*ALL),
    ("intake", "GET", "/v1/trainings/{training_id}"): r(*ALL),
    ("intake", "PUT", "/v1/trainings/{training_id}"): r(O),
    ("intake", "POST", "/v1/trainings/{training_id}/enrolments"): r(P, C, O),
    ("intake", "GET", "/v1/trainings/{training_id}/enrolments"): r(*ALL),
    ("intake", "GET", "/v1/enrolments/{enrolment_id}"): r(*ALL, visible=OWNED),
    ("intake", "POST", "/v1/enrolments/{enrolment_id}/cancel"): r(P, C, O, visible=OWNED),
    ("intake", "PUT", "/v1/enrolments/{enrolment_id}/attendance"): r(O, visible=OWNED),
    ("intake", "GET", "/v1/enrolments/{enrolment_id}/certificate"): r(*ALL, visible=OWNED),
    # ------------------------------------------------------------ intake: expert accompaniment
    ("intake", "POST", "/v1/experts"): r(O),
    ("intake", "GET", "/v1/experts"): r(O, A),
    ("intake", "GET", "/v1/experts/{expert_id}"): r(O, A),
    ("intake", "PUT", "/v1/experts/{expert_id}"): r(O),
    ("intake", "DELETE", "/v1/experts/{expert_id}"): r(O),
    ("intake", "POST", "/v1/experts/{expert_id}/clients"): r(O),
    ("intake", "POST", "/v1/engagements"): r(P, C),
    ("intake", "GET", "/v1/engagements"): r(*ALL, E),
    ("intake", "GET", "/v1/engagements/{engagement_id}"): r(*ALL, E, visible=ENGAGED),
    ("intake", "GET", "/v1/engagements/{engagement_id}/proposals"): r(P, C, O, A, visible=OWNED),
    ("intake", "POST", "/v1/engagements/{engagement_id}/assignment"): r(O, visible=OWNED),
    ("intake", "POST", "/v1/engagements/{engagement_id}/confirm"): r(E, visible=EXPERT_OWNED),
    ("intake", "POST", "/v1/engagements/{engagement_id}/decline"): r(E, visible=EXPERT_OWNED),
    ("intake", "POST", "/v1/engagements/{engagement_id}/sessions"): r(E, visible=EXPERT_OWNED),
    ("intake", "GET", "/v1/engagements/{engagement_id}/sessions"): r(*ALL, E, visible=ENGAGED),
    ("intake", "POST", "/v1/engagements/{engagement_id}/rating"): r(P, C, visible=OWNED),
    ("intake", "GET", "/v1/stats/accompaniment"): r(O, A),
    # ------------------------------------------------------------ intake: networking with international operators
    ("intake", "POST", "/v1/b2b/operators"): r(O),
    ("intake", "GET", "/v1/b2b/operators"): r(*ALL),
    ("intake", "GET", "/v1/b2b/operators/{operator_id}"): r(*ALL),
    ("intake", "POST", "/v1/b2b/events"): r(O),
    ("intake", "GET", "/v1/b2b/events"): r(*ALL),
    ("intake", "GET", "/v1/b2b/events/{event_id}"): r(*ALL),
    ("intake", "POST", "/v1/b2b/events/{event_id}/interests"): r(P, C, O),
    ("intake", "GET", "/v1/b2b/events/{event_id}/interests"): r(*ALL),
    ("intake", "POST", "/v1/b2b/events/{event_id}/operator-preferences"): r(O),
    ("intake", "POST", "/v1/b2b/events/{event_id}/withdrawals"): r(P, C, O),
    ("intake", "POST", "/v1/b2b/events/{event_id}/agenda"): r(O),
    ("intake", "POST", "/v1/b2b/events/{event_id}/meetings"): r(O),
    ("intake", "GET", "/v1/b2b/events/{event_id}/meetings"): r(*ALL),
    ("intake", "GET", "/v1/b2b/meetings/{meeting_id}"): r(*ALL, visible=OWNED),
    ("intake", "POST", "/v1/b2b/meetings/{meeting_id}/confirm"): r(P, C, O, visible=OWNED),
    ("intake", "POST", "/v1/b2b/meetings/{meeting_id}/outcome"): r(P, C, O, visible=OWNED),
    # ------------------------------------------------------------ intake: partners, companies, delegations
    ("intake", "POST", "/v1/partners"): r(O),
    ("intake", "GET", "/v1/partners"): r(P, O, A, S),
    ("intake", "GET", "/v1/partners/{partner_id}"): r(P, O, A, S, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/partners/{partner_id}/clients"): r(O),
    ("intake", "GET", "/v1/clients"): r(P, O, A),
    ("intake", "POST", "/v1/clients"): r(P, O),
    ("intake", "GET", "/v1/clients/{client_id}"): r(P, O, A, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/clients/{client_id}/rotate"): r(P, O, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/clients/{client_id}/revoke"): r(P, O, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/companies"): r(P, C, O),
    ("intake", "GET", "/v1/companies"): r(*ALL),
    ("intake", "GET", "/v1/companies/{company_id}"): r(*ALL, visible=OWNED),
    ("intake", "PUT", "/v1/companies/{company_id}"): r(P, C, O, visible=OWNED),
    ("intake", "POST", "/v1/companies/{company_id}/clients"): r(O),
    ("intake", "POST", "/v1/delegations"): r(P),
    ("intake", "GET", "/v1/delegations"): r(*ALL),
    ("intake", "GET", "/v1/delegations/{delegation_id}"): r(*ALL, visible=DELEGATION_OWNED),
    ("intake", "POST", "/v1/delegations/{delegation_id}/accept"): r(C, O, visible=DELEGATION_OWNED),
    ("intake", "POST", "/v1/delegations/{delegation_id}/revoke"): r(P, C, O, visible=DELEGATION_OWNED),
    # ------------------------------------------------------------ intake: webhooks and events
    ("intake", "POST", "/v1/webhooks"): r(P, C),
    ("intake", "GET", "/v1/webhooks"): r(P, C, O, A),
    ("intake", "GET", "/v1/webhooks/{webhook_id}"): r(P, C, O, A, visible=PARTNER_OWNED),
    ("intake", "DELETE", "/v1/webhooks/{webhook_id}"): r(P, C, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/webhooks/{webhook_id}/rotate-secret"): r(P, C, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/webhooks/{webhook_id}/ping"): r(P, C, visible=PARTNER_OWNED),
    ("intake", "GET", "/v1/webhooks/{webhook_id}/deliveries"): r(P, C, O, A, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): r(
        P, C, visible=PARTNER_OWNED, exists=False
    ),
    ("intake", "POST", "/v1/webhooks/{webhook_id}/replay"): r(P, C, visible=PARTNER_OWNED),
    ("intake", "POST", "/v1/webhooks/allowed-ports"): r(O),
    ("intake", "GET", "/v1/webhooks/allowed-ports"): r(O, A),
    ("intake", "DELETE", "/v1/webhooks/allowed-ports/{allowance_id}"): r(O, exists=False),
    ("intake", "GET", "/v1/events"): r(P, C, O, A),
    ("intake", "POST", "/v1/internal/applications/snapshots"): r(S),
    ("intake", "GET", "/v1/events/types"): PUB,
    # ------------------------------------------------------------ evaluation
    ("evaluation", "GET", "/v1/applications"): r(O, A, S),
    ("evaluation", "GET", "/v1/applications/{application_id}"): r(O, A, S, application_id="received"),
    ("evaluation", "POST", "/v1/internal/events"): r(S),
    ("evaluation", "POST", "/v1/internal/events/batch"): r(S),
    ("evaluation", "POST", "/v1/reviewers/me/conflicts"): r(O),
    ("evaluation", "GET", "/v1/reviewers/me/conflicts"): r(O),
    ("evaluation", "POST", "/v1/evaluations/{application_id}/assignments"): r(O, application_id="received"),
    ("evaluation", "GET", "/v1/assignments"): r(O),
    ("evaluation", "GET", "/v1/assignments/{assignment_id}"): r(O, exists=False),
    ("evaluation", "POST", "/v1/assignments/{assignment_id}/declaration"): r(O, exists=False),
    ("evaluation", "GET", "/v1/assignments/{assignment_id}/application"): r(O, exists=False),
    ("evaluation", "PUT", "/v1/assignments/{assignment_id}/review"): r(O, exists=False),
    ("evaluation", "POST", "/v1/assignments/{assignment_id}/review/submit"): r(O, exists=False),
    ("evaluation", "GET", "/v1/evaluations/{application_id}/merit"): r(O, A, application_id="received"),
    ("evaluation", "PUT", "/v1/evaluations/{application_id}/credit-class"): r(O, application_id="received"),
    ("evaluation", "GET", "/v1/evaluations"): r(*ALL),
    ("evaluation", "GET", "/v1/evaluations/{application_id}"): r(*ALL, visible=OWNED, application_id="received"),
    ("evaluation", "POST", "/v1/evaluations/{application_id}/admissibility-reviews"): r(O, application_id="received"),
    ("evaluation", "POST", "/v1/evaluations/{application_id}/funding"): r(O, application_id="received"),
    ("evaluation", "POST", "/v1/de-minimis/aids"): r(O),
    ("evaluation", "POST", "/v1/de-minimis/imports"): r(O),
    ("evaluation", "GET", "/v1/de-minimis/aids"): r(O, A, S),
    ("evaluation", "GET", "/v1/de-minimis/undertakings/{vat_number}"): r(O, A, S),
    ("evaluation", "GET", "/v1/de-minimis/applications/{application_id}"): r(O, A, S),
    ("evaluation", "GET", "/v1/calls/{call_id}/budget"): r(O, A),
    ("evaluation", "POST", "/v1/calls/{call_id}/allocation"): r(O),
    ("evaluation", "POST", "/v1/calls/{call_id}/signature-deadlines"): r(O),
    ("evaluation", "POST", "/v1/calls/{call_id}/budget/releases"): r(S),
    ("evaluation", "GET", "/v1/calls/{call_id}/ranking"): r(O, A),
    ("evaluation", "GET", "/v1/calls/{call_id}/rankings"): r(O, A),
    ("evaluation", "POST", "/v1/calls/{call_id}/rankings"): r(O),
    ("evaluation", "GET", "/v1/calls/{call_id}/rankings/{number}"): r(O, A, exists=False, number="index"),
    ("evaluation", "GET", "/v1/public/calls/{call_id}/rankings/{number}"): Rule(
        PUBLIC, exists=False, params={"number": "index"}
    ),
    ("evaluation", "POST", "/v1/fundings/{application_id}/approve"): r(O, application_id="received"),
    ("evaluation", "POST", "/v1/fundings/{application_id}/confirm"): r(O, application_id="received"),
    ("evaluation", "GET", "/v1/fundings"): r(*ALL),
    ("evaluation", "GET", "/v1/fundings/{application_id}"): r(*ALL, visible=OWNED, application_id="funded"),
    ("evaluation", "GET", "/v1/public/calls/{call_id}/ranking"): PUB,
    ("evaluation", "GET", "/v1/public/calls/{call_id}/budget"): PUB,
    ("evaluation", "POST", "/v1/decrees"): r(O),
    ("evaluation", "GET", "/v1/decrees"): r(O, A),
    ("evaluation", "GET", "/v1/decrees/{decree_id}"): r(O, A, exists=False),
    ("evaluation", "GET", "/v1/decrees/{decree_id}/decisions"): r(O, A, exists=False),
    ("evaluation", "POST", "/v1/decrees/{decree_id}/decisions"): r(O, exists=False),
    ("evaluation", "POST", "/v1/decrees/{decree_id}/close"): r(O, exists=False),
    ("evaluation", "POST", "/v1/decrees/{decree_id}/close/confirm"): r(O, exists=False),
    ("evaluation", "GET", "/v1/decisions"): r(*ALL),
    ("evaluation", "GET", "/v1/decisions/{decision_id}"): r(*ALL, visible=OWNED),
    ("evaluation", "GET", "/v1/queues/admissibility-reviews"): r(O, A),
    ("evaluation", "GET", "/v1/queues/decisions-awaiting-acceptance"): r(O, A),
    ("evaluation", "PUT", "/v1/decisions/{decision_id}/cup"): r(O, visible=OWNED),
    ("evaluation", "PUT", "/v1/decisions/{decision_id}/cor"): r(O, visible=OWNED),
    ("evaluation", "POST", "/v1/decisions/{decision_id}/accept"): r(P, C, visible=OWNED),
    ("evaluation", "POST", "/v1/decisions/{decision_id}/renounce"): r(P, C, visible=OWNED),
    # ------------------------------------------------------------ monitoring (company A's project, claim, payment)
    ("monitoring", "POST", "/v1/internal/events"): r(S),
    ("monitoring", "POST", "/v1/internal/events/batch"): r(S),
    ("monitoring", "POST", "/v1/internal/reminders/run"): r(S),
    ("monitoring", "GET", "/v1/projects"): r(*ALL),
    ("monitoring", "GET", "/v1/projects/{project_id}"): r(*ALL, visible=OWNED),
    ("monitoring", "PUT", "/v1/projects/{project_id}/iban"): r(P, C, O, visible=OWNED),
    ("monitoring", "POST", "/v1/projects/{project_id}/extension"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/projects/{project_id}/lombardy-site"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/projects/{project_id}/revocation"): r(O, visible=OWNED),
    ("monitoring", "GET", "/v1/projects/{project_id}/loan-schedule"): r(*ALL, visible=OWNED),
    ("monitoring", "POST", "/v1/projects/{project_id}/payments"): r(O, visible=OWNED),
    ("monitoring", "GET", "/v1/payments"): r(*ALL),
    ("monitoring", "GET", "/v1/payments/export.csv"): r(O),
    ("monitoring", "GET", "/v1/payments/{payment_id}"): r(*ALL, visible=OWNED),
    ("monitoring", "POST", "/v1/payments/{payment_id}/paid"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/payments/{payment_id}/failed"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/payments/{payment_id}/confirm"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/projects/{project_id}/claims"): r(P, C, visible=OWNED),
    ("monitoring", "GET", "/v1/projects/{project_id}/claims"): r(*ALL, visible=OWNED),
    ("monitoring", "GET", "/v1/claims"): r(*ALL),
    ("monitoring", "GET", "/v1/claims/{claim_id}"): r(*ALL, visible=OWNED),
    ("monitoring", "GET", "/v1/queues/claims-to-review"): r(O, A),
    ("monitoring", "GET", "/v1/queues/payments-to-order"): r(O, A),
    ("monitoring", "POST", "/v1/claims/{claim_id}/lines"): r(P, C, visible=OWNED),
    ("monitoring", "DELETE", "/v1/claims/{claim_id}/lines/{line_id}"): r(P, C, visible=OWNED),
    ("monitoring", "POST", "/v1/claims/{claim_id}/lines/{line_id}/evidence"): r(P, C, visible=OWNED),
    ("monitoring", "POST", "/v1/claims/{claim_id}/submit"): r(P, C, visible=OWNED),
    ("monitoring", "PUT", "/v1/claims/{claim_id}/lines/{line_id}/review"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/claims/{claim_id}/review/complete"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/claims/{claim_id}/outcome-override"): r(O, visible=OWNED),
    ("monitoring", "POST", "/v1/claims/{claim_id}/outcome-override/confirm"): r(O, visible=OWNED),
    ("monitoring", "GET", "/v1/projects/{project_id}/iban-changes"): r(*ALL, visible=OWNED),
    ("monitoring", "GET", "/v1/projects/{project_id}/iban-changes/{change_id}"): r(*ALL, exists=False),
    ("monitoring", "POST", "/v1/projects/{project_id}/iban-changes/{change_id}/confirm"): r(C, O, exists=False),
    ("monitoring", "POST", "/v1/projects/{project_id}/iban-changes/{change_id}/reject"): r(C, O, exists=False),
    ("monitoring", "POST", "/v1/payments/{payment_id}/reissue"): r(O, visible=OWNED),
    ("monitoring", "GET", "/v1/evidence/{evidence_id}"): r(*ALL, exists=False),
    ("monitoring", "POST", "/v1/projects/{project_id}/kpi-reports"): r(P, C, visible=OWNED),
    ("monitoring", "GET", "/v1/projects/{project_id}/kpis"): r(*ALL, visible=OWNED),
    ("monitoring", "POST", "/v1/projects/{project_id}/milestones/{index}/completion"): r(P, C, visible=OWNED),
    ("monitoring", "GET", "/v1/projects/{project_id}/milestones"): r(*ALL, visible=OWNED),
    ("monitoring", "GET", "/v1/stats"): r(O, A, S),
    ("monitoring", "GET", "/v1/stats/b2b"): r(O, A, S),
    ("monitoring", "GET", "/v1/public/stats"): PUB,
    ("monitoring", "GET", "/v1/public/stats/charts/{name}.svg"): PUB,
    ("monitoring", "GET", "/v1/open-data/funded-projects.csv"): PUB,
    ("monitoring", "GET", "/v1/open-data/funded-projects.json"): PUB,
}


def app_routes() -> set[tuple[str, str, str]]:
    out = set()
    for service in ("intake", "evaluation", "monitoring"):
        for rc in iter_route_contexts(app_for(service).routes):
            if isinstance(rc.original_route, APIRoute):
                out |= {(service, m, str(rc.path)) for m in rc.methods or () if m != "HEAD"}
    return out


def test_every_route_has_an_entry() -> None:
    routes = app_routes()
    missing = sorted(routes - TABLE.keys())
    stale = sorted(TABLE.keys() - routes)
    assert not missing, f"routes without an access-control entry (add them to TABLE): {missing}"
    assert not stale, f"TABLE entries for routes that no longer exist: {stale}"


# ---------------------------------------------------------------- the world: partner A's things, partner B


@dataclass
class World:
    ids: dict[str, Any]
    headers: dict[str, dict[str, str]]


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    resp = await http.post(url, json=body, headers=headers)
    assert resp.status_code in (200, 201, 202), (url, resp.status_code, resp.text)
    return dict(resp.json())


@pytest_asyncio.fixture(loop_scope="session")
async def world(
    client: httpx.AsyncClient,
    evaluation_app: Any,
    evaluation_client: httpx.AsyncClient,
    monitoring_client: httpx.AsyncClient,
    session: AsyncSession,
    token_factory: TokenFactory,
) -> World:
    from tests.services.evaluation.builders import (
        FakeIntake,
        evaluated_application,
        evaluation_of,
        received_application,
    )
    from tests.services.monitoring.builders import VALID_IBAN, make_payment, make_project

    call = await open_call(session)
    other_call = await open_call(session)
    partner_a, partner_b = await make_partner(session), await make_partner(session)
    revoked, successor = await make_partner(session), await make_partner(session)
    company_a, company_b = await make_company(session), await make_company(session)
    delegation = await delegate(session, partner_a, company_a)
    revoked_delegation = await delegate(session, revoked, company_a)
    await delegate(session, partner_b, company_b)
    headers = {
        "none": {},
        "partner_a": await token_factory(P, partner_id=partner_a.id),
        "partner_b": await token_factory(P, partner_id=partner_b.id),
        "revoked_delegate": await token_factory(P, partner_id=revoked.id),
        "new_delegate": await token_factory(P, partner_id=successor.id),
        "company": await token_factory(C, company_id=company_a.id),
        "officer": await token_factory(O),
        "auditor": await token_factory(A),
        "service": await token_factory(S),
    }
    a = headers["partner_a"]
    draft = await _post(client, "/v1/applications", draft_body(call.id, company_a.id), a)
    submitted = await _post(client, "/v1/applications", draft_body(other_call.id, company_a.id), a)
    await declare_stamp_duty(client, submitted["id"], a)
    await _post(client, f"/v1/applications/{submitted['id']}/submit", {}, a)
    starts = datetime.now(UTC) + timedelta(days=20)
    training = await _post(
        client,
        "/v1/trainings",
        {
            "title": "Dogane e origine",
            "topic": "customs",
            "format": "training",
            "description": "Corso base.",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=3)).isoformat(),
            "location": None,
            "capacity": 30,
        },
        headers["officer"],
    )
    enrolment = await _post(
        client,
        f"/v1/trainings/{training['id']}/enrolments",
        {"company_id": str(company_a.id), "participant_name": "Maria Rossi", "participant_email": "m.rossi@example.it"},
        a,
    )
    # a B2B event whose agenda holds a meeting of company A (its partner registered the interest)
    operator = await _post(
        client,
        "/v1/b2b/operators",
        {"name": "Saigon Trading", "kind": "importer", "country": "VN", "sectors": [], "interests": []},
        headers["officer"],
    )
    b2b_event = await _post(
        client,
        "/v1/b2b/events",
        {
            "title": "Missione incoming Vietnam",
            "kind": "incoming_mission",
            "slots": [
                {
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(minutes=30)).isoformat(),
                    "capacity": 2,
                }
            ],
            "operator_ids": [operator["id"]],
        },
        headers["officer"],
    )
    await _post(
        client,
        f"/v1/b2b/events/{b2b_event['id']}/interests",
        {"company_id": str(company_a.id), "operator_id": operator["id"], "rank": 1},
        a,
    )
    agenda = await client.post(f"/v1/b2b/events/{b2b_event['id']}/agenda", headers=headers["officer"])
    assert agenda.status_code == 200, agenda.text
    webhook = await _post(client, "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}, a)
    # company A's engagement of expert accompaniment, assigned to the table's expert (who acts through its client)
    o = headers["officer"]
    expert = await _post(client, "/v1/experts", expert_body(), o)
    creds = await client.post(f"/v1/experts/{expert['id']}/clients", headers={**o, "If-Match": expert["etag"]})
    assert creds.status_code == 201, creds.text
    token = await client.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.json()["client_id"],
            "client_secret": creds.json()["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    headers["expert"] = {"Authorization": f"Bearer {token.json()['access_token']}"}
    engagement = await _post(
        client, "/v1/engagements", {"application_id": draft["id"], "phase": "design", "language": "en"}, a
    )
    assigned = await client.post(
        f"/v1/engagements/{engagement['id']}/assignment",
        json={"expert_id": expert["id"]},
        headers={**o, "If-Match": engagement["etag"]},
    )
    assert assigned.status_code == 200, assigned.text
    api_client, _secret = await create_client(session, kind=P, name="partner A's CRM", partner_id=partner_a.id)
    # company A's file as the revoked delegate left it: recorded with it in evaluation and monitoring
    received = await received_application(session, call_id=call.id, company_id=company_a.id, partner_id=revoked.id)
    await evaluation_of(session, received)
    fake = FakeIntake()
    saved, evaluation_app.state.intake_client = evaluation_app.state.intake_client, fake
    try:
        eval_call = fake.add_call(budget_total="100000.00")
        funded = await evaluated_application(
            session,
            call_id=eval_call,
            company_id=company_a.id,
            partner_id=revoked.id,
            grant="20000.00",
            loan="65000.00",
        )
        o = headers["officer"]
        await _post(evaluation_client, f"/v1/calls/{eval_call}/allocation", {}, o)
        decree = await _post(
            evaluation_client,
            "/v1/decrees",
            {"call_id": str(eval_call), "number": f"D-{uuid.uuid4().hex[:10]}", "decree_date": "2026-12-15"},
            o,
        )
        decided = await evaluation_client.post(
            f"/v1/decrees/{decree['id']}/decisions",
            json={"all_pending": True},
            headers={**o, "If-Match": decree["etag"]},
        )
        assert decided.status_code == 201, decided.text
        decision = decided.json()["created"][0]
    finally:
        evaluation_app.state.intake_client = saved
    project = await make_project(
        session, company_id=company_a.id, partner_id=revoked.id, application_id=funded.application_id, iban=VALID_IBAN
    )
    payment = await make_payment(session, project)
    claim = await _post(
        monitoring_client, f"/v1/projects/{project.id}/claims", {"kind": "intermediate"}, headers["company"]
    )
    line = await monitoring_client.post(
        f"/v1/claims/{claim['id']}/lines",
        headers={**headers["company"], "If-Match": '"1"'},
        json={
            "kind": "invoice",
            "supplier_vat": "IT01234560157",
            "supplier_name": "Fiere e Mercati Esteri S.r.l.",
            "document_number": "2025/0147",
            "issue_date": project.start_date.isoformat(),
            "taxable_amount": "4000.00",
            "category": "b",
            "market": "VN",
            "payment_date": project.start_date.isoformat(),
            "payment_method": "bank_transfer",
        },
    )
    assert line.status_code == 201, line.text
    # company A revokes the delegation of `revoked` and delegates `successor`, through intake's API
    company = headers["company"]
    r = await client.post(f"/v1/delegations/{revoked_delegation.id}/revoke", headers={**company, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    asked = await _post(client, "/v1/delegations", {"vat_number": company_a.vat_number}, headers["new_delegate"])
    r = await client.post(f"/v1/delegations/{asked['id']}/accept", headers={**company, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    ids = {
        "call_id": call.id,
        "application_id": draft["id"],
        "submitted": submitted["id"],
        "received": received.application_id,
        "funded": funded.application_id,
        "training_id": training["id"],
        "enrolment_id": enrolment["id"],
        "expert_id": expert["id"],
        "engagement_id": engagement["id"],
        "operator_id": operator["id"],
        "event_id": b2b_event["id"],
        "meeting_id": agenda.json()["added"][0]["id"],
        "partner_id": partner_a.id,
        "company_id": company_a.id,
        "delegation_id": delegation.id,
        "webhook_id": webhook["id"],
        "delivery_id": 987654321,
        "slug": "not-found",
        "version": 1,
        "vat_number": company_a.vat_number,
        "assignment_id": uuid.uuid4(),
        "decree_id": decree["id"],
        "decision_id": decision["id"],
        "project_id": project.id,
        "payment_id": payment.id,
        "claim_id": claim["id"],
        "line_id": line.json()["id"],
        "evidence_id": uuid.uuid4(),
        "index": 0,
        "change_id": uuid.uuid4(),
        "allowance_id": uuid.uuid4(),
        "client_id": api_client.client_id,
        "name": "funding",
    }
    return World(ids, headers)


@pytest_asyncio.fixture(loop_scope="session")
async def monitoring_client(conn: AsyncConnection, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for("monitoring")
    app.state.sessionmaker = make_sessionmaker(conn, join_transaction_mode="create_savepoint")
    app.state.engine = engine
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk.test") as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def peerless(evaluation_app: Any, monitoring_client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Evaluation's and monitoring's peer clients pointed at nobody: a route that needs a peer gets past
    authorisation and then answers 503 peer-unavailable (never a 500)."""
    from shared.clients.evaluation import EvaluationClient
    from shared.clients.intake import IntakeClient
    from tests.conftest import KEYRING
    from tests.loopback import free_port

    kw: dict[str, Any] = {
        "keyring": KEYRING,
        "issuer": "regional-desk",
        "retries": 0,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
        "breaker_threshold": 1000,
        "breaker_cooldown": 0.1,
    }
    slots = [
        (evaluation_app, "intake_client", IntakeClient, "evaluation"),
        (app_for("monitoring"), "intake_client", IntakeClient, "monitoring"),
        (app_for("monitoring"), "evaluation_client", EvaluationClient, "monitoring"),
    ]
    saved = []
    for app, attr, cls, service in slots:
        saved.append(getattr(app.state, attr, None))
        setattr(app.state, attr, cls(f"http://127.0.0.1:{free_port()}", service=service, **kw))
    try:
        yield
    finally:
        for (app, attr, _cls, _service), before in zip(slots, saved, strict=True):
            await getattr(app.state, attr).aclose()
            setattr(app.state, attr, before)


def expected(rule: Rule, principal: str) -> str:
    if rule.kinds is None:
        return "ok" if rule.exists else "ok-or-404"  # public: nobody is refused, a missing row is still 404
    if principal == "none":
        return "401"
    if KIND_OF[principal] not in rule.kinds:
        return "403"
    if rule.visible is not None and principal not in rule.visible:
        return "404"
    return "ok" if rule.exists and rule.visible is not None else "ok-or-404"


def classify(resp: httpx.Response) -> str:
    if resp.status_code == 503 and "peer-unavailable" in resp.text:
        return "ok"  # past authorisation, then the (absent) peer service
    return {401: "401", 403: "403", 404: "404"}.get(
        resp.status_code, "ok" if resp.status_code < 500 else str(resp.status_code)
    )


def fill(path: str, rule: Rule, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[rule.params.get(m[1], m[1])]), path)


@pytest.mark.parametrize("service", ["intake", "evaluation", "monitoring"])
async def test_every_route_with_every_principal(
    service: str,
    world: World,
    client: httpx.AsyncClient,
    evaluation_client: httpx.AsyncClient,
    monitoring_client: httpx.AsyncClient,
    peerless: None,
) -> None:
    http = {"intake": client, "evaluation": evaluation_client, "monitoring": monitoring_client}[service]
    wrong: list[str] = []
    calls = 0
    for (svc, method, path), rule in sorted(TABLE.items()):
        if svc != service:
            continue
        url = fill(path, rule, world.ids)
        for principal in PRINCIPALS:
            # harmless even when allowed: an empty body and a stale If-Match stop the change at 412/422/428
            headers = {**world.headers[principal], "If-Match": '"999999"'}
            kw: dict[str, Any] = {"json": {}} if method in ("POST", "PUT") else {}
            resp = await http.request(method, url, headers=headers, **kw)
            calls += 1
            got, want = classify(resp), expected(rule, principal)
            if got == want or (want == "ok-or-404" and got in ("ok", "404")):
                if got in ("401", "403", "404"):
                    assert resp.headers["content-type"].startswith("application/problem+json"), (method, url)
                continue
            wrong.append(f"{method} {path} as {principal}: expected {want}, got {resp.status_code} {resp.text[:160]}")
    assert calls > 0
    assert not wrong, "\n".join(wrong)


async def test_partner_b_lists_none_of_partner_as_resources(world: World, client: httpx.AsyncClient) -> None:
    b = world.headers["partner_b"]
    for url, key in (
        ("/v1/applications", "application_id"),
        ("/v1/companies", "company_id"),
        ("/v1/delegations", "delegation_id"),
        ("/v1/webhooks", "webhook_id"),
        ("/v1/partners", "partner_id"),
        ("/v1/clients", "client_id"),
    ):
        mine = await client.get(url, headers=world.headers["partner_a"])
        theirs = await client.get(url, headers=b)
        assert mine.status_code == theirs.status_code == 200, (url, mine.text, theirs.text)
        assert str(world.ids[key]) in mine.text, url  # A sees it, so its absence for B means something
        assert str(world.ids[key]) not in theirs.text, url
    events = await client.get("/v1/events", headers=b)
    assert events.status_code == 200
    assert str(world.ids["application_id"]) not in events.text


# ---------------------------------------------------------------- the click-day path


async def test_the_click_day_submit_applies_the_same_rule(
    committing_client: httpx.AsyncClient, engine: AsyncEngine, token_factory: TokenFactory
) -> None:
    """The table's submit entry, on the path click day takes (`committing_client`: the ASGI fast path on its
    own pool, pre-checked drafts committed by `CommitBatcher`): the revoked delegate and a stranger get 404
    and commit nothing; the company's new delegate submits the draft the revoked one prepared."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        revoked, successor, stranger = await make_partner(s), await make_partner(s), await make_partner(s)
        company = await make_company(s)
        old = await delegate(s, revoked, company)
        await s.commit()
    h = {
        "revoked": await token_factory(P, partner_id=revoked.id),
        "successor": await token_factory(P, partner_id=successor.id),
        "stranger": await token_factory(P, partner_id=stranger.id),
        "company": await token_factory(C, company_id=company.id),
    }
    http = committing_client
    drafts = [await _post(http, "/v1/applications", draft_body(call.id, company.id), h["revoked"])]
    await declare_stamp_duty(http, drafts[0]["id"], h["revoked"])
    r = await http.post(f"/v1/delegations/{old.id}/revoke", headers={**h["company"], "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    asked = await _post(http, "/v1/delegations", {"vat_number": company.vat_number}, h["successor"])
    r = await http.post(f"/v1/delegations/{asked['id']}/accept", headers={**h["company"], "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    draft_id = drafts[0]["id"]
    for who in ("revoked", "stranger"):
        r = await http.post(f"/v1/applications/{draft_id}/submit", json={}, headers=h[who])
        assert r.status_code == 404, (who, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    still = await http.get(f"/v1/applications/{draft_id}", headers=h["successor"])
    assert still.status_code == 200 and still.json()["status"] == "draft" and still.json()["protocol_number"] is None
    r = await http.post(f"/v1/applications/{draft_id}/submit", json={}, headers=h["successor"])
    assert r.status_code == 201, r.text
    assert r.json()["receipt"]["protocol_number"] == 1  # the call's first, and only, submission
    assert (await http.get(f"/v1/applications/{draft_id}/receipt", headers=h["revoked"])).status_code == 404
    mine = await http.get(f"/v1/applications/{draft_id}/receipt", headers=h["successor"])
    assert mine.status_code == 200 and mine.json()["receipt"]["protocol_number"] == 1


async def test_the_tables_submit_entry_holds_on_the_fast_path(
    committing_client: httpx.AsyncClient,
    engine: AsyncEngine,
    token_factory: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every principal of the table against the submit as click day serves it (the ASGI fast path on its own
    pool, not the FastAPI route), judged by the table's own entry: nobody 401, officer/auditor/service 403,
    partner B and the revoked delegate 404, company A, partner A and the new delegate past authorisation (a
    stale If-Match stops them at 412, so the draft stays a draft)."""
    from services.intake.applications.fastpath import SubmitFastPath

    served: list[str] = []
    original = SubmitFastPath._submit

    async def counting(self: Any, request: Any, pool: Any, application_id: Any) -> Any:
        served.append(str(application_id))
        return await original(self, request, pool, application_id)

    monkeypatch.setattr(SubmitFastPath, "_submit", counting)
    rule = TABLE[("intake", "POST", "/v1/applications/{application_id}/submit")]
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner_a, partner_b = await make_partner(s), await make_partner(s)
        revoked, successor = await make_partner(s), await make_partner(s)
        company = await make_company(s)
        await delegate(s, partner_a, company)
        await delegate(s, partner_b, await make_company(s))
        old = await delegate(s, revoked, company)
        await s.commit()
    headers = {
        "none": {},
        "partner_a": await token_factory(P, partner_id=partner_a.id),
        "partner_b": await token_factory(P, partner_id=partner_b.id),
        "revoked_delegate": await token_factory(P, partner_id=revoked.id),
        "new_delegate": await token_factory(P, partner_id=successor.id),
        "company": await token_factory(C, company_id=company.id),
        "officer": await token_factory(O),
        "expert": await token_factory(E),
        "auditor": await token_factory(A),
        "service": await token_factory(S),
    }
    http = committing_client
    draft = await _post(http, "/v1/applications", draft_body(call.id, company.id), headers["partner_a"])
    await declare_stamp_duty(http, draft["id"], headers["partner_a"])
    r = await http.post(f"/v1/delegations/{old.id}/revoke", headers={**headers["company"], "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    asked = await _post(http, "/v1/delegations", {"vat_number": company.vat_number}, headers["new_delegate"])
    r = await http.post(f"/v1/delegations/{asked['id']}/accept", headers={**headers["company"], "If-Match": '"1"'})
    assert r.status_code == 200, r.text

    wrong = []
    for principal in PRINCIPALS:
        resp = await http.post(
            f"/v1/applications/{draft['id']}/submit", json={}, headers={**headers[principal], "If-Match": '"999999"'}
        )
        got, want = classify(resp), expected(rule, principal)
        if got != want:
            wrong.append(f"{principal}: expected {want}, got {resp.status_code} {resp.text[:160]}")
        elif got == "ok":
            assert resp.status_code == 412, (principal, resp.text)
        else:
            assert resp.headers["content-type"].startswith("application/problem+json"), principal
    assert not wrong, "\n".join(wrong)
    assert len(served) == len(PRINCIPALS)  # every one of them was answered by the fast path
    still = await http.get(f"/v1/applications/{draft['id']}", headers=headers["partner_a"])
    assert still.json()["status"] == "draft" and still.json()["protocol_number"] is None


# ---------------------------------------------------------------- mass assignment

SERVER_OWNED = {
    "id": str(uuid.uuid4()),
    "status": "submitted",
    "protocol_number": 1,
    "version": 99,
    "partner_id": str(uuid.uuid4()),
    "size_class": "micro",
    "created_at": "2020-01-01T00:00:00Z",
}


async def _refused(
    http: httpx.AsyncClient, method: str, url: str, body: dict[str, Any], headers: dict[str, str], field_name: str
) -> None:
    resp = await http.request(method, url, json={**body, field_name: SERVER_OWNED[field_name]}, headers=headers)
    assert resp.status_code == 422, (method, url, field_name, resp.status_code, resp.text)
    problem = resp.json()
    assert any(e["code"] == "extra_forbidden" and e["path"] == f"/{field_name}" for e in problem["errors"]), problem


async def test_create_bodies_refuse_server_owned_fields(
    world: World, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from tests.factories import company_body

    a = world.headers["partner_a"]
    company_b = await make_company(session)
    before = (await client.get("/v1/applications", headers=a)).json()
    for name in ("id", "status", "protocol_number", "version", "partner_id", "created_at"):
        await _refused(client, "POST", "/v1/applications", draft_body(world.ids["call_id"], company_b.id), a, name)
    for name in ("id", "size_class", "version", "partner_id", "status"):
        await _refused(client, "POST", "/v1/companies", company_body(), a, name)
    for name in ("id", "status", "partner_id"):
        await _refused(client, "POST", "/v1/delegations", {"vat_number": company_b.vat_number}, a, name)
        await _refused(client, "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x", "event_types": ["*"]}, a, name)
    after = (await client.get("/v1/applications", headers=a)).json()
    assert after == before  # no draft was created by any refused request


async def test_update_bodies_refuse_server_owned_fields_and_change_nothing(
    world: World, client: httpx.AsyncClient
) -> None:
    a = world.headers["partner_a"]
    url = f"/v1/applications/{world.ids['application_id']}"
    current = await client.get(url, headers=a)
    assert current.status_code == 200
    body = {
        k: v
        for k, v in draft_body(world.ids["call_id"], world.ids["company_id"]).items()
        if k not in ("call_id", "company_id")
    }
    put_headers = {**a, "If-Match": current.headers["etag"]}
    probe = await client.put(url, json=body, headers=put_headers)  # the body itself is acceptable ...
    assert probe.status_code == 200, probe.text
    current = await client.get(url, headers=a)
    put_headers["If-Match"] = current.headers["etag"]
    for name in ("id", "status", "protocol_number", "version", "partner_id", "created_at"):
        await _refused(client, "PUT", url, body, put_headers, name)  # ... but not with a server-owned field
    after = await client.get(url, headers=a)
    assert after.json() == current.json() and after.headers["etag"] == current.headers["etag"]
    assert after.json()["status"] == "draft" and after.json()["protocol_number"] is None

    company_url = f"/v1/companies/{world.ids['company_id']}"
    company = await client.get(company_url, headers=a)
    assert company.status_code == 200
    editable = {k: v for k, v in company.json().items() if k in _company_fields()}
    for name in ("id", "size_class", "version", "partner_id", "status"):
        await _refused(client, "PUT", company_url, editable, {**a, "If-Match": company.headers["etag"]}, name)
    assert (await client.get(company_url, headers=a)).json() == company.json()


def _company_fields() -> set[str]:
    from services.intake.companies.schemas import CompanyIn

    return set(CompanyIn.model_fields)
