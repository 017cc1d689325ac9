"""Routes of networking with international operators (`/v1/b2b/...`): officers register foreign operators and
B2B events, register operators' preferences, plan the agenda and set meetings by hand; partners and companies
(for the companies within their reach) register interest in an event's operators, withdraw, confirm meetings
and record their outcomes; every authenticated caller reads operators and events, and the meetings of the
companies it reaches (a company's agenda; an operator's agenda for officers and auditors)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.intake.models import B2bEvent, B2bMeeting
from services.intake.networking import service
from services.intake.networking.schemas import (
    B2bAgendaOut,
    B2bEventIn,
    B2bEventOut,
    B2bInterestIn,
    B2bInterestOut,
    B2bWithdrawalIn,
    B2bWithdrawalOut,
    MeetingIn,
    MeetingOut,
    MeetingOutcomeIn,
    MeetingStatus,
    OperatorIn,
    OperatorKind,
    OperatorOut,
    OperatorPreferenceIn,
    OperatorPreferenceOut,
)
from services.intake.principals import Participant, Reader, officer
from shared.db import SessionDep
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of
from shared.schemas import CountryCode

router = APIRouter(prefix="/v1/b2b", tags=["networking"], route_class=UnitOfWorkRoute)


async def valid_event_id(event_id: uuid.UUID, session: SessionDep) -> B2bEvent:
    return await service.get_event(session, event_id)


async def locked_event_id(event_id: uuid.UUID, session: SessionDep) -> B2bEvent:
    """The event locked until commit: every change of its agenda is serialised on it."""
    return await service.get_event(session, event_id, for_update=True)


async def valid_meeting_id(meeting_id: uuid.UUID, session: SessionDep, principal: Reader) -> B2bMeeting:
    return await service.get_meeting(session, principal, meeting_id)


async def changed_meeting_id(meeting_id: uuid.UUID, session: SessionDep, principal: Participant) -> B2bMeeting:
    """The meeting locked after its event's row (the lock order of every writer of an agenda)."""
    meeting = await service.get_meeting(session, principal, meeting_id)
    await service.get_event(session, meeting.event_id, for_update=True)
    return await service.get_meeting(session, principal, meeting_id, for_update=True)


ValidEvent = Annotated[B2bEvent, Depends(valid_event_id)]
LockedEvent = Annotated[B2bEvent, Depends(locked_event_id)]
ValidMeeting = Annotated[B2bMeeting, Depends(valid_meeting_id)]
ChangedMeeting = Annotated[B2bMeeting, Depends(changed_meeting_id)]


# ---------------------------------------------------------------- operators


