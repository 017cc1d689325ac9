"""Use cases of the budget: the ledger, the allocation, single approvals, releases and the scorrimento.

What the budget is charged with: **grant + loan**. The call's endowment (`budget_total` of its
rules) finances both the non-repayable grant and the subsidised loan, so both are committed on it;
the loan's gross grant equivalent only matters for the de minimis ceiling, not for the endowment.

Concurrency: every use case that moves money locks the call's budget row (`SELECT ... FOR UPDATE`)
first, so allocations, approvals, releases and scorrimenti of one call run one after the other;
each amount is still committed with a conditional UPDATE (`committed + x <= total`), never computed
from a value read earlier, and the table's CHECK refuses an over-commitment in any case. One funding
row per application (its primary key, inserted with ON CONFLICT DO NOTHING) means nobody is
allocated twice. Lock order is always budget row, then funding rows.

Order and amounts come from `shared.domain.allocation` (`ranking_order`, `scorrimento`): the waiting
list is funded in the call's order, strictly; a partially funded application is topped up first.
When only part of an application's aid is funded, grant and loan keep the evaluation's proportion:
the grant share is rounded down to the cent and the loan takes the rest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.budget import repository
from services.evaluation.models import Budget, Evaluation, Funding, RankingVersion, ReceivedApplication
from services.evaluation.rules import current_version, forget_current, rules_of_call, window_closes_at
from shared import four_eyes
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.domain.allocation import Candidate, ranking_order, scorrimento
from shared.domain.call_rules import CallRules
from shared.domain.money import CENT, ZERO, floor_cent
from shared.errors import (
    PEER_UNAVAILABLE,
    PROTOCOL_ORDER_PENDING,
    RANKING_NOT_READY,
    Conflict,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.events.catalogue import CallAmended
from shared.models import MoneyConfirmation
from shared.pagination import encode_seq_cursor
from shared.routing import Actor, etag_of

#: evaluation stages this package reads (written by admissibility, merit and the funding computation):
#: "evaluated" is ready for the budget (grant and loan set, score set on ranking calls); "not_admissible"
#: (admissibility failed, or the aid refused) and a "failed" merit verdict end there.
EVALUATED = "evaluated"
NOT_ADMITTED_STAGES = ("not_admissible", "not_admitted")
MERIT_FAILED = "failed"

ReleaseKind = Literal["withdrawal", "renunciation", "revocation", "reduction"]


# ---------------------------------------------------------------- views


def available(b: Budget) -> Decimal:
    return b.total - b.committed


def to_summary(b: Budget) -> dict[str, Any]:
    return {
        "call_id": b.call_id,
        "total": b.total,
        "committed": b.committed,
        "freed": b.freed,
        "available": available(b),
        "updated_at": b.updated_at,
        "etag": etag_of(b.version),
    }


def to_funding_out(f: Funding, *, show_score: bool = True) -> dict[str, Any]:
    return {
        "application_id": f.application_id,
        "call_id": f.call_id,
        "status": f.status,
        "requested": f.requested,
        "granted": f.granted,
        "grant": f.grant,
        "loan": f.loan,
        "partial": f.partial,
        "protocol_number": f.protocol_number,
        "score": f.score if show_score else None,
        "updated_at": f.updated_at,
        "etag": etag_of(f.version),
    }


def partner_of(app: ReceivedApplication) -> uuid.UUID | None:
    """The partner notified of the application's events (the company's delegate), not an access rule."""
    return app.partner_id


# ---------------------------------------------------------------- the budget row


async def ensure_budget(
    *, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID, for_update: bool = False
) -> Budget:
    """The call's budget, created on first use from the call's rules (`budget_total`)."""
    budget = await repository.get_budget(session, call_id, for_update=for_update)
    if budget is None:
        # read the version in force afresh: a call.amended handled meanwhile by another process must not be
        # missed by creating the row from this process's cached, older version
        forget_current(call_id)
        rules = await rules_of_call(intake, call_id, call_in_path=True)
        await repository.insert_budget(session, call_id, rules.budget_total, current_version(call_id))
        budget = await repository.get_budget(session, call_id, for_update=for_update)
        assert budget is not None
    return budget


async def get_budget_page(
    *, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID, after: int, limit: int
) -> dict[str, Any]:
    budget = await ensure_budget(session=session, intake=intake, call_id=call_id)
    entries = await repository.entries_page(session, call_id, after=after, limit=limit)
    more = len(entries) > limit
    entries = entries[:limit]
    out = to_summary(budget)
    out["items"] = [
        {
            "id": e.id,
            "application_id": e.application_id,
            "kind": e.kind,
            "amount": e.amount,
            "reason": e.reason,
            "created_by": e.created_by,
            "created_at": e.created_at,
        }
        for e in entries
    ]
    out["next_cursor"] = encode_seq_cursor(entries[-1].id) if more and entries else None
    return out


async def _refresh(session: AsyncSession, call_id: uuid.UUID) -> Budget:
    budget = await repository.get_budget(session, call_id)
    assert budget is not None
    return budget


# ---------------------------------------------------------------- funding in order


@dataclass
class _Item:
    """One application in the queue being funded: already on the waiting list (`funding` set) or new."""

    evaluation: Evaluation
    app: ReceivedApplication
    funding: Funding | None

    @property
    def requested(self) -> Decimal:
        return (self.evaluation.grant or ZERO) + (self.evaluation.loan or ZERO)

    @property
    def granted(self) -> Decimal:
        return self.funding.granted if self.funding is not None else ZERO

    def candidate(self) -> Candidate:
        score = self.funding.score if self.funding is not None else self.evaluation.score
        return Candidate(str(self.app.application_id), self.app.protocol_number, score, self.requested - self.granted)


@dataclass
class _Outcome:
    funded: list[uuid.UUID] = field(default_factory=list)
    partially_funded: list[uuid.UUID] = field(default_factory=list)
    waiting: list[uuid.UUID] = field(default_factory=list)
    from_waiting_list: list[uuid.UUID] = field(default_factory=list)
    committed_now: Decimal = ZERO
    changes: list[dict[str, Any]] = field(default_factory=list)


def split(grant: Decimal, loan: Decimal, amount: Decimal) -> tuple[Decimal, Decimal]:
    """Grant and loan of `amount` out of a request of grant + loan, in the request's proportion (grant floored)."""
    requested = grant + loan
    if amount >= requested:
        return grant, loan
    part = floor_cent(grant * amount / requested)
    return part, amount - part


