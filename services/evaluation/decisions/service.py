"""Use cases of decrees and decisions.

A decree is opened by an officer (number and date), filled with decisions and closed: closing issues
every decision at once (`decision.issued`, one event each, to the partner's webhooks and to
monitoring). A decision records where the application stands in the allocation when it is added:
funded (grant, loan), partially funded, waiting, or not admitted with every reason of its evaluation.
A later change of the allocation (e.g. funded from the waiting list) is "pending" again and goes in a
later decree. A funded decision gets its CUP and COR; then the company (or its partner) accepts it
(`decision.accepted`, from which monitoring starts the project, and the concession enters the de minimis
register: grant + the loan's gross grant equivalent at the decree's date) or renounces it, which frees the
budget for the waiting list.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.budget import service as budget
from services.evaluation.decisions import repository
from services.evaluation.deminimis import service as de_minimis
from services.evaluation.models import Decision, Decree, Evaluation, Funding, ReceivedApplication
from services.evaluation.rules import rules_of_call
from shared import four_eyes
from shared.access import can_reach_company
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.clients.intake import IntakeClient
from shared.domain.call_rules import CallRules
from shared.domain.funding import ExpenseAmount, compute_eligible
from shared.domain.money import ZERO
from shared.errors import Conflict, NotFound
from shared.models import MoneyConfirmation
from shared.routing import Actor, etag_of

DECIDABLE = ("funded", "partially_funded", "waiting", "not_admitted")
FUNDED = ("funded", "partially_funded")


# ---------------------------------------------------------------- views


def decree_out(d: Decree, decisions: int) -> dict[str, Any]:
    return {
        "id": d.id,
        "call_id": d.call_id,
        "number": d.number,
        "decree_date": d.decree_date,
        "status": d.status,
        "decisions": decisions,
        "created_by": d.created_by,
        "created_at": d.created_at,
        "closed_at": d.closed_at,
        "etag": etag_of(d.version),
    }


def decision_out(d: Decision, decree: Decree) -> dict[str, Any]:
    return {
        "id": d.id,
        "decree_id": d.decree_id,
        "decree_number": decree.number,
        "decree_date": decree.decree_date,
        "call_id": decree.call_id,
        "application_id": d.application_id,
        "company_id": d.company_id,
        "outcome": d.outcome,
        "reasons": d.reasons,
        "grant": d.grant,
        "loan": d.loan,
        "cup": d.cup,
        "cor": d.cor,
        "status": d.status,
        "accepted_at": d.accepted_at,
        "renounced_at": d.renounced_at,
        "created_at": d.created_at,
        "etag": etag_of(d.version),
    }


# ---------------------------------------------------------------- decrees


async def create_decree(
    *, session: AsyncSession, actor: Actor, call_id: uuid.UUID, number: str, decree_date: date
) -> Decree:
    decree_id = uuid.uuid4()
    values = {
        "id": decree_id,
        "call_id": call_id,
        "number": number,
        "decree_date": decree_date,
        "status": "open",
        "created_by": actor.principal.client_id,
        "version": 1,
    }
    if not await repository.insert_decree(session, values):
        raise Conflict(f"Esiste già un decreto numero {number}.", f"A decree number {number} already exists.")
    decree = await repository.get_decree(session, decree_id)
    assert decree is not None
    await record_audit(
        session,
        actor,
        action="decree.opened",
        resource_type="decree",
        resource_id=decree_id,
        after={k: str(v) for k, v in values.items()},
    )
    return decree


async def get_decree(session: AsyncSession, decree_id: uuid.UUID) -> Decree:
    decree = await repository.get_decree(session, decree_id)
    if decree is None:
        raise NotFound()
    return decree


def _require_open(decree: Decree) -> None:
    if decree.status != "open":
        raise Conflict(
            f"Il decreto {decree.number} è chiuso: non si può modificare.",
            f"Decree {decree.number} is closed: it cannot change.",
            extra={"decree_status": decree.status},
        )


def _reasons(funding: Funding, ev: Evaluation | None) -> list[dict[str, Any]]:
    if funding.status == "not_admitted":
        return budget.not_admitted_reasons(ev) if ev is not None else []
    if funding.status == "waiting":
        return [
            {
                "code": "budget_exhausted",
                "article": None,
                "detail_it": "Ammessa ma non finanziata per esaurimento del budget: in lista d'attesa.",
                "detail_en": "Admitted but not funded: the budget is exhausted; on the waiting list.",
            }
        ]
    if funding.status == "partially_funded":
        return [
            {
                "code": "partial_funding",
                "article": None,
                "requested": str(funding.requested),
                "granted": str(funding.granted),
                "detail_it": f"Finanziata in parte ({funding.granted} su {funding.requested}): budget residuo.",
                "detail_en": f"Funded in part ({funding.granted} of {funding.requested}): what was left.",
            }
        ]
    return []


def _changed(funding: Funding, last: Decision | None) -> bool:
    return last is None or (last.outcome, last.grant, last.loan) != (funding.status, funding.grant, funding.loan)


async def add_decisions(
    *, session: AsyncSession, actor: Actor, decree: Decree, application_ids: list[uuid.UUID] | None
) -> list[Decision]:
    """Add a decision per application (or per pending application of the call). Any application not yet
    evaluated and allocated, of another call, out of the allocation or already in this decree refuses the
    whole batch (409): nothing is added."""
    decree = await _locked(session, decree.id)
    _require_open(decree)
    explicit = application_ids is not None
    ids = list(dict.fromkeys(application_ids)) if application_ids is not None else None
    rows = await repository.allocation_rows(session, call_id=decree.call_id, application_ids=ids)
    found = {r.ReceivedApplication.application_id for r in rows}
    if ids is not None and (missing := [str(i) for i in ids if i not in found]):
        raise Conflict(
            "Domande sconosciute alla valutazione.",
            "Applications unknown to the evaluation.",
            extra={"application_ids": missing},
        )
    in_decree = await repository.decided_in(session, decree.id)
    latest = await repository.latest_decisions(session, list(found))
    chosen: list[Any] = []
    problems: list[dict[str, str]] = []
    for r in rows:
        app, funding = r.ReceivedApplication, r.Funding
        app_id = app.application_id
        if not explicit:
            if funding.status in DECIDABLE and app_id not in in_decree and _changed(funding, latest.get(app_id)):
                chosen.append(r)
            continue
        if app.call_id != decree.call_id:
            problems.append({"application_id": str(app_id), "reason": "other_call"})
        elif funding is None:
            problems.append({"application_id": str(app_id), "reason": "not_evaluated_or_allocated"})
        elif funding.status not in DECIDABLE:
            problems.append({"application_id": str(app_id), "reason": f"allocation_{funding.status}"})
        elif app_id in in_decree:
            problems.append({"application_id": str(app_id), "reason": "already_in_decree"})
        else:
            chosen.append(r)
    if problems:
        raise Conflict(
            "Alcune domande non possono ricevere una decisione in questo decreto.",
            "Some applications cannot be decided in this decree.",
            extra={"applications": problems},
        )
    created: list[Decision] = []
    for r in chosen:
        funding = r.Funding
        d = Decision(
            id=uuid.uuid4(),
            decree_id=decree.id,
            application_id=funding.application_id,
            company_id=r.ReceivedApplication.company_id,
            outcome=funding.status,
            reasons=_reasons(funding, r.Evaluation),
            grant=funding.grant,
            loan=funding.loan,
            status="draft",
            version=1,
        )
        session.add(d)
        created.append(d)
    if created:
        decree.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="decree.decisions_added",
        resource_type="decree",
        resource_id=decree.id,
        after={
            "decisions": [
                {
                    "id": str(d.id),
                    "application_id": str(d.application_id),
                    "outcome": d.outcome,
                    "grant": str(d.grant),
                    "loan": str(d.loan),
                }
                for d in created
            ],
            "version": decree.version,
        },
    )
    return created


async def _locked(session: AsyncSession, decree_id: uuid.UUID) -> Decree:
    decree = await repository.get_decree(session, decree_id, for_update=True)
    if decree is None:
        raise NotFound()
    return decree


CLOSE = "decree.close"


async def propose_close(*, session: AsyncSession, actor: Actor, decree: Decree) -> MoneyConfirmation:
    """An officer proposes to close the decree as it stands (its version); a second officer confirms."""
    decree = await _locked(session, decree.id)
    _require_open(decree)
    if not await repository.all_decisions_of_decree(session, decree.id):
        raise Conflict("Il decreto non contiene decisioni.", "The decree holds no decisions.")
    return await four_eyes.propose(
        session,
        actor,
        action=CLOSE,
        resource_type="decree",
        resource_id=decree.id,
        detail={"version": decree.version, "number": decree.number},
    )


async def close_decree(*, session: AsyncSession, actor: Actor, decree: Decree) -> Decree:
    """A second officer confirms the proposed closing: the decisions are issued, one `decision.issued` event each.
    A decree changed since the proposal (decisions added) is refused: it is proposed again as it now stands."""
    decree = await _locked(session, decree.id)
    _require_open(decree)
    rows = await repository.all_decisions_of_decree(session, decree.id)
    if not rows:
        raise Conflict("Il decreto non contiene decisioni.", "The decree holds no decisions.")
    proposal = await four_eyes.confirm(session, actor, action=CLOSE, resource_id=decree.id)
    if proposal.detail.get("version") != decree.version:
        raise Conflict(
            "Il decreto è cambiato dopo la proposta di chiusura: va proposto di nuovo.",
            "The decree changed after its closing was proposed: propose it again.",
            extra={"proposed_version": proposal.detail.get("version"), "version": decree.version},
        )
    now = datetime.now(UTC)
    decree.status, decree.closed_at = "closed", now
    decree.version += 1
    for r in rows:
        d: Decision = r.Decision
        d.status = "issued"
        d.version += 1
        await record_event(
            session,
            actor,
            event_type="decision.issued",
            subject_type="decision",
            subject_id=d.id,
            ordering_key=d.application_id,
            partner_id=budget.partner_of(r.ReceivedApplication),
            company_id=d.company_id,
            payload={
                "decision_id": d.id,
                "application_id": d.application_id,
                "call_id": decree.call_id,
                "company_id": d.company_id,
                "protocol_number": r.ReceivedApplication.protocol_number,
                "outcome": d.outcome,
                "grant": d.grant,
                "loan": d.loan,
                "decree_id": decree.id,
                "decree_number": decree.number,
                "decree_date": decree.decree_date,
                "reasons": d.reasons,
            },
        )
    await session.flush()
    await record_audit(
        session,
        actor,
        action="decree.closed",
        resource_type="decree",
        resource_id=decree.id,
        before={"status": "open"},
        after={
            "status": "closed",
            "closed_at": now,
            "decisions": len(rows),
            "version": decree.version,
            **four_eyes.officers(proposal),
        },
    )
    return decree


async def decisions_page(
    session: AsyncSession, decree: Decree, *, after: tuple[Any, uuid.UUID] | None, limit: int
) -> list[Any]:
    return await repository.decisions_of_decree(session, decree.id, after=after, limit=limit)


async def count(session: AsyncSession, decree: Decree) -> int:
    return await repository.count_decisions(session, decree.id)


# ---------------------------------------------------------------- one decision


async def get_decision(
    session: AsyncSession, principal: Principal, decision_id: uuid.UUID, *, for_update: bool = False
) -> tuple[Decision, Decree, ReceivedApplication]:
    """The decision if the caller reaches its company (shared.access: officers, auditors and services all; a
    company its own; a partner while it acts for the company); anything else is 404."""
    row = await repository.get_decision(session, decision_id, for_update=for_update)
    if row is None or not await can_reach_company(session, principal, row.ReceivedApplication.company_id):
        raise NotFound()
    return row.Decision, row.Decree, row.ReceivedApplication


def _require_funded(d: Decision) -> None:
    if d.outcome not in FUNDED:
        raise Conflict(
            "La decisione non è di finanziamento.",
            "The decision does not fund the application.",
            extra={"outcome": d.outcome},
        )


async def set_cup(*, session: AsyncSession, actor: Actor, decision: Decision, cup: str) -> Decision:
    _require_funded(decision)
    if decision.status == "renounced":
        raise Conflict("La decisione è stata rinunciata.", "The decision was renounced.")
    if decision.cup == cup:
        return decision
    if await repository.cup_taken(session, cup, decision.id):
        raise Conflict(
            f"Il CUP {cup} è già assegnato a un altro progetto.", f"CUP {cup} is already assigned to another project."
        )
    before = {"cup": decision.cup, "version": decision.version}
    decision.cup = cup
    decision.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="decision.cup_set",
        resource_type="decision",
        resource_id=decision.id,
        before=before,
        after={"cup": cup, "version": decision.version},
    )
    return decision


async def set_cor(*, session: AsyncSession, actor: Actor, decision: Decision, cor: str) -> Decision:
    _require_funded(decision)
    if decision.status == "renounced":
        raise Conflict("La decisione è stata rinunciata.", "The decision was renounced.")
    if decision.cor == cor:
        return decision
    before = {"cor": decision.cor, "version": decision.version}
    decision.cor = cor
    decision.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="decision.cor_set",
        resource_type="decision",
        resource_id=decision.id,
        before=before,
        after={"cor": cor, "version": decision.version},
    )
    return decision


async def _require_answerable(session: AsyncSession, d: Decision) -> Funding:
    _require_funded(d)
    if d.status != "issued":
        raise Conflict(
            "La decisione non attende una risposta (non ancora emessa, o già accettata o rinunciata).",
            "The decision awaits no answer (not issued yet, or already accepted or renounced).",
            extra={"decision_status": d.status},
        )
    latest = (await repository.latest_decisions(session, [d.application_id]))[d.application_id]
    if latest.id != d.id:
        raise Conflict(
            "Una decisione più recente sostituisce questa.",
            "A later decision supersedes this one.",
            extra={"latest_decision_id": str(latest.id)},
        )
    funding = await repository.funding(session, d.application_id)
    if funding is None or funding.status not in FUNDED:
        raise Conflict(
            "La domanda non è più finanziata.",
            "The application is no longer funded.",
            extra={"allocation_status": funding.status if funding is not None else None},
        )
    return funding


def approved_budget(rules: CallRules, snapshot: dict[str, Any], cuts: list[dict[str, Any]]) -> dict[str, Any]:
    """The approved project budget: eligible expenses per category (the call's caps and flat rates applied by
    `compute_eligible` to the lines left after the evaluation's line cuts) and per target market (the lines left
    after the line cuts, by market; a category cap is not spread over markets). A network's budget is the sum of
    its companies' (the lead's lines and each member's, each computed on its own as its aid was)."""
    companies = [("", snapshot.get("expense_lines", []))] + [
        (f"/network/members/{i}", m.get("expense_lines") or [])
        for i, m in enumerate((snapshot.get("network") or {}).get("members") or [])
    ]
    flat = snapshot.get("flat_rates")
    total = ZERO
    direct: dict[str, Decimal] = defaultdict(lambda: ZERO)
    flat_rates: dict[str, Decimal] = defaultdict(lambda: ZERO)
    by_market: dict[str | None, Decimal] = defaultdict(lambda: ZERO)
    for prefix, company_lines in companies:
        allowed: dict[int, Decimal] = {}
        for cut in cuts:
            path = str(cut.get("path", ""))
            tail = path.removeprefix(f"{prefix}/expense_lines/")
            if tail != path and tail.isdigit():
                allowed[int(tail)] = Decimal(str(cut.get("allowed", "0")))
        lines = []
        for i, line in enumerate(company_lines):
            amount = min(Decimal(str(line["amount"])), allowed.get(i, Decimal(str(line["amount"]))))
            if amount <= 0:
                continue
            lines.append(ExpenseAmount(line["category"], amount))
            by_market[line.get("target_market")] += amount
        if not lines and prefix:
            continue
        breakdown = compute_eligible(rules, lines, set(flat) if flat is not None else None)
        total += breakdown.total
        for code, amount in breakdown.direct.items():
            direct[code] += amount
        for code, amount in breakdown.flat_rates.items():
            flat_rates[code] += amount
    return {
        "eligible_total": total,
        "by_category": [{"category": code, "kind": "direct", "amount": amount} for code, amount in direct.items()]
        + [{"category": code, "kind": "flat_rate", "amount": amount} for code, amount in flat_rates.items()],
        "by_market": [
            {"country": country, "amount": amount}
            for country, amount in sorted(by_market.items(), key=lambda kv: kv[0] or "~")
        ],
    }


