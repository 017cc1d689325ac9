"""The application facts: monitoring's read model of every application of every call, what the statistics count.

Fed by events (registered on the inbox at import):

* `application.submitted` -> the fact, with the company's province (registered office), ATECO section and size
  class and the application's target markets read from intake's API, and the aid requested (the event's
  estimate, grant + loan);
* `application.withdrawn` -> status withdrawn;
* `evaluation.admissibility_completed` -> admitted (admissible) or status not_admitted;
* `decision.issued` -> status = the decision's outcome; funded outcomes commit grant + loan;
* `decision.accepted` -> funded, committed = grant + loan, status accepted;
* `decision.renounced` -> nothing committed, status renounced;

and, in monitoring's own transactions, payments marked paid (`paid`, net of recoveries), reductions
(`committed` lowered) and revocations (`revoked`). A later event that finds no fact (its submission not received
yet) builds the fact from intake's API first, so the order of arrival does not matter.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.inbox import repository
from services.monitoring.inbox.registry import INBOX, InboxContext, event_data, register_handler
from services.monitoring.peers import fetch_application, fetch_company
from shared.contracts.applications import ApplicationOut
from shared.contracts.companies import CompanyOut
from shared.domain.application_check import ateco_section
from shared.domain.money import ZERO
from shared.events.catalogue import (
    AdmissibilityCompleted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    DecisionAccepted,
    DecisionIssued,
    DecisionRenounced,
    Envelope,
)

log = structlog.get_logger("monitoring.facts")

FUNDED_OUTCOMES = ("funded", "partially_funded")


class _Ids(BaseModel):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID


def _fact_values(app: ApplicationOut, company: CompanyOut, requested_aid: Decimal | None) -> dict[str, Any]:
    return {
        "application_id": app.id,
        "call_id": app.call_id,
        "company_id": app.company_id,
        "province": company.registered_office.province[:2] or None,
        "ateco_section": ateco_section(company.ateco_code),
        "size_class": company.size_class,
        "markets": sorted({m.country for m in app.action_plan.target_markets}),
        "submitted_at": app.submitted_at or app.created_at,
        "requested_aid": requested_aid or ZERO,
        "status": "withdrawn" if app.status == "withdrawn" else "submitted",
    }


async def _ensure(ctx: InboxContext, ids: _Ids, *, requested_aid: Decimal | None = None) -> bool:
    """The fact exists (built from intake's API if it did not). True when it was created now."""
    if await repository.get_fact(ctx.session, ids.application_id) is not None:
        return False
    app = await fetch_application(ctx.intake, ids.application_id, ctx.snapshots)
    company = ctx.companies.get(app.company_id) or await fetch_company(ctx.intake, app.company_id)
    created = await repository.insert_fact(ctx.session, _fact_values(app, company, requested_aid))
    if created:
        log.info("application fact created", application_id=str(app.id))
    return created


def _requested(data: ApplicationSubmitted) -> Decimal | None:
    return data.estimate.grant + data.estimate.loan if data.estimate is not None else None


async def submitted_batch(ctx: InboxContext, events: list[Envelope]) -> None:
    """A batch's submissions: their facts in one INSERT, from the batch's bulk read of intake (those it has)."""
    rows = []
    for event in events:
        try:
            data = ApplicationSubmitted.model_validate(event.data)
        except ValidationError:
            continue  # its handler refuses it
        app = ctx.snapshots.get(data.application_id)
        company = ctx.companies.get(app.company_id) if app is not None else None
        if app is not None and company is not None:
            rows.append(_fact_values(app, company, _requested(data)))
    if rows:
        ctx.prepared.update(await repository.insert_facts(ctx.session, rows))


async def on_submitted(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, ApplicationSubmitted)
    if data.application_id in ctx.prepared:
        return  # stored by this batch with its requested aid
    requested = _requested(data)
    if (
        not await _ensure(ctx, _Ids.model_validate(data.model_dump()), requested_aid=requested)
        and requested is not None
    ):
        await repository.update_fact(ctx.session, data.application_id, requested_aid=requested)


async def on_withdrawn(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, ApplicationWithdrawn)
    await _ensure(ctx, _Ids.model_validate(data.model_dump()))
    await repository.update_fact(ctx.session, data.application_id, status="withdrawn", committed=ZERO)


# an admissibility verdict -> the fact's (admitted, status); any other verdict changes nothing
ADMISSIBILITY = {"admissible": (True, "admitted"), "not_admissible": (False, "not_admitted")}


def _named_application(event: Envelope) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(event.data["application_id"]))
    except (KeyError, TypeError, ValueError):
        return None


