"""A grant's whole life across the desk's three services, over real HTTP on loopback, with the delivery worker
carrying the events: nothing is written to the database after the setup (a call whose budget fits exactly two of
three applications, a second call whose budget fits none, the officers' API clients) except the closing of a
call's (demo) window, which time would do.

Through the public APIs only: an officer registers a partner and issues its API client; the partner registers
three companies, prepares, checks and submits three complete drafts; the worker brings the submissions to
evaluation, whose admissibility runs by itself; two reviewers per application declare no conflict and score
(the third application's reviews diverge: a third reviewer settles it); an officer gives the credit-scoring class
and computes the funding (exact grant and loan of the example draft), allocates the budget (two funded, one
waiting), opens a decree with the decisions, records CUP and COR, closes it; the companies accept (the second
one acting for itself with its own API client); the worker brings the acceptances to monitoring, which starts
the projects and orders the advances (40 % of the grant, floored), paid once the IBAN is set. The partner's
webhook endpoint receives the signed events all along.

* Test A: project 1's final claim (a PDF per line and a FatturaPA invoice quoting the project's CUP) is fully
  recognised -> full aid, the balance ordered to the cent and paid; the statistics, the open data and the three
  SVG charts show it.
* Test B: project 2's final claim is recognised at 60 % -> revocation, the paid advance to be recovered (with the
  statutory interest) and the loan repaid early, the aid released to evaluation, whose scorrimento funds the
  waiting application at once (`funding.granted_from_waiting_list`); a later decree decides it and monitoring
  starts its project.
* Test C: company 1, funded and accepted, applies to the second call declaring that aid: the pre-check shows it,
  and evaluation's de minimis counts the desk's concession (grant + the loan's gross grant equivalent) once.
* Test D: that application waits (the second call's budget is too small); the officer raises `budget_total` by
  decree through intake; evaluation's ledger applies `call.amended` and funds it at once, notified.
* Test E: follow-up KPIs: refused before the year after completion starts; with the monitoring app's clock (the
  results routes' `today` dependency) in the January after it, reported and listed on the project's kpis.
* Test F: project 1 revoked for a false declaration (DPR 445/2000 art. 75) after both payments: the recovery order
  carries the statutory interest by year to the recovery date, to the cent, and the loan's outstanding capital.
"""

from __future__ import annotations

import random
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from services.intake.calls.service import load_rules_file
from services.intake.examples import company_body, draft_body, vat_number
from services.intake.models import Call, CallCounter, CallVersion
from services.monitoring.app import build_app as build_monitoring
from services.monitoring.results.service import today_in_rome
from shared.auth import create_client
from shared.clients.evaluation import EvaluationClient
from shared.clients.intake import IntakeClient
from shared.db import make_sessionmaker
from shared.domain.receipts import GENESIS
from shared.domain.recovery import LEGAL_INTEREST_RATES
from shared.events.catalogue import SUBJECTS, noun
from shared.settings import REPO_ROOT, MonitoringSettings
from tests.conftest import KEYRING
from tests.e2e.harness import (
    QUIET,
    Receiver,
    evaluation_server,
    intake_server,
    running_worker,
    settle_deliveries,
    wait_for,
    worker_settings,
)
from tests.factories import CALL_FILE, declare_stamp_duty
from tests.loopback import LoopbackServer
from tests.services.intake.test_formalities import SigningCA, make_ca, sign

ROME = ZoneInfo("Europe/Rome")
FATTURAPA = REPO_ROOT / "tests" / "fixtures" / "fatturapa_sample.xml"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
IBAN = "IT60X0542811101000000123456"
SECRET = "e2e-secret-" + "x" * 24

# The example draft (services.intake.examples): a 10,000 + b 80,000 + c 5,000, d 20 % = 19,000,
# e 7 % = 7,980 -> eligible 121,980.00 -> grant 20 % = 24,396.00, loan 65 % = 79,287.00 (class "1": no cap).
ELIGIBLE = Decimal("121980.00")
GRANT = Decimal("24396.00")
LOAN = Decimal("79287.00")
AID = GRANT + LOAN  # what the call's budget is charged with: 103,683.00
ADVANCE = Decimal("9758.40")  # 40 % of the grant, floored to the cent
BUDGET = Decimal("250000.00")  # two aids fit (207,366.00), three do not (311,049.00)
SECOND_BUDGET = Decimal("50000.00")  # the second call: one aid (103,683.00) does not fit until its budget grows
RAISED_BUDGET = Decimal("150000.00")
# De minimis (Reg. 2023/2831): the desk's concession counts the grant plus the loan's gross grant equivalent. The
# loan (1.5 %, 6 years, 12 months' grace, half-yearly) is discounted at the reference rate of credit class 1: base
# 3.10 % + 75 bp = 3.85 %. The GGE of 1,000,000.00 of such a loan is 81,229.54, i.e. 0.08122954 per euro
# (shared.domain.de_minimis.gge_per_euro), so 79,287.00 counts 79,287.00 x 0.08122954 = 6,440.4466...,
# rounded up to 6,440.45: the concession is 24,396.00 + 6,440.45 = 30,836.45, and the second application's
# headroom 300,000.00 - 30,836.45 = 269,163.55.
LOAN_GGE = Decimal("6440.45")
FIRST_AID_EQUIVALENT = GRANT + LOAN_GGE
CEILING = Decimal("300000.00")


#: the fiscal codes of the three companies' legal representatives, the signers of their forms
LEGAL_REPRESENTATIVES = ("RSSMRA80A01F205X", "BNCLCU85C41H501D", "VRDGPP70B12L219P")


def _grid(*points: int) -> dict[str, int]:
    return dict(
        zip(
            ("plan_quality", "market_analysis", "expected_impact", "feasibility", "digital_sustainability"),
            points,
            strict=True,
        )
    )


# Merit: every application passes (pass mark 60), in a strict order (a ranking call). The third one's first two
# reviews diverge (75 vs 40, more than 15 points): a third reviewer scores 65, and the final is the mean of the
# two closest totals (75 and 65) = 70.
SCORES = (
    (_grid(24, 16, 16, 16, 8), _grid(24, 16, 16, 16, 8)),  # 80
    (_grid(22, 15, 15, 15, 8), _grid(22, 15, 15, 15, 8)),  # 75
    (_grid(22, 15, 15, 15, 8), _grid(12, 8, 8, 8, 4), _grid(20, 13, 13, 13, 6)),  # 75, 40 -> third: 65
)
FINAL_SCORES = (Decimal("80.00"), Decimal("75.00"), Decimal("70.00"))

WAIT = 30.0


def today() -> date:
    return datetime.now(ROME).date()


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.method, str(r.request.url), r.status_code, r.text[:3000])
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else r


def _match(etag: str) -> dict[str, str]:
    return {"If-Match": etag}


# ---------------------------------------------------------------- setup (committed)


async def _call_with_budget(engine: AsyncEngine, budget: Decimal, *, signed_form: bool = False) -> uuid.UUID:
    """The seeded call's rules, open now, under a unique code, with `budget` as its endowment; `signed_form`: its
    admissibility waits for the form signed by the company's legal representative."""
    rules = load_rules_file(CALL_FILE)
    code = f"VNM-E2E-{uuid.uuid4().hex[:8]}"
    formalities = rules.formalities.model_copy(update={"signed_form_required": signed_form})
    rules = rules.model_copy(update={"code": code, "budget_total": budget, "formalities": formalities})
    opens = datetime.now(UTC) - timedelta(minutes=1)
    async with make_sessionmaker(engine)() as s:
        call = Call(
            id=uuid.uuid4(),
            code=code,
            title=rules.title,
            procedure=rules.procedure,
            current_version=1,
            opens_at=rules.window.opens_at,
            closes_at=rules.window.closes_at,
            demo_opens_at=opens,
            demo_closes_at=opens + timedelta(days=30),
            budget_total=budget,
            version=1,
        )
        s.add(call)
        await s.flush()
        s.add(CallVersion(call_id=call.id, version=1, rules=rules.model_dump(mode="json"), created_by="test"))
        s.add(CallCounter(call_id=call.id, last_protocol=0, last_chain_hash=GENESIS))
        await s.commit()
    return call.id


async def _close_window(engine: AsyncEngine, call_id: uuid.UUID) -> None:
    """The call's (demo) window closes now: a ranking call is allocated only after its close."""
    async with make_sessionmaker(engine)() as s:
        call = await s.get(Call, call_id)
        assert call is not None
        call.demo_closes_at = datetime.now(UTC) - timedelta(seconds=1)
        call.version += 1
        await s.commit()


async def _officers(engine: AsyncEngine, n: int) -> list[str]:
    """Officers' API clients (their secret is SECRET); they take their tokens at the token endpoint."""
    ids = []
    async with make_sessionmaker(engine)() as s:
        for i in range(n):
            client, _ = await create_client(
                s,
                kind="officer",
                name=f"e2e officer {i}",
                secret=SECRET,
                client_id=f"officer-e2e-{uuid.uuid4().hex[:10]}",
            )
            ids.append(client.client_id)
        await s.commit()
    return ids