def _ordered(items: list[_Item], procedure: Literal["first_come", "ranking"]) -> list[Candidate]:
    """Partially funded applications first (they were reached before anyone still waiting), then the rest, both
    in the call's order (`shared.domain.allocation.ranking_order`)."""
    partial = [i.candidate() for i in items if i.funding is not None and i.funding.status == "partially_funded"]
    rest = [i.candidate() for i in items if i.funding is None or i.funding.status != "partially_funded"]
    missing = [c.application_id for c in rest if procedure == "ranking" and c.score is None]
    if missing:
        raise Conflict(
            "Domande valutate senza punteggio: la graduatoria non si può formare.",
            "Evaluated applications without a merit score: the ranking cannot be formed.",
            extra={"application_ids": missing[:50]},
        )
    return ranking_order(partial, procedure) + ranking_order(rest, procedure)


async def _fund_in_order(
    *, session: AsyncSession, actor: Actor, rules: CallRules, budget: Budget, items: list[_Item], reason: str
) -> _Outcome:
    """Fund `items` (the waiting list and any new applications) in the call's order with what is available.
    The caller holds the budget row's lock."""
    out = _Outcome()
    if not items:
        return out
    by_id = {str(i.app.application_id): i for i in items}
    result = scorrimento(
        _ordered(items, rules.procedure), ZERO, available(budget), partial_funding_of_last=rules.partial_funding_of_last
    )
    new_rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    who = actor.principal.client_id
    for funded in result.funded:
        item = by_id[funded.application_id]
        if not await repository.commit(session, budget.call_id, funded.amount):
            # Unreachable while the budget row is locked; the CHECK would refuse it anyway.
            raise Conflict("Il budget del bando non basta più.", "The call's budget no longer covers this aid.")
        out.committed_now += funded.amount
        granted = item.granted + funded.amount
        grant, loan = split(item.evaluation.grant or ZERO, item.evaluation.loan or ZERO, granted)
        status = "funded" if granted >= item.requested else "partially_funded"
        (out.funded if status == "funded" else out.partially_funded).append(item.app.application_id)
        entries.append(
            {
                "call_id": budget.call_id,
                "application_id": item.app.application_id,
                "kind": "commitment",
                "amount": funded.amount,
                "reason": reason,
                "created_by": who,
            }
        )
        change = {
            "application_id": str(item.app.application_id),
            "status": status,
            "granted": str(granted),
            "grant": str(grant),
            "loan": str(loan),
        }
        out.changes.append(change)
        if item.funding is None:
            new_rows.append(_new_row(item, status=status, granted=granted, grant=grant, loan=loan))
            continue
        f = item.funding
        was = f.status
        f.status, f.granted, f.grant, f.loan = status, granted, grant, loan
        f.partial = status == "partially_funded" or f.partial
        f.version += 1
        await session.flush()
        out.from_waiting_list.append(f.application_id)
        await _emit(
            session,
            actor,
            "funding.granted_from_waiting_list",
            item.app,
            {
                "application_id": f.application_id,
                "call_id": f.call_id,
                "company_id": item.app.company_id,
                "protocol_number": f.protocol_number,
                "previous_status": was,
                "status": status,
                "requested": f.requested,
                "granted": granted,
                "grant": grant,
                "loan": loan,
                "committed_now": funded.amount,
                "reason": reason,
            },
        )
    for app_id in result.waiting:
        item = by_id[app_id]
        if item.funding is None:
            out.waiting.append(item.app.application_id)
            out.changes.append({"application_id": app_id, "status": "waiting"})
            new_rows.append(_new_row(item, status="waiting", granted=ZERO, grant=ZERO, loan=ZERO))
    inserted = set(await repository.insert_fundings(session, new_rows))
    if len(inserted) != len(new_rows):
        # Another transaction allocated one of them: unreachable under the budget lock; refuse rather than guess.
        raise Conflict("Una domanda è già stata assegnata al budget.", "An application was already allocated.")
    await repository.add_entries(session, entries)
    return out


