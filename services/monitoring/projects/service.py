"""Use cases of projects: start one from an accepted decision (with its advance), the officer's extension and
Lombardy-site check, the loan's repayment plan, and the outcome (full aid, proportional reduction, revocation
with recovery) with the freed budget given back to evaluation. The beneficiary's account is `iban`'s.

Rules come from the call's document through intake (`peers.rules_of_call`); the arithmetic is
`shared.domain.reporting`'s. Services flush, never commit: the route's unit of work does.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.inbox import facts
from services.monitoring.inbox.registry import InboxContext, event_data, register_handler
from services.monitoring.models import Project
from services.monitoring.payments import service as payments
from services.monitoring.peers import fetch_application, fetch_company, release_budget, rules_of_call
from services.monitoring.projects import repository
from shared.access import notified_partner
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.clients.evaluation import EvaluationClient
from shared.clients.intake import IntakeClient
from shared.domain.call_rules import CallRules
from shared.domain.funding import repayment_plan
from shared.domain.money import ZERO
from shared.domain.recovery import LEGAL_INTEREST_RATES, outstanding_capital, recovery, years_needing_a_rate
from shared.domain.reporting import Outcome, add_months, advance_amount, decide_outcome, revocation
from shared.domain.results import follow_up_schedule, follow_up_until
from shared.errors import Conflict, NotFound, ProblemError, ValidationFailed
from shared.events.catalogue import CompanyDelegationChanged, DecisionAccepted, Envelope
from shared.routing import Actor, etag_of

log = structlog.get_logger("monitoring.projects")

PERIODS_PER_YEAR = 2  # half-yearly installments, as evaluation's funding computation


def to_out(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "application_id": p.application_id,
        "decision_id": p.decision_id,
        "call_id": p.call_id,
        "company_id": p.company_id,
        "partner_id": p.partner_id,
        "cup": p.cup,
        "cor": p.cor,
        "decree_number": p.decree_number,
        "decree_date": p.decree_date,
        "status": p.status,
        "grant": p.grant,
        "loan": p.loan,
        "eligible_total": p.eligible_total,
        "approved_budget": p.approved_budget,
        "timeline": p.timeline,
        "kpis": p.kpis,
        "start_date": p.start_date,
        "deadline": p.deadline,
        "extension_granted": p.extension_granted,
        "lombardy_site_verified": p.lombardy_site_verified,
        "iban": p.iban,
        "iban_holder": None
        if p.iban_holder_tax_code is None
        else {"name": p.iban_holder_name, "tax_code": p.iban_holder_tax_code},
        "final_grant": p.final_grant,
        "final_loan": p.final_loan,
        "outcome": p.outcome,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "etag": etag_of(p.version),
    }


def _view(p: Project) -> dict[str, Any]:
    return {
        "status": p.status,
        "deadline": p.deadline,
        "extension_granted": p.extension_granted,
        "lombardy_site_verified": p.lombardy_site_verified,
        "iban": p.iban,
        "final_grant": p.final_grant,
        "final_loan": p.final_loan,
        "version": p.version,
    }


async def _touch(session: AsyncSession, p: Project) -> None:
    p.version += 1
    p.updated_at = datetime.now(UTC)
    await session.flush()


async def get_readable(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, *, for_update: bool = False
) -> Project:
    project = await repository.get(session, project_id, principal, for_update=for_update)
    if project is None:
        raise NotFound()
    return project


def _require_active(p: Project) -> None:
    if p.status != "active":
        raise Conflict(
            f"Il progetto non è in corso (stato {p.status}).",
            f"The project is not active ({p.status}).",
            extra={"project_status": p.status},
        )


# ---------------------------------------------------------------- start, from decision.accepted


def _approved_lines(data: DecisionAccepted) -> list[dict[str, Any]]:
    budget = data.approved_budget
    return [
        {"dimension": "category", "category": a.category, "kind": a.kind, "amount": str(a.amount)}
        for a in budget.by_category
    ] + [{"dimension": "market", "country": a.country, "amount": str(a.amount)} for a in budget.by_market]


async def start_project(ctx: InboxContext, event: Envelope) -> None:
    """`decision.accepted` -> the project, once per decision and application (a redelivery, or a second event
    for the same application, finds it and changes nothing), and its advance ordered."""
    data = event_data(event, DecisionAccepted)
    session, actor = ctx.session, ctx.actor
    if await repository.by_application(session, data.application_id) is not None:
        log.info("project exists", application_id=str(data.application_id))
        return
    rules = await rules_of_call(ctx.intake, data.call_id)
    app = await fetch_application(ctx.intake, data.application_id)
    company = await fetch_company(ctx.intake, data.company_id)
    zone = ZoneInfo(rules.timezone)
    submitted = (app.submitted_at or data.accepted_at).astimezone(zone).date()
    plan = app.action_plan
    years = (data.funding or {}).get("loan_years") or rules.aid.loan.max_years
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "application_id": data.application_id,
        "decision_id": data.decision_id,
        "call_id": data.call_id,
        "company_id": data.company_id,
        # the partner acting for the company now (the decision's may have been revoked meanwhile)
        "partner_id": await notified_partner(session, data.company_id, data.partner_id),
        "cup": data.cup,
        "cor": data.cor,
        "decree_number": data.decree_number,
        "decree_date": data.decree_date,
        "status": "active",
        "grant": data.grant,
        "loan": data.loan,
        "eligible_total": data.approved_budget.eligible_total,
        "approved_budget": _approved_lines(data),
        "timeline": {
            "start_date": plan.start_date.isoformat() if plan.start_date else None,
            "end_date": plan.end_date.isoformat() if plan.end_date else None,
            "milestones": [m.model_dump(mode="json") for m in plan.milestones],
            "loan_terms": {
                "annual_rate": str(rules.aid.loan.annual_rate),
                "years": int(years),
                "grace_months": rules.aid.loan.grace_months,
                "periods_per_year": PERIODS_PER_YEAR,
            },
        },
        "kpis": [k.model_dump(mode="json") for k in plan.kpis],
        "start_date": submitted,
        "deadline": add_months(data.decree_date, rules.project.duration_months),
        "extension_granted": False,
        # A company with only a commitment must open its Lombardy site before the end: an officer verifies it.
        "lombardy_site_verified": company.has_lombardy_site,
        "iban": None,
        "version": 1,
    }
    project_id = await repository.insert_project(session, values)
    if project_id is None:  # a concurrent delivery (or the same decision/CUP) got there first
        log.info("project exists", application_id=str(data.application_id))
        return
    project = await repository.load(session, project_id)
    await record_audit(
        session,
        actor,
        action="project.started",
        resource_type="project",
        resource_id=project.id,
        after={
            k: values[k]
            for k in (
                "application_id",
                "decision_id",
                "call_id",
                "company_id",
                "cup",
                "grant",
                "loan",
                "eligible_total",
                "start_date",
                "deadline",
                "lombardy_site_verified",
            )
        },
    )
    await record_event(
        session,
        actor,
        event_type="project.started",
        subject_type="project",
        subject_id=project.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "project_id": project.id,
            "application_id": project.application_id,
            "decision_id": project.decision_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "partner_id": project.partner_id,
            "cup": project.cup,
            "cor": project.cor,
            "grant": project.grant,
            "loan": project.loan,
            "eligible_total": project.eligible_total,
            "start_date": project.start_date,
            "deadline": project.deadline,
        },
    )
    advance = advance_amount(project.grant, rules.reporting.advance_percent)
    if advance > 0:
        await payments.order_payment(session=session, actor=actor, project=project, kind="advance", amount=advance)


register_handler("decision.accepted", start_project)


async def follow_delegation(ctx: InboxContext, event: Envelope) -> None:
    """`company.delegation_changed`: the company's projects notify its current delegate from now on (the
    recorded partner while it still acts for the company). Who may *see* the projects does not wait for this
    event: shared.access reads the company's delegations as they are committed."""
    data = event_data(event, CompanyDelegationChanged)
    moved = await repository.move_partner(ctx.session, company_id=data.company_id, delegates=data.delegates)
    for project_id, before, after in moved:
        await record_audit(
            ctx.session,
            ctx.actor,
            action="project.partner_changed",
            resource_type="project",
            resource_id=project_id,
            before={"partner_id": before},
            after={"partner_id": after},
        )