async def _token(http: httpx.AsyncClient, client_id: str, secret: str) -> dict[str, str]:
    body = _ok(
        await http.post(
            "/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
    )
    assert body["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


def monitoring_server(
    engine: AsyncEngine, intake_url: str, evaluation_url: str, storage_dir: Path
) -> tuple[LoopbackServer, list[Any]]:
    """Monitoring committing, its peers' clients pointed at the loopback intake and evaluation."""
    app = build_monitoring(MonitoringSettings(**QUIET, storage_dir=storage_dir))
    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.engine = engine
    peers = dict(
        service="monitoring",
        keyring=KEYRING,
        issuer="regional-desk",
        retries=1,
        backoff_base=0.01,
        backoff_max=0.02,
        breaker_threshold=50,
        breaker_cooldown=0.1,
    )
    app.state.intake_client = IntakeClient(intake_url, **peers)
    app.state.evaluation_client = EvaluationClient(evaluation_url, **peers)
    return LoopbackServer(app), [app.state.intake_client, app.state.evaluation_client]


# ---------------------------------------------------------------- the desk, through a grant's evaluation


@dataclass
class Desk:
    intake: httpx.AsyncClient
    evaluation: httpx.AsyncClient
    monitoring: httpx.AsyncClient
    call_id: str
    officer: dict[str, str]
    partner: dict[str, str]
    receiver: Receiver
    webhook_secret: str = ""
    company_itself: dict[str, str] = field(default_factory=dict)
    apps: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=list)
    advances: list[dict[str, Any]] = field(default_factory=list)
    decree_date: date = field(default_factory=today)
    second_officer: dict[str, str] = field(default_factory=dict)
    """Confirms the money decisions `officer` proposes (four-eyes)."""
    reviewers: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    second_call_id: str = ""
    """A second call (budget SECOND_BUDGET, too small for one aid) the first funded company applies to."""
    second_app: str = ""
    monitoring_app: Any = None
    ca: SigningCA | None = None
    """The test CA whose certificates the companies' legal representatives sign the first call's forms with."""

    def webhooks(self, event_type: str) -> list[dict[str, Any]]:
        """The events of that type the partner's endpoint received, each verified with the subscription's
        secret (Standard Webhooks)."""
        return [
            Webhook(self.webhook_secret).verify(h.body, h.headers)
            for h in self.receiver.hits
            if orjson.loads(h.body)["type"] == event_type
        ]

    def beneficiary(self, i: int) -> dict[str, str]:
        """Who acts for application i: the second company acts for itself, the others through the partner."""
        return self.company_itself if i == 1 else self.partner


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def desk(engine: AsyncEngine, tmp_path_factory: Any) -> AsyncIterator[Desk]:
    await settle_deliveries(engine)
    call_id = await _call_with_budget(engine, BUDGET, signed_form=True)
    second_call_id = await _call_with_budget(engine, SECOND_BUDGET)
    officer_id, second_officer_id, *reviewer_ids = await _officers(engine, 5)

    intake = intake_server(engine)
    # the legal representatives' certificates are issued by a CA the test generates, intake's trust root here
    ca = make_ca(tmp_path_factory.mktemp("trust"))
    intake.app.state.settings.signature_trust_roots = [ca.pem_path]
    evaluation, evaluation_intake = evaluation_server(engine, intake.url)
    monitoring, monitoring_peers = monitoring_server(
        engine, intake.url, evaluation.url, tmp_path_factory.mktemp("evidence")
    )
    receiver = Receiver()
    servers = [intake, evaluation, monitoring]
    for server in servers:
        await server.start()
    await receiver.start()
    clients = [httpx.AsyncClient(base_url=s.url, timeout=20, trust_env=False) for s in servers]
    try:
        async with running_worker(
            engine, worker_settings(evaluation_url=evaluation.url, monitoring_url=monitoring.url)
        ):
            http, ev, mon = clients
            officer = await _token(http, officer_id, SECRET)
            reviewers = [(r, await _token(http, r, SECRET)) for r in reviewer_ids]
            d = Desk(http, ev, mon, str(call_id), officer, {}, receiver, ca=ca)
            d.second_officer = await _token(http, second_officer_id, SECRET)
            d.reviewers, d.second_call_id, d.monitoring_app = reviewers, str(second_call_id), monitoring.app
            await _apply(d)
            await _evaluate(d, reviewers)
            # merit before money: no ranking while the window is open, even with every score in
            early = await ev.post(f"/v1/calls/{call_id}/allocation", headers=officer)
            assert early.status_code == 409 and early.json()["type"] == "/problems/ranking-not-ready", early.text
            assert early.json()["window_open"] is True and early.json()["pending"] == []
            await _close_window(engine, call_id)
            await _decide(d)
            await _start_projects(d)
            yield d
    finally:
        for c in clients:
            await c.aclose()
        await receiver.stop()
        for server in reversed(servers):
            await server.stop()
        await evaluation_intake.aclose()
        for peer in monitoring_peers:
            await peer.aclose()


async def _apply(d: Desk) -> None:
    """The officer registers the partner and its API client; the partner registers three companies and submits
    a complete draft for each."""
    http = d.intake
    partner = _ok(
        await http.post(
            "/v1/partners",
            json={"name": "Confindustria Lombardia Export", "kind": "trade_association", "fiscal_code": vat_number()},
            headers=d.officer,
        ),
        201,
    )
    creds = _ok(
        await http.post(f"/v1/partners/{partner['id']}/clients", json={"name": "Gestionale bandi"}, headers=d.officer),
        201,
    )
    d.partner = await _token(http, creds["client_id"], creds["client_secret"])
    hook = _ok(
        await http.post("/v1/webhooks", json={"url": d.receiver.url, "event_types": ["*"]}, headers=d.partner), 201
    )
    d.webhook_secret = hook["secret"]
    for i in range(3):
        company = _ok(
            await http.post(
                "/v1/companies",
                json=company_body(
                    name=f"Meccanica Lombarda {i + 1} S.r.l.", legal_representative_fiscal_code=LEGAL_REPRESENTATIVES[i]
                ),
                headers=d.partner,
            ),
            201,
        )
        d.companies.append(company["id"])
        if i == 1:  # this one also gets its own API client, and acts for itself once its application is in
            own = _ok(await http.post(f"/v1/companies/{company['id']}/clients", headers=d.officer), 201)
            d.company_itself = await _token(http, own["client_id"], own["client_secret"])
        draft = _ok(
            await http.post("/v1/applications", json=draft_body(d.call_id, company["id"]), headers=d.partner), 201
        )
        await declare_stamp_duty(http, draft["id"], d.partner)
        check = _ok(await http.post(f"/v1/applications/{draft['id']}/check", headers=d.partner))
        assert check["submittable"] is True, check["problems"]
        receipt = _ok(await http.post(f"/v1/applications/{draft['id']}/submit", headers=d.partner), 201)
        assert receipt["receipt"]["protocol_number"] == i + 1
        d.apps.append(draft["id"])
    await _sign_forms(d)


async def _sign_forms(d: Desk) -> None:
    """The first call requires the signed form: evaluation waits for it (awaiting_signature, no verdict); the
    partner downloads each form, the company's legal representative signs it (PAdES), the partner uploads it,
    and only after `application.form_signed` reaches evaluation does admissibility run (see `_evaluate`)."""
    assert d.ca is not None
    for i, app_id in enumerate(d.apps):

        async def received(app_id: str = app_id) -> dict[str, Any] | None:
            r = await d.evaluation.get(f"/v1/evaluations/{app_id}", headers=d.officer)
            return r.json() if r.status_code == 200 else None

        waiting = await wait_for(received, within=WAIT, what=f"the reception of {app_id}")
        assert (waiting["stage"], waiting["admissibility_verdict"], waiting["checks"]) == (
            "awaiting_signature",
            None,
            [],
        )
        form = await d.intake.get(f"/v1/applications/{app_id}/form.pdf", headers=d.partner)
        assert form.status_code == 200 and form.headers["content-type"] == "application/pdf"
        signed = await sign(form.content, d.ca.issue(LEGAL_REPRESENTATIVES[i]))
        accepted = _ok(
            await d.intake.post(
                f"/v1/applications/{app_id}/signed-form",
                content=signed,
                headers={**d.partner, "Content-Type": "application/pdf"},
            ),
            201,
        )
        assert accepted["signer_fiscal_code"] == LEGAL_REPRESENTATIVES[i]
    queue = _ok(
        await d.evaluation.get("/v1/queues/admissibility-reviews", params={"call_id": d.call_id}, headers=d.officer)
    )
    assert queue["items"] == []


async def _evaluation_of(d: Desk, app_id: str) -> dict[str, Any]:
    return dict(_ok(await d.evaluation.get(f"/v1/evaluations/{app_id}", headers=d.officer)))


async def _evaluate(d: Desk, reviewers: list[tuple[str, dict[str, str]]]) -> None:
    """Admissibility by itself (the worker brings the submissions), then merit by two reviewers each, the
    credit-scoring class and the funding computation."""
    ev = d.evaluation
    for app_id in d.apps:

        async def admissible(app_id: str = app_id) -> dict[str, Any] | None:
            r = await ev.get(f"/v1/evaluations/{app_id}", headers=d.officer)
            ready = r.status_code == 200 and r.json()["stage"] not in ("received", "awaiting_signature")
            return r.json() if ready else None

        got = await wait_for(admissible, within=WAIT, what=f"the admissibility of {app_id}")
        assert got["stage"] == "admissible", [c for c in got["checks"] if c["outcome"] != "pass"]
        assert Decimal(got["eligible_total"]) == ELIGIBLE
        assert all(c["article"] for c in got["checks"] if c["outcome"] != "deferred")

    for app_id, reviews, final in zip(d.apps, SCORES, FINAL_SCORES, strict=True):
        for n, ((reviewer, headers), scores) in enumerate(zip(reviewers, reviews, strict=False)):
            if n == 2:  # the first two diverge: a third reviewer, and only now
                merit = _ok(await ev.get(f"/v1/evaluations/{app_id}/merit", headers=d.officer))
                assert merit["merit_verdict"] == "third_review_needed" and merit["score"] is None, merit
                assert merit["consensus"] is None and [x["total"] for x in merit["reviews"]] == [None, None]
                evaluation = await _evaluation_of(d, app_id)
                assert (evaluation["stage"], evaluation["merit_verdict"]) == ("admissible", "third_review_needed")
                # no funding before a final merit verdict
                r = await ev.post(
                    f"/v1/evaluations/{app_id}/funding", headers={**d.officer, **_match(evaluation["etag"])}
                )
                assert r.status_code == 409 and r.json()["reason"] == "merit_not_passed", r.text
            await _review(d, app_id, reviewer, headers, scores)
        merit = _ok(await ev.get(f"/v1/evaluations/{app_id}/merit", headers=d.officer))
        assert merit["merit_verdict"] == "passed" and Decimal(merit["score"]) == final, merit
        assert len(merit["consensus"]["totals"]) == len(reviews)
        r = await ev.put(
            f"/v1/evaluations/{app_id}/credit-class",
            json={"class_code": "1"},
            headers={**d.officer, **_match(merit["etag"])},
        )
        assert _ok(r)["loan_excluded"] is False
        funded = _ok(
            await ev.post(f"/v1/evaluations/{app_id}/funding", headers={**d.officer, **_match(r.headers["ETag"])})
        )
        assert funded["stage"] == "evaluated", funded
        assert (Decimal(funded["grant"]), Decimal(funded["loan"])) == (GRANT, LOAN), funded["funding"]
        assert Decimal(funded["loan_gge"]) > 0 and funded["funding"]["steps"]


async def _review(d: Desk, app_id: str, reviewer: str, headers: dict[str, str], scores: dict[str, int]) -> None:
    """An officer assigns the reviewer, who declares no conflict, then scores and submits."""
    ev = d.evaluation
    r = await ev.post(f"/v1/evaluations/{app_id}/assignments", json={"reviewer": reviewer}, headers=d.officer)
    assignment = _ok(r, 201)
    # the application stays closed until the reviewer declares no conflict
    blocked = await ev.get(f"/v1/assignments/{assignment['id']}/application", headers=headers)
    assert blocked.status_code == 403, blocked.text
    r = await ev.post(
        f"/v1/assignments/{assignment['id']}/declaration",
        json={"no_conflict": True, "statement": "Nessun rapporto con l'impresa."},
        headers={**headers, **_match(r.headers["ETag"])},
    )
    _ok(r)
    opened = _ok(await ev.get(f"/v1/assignments/{assignment['id']}/application", headers=headers))
    assert opened["snapshot"]["id"] == app_id
    body = {"scores": {k: {"points": v, "comment": "Motivazione del punteggio."} for k, v in scores.items()}}
    r = await ev.put(
        f"/v1/assignments/{assignment['id']}/review", json=body, headers={**headers, **_match(r.headers["ETag"])}
    )
    _ok(r)
    _ok(
        await ev.post(
            f"/v1/assignments/{assignment['id']}/review/submit", headers={**headers, **_match(r.headers["ETag"])}
        )
    )


async def _decide(d: Desk) -> None:
    """Allocation (two funded, one waiting), a decree with its decisions, CUP and COR, the decree closed, the
    funded companies accept."""
    ev = d.evaluation
    allocation = _ok(await ev.post(f"/v1/calls/{d.call_id}/allocation", headers=d.officer))
    assert (allocation["funded"], allocation["waiting"], allocation["not_admitted"]) == (2, 1, 0), allocation
    assert Decimal(allocation["committed_now"]) == 2 * AID
    budget = _ok(await ev.get(f"/v1/calls/{d.call_id}/budget", params={"limit": 100}, headers=d.officer))
    assert (Decimal(budget["total"]), Decimal(budget["committed"]), Decimal(budget["available"])) == (
        BUDGET,
        2 * AID,
        BUDGET - 2 * AID,
    )
    statuses = [_ok(await ev.get(f"/v1/fundings/{a}", headers=d.officer))["status"] for a in d.apps]
    assert statuses == ["funded", "funded", "waiting"]

    decree = _ok(
        await ev.post(
            "/v1/decrees",
            json={
                "call_id": d.call_id,
                "number": f"{random.randrange(10**6)}/{d.decree_date.year}",
                "decree_date": d.decree_date.isoformat(),
            },
            headers=d.officer,
        ),
        201,
    )
    batch = _ok(
        await ev.post(
            f"/v1/decrees/{decree['id']}/decisions",
            json={"all_pending": True},
            headers={**d.officer, **_match(decree["etag"])},
        ),
        201,
    )
    by_app = {x["application_id"]: x for x in batch["created"]}
    assert set(by_app) == set(d.apps)
    waiting = by_app[d.apps[2]]
    assert waiting["outcome"] == "waiting" and waiting["reasons"][0]["code"] == "budget_exhausted"
    for app_id in d.apps[:2]:
        decision = by_app[app_id]
        assert decision["outcome"] == "funded"
        assert (Decimal(decision["grant"]), Decimal(decision["loan"])) == (GRANT, LOAN)
        cup = f"E{random.randint(10, 99)}D{random.randrange(10**11):011d}"
        r = await ev.put(
            f"/v1/decisions/{decision['id']}/cup", json={"cup": cup}, headers={**d.officer, **_match(decision["etag"])}
        )
        _ok(r)
        _ok(
            await ev.put(
                f"/v1/decisions/{decision['id']}/cor",
                json={"cor": str(random.randrange(10**9))},
                headers={**d.officer, **_match(r.headers["ETag"])},
            )
        )
    # four-eyes: one officer proposes the closing, the same cannot confirm it, a second officer does
    proposal = _ok(
        await ev.post(f"/v1/decrees/{decree['id']}/close", headers={**d.officer, **_match(batch["decree"]["etag"])}),
        202,
    )
    own = await ev.post(proposal["confirm"], headers={**d.officer, **_match(batch["decree"]["etag"])})
    assert own.status_code == 403 and own.json()["type"] == "/problems/four-eyes-same-officer", own.text
    closed = _ok(await ev.post(proposal["confirm"], headers={**d.second_officer, **_match(batch["decree"]["etag"])}))
    assert closed["status"] == "closed"
    for i, app_id in enumerate(d.apps[:2]):
        who = d.beneficiary(i)
        decision = _ok(await ev.get(f"/v1/decisions/{by_app[app_id]['id']}", headers=who))
        assert decision["status"] == "issued" and decision["cup"] and decision["cor"]
        accepted = _ok(
            await ev.post(f"/v1/decisions/{decision['id']}/accept", headers={**who, **_match(decision["etag"])})
        )
        assert accepted["status"] == "accepted"
        d.decisions.append(accepted)


async def _start_projects(d: Desk) -> None:
    """The worker brings the acceptances to monitoring: a project each, with its advance ordered; the beneficiary
    sets the IBAN (a partner's change confirmed by an officer, the advance being open; the company's applied at
    once), the advance ordered before any account takes it, and the treasury pays it."""
    mon = d.monitoring
    for i, decision in enumerate(d.decisions):
        who = d.beneficiary(i)

        async def started(decision: dict[str, Any] = decision) -> dict[str, Any] | None:
            r = await mon.get("/v1/projects", params={"company_id": decision["company_id"]}, headers=d.officer)
            items = r.json()["items"] if r.status_code == 200 else []
            return items[0] if items else None

        project = await wait_for(started, within=WAIT, what=f"the project of {decision['application_id']}")
        assert project["application_id"] == decision["application_id"]
        assert (project["cup"], project["cor"], project["status"]) == (decision["cup"], decision["cor"], "active")
        assert (Decimal(project["grant"]), Decimal(project["loan"])) == (GRANT, LOAN)
        assert Decimal(project["eligible_total"]) == ELIGIBLE
        assert project["deadline"] > d.decree_date.isoformat()
        r = await mon.get("/v1/payments", params={"project_id": project["id"]}, headers=d.officer)
        (advance,) = _ok(r)["items"]
        assert (advance["kind"], advance["status"], Decimal(advance["amount"])) == ("advance", "ordered", ADVANCE)
        assert advance["iban"] is None
        # no IBAN yet: the treasury cannot pay
        r = await mon.post(f"/v1/payments/{advance['id']}/paid", headers={**d.officer, **_match(advance["etag"])})
        assert r.status_code == 409, r.text
        company = _ok(await d.intake.get(f"/v1/companies/{decision['company_id']}", headers=d.officer))
        account = {"iban": IBAN, "holder": {"name": company["name"], "tax_code": company["vat_number"]}}
        r = await mon.get(f"/v1/projects/{project['id']}", headers=who)
        r = await mon.put(
            f"/v1/projects/{project['id']}/iban", json=account, headers={**who, **_match(r.headers["ETag"])}
        )
        if who is d.partner:  # the advance is ordered: the partner's change waits for a confirmation
            change = _ok(r, 202)
            assert change["status"] == "pending"
            confirmed = _ok(
                await mon.post(
                    f"/v1/projects/{project['id']}/iban-changes/{change['id']}/confirm",
                    headers={**d.officer, **_match(change["etag"])},
                )
            )
            assert confirmed["status"] == "confirmed"
            project = _ok(await mon.get(f"/v1/projects/{project['id']}", headers=who))
        else:  # the company itself: applied at once
            project = _ok(r)
        assert project["iban"] == IBAN
        advance = _ok(await mon.get(f"/v1/payments/{advance['id']}", headers=d.officer))
        assert advance["iban"] == IBAN
        # four-eyes: the order is paid only once a second officer has confirmed it
        r = await mon.post(f"/v1/payments/{advance['id']}/paid", headers={**d.officer, **_match(advance["etag"])})
        assert r.status_code == 409 and r.json()["type"] == "/problems/payment-not-confirmed", r.text
        _ok(
            await mon.post(
                f"/v1/payments/{advance['id']}/confirm", headers={**d.second_officer, **_match(advance["etag"])}
            )
        )
        paid = _ok(
            await mon.post(f"/v1/payments/{advance['id']}/paid", headers={**d.officer, **_match(advance["etag"])})
        )
        assert paid["status"] == "paid" and paid["paid_at"]
        d.projects.append(project)
        d.advances.append(paid)


# ---------------------------------------------------------------- claims


def fatturapa(*, number: str, issued: date, cup: str) -> bytes:
    """The FatturaPA sample (taxable 4,000.00) as an invoice of this project: its number, date and CUP."""
    xml = FATTURAPA.read_text(encoding="utf-8")
    xml = (
        xml.replace("<Numero>2025/0147</Numero>", f"<Numero>{number}</Numero>")
        .replace("<Data>2025-04-15</Data>", f"<Data>{issued.isoformat()}</Data>")
        .replace("<CodiceCUP>E18H25000120007</CodiceCUP>", f"<CodiceCUP>{cup}</CodiceCUP>")
    )
    return xml.encode("utf-8")


FATTURA_SUPPLIER = "01234560157"


def claim_lines() -> list[dict[str, Any]]:
    """Lines spending the whole approved budget: a 10,000, b 45,000 in Vietnam (of which a 4,000 e-invoice) and
    35,000 in Brazil, c 5,000."""
    day = today().isoformat()
    tag = uuid.uuid4().hex[:6].upper()

    def line(
        category: str, amount: str, market: str | None, supplier: str | None = None, number: str | None = None
    ) -> dict[str, Any]:
        return {
            "kind": "invoice",
            "supplier_vat": supplier or vat_number(),
            "supplier_name": "Fornitore S.r.l.",
            "document_number": number or f"FT-{tag}-{category}{amount[:2]}",
            "issue_date": day,
            "taxable_amount": amount,
            "category": category,
            "market": market,
            "payment_date": day,
            "payment_method": "bank_transfer",
            "cup_quoted": True,
        }

    return [
        line("a", "10000.00", None),
        line("b", "4000.00", "VN", FATTURA_SUPPLIER, f"FT-{tag}-VN1"),
        line("b", "41000.00", "VN"),
        line("b", "35000.00", "BR"),
        line("c", "5000.00", None),
    ]


async def file_final_claim(d: Desk, project: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
    """The beneficiary (`who`: the partner, or the company itself) opens the final claim, adds the lines with
    their evidence and submits it."""
    mon = d.monitoring
    r = await mon.post(f"/v1/projects/{project['id']}/claims", json={"kind": "final"}, headers=who)
    claim = _ok(r, 201)
    etag = r.headers["ETag"]
    for body in claim_lines():
        r = await mon.post(f"/v1/claims/{claim['id']}/lines", json=body, headers={**who, **_match(etag)})
        line = _ok(r, 201)
        etag = r.headers["ETag"]
        files = [("fattura.pdf", PDF, "application/pdf")]
        if body["supplier_vat"] == FATTURA_SUPPLIER:
            files.append(
                (
                    "fattura.xml",
                    fatturapa(number=body["document_number"], issued=today(), cup=project["cup"]),
                    "application/xml",
                )
            )
        for name, data, ctype in files:
            evidence = _ok(
                await mon.post(
                    f"/v1/claims/{claim['id']}/lines/{line['id']}/evidence",
                    files={"file": (name, data, ctype)},
                    headers=who,
                ),
                201,
            )
            assert len(evidence["sha256"]) == 64
            if ctype == "application/xml":
                assert evidence["invoice_data"]["cup_found"] is True, evidence["invoice_data"]
                assert Decimal(evidence["invoice_data"]["taxable_amount"]) == Decimal("4000.00")
        etag = (await mon.get(f"/v1/claims/{claim['id']}", headers=who)).headers["ETag"]
    submitted = _ok(await mon.post(f"/v1/claims/{claim['id']}/submit", headers={**who, **_match(etag)}))
    assert submitted["status"] == "submitted" and Decimal(submitted["claimed_total"]) == Decimal("95000.00")
    for line in submitted["lines"]:
        assert not [c for c in line["checks"] if c["blocking"]], line["checks"]
        assert {c["code"]: c["outcome"] for c in line["checks"]}["issue_date_in_project"] == "pass"
    invoice_line = next(ln for ln in submitted["lines"] if ln["supplier_vat"] == FATTURA_SUPPLIER)
    statuses = {c["code"]: c["outcome"] for c in invoice_line["checks"]}
    assert statuses["cup_quoted"] == statuses["evidence_matches"] == "pass", invoice_line["checks"]
    assert Decimal(submitted["review"]["submission"]["admissible_total"]) == ELIGIBLE
    return dict(submitted)


async def review_claim(d: Desk, claim: dict[str, Any], recognise: dict[str, Decimal | None]) -> dict[str, Any]:
    """The officer reviews every line (`recognise` by category+market: None = in full, else that amount) and
    completes the review."""
    mon = d.monitoring
    etag = (await mon.get(f"/v1/claims/{claim['id']}", headers=d.officer)).headers["ETag"]
    for line in claim["lines"]:
        amount = recognise.get(f"{line['category']}{line['market'] or ''}{line['taxable_amount']}")
        body: dict[str, Any] = (
            {"outcome": "recognised"}
            if amount is None
            else {"outcome": "partially", "recognised_amount": str(amount), "note": "Spesa riconosciuta in parte."}
        )
        r = await mon.put(
            f"/v1/claims/{claim['id']}/lines/{line['id']}/review", json=body, headers={**d.officer, **_match(etag)}
        )
        _ok(r)
        etag = r.headers["ETag"]
    return dict(_ok(await mon.post(f"/v1/claims/{claim['id']}/review/complete", headers={**d.officer, **_match(etag)})))


# ---------------------------------------------------------------- A: full aid, balance, statistics, charts


async def test_a_funded_project_is_followed_to_its_balance_and_shows_in_statistics_and_open_data(desk: Desk):
    d, mon = desk, desk.monitoring
    project = d.projects[0]
    claim = await review_claim(d, await file_final_claim(d, project, d.beneficiary(0)), {})
    assert claim["status"] == "approved" and Decimal(claim["recognised_total"]) == ELIGIBLE, claim["review"]

    done = _ok(await mon.get(f"/v1/projects/{project['id']}", headers=d.officer))
    assert done["status"] == "completed" and done["outcome"]["kind"] == "full", done["outcome"]
    assert (Decimal(done["final_grant"]), Decimal(done["final_loan"])) == (GRANT, LOAN)
    balance_due = GRANT - ADVANCE
    assert Decimal(done["outcome"]["balance"]) == balance_due == Decimal("14637.60")
    (balance,) = _ok(
        await mon.get("/v1/payments", params={"project_id": project["id"], "kind": "balance"}, headers=d.officer)
    )["items"]
    assert (balance["status"], Decimal(balance["amount"]), balance["iban"]) == ("ordered", balance_due, IBAN)
    # ordering it again returns the live order: nothing is paid twice
    again = await mon.post(f"/v1/projects/{project['id']}/payments", json={"kind": "balance"}, headers=d.officer)
    assert again.status_code == 200 and again.json()["id"] == balance["id"]
    own = await mon.post(f"/v1/payments/{balance['id']}/confirm", headers={**d.officer, **_match(balance["etag"])})
    assert own.status_code == 403 and own.json()["type"] == "/problems/four-eyes-same-officer", own.text
    _ok(
        await mon.post(f"/v1/payments/{balance['id']}/confirm", headers={**d.second_officer, **_match(balance["etag"])})
    )
    paid = _ok(await mon.post(f"/v1/payments/{balance['id']}/paid", headers={**d.officer, **_match(balance["etag"])}))
    assert paid["status"] == "paid"
    # nothing went back to the budget: full aid
    budget = _ok(await d.evaluation.get(f"/v1/calls/{d.call_id}/budget", params={"limit": 100}, headers=d.officer))
    assert not [e for e in budget["items"] if e["kind"] == "release" and e["application_id"] == d.apps[0]]

    # the partner's endpoint followed it all, signed: decisions, the project, its payments
    async def balance_paid_hook() -> bool:
        return (
            any(e["data"]["payment_id"] == balance["id"] for e in d.webhooks("payment.paid"))
            and len(d.webhooks("decision.issued")) >= 3
        )

    await wait_for(balance_paid_hook, within=WAIT, what="payment.paid of the balance at the partner's endpoint")
    issued = {e["data"]["application_id"]: e["data"] for e in d.webhooks("decision.issued")}
    assert [issued[a]["outcome"] for a in d.apps] == ["funded", "funded", "waiting"]
    assert Decimal(issued[d.apps[0]]["grant"]) == GRANT
    (started,) = [e for e in d.webhooks("project.started") if e["data"]["project_id"] == project["id"]]
    assert started["data"]["cup"] == project["cup"]
    completed = [e for e in d.webhooks("project.completed") if e["data"]["project_id"] == project["id"]]
    assert completed and completed[0]["data"]["outcome"] == "full"

    # statistics: three applications, all admitted, two funded; the project's aid paid in full
    async def stats_show_it() -> dict[str, Any] | None:
        s = _ok(await mon.get("/v1/stats", params={"call_id": d.call_id, "group_by": "province"}, headers=d.officer))
        return s if Decimal(s["totals"]["paid"]) >= GRANT else None

    stats = await wait_for(stats_show_it, within=WAIT, what="the balance in the statistics", every=0.5)
    totals = stats["totals"]
    assert (totals["applications"], totals["admitted"], totals["funded"]) == (3, 3, 2), totals
    assert Decimal(stats["call"]["budget"]) == BUDGET
    assert Decimal(totals["paid"]) in (GRANT, GRANT + ADVANCE)  # project 2's advance, unless test B recovered it
    assert [g["key"] for g in stats["groups"]] == ["BG"] and stats["groups"][0]["applications"] == 3
    public = _ok(await mon.get("/v1/public/stats", params={"call_id": d.call_id}))
    assert public["totals"]["applications"] == 3 and public["totals"]["funded"] == 2
    assert "Authorization" not in public

    # open data: the project, under its CUP, with its amounts and no personal data
    grants = _ok(await mon.get("/v1/open-data/funded-projects.json", params={"call_id": d.call_id}))["grants"]
    mine = next(g for g in grants if g["cup"] == project["cup"])
    assert (Decimal(mine["amountAwarded"]), Decimal(mine["loanAmount"])) == (GRANT, LOAN)
    assert mine["awardDate"] == d.decree_date.isoformat() and mine["cor"] == project["cor"]
    assert mine["recipientOrganization"][0]["name"] == "Meccanica Lombarda 1 S.r.l."
    assert "(VN)" in mine["description"] and IBAN not in str(grants)

    # the charts render: well-formed SVG
    for name in ("funds-by-province", "applications-per-hour", "markets-targeted"):
        r = await mon.get(f"/v1/public/stats/charts/{name}.svg", params={"call_id": d.call_id})
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml"), (name, r.text[:500])
        root = ET.fromstring(r.content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg", (name, root.tag)
        assert len(list(root.iter())) > 3, name


# ---------------------------------------------------------------- B: revocation and scorrimento


async def _event_cursor(d: Desk) -> str | None:
    cursor = None
    while True:
        page = _ok(
            await d.intake.get(
                "/v1/events", params={"limit": 100, **({"cursor": cursor} if cursor else {})}, headers=d.officer
            )
        )
        if not page["items"]:
            return cursor
        cursor = page["next_cursor"]


async def test_b_a_revoked_project_gives_its_aid_back_and_the_waiting_application_is_funded(desk: Desk):
    d, mon, ev = desk, desk.monitoring, desk.evaluation
    project = d.projects[1]
    cursor = await _event_cursor(d)
    # 60 % recognised: a 6,000 + b 48,000 + c 3,000 = 57,000 direct; d 11,400; e 4,788 -> 73,188.00 of 121,980.00
    claim = await review_claim(
        d,
        await file_final_claim(d, project, d.beneficiary(1)),
        {"a10000.00": Decimal("6000.00"), "bBR35000.00": Decimal("3000.00"), "c5000.00": Decimal("3000.00")},
    )
    assert claim["status"] == "partially_approved", claim["review"]
    assert Decimal(claim["recognised_total"]) == Decimal("73188.00") == ELIGIBLE * Decimal("0.6")

    revoked = _ok(await mon.get(f"/v1/projects/{project['id']}", headers=d.officer))
    assert revoked["status"] == "revoked", revoked["outcome"]
    outcome = revoked["outcome"]
    assert (outcome["kind"], outcome["reason_code"]) == ("revoked", "below_threshold")
    # the advance back with its statutory interest (paid today: none yet) and the loan, paid out with the
    # advance and still in its grace period, repaid early in full
    detail = outcome["recovery_detail"]
    assert (Decimal(detail["capital"]), Decimal(detail["interest"]), Decimal(detail["loan_outstanding"])) == (
        ADVANCE,
        Decimal("0.00"),
        LOAN,
    )
    assert Decimal(outcome["released"]) == AID and Decimal(outcome["recovery"]) == ADVANCE + LOAN
    assert outcome["granted_from_waiting_list"] == [d.apps[2]]
    payments = _ok(await mon.get("/v1/payments", params={"project_id": project["id"]}, headers=d.officer))["items"]
    by_kind = {p["kind"]: p for p in payments}
    assert set(by_kind) == {"advance", "recovery"}, payments
    assert (by_kind["recovery"]["status"], Decimal(by_kind["recovery"]["amount"])) == ("ordered", ADVANCE + LOAN)
    assert by_kind["advance"]["status"] == "paid"
    # no claim on a revoked project
    r = await mon.post(f"/v1/projects/{project['id']}/claims", json={"kind": "final"}, headers=d.beneficiary(1))
    assert r.status_code == 409, r.text

    # evaluation: the aid released, the waiting application funded from it (scorrimento)
    funding = _ok(await ev.get(f"/v1/fundings/{d.apps[1]}", headers=d.officer))
    assert funding["status"] == "revoked" and Decimal(funding["granted"]) == 0
    third = _ok(await ev.get(f"/v1/fundings/{d.apps[2]}", headers=d.officer))
    assert third["status"] == "funded", third
    assert (Decimal(third["granted"]), Decimal(third["grant"]), Decimal(third["loan"])) == (AID, GRANT, LOAN)
    budget = _ok(await ev.get(f"/v1/calls/{d.call_id}/budget", params={"limit": 100}, headers=d.officer))
    assert (Decimal(budget["committed"]), Decimal(budget["freed"]), Decimal(budget["available"])) == (
        2 * AID,
        AID,
        BUDGET - 2 * AID,
    )
    ledger = [(e["kind"], e["application_id"], Decimal(e["amount"])) for e in budget["items"]]
    assert ledger[-2:] == [("release", d.apps[1], AID), ("commitment", d.apps[2], AID)], ledger
    assert ledger.count(("commitment", d.apps[2], AID)) == 1

    # the event, in the outbox (polled as an officer)
    async def granted_event() -> dict[str, Any] | None:
        nonlocal cursor
        page = _ok(
            await d.intake.get(
                "/v1/events", params={"limit": 100, **({"cursor": cursor} if cursor else {})}, headers=d.officer
            )
        )
        cursor = page["next_cursor"]
        return next(
            (
                e
                for e in page["items"]
                if e["type"] == "funding.granted_from_waiting_list" and e["data"]["application_id"] == d.apps[2]
            ),
            None,
        )

    event = await wait_for(granted_event, within=WAIT, what="funding.granted_from_waiting_list", every=0.2)
    assert event["data"]["previous_status"] == "waiting" and event["data"]["status"] == "funded"
    assert Decimal(event["data"]["granted"]) == AID and event["data"]["company_id"] == d.companies[2]

    # ... and at the partner's endpoint, with the revocation
    async def hooks() -> bool:
        return bool(d.webhooks("funding.granted_from_waiting_list")) and bool(d.webhooks("project.revoked"))

    await wait_for(hooks, within=WAIT, what="the scorrimento and the revocation at the partner's endpoint")
    (hooked,) = d.webhooks("funding.granted_from_waiting_list")
    assert hooked["id"] == event["id"]
    (revocation,) = d.webhooks("project.revoked")
    assert (revocation["data"]["project_id"], Decimal(revocation["data"]["recovery"])) == (
        project["id"],
        ADVANCE + LOAN,
    )
    public = _ok(await ev.get(f"/v1/public/calls/{d.call_id}/budget"))
    assert (public["funded"], public["waiting"], Decimal(public["available"])) == (2, 0, BUDGET - 2 * AID)

    # the recovery collected; the statistics count the revocation
    recovery = by_kind["recovery"]
    _ok(await mon.post(f"/v1/payments/{recovery['id']}/paid", headers={**d.officer, **_match(recovery["etag"])}))

    async def stats_show_it() -> dict[str, Any] | None:
        s = _ok(await mon.get("/v1/stats", params={"call_id": d.call_id}, headers=d.officer))
        return s if s["totals"]["revoked"] == 1 else None

    stats = await wait_for(stats_show_it, within=WAIT, what="the revocation in the statistics", every=0.5)
    # project 1 keeps its aid; project 2's is gone (the waiting application is not decided yet)
    assert Decimal(stats["totals"]["committed"]) == AID, stats["totals"]
    grants = _ok(await mon.get("/v1/open-data/funded-projects.json", params={"call_id": d.call_id}))["grants"]
    assert project["cup"] not in {g["cup"] for g in grants}, "a revoked project is not published"

    # the next applicant's new decision (a later decree), accepted: monitoring starts its project
    decree = _ok(
        await ev.post(
            "/v1/decrees",
            json={
                "call_id": d.call_id,
                "number": f"{random.randrange(10**6)}/{d.decree_date.year}-bis",
                "decree_date": d.decree_date.isoformat(),
            },
            headers=d.officer,
        ),
        201,
    )
    batch = _ok(
        await ev.post(
            f"/v1/decrees/{decree['id']}/decisions",
            json={"all_pending": True},
            headers={**d.officer, **_match(decree["etag"])},
        ),
        201,
    )
    (decision,) = batch["created"]
    assert (decision["application_id"], decision["outcome"]) == (d.apps[2], "funded")
    assert (Decimal(decision["grant"]), Decimal(decision["loan"])) == (GRANT, LOAN)
    cup = f"E{random.randint(10, 99)}D{random.randrange(10**11):011d}"
    r = await ev.put(
        f"/v1/decisions/{decision['id']}/cup", json={"cup": cup}, headers={**d.officer, **_match(decision["etag"])}
    )
    r = await ev.put(
        f"/v1/decisions/{decision['id']}/cor",
        json={"cor": str(random.randrange(10**9))},
        headers={**d.officer, **_match(_ok(r)["etag"])},
    )
    proposal = _ok(
        await ev.post(f"/v1/decrees/{decree['id']}/close", headers={**d.officer, **_match(batch["decree"]["etag"])}),
        202,
    )
    _ok(await ev.post(proposal["confirm"], headers={**d.second_officer, **_match(batch["decree"]["etag"])}))
    decision = _ok(await ev.get(f"/v1/decisions/{decision['id']}", headers=d.partner))
    _ok(await ev.post(f"/v1/decisions/{decision['id']}/accept", headers={**d.partner, **_match(decision["etag"])}))

    async def started() -> dict[str, Any] | None:
        items = _ok(await mon.get("/v1/projects", params={"company_id": d.companies[2]}, headers=d.officer))["items"]
        return items[0] if items else None

    third_project = await wait_for(started, within=WAIT, what="the project of the application funded by scorrimento")
    assert (third_project["application_id"], third_project["cup"], third_project["status"]) == (
        d.apps[2],
        cup,
        "active",
    )
    (advance,) = _ok(await mon.get("/v1/payments", params={"project_id": third_project["id"]}, headers=d.officer))[
        "items"
    ]
    assert (advance["kind"], Decimal(advance["amount"])) == ("advance", ADVANCE)


# ---------------------------------------------------------------- C: a funded company applies again


async def test_c_a_funded_company_applying_to_a_second_call_has_the_first_aid_in_its_de_minimis(desk: Desk):
    """The first company (funded in the first call, decision accepted) applies to the second call, declaring the
    aid received: the pre-check shows it and the headroom left, and evaluation's de minimis counts the desk's own
    concession (grant + the loan's GGE, at the decree's date) once, though it is both declared and registered."""
    d, http, ev = desk, desk.intake, desk.evaluation
    company = d.companies[0]
    vat = _ok(await http.get(f"/v1/companies/{company}", headers=d.officer))["vat_number"]
    # the register holds the desk's concession since the acceptance: the COR, the decree's date
    aids = _ok(await ev.get("/v1/de-minimis/aids", params={"vat_number": vat}, headers=d.officer))["items"]
    assert [(a["source"], a["reference"], Decimal(a["amount"]), a["granted_on"]) for a in aids] == [
        ("desk", d.decisions[0]["cor"], FIRST_AID_EQUIVALENT, d.decree_date.isoformat())
    ]

    # the company declares the aid (DPR 445/2000): the Region's concession, under its COR
    declared = [
        {
            "vat_number": vat,
            "granting_authority": "Regione Lombardia",
            "granted_on": d.decree_date.isoformat(),
            "amount": str(FIRST_AID_EQUIVALENT),
            "regulation": "Reg. (UE) 2023/2831",
            "reference": d.decisions[0]["cor"],
        }
    ]
    draft = _ok(
        await http.post(
            "/v1/applications",
            json=draft_body(d.second_call_id, company, de_minimis_declarations=declared),
            headers=d.partner,
        ),
        201,
    )
    await declare_stamp_duty(http, draft["id"], d.partner)
    check = _ok(await http.post(f"/v1/applications/{draft['id']}/check", headers=d.partner))
    assert check["submittable"] is True, check["problems"]
    # the pre-check (declared aid only) shows the first aid and the headroom left: the whole estimate fits
    pre = check["de_minimis"]
    assert (Decimal(pre["declared_total"]), Decimal(pre["headroom"]), pre["reduced"], pre["refused"]) == (
        FIRST_AID_EQUIVALENT,
        CEILING - FIRST_AID_EQUIVALENT,
        False,
        False,
    ), pre
    receipt = _ok(await http.post(f"/v1/applications/{draft['id']}/submit", headers=d.partner), 201)
    assert receipt["receipt"]["protocol_number"] == 1
    d.second_app = app_id = draft["id"]

    async def admissible() -> dict[str, Any] | None:
        r = await ev.get(f"/v1/evaluations/{app_id}", headers=d.officer)
        return r.json() if r.status_code == 200 and r.json()["stage"] != "received" else None

    got = await wait_for(admissible, within=WAIT, what="the admissibility of the second application")
    assert got["stage"] == "admissible", [c for c in got["checks"] if c["outcome"] != "pass"]
    for (reviewer, headers), scores in zip(d.reviewers, SCORES[0], strict=False):
        await _review(d, app_id, reviewer, headers, scores)
    merit = _ok(await ev.get(f"/v1/evaluations/{app_id}/merit", headers=d.officer))
    assert merit["merit_verdict"] == "passed" and Decimal(merit["score"]) == FINAL_SCORES[0], merit
    r = await ev.put(
        f"/v1/evaluations/{app_id}/credit-class",
        json={"class_code": "1"},
        headers={**d.officer, **_match(merit["etag"])},
    )
    _ok(r)
    funded = _ok(
        await ev.post(
            f"/v1/evaluations/{app_id}/funding",
            headers={**d.officer, "Accept-Language": "en", **_match(r.headers["ETag"])},
        )
    )
    # the first aid is counted: 300,000.00 - 30,836.45 = 269,163.55 of headroom, the whole aid fits (not reduced)
    dm = funded["de_minimis"]
    assert (Decimal(dm["prior_total"]), Decimal(dm["headroom"]), dm["reduced"]) == (
        FIRST_AID_EQUIVALENT,
        CEILING - FIRST_AID_EQUIVALENT,
        False,
    ), dm
    assert CEILING - FIRST_AID_EQUIVALENT == Decimal("269163.55")
    counted = [s for s in dm["steps"] if s["code"] == "prior_aid_counted"]
    assert len(counted) == 1 and f"aid {d.decisions[0]['cor']} (desk)" in counted[0]["detail_en"], dm["steps"]
    assert (Decimal(funded["grant"]), Decimal(funded["loan"]), Decimal(funded["loan_gge"])) == (GRANT, LOAN, LOAN_GGE)
    # the officer's comparison: the desk's own aid, declared under its COR, counted once
    view = _ok(await ev.get(f"/v1/de-minimis/applications/{app_id}", headers=d.officer))
    assert (Decimal(view["totals_in_period"]["desk"]), Decimal(view["totals_in_period"]["declared"])) == (
        FIRST_AID_EQUIVALENT,
        FIRST_AID_EQUIVALENT,
    )
    assert {a["reference"]: a["declared"] for a in view["register_entries"]} == {d.decisions[0]["cor"]: True}
    assert (Decimal(view["counted_total"]), Decimal(view["headroom"])) == (
        FIRST_AID_EQUIVALENT,
        CEILING - FIRST_AID_EQUIVALENT,
    )


# ---------------------------------------------------------------- D: a budget increase funds the waiting list


async def test_d_a_budget_increase_by_decree_funds_the_waiting_application_at_once(desk: Desk, engine: AsyncEngine):
    """The second call's budget (50,000.00) cannot fund the second application's aid (103,683.00): it waits. The
    officer amends the call through intake, raising `budget_total` to 150,000.00 with the decree that orders it;
    evaluation's ledger applies the `call.amended` event and funds the waiting application at once (notified);
    intake, the ledger and the statistics read the same budget."""
    d, http, ev, mon = desk, desk.intake, desk.evaluation, desk.monitoring
    assert d.second_app, "test C submits the second application"
    call_id, app_id = d.second_call_id, d.second_app
    await _close_window(engine, uuid.UUID(call_id))
    allocation = _ok(await ev.post(f"/v1/calls/{call_id}/allocation", headers=d.officer))
    assert (allocation["funded"], allocation["waiting"]) == (0, 1), allocation
    assert _ok(await ev.get(f"/v1/fundings/{app_id}", headers=d.officer))["status"] == "waiting"

    # frozen rules: after opening only a later close or a higher budget, each with its decree
    call = _ok(await http.get(f"/v1/calls/{call_id}"))
    rules = call["rules"]
    rules["budget_total"] = str(RAISED_BUDGET)
    no_decree = await http.post(
        f"/v1/calls/{call_id}/versions",
        json={"rules": rules, "reason": "Rifinanziamento"},
        headers={**d.officer, **_match(call["etag"])},
    )
    assert no_decree.status_code == 422 and no_decree.json()["errors"][0]["code"] == "decree_required", no_decree.text
    rates = {**rules, "aid": {**rules["aid"], "grant": {**rules["aid"]["grant"], "percent": "0.15"}}}
    frozen = await http.post(
        f"/v1/calls/{call_id}/versions",
        json={
            "rules": rates,
            "reason": "Rifinanziamento",
            "decree": {"number": "1/E2E", "date": d.decree_date.isoformat()},
        },
        headers={**d.officer, **_match(call["etag"])},
    )
    assert frozen.status_code == 409 and frozen.json()["type"] == "/problems/call-frozen", frozen.text
    assert "aid.grant.percent" in frozen.json()["refused_fields"]
    decree = {"number": f"{random.randrange(10**6)}/{d.decree_date.year}", "date": d.decree_date.isoformat()}
    amended = _ok(
        await http.post(
            f"/v1/calls/{call_id}/versions",
            json={"rules": rules, "reason": "Rifinanziamento del bando", "decree": decree},
            headers={**d.officer, **_match(call["etag"])},
        ),
        201,
    )
    assert (amended["current_version"], Decimal(amended["budget_total"])) == (2, RAISED_BUDGET)

    # the worker brings call.amended to evaluation: the ledger takes the new total and funds the waiting list
    async def funded() -> dict[str, Any] | None:
        f = _ok(await ev.get(f"/v1/fundings/{app_id}", headers=d.officer))
        return f if f["status"] == "funded" else None

    funding = await wait_for(funded, within=WAIT, what="the waiting application funded by the budget increase")
    assert (Decimal(funding["granted"]), Decimal(funding["grant"]), Decimal(funding["loan"])) == (AID, GRANT, LOAN)
    budget = _ok(await ev.get(f"/v1/calls/{call_id}/budget", params={"limit": 100}, headers=d.officer))
    assert (Decimal(budget["total"]), Decimal(budget["committed"]), Decimal(budget["available"])) == (
        RAISED_BUDGET,
        AID,
        RAISED_BUDGET - AID,
    )
    ledger = [(e["kind"], e["application_id"], Decimal(e["amount"])) for e in budget["items"]]
    assert ledger[-2:] == [("amendment", None, RAISED_BUDGET - SECOND_BUDGET), ("commitment", app_id, AID)], ledger
    public = _ok(await ev.get(f"/v1/public/calls/{call_id}/budget"))
    assert (public["funded"], public["waiting"], Decimal(public["available"])) == (1, 0, RAISED_BUDGET - AID)

    # notified: the scorrimento at the partner's endpoint
    async def hooked() -> list[dict[str, Any]]:
        return [e for e in d.webhooks("funding.granted_from_waiting_list") if e["data"]["application_id"] == app_id]

    (event,) = await wait_for(hooked, within=WAIT, what="funding.granted_from_waiting_list after the increase")
    assert event["data"]["previous_status"] == "waiting" and Decimal(event["data"]["granted"]) == AID
    # one figure everywhere: intake's call, evaluation's ledger, monitoring's statistics
    assert Decimal(_ok(await http.get(f"/v1/calls/{call_id}"))["budget_total"]) == RAISED_BUDGET

    async def stats_show_it() -> dict[str, Any] | None:
        s = _ok(await mon.get("/v1/stats", params={"call_id": call_id}, headers=d.officer))
        return s if Decimal(s["call"]["budget"]) == RAISED_BUDGET else None

    await wait_for(stats_show_it, within=WAIT, what="the raised budget in the statistics", every=0.5)


# ---------------------------------------------------------------- E: results a year after completion


async def test_e_follow_up_kpis_are_reported_a_year_after_completion(desk: Desk):
    """Project 1 completed with test A's final claim: the call asks export sales in the new markets one and two
    years after completion. Today the first follow-up year has not started (refused); on the monitoring app's
    clock moved to the January after it (its results routes take today as a dependency), the beneficiary reports
    it, and the project's KPIs list the follow-up reports with their status."""
    d, mon = desk, desk.monitoring
    project = _ok(await mon.get(f"/v1/projects/{d.projects[0]['id']}", headers=d.officer))
    assert project["status"] == "completed", "test A completes project 1"
    follow_up = project["outcome"]["follow_up"]
    completed_on = date.fromisoformat(follow_up["completed_on"])
    y = completed_on.year
    kpi = "Vendite export nei nuovi mercati"
    assert [(f["kpi"], f["year_after"], f["period"], f["due_date"]) for f in follow_up["reports"]] == [
        (kpi, 1, str(y + 1), f"{y + 2}-03-31"),
        (kpi, 2, str(y + 2), f"{y + 3}-03-31"),
    ]
    assert (follow_up["last_year"], follow_up["until"]) == (y + 2, f"{y + 3}-03-31")
    path = f"/v1/projects/{project['id']}/kpi-reports"
    body = {"kpi": kpi, "period": str(y + 1), "value": "180000.00", "note": "Vietnam e Brasile."}

    early = await mon.post(path, json=body, headers=d.beneficiary(0))
    assert early.status_code == 422 and early.json()["errors"][0]["code"] == "period_in_future", early.text
    listed = _ok(await mon.get(f"/v1/projects/{project['id']}/kpis", headers=d.beneficiary(0)))
    assert [f["status"] for f in listed["follow_up"]] == ["upcoming", "upcoming"]

    a_year_after = date(y + 2, 1, 15)  # the first follow-up year is over, its report due by 31 March
    d.monitoring_app.dependency_overrides[today_in_rome] = lambda: a_year_after
    try:
        negative = await mon.post(path, json={**body, "value": "-1.00"}, headers=d.beneficiary(0))
        assert negative.status_code == 422 and negative.json()["errors"][0]["code"] == "value_negative"
        later = await mon.post(path, json={**body, "period": str(y + 3)}, headers=d.beneficiary(0))
        assert later.status_code == 422 and later.json()["errors"][0]["code"] == "period_in_future", later.text
        report = _ok(await mon.post(path, json=body, headers=d.beneficiary(0)), 201)
        assert (report["kpi"], report["period"], Decimal(report["value"])) == (kpi, str(y + 1), Decimal("180000.00"))
        again = await mon.post(path, json=body, headers=d.beneficiary(0))
        assert again.status_code == 409 and again.json()["type"] == "/problems/already-exists", again.text
        listed = _ok(await mon.get(f"/v1/projects/{project['id']}/kpis", headers=d.officer))
    finally:
        d.monitoring_app.dependency_overrides.pop(today_in_rome, None)
    assert [(f["kpi"], f["period"], f["status"]) for f in listed["follow_up"]] == [
        (kpi, str(y + 1), "reported"),
        (kpi, str(y + 2), "due"),
    ]
    assert listed["follow_up"][0]["report"]["id"] == report["id"] and listed["follow_up"][1]["report"] is None
    assert [k["name"] for k in listed["items"]] == ["Quota fatturato estero", "Nuovi clienti esteri"]


# ---------------------------------------------------------------- F: revocation for a false declaration


def _days_in(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


async def test_f_a_false_declaration_revokes_a_paid_project_with_the_statutory_interest(desk: Desk):
    """After completion and both payments (advance and balance), a declaration of project 1's company is found
    false (DPR 445/2000 art. 75): the officer revokes with an explicit recovery date, 31 December of the payments'
    year. Each payment comes back with the statutory interest of that year (LEGAL_INTEREST_RATES) for the days
    from its payment date (excluded) to the recovery date (included), rounded half-up to the cent per payment,
    and the loan's outstanding capital (still in its 12-month grace period: all of it) is due at once.

    For a run on 3 December 2026 (rate 1.6 %, 28 days): advance 9,758.40 x 0.016 x 28 / 365 = 11.9774... -> 11.98,
    balance 14,637.60 x 0.016 x 28 / 365 = 17.9661... -> 17.97; recovery 24,396.00 + 29.95 + 79,287.00."""
    d, mon, ev = desk, desk.monitoring, desk.evaluation
    project = _ok(await mon.get(f"/v1/projects/{d.projects[0]['id']}", headers=d.officer))
    assert project["status"] == "completed"
    paid = [
        p
        for p in _ok(await mon.get("/v1/payments", params={"project_id": project["id"]}, headers=d.officer))["items"]
        if p["status"] == "paid"
    ]
    assert sorted((p["kind"], Decimal(p["amount"])) for p in paid) == [
        ("advance", ADVANCE),
        ("balance", GRANT - ADVANCE),
    ]
    paid_on = {p["kind"]: datetime.fromisoformat(p["paid_at"]).astimezone(ROME).date() for p in paid}
    last = max(paid_on.values())
    recovered_on = date(last.year, 12, 31)
    path = f"/v1/projects/{project['id']}/revocation"
    body = {
        "reason_code": "false_declaration",
        "recovery_date": recovered_on.isoformat(),
        "reason": "Dichiarazione sostitutiva non veritiera sulla dimensione d'impresa (verifica camerale).",
    }

    # refusals change nothing: a recovery date before a payment; a year whose statutory rate the desk lacks
    before = await mon.post(
        path,
        json={**body, "recovery_date": (last - timedelta(days=1)).isoformat()},
        headers={**d.officer, **_match(project["etag"])},
    )
    assert before.status_code == 422 and before.json()["errors"][0]["code"] == "recovery_date_before_payment"
    unknown_year = max(max(LEGAL_INTEREST_RATES) + 1, last.year + 1)
    unknown = await mon.post(
        path, json={**body, "recovery_date": f"{unknown_year}-01-15"}, headers={**d.officer, **_match(project["etag"])}
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["code"] == "legal_rate_unknown", unknown.text
    if last.year not in LEGAL_INTEREST_RATES:
        # paid in a year whose rate (the MEF decree of the December before) is not in the table yet: no recovery
        # can be computed until it is added; the refusal names the year
        assert last.year in unknown.json()["errors"][0]["years"]
        return
    assert _ok(await mon.get(f"/v1/projects/{project['id']}", headers=d.officer))["status"] == "completed"

    rate = LEGAL_INTEREST_RATES[recovered_on.year]
    interest = {
        kind: (amount * rate * (recovered_on - paid_on[kind]).days / _days_in(recovered_on.year)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        for kind, amount in (("advance", ADVANCE), ("balance", GRANT - ADVANCE))
    }
    revoked = _ok(await mon.post(path, json=body, headers={**d.officer, **_match(project["etag"])}))
    assert revoked["status"] == "revoked"
    outcome = revoked["outcome"]
    assert (outcome["kind"], outcome["reason_code"], outcome["article"]) == (
        "revoked",
        "false_declaration",
        "DPR 445/2000 art. 75",
    ), outcome
    detail = outcome["recovery_detail"]
    assert detail["recovered_on"] == recovered_on.isoformat()
    assert (Decimal(detail["capital"]), Decimal(detail["interest"]), Decimal(detail["loan_outstanding"])) == (
        GRANT,
        sum(interest.values()),
        LOAN,
    ), detail
    items = {(Decimal(i["amount"]), i["paid_on"]): i for i in detail["items"]}
    for kind, amount in (("advance", ADVANCE), ("balance", GRANT - ADVANCE)):
        item = items[(amount, paid_on[kind].isoformat())]
        assert Decimal(item["interest"]) == interest[kind], item
        assert [(s["year"], s["days"], Decimal(s["rate"])) for s in item["segments"]] == (
            [(recovered_on.year, (recovered_on - paid_on[kind]).days, rate)] if recovered_on > paid_on[kind] else []
        )
    total = GRANT + sum(interest.values()) + LOAN
    assert Decimal(detail["total"]) == Decimal(outcome["recovery"]) == total
    # one recovery order for all of it; the aid back to the first call's budget (nothing waits there now)
    (recovery,) = [
        p
        for p in _ok(await mon.get("/v1/payments", params={"project_id": project["id"]}, headers=d.officer))["items"]
        if p["kind"] == "recovery"
    ]
    assert (recovery["status"], Decimal(recovery["amount"])) == ("ordered", total)
    assert Decimal(outcome["released"]) == AID and outcome["granted_from_waiting_list"] == []
    funding = _ok(await ev.get(f"/v1/fundings/{d.apps[0]}", headers=d.officer))
    assert funding["status"] == "revoked" and Decimal(funding["granted"]) == 0
    # the beneficiary can report no more results
    r = await mon.post(
        f"/v1/projects/{project['id']}/kpi-reports",
        json={"kpi": "Nuovi clienti esteri", "period": str(last.year), "value": "1.00"},
        headers=d.beneficiary(0),
    )
    assert r.status_code == 409 and r.json()["type"] == "/problems/reporting-closed", r.text


# ---------------------------------------------------------------- a business network


def _line(category: str, amount: str, market: str) -> dict[str, Any]:
    return {
        "category": category,
        "description": f"Spesa {category} della rete",
        "amount": amount,
        "target_market": market,
        "supplier": None,
    }


async def test_g_a_network_application_is_funded_per_member_and_each_member_gets_its_concession(
    desk: Desk, engine: AsyncEngine
) -> None:
    """A lead and two members, registered by the same partner, each with its own lines: check, submit,
    admissibility per member, merit, funding per member, allocation, decree, acceptance, and the de minimis
    register shows one concession per company.

    Figures: the lead's draft as above (grant 24,396.00, loan 79,287.00); member 0: b 20,000.00 + d 4,000.00 +
    e 7 % of 24,000.00 = 1,680.00 -> eligible 25,680.00, grant 5,136.00, loan 16,692.00; member 1: b 40,000.00 +
    d 8,000.00 + e 3,360.00 -> 51,360.00, grant 10,272.00, loan 33,384.00; the network: eligible 199,020.00,
    grant 39,804.00, loan 129,363.00, aid 169,167.00 (within the budget of 250,000.00 of its own call)."""
    d, http, ev = desk, desk.intake, desk.evaluation
    call_id = str(await _call_with_budget(engine, BUDGET))
    reviewers = [(r, await _token(http, r, SECRET)) for r in await _officers(engine, 2)]
    firms = [
        _ok(await http.post("/v1/companies", json=company_body(name=name), headers=d.partner), 201)
        for name in ("Rete Capofila S.r.l.", "Rete Membro Uno S.r.l.", "Rete Membro Due S.r.l.")
    ]
    lead, members = firms[0], firms[1:]
    network = {
        "name": "Rete Lombardia Export",
        "members": [
            {"company_id": members[0]["id"], "expense_lines": [_line("b", "20000.00", "VN")]},
            {"company_id": members[1]["id"], "expense_lines": [_line("b", "40000.00", "BR")]},
        ],
    }
    draft = _ok(
        await http.post("/v1/applications", json=draft_body(call_id, lead["id"], network=network), headers=d.partner),
        201,
    )
    await declare_stamp_duty(http, draft["id"], d.partner)
    check = _ok(await http.post(f"/v1/applications/{draft['id']}/check", headers=d.partner))
    assert check["submittable"] is True, check["problems"]
    assert [(m["eligible_total"], m["grant"], m["loan"]) for m in check["network"]["members"]] == [
        ("25680.00", "5136.00", "16692.00"),
        ("51360.00", "10272.00", "33384.00"),
    ]
    assert check["network"]["total_aid"] == "169167.00"
    receipt = _ok(await http.post(f"/v1/applications/{draft['id']}/submit", headers=d.partner), 201)
    app_id = receipt["receipt"]["application_id"]

    async def admitted() -> dict[str, Any] | None:
        r = await ev.get(f"/v1/evaluations/{app_id}", headers=d.officer)
        return r.json() if r.status_code == 200 and r.json()["stage"] != "received" else None

    got = await wait_for(admitted, within=WAIT, what="the admissibility of the network application")
    assert got["stage"] == "admissible", [c for c in got["checks"] if c["outcome"] != "pass"]
    assert {c["path"] for c in got["checks"]} == {None, "/network/members/0", "/network/members/1", "/network"}
    assert [m["eligible_total"] for m in got["network"]["members"]] == ["25680.00", "51360.00"]

    for reviewer, headers in reviewers:
        await _review(d, app_id, reviewer, headers, _grid(24, 16, 16, 16, 8))
    merit = _ok(await ev.get(f"/v1/evaluations/{app_id}/merit", headers=d.officer))
    assert merit["merit_verdict"] == "passed", merit
    r = await ev.put(
        f"/v1/evaluations/{app_id}/credit-class",
        json={"class_code": "1"},
        headers={**d.officer, **_match(merit["etag"])},
    )
    _ok(r)
    funded = _ok(await ev.post(f"/v1/evaluations/{app_id}/funding", headers={**d.officer, **_match(r.headers["ETag"])}))
    assert funded["stage"] == "evaluated", funded
    net = funded["network"]
    assert (Decimal(net["lead"]["grant"]), Decimal(net["lead"]["loan"])) == (GRANT, LOAN)
    assert [(m["company_id"], m["vat_number"], m["grant"], m["loan"]) for m in net["members"]] == [
        (members[0]["id"], members[0]["vat_number"], "5136.00", "16692.00"),
        (members[1]["id"], members[1]["vat_number"], "10272.00", "33384.00"),
    ]
    assert (funded["grant"], funded["loan"]) == ("39804.00", "129363.00")

    await _close_window(engine, uuid.UUID(call_id))
    allocation = _ok(await ev.post(f"/v1/calls/{call_id}/allocation", headers=d.officer))
    assert allocation["funded"] == 1 and Decimal(allocation["committed_now"]) == Decimal("169167.00"), allocation
    decree = _ok(
        await ev.post(
            "/v1/decrees",
            json={
                "call_id": call_id,
                "number": f"{random.randrange(10**6)}/{d.decree_date.year}-rete",
                "decree_date": d.decree_date.isoformat(),
            },
            headers=d.officer,
        ),
        201,
    )
    batch = _ok(
        await ev.post(
            f"/v1/decrees/{decree['id']}/decisions",
            json={"application_ids": [app_id]},
            headers={**d.officer, **_match(decree["etag"])},
        ),
        201,
    )
    (decision,) = batch["created"]
    assert (decision["outcome"], decision["grant"], decision["loan"]) == ("funded", "39804.00", "129363.00")
    cor = str(random.randrange(10**9))
    r = await ev.put(
        f"/v1/decisions/{decision['id']}/cup",
        json={"cup": f"E{random.randint(10, 99)}D{random.randrange(10**11):011d}"},
        headers={**d.officer, **_match(decision["etag"])},
    )
    _ok(
        await ev.put(
            f"/v1/decisions/{decision['id']}/cor", json={"cor": cor}, headers={**d.officer, **_match(_ok(r)["etag"])}
        )
    )
    proposal = _ok(
        await ev.post(f"/v1/decrees/{decree['id']}/close", headers={**d.officer, **_match(batch["decree"]["etag"])}),
        202,
    )
    _ok(await ev.post(proposal["confirm"], headers={**d.second_officer, **_match(batch["decree"]["etag"])}))
    decision = _ok(await ev.get(f"/v1/decisions/{decision['id']}", headers=d.partner))
    _ok(await ev.post(f"/v1/decisions/{decision['id']}/accept", headers={**d.partner, **_match(decision["etag"])}))

    # one concession per company: the lead's for its own share, each member's for its own (grant + loan's GGE)
    lead_gge = Decimal(net["lead"]["loan_gge"])
    expected = [(lead, cor, GRANT + lead_gge)] + [
        (members[i], f"{cor}/{i + 1}", Decimal(m["grant"]) + Decimal(m["loan_gge"]))
        for i, m in enumerate(net["members"])
    ]
    for company, reference, amount in expected:
        aids = _ok(
            await ev.get("/v1/de-minimis/aids", params={"vat_number": company["vat_number"]}, headers=d.officer)
        )["items"]
        assert [(a["source"], a["reference"], Decimal(a["amount"]), a["granted_on"]) for a in aids] == [
            ("desk", reference, amount, d.decree_date.isoformat())
        ], company["name"]

    # monitoring starts the network's project on the whole approved budget: b 80,000 + 20,000 + 40,000 = 140,000,
    # d 19,000 + 4,000 + 8,000 = 31,000, e 7,980 + 1,680 + 3,360 = 13,020, with a 10,000 and c 5,000: 199,020.00
    async def started() -> dict[str, Any] | None:
        items = _ok(await d.monitoring.get("/v1/projects", params={"company_id": lead["id"]}, headers=d.officer))[
            "items"
        ]
        return items[0] if items else None

    project = await wait_for(started, within=WAIT, what="the project of the network application")
    assert (project["eligible_total"], project["grant"], project["loan"]) == ("199020.00", "39804.00", "129363.00")
    budget = {
        (x["category"], x["kind"]): x["amount"] for x in project["approved_budget"] if x["dimension"] == "category"
    }
    assert (budget[("b", "direct")], budget[("d", "flat_rate")], budget[("e", "flat_rate")]) == (
        "140000.00",
        "31000.00",
        "13020.00",
    )


# ---------------------------------------------------------------- I: expert accompaniment in the design phase


async def test_i_an_expert_accompanies_the_design_of_a_plan_and_the_partner_hears_each_step(desk: Desk):
    """An officer adds an expert to the roster and issues its API client; the partner asks accompaniment for the
    design of application 1's plan (markets VN and BR, ATECO 28.29.30); the expert is proposed (100 points: both
    markets, the sector, English, a free month), assigned, confirms with its own token, logs a session; the
    partner rates the engagement. Each step reaches the partner's webhook endpoint, signed."""
    from tests.factories import expert_body

    d, http = desk, desk.intake
    expert = _ok(await http.post("/v1/experts", json=expert_body(name="Export manager e2e"), headers=d.officer), 201)
    creds = _ok(
        await http.post(f"/v1/experts/{expert['id']}/clients", headers={**d.officer, **_match(expert["etag"])}), 201
    )
    as_expert = await _token(http, creds["client_id"], creds["client_secret"])
    body = {"application_id": d.apps[0], "phase": "design", "language": "en"}
    g = _ok(await http.post("/v1/engagements", json=body, headers=d.partner), 201)
    assert (g["markets"], g["sector"]) == (["VN", "BR"], "28.29.30")
    proposals = _ok(await http.get(f"/v1/engagements/{g['id']}/proposals", headers=d.partner))["proposals"]
    mine = next(p for p in proposals if p["expert_id"] == expert["id"])
    assert mine["score"] == "100.00"
    g = _ok(
        await http.post(
            f"/v1/engagements/{g['id']}/assignment",
            json={"expert_id": expert["id"]},
            headers={**d.officer, **_match(g["etag"])},
        )
    )
    g = _ok(await http.post(f"/v1/engagements/{g['id']}/confirm", headers={**as_expert, **_match(g["etag"])}))
    session = {
        "held_on": today().isoformat(),
        "hours": "3.00",
        "topics": ["Analisi dei mercati obiettivo"],
        "outcome_notes": "Piano rivisto.",
    }
    _ok(await http.post(f"/v1/engagements/{g['id']}/sessions", json=session, headers=as_expert), 201)
    rated = _ok(await http.post(f"/v1/engagements/{g['id']}/rating", json={"rating": 5}, headers=d.partner))
    assert (rated["status"], rated["hours_logged"], rated["rating"]) == ("confirmed", "3.00", 5)

    steps = (
        "engagement.requested",
        "engagement.assigned",
        "engagement.confirmed",
        "engagement.session_logged",
        "engagement.rated",
    )

    async def heard() -> bool | None:
        return all(any(e["data"]["engagement_id"] == g["id"] for e in d.webhooks(t)) for t in steps) or None

    await wait_for(heard, within=WAIT, what="the engagement's events at the partner's endpoint")
    logged = next(e for e in d.webhooks("engagement.session_logged") if e["data"]["engagement_id"] == g["id"])
    assert (logged["data"]["hours"], logged["data"]["phase"]) == ("3.00", "design")


# ---------------------------------------------------------------- J: a B2B event's contract among the results


async def test_j_a_b2b_contract_appears_among_the_projects_results(desk: Desk):
    """A funded company meets a foreign buyer at an incoming mission (recorded after the fact: it ended
    yesterday): the officer registers the buyer and the event, the partner registers the company's interest, the
    officer plans the agenda, the meeting is confirmed and its outcome is a contract of 48,000.00 in Brazil. The
    worker carries `meeting.outcome_recorded` to monitoring: the contract appears among the results of the
    company's project (its running project, else its latest completed one) and in the B2B statistics."""
    d, mon = desk, desk.monitoring
    projects = _ok(await mon.get("/v1/projects", params={"limit": 100}, headers=d.officer))["items"]
    by_company: dict[str, list[dict[str, Any]]] = {}
    for p in projects:
        if p["status"] in ("active", "completed"):
            by_company.setdefault(p["company_id"], []).append(p)
    company, (project,) = next((c, ps) for c, ps in by_company.items() if len(ps) == 1 and c in d.companies)
    i = d.companies.index(company)
    who = d.beneficiary(i)
    operator = _ok(
        await d.intake.post(
            "/v1/b2b/operators",
            json={"name": "São Paulo Máquinas", "kind": "buyer", "country": "BR", "sectors": ["28"], "interests": []},
            headers=d.officer,
        ),
        201,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1, hours=3)
    slot = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(minutes=30)).isoformat(), "capacity": 4}
    event = _ok(
        await d.intake.post(
            "/v1/b2b/events",
            json={
                "title": "Missione incoming Brasile",
                "kind": "incoming_mission",
                "slots": [slot],
                "operator_ids": [operator["id"]],
            },
            headers=d.officer,
        ),
        201,
    )
    url = f"/v1/b2b/events/{event['id']}"
    _ok(
        await d.intake.post(
            f"{url}/interests", json={"company_id": company, "operator_id": operator["id"], "rank": 1}, headers=who
        ),
        201,
    )
    (meeting,) = _ok(await d.intake.post(f"{url}/agenda", headers=d.officer))["added"]
    assert (meeting["company_id"], meeting["slot"], meeting["status"]) == (company, 0, "proposed")
    meeting = _ok(
        await d.intake.post(f"/v1/b2b/meetings/{meeting['id']}/confirm", headers={**who, **_match(meeting["etag"])})
    )
    done = _ok(
        await d.intake.post(
            f"/v1/b2b/meetings/{meeting['id']}/outcome",
            json={"outcome": "contract", "contract_value": "48000.00", "market": "BR"},
            headers={**who, **_match(meeting["etag"])},
        )
    )
    assert (done["outcome"], done["contract_value"]) == ("contract", "48000.00")

    async def in_results() -> dict[str, Any] | None:
        b2b = _ok(await mon.get(f"/v1/projects/{project['id']}/kpis", headers=who))["b2b"]
        return b2b if b2b["contracts"] else None

    b2b = await wait_for(in_results, within=WAIT, what="the contract among the project's results", every=0.2)
    assert b2b["by_market"] == [{"market": "BR", "contracts": 1, "contract_value": "48000.00"}]
    assert (b2b["meetings"], b2b["contract_value"]) == (1, "48000.00")
    stats = _ok(await mon.get("/v1/stats/b2b", params={"event_id": event["id"]}, headers=d.officer))
    assert [(e["event_title"], e["contracts"], e["contract_value"]) for e in stats["by_event"]] == [
        ("Missione incoming Brasile", 1, "48000.00")
    ]


# ---------------------------------------------------------------- Z: every event above names its own object


async def test_z_every_event_is_about_its_own_object_and_links_where_it_is_read(desk: Desk) -> None:
    """The event subject convention over the lives above: every event the partner polls (and every webhook it
    received) has as subject the object its type's noun names (`decision.accepted`: the decision), by a UUID,
    with the href of `SUBJECTS`, which answers 200 on the service that sent it; the related ids are in `data`."""
    d = desk
    services = {"intake": d.intake, "evaluation": d.evaluation, "monitoring": d.monitoring}
    polled: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = _ok(await d.intake.get("/v1/events", params=params, headers=d.partner))
        if not page["items"]:
            break
        polled += page["items"]
        cursor = page["next_cursor"]
    received = [Webhook(d.webhook_secret).verify(h.body, h.headers) for h in d.receiver.hits]
    read: dict[str, Any] = {}
    for event in polled + received:
        kind, subject, data = noun(event["type"]), event["subject"], event["data"]
        assert subject["type"] == kind, event
        assert str(uuid.UUID(subject["id"])) == subject["id"], event
        assert subject["href"] == SUBJECTS[kind].href.format(id=subject["id"]), event
        assert SUBJECTS[kind].service == event["source"], event
        if f"{kind}_id" in data:  # decision_id, payment_id, claim_id, project_id...: the subject's own id
            assert data[f"{kind}_id"] == subject["id"], event
        if kind not in ("application", "call", "company", "delegation", "training", "webhook", "engagement", "meeting"):
            assert uuid.UUID(data["application_id"]), event  # the application, for its consumers, is in data
        if subject["href"] not in read:
            read[subject["href"]] = _ok(await services[event["source"]].get(subject["href"], headers=d.officer))
        body = read[subject["href"]]
        # evaluations and fundings are one per application, read by its id
        assert body["application_id" if kind in ("evaluation", "funding") else "id"] == subject["id"], event
    nouns = {noun(e["type"]) for e in polled}
    assert {"application", "evaluation", "funding", "decision", "project", "claim", "payment"} <= nouns, nouns
    assert {e["subject"]["type"] for e in polled if e["type"].startswith("decision.")} == {"decision"}
    assert {e["id"] for e in received} <= {e["id"] for e in polled}, "a webhook's event is polled alike"