async def accept_decision(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    decision: Decision,
    decree: Decree,
    app: ReceivedApplication,
) -> Decision:
    """The company accepts the aid: `decision.accepted` carries what monitoring needs to start the project."""
    await _require_answerable(session, decision)
    if decision.cup is None or decision.cor is None:
        raise Conflict(
            "Mancano CUP o COR: la decisione non si può ancora accettare.",
            "The decision has no CUP or COR yet: it cannot be accepted yet.",
            extra={"cup": decision.cup, "cor": decision.cor},
        )
    ev = await repository.evaluation(session, decision.application_id)
    rules = await rules_of_call(intake, decree.call_id, call_in_path=True)
    # The concession enters the de minimis register now, so every later application of the single undertaking
    # counts it; over the ceiling (e.g. a concurrent concession took the headroom) the acceptance is refused.
    # A network's aid is one concession per company: the lead's for its own share, each member's for its own,
    # each against its own single undertaking (reference: the COR, then "/1", "/2"... for the members).
    shares = de_minimis.network_shares(ev, decision.grant, decision.loan)
    lead_grant, lead_loan = (shares[0]["grant"], shares[0]["loan"]) if shares else (decision.grant, decision.loan)
    await de_minimis.register_concession(
        session=session,
        actor=actor,
        intake=intake,
        rules=rules,
        evaluation=ev,
        company_id=decision.company_id,
        application_id=decision.application_id,
        cor=decision.cor,
        granted_on=decree.decree_date,
        grant=lead_grant,
        loan=lead_loan,
        decree_number=decree.number,
        declared=de_minimis.declared_of(app.snapshot),
    )
    declared_members = (app.snapshot.get("network") or {}).get("members") or []
    for i, member in enumerate(shares[1:]):
        await de_minimis.register_concession(
            session=session,
            actor=actor,
            intake=intake,
            rules=rules,
            evaluation=ev,
            company_id=uuid.UUID(member["company_id"]),
            application_id=decision.application_id,
            cor=f"{decision.cor}/{i + 1}",
            granted_on=decree.decree_date,
            grant=member["grant"],
            loan=member["loan"],
            decree_number=decree.number,
            declared=de_minimis.declared_of(declared_members[i]) if i < len(declared_members) else [],
            undertaking=[str(v) for v in member["undertaking"]],
        )
    now = datetime.now(UTC)
    decision.status, decision.accepted_at = "accepted", now
    decision.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="decision.accepted",
        resource_type="decision",
        resource_id=decision.id,
        before={"status": "issued"},
        after={"status": "accepted", "accepted_at": now, "version": decision.version},
    )
    await record_event(
        session,
        actor,
        event_type="decision.accepted",
        subject_type="decision",
        subject_id=decision.id,
        ordering_key=decision.application_id,
        partner_id=budget.partner_of(app),
        company_id=decision.company_id,
        payload={
            "decision_id": decision.id,
            "application_id": decision.application_id,
            "call_id": decree.call_id,
            "company_id": decision.company_id,
            "partner_id": budget.partner_of(app),
            "protocol_number": app.protocol_number,
            "outcome": decision.outcome,
            "grant": decision.grant,
            "loan": decision.loan,
            "loan_gge": ev.loan_gge if ev is not None else None,
            "decree_id": decree.id,
            "decree_number": decree.number,
            "decree_date": decree.decree_date,
            "cup": decision.cup,
            "cor": decision.cor,
            "accepted_at": now,
            "approved_budget": approved_budget(rules, app.snapshot, ev.cuts if ev is not None else []),
            "action_plan": {
                k: app.snapshot.get("action_plan", {}).get(k) for k in ("start_date", "end_date", "milestones", "kpis")
            },
            "funding": ev.funding if ev is not None else None,
        },
    )
    return decision


