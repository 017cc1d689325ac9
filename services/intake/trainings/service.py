"""Use cases of the training catalogue (officers) and of enrolling companies' staff (partners, companies,
officers). Only the intake service writes `intake.trainings` and `intake.enrolments`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Enrolment, Training
from services.intake.trainings import repository
from services.intake.trainings.schemas import EnrolmentIn, EnrolmentOut, TrainingIn, TrainingOut
from shared.access import acting_partner, can_reach_company
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.errors import (
    ALREADY_EXISTS,
    CAPACITY_EXHAUSTED,
    Conflict,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

_EDITABLE = ("title", "topic", "format", "description", "starts_at", "ends_at", "location", "capacity")


# ---------------------------------------------------------------- representations


def training_out(t: Training) -> TrainingOut:
    return TrainingOut(
        id=t.id,
        title=t.title,
        topic=t.topic,
        format=t.format,
        description=t.description,
        starts_at=t.starts_at,
        ends_at=t.ends_at,
        location=t.location,
        online=t.location is None,
        capacity=t.capacity,
        enrolled=t.enrolled,
        places_left=max(t.capacity - t.enrolled, 0),
        created_at=t.created_at,
        etag=etag_of(t.version),
    )


def enrolment_version(e: Enrolment) -> int:
    """Enrolments have one change in their life (cancellation), so their version is derived from the status."""
    return 1 if e.status == "enrolled" else 2


def enrolment_out(e: Enrolment) -> EnrolmentOut:
    return EnrolmentOut(
        id=e.id,
        training_id=e.training_id,
        company_id=e.company_id,
        participant_name=e.participant_name,
        participant_email=e.participant_email,
        participant_role=e.participant_role,
        status=e.status,
        created_at=e.created_at,
        cancelled_at=e.cancelled_at,
        etag=etag_of(enrolment_version(e)),
    )


def _snapshot(t: Training) -> dict[str, Any]:
    return {f: getattr(t, f) for f in (*_EDITABLE, "enrolled", "version")}


def _enrolment_snapshot(e: Enrolment) -> dict[str, Any]:
    return {
        "training_id": e.training_id,
        "company_id": e.company_id,
        "participant_name": e.participant_name,
        "participant_email": e.participant_email,
        "participant_role": e.participant_role,
        "status": e.status,
    }


def _not_in_future(now: datetime) -> ValidationFailed:
    return ValidationFailed(
        errors=[
            ProblemError(
                "datetime_future",
                "/starts_at",
                "La sessione deve iniziare nel futuro.",
                "The session must start in the future.",
                extra={"now": now.isoformat()},
            )
        ]
    )


def _started() -> Conflict:
    return Conflict(
        "La sessione è già iniziata: le iscrizioni sono chiuse.",
        "The session has already started: enrolment is closed.",
    )


# ---------------------------------------------------------------- catalogue


async def get_training(session: AsyncSession, training_id: uuid.UUID, *, for_update: bool = False) -> Training:
    training = await repository.get_training(session, training_id, for_update=for_update)
    if training is None:
        raise NotFound()
    return training


async def list_trainings(
    *, session: AsyncSession, page: PageParams, topic: str | None, upcoming: bool
) -> list[Training]:
    return await repository.list_trainings(
        session, page, topic=topic, starting_after=datetime.now(UTC) if upcoming else None
    )


async def create_training(*, session: AsyncSession, actor: Actor, data: TrainingIn) -> Training:
    now = datetime.now(UTC)
    if data.starts_at <= now:
        raise _not_in_future(now)
    training = Training(id=uuid.uuid4(), enrolled=0, version=1, **data.model_dump(include=set(_EDITABLE)))
    session.add(training)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="training.created",
        resource_type="training",
        resource_id=training.id,
        after=_snapshot(training),
    )
    return training


async def update_training(*, session: AsyncSession, actor: Actor, training: Training, data: TrainingIn) -> Training:
    """Replace a session's definition. `training` must be locked (FOR UPDATE) by the caller, so that no
    enrolment can slip in between the capacity check and the write."""
    now = datetime.now(UTC)
    if data.starts_at != training.starts_at and data.starts_at <= now:
        raise _not_in_future(now)
    if data.capacity < training.enrolled:
        raise Conflict(
            f"Ci sono già {training.enrolled} iscritti: la capienza non può scendere sotto.",
            f"{training.enrolled} people are already enrolled: capacity cannot go below that.",
            extra={"enrolled": training.enrolled},
        )
    before = _snapshot(training)
    for name, value in data.model_dump(include=set(_EDITABLE)).items():
        setattr(training, name, value)
    training.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="training.updated",
        resource_type="training",
        resource_id=training.id,
        before=before,
        after=_snapshot(training),
    )
    return training


# ---------------------------------------------------------------- enrolments


async def enrol(*, session: AsyncSession, actor: Actor, training: Training, data: EnrolmentIn) -> Enrolment:
    principal = actor.principal
    if not (
        await can_reach_company(session, principal, data.company_id)
        and await repository.company_exists(session, data.company_id)
    ):
        raise NotFound("Impresa non trovata.", "Company not found.")
    now = datetime.now(UTC)
    if training.starts_at <= now:
        raise _started()
    if await repository.live_enrolment_exists(session, training.id, data.participant_email):
        raise _already_enrolled()
    # The place is taken by one conditional UPDATE; never read the counter and write it back.
    taken = await repository.take_place(session, training.id, now=now)
    if taken is None:
        if training.starts_at <= datetime.now(UTC):
            raise _started()
        raise DeskError(
            "Non ci sono più posti liberi per questa sessione.",
            "This session has no places left.",
            kind=CAPACITY_EXHAUSTED,
            extra={"capacity": training.capacity},
        )
    # A concurrent twin that committed first wins the unique index; this request then rolls back
    # entirely, place included.
    enrolment = await repository.insert_enrolment(
        session,
        {
            "id": uuid.uuid4(),
            "training_id": training.id,
            "company_id": data.company_id,
            "participant_name": data.participant_name,
            "participant_email": data.participant_email,
            "participant_role": data.participant_role,
            "status": "enrolled",
            "created_by": principal.client_id,
        },
    )
    if enrolment is None:
        raise _already_enrolled()
    await record_audit(
        session,
        actor,
        action="training.enrolled",
        resource_type="enrolment",
        resource_id=enrolment.id,
        after=_enrolment_snapshot(enrolment),
    )
    await record_event(
        session,
        actor,
        event_type="training.enrolled",
        aggregate_type="enrolment",
        aggregate_id=enrolment.id,
        payload=_event_payload(enrolment, taken),
        partner_id=acting_partner(principal),
        company_id=enrolment.company_id,
    )
    return enrolment


async def get_enrolment(
    session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, for_update: bool = False
) -> Enrolment:
    enrolment = await repository.get_enrolment(session, principal, enrolment_id, for_update=for_update)
    if enrolment is None:
        raise NotFound()
    return enrolment


async def list_enrolments(
    *, session: AsyncSession, principal: Principal, training: Training, page: PageParams, status: str | None
) -> list[Enrolment]:
    return await repository.list_enrolments(session, principal, training.id, page, status=status)


async def cancel_enrolment(*, session: AsyncSession, actor: Actor, enrolment: Enrolment) -> Enrolment:
    """Cancel a live enrolment and free its place. `enrolment` must be locked (FOR UPDATE) by the caller,
    so that two cancellations cannot free the same place twice."""
    if enrolment.status != "enrolled":
        raise Conflict("L'iscrizione è già stata annullata.", "The enrolment is already cancelled.")
    training = await get_training(session, enrolment.training_id)
    if training.starts_at <= datetime.now(UTC):
        raise Conflict(
            "La sessione è già iniziata: l'iscrizione non può più essere annullata.",
            "The session has already started: the enrolment can no longer be cancelled.",
        )
    before = _enrolment_snapshot(enrolment)
    enrolment.status = "cancelled"
    enrolment.cancelled_at = datetime.now(UTC)
    await session.flush()
    training = await repository.free_place(session, enrolment.training_id)
    await record_audit(
        session,
        actor,
        action="training.enrolment_cancelled",
        resource_type="enrolment",
        resource_id=enrolment.id,
        before=before,
        after=_enrolment_snapshot(enrolment),
    )
    await record_event(
        session,
        actor,
        event_type="training.enrolment_cancelled",
        aggregate_type="enrolment",
        aggregate_id=enrolment.id,
        payload=_event_payload(enrolment, training),
        partner_id=acting_partner(actor.principal),
        company_id=enrolment.company_id,
    )
    return enrolment


def _already_enrolled() -> DeskError:
    return DeskError(
        "Questa persona è già iscritta alla sessione.",
        "This participant is already enrolled in the session.",
        kind=ALREADY_EXISTS,
    )


def _event_payload(e: Enrolment, t: Training) -> dict[str, Any]:
    # Events travel to partner webhooks: identifiers and the session's state, no personal data.
    return {
        "enrolment_id": e.id,
        "training_id": t.id,
        "company_id": e.company_id,
        "status": e.status,
        "training_title": t.title,
        "starts_at": t.starts_at,
        "places_left": max(t.capacity - t.enrolled, 0),
    }