register_handler("company.delegation_changed", follow_delegation)


# ---------------------------------------------------------------- changes by the beneficiary and officers


async def grant_extension(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, project: Project, reason: str
) -> Project:
    """The call's extension (`project.extension_months`), once, for a justified reason."""
    _require_active(project)
    if project.extension_granted:
        raise Conflict(
            "La proroga è già stata concessa.",
            "The extension was already granted.",
            extra={"deadline": project.deadline.isoformat()},
        )
    months = (await rules_of_call(intake, project.call_id)).project.extension_months
    if months <= 0:
        raise Conflict("Il bando non prevede proroghe.", "The call allows no extension.")
    before, previous = _view(project), project.deadline
    project.deadline = add_months(project.deadline, months)
    project.extension_granted = True
    await _touch(session, project)
    await record_audit(
        session,
        actor,
        action="project.extended",
        resource_type="project",
        resource_id=project.id,
        before=before,
        after={**_view(project), "reason": reason},
    )
    await record_event(
        session,
        actor,
        event_type="project.extended",
        subject_type="project",
        subject_id=project.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "project_id": project.id,
            "application_id": project.application_id,
            "company_id": project.company_id,
            "previous_deadline": previous,
            "deadline": project.deadline,
            "reason": reason,
        },
    )
    return project


