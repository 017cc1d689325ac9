"""The Python clients partners generate (openapi-python-client) from the three committed documents: generated with
no warning, and driving a grant's lifecycle over real HTTP against the three services on loopback.

The generator reads tests/e2e/openapi-python-client.yaml (non-JSON media are bytes). Each client is generated once
per session into a temporary directory, under a name unique to the document's content, and its output captured.
The lifecycle mirrors tests/e2e/ts/lifecycle.ts, through the three Python clients: the partner registers a
company, drafts, checks, submits and reads its receipt; the officer reads the evaluation, two reviewers score,
the officer computes the funding, allocates, decrees (four eyes), the partner accepts, and at monitoring the
advance is paid (four eyes, after the partner's IBAN is confirmed) and the partner opens its final claim.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import random
import shutil
import subprocess
import sys
import typing
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.examples import company_body, draft_body, vat_number
from shared.settings import REPO_ROOT
from tests.e2e.harness import (
    evaluation_server,
    intake_server,
    running_worker,
    settle_deliveries,
    wait_for,
    worker_settings,
)
from tests.e2e.test_grant_lifecycle import (
    ADVANCE,
    BUDGET,
    ELIGIBLE,
    GRANT,
    IBAN,
    LOAN,
    SECRET,
    _call_with_budget,
    _close_window,
    _grid,
    _officers,
    claim_lines,
    monitoring_server,
    today,
)
from tests.factories import stamp_duty_body

SERVICES = ("intake", "evaluation", "monitoring")
CONFIG = REPO_ROOT / "tests" / "e2e" / "openapi-python-client.yaml"
GENERATE_TIMEOUT = 120
OPTIONS = ("--meta", "none", "--config", str(CONFIG))  # the generated code is formatted with our ruff


class Generated(typing.NamedTuple):
    package: ModuleType
    output: str


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Generated]]:
    """The three generated client packages, imported, with what the generator printed."""
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator, "openapi-python-client is a dev dependency: pip install -e .[dev]"
    root = tmp_path_factory.mktemp("clients")
    sys.path.insert(0, str(root))
    got: dict[str, Generated] = {}
    try:
        for service in SERVICES:
            document = REPO_ROOT / "openapi" / f"{service}.json"
            name = f"generated_{service}_client_{hashlib.sha256(document.read_bytes()).hexdigest()[:12]}"
            done = subprocess.run(
                [generator, "generate", "--path", str(document), "--output-path", str(root / name), *OPTIONS],
                capture_output=True,
                text=True,
                timeout=GENERATE_TIMEOUT,
                env={**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
            )
            assert done.returncode == 0, done.stdout + done.stderr
            got[service] = Generated(importlib.import_module(name), done.stdout + done.stderr)
        yield got
    finally:
        sys.path.remove(str(root))
        for service in got.values():
            name = service.package.__name__
            for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[module]


def _warnings(output: str) -> list[str]:
    """The generator's complaints, one per line (it prints "Warning(s) encountered" and then the details)."""
    words = ("warning", "unable", "could not", "cannot", "failure")
    return [line for line in output.splitlines() if any(w in line.lower() for w in words)]


@pytest.mark.parametrize("service", SERVICES)
def test_the_python_client_is_generated_without_warnings(generated, service):
    assert _warnings(generated[service].output) == [], generated[service].output


# ---------------------------------------------------------------- calling a generated client


async def _call(
    pkg: ModuleType, op: str, client: Any, *args: Any, status: int, body: Any = None, etag: str | None = None
) -> Any:
    """`op` ("tag.operation_id") on `client`; `body` (a dict) becomes the operation's body model; `etag` goes in
    If-Match. Returns the response (parsed model in `.parsed`) after checking its status."""
    module = importlib.import_module(f"{pkg.__name__}.api.{op}")
    if etag is not None:
        client = client.with_headers({"If-Match": etag})
    kwargs: dict[str, Any] = {}
    if body is not None:
        hint = typing.get_type_hints(module._get_kwargs)["body"]
        (model,) = [t for t in typing.get_args(hint) or (hint,) if hasattr(t, "from_dict")]  # X, or X | Unset
        kwargs["body"] = model.from_dict(body)
    r = await module.asyncio_detailed(*args, client=client, **kwargs)
    assert r.status_code == status, (op, r.status_code, r.content[:2000])
    return r