def _new_row(item: _Item, *, status: str, granted: Decimal, grant: Decimal, loan: Decimal) -> dict[str, Any]:
    return {
        "application_id": item.app.application_id,
        "call_id": item.app.call_id,
        "status": status,
        "requested": item.requested,
        "granted": granted,
        "grant": grant,
        "loan": loan,
        "partial": status == "partially_funded",
        "protocol_number": item.app.protocol_number,
        "score": item.evaluation.score,
        "version": 1,
    }


async def _emit(
    session: AsyncSession, actor: Actor, event_type: str, app: ReceivedApplication, payload: dict[str, Any]
) -> None:
    await record_event(
        session,
        actor,
        event_type=event_type,
        subject_type="funding",
        subject_id=app.application_id,  # a funding is the application's: read at /v1/fundings/{application_id}
        payload=payload,
        partner_id=partner_of(app),
        company_id=app.company_id,
    )


async def _queue(session: AsyncSession, call_id: uuid.UUID) -> list[_Item]:
    return [_Item(r.Evaluation, r.ReceivedApplication, r.Funding) for r in await repository.queue(session, call_id)]


# ---------------------------------------------------------------- admission


def not_admitted_reasons(ev: Evaluation) -> list[dict[str, Any]]:
    """Every reason an evaluation gives for not admitting: its failed admissibility checks, a failed merit
    verdict, no aid left (e.g. de minimis ceiling reached)."""
    reasons: list[dict[str, Any]] = []
    for check in ev.admissibility_checks or []:
        if check.get("outcome") == "fail":
            reasons.append(
                {
                    "code": check.get("code"),
                    "article": check.get("article"),
                    "detail_it": check.get("detail_it"),
                    "detail_en": check.get("detail_en"),
                }
            )
    if ev.merit_verdict == MERIT_FAILED:
        reasons.append(
            {
                "code": "merit_below_pass_mark",
                "article": None,
                "score": str(ev.score),
                "detail_it": "Punteggio di merito inferiore alla soglia del bando.",
                "detail_en": "Merit score below the call's pass mark.",
            }
        )
    refusal = (ev.funding or {}).get("reason")
    if refusal:
        reasons.append(
            {
                "code": str(refusal),
                "article": None,
                "detail_it": "Aiuto non concedibile: " + str(refusal) + ".",
                "detail_en": "The aid cannot be granted: " + str(refusal) + ".",
            }
        )
    if not reasons and ev.stage == EVALUATED and (ev.grant or ZERO) + (ev.loan or ZERO) <= 0:
        reasons.append(
            {
                "code": "no_aid",
                "article": None,
                "detail_it": "Nessun aiuto concedibile.",
                "detail_en": "No aid can be granted.",
            }
        )
    return reasons


def is_admitted(ev: Evaluation) -> bool:
    return ev.stage == EVALUATED and ev.merit_verdict != MERIT_FAILED and (ev.grant or ZERO) + (ev.loan or ZERO) > 0


def is_decided(ev: Evaluation) -> bool:
    """The evaluation is over (either way): the budget may take it."""
    return ev.stage == EVALUATED or ev.stage in NOT_ADMITTED_STAGES or ev.merit_verdict == MERIT_FAILED


# ---------------------------------------------------------------- merit before money

#: how many pending applications a refusal lists (the count is always given)
PENDING_LISTED = 200


def _pending(app: ReceivedApplication, ev: Evaluation | None, reason: str) -> dict[str, Any]:
    return {
        "application_id": str(app.application_id),
        "protocol_number": app.protocol_number,
        "stage": ev.stage if ev is not None else "received",
        "reason": reason,
    }


def _ranking_wait(ev: Evaluation | None) -> str | None:
    """Why a ranking cannot be formed yet because of this application (None: it is ready, either way)."""
    if ev is None:
        return "not_evaluated"
    if not is_decided(ev):
        return "evaluation_in_progress"
    if is_admitted(ev) and ev.score is None:
        return "merit_score_missing"
    return None