async def record_lombardy_site(
    *, session: AsyncSession, actor: Actor, project: Project, opened: bool, note: str | None
) -> Project:
    """An officer records whether the operating site in Lombardy is open. Not opened by the outcome -> revoked."""
    _require_active(project)
    before = _view(project)
    project.lombardy_site_verified = opened
    await _touch(session, project)
    await record_audit(
        session,
        actor,
        action="project.lombardy_site_recorded",
        resource_type="project",
        resource_id=project.id,
        before=before,
        after={**_view(project), "note": note},
    )
    return project


def loan_schedule(project: Project) -> dict[str, Any]:
    terms = project.timeline["loan_terms"]
    principal = project.final_loan if project.final_loan is not None else project.loan
    rate = Decimal(str(terms["annual_rate"]))
    plan = (
        repayment_plan(principal, rate, int(terms["years"]), int(terms["grace_months"]), int(terms["periods_per_year"]))
        if principal > 0
        else ()
    )
    return {
        "project_id": project.id,
        "principal": principal,
        "annual_rate": rate,
        "years": terms["years"],
        "grace_months": terms["grace_months"],
        "periods_per_year": terms["periods_per_year"],
        "total_interest": sum((i.interest for i in plan), ZERO),
        "total_repaid": sum((i.payment for i in plan), ZERO),
        "installments": [asdict(i) for i in plan],
    }


# ---------------------------------------------------------------- outcome


def _follow_up_doc(rules: CallRules, completed_on: date) -> dict[str, Any] | None:
    """What the call asks after completion, fixed when the project completes (rules do not move afterwards)."""
    years = rules.results.follow_up_years
    if years <= 0:
        return None
    reports = follow_up_schedule(completed_on, [(k.name, k.years_after) for k in rules.results.follow_up_kpis])
    return {
        "completed_on": completed_on.isoformat(),
        "until": follow_up_until(completed_on, years).isoformat(),
        "last_year": completed_on.year + years,
        "kpis": [{"name": k.name, "unit": k.unit} for k in rules.results.follow_up_kpis],
        "reports": [
            {"kpi": r.kpi, "year_after": r.year_after, "period": r.period, "due_date": r.due_date.isoformat()}
            for r in reports
        ],
    }