async def _token(pkg: ModuleType, base: str, client_id: str, secret: str) -> Any:
    r = await _call(
        pkg,
        "oauth.oauth_token",
        pkg.Client(base_url=base),
        status=200,
        body={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    return pkg.AuthenticatedClient(base_url=base, token=r.parsed.access_token)


@pytest_asyncio.fixture(loop_scope="session")
async def desk(engine: AsyncEngine, tmp_path_factory: Any) -> AsyncIterator[dict[str, Any]]:
    """The three services on loopback with the worker; a call with room for the aid; four officers' API clients."""
    await settle_deliveries(engine)
    call_id = await _call_with_budget(engine, BUDGET)
    officers = await _officers(engine, 4)
    intake = intake_server(engine)
    evaluation, evaluation_intake = evaluation_server(engine, intake.url)
    monitoring, peers = monitoring_server(engine, intake.url, evaluation.url, tmp_path_factory.mktemp("evidence"))
    servers = [intake, evaluation, monitoring]
    for server in servers:
        await server.start()
    try:
        async with running_worker(
            engine, worker_settings(evaluation_url=evaluation.url, monitoring_url=monitoring.url)
        ):
            yield {"call_id": call_id, "officers": officers, "urls": [s.url for s in servers]}
    finally:
        for server in reversed(servers):
            await server.stop()
        await evaluation_intake.aclose()
        for peer in peers:
            await peer.aclose()


async def test_python_clients_drive_a_grant_from_submission_to_payment_and_claim(generated, desk, engine):
    ip, ep, mp = (generated[s].package for s in SERVICES)
    iu, eu, mu = desk["urls"]
    officer_id, second_id, *reviewer_ids = desk["officers"]
    call_id = desk["call_id"]
    officer_in = await _token(ip, iu, officer_id, SECRET)
    officer_ev = await _token(ep, eu, officer_id, SECRET)
    officer_mo = await _token(mp, mu, officer_id, SECRET)

    # the partner: registered by the officer, then company, draft, check, submit, receipt
    partner = (
        await _call(
            ip,
            "partners.partners_create_partner",
            officer_in,
            status=201,
            body={"name": "Camera di Commercio di Como", "kind": "chamber_of_commerce", "fiscal_code": vat_number()},
        )
    ).parsed
    creds = (
        await _call(
            ip, "partners.partners_create_partner_client", officer_in, partner.id, status=201, body={"name": "CRM"}
        )
    ).parsed
    me_in = await _token(ip, iu, creds.client_id, creds.client_secret)
    company = (await _call(ip, "companies.companies_create_company", me_in, status=201, body=company_body())).parsed
    draft = (
        await _call(
            ip,
            "applications.applications_create_application",
            me_in,
            status=201,
            body=draft_body(call_id, company.id),
        )
    ).parsed
    await _call(ip, "applications.applications_declare_stamp_duty", me_in, draft.id, status=200, body=stamp_duty_body())
    check = (await _call(ip, "applications.applications_check_application", me_in, draft.id, status=200)).parsed
    assert check.submittable is True, check.problems
    submitted = (await _call(ip, "applications.applications_submit_application", me_in, draft.id, status=201)).parsed
    receipt = (await _call(ip, "applications.applications_get_receipt", me_in, draft.id, status=200)).parsed
    assert submitted.receipt.protocol_number == receipt.receipt.protocol_number == 1

    # evaluation: admissible by itself once the worker brings the submission
    get_evaluation = importlib.import_module(f"{ep.__name__}.api.evaluations.evaluations_get_evaluation")

    async def admissible() -> Any:
        r = await get_evaluation.asyncio_detailed(draft.id, client=officer_ev)
        return r.parsed if r.status_code == 200 and r.parsed.stage != "received" else None

    evaluation = await wait_for(admissible, within=30, what="the admissibility")
    assert evaluation.stage == "admissible" and Decimal(evaluation.eligible_total) == ELIGIBLE
    grid = {k: {"points": v, "comment": "Motivazione del punteggio."} for k, v in _grid(24, 16, 16, 16, 8).items()}
    for reviewer_id in reviewer_ids:
        reviewer = await _token(ep, eu, reviewer_id, SECRET)
        r = await _call(
            ep, "merit.merit_assign_reviewer", officer_ev, draft.id, status=201, body={"reviewer": reviewer_id}
        )
        assignment = r.parsed.id
        r = await _call(
            ep,
            "merit.merit_declare",
            reviewer,
            assignment,
            status=200,
            body={"no_conflict": True, "statement": "Nessun rapporto con l'impresa."},
            etag=r.headers["ETag"],
        )
        r = await _call(
            ep,
            "merit.merit_save_review",
            reviewer,
            assignment,
            status=200,
            body={"scores": grid},
            etag=r.headers["ETag"],
        )
        await _call(ep, "merit.merit_submit_review", reviewer, assignment, status=200, etag=r.headers["ETag"])
    merit = (await _call(ep, "merit.merit_get_merit", officer_ev, draft.id, status=200)).parsed
    assert merit.merit_verdict == "passed" and Decimal(merit.score) == Decimal("80.00")
    r = await _call(
        ep, "merit.merit_set_credit_class", officer_ev, draft.id, status=200, body={"class_code": "1"}, etag=merit.etag
    )
    funded = (
        await _call(
            # an empty body: the generated function sends UNSET as JSON when the (optional, nullable) body is left out
            ep,
            "evaluations.evaluations_compute_funding",
            officer_ev,
            draft.id,
            status=200,
            body={},
            etag=r.headers["ETag"],
        )
    ).parsed
    assert funded.stage == "evaluated" and (Decimal(funded.grant), Decimal(funded.loan)) == (GRANT, LOAN)

    # the officer: allocation once the window has closed, a decree, its decision, CUP and COR, four-eyes close
    await _close_window(engine, call_id)
    allocation = (await _call(ep, "budget.budget_allocate_budget", officer_ev, call_id, status=200)).parsed
    assert (allocation.funded, allocation.waiting) == (1, 0)
    decree = (
        await _call(
            ep,
            "decrees.decrees_create_decree",
            officer_ev,
            status=201,
            body={
                "call_id": str(call_id),
                "number": f"PY-{uuid.uuid4().hex[:8]}/{today().year}",
                "decree_date": today().isoformat(),
            },
        )
    ).parsed
    batch = (
        await _call(
            ep,
            "decrees.decrees_add_decisions",
            officer_ev,
            decree.id,
            status=201,
            body={"all_pending": True},
            etag=decree.etag,
        )
    ).parsed
    (decision,) = [d for d in batch.created if d.application_id == draft.id]
    assert decision.outcome == "funded"
    cup = f"E{random.randint(10, 99)}D{random.randrange(10**11):011d}"
    r = await _call(
        ep,
        "decisions.decisions_set_decision_cup",
        officer_ev,
        decision.id,
        status=200,
        body={"cup": cup},
        etag=decision.etag,
    )
    cor = str(random.randrange(10**9))
    await _call(
        ep,
        "decisions.decisions_set_decision_cor",
        officer_ev,
        decision.id,
        status=200,
        body={"cor": cor},
        etag=r.headers["ETag"],
    )
    await _call(ep, "decrees.decrees_close_decree", officer_ev, decree.id, status=202, etag=batch.decree.etag)
    second_ev = await _token(ep, eu, second_id, SECRET)
    closed = (
        await _call(
            ep, "decrees.decrees_confirm_close_decree", second_ev, decree.id, status=200, etag=batch.decree.etag
        )
    ).parsed
    assert closed.status == "closed"

    # the partner reads its decision and accepts it
    me_ev = await _token(ep, eu, creds.client_id, creds.client_secret)
    issued = (await _call(ep, "decisions.decisions_get_decision", me_ev, decision.id, status=200)).parsed
    accepted = (
        await _call(ep, "decisions.decisions_accept_decision", me_ev, decision.id, status=200, etag=issued.etag)
    ).parsed
    assert accepted.status == "accepted"

    # monitoring: the project and its advance; the partner's IBAN confirmed; the advance paid under four eyes
    list_projects = importlib.import_module(f"{mp.__name__}.api.projects.projects_list_projects")

    async def started() -> Any:
        r = await list_projects.asyncio_detailed(client=officer_mo, company_id=company.id)
        return r.parsed.items[0] if r.status_code == 200 and r.parsed.items else None

    project = await wait_for(started, within=30, what="the project")
    assert (project.cup, project.cor, project.status) == (cup, cor, "active")
    me_mo = await _token(mp, mu, creds.client_id, creds.client_secret)
    r = await _call(mp, "projects.projects_get_project", me_mo, project.id, status=200)
    change = (
        await _call(
            mp,
            "projects.projects_set_project_iban",
            me_mo,
            project.id,
            status=202,
            body={"iban": IBAN, "holder": {"name": company.name, "tax_code": company.vat_number}},
            etag=r.headers["ETag"],
        )
    ).parsed
    await _call(
        mp, "projects.projects_confirm_iban_change", officer_mo, project.id, change.id, status=200, etag=change.etag
    )
    list_payments = importlib.import_module(f"{mp.__name__}.api.payments.payments_list_payments")
    (advance,) = (await list_payments.asyncio_detailed(client=officer_mo, project_id=project.id)).parsed.items
    advance = (await _call(mp, "payments.payments_get_payment", officer_mo, advance.id, status=200)).parsed
    assert advance.iban == IBAN and Decimal(advance.amount) == ADVANCE
    second_mo = await _token(mp, mu, second_id, SECRET)
    await _call(mp, "payments.payments_confirm_payment_order", second_mo, advance.id, status=200, etag=advance.etag)
    paid = (
        await _call(mp, "payments.payments_mark_payment_paid", officer_mo, advance.id, status=200, etag=advance.etag)
    ).parsed
    assert paid.status == "paid"

    # the partner files its final claim: opened, a line added
    r = await _call(mp, "claims.claims_create_claim", me_mo, project.id, status=201, body={"kind": "final"})
    claim = r.parsed
    line = (
        await _call(
            mp,
            "claims.claims_add_claim_line",
            me_mo,
            claim.id,
            status=201,
            body=claim_lines()[0],
            etag=r.headers["ETag"],
        )
    ).parsed
    assert claim.kind == "final" and Decimal(line.taxable_amount) == Decimal("10000.00")