async def _ranking_ready(
    *, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID, approving: uuid.UUID | None = None
) -> list[Any]:
    """A ranking is formed only once the window has closed and every admissible application has a final score or
    an exclusion with its reason; a single approval besides needs every other admitted application allocated
    (else it would jump the ranking). Returns the call's applications not allocated yet; refuses otherwise."""
    closes = await window_closes_at(intake, call_id)
    rows = await repository.not_allocated(session, call_id)
    pending = []
    for r in rows:
        reason = _ranking_wait(r.Evaluation)
        if (
            reason is None
            and approving is not None
            and r.ReceivedApplication.application_id != approving
            and is_admitted(r.Evaluation)
        ):
            reason = "not_allocated"
        if reason is not None:
            pending.append(_pending(r.ReceivedApplication, r.Evaluation, reason))
    window_open = datetime.now(UTC) < closes
    if window_open or pending:
        why_it = "il bando è ancora aperto" if window_open else "alcune domande non hanno un esito definitivo"
        why_en = "the call's window is still open" if window_open else "some applications have no final outcome"
        raise DeskError(
            f"La graduatoria non si può formare: {why_it}.",
            f"The ranking cannot be formed: {why_en}.",
            kind=RANKING_NOT_READY,
            extra={
                "window_open": window_open,
                "window_closes_at": closes.isoformat(),
                "pending_count": len(pending),
                "pending": pending[:PENDING_LISTED],
            },
        )
    return rows


async def _earlier_first(*, session: AsyncSession, call_id: uuid.UUID, app: ReceivedApplication) -> None:
    """First-come: refuse to fund `app` while an application with an earlier protocol number is undecided, or
    decided and admitted but not allocated (it would be skipped)."""
    pending = []
    for r in await repository.not_allocated(session, call_id):
        earlier: ReceivedApplication = r.ReceivedApplication
        if earlier.protocol_number >= app.protocol_number:
            break
        ev: Evaluation | None = r.Evaluation
        if ev is None:
            pending.append(_pending(earlier, ev, "not_evaluated"))
        elif not is_decided(ev):
            pending.append(_pending(earlier, ev, "evaluation_in_progress"))
        elif is_admitted(ev):
            pending.append(_pending(earlier, ev, "not_allocated"))
    if pending:
        raise DeskError(
            "Domande con numero di protocollo precedente non sono ancora decise o assegnate.",
            "Applications with an earlier protocol number are not decided or allocated yet.",
            kind=PROTOCOL_ORDER_PENDING,
            extra={"pending_count": len(pending), "pending": pending[:PENDING_LISTED]},
        )


def _first_come_prefix(rows: list[Any]) -> tuple[list[Any], int]:
    """First-come: the applications before the first one still undecided (in protocol order); the rest wait for a
    later run, so that none is funded ahead of an earlier one. Returns them and how many were held back."""
    for i, r in enumerate(rows):
        if r.Evaluation is None or not is_decided(r.Evaluation):
            return rows[:i], len(rows) - i
    return rows, 0


# ---------------------------------------------------------------- use cases


async def allocate_call(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, call_id: uuid.UUID
) -> dict[str, Any]:
    """Allocate the budget to every evaluated application of the call not allocated yet (with the waiting list,
    in the call's order). Running it again with nothing new changes nothing."""
    rules = await rules_of_call(intake, call_id, call_in_path=True)
    budget = await ensure_budget(session=session, intake=intake, call_id=call_id, for_update=True)
    before = to_summary(budget)
    held_back = 0
    if rules.procedure == "ranking":
        rows = await _ranking_ready(session=session, intake=intake, call_id=call_id)
    else:
        rows, held_back = _first_come_prefix(await repository.not_allocated(session, call_id))
    admitted = [_Item(r.Evaluation, r.ReceivedApplication, None) for r in rows if is_admitted(r.Evaluation)]
    refused = [r for r in rows if not is_admitted(r.Evaluation)]
    items = await _queue(session, call_id) + admitted
    out = await _fund_in_order(
        session=session, actor=actor, rules=rules, budget=budget, items=items, reason="allocation"
    )
    not_admitted_rows = [
        {
            "application_id": r.ReceivedApplication.application_id,
            "call_id": call_id,
            "status": "not_admitted",
            "requested": (r.Evaluation.grant or ZERO) + (r.Evaluation.loan or ZERO),
            "granted": ZERO,
            "grant": ZERO,
            "loan": ZERO,
            "partial": False,
            "protocol_number": r.ReceivedApplication.protocol_number,
            "score": r.Evaluation.score,
            "version": 1,
        }
        for r in refused
    ]
    if len(await repository.insert_fundings(session, not_admitted_rows)) != len(not_admitted_rows):
        raise Conflict("Una domanda è già stata assegnata al budget.", "An application was already allocated.")
    budget = await _refresh(session, call_id)
    out.changes.extend(
        {"application_id": str(r["application_id"]), "status": "not_admitted"} for r in not_admitted_rows
    )
    await record_audit(
        session,
        actor,
        action="budget.allocated",
        resource_type="budget",
        resource_id=call_id,
        before=before,
        after={**to_summary(budget), "fundings": out.changes},
    )
    if rules.procedure == "ranking" and out.changes:
        first = await repository.last_ranking_number(session, call_id) == 0
        await publish_ranking(
            session=session,
            actor=actor,
            intake=intake,
            call_id=call_id,
            reason="Graduatoria" if first else f"Allocation of {len(rows)} further applications",
        )
    return {
        "call_id": call_id,
        "procedure": rules.procedure,
        "considered": len(rows),
        "funded": len(out.funded),
        "partially_funded": len(out.partially_funded),
        "waiting": len(out.waiting),
        "not_admitted": len(not_admitted_rows),
        "held_back": held_back,
        "committed_now": out.committed_now,
        "budget": to_summary(budget),
    }