def _outcome_doc(
    out: Outcome,
    *,
    reason: str | None,
    balance: Decimal,
    recovery: Decimal,
    from_waiting_list: list[uuid.UUID],
    revoked_before_claim: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        **extra,
        "kind": out.kind,
        "reason_code": out.reason,
        "reason": reason,
        "approved": str(out.approved),
        "recognised": None if revoked_before_claim else str(out.recognised),
        "ratio": None if revoked_before_claim else str(out.ratio.quantize(Decimal("0.0001"), ROUND_DOWN)),
        "grant": str(out.grant),
        "loan": str(out.loan),
        "released": str(out.released),
        "balance": str(balance),
        "recovery": str(recovery),
        "granted_from_waiting_list": [str(a) for a in from_waiting_list],
        "decided_at": datetime.now(UTC).isoformat(),
    }


async def _release(
    *, evaluation: EvaluationClient, project: Project, amount: Decimal, kind: str, reason: str
) -> list[uuid.UUID]:
    """Give the freed aid back to the call's budget; evaluation funds the waiting list with it. Called after
    monitoring's own changes are flushed, so a refusal or an outage rolls everything back; the key makes a retry
    replay evaluation's first answer instead of releasing twice."""
    if amount <= 0:
        return []
    released = await release_budget(
        evaluation,
        call_id=project.call_id,
        application_id=project.application_id,
        amount=amount,
        reason=reason,
        idempotency_key=f"monitoring-{kind}-{project.id}",
    )
    return released.granted_from_waiting_list


REVOCATION_TEXT = {
    "below_threshold": "spesa riconosciuta sotto la soglia di revoca / recognised spend below the revocation threshold",
    "deadline_missed": "termine del progetto non rispettato / project deadline missed",
    "site_never_opened": "sede operativa in Lombardia mai aperta / operating site in Lombardy never opened",
}


async def _recovery(
    session: AsyncSession, project: Project, rules: CallRules, *, loan_early_repayment: bool, recovery_date: date | None
) -> dict[str, Any]:
    """What the company gives back on the revocation's day: each amount paid with the statutory interest from
    its payment date, and the loan's outstanding capital (early repayment). The desk does not pay the loan out
    itself: it is taken as disbursed with the first payment made to the company (none paid, nothing owed), and
    repaid by the project's loan plan from then."""
    today = recovery_date or _today(rules.timezone)
    paid = [
        (p.amount, (p.paid_at or p.ordered_at).astimezone(rules.tz).date())
        for p in await payments.paid_rows(session, project)
    ]
    if paid and today < max(d for _, d in paid):
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "recovery_date_before_payment",
                    "/recovery_date",
                    f"La data del recupero precede un pagamento ({max(d for _, d in paid)}).",
                    f"The recovery date precedes a payment ({max(d for _, d in paid)}).",
                )
            ]
        )
    unknown = sorted(years_needing_a_rate([d for _, d in paid], today) - set(LEGAL_INTEREST_RATES))
    if unknown:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "legal_rate_unknown",
                    "/recovery_date",
                    f"Il tasso di interesse legale per {unknown} non è ancora nella tabella del sistema.",
                    f"The statutory interest rate for {unknown} is not in the desk's table yet.",
                    extra={"years": unknown},
                )
            ]
        )
    outstanding = ZERO
    principal = project.final_loan if project.final_loan is not None else project.loan
    if loan_early_repayment and principal > 0 and paid:
        terms = project.timeline["loan_terms"]
        plan = repayment_plan(
            principal,
            Decimal(str(terms["annual_rate"])),
            int(terms["years"]),
            int(terms["grace_months"]),
            int(terms["periods_per_year"]),
        )
        outstanding = outstanding_capital(plan, min(d for _, d in paid), today, principal)
    r = recovery(paid, today, loan_outstanding=outstanding)
    return {
        "recovered_on": today.isoformat(),
        "capital": str(r.capital),
        "interest": str(r.interest),
        "loan_outstanding": str(r.loan_outstanding),
        "total": str(r.total),
        "items": [
            {
                "amount": str(i.amount),
                "paid_on": i.paid_on.isoformat(),
                "interest": str(i.total),
                "segments": [
                    {"year": g.year, "days": g.days, "rate": str(g.rate), "interest": str(g.interest)}
                    for g in i.segments
                ],
            }
            for i in r.items
        ],
    }


