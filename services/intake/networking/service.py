"""Use cases of networking with international operators: the operators and B2B events (officers), companies'
interests and operators' preferences, the agenda (planned by `shared.domain.matching`, kept across re-plans),
withdrawals, confirmations and meeting outcomes (`meeting.outcome_recorded`, consumed by monitoring). Only the
intake service writes `intake.b2b_*`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import (
    B2bEvent,
    B2bEventOperator,
    B2bInterest,
    B2bMeeting,
    B2bOperator,
    B2bOperatorPreference,
)
from services.intake.networking import repository
from services.intake.networking.schemas import (
    B2bEventIn,
    B2bInterestIn,
    B2bWithdrawalIn,
    MeetingIn,
    MeetingOutcomeIn,
    OperatorIn,
    OperatorPreferenceIn,
)
from shared.access import acting_partner, can_reach_company
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.db import found
from shared.domain.matching import Meeting, Slot, plan_agenda, with_sector_interests
from shared.errors import (
    ALREADY_EXISTS,
    MEETING_NOT_HELD,
    SLOT_TAKEN,
    Conflict,
    DeskError,
    Forbidden,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

# ---------------------------------------------------------------- representations


def operator_out(o: B2bOperator) -> dict[str, Any]:
    return {
        "id": o.id,
        "name": o.name,
        "kind": o.kind,
        "country": o.country,
        "sectors": list(o.sectors),
        "interests": list(o.interests),
        "created_at": o.created_at,
        "etag": etag_of(o.version),
    }


def _slot(event: B2bEvent, index: int) -> dict[str, Any]:
    return event.slots[index]


def event_out(event: B2bEvent, operators: list[B2bEventOperator], loads: dict[int, int]) -> dict[str, Any]:
    return {
        "id": event.id,
        "title": event.title,
        "kind": event.kind,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "slots": [{**s, "taken": loads.get(s["index"], 0)} for s in event.slots],
        "operators": [{"operator_id": o.operator_id, "status": o.status} for o in operators],
        "created_at": event.created_at,
    }


def meeting_out(m: B2bMeeting, event: B2bEvent) -> dict[str, Any]:
    slot = _slot(event, m.slot)
    return {
        "id": m.id,
        "event_id": m.event_id,
        "company_id": m.company_id,
        "operator_id": m.operator_id,
        "slot": m.slot,
        "starts_at": slot["starts_at"],
        "ends_at": slot["ends_at"],
        "status": m.status,
        "origin": m.origin,
        "confirmed_at": m.confirmed_at,
        "outcome": m.outcome,
        "contract_value": m.contract_value,
        "market": m.market,
        "outcome_recorded_at": m.outcome_recorded_at,
        "etag": etag_of(m.version),
    }


def interest_out(i: B2bInterest) -> dict[str, Any]:
    return {
        "id": i.id,
        "event_id": i.event_id,
        "company_id": i.company_id,
        "operator_id": i.operator_id,
        "rank": i.rank,
        "status": i.status,
        "created_at": i.created_at,
    }


def _meeting_snapshot(m: B2bMeeting) -> dict[str, Any]:
    return {
        "event_id": m.event_id,
        "company_id": m.company_id,
        "operator_id": m.operator_id,
        "slot": m.slot,
        "status": m.status,
        "outcome": m.outcome,
        "contract_value": m.contract_value,
        "market": m.market,
    }


def _company_not_found() -> NotFound:
    return NotFound("Impresa non trovata.", "Company not found.")


def _operator_not_in_event() -> NotFound:
    return NotFound("L'operatore non partecipa all'evento.", "The operator does not take part in the event.")


# ---------------------------------------------------------------- operators and events


async def create_operator(*, session: AsyncSession, actor: Actor, data: OperatorIn) -> B2bOperator:
    operator = B2bOperator(id=uuid.uuid4(), version=1, **data.model_dump())
    repository.add(session, operator)
    await session.flush()
    await session.refresh(operator)
    await record_audit(
        session,
        actor,
        action="b2b.operator_created",
        resource_type="b2b_operator",
        resource_id=operator.id,
        after=data.model_dump(),
    )
    return operator


async def get_operator(session: AsyncSession, operator_id: uuid.UUID) -> B2bOperator:
    return found(await repository.get_operator(session, operator_id))


async def list_operators(
    *, session: AsyncSession, page: PageParams, country: str | None, kind: str | None
) -> list[B2bOperator]:
    return await repository.list_operators(session, page, country=country, kind=kind)


async def create_event(*, session: AsyncSession, actor: Actor, data: B2bEventIn) -> B2bEvent:
    known = await repository.existing_operators(session, data.operator_ids)
    missing = [str(i) for i in data.operator_ids if i not in known]
    if missing:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "operator_unknown",
                    "/operator_ids",
                    "Operatori non registrati: " + ", ".join(missing) + ".",
                    "Operators not registered: " + ", ".join(missing) + ".",
                    extra={"operator_ids": missing},
                )
            ]
        )
    ordered = sorted(data.slots, key=lambda s: s.starts_at)
    slots = [
        {
            "index": i,
            "starts_at": s.starts_at.astimezone(UTC).isoformat(),
            "ends_at": s.ends_at.astimezone(UTC).isoformat(),
            "capacity": s.capacity,
        }
        for i, s in enumerate(ordered)
    ]
    event = B2bEvent(
        id=uuid.uuid4(),
        title=data.title,
        kind=data.kind,
        starts_at=ordered[0].starts_at,
        ends_at=ordered[-1].ends_at,
        slots=slots,
        version=1,
    )
    repository.add(session, event)
    await session.flush()
    repository.add(
        session, *(B2bEventOperator(event_id=event.id, operator_id=o, status="active") for o in data.operator_ids)
    )
    await session.flush()
    await session.refresh(event)
    await record_audit(
        session,
        actor,
        action="b2b.event_created",
        resource_type="b2b_event",
        resource_id=event.id,
        after={"title": event.title, "kind": event.kind, "slots": slots, "operator_ids": data.operator_ids},
    )
    return event


async def get_event(session: AsyncSession, event_id: uuid.UUID, *, for_update: bool = False) -> B2bEvent:
    return found(await repository.get_event(session, event_id, for_update=for_update))


async def event_view(session: AsyncSession, event: B2bEvent) -> dict[str, Any]:
    return event_out(
        event, await repository.event_operators(session, event.id), await repository.slot_loads(session, event.id)
    )


async def list_events(*, session: AsyncSession, page: PageParams) -> list[B2bEvent]:
    return await repository.list_events(session, page)


# ---------------------------------------------------------------- preferences


async def _active_operator(session: AsyncSession, event: B2bEvent, operator_id: uuid.UUID) -> B2bEventOperator:
    taking_part = await repository.event_operator(session, event.id, operator_id)
    if taking_part is None:
        raise _operator_not_in_event()
    if taking_part.status != "active":
        raise Conflict("L'operatore si è ritirato dall'evento.", "The operator has withdrawn from the event.")
    return taking_part


async def register_interest(
    *, session: AsyncSession, actor: Actor, event: B2bEvent, data: B2bInterestIn
) -> B2bInterest:
    principal = actor.principal
    if not (
        await can_reach_company(session, principal, data.company_id)
        and await repository.company_exists(session, data.company_id)
    ):
        raise _company_not_found()
    await _active_operator(session, event, data.operator_id)
    if await repository.company_withdrawn(session, event.id, data.company_id):
        raise Conflict("L'impresa si è ritirata dall'evento.", "The company has withdrawn from the event.")
    if await repository.get_interest(session, event.id, data.company_id, data.operator_id) is not None:
        raise DeskError(
            "L'impresa ha già indicato questo operatore.",
            "The company already registered interest in this operator.",
            kind=ALREADY_EXISTS,
        )
    interest = B2bInterest(
        id=uuid.uuid4(),
        event_id=event.id,
        company_id=data.company_id,
        operator_id=data.operator_id,
        rank=data.rank,
        status="active",
        created_by=principal.client_id,
    )
    repository.add(session, interest)
    await session.flush()
    await session.refresh(interest)
    await record_audit(
        session,
        actor,
        action="b2b.interest_registered",
        resource_type="b2b_interest",
        resource_id=interest.id,
        after=interest_out(interest),
    )
    return interest


async def list_interests(
    *, session: AsyncSession, principal: Principal, event: B2bEvent, page: PageParams
) -> list[B2bInterest]:
    return await repository.list_interests(session, principal, event.id, page)


async def register_preference(
    *, session: AsyncSession, actor: Actor, event: B2bEvent, data: OperatorPreferenceIn
) -> B2bOperatorPreference:
    if not await repository.company_exists(session, data.company_id):
        raise _company_not_found()
    await _active_operator(session, event, data.operator_id)
    if await repository.get_preference(session, event.id, data.operator_id, data.company_id) is not None:
        raise DeskError(
            "L'operatore ha già una preferenza per questa impresa.",
            "The operator already has a preference for this company.",
            kind=ALREADY_EXISTS,
        )
    pref = B2bOperatorPreference(
        event_id=event.id, operator_id=data.operator_id, company_id=data.company_id, rank=data.rank
    )
    repository.add(session, pref)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="b2b.operator_preference_registered",
        resource_type="b2b_event",
        resource_id=event.id,
        after=data.model_dump(),
    )
    return pref


# ---------------------------------------------------------------- the agenda


async def plan(*, session: AsyncSession, actor: Actor, event: B2bEvent) -> tuple[list[B2bMeeting], list[B2bMeeting]]:
    """Fill the event's agenda from the mutual preferences (`shared.domain.matching.plan_agenda`): every live
    meeting stays where it is, new ones take the free places. `event` is locked by the caller. Returns the
    meetings added and every live meeting."""
    kept = await repository.live_meetings(session, event.id)
    interests = await repository.active_interests(session, event.id)
    operators = [o.operator_id for o in await repository.event_operators(session, event.id) if o.status == "active"]
    company_prefs: dict[str, dict[str, int]] = {}
    for i in interests:
        company_prefs.setdefault(str(i.company_id), {})[str(i.operator_id)] = i.rank
    explicit: dict[str, dict[str, int]] = {}
    for p in await repository.operator_preferences(session, event.id):
        explicit.setdefault(str(p.operator_id), {})[str(p.company_id)] = p.rank
    # an operator's sectors rank the companies it buys from when no officer ranked them
    operator_prefs = with_sector_interests(
        explicit,
        {str(o): s for o, s in (await repository.operator_sectors(session, operators)).items()},
        {str(c): a for c, a in (await repository.company_ateco(session, {i.company_id for i in interests})).items()},
    )
    new = plan_agenda(
        slots=[Slot(s["index"], s["capacity"]) for s in event.slots],
        company_prefs=company_prefs,
        operator_prefs=operator_prefs,
        kept=[Meeting(m.slot, str(m.company_id), str(m.operator_id)) for m in kept],
        operators=[str(o) for o in operators],
    )
    added = [
        B2bMeeting(
            id=uuid.uuid4(),
            event_id=event.id,
            company_id=uuid.UUID(m.company),
            operator_id=uuid.UUID(m.operator),
            slot=m.slot,
            status="proposed",
            origin="planned",
            version=1,
        )
        for m in new
    ]
    repository.add(session, *added)
    await session.flush()
    for m in added:
        await session.refresh(m)
    await record_audit(
        session,
        actor,
        action="b2b.agenda_planned",
        resource_type="b2b_event",
        resource_id=event.id,
        after={"added": [_meeting_snapshot(m) for m in added], "kept": len(kept)},
    )
    return added, await repository.live_meetings(session, event.id)


def _taken(reason_it: str, reason_en: str, slot: int, reason: str) -> DeskError:
    return DeskError(
        f"La fascia {slot} non è disponibile: {reason_it}.",
        f"Slot {slot} is not available: {reason_en}.",
        kind=SLOT_TAKEN,
        extra={"slot": slot, "reason": reason},
    )


async def add_meeting(*, session: AsyncSession, actor: Actor, event: B2bEvent, data: MeetingIn) -> B2bMeeting:
    """An officer puts a meeting in a slot by hand; refused (409 `slot-taken`) when the company or the operator
    already meets someone in that slot or its tables are all taken. `event` is locked by the caller."""
    if data.slot >= len(event.slots):
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "slot_unknown",
                    "/slot",
                    "L'evento non ha questa fascia.",
                    "The event has no such slot.",
                    extra={"slots": len(event.slots)},
                )
            ]
        )
    if not await repository.company_exists(session, data.company_id):
        raise _company_not_found()
    await _active_operator(session, event, data.operator_id)
    if await repository.company_withdrawn(session, event.id, data.company_id):
        raise Conflict("L'impresa si è ritirata dall'evento.", "The company has withdrawn from the event.")
    live = await repository.live_meetings(session, event.id)
    if any(m.company_id == data.company_id and m.operator_id == data.operator_id for m in live):
        raise DeskError(
            "L'impresa e l'operatore hanno già un incontro in agenda.",
            "The company and the operator already have a meeting in the agenda.",
            kind=ALREADY_EXISTS,
        )
    in_slot = [m for m in live if m.slot == data.slot]
    if any(m.company_id == data.company_id for m in in_slot):
        raise _taken(
            "l'impresa ha già un incontro", "the company already has a meeting in it", data.slot, "company_busy"
        )
    if any(m.operator_id == data.operator_id for m in in_slot):
        raise _taken(
            "l'operatore ha già un incontro", "the operator already has a meeting in it", data.slot, "operator_busy"
        )
    if len(in_slot) >= _slot(event, data.slot)["capacity"]:
        raise _taken("tutti i tavoli sono occupati", "every table is taken", data.slot, "capacity")
    meeting = B2bMeeting(
        id=uuid.uuid4(),
        event_id=event.id,
        company_id=data.company_id,
        operator_id=data.operator_id,
        slot=data.slot,
        status="proposed",
        origin="manual",
        version=1,
    )
    repository.add(session, meeting)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # pragma: no cover - the event's lock makes the checks above authoritative
        raise _taken("occupata", "taken", data.slot, "taken") from exc
    await session.refresh(meeting)
    await record_audit(
        session,
        actor,
        action="b2b.meeting_added",
        resource_type="b2b_meeting",
        resource_id=meeting.id,
        after=_meeting_snapshot(meeting),
    )
    return meeting


async def withdraw(*, session: AsyncSession, actor: Actor, event: B2bEvent, data: B2bWithdrawalIn) -> list[B2bMeeting]:
    """A company (its partner, itself or an officer) or an operator (officers) pulls out of the event: its live
    meetings become `withdrawn`, freeing their places for the next planning, which keeps every other meeting
    where it is. `event` is locked by the caller."""
    principal = actor.principal
    if data.company_id is not None:
        if not (
            await can_reach_company(session, principal, data.company_id)
            and await repository.company_exists(session, data.company_id)
        ):
            raise _company_not_found()
        withdrawn = await repository.withdraw_interests(session, event.id, data.company_id)
        meetings = await repository.live_meetings_of(session, event.id, company_id=data.company_id)
        if withdrawn == 0 and not meetings:
            raise Conflict(
                "L'impresa non partecipa all'evento (o si è già ritirata).",
                "The company does not take part in the event (or has already withdrawn).",
            )
    else:
        if principal.kind != "officer":
            raise Forbidden("Solo un funzionario ritira un operatore.", "Only an officer withdraws an operator.")
        assert data.operator_id is not None
        taking_part = await _active_operator(session, event, data.operator_id)
        taking_part.status = "withdrawn"
        taking_part.withdrawn_at = datetime.now(UTC)
        meetings = await repository.live_meetings_of(session, event.id, operator_id=data.operator_id)
    now = datetime.now(UTC)
    for m in meetings:
        m.status = "withdrawn"
        m.withdrawn_at = now
        m.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="b2b.withdrawn",
        resource_type="b2b_event",
        resource_id=event.id,
        after={**data.model_dump(), "meetings": [m.id for m in meetings]},
    )
    return meetings


async def list_meetings(
    *,
    session: AsyncSession,
    principal: Principal,
    event: B2bEvent,
    page: PageParams,
    company_id: uuid.UUID | None,
    operator_id: uuid.UUID | None,
    status: str | None,
) -> list[B2bMeeting]:
    return await repository.list_meetings(
        session, principal, event.id, page, company_id=company_id, operator_id=operator_id, status=status
    )


async def get_meeting(
    session: AsyncSession, principal: Principal, meeting_id: uuid.UUID, *, for_update: bool = False
) -> B2bMeeting:
    return found(await repository.get_meeting(session, principal, meeting_id, for_update=for_update))


async def confirm(*, session: AsyncSession, actor: Actor, meeting: B2bMeeting) -> B2bMeeting:
    if meeting.status != "proposed":
        raise Conflict(
            f"L'incontro è {meeting.status}: solo un incontro proposto si conferma.",
            f"The meeting is {meeting.status}: only a proposed meeting can be confirmed.",
            extra={"status": meeting.status},
        )
    before = _meeting_snapshot(meeting)
    meeting.status = "confirmed"
    meeting.confirmed_by = actor.principal.client_id
    meeting.confirmed_at = datetime.now(UTC)
    meeting.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="b2b.meeting_confirmed",
        resource_type="b2b_meeting",
        resource_id=meeting.id,
        before=before,
        after=_meeting_snapshot(meeting),
    )
    return meeting


async def record_outcome(
    *, session: AsyncSession, actor: Actor, meeting: B2bMeeting, event: B2bEvent, data: MeetingOutcomeIn
) -> B2bMeeting:
    """The outcome of a meeting that took place: confirmed, and its event over. Once per meeting. Emits
    `meeting.outcome_recorded`, which monitoring adds to the company's project results and the statistics."""
    now = datetime.now(UTC)
    if meeting.status != "confirmed":
        raise DeskError(
            f"L'incontro non è avvenuto (stato {meeting.status}): nessun esito.",
            f"The meeting did not take place (status {meeting.status}): it has no outcome.",
            kind=MEETING_NOT_HELD,
            extra={
                "status": meeting.status,
                "reason": "withdrawn" if meeting.status == "withdrawn" else "not_confirmed",
            },
        )
    if event.ends_at > now:
        raise DeskError(
            "L'evento non è ancora concluso: gli esiti si registrano dopo la sua fine.",
            "The event has not ended yet: outcomes are recorded after its end.",
            kind=MEETING_NOT_HELD,
            extra={"ends_at": event.ends_at.isoformat(), "reason": "event_not_ended"},
        )
    if meeting.outcome is not None:
        raise DeskError(
            "L'esito dell'incontro è già registrato.",
            "The meeting's outcome is already recorded.",
            kind=ALREADY_EXISTS,
            extra={"outcome": meeting.outcome},
        )
    before = _meeting_snapshot(meeting)
    meeting.outcome = data.outcome
    meeting.contract_value = data.contract_value
    meeting.market = data.market
    meeting.outcome_recorded_by = actor.principal.client_id
    meeting.outcome_recorded_at = now
    meeting.version += 1
    await session.flush()
    operator = await get_operator(session, meeting.operator_id)
    await record_audit(
        session,
        actor,
        action="meeting.outcome_recorded",
        resource_type="b2b_meeting",
        resource_id=meeting.id,
        before=before,
        after=_meeting_snapshot(meeting),
    )
    await record_event(
        session,
        actor,
        event_type="meeting.outcome_recorded",
        subject_type="meeting",
        subject_id=meeting.id,
        payload={
            "meeting_id": meeting.id,
            "event_id": event.id,
            "event_title": event.title,
            "company_id": meeting.company_id,
            "operator_id": meeting.operator_id,
            "operator_country": operator.country,
            "outcome": meeting.outcome,
            "value": None if meeting.contract_value is None else str(meeting.contract_value),
            "market": meeting.market,
            "recorded_at": now,
        },
        partner_id=acting_partner(actor.principal),
        company_id=meeting.company_id,
    )
    return meeting