async def _approvable(
    *, session: AsyncSession, intake: IntakeClient, application_id: uuid.UUID
) -> tuple[Evaluation, ReceivedApplication, CallRules, Budget]:
    """Everything an approval needs, checked under the budget row's lock: evaluated and admitted, not withdrawn,
    not allocated, and not ahead of its turn (first-come: protocol order; ranking: once the ranking is formed)."""
    row = await repository.evaluation_of(session, application_id)
    if row is None:
        raise NotFound()
    ev: Evaluation = row.Evaluation
    if not is_decided(ev):
        raise Conflict(
            "La domanda non è ancora stata valutata.",
            "The application has not been evaluated yet.",
            extra={"stage": ev.stage},
        )
    if not is_admitted(ev):
        raise Conflict(
            "La domanda non è ammessa: non può essere finanziata.",
            "The application is not admitted: it cannot be funded.",
            extra={"stage": ev.stage},
        )
    rules = await rules_of_call(intake, ev.call_id, call_in_path=True)
    budget = await ensure_budget(session=session, intake=intake, call_id=ev.call_id, for_update=True)
    app = await repository.received(session, application_id)  # read under the lock: a withdrawal waits for us
    assert app is not None
    if app.status != "received":
        raise Conflict("La domanda è stata ritirata.", "The application was withdrawn.")
    existing = await repository.get_funding(session, application_id)
    if existing is not None:
        raise Conflict(
            "La domanda è già stata assegnata al budget.",
            "The application was already allocated.",
            extra={"allocation_status": existing.status},
        )
    if rules.procedure == "ranking":
        await _ranking_ready(session=session, intake=intake, call_id=ev.call_id, approving=application_id)
    else:
        await _earlier_first(session=session, call_id=ev.call_id, app=app)
    return ev, app, rules, budget


APPROVE = "funding.approve"


async def propose_approval(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, application_id: uuid.UUID
) -> MoneyConfirmation:
    """An officer proposes to fund one evaluated application; nothing moves until a second officer confirms."""
    ev, _, _, _ = await _approvable(session=session, intake=intake, application_id=application_id)
    return await four_eyes.propose(
        session,
        actor,
        action=APPROVE,
        resource_type="funding",
        resource_id=application_id,
        detail={
            "requested": str((ev.grant or ZERO) + (ev.loan or ZERO)),
            "grant": str(ev.grant or ZERO),
            "loan": str(ev.loan or ZERO),
        },
    )


async def confirm_approval(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, application_id: uuid.UUID
) -> Funding:
    """A second officer confirms: the application is funded now if the budget covers it (after anyone ahead of
    it on the waiting list), otherwise it goes on the waiting list. Checked again: the state may have moved."""
    ev, app, rules, budget = await _approvable(session=session, intake=intake, application_id=application_id)
    proposal = await four_eyes.confirm(session, actor, action=APPROVE, resource_id=application_id)
    items = await _queue(session, ev.call_id) + [_Item(ev, app, None)]
    out = await _fund_in_order(session=session, actor=actor, rules=rules, budget=budget, items=items, reason="approval")
    funding = await repository.get_funding(session, application_id)
    assert funding is not None
    await record_audit(
        session,
        actor,
        action="funding.approved",
        resource_type="funding",
        resource_id=application_id,
        after={**to_funding_out(funding), "changes": out.changes, **four_eyes.officers(proposal)},
    )
    return funding


@dataclass
class Released:
    funding: Funding
    amount: Decimal
    from_waiting_list: list[uuid.UUID]
    budget: Budget