async def _revoke(
    *,
    session: AsyncSession,
    actor: Actor,
    evaluation: EvaluationClient,
    rules: CallRules,
    project: Project,
    out: Outcome,
    reason: str,
    revoked_before_claim: bool,
    recovery_date: date | None = None,
) -> Project:
    """Revocation: open orders cancelled, everything paid to be recovered with the statutory interest and the
    loan's outstanding capital, the whole aid still committed back to the budget."""
    before = _view(project)
    assert out.reason is not None
    catalogued = rules.revocation_reason(out.reason)
    detail = await _recovery(
        session,
        project,
        rules,
        recovery_date=recovery_date,
        loan_early_repayment=catalogued.loan_early_repayment if catalogued else True,
    )
    await payments.cancel_open(session=session, actor=actor, project=project, reason=f"project revoked: {reason}")
    total = Decimal(detail["total"])
    if total > 0:
        await payments.order_payment(session=session, actor=actor, project=project, kind="recovery", amount=total)
    project.status, project.final_grant, project.final_loan = "revoked", ZERO, ZERO
    await _touch(session, project)
    await facts.record_outcome(session, project.application_id, kind="revoked", committed=ZERO)
    from_waiting_list = await _release(
        evaluation=evaluation,
        project=project,
        amount=out.released,
        kind="revocation",
        reason=f"revocation ({out.reason}): {reason}",
    )
    project.outcome = _outcome_doc(
        out,
        reason=reason,
        balance=ZERO,
        recovery=total,
        from_waiting_list=from_waiting_list,
        revoked_before_claim=revoked_before_claim,
        article=catalogued.article if catalogued else None,
        recovery_detail=detail,
    )
    await session.flush()
    await record_audit(
        session,
        actor,
        action="project.revoked",
        resource_type="project",
        resource_id=project.id,
        before=before,
        after={**_view(project), "outcome": project.outcome},
    )
    await record_event(
        session,
        actor,
        event_type="project.revoked",
        subject_type="project",
        subject_id=project.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "project_id": project.id,
            "application_id": project.application_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "reason_code": out.reason,
            "reason": reason,
            "recovery": total,
            "released": out.released,
        },
    )
    return project


def _today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


async def apply_outcome(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: EvaluationClient,
    project: Project,
    recognised_total: Decimal,
    completed_on: date | None = None,
) -> Project:
    """The outcome of the reviewed final claim (`recognised_total` recognised of the approved eligible total).

    Full aid, or aid reduced in proportion (grant and loan, floored to the cent) when the spend recognised is
    between the call's revocation threshold and 100 %: the balance (final grant - advance) is ordered (a negative
    difference is ordered as a recovery) and a reduction's freed aid goes back to the call's budget. Below the
    threshold, after the deadline (`completed_on`, default today in the call's time zone, later than the deadline
    with any extension) or without the Lombardy site opened: revocation. The caller holds the project's row lock
    (the claims review and the outcome route load it FOR UPDATE)."""
    _require_active(project)
    rules = await rules_of_call(intake, project.call_id)
    completed_on = completed_on or _today(rules.timezone)
    out = decide_outcome(
        approved=project.eligible_total,
        recognised=recognised_total,
        grant=project.grant,
        loan=project.loan,
        revocation_threshold=rules.reporting.revocation_threshold,
        deadline_missed=completed_on > project.deadline,
        site_never_opened=not project.lombardy_site_verified,
    )
    if out.kind == "revoked":
        assert out.reason is not None
        return await _revoke(
            session=session,
            actor=actor,
            evaluation=evaluation,
            rules=rules,
            project=project,
            out=out,
            reason=REVOCATION_TEXT[out.reason],
            revoked_before_claim=False,
        )
    before = _view(project)
    balance = out.grant - await payments.live_advance(session, project)
    recovery = ZERO
    if balance > 0:
        await payments.order_payment(session=session, actor=actor, project=project, kind="balance", amount=balance)
    elif balance < 0:  # the advance exceeds the reduced grant: the difference comes back
        recovery = -balance
        await payments.order_payment(session=session, actor=actor, project=project, kind="recovery", amount=recovery)
    project.status, project.final_grant, project.final_loan = "completed", out.grant, out.loan
    await _touch(session, project)
    await facts.record_outcome(session, project.application_id, kind=out.kind, committed=out.grant + out.loan)
    from_waiting_list = await _release(
        evaluation=evaluation,
        project=project,
        amount=out.released,
        kind="reduction",
        reason=f"reduction: {out.recognised} recognised of {out.approved} approved",
    )
    project.outcome = _outcome_doc(
        out,
        reason=None,
        balance=max(balance, ZERO),
        recovery=recovery,
        from_waiting_list=from_waiting_list,
        follow_up=_follow_up_doc(rules, completed_on),
    )
    await session.flush()
    await record_audit(
        session,
        actor,
        action="project.completed",
        resource_type="project",
        resource_id=project.id,
        before=before,
        after={**_view(project), "outcome": project.outcome},
    )
    await record_event(
        session,
        actor,
        event_type="project.completed",
        subject_type="project",
        subject_id=project.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "project_id": project.id,
            "application_id": project.application_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "outcome": out.kind,
            "approved": out.approved,
            "recognised": out.recognised,
            "grant": out.grant,
            "loan": out.loan,
            "released": out.released,
            "balance": max(balance, ZERO),
        },
    )
    return project