async def admissibility_batch(ctx: InboxContext, events: list[Envelope]) -> None:
    """A batch's verdicts on facts that exist, in one UPDATE: the statistics' triggers run once for the batch,
    not once per event. Left to the handler, event by event: an invalid event (refused there), a verdict that
    changes nothing, a fact not there (built from intake first), and every verdict on an application that any
    other new event of the batch names, except its submission (withdrawn, a decision, a second verdict...: their
    order decides the result). A submission does not: its step ran before this one, and its handler changes no
    status of a fact that exists (it sets the aid requested), so the verdict applied now ends where the events
    applied one by one, in either order, would."""
    named: dict[uuid.UUID, int] = {}
    for other in ctx.batch:
        if other.type != "application.submitted" and (a := _named_application(other)) is not None:
            named[a] = named.get(a, 0) + 1
    chosen: dict[uuid.UUID, tuple[uuid.UUID, tuple[bool, str]]] = {}
    for event in events:
        try:
            data = AdmissibilityCompleted.model_validate(event.data)
        except ValidationError:
            continue
        outcome = ADMISSIBILITY.get(data.verdict)
        if outcome is not None and named.get(data.application_id) == 1:
            chosen[data.application_id] = (event.id, outcome)
    if not chosen:
        return
    updated = await repository.set_admissibility(ctx.session, {a: o for a, (_e, o) in chosen.items()})
    ctx.applied.update(event_id for a, (event_id, _o) in chosen.items() if a in updated)


async def on_admissibility(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, AdmissibilityCompleted)
    if event.id in ctx.applied:
        return  # set by this batch's step
    await _ensure(ctx, _Ids.model_validate(data.model_dump()))
    outcome = ADMISSIBILITY.get(data.verdict)
    if outcome is not None:
        admitted, status = outcome
        await repository.update_fact(ctx.session, data.application_id, admitted=admitted, status=status)


async def on_decision_issued(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, DecisionIssued)
    await _ensure(ctx, _Ids.model_validate(data.model_dump()))
    funded = data.outcome in FUNDED_OUTCOMES
    await repository.update_fact(
        ctx.session, data.application_id, status=data.outcome[:16], committed=data.grant + data.loan if funded else ZERO
    )


async def on_decision_accepted(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, DecisionAccepted)
    await _ensure(ctx, _Ids.model_validate(data.model_dump()))
    await repository.update_fact(
        ctx.session,
        data.application_id,
        status="accepted",
        funded=True,
        admitted=True,
        committed=data.grant + data.loan,
    )


async def on_decision_renounced(ctx: InboxContext, event: Envelope) -> None:
    data = event_data(event, DecisionRenounced)
    await _ensure(ctx, _Ids.model_validate(data.model_dump()))
    await repository.update_fact(ctx.session, data.application_id, status="renounced", funded=False, committed=ZERO)


# ---------------------------------------------------------------- monitoring's own changes


async def record_paid(session: AsyncSession, application_id: uuid.UUID, amount: Decimal) -> None:
    """A payment was made (positive) or a recovery collected (negative)."""
    await repository.add_paid(session, application_id, amount)


async def record_outcome(session: AsyncSession, application_id: uuid.UUID, *, kind: str, committed: Decimal) -> None:
    """The project's outcome: completed (full or reduced aid, `committed` what is kept) or revoked."""
    if kind == "revoked":
        await repository.update_fact(session, application_id, status="revoked", revoked=True, committed=ZERO)
    else:
        await repository.update_fact(session, application_id, status="completed", committed=committed)


CONSUMED = {
    "application.submitted": on_submitted,
    "application.withdrawn": on_withdrawn,
    "evaluation.admissibility_completed": on_admissibility,
    "decision.issued": on_decision_issued,
    "decision.accepted": on_decision_accepted,
    "decision.renounced": on_decision_renounced,
}

for _type, _handler in CONSUMED.items():
    register_handler(_type, _handler)
INBOX.register_batch_step("application.submitted", submitted_batch)
# after the submissions' step: a verdict on a fact that step has just stored is applied after it, as in order
INBOX.register_batch_step("evaluation.admissibility_completed", admissibility_batch)