async def _release(
    *,
    session: AsyncSession,
    actor: Actor,
    rules: CallRules,
    budget: Budget,
    funding: Funding,
    app: ReceivedApplication,
    amount: Decimal,
    status: str,
    kind: ReleaseKind,
    reason: str,
) -> Released:
    """Release `amount` of the funding's commitment, set its status, then run the scorrimento. The caller holds
    the budget row's lock and the funding row's."""
    before = to_funding_out(funding)
    if amount > 0:
        if not await repository.release(session, budget.call_id, amount):
            raise Conflict(
                "Il rilascio porterebbe il budget sotto zero.", "The release would take the budget below zero."
            )
        await repository.add_entries(
            session,
            [
                {
                    "call_id": budget.call_id,
                    "application_id": funding.application_id,
                    "kind": "release",
                    "amount": amount,
                    "reason": f"{kind}: {reason}",
                    "created_by": actor.principal.client_id,
                }
            ],
        )
    granted = funding.granted - amount
    grant, loan = split(funding.grant, funding.loan, granted) if granted > 0 else (ZERO, ZERO)
    funding.status, funding.granted, funding.grant, funding.loan = status, granted, grant, loan
    funding.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action=f"funding.{kind}",
        resource_type="funding",
        resource_id=funding.application_id,
        before=before,
        after={**to_funding_out(funding), "released": str(amount), "reason": reason},
    )
    if amount > 0:
        await _emit(
            session,
            actor,
            "funding.released",
            app,
            {
                "application_id": funding.application_id,
                "call_id": funding.call_id,
                "company_id": app.company_id,
                "kind": kind,
                "amount": amount,
                "reason": reason,
                "status": status,
                "granted": granted,
                "grant": grant,
                "loan": loan,
            },
        )
    granted_ids: list[uuid.UUID] = []
    if amount > 0:
        budget = await _refresh(session, budget.call_id)
        out = await _fund_in_order(
            session=session,
            actor=actor,
            rules=rules,
            budget=budget,
            items=await _queue(session, budget.call_id),
            reason=f"scorrimento after {kind}",
        )
        granted_ids = out.from_waiting_list
        if granted_ids:
            await record_audit(
                session,
                actor,
                action="budget.scorrimento",
                resource_type="budget",
                resource_id=budget.call_id,
                after={"cause": kind, "application_id": str(funding.application_id), "fundings": out.changes},
            )
    return Released(funding, amount, granted_ids, await _refresh(session, budget.call_id))


async def release_amount(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    call_id: uuid.UUID,
    application_id: uuid.UUID,
    amount: Decimal,
    reason: str,
) -> Released:
    """Monitoring's revocation (the whole granted aid) or reduction (part of it): the budget is freed and the
    waiting list moves."""
    rules = await rules_of_call(intake, call_id, call_in_path=True)
    budget = await ensure_budget(session=session, intake=intake, call_id=call_id, for_update=True)
    funding = await repository.get_funding(session, application_id, for_update=True)
    if funding is None or funding.call_id != call_id:
        raise NotFound(
            "Nessun finanziamento per questa domanda in questo bando.", "No funding for this application in this call."
        )
    if funding.status not in repository.COMMITTING_STATUSES:
        raise Conflict(
            "La domanda non ha aiuto impegnato.",
            "The application has no aid committed.",
            extra={"allocation_status": funding.status},
        )
    if amount > funding.granted:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "amount_exceeds_granted",
                    "/amount",
                    f"Importo oltre l'aiuto concesso ({funding.granted}).",
                    f"Amount exceeds the aid granted ({funding.granted}).",
                )
            ]
        )
    app = await repository.received(session, application_id)
    assert app is not None
    revocation = amount == funding.granted
    # A reduced application is not topped up by the scorrimento: it leaves the queue as "funded".
    released = await _release(
        session=session,
        actor=actor,
        rules=rules,
        budget=budget,
        funding=funding,
        app=app,
        amount=amount,
        status="revoked" if revocation else "funded",
        kind="revocation" if revocation else "reduction",
        reason=reason,
    )
    # the de minimis register follows: the concession now counts only the aid left
    from services.evaluation.deminimis.service import update_concession

    await update_concession(
        session=session,
        actor=actor,
        application_id=application_id,
        grant=released.funding.grant,
        loan=released.funding.loan,
        evaluation=row.Evaluation
        if (row := await repository.evaluation_of(session, application_id)) is not None
        else None,
        kind="revoked" if revocation else "reduced",
        reason=reason,
    )
    return released


