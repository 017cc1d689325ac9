"""Use cases of the inbox: receive an event once, and keep evaluation's copy of submitted applications.

An event is recorded in `evaluation.inbox` in the request's transaction before it is applied: a
redelivery of the same id finds it and changes nothing; a failure (intake unreachable) rolls the
whole transaction back, inbox row included, so the worker's next attempt applies it for real.
The application's content is read from intake's API (the contract), never from intake's tables.
A submission is evaluated for admissibility in the same transaction (services.evaluation.admissibility).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.admissibility.repository import AWAITING_SIGNATURE, get_with_application
from services.evaluation.admissibility.service import run_admissibility, run_admissibility_batch
from services.evaluation.budget.service import apply_amendment, release_application
from services.evaluation.inbox import repository
from services.evaluation.models import InboxEvent, ReceivedApplication
from shared.access import active_delegates_of, choose_notified, notified_partner
from shared.audit import record_audit, record_audits
from shared.clients.base import NotFoundAtPeer, PeerUnavailable
from shared.clients.intake import IntakeClient
from shared.contracts.applications import ApplicationOut
from shared.contracts.companies import CompanyOut
from shared.errors import PEER_UNAVAILABLE, Conflict, DeskError, NotFound
from shared.events.catalogue import (
    ApplicationFormSigned,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CallAmended,
    CompanyDelegationChanged,
    Envelope,
)
from shared.events.inbox import Inbox, InboxContext, event_data, read_application
from shared.routing import Actor, etag_of

log = structlog.get_logger("evaluation.inbox")

INBOX = Inbox("evaluation", InboxEvent)
_INTAKE_STATUS = {"submitted": "received", "withdrawn": "withdrawn"}


def to_out(app: ReceivedApplication, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": app.application_id,
        "call_id": app.call_id,
        "company_id": app.company_id,
        "protocol_number": app.protocol_number,
        "submitted_at": app.submitted_at,
        "status": app.status,
        "withdrawal_reason": app.withdrawal_reason,
        "received_at": app.received_at,
        "updated_at": app.updated_at,
        "etag": etag_of(app.version),
    }
    if detail:
        out["snapshot"] = app.snapshot
    return out


async def get_received(session: AsyncSession, application_id: uuid.UUID) -> ReceivedApplication:
    app = await repository.get_application(session, application_id)
    if app is None:
        raise NotFound()
    return app


async def _fetch(
    intake: IntakeClient, application_id: uuid.UUID, snapshots: dict[uuid.UUID, ApplicationOut | None] | None = None
) -> ApplicationOut:
    """Intake's copy of the application: from a batch's bulk read when it is there, else one GET."""
    try:
        return await read_application(intake, application_id, snapshots)
    except PeerUnavailable as exc:
        raise DeskError(
            "Il servizio di protocollo (intake) non risponde: riprovare più tardi.",
            "The intake service is unreachable: retry later.",
            kind=PEER_UNAVAILABLE,
            headers={"Retry-After": "30"},
            extra={"peer": exc.peer},
        ) from exc
    except NotFoundAtPeer as exc:
        raise Conflict(
            f"La domanda {application_id} non esiste presso intake.",
            f"Application {application_id} is unknown to intake.",
        ) from exc


def _received_values(
    snapshot: ApplicationOut, *, withdrawal_reason: str | None, partner_id: uuid.UUID | None
) -> dict[str, Any]:
    """The row of a received application from intake's copy; `withdrawal_reason` given means the event says it is
    withdrawn. Refused (409) when intake does not hold it as submitted."""
    status = _INTAKE_STATUS.get(snapshot.status)
    if status is None or snapshot.protocol_number is None or snapshot.submitted_at is None:
        raise Conflict(
            f"La domanda {snapshot.id} non risulta presentata presso intake.",
            f"Application {snapshot.id} is not submitted at intake (status {snapshot.status}).",
        )
    return {
        "application_id": snapshot.id,
        "call_id": snapshot.call_id,
        "company_id": snapshot.company_id,
        "protocol_number": snapshot.protocol_number,
        "submitted_at": snapshot.submitted_at,
        "status": "withdrawn" if withdrawal_reason is not None else status,
        "snapshot": snapshot.model_dump(mode="json"),
        "version": 1,
        "withdrawal_reason": withdrawal_reason,
        # submitted by a partner whose delegation has ended since: its events go to the current delegate
        "partner_id": partner_id,
    }


def _received_audit(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": "application.received",
        "resource_type": "received_application",
        "resource_id": values["application_id"],
        "after": {k: values[k] for k in ("call_id", "company_id", "protocol_number", "status", "withdrawal_reason")},
    }


async def _audit_received(session: AsyncSession, actor: Actor, values: dict[str, Any]) -> None:
    await record_audit(session, actor, **_received_audit(values))


async def _store(
    *, session: AsyncSession, actor: Actor, snapshot: ApplicationOut, withdrawal_reason: str | None
) -> bool:
    """Store intake's copy; `withdrawal_reason` given means the event says it is withdrawn."""
    values = _received_values(
        snapshot,
        withdrawal_reason=withdrawal_reason,
        partner_id=await notified_partner(session, snapshot.company_id, snapshot.partner_id),
    )
    if not await repository.insert_application(session, values):
        return False
    await _audit_received(session, actor, values)
    return True