async def renounce_decision(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    decision: Decision,
    decree: Decree,
    app: ReceivedApplication,
    reason: str,
) -> Decision:
    """The company renounces the aid: its commitment is released and the waiting list moves."""
    await _require_answerable(session, decision)
    now = datetime.now(UTC)
    decision.status, decision.renounced_at = "renounced", now
    decision.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="decision.renounced",
        resource_type="decision",
        resource_id=decision.id,
        before={"status": "issued"},
        after={"status": "renounced", "renounced_at": now, "reason": reason, "version": decision.version},
    )
    await record_event(
        session,
        actor,
        event_type="decision.renounced",
        subject_type="decision",
        subject_id=decision.id,
        ordering_key=decision.application_id,
        partner_id=budget.partner_of(app),
        company_id=decision.company_id,
        payload={
            "decision_id": decision.id,
            "application_id": decision.application_id,
            "call_id": decree.call_id,
            "company_id": decision.company_id,
            "grant": decision.grant,
            "loan": decision.loan,
            "decree_number": decree.number,
            "decree_date": decree.decree_date,
            "renounced_at": now,
            "reason": reason,
        },
    )
    await budget.release_application(
        session=session,
        actor=actor,
        intake=intake,
        application_id=decision.application_id,
        kind="renunciation",
        reason=reason,
    )
    return decision