async def release_application(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    application_id: uuid.UUID,
    kind: Literal["withdrawal", "renunciation"],
    reason: str,
) -> Released | None:
    """The application leaves the allocation (withdrawn, or its decision renounced): its whole commitment is
    released and the waiting list moves; if it was waiting it just leaves the list. None when it had no funding
    row (or was already out)."""
    funding = await repository.get_funding(session, application_id)
    if funding is None:
        return None
    rules = await rules_of_call(intake, funding.call_id, call_in_path=True)
    budget = await ensure_budget(session=session, intake=intake, call_id=funding.call_id, for_update=True)
    funding = await repository.get_funding(session, application_id, for_update=True)
    assert funding is not None
    if funding.status not in repository.QUEUE_STATUSES + repository.COMMITTING_STATUSES:
        return None
    app = await repository.received(session, application_id)
    assert app is not None
    status = "withdrawn" if kind == "withdrawal" else "renounced"
    return await _release(
        session=session,
        actor=actor,
        rules=rules,
        budget=budget,
        funding=funding,
        app=app,
        amount=funding.granted,
        status=status,
        kind=kind,
        reason=reason,
    )


async def apply_amendment(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, amendment: CallAmended
) -> list[uuid.UUID]:
    """A new version of the call's rules (intake's `call.amended`): the ledger takes its budget total and, when
    the budget grew, the waiting list is funded at once (scorrimento), as after a release. An event older than
    the version the budget already follows changes nothing. Returns the applications funded from the list."""
    forget_current(amendment.call_id)
    budget = await repository.get_budget(session, amendment.call_id, for_update=True)
    if budget is None:
        return []  # no budget yet: it is created on first use from the version in force, this one
    if budget.call_version is not None and amendment.version <= budget.call_version:
        return []
    before = to_summary(budget)
    delta = amendment.budget_total - budget.total
    if not await repository.set_total(session, budget.call_id, amendment.budget_total, amendment.version):
        raise Conflict(
            "La nuova dotazione è inferiore all'aiuto già impegnato.",
            "The new budget is below the aid already committed.",
            extra={"committed": str(budget.committed), "budget_total": str(amendment.budget_total)},
        )
    decree = amendment.decree
    why = (
        f"call version {amendment.version}"
        + (f", {decree.number} of {decree.date.isoformat()}" if decree else "")
        + f": {amendment.reason}"
    )
    if delta != 0:
        await repository.add_entries(
            session,
            [
                {
                    "call_id": budget.call_id,
                    "application_id": None,
                    "kind": "amendment",
                    "amount": delta,
                    "reason": why,
                    "created_by": actor.principal.client_id,
                }
            ],
        )
    budget = await _refresh(session, budget.call_id)
    await record_audit(
        session,
        actor,
        action="budget.amended",
        resource_type="budget",
        resource_id=budget.call_id,
        before=before,
        after={
            **to_summary(budget),
            "call_version": amendment.version,
            "decree": decree.model_dump(mode="json") if decree else None,
        },
    )
    if delta <= 0:
        return []
    rules = await rules_of_call(intake, budget.call_id, call_in_path=True)
    out = await _fund_in_order(
        session=session,
        actor=actor,
        rules=rules,
        budget=budget,
        items=await _queue(session, budget.call_id),
        reason="scorrimento after budget increase",
    )
    if out.from_waiting_list:
        await record_audit(
            session,
            actor,
            action="budget.scorrimento",
            resource_type="budget",
            resource_id=budget.call_id,
            after={"cause": "budget_increase", "call_version": amendment.version, "fundings": out.changes},
        )
    return out.from_waiting_list


async def get_funding(session: AsyncSession, principal: Principal, application_id: uuid.UUID) -> Funding:
    """The funding if the caller reaches the application's company (shared.access); anything else is 404."""
    funding = await repository.reachable_funding(session, principal, application_id)
    if funding is None:
        raise NotFound()
    return funding


# ---------------------------------------------------------------- transparency


async def ranking(
    *, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID, after: int, limit: int
) -> dict[str, Any]:
    """The call's funding order: every allocated application by position (`ranking_order`), then those not
    admitted (no position), by protocol number. `after` is how many of that list the caller has seen."""
    rules = await rules_of_call(intake, call_id, call_in_path=True)
    rows = await repository.fundings_of_call(session, call_id)
    ranked = [r for r in rows if r.Funding.status != "not_admitted"]
    by_id = {str(r.Funding.application_id): r for r in ranked}
    procedure = rules.procedure
    if procedure == "ranking" and any(r.Funding.score is None for r in ranked):
        procedure = "first_come"  # not every one is scored yet: show protocol order rather than fail
    order = ranking_order(
        [
            Candidate(
                str(r.Funding.application_id),
                r.Funding.protocol_number,
                r.Funding.score,
                max(r.Funding.requested, CENT),
            )
            for r in ranked
        ],
        procedure,
    )
    listed: list[dict[str, Any]] = []
    for position, c in enumerate(order, start=1):
        listed.append(_ranking_entry(by_id[c.application_id], position))
    for r in sorted((r for r in rows if r.Funding.status == "not_admitted"), key=lambda r: r.Funding.protocol_number):
        listed.append(_ranking_entry(r, None))
    page = listed[after : after + limit]
    return {
        "call_id": call_id,
        "procedure": rules.procedure,
        "items": page,
        "next_cursor": encode_seq_cursor(after + limit) if after + limit < len(listed) else None,
    }


