"""Use cases of admissibility: the automatic run when a submission arrives, an officer's review of a
check that needs one, and the evaluation as a caller may read it.

The rules are ``shared.domain.admissibility`` (no rule is re-implemented here): this module fetches the
facts from intake's API, calls it, and stores every check with its article, the cuts and the eligible
total after the cuts. The run happens in the transaction that stores the received application, and the
evaluation's primary key is the application's id: a redelivered event or a resumed run never makes a
second evaluation, and a run interrupted half-way leaves nothing behind (the whole transaction, inbox
row included, rolls back and the next delivery starts over).

The credit-scoring class is assigned later, in the merit evaluation; until then the domain's
``credit_class`` check can only ask for a review. It is stored as ``deferred`` and left out of the
verdict: the funding computation applies the class (and refuses to run without one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.admissibility import repository
from services.evaluation.merit.service import verdict_out
from services.evaluation.models import Evaluation, ReceivedApplication
from services.evaluation.rule_inputs import (
    company_facts,
    draft_facts,
    line_suppliers,
    member_draft_facts,
    related_vats,
    single_undertaking,
    suppliers_of,
)
from services.evaluation.rules import rules_of_application, rules_of_call
from shared.access import can_reach_company, notified_partner
from shared.audit import event_params, record_audit, record_audits, record_event, record_events
from shared.auth import Principal
from shared.clients.base import NotFoundAtPeer, PeerError, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.contracts.applications import ApplicationOut
from shared.contracts.companies import CompanyOut
from shared.domain.admissibility import Admissibility, CheckOutcome, admissibility
from shared.domain.call_rules import CallRules
from shared.domain.formalities import admissibility_gate
from shared.domain.funding import compute_aid
from shared.domain.money import ZERO, eur_en, eur_it
from shared.domain.network import member_path, network_limits
from shared.errors import PEER_UNAVAILABLE, Conflict, DeskError, NotFound, ProblemError, ValidationFailed
from shared.i18n import Lang
from shared.routing import Actor, etag_of

DEFERRED = "deferred"
CREDIT_CLASS_CHECK = "credit_class"
#: the check a missing signed form fails once its deadline has passed (the reason the application is not admissible)
SIGNATURE_MISSING_CHECK = "signed_form_missing"
_DEFERRED_IT = (
    "La classe di merito creditizio è attribuita nella valutazione di merito: il calcolo del "
    "finanziamento la applica al massimale del prestito."
)
_DEFERRED_EN = (
    "The credit-scoring class is assigned in the merit evaluation: the funding computation applies it to the loan cap."
)


# ---------------------------------------------------------------- intake


@contextmanager
def intake_errors(what_it: str, what_en: str, *, field: tuple[str, str] | None = None) -> Iterator[None]:
    """What intake's answer means for our caller. Intake unreachable, or failing (5xx) after the client's retries
    -> 503 (retry later, nothing kept). Intake has no such resource -> 409 when a record of ours points at it, or
    404 when the caller named it (`field`: where in the caller's request, as (location, JSON pointer)); intake
    refuses the identifier the caller gave (400, 422) -> 422 on that field. A refusal is not an outage."""
    try:
        yield
    except PeerUnavailable as exc:
        if exc.status is None:
            detail = (
                "Il servizio intake non risponde: riprovare più tardi.",
                "The intake service is unreachable: retry later.",
            )
        else:
            detail = (
                f"Il servizio intake ha risposto con un errore (HTTP {exc.status}): riprovare più tardi.",
                f"The intake service answered with an error (HTTP {exc.status}): retry later.",
            )
        raise DeskError(
            *detail,
            kind=PEER_UNAVAILABLE,
            headers={"Retry-After": "30"},
            extra={"peer": exc.peer, "peer_status": exc.status},
        ) from exc
    except NotFoundAtPeer as exc:
        if field is not None:
            raise NotFound(f"{what_it} non esiste.", f"{what_en} does not exist.") from exc
        raise Conflict(f"{what_it} non esiste presso intake.", f"{what_en} is unknown to intake.") from exc
    except PeerError as exc:
        if field is None or exc.status not in (400, 422):  # not about the identifier (e.g. our token): ours to explain
            raise
        location, path = field
        codes = [e.get("code") for e in (exc.problem or {}).get("errors") or [] if isinstance(e, dict)]
        code = next((c for c in codes if isinstance(c, str)), "value_error")
        raise ValidationFailed(
            errors=[
                ProblemError(
                    code,
                    path,
                    f"{what_it}: identificativo non valido (rifiutato da intake, HTTP {exc.status}).",
                    f"{what_en}: invalid identifier (refused by intake, HTTP {exc.status}).",
                    location=location,
                )
            ],
            extra={"peer": exc.peer, "peer_status": exc.status},
        ) from exc


async def fetch_company(
    intake: IntakeClient, company_id: uuid.UUID, known: Mapping[uuid.UUID, CompanyOut] | None = None
) -> CompanyOut:
    """The company as intake serves it: from `known` (a batch's bulk read) when it is there, else one GET."""
    if known is not None and company_id in known:
        return known[company_id]
    with intake_errors(f"L'impresa {company_id}", f"Company {company_id}"):
        return await intake.get_company(company_id)


# ---------------------------------------------------------------- the automatic run


def verdict_of(checks: list[dict[str, Any]]) -> str:
    """The domain's verdict over the stored outcomes (deferred checks left out)."""
    outcomes = {c["outcome"] for c in checks if c["outcome"] != DEFERRED}
    return "not_admissible" if "fail" in outcomes else "needs_review" if "needs_review" in outcomes else "admissible"


def _check_json(c: CheckOutcome, *, credit_class_known: bool) -> dict[str, Any]:
    outcome: str = c.outcome
    it, en = c.detail_it, c.detail_en
    if c.code == CREDIT_CLASS_CHECK and outcome == "needs_review" and not credit_class_known:
        outcome, it, en = DEFERRED, _DEFERRED_IT, _DEFERRED_EN
    return {
        "code": c.code,
        "outcome": outcome,
        "automatic_outcome": outcome,
        "article": c.article,
        "detail_it": it,
        "detail_en": en,
        "review": None,
    }


#: the event every admissibility run (automatic or after a review) publishes
COMPLETED = "evaluation.admissibility_completed"


def _completed_payload(
    *, application_id: uuid.UUID, call_id: uuid.UUID, company_id: uuid.UUID, checks: list[dict[str, Any]], verdict: str
) -> dict[str, Any]:
    """The data of the `evaluation.admissibility_completed` event of an application."""
    return {
        "application_id": str(application_id),
        "call_id": str(call_id),
        "company_id": str(company_id),
        "verdict": verdict,
        "failed_checks": [c["code"] for c in checks if c["outcome"] == "fail"],
        "review_checks": [c["code"] for c in checks if c["outcome"] == "needs_review"],
    }


async def _emit_completed(
    session: AsyncSession,
    actor: Actor,
    *,
    application_id: uuid.UUID,
    call_id: uuid.UUID,
    company_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    checks: list[dict[str, Any]],
    verdict: str,
) -> None:
    await record_event(
        session,
        actor,
        event_type=COMPLETED,
        subject_type="evaluation",
        subject_id=application_id,
        payload=_completed_payload(
            application_id=application_id, call_id=call_id, company_id=company_id, checks=checks, verdict=verdict
        ),
        partner_id=partner_id,
        company_id=company_id,
    )


#: the admissibility checks run on each network member (its company and its own lines); the plan, its markets
#: and timeline are the lead's, the credit class is the application's, and the call's per-application bounds on
#: the eligible total give way to the network's (the `network` check).
MEMBER_CHECKS = (
    "sme_class",
    "ateco",
    "financial_statements",
    "lombardy_site",
    "export_share",
    "eligible_categories",
    "category_caps",
    "new_or_emerging_share",
)
NETWORK_CHECK = "network"


def _network_check(
    rules: CallRules, ok: bool, path: str, code: str, problems: list[Any], article: str, passed: tuple[str, str]
) -> dict[str, Any]:
    it = " ".join(p.message_it for p in problems) or passed[0]  # the problems, else the given explanation
    en = " ".join(p.message_en for p in problems) or passed[1]
    outcome = "pass" if ok else "fail"
    return {
        "code": code,
        "path": path,
        "outcome": outcome,
        "automatic_outcome": outcome,
        "article": rules.article(article),
        "detail_it": it,
        "detail_en": en,
        "review": None,
    }


async def admit_members(
    *,
    intake: IntakeClient,
    rules: CallRules,
    application: ApplicationOut,
    lead: Admissibility,
    today: date,
    companies: Mapping[uuid.UUID, CompanyOut] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """A network's members, each by the same rules as an applicant (its own company and lines; paths under
    /network/members/{i}), and the network's limits: the checks, the cuts, and what is kept of each member."""
    network = application.network
    if network is None:
        return [], [], None
    checks: list[dict[str, Any]] = []
    cuts: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    aid = lead.estimate.total_aid if lead.estimate is not None else ZERO
    eligible = lead.breakdown.total if lead.breakdown is not None else ZERO
    for i, member in enumerate(network.members):
        path = member_path(i)
        company = await fetch_company(intake, member.company_id, companies)
        result = admissibility(
            rules,
            company_facts(company),
            member_draft_facts(application, member),
            today=today,
            related_vats=related_vats(company),
            line_suppliers=suppliers_of(member.expense_lines),
        )
        checks.extend(
            {**_check_json(c, credit_class_known=True), "path": path} for c in result.checks if c.code in MEMBER_CHECKS
        )
        cuts.extend({**_cut_json(c), "path": path + c.path} for c in result.cuts)
        total = result.breakdown.total if result.breakdown is not None else ZERO
        if total <= 0:
            checks.append(
                _network_check(
                    rules,
                    False,
                    path,
                    "network_member_expenses",
                    [],
                    "expenses",
                    (
                        "Il membro della rete non ha spese ammissibili proprie dopo i tagli.",
                        "The network member has no eligible expenses of its own after the cuts.",
                    ),
                )
            )
        eligible += total
        aid += compute_aid(rules, total).total_aid
        members.append(
            {
                "company_id": str(member.company_id),
                "vat_number": company.vat_number,
                "name": company.name,
                "undertaking": single_undertaking(company),
                "eligible_total": str(total),
            }
        )
    limits = network_limits(rules, members=len(network.members), eligible_total=eligible, total_aid=aid)
    checks.append(
        _network_check(
            rules,
            not limits,
            "/network",
            NETWORK_CHECK,
            limits,
            "applicants",
            (
                f"La rete ({len(network.members)} membri oltre al capofila, spese ammissibili "
                f"{eur_it(eligible)}) rispetta "
                "i limiti del bando.",
                f"The network ({len(network.members)} members besides the lead, eligible expenses {eur_en(eligible)}) "
                "respects the call's limits.",
            ),
        )
    )
    lead_total = lead.breakdown.total if lead.breakdown is not None else ZERO
    return (
        checks,
        cuts,
        {
            "name": network.name,
            "members": members,
            "eligible_total": str(eligible),
            "lead": {"company_id": str(application.company_id), "eligible_total": str(lead_total)},
        },
    )


def _cut_json(c: Any) -> dict[str, Any]:
    return {
        "path": c.path,
        "category": c.category,
        "requested": str(c.requested),
        "allowed": str(c.allowed),
        "reasons": list(c.reasons),
        "detail_it": c.detail_it,
        "detail_en": c.detail_en,
    }


def _signature_missing(rules: CallRules, deadline: datetime | None) -> dict[str, Any]:
    when = deadline.isoformat() if deadline is not None else ""
    return {
        "code": SIGNATURE_MISSING_CHECK,
        "outcome": "fail",
        "automatic_outcome": "fail",
        "article": rules.article("submission"),
        "detail_it": f"La domanda firmata dal legale rappresentante non è arrivata entro il termine ({when}).",
        "detail_en": f"The form signed by the legal representative did not arrive by the deadline ({when}).",
        "review": None,
    }


async def _await_signature(
    session: AsyncSession, actor: Actor, application: ApplicationOut, deadline: datetime | None
) -> bool:
    values = {
        "application_id": application.id,
        "call_id": application.call_id,
        "stage": repository.AWAITING_SIGNATURE,
        "admissibility_verdict": None,
        "admissibility_checks": [],
        "cuts": [],
        "eligible_total": None,
        "network": None,
        "version": 1,
    }
    if not await repository.insert_evaluation(session, values, replace_awaiting=False):
        return False
    await record_audit(
        session,
        actor,
        action="evaluation.awaiting_signature",
        resource_type="evaluation",
        resource_id=application.id,
        after={"stage": repository.AWAITING_SIGNATURE, "deadline": deadline.isoformat() if deadline else None},
    )
    return True


def _lead(
    rules: CallRules, application: ApplicationOut, company: CompanyOut, today: date
) -> tuple[Admissibility, list[dict[str, Any]], list[dict[str, Any]]]:
    """The applicant's own admissibility (the domain's result) with its checks and cuts as stored."""
    facts = company_facts(company)
    result = admissibility(
        rules,
        facts,
        draft_facts(application),
        today=today,
        related_vats=related_vats(company),
        line_suppliers=line_suppliers(application),
    )
    checks = [_check_json(c, credit_class_known=facts.credit_class is not None) for c in result.checks]
    return result, checks, [_cut_json(c) for c in result.cuts]


def _run_records(
    rules: CallRules,
    application: ApplicationOut,
    company: CompanyOut,
    result: Admissibility,
    checks: list[dict[str, Any]],
    cuts: list[dict[str, Any]],
    network: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an automatic run stores: the evaluation's row and its audit record (as `record_audit`'s keywords)."""
    verdict = verdict_of(checks)
    eligible = result.breakdown.total if result.breakdown is not None else None
    values = {
        "application_id": application.id,
        "call_id": application.call_id,
        "stage": verdict,
        "admissibility_verdict": verdict,
        "admissibility_checks": checks,
        "cuts": cuts,
        "eligible_total": eligible,
        "network": network,
        "version": 1,
    }
    audit = {
        "action": "evaluation.admissibility_run",
        "resource_type": "evaluation",
        "resource_id": application.id,
        "after": {
            "stage": verdict,
            "verdict": verdict,
            "eligible_total": eligible,
            "checks": {c.get("path", "") + c["code"]: c["outcome"] for c in checks},
            "cuts": [{k: c[k] for k in ("path", "category", "requested", "allowed")} for c in cuts],
            "rules": rules.code,
            "company_size_class": company.size_class,
        },
    }
    return values, audit


async def run_admissibility(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    application: ApplicationOut,
    companies: Mapping[uuid.UUID, CompanyOut] | None = None,
) -> bool:
    """Evaluate the admissibility of a just-received application; False if it already has an evaluation.
    `companies`: the applicant's and members' companies when a batch read them already.

    When its call requires the legal representative's signed form (shared.domain.formalities) and that has not
    arrived, the evaluation is stored as `awaiting_signature`, with no verdict: the `application.form_signed`
    event runs it again. Past the signing deadline without it, the `signed_form_missing` check fails."""
    assert application.submitted_at is not None
    rules = await rules_of_application(intake, application)  # the version it was submitted under
    gate = admissibility_gate(
        rules, submitted_at=application.submitted_at, form_signed_at=application.form_signed_at, now=datetime.now(UTC)
    )
    if gate.state == "awaiting_signature":
        return await _await_signature(session, actor, application, gate.deadline)
    company = await fetch_company(intake, application.company_id, companies)
    today = application.submitted_at.astimezone(rules.tz).date()
    result, checks, cuts = _lead(rules, application, company, today)
    member_checks, member_cuts, network = await admit_members(
        intake=intake, rules=rules, application=application, lead=result, today=today, companies=companies
    )
    checks.extend(member_checks)
    cuts.extend(member_cuts)
    if gate.state == "signature_missing":
        checks.append(_signature_missing(rules, gate.deadline))
    values, audit = _run_records(rules, application, company, result, checks, cuts, network)
    if not await repository.insert_evaluation(session, values):
        return False
    await record_audit(session, actor, **audit)
    await _emit_completed(
        session,
        actor,
        application_id=application.id,
        call_id=application.call_id,
        company_id=application.company_id,
        partner_id=await notified_partner(session, application.company_id, application.partner_id),
        checks=checks,
        verdict=values["stage"],
    )
    return True


async def run_admissibility_batch(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    applications: Sequence[tuple[ApplicationOut, CompanyOut, uuid.UUID | None]],
) -> set[uuid.UUID]:
    """`run_admissibility` for many just-received applications at once, each given with its company and the
    partner its events notify: one INSERT for their evaluations, one statement for their audit records, one for
    their `evaluation.admissibility_completed` events. Only the common case is run here: an application of a
    network, or one whose call waits for (or has given up waiting for) the signed form, is left to
    `run_admissibility`. Returns the ids evaluated now (one that has an evaluation already is not)."""
    now = datetime.now(UTC)
    runs: list[tuple[ApplicationOut, uuid.UUID | None, dict[str, Any], dict[str, Any]]] = []
    for application, company, partner_id in applications:
        assert application.submitted_at is not None
        if application.network is not None:
            continue
        rules = await rules_of_application(intake, application)
        gate = admissibility_gate(
            rules, submitted_at=application.submitted_at, form_signed_at=application.form_signed_at, now=now
        )
        if gate.state != "run":
            continue
        today = application.submitted_at.astimezone(rules.tz).date()
        result, checks, cuts = _lead(rules, application, company, today)
        values, audit = _run_records(rules, application, company, result, checks, cuts, None)
        runs.append((application, partner_id, values, audit))
    if not runs:
        return set()
    stored = await repository.insert_evaluations(session, [values for _a, _p, values, _r in runs])
    runs = [run for run in runs if run[0].id in stored]
    await record_audits(session, actor, [audit for _a, _p, _v, audit in runs])
    await record_events(
        session,
        [
            event_params(
                actor,
                event_type=COMPLETED,
                subject_type="evaluation",
                subject_id=a.id,
                payload=_completed_payload(
                    application_id=a.id,
                    call_id=a.call_id,
                    company_id=a.company_id,
                    checks=v["admissibility_checks"],
                    verdict=v["stage"],
                ),
                partner_id=p,
                company_id=a.company_id,
            )
            for a, p, v, _r in runs
        ],
    )
    return stored


async def settle_signature_deadlines(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, call_id: uuid.UUID
) -> dict[str, Any]:
    """Run admissibility for the call's evaluations awaiting the signed form whose deadline has passed (not
    admissible: `signed_form_missing`) or whose form was accepted meanwhile (its event still on its way); the
    others keep waiting. Intake's copy of each application says which."""
    await rules_of_call(intake, call_id, call_in_path=True)  # an unknown call is a 404, as for its allocation
    evaluated: list[uuid.UUID] = []
    waiting: list[uuid.UUID] = []
    now = datetime.now(UTC)
    for application_id in await repository.awaiting_signature(session, call_id):
        with intake_errors(f"La domanda {application_id}", f"Application {application_id}"):
            snapshot = await intake.get_application(application_id)
        assert snapshot.submitted_at is not None
        rules = await rules_of_application(intake, snapshot)
        gate = admissibility_gate(
            rules, submitted_at=snapshot.submitted_at, form_signed_at=snapshot.form_signed_at, now=now
        )
        if gate.state == "awaiting_signature" or snapshot.status != "submitted":
            waiting.append(application_id)
            continue
        await run_admissibility(session=session, actor=actor, intake=intake, application=snapshot)
        evaluated.append(application_id)
    return {"call_id": call_id, "evaluated": evaluated, "awaiting_signature": waiting}


# ---------------------------------------------------------------- reading


async def get_visible(
    session: AsyncSession, principal: Principal, application_id: uuid.UUID, *, for_update: bool = False
) -> tuple[Evaluation, ReceivedApplication]:
    """The evaluation if the caller reaches the application's company (shared.access: officers, auditors and
    services all; a company its own; a partner while it acts for the company). Anything else is 404."""
    found = await repository.get_with_application(session, application_id, for_update=for_update)
    if found is None:
        raise NotFound()
    evaluation, app = found
    if not await can_reach_company(session, principal, app.company_id):
        raise NotFound()
    return evaluation, app


def _explained(d: dict[str, Any], lang: Lang) -> dict[str, Any]:
    return {**d, "detail": d["detail_it"] if lang == "it" else d["detail_en"]}


def check_out(c: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """A stored check as the desk's verdict item (stored with detail_it/detail_en: the decisions quote them)."""
    return {
        "code": c["code"],
        "outcome": c["outcome"],
        "blocking": c["outcome"] == "fail",
        "path": c.get("path"),
        "article": c.get("article"),
        "message": c["detail_it"] if lang == "it" else c["detail_en"],
        "message_it": c["detail_it"],
        "message_en": c["detail_en"],
        "details": {},
        "automatic_outcome": c.get("automatic_outcome", c["outcome"]),
        "review": c.get("review"),
    }


async def score_shown(session: AsyncSession, principal: Principal, call_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """The calls whose merit scores the principal may see: every call for officers, auditors and services; for
    a partner or a company, only the calls whose ranking has been published (until then a score would tell an
    applicant where it stands before the others are scored)."""
    if principal.reads_everything:
        return call_ids
    return await repository.ranked_calls(session, call_ids)


def to_out(evaluation: Evaluation, app: ReceivedApplication, lang: Lang, *, show_score: bool = True) -> dict[str, Any]:
    funding = evaluation.funding
    de_minimis = evaluation.de_minimis
    return {
        "application_id": evaluation.application_id,
        "call_id": evaluation.call_id,
        "company_id": app.company_id,
        "protocol_number": app.protocol_number,
        "stage": evaluation.stage,
        "admissibility_verdict": evaluation.admissibility_verdict,
        "checks": [check_out(c, lang) for c in evaluation.admissibility_checks],
        "cuts": [_explained(c, lang) for c in evaluation.cuts],
        "eligible_total": evaluation.eligible_total,
        "credit_class": evaluation.credit_class,
        "score": evaluation.score if show_score else None,
        "merit_verdict": verdict_out(evaluation.merit_verdict) if show_score else None,
        "grant": evaluation.grant,
        "loan": evaluation.loan,
        "loan_gge": evaluation.loan_gge,
        "funding": None
        if funding is None
        else {**funding, "steps": [_explained(s, lang) for s in funding.get("steps", [])]},
        "de_minimis": None
        if de_minimis is None
        else {**de_minimis, "steps": [_explained(s, lang) for s in de_minimis.get("steps", [])]},
        "network": evaluation.network,
        "updated_at": evaluation.updated_at,
        "etag": etag_of(evaluation.version),
    }


# ---------------------------------------------------------------- officers' reviews


async def review_check(
    *,
    session: AsyncSession,
    actor: Actor,
    evaluation: Evaluation,
    app: ReceivedApplication,
    check_code: str,
    outcome: str,
    note: str,
    path: str | None = None,
) -> Evaluation:
    """An officer settles a check that needs a review; the verdict is recomputed (all pass -> admissible,
    any fail -> not_admissible)."""
    if evaluation.stage != "needs_review":
        raise Conflict(
            "La domanda non ha verifiche in attesa di revisione.",
            "The application has no check awaiting a review.",
            extra={"reason": "no_review_pending", "stage": evaluation.stage},
        )
    checks = [dict(c) for c in evaluation.admissibility_checks]
    target = next((c for c in checks if c["code"] == check_code and c.get("path") == path), None)
    if target is None:
        known = sorted({c["code"] for c in checks if c.get("path") == path})
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "check_unknown",
                    "/check_code",
                    f"Verifica '{check_code}' sconosciuta.",
                    f"Unknown check '{check_code}'.",
                    extra={"allowed": known},
                )
            ]
        )
    if target["outcome"] != "needs_review":
        raise Conflict(
            f"La verifica {check_code} non è in attesa di revisione (esito {target['outcome']}).",
            f"Check {check_code} is not awaiting a review (outcome {target['outcome']}).",
            extra={"reason": "check_not_under_review", "outcome": target["outcome"]},
        )
    now = datetime.now(UTC)
    before = {
        "stage": evaluation.stage,
        "verdict": evaluation.admissibility_verdict,
        "check": dict(target),
        "version": evaluation.version,
    }
    target["outcome"] = outcome
    target["review"] = {
        "outcome": outcome,
        "note": note,
        "reviewer": actor.principal.client_id,
        "reviewed_at": now.isoformat(),
    }
    verdict = verdict_of(checks)
    evaluation.admissibility_checks = checks
    evaluation.admissibility_verdict = verdict
    evaluation.stage = verdict
    evaluation.version += 1
    evaluation.updated_at = now
    await session.flush()
    await record_audit(
        session,
        actor,
        action="evaluation.admissibility_reviewed",
        resource_type="evaluation",
        resource_id=evaluation.application_id,
        before=before,
        after={"stage": verdict, "verdict": verdict, "check": target, "version": evaluation.version},
    )
    await _emit_completed(
        session,
        actor,
        application_id=evaluation.application_id,
        call_id=evaluation.call_id,
        company_id=app.company_id,
        partner_id=app.partner_id,
        checks=checks,
        verdict=verdict,
    )
    return evaluation