async def receive_submitted_batch(ctx: InboxContext, events: list[Envelope]) -> None:
    """A batch's submissions stored and evaluated at once: one statement for their delegates, one INSERT for their
    rows (those whose snapshot the batch read and intake holds as submitted or withdrawn), one executemany for
    their audit; then admissibility for those received now whose company the batch read too, in one INSERT of
    evaluations, one of audit records and one of events (`run_admissibility_batch`). Their events are then
    applied: their handler has nothing left to do. The others (a network's application, a call waiting for the
    signed form, a company the batch did not read) are evaluated by their handler, which finds the row stored
    and goes on from there."""
    snapshots: dict[uuid.UUID, ApplicationOut] = {}
    event_ids: dict[uuid.UUID, list[uuid.UUID]] = {}
    for event in events:
        try:
            data = ApplicationSubmitted.model_validate(event.data)
        except ValidationError:
            continue  # its handler refuses it
        snapshot = ctx.snapshots.get(data.application_id)
        if snapshot is not None and _INTAKE_STATUS.get(snapshot.status) is not None:
            snapshots[snapshot.id] = snapshot
            event_ids.setdefault(snapshot.id, []).append(event.id)
    if not snapshots:
        return
    delegates = await active_delegates_of(ctx.session, {s.company_id for s in snapshots.values()})
    rows: list[dict[str, Any]] = []
    for snapshot in snapshots.values():
        try:
            partner = choose_notified(snapshot.partner_id, delegates.get(snapshot.company_id, []))
            rows.append(_received_values(snapshot, withdrawal_reason=None, partner_id=partner))
        except Conflict:
            continue  # not submitted after all: its handler refuses it
    stored = await repository.insert_applications(ctx.session, rows)
    await record_audits(ctx.session, ctx.actor, [_received_audit(v) for v in rows if v["application_id"] in stored])
    received = [v for v in rows if v["application_id"] in stored and v["status"] == "received"]
    # the handlers evaluate those received now (a withdrawn one is only kept) unless evaluated here
    ctx.prepared.update(v["application_id"] for v in received)
    evaluated = await run_admissibility_batch(
        session=ctx.session,
        actor=ctx.actor,
        intake=ctx.intake,
        applications=[
            (snapshots[v["application_id"]], ctx.companies[company_id], v["partner_id"])
            for v in received
            if (company_id := snapshots[v["application_id"]].company_id) in ctx.companies
        ],
    )
    ctx.applied.update(event_id for a in evaluated for event_id in event_ids[a])


async def _receive_submitted(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    application_id: uuid.UUID,
    snapshots: dict[uuid.UUID, ApplicationOut | None] | None = None,
    companies: Mapping[uuid.UUID, CompanyOut] | None = None,
    prepared: Collection[uuid.UUID] = (),
) -> None:
    known = None if application_id in prepared else await repository.get_application(session, application_id)
    if application_id in prepared or known is not None:
        # Already known: its withdrawal arrived first (the stored copy stands), or this batch stored it, or an earlier
        # batch stored it and failed to evaluate it (this being the redelivery): a received one is evaluated if it is
        # not yet.
        if application_id in prepared or (
            known is not None and known.status == "received" and not await repository.evaluated(session, application_id)
        ):
            snapshot = await _fetch(intake, application_id, snapshots)
            await run_admissibility(
                session=session, actor=actor, intake=intake, application=snapshot, companies=companies
            )
        return
    snapshot = await _fetch(intake, application_id, snapshots)
    if (
        await _store(session=session, actor=actor, snapshot=snapshot, withdrawal_reason=None)
        and _INTAKE_STATUS.get(snapshot.status) == "received"
    ):
        # Same transaction: an interrupted run leaves neither the application nor the inbox row, so the
        # redelivery runs it again; the evaluation's primary key makes a second run a no-op.
        await run_admissibility(session=session, actor=actor, intake=intake, application=snapshot, companies=companies)