def _ranking_entry(r: Any, position: int | None) -> dict[str, Any]:
    f: Funding = r.Funding
    return {
        "position": position,
        "application_id": f.application_id,
        "company_id": r.company_id,
        "protocol_number": f.protocol_number,
        "score": f.score,
        "status": f.status,
        "outcome": f.status,
        "requested": f.requested,
        "granted": f.granted,
        "grant": f.grant,
        "loan": f.loan,
    }


async def public_budget(*, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID) -> dict[str, Any]:
    budget = await ensure_budget(session=session, intake=intake, call_id=call_id)
    counts = await repository.status_counts(session, call_id)
    return {
        "call_id": call_id,
        "total": budget.total,
        "committed": budget.committed,
        "available": available(budget),
        "freed": budget.freed,
        "funded": counts.get("funded", 0) + counts.get("partially_funded", 0),
        "waiting": counts.get("waiting", 0),
        "updated_at": budget.updated_at,
    }


# ---------------------------------------------------------------- published rankings (numbered, immutable)


def _published_entry(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "position": e["position"],
        "application_id": str(e["application_id"]),
        "company_id": str(e["company_id"]),
        "protocol_number": e["protocol_number"],
        "score": str(e["score"]) if e["score"] is not None else None,
        "outcome": e["outcome"],
        "granted": str(e["granted"]),
    }


async def _company_names(intake: IntakeClient, company_ids: set[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    """The companies' names as intake registers them, for the published ranking (Italian graduatorie name the
    beneficiaries). Intake unreachable: 503, nothing is published."""
    names: dict[uuid.UUID, str | None] = {}
    for company_id in sorted(company_ids):
        try:
            names[company_id] = (await intake.get_company(company_id)).name
        except NotFoundAtPeer:
            names[company_id] = None
        except PeerUnavailable as exc:
            raise DeskError(
                "Il servizio delle imprese (intake) non risponde: riprovare più tardi.",
                "The intake service is unreachable: retry later.",
                kind=PEER_UNAVAILABLE,
                headers={"Retry-After": "30"},
                extra={"peer": exc.peer},
            ) from exc
    return names


async def publish_ranking(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, call_id: uuid.UUID, reason: str
) -> RankingVersion:
    """Store the call's ranking as it stands now as its next numbered version (never changed afterwards)."""
    rules = await rules_of_call(intake, call_id, call_in_path=True)
    entries = (await ranking(session=session, intake=intake, call_id=call_id, after=0, limit=10**9))["items"]
    names = await _company_names(intake, {e["company_id"] for e in entries})
    row = await repository.add_ranking(
        session,
        {
            "call_id": call_id,
            "number": await repository.last_ranking_number(session, call_id) + 1,
            "reason": reason,
            "procedure": rules.procedure,
            "entries": [{**_published_entry(e), "company_name": names.get(e["company_id"])} for e in entries],
            "created_by": actor.principal.client_id,
        },
    )
    await record_audit(
        session,
        actor,
        action="ranking.published",
        resource_type="ranking",
        resource_id=call_id,
        after={"number": row.number, "reason": reason, "entries": len(entries)},
    )
    return row


async def new_ranking_version(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, call_id: uuid.UUID, reason: str
) -> RankingVersion:
    """A new version of a call's published ranking (after an appeal, say), with its reason; the budget row's lock
    keeps two publications apart."""
    await ensure_budget(session=session, intake=intake, call_id=call_id, for_update=True)
    if await repository.last_ranking_number(session, call_id) == 0:
        raise Conflict(
            "Nessuna graduatoria pubblicata: la prima nasce dall'assegnazione.",
            "No ranking published yet: the first comes from the allocation.",
        )
    return await publish_ranking(session=session, actor=actor, intake=intake, call_id=call_id, reason=reason)


def ranking_version_out(row: RankingVersion, *, public: bool = False) -> dict[str, Any]:
    entries = row.entries
    if public:
        entries = [
            {k: e.get(k) for k in ("position", "company_name", "protocol_number", "score", "outcome")} for e in entries
        ]
    return {
        "call_id": row.call_id,
        "number": row.number,
        "reason": row.reason,
        "procedure": row.procedure,
        "created_at": row.created_at,
        "entries": entries,
    }


async def get_ranking_version(session: AsyncSession, call_id: uuid.UUID, number: int) -> RankingVersion:
    row = await repository.ranking_version(session, call_id, number)
    if row is None:
        raise NotFound()
    return row


async def ranking_versions(session: AsyncSession, call_id: uuid.UUID) -> list[RankingVersion]:
    return await repository.rankings_of_call(session, call_id)