@router.post(
    "/operators",
    response_model=OperatorOut,
    status_code=201,
    summary="Register a foreign operator",
    description="A buyer, distributor or importer from abroad: country (ISO 3166-1 alpha-2), sectors (ATECO "
    "codes) and interests.",
    dependencies=[officer],
)
async def create_operator(
    body: OperatorIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    operator = await service.create_operator(session=session, actor=actor, data=body)
    response.headers["Location"] = f"/v1/b2b/operators/{operator.id}"
    return service.operator_out(operator)


@router.get(
    "/operators",
    response_model=Page[OperatorOut],
    summary="List foreign operators",
)
async def list_operators(
    _principal: Reader,
    session: SessionDep,
    page: PageDep,
    country: Annotated[CountryCode | None, Query(description="Only operators from this country.")] = None,
    kind: Annotated[OperatorKind | None, Query(description="Only operators of this kind.")] = None,
) -> Any:
    rows = await service.list_operators(session=session, page=page, country=country, kind=kind)
    return page_of(rows, page, service.operator_out)


@router.get(
    "/operators/{operator_id}",
    response_model=OperatorOut,
    summary="Read a foreign operator",
)
async def get_operator(_principal: Reader, operator_id: uuid.UUID, session: SessionDep) -> Any:
    return service.operator_out(await service.get_operator(session, operator_id))


# ---------------------------------------------------------------- events


@router.post(
    "/events",
    response_model=B2bEventOut,
    status_code=201,
    summary="Publish a B2B event",
    description="An incoming mission or a virtual matchmaking day: its time slots (non-overlapping; each with "
    "its capacity, the parallel tables) and the operators taking part. Slots are numbered from 0 in "
    "time order. An event already held may be recorded after the fact.",
    dependencies=[officer],
)
async def create_event(
    body: B2bEventIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    event = await service.create_event(session=session, actor=actor, data=body)
    response.headers["Location"] = f"/v1/b2b/events/{event.id}"
    return await service.event_view(session, event)


@router.get(
    "/events",
    response_model=Page[B2bEventOut],
    summary="List B2B events",
)
async def list_events(_principal: Reader, session: SessionDep, page: PageDep) -> Any:
    rows = await service.list_events(session=session, page=page)
    views = {e.id: await service.event_view(session, e) for e in rows}
    return page_of(rows, page, lambda e: views[e.id])


@router.get(
    "/events/{event_id}",
    response_model=B2bEventOut,
    summary="Read a B2B event",
    description="With each slot's tables taken and each operator's participation.",
)
async def get_event(_principal: Reader, event: ValidEvent, session: SessionDep) -> Any:
    return await service.event_view(session, event)


# ---------------------------------------------------------------- preferences


@router.post(
    "/events/{event_id}/interests",
    response_model=B2bInterestOut,
    status_code=201,
    summary="Register a company's interest in an operator",
    description="For a company within your reach (404 otherwise) and an operator taking part in the event (404 "
    "otherwise), with the company's rank for it (1 = first choice). 409 `already-exists` for the same "
    "operator twice; 409 `conflict` when the company or the operator has withdrawn.",
)
async def register_interest(
    _principal: Participant,
    event: LockedEvent,
    body: B2bInterestIn,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
) -> Any:
    return service.interest_out(await service.register_interest(session=session, actor=actor, event=event, data=body))


@router.get(
    "/events/{event_id}/interests",
    response_model=Page[B2bInterestOut],
    summary="List the companies' interests",
    description="Officers and auditors see all of them; partners and companies those of their companies.",
)
async def list_interests(principal: Reader, event: ValidEvent, session: SessionDep, page: PageDep) -> Any:
    rows = await service.list_interests(session=session, principal=principal, event=event, page=page)
    return page_of(rows, page, service.interest_out)


@router.post(
    "/events/{event_id}/operator-preferences",
    response_model=OperatorPreferenceOut,
    status_code=201,
    summary="Register an operator's preference for a company",
    description="Officers record the rank an operator gives a company (1 = first choice). The agenda pairs "
    "companies and operators by the sum of both ranks. 409 `already-exists` for the same pair twice.",
    dependencies=[officer],
)
async def register_preference(
    event: LockedEvent, body: OperatorPreferenceIn, session: SessionDep, actor: ActorDep, _idem: Idempotent
) -> Any:
    pref = await service.register_preference(session=session, actor=actor, event=event, data=body)
    return {
        "event_id": pref.event_id,
        "operator_id": pref.operator_id,
        "company_id": pref.company_id,
        "rank": pref.rank,
    }


@router.post(
    "/events/{event_id}/withdrawals",
    response_model=B2bWithdrawalOut,
    summary="Withdraw a company or an operator from the event",
    description="A company (by its partner, itself or an officer) or an operator (officers only: 403 otherwise) "
    "pulls out: its meetings become `withdrawn` and their places free. The next planning keeps every "
    "other meeting where it is and only fills the freed places. 409 when already withdrawn.",
)
async def withdraw(
    _principal: Participant,
    event: LockedEvent,
    body: B2bWithdrawalIn,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
) -> Any:
    meetings = await service.withdraw(session=session, actor=actor, event=event, data=body)
    return {"event_id": event.id, "withdrawn_meetings": [service.meeting_out(m, event) for m in meetings]}


# ---------------------------------------------------------------- agenda and meetings


@router.post(
    "/events/{event_id}/agenda",
    response_model=B2bAgendaOut,
    summary="Plan (or re-plan) the event's agenda",
    description='A fair, deterministic matching from the mutual preferences (see the README, "Networking with '
    "international operators\"): pairs by the sum of the company's and the operator's ranks, ties by "
    "a stable hash of the ids; assigned in rounds (every company gets its k-th meeting before anyone "
    "its k+1-th), each in the earliest slot where both are free and a table is left. Nobody is "
    "double-booked and no slot holds more meetings than its tables. Meetings already in the agenda "
    "(confirmed or proposed) stay where they are: a re-plan only fills the free places. Running it "
    "again with nothing changed adds nothing.",
    dependencies=[officer],
)
async def plan_agenda(event: LockedEvent, session: SessionDep, actor: ActorDep, _idem: Idempotent) -> Any:
    added, live = await service.plan(session=session, actor=actor, event=event)
    return {
        "event_id": event.id,
        "added": [service.meeting_out(m, event) for m in added],
        "meetings": [service.meeting_out(m, event) for m in live],
    }


@router.post(
    "/events/{event_id}/meetings",
    response_model=MeetingOut,
    status_code=201,
    summary="Put a meeting in a slot by hand",
    description="Officers only. 409 `slot-taken` when the company or the operator already has a meeting in "
    "that slot, or every table of the slot is taken (`reason`: company_busy, operator_busy, "
    "capacity); 409 `already-exists` when the pair already meets in the agenda.",
    dependencies=[officer],
)
async def add_meeting(
    event: LockedEvent, body: MeetingIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    meeting = await service.add_meeting(session=session, actor=actor, event=event, data=body)
    response.headers["ETag"] = etag_of(meeting.version)
    response.headers["Location"] = f"/v1/b2b/meetings/{meeting.id}"
    return service.meeting_out(meeting, event)


@router.get(
    "/events/{event_id}/meetings",
    response_model=Page[MeetingOut],
    summary="Read the agenda: a company's or an operator's meetings",
    description="The meetings of the companies within your reach (officers and auditors: all), optionally of "
    "one company (its agenda) or one operator (its agenda), or in one state.",
)
async def list_meetings(
    principal: Reader,
    event: ValidEvent,
    session: SessionDep,
    page: PageDep,
    company_id: Annotated[uuid.UUID | None, Query(description="Only this company's meetings.")] = None,
    operator_id: Annotated[uuid.UUID | None, Query(description="Only this operator's meetings.")] = None,
    status: Annotated[MeetingStatus | None, Query(description="Only in this state.")] = None,
) -> Any:
    rows = await service.list_meetings(
        session=session,
        principal=principal,
        event=event,
        page=page,
        company_id=company_id,
        operator_id=operator_id,
        status=status,
    )
    return page_of(rows, page, lambda m: service.meeting_out(m, event))


@router.get(
    "/meetings/{meeting_id}",
    response_model=MeetingOut,
    summary="Read a meeting",
)
async def get_meeting(meeting: ValidMeeting, session: SessionDep, response: Response) -> Any:
    event = await service.get_event(session, meeting.event_id)
    response.headers["ETag"] = etag_of(meeting.version)
    return service.meeting_out(meeting, event)


@router.post(
    "/meetings/{meeting_id}/confirm",
    response_model=MeetingOut,
    summary="Confirm a proposed meeting",
    description="By an officer, or by the company (its partner, itself). Needs `If-Match`. 409 when the meeting "
    "is not `proposed`.",
)
async def confirm_meeting(
    meeting: ChangedMeeting,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, meeting.version)
    meeting = await service.confirm(session=session, actor=actor, meeting=meeting)
    event = await service.get_event(session, meeting.event_id)
    response.headers["ETag"] = etag_of(meeting.version)
    return service.meeting_out(meeting, event)


@router.post(
    "/meetings/{meeting_id}/outcome",
    response_model=MeetingOut,
    summary="Record a meeting's outcome",
    description="After the event, once per meeting, by an officer or the company (its partner, itself): "
    "`no_follow_up`, `lead`, `offer` or `contract` (with `contract_value`, euro as a string, and "
    "`market`, ISO 3166-1 alpha-2). Needs `If-Match`. 409 `meeting-not-held` for a meeting that "
    "did not take place (withdrawn, never confirmed, or its event not over); 409 `already-exists` "
    "when recorded already. Emits `meeting.outcome_recorded`: monitoring adds it to the results of "
    "the company's project and to the statistics.",
)
async def record_outcome(
    meeting: ChangedMeeting,
    body: MeetingOutcomeIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, meeting.version)
    event = await service.get_event(session, meeting.event_id)
    meeting = await service.record_outcome(session=session, actor=actor, meeting=meeting, event=event, data=body)
    response.headers["ETag"] = etag_of(meeting.version)
    return service.meeting_out(meeting, event)