async def _receive_form_signed(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, data: ApplicationFormSigned
) -> None:
    """The legal representative's signed form was accepted: an evaluation awaiting it runs now (or, if the
    submission has not arrived yet, the submission is received with its signature)."""
    if await repository.get_application(session, data.application_id) is None:
        await _receive_submitted(session=session, actor=actor, intake=intake, application_id=data.application_id)
        return
    found = await get_with_application(session, data.application_id, for_update=True)
    if found is None or found[0].stage != AWAITING_SIGNATURE:
        return  # already evaluated (a redelivery, or a call that does not wait for the signature)
    snapshot = await _fetch(intake, data.application_id)
    if snapshot.status == "submitted":
        await run_admissibility(session=session, actor=actor, intake=intake, application=snapshot)


async def _receive_withdrawn(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, data: ApplicationWithdrawn
) -> None:
    app = await repository.get_application(session, data.application_id, for_update=True)
    if app is None:  # its submission has not arrived yet: fetch it, already withdrawn
        snapshot = await _fetch(intake, data.application_id)
        if await _store(session=session, actor=actor, snapshot=snapshot, withdrawal_reason=data.reason):
            return
        app = await repository.get_application(session, data.application_id, for_update=True)
        assert app is not None
    if app.status == "withdrawn" and app.withdrawal_reason == data.reason:
        return
    before = {"status": app.status, "withdrawal_reason": app.withdrawal_reason, "version": app.version}
    app.status = "withdrawn"
    app.withdrawal_reason = data.reason
    app.version += 1
    app.updated_at = datetime.now(UTC)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="application.withdrawn",
        resource_type="received_application",
        resource_id=app.application_id,
        before=before,
        after={"status": "withdrawn", "withdrawal_reason": data.reason, "version": app.version},
    )
    # A funded application's aid goes back to the call's budget and the waiting list moves (scorrimento); a
    # waiting one just leaves the list.
    await release_application(
        session=session,
        actor=actor,
        intake=intake,
        application_id=app.application_id,
        kind="withdrawal",
        reason=data.reason,
    )


async def _follow_delegation(*, session: AsyncSession, actor: Actor, data: CompanyDelegationChanged) -> None:
    """The company's applications notify its current delegate from now on (the recorded partner while it still
    acts for the company). Who may *see* them does not wait for this event: shared.access reads the company's
    delegations as they are committed."""
    for app in await repository.applications_of_company(session, data.company_id):
        after = choose_notified(app.partner_id, data.delegates)
        if after == app.partner_id:
            continue
        before = app.partner_id
        app.partner_id = after
        app.updated_at = datetime.now(UTC)
        await session.flush()
        await record_audit(
            session,
            actor,
            action="application.partner_changed",
            resource_type="received_application",
            resource_id=app.application_id,
            before={"partner_id": before},
            after={"partner_id": after},
        )


# ---------------------------------------------------------------- the handlers of evaluation's inbox


async def on_submitted(ctx: InboxContext, event: Envelope) -> None:
    if event.id in ctx.applied:
        return  # stored and evaluated by this batch's step
    data = event_data(event, ApplicationSubmitted)
    await _receive_submitted(
        session=ctx.session,
        actor=ctx.actor,
        intake=ctx.intake,
        application_id=data.application_id,
        snapshots=ctx.snapshots,
        companies=ctx.companies,
        prepared=ctx.prepared,
    )


async def on_withdrawn(ctx: InboxContext, event: Envelope) -> None:
    await _receive_withdrawn(
        session=ctx.session, actor=ctx.actor, intake=ctx.intake, data=event_data(event, ApplicationWithdrawn)
    )


async def on_form_signed(ctx: InboxContext, event: Envelope) -> None:
    await _receive_form_signed(
        session=ctx.session, actor=ctx.actor, intake=ctx.intake, data=event_data(event, ApplicationFormSigned)
    )


async def on_call_amended(ctx: InboxContext, event: Envelope) -> None:
    # the budget has one source of truth, the call's rules: the ledger applies the amended total at once
    await apply_amendment(
        session=ctx.session, actor=ctx.actor, intake=ctx.intake, amendment=event_data(event, CallAmended)
    )


async def on_delegation_changed(ctx: InboxContext, event: Envelope) -> None:
    await _follow_delegation(session=ctx.session, actor=ctx.actor, data=event_data(event, CompanyDelegationChanged))


INBOX.register("application.submitted", on_submitted)
INBOX.register_batch_step("application.submitted", receive_submitted_batch)
INBOX.register("application.withdrawn", on_withdrawn)
INBOX.register("application.form_signed", on_form_signed)
INBOX.register("call.amended", on_call_amended)
INBOX.register("company.delegation_changed", on_delegation_changed)