#: reasons an officer may revoke for, by the project's status.
REVOCABLE_WHEN = {
    "deadline_missed": ("active",),
    "site_never_opened": ("active",),
    "false_declaration": ("active", "completed"),
    "renunciation": ("active", "completed"),
    "obligations_broken": ("completed",),
}


async def revoke_project(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    evaluation: EvaluationClient,
    project: Project,
    reason_code: str,
    reason: str,
    recovery_date: date | None = None,
) -> Project:
    """An officer revokes for a reason of the call's catalogue: before the final claim (deadline missed, site
    never opened), or also after completion (false declaration, renunciation; obligations after completion
    broken only then). Checks first, changes nothing when refused."""
    allowed = REVOCABLE_WHEN[reason_code]
    if project.status not in allowed:
        raise Conflict(
            f"Revoca '{reason_code}' non ammessa per un progetto {project.status}.",
            f"Revocation '{reason_code}' is not allowed for a {project.status} project.",
            extra={"project_status": project.status, "allowed_statuses": list(allowed)},
        )
    rules = await rules_of_call(intake, project.call_id)
    if rules.revocation_reason(reason_code) is None:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "reason_not_in_call",
                    "/reason_code",
                    f"Il bando non prevede la revoca per '{reason_code}'.",
                    f"The call's catalogue has no revocation reason '{reason_code}'.",
                )
            ]
        )
    if reason_code == "deadline_missed" and _today(rules.timezone) <= project.deadline:
        raise Conflict(
            "Il termine del progetto non è ancora scaduto.",
            "The project's deadline has not passed.",
            extra={"deadline": project.deadline.isoformat()},
        )
    if reason_code == "site_never_opened" and project.lombardy_site_verified:
        raise Conflict(
            "La sede in Lombardia risulta aperta: registrare prima l'esito della verifica.",
            "The Lombardy site is recorded as open: record the check's result first.",
        )
    completed = project.status == "completed"
    grant = project.final_grant if completed and project.final_grant is not None else project.grant
    loan = project.final_loan if completed and project.final_loan is not None else project.loan
    out = revocation(approved=project.eligible_total, grant=grant, loan=loan, reason=reason_code)  # type: ignore[arg-type]
    return await _revoke(
        session=session,
        actor=actor,
        evaluation=evaluation,
        rules=rules,
        project=project,
        out=out,
        reason=reason,
        revoked_before_claim=not completed,
        recovery_date=recovery_date,
    )
