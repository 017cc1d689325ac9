"""Use cases of the training catalogue (officers), of enrolling companies' staff (partners, companies,
officers), of the waiting list, of attendance (officers) and of certificates of attendance. Only the intake
service writes `intake.trainings`, `intake.enrolments` and `intake.attendances`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Attendance, Enrolment, Training
from services.intake.trainings import repository
from services.intake.trainings.certificate import certificate_pdf
from services.intake.trainings.schemas import (
    AttendanceIn,
    AttendanceOut,
    EnrolmentIn,
    EnrolmentOut,
    TrainingIn,
    TrainingOut,
)
from shared.access import acting_partner, can_reach_company
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.db import found
from shared.errors import (
    ALREADY_EXISTS,
    Conflict,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

_EDITABLE = (
    "title",
    "topic",
    "format",
    "description",
    "starts_at",
    "ends_at",
    "location",
    "capacity",
    "min_attendance_share",
)
_CENT = Decimal("0.01")


def session_hours(t: Training) -> Decimal:
    """The session's length in hours, to the hundredth."""
    seconds = Decimal(int((t.ends_at - t.starts_at).total_seconds()))
    return (seconds / 3600).quantize(_CENT, ROUND_HALF_UP)


def required_hours(t: Training) -> Decimal:
    """Hours a participant must attend for a certificate: the session's hours times its share, to the
    hundredth (rounded half up)."""
    return (session_hours(t) * t.min_attendance_share).quantize(_CENT, ROUND_HALF_UP)


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
        hours=session_hours(t),
        min_attendance_share=t.min_attendance_share,
        created_at=t.created_at,
        etag=etag_of(t.version),
    )


def enrolment_version(e: Enrolment) -> int:
    """Bumped by each change of status: a promotion from the waiting list, a cancellation."""
    return e.version


def enrolment_out(e: Enrolment) -> EnrolmentOut:
    return EnrolmentOut(
        id=e.id,
        training_id=e.training_id,
        company_id=e.company_id,
        participant_name=e.participant_name,
        participant_email=e.participant_email,
        participant_role=e.participant_role,
        status=e.status,
        queue_number=e.queue_number,
        promoted_at=e.promoted_at,
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
        "queue_number": e.queue_number,
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
    return found(await repository.get_training(session, training_id, for_update=for_update))


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
    # more places: the waiting list moves up
    await promote_waiting(session=session, actor=actor, training=training)
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
    queue_number: int | None = None
    if taken is None:
        # Full (or started): decide under the session's lock, which cancellations take too, so a place freed
        # meanwhile is taken here rather than left empty while this enrolment waits.
        training = await get_training(session, training.id, for_update=True)
        if training.starts_at <= datetime.now(UTC):
            raise _started()
        taken = await repository.take_place(session, training.id, now=now)
        if taken is None:
            queue_number = await repository.next_queue_number(session, training.id)
            taken = training
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
            "status": "enrolled" if queue_number is None else "waiting",
            "queue_number": queue_number,
            "version": 1,
            "created_by": principal.client_id,
        },
    )
    if enrolment is None:
        raise _already_enrolled()
    event = "training.enrolled" if queue_number is None else "training.enrolment_waitlisted"
    await record_audit(
        session,
        actor,
        action=event,
        resource_type="enrolment",
        resource_id=enrolment.id,
        after=_enrolment_snapshot(enrolment),
    )
    await record_event(
        session,
        actor,
        event_type=event,
        subject_type="training",
        subject_id=enrolment.training_id,
        payload=_event_payload(enrolment, taken),
        partner_id=acting_partner(principal),
        company_id=enrolment.company_id,
    )
    return enrolment


async def get_enrolment(
    session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, for_update: bool = False
) -> Enrolment:
    return found(await repository.get_enrolment(session, principal, enrolment_id, for_update=for_update))


async def list_enrolments(
    *, session: AsyncSession, principal: Principal, training: Training, page: PageParams, status: str | None
) -> list[Enrolment]:
    return await repository.list_enrolments(session, principal, training.id, page, status=status)


async def get_enrolment_for_change(session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID) -> Enrolment:
    """The enrolment locked for a change of status, after its session's row: the lock order of every writer
    of the waiting list (session, then enrolment), so a cancellation and a promotion never deadlock."""
    enrolment = await get_enrolment(session, principal, enrolment_id)
    await get_training(session, enrolment.training_id, for_update=True)
    return await get_enrolment(session, principal, enrolment_id, for_update=True)


async def cancel_enrolment(*, session: AsyncSession, actor: Actor, enrolment: Enrolment) -> Enrolment:
    """Cancel a live or waiting enrolment; a freed place goes to the first on the waiting list. The caller
    holds the session's and the enrolment's row locks (`get_enrolment_for_change`), so two cancellations
    cannot free the same place twice nor promote the same enrolment twice."""
    if enrolment.status == "cancelled":
        raise Conflict("L'iscrizione è già stata annullata.", "The enrolment is already cancelled.")
    training = await get_training(session, enrolment.training_id)
    if training.starts_at <= datetime.now(UTC):
        raise Conflict(
            "La sessione è già iniziata: l'iscrizione non può più essere annullata.",
            "The session has already started: the enrolment can no longer be cancelled.",
        )
    before = _enrolment_snapshot(enrolment)
    held_place = enrolment.status == "enrolled"
    enrolment.status = "cancelled"
    enrolment.cancelled_at = datetime.now(UTC)
    enrolment.version += 1
    await session.flush()
    if held_place:
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
        subject_type="training",
        subject_id=enrolment.training_id,
        payload=_event_payload(enrolment, training),
        partner_id=acting_partner(actor.principal),
        company_id=enrolment.company_id,
    )
    if held_place:
        await promote_waiting(session=session, actor=actor, training=training)
    return enrolment


async def promote_waiting(*, session: AsyncSession, actor: Actor, training: Training) -> list[Enrolment]:
    """Give the session's free places to the waiting list, first arrived first, each once, and notify the
    companies' partners (`training.enrolment_promoted`). The caller holds the session's row lock."""
    promoted: list[Enrolment] = []
    now = datetime.now(UTC)
    while training.enrolled < training.capacity and training.starts_at > now:
        waiting = await repository.first_waiting(session, training.id)
        if waiting is None:
            break
        taken = await repository.take_place(session, training.id, now=now)
        if taken is None:  # pragma: no cover - the lock held makes the check above authoritative
            break
        training = taken
        before = _enrolment_snapshot(waiting)
        waiting.status = "enrolled"
        waiting.promoted_at = now
        waiting.version += 1
        await session.flush()
        await record_audit(
            session,
            actor,
            action="training.enrolment_promoted",
            resource_type="enrolment",
            resource_id=waiting.id,
            before=before,
            after=_enrolment_snapshot(waiting),
        )
        await record_event(
            session,
            actor,
            event_type="training.enrolment_promoted",
            subject_type="training",
            subject_id=waiting.training_id,
            payload=_event_payload(waiting, training),
            company_id=waiting.company_id,
        )
        promoted.append(waiting)
    return promoted


# ---------------------------------------------------------------- attendance and certificates


def _attendance_out(a: Attendance, e: Enrolment, t: Training) -> AttendanceOut:
    return AttendanceOut(
        enrolment_id=e.id,
        training_id=t.id,
        participant_name=e.participant_name,
        hours=a.hours,
        session_hours=session_hours(t),
        required_hours=required_hours(t),
        certificate_available=a.hours >= required_hours(t),
        recorded_at=a.recorded_at,
        etag=etag_of(a.version),
    )


def _attendance_snapshot(a: Attendance) -> dict[str, Any]:
    return {"enrolment_id": a.enrolment_id, "training_id": a.training_id, "hours": a.hours, "version": a.version}


async def get_attendance(session: AsyncSession, enrolment: Enrolment) -> tuple[Attendance, Training]:
    attendance = await repository.get_attendance(session, enrolment.id)
    if attendance is None:
        raise NotFound("Presenza non registrata.", "No attendance recorded.")
    return attendance, await get_training(session, enrolment.training_id)


def attendance_out(attendance: Attendance, enrolment: Enrolment, training: Training) -> AttendanceOut:
    return _attendance_out(attendance, enrolment, training)


async def current_attendance_version(session: AsyncSession, enrolment: Enrolment) -> int | None:
    attendance = await repository.get_attendance(session, enrolment.id)
    return None if attendance is None else attendance.version


async def record_attendance(
    *, session: AsyncSession, actor: Actor, enrolment: Enrolment, data: AttendanceIn
) -> tuple[Attendance, Training, bool]:
    """Record (or replace) the hours a participant attended. Refused: someone not enrolled (waiting or
    cancelled), a session not started yet, more hours than the session's. Returns whether it was created."""
    training = await get_training(session, enrolment.training_id)
    if enrolment.status != "enrolled":
        raise Conflict(
            "La persona non è iscritta alla sessione: non si registrano presenze.",
            "The participant is not enrolled in the session: no attendance can be recorded.",
            extra={"enrolment_status": enrolment.status},
        )
    now = datetime.now(UTC)
    if training.starts_at > now:
        raise Conflict(
            "La sessione non è ancora iniziata: non si registrano presenze.",
            "The session has not started yet: no attendance can be recorded.",
            extra={"starts_at": training.starts_at.isoformat()},
        )
    hours = session_hours(training)
    if data.hours > hours:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "hours_above_session",
                    "/hours",
                    f"Le ore di presenza superano le {hours} ore della sessione.",
                    f"The hours attended exceed the session's {hours} hours.",
                    extra={"session_hours": str(hours)},
                )
            ]
        )
    attendance = await repository.get_attendance(session, enrolment.id)
    created = attendance is None
    before = None if attendance is None else _attendance_snapshot(attendance)
    if attendance is None:
        attendance = Attendance(
            enrolment_id=enrolment.id,
            training_id=training.id,
            hours=data.hours,
            version=1,
            recorded_by=actor.principal.client_id,
            recorded_at=now,
        )
        session.add(attendance)
    else:
        attendance.hours = data.hours
        attendance.version += 1
        attendance.recorded_by = actor.principal.client_id
        attendance.recorded_at = now
    await session.flush()
    await record_audit(
        session,
        actor,
        action="training.attendance_recorded",
        resource_type="enrolment",
        resource_id=enrolment.id,
        before=before,
        after=_attendance_snapshot(attendance),
    )
    return attendance, training, created


async def certificate(*, session: AsyncSession, enrolment: Enrolment) -> bytes:
    """The certificate of attendance (PDF) for a participant who attended at least the required hours;
    otherwise a 409 problem naming the hours attended and required. Nothing is written either way."""
    training = await get_training(session, enrolment.training_id)
    attendance = await repository.get_attendance(session, enrolment.id)
    attended = Decimal("0.00") if attendance is None else attendance.hours
    required = required_hours(training)
    if enrolment.status != "enrolled" or attended < required:
        raise Conflict(
            f"Attestato non disponibile: {attended} ore di presenza su {required} richieste.",
            f"No certificate: {attended} hours attended of the {required} required.",
            extra={
                "hours_attended": str(attended),
                "hours_required": str(required),
                "session_hours": str(session_hours(training)),
                "min_attendance_share": str(training.min_attendance_share),
            },
        )
    return certificate_pdf(
        participant=enrolment.participant_name,
        title=training.title,
        starts_at=training.starts_at,
        ends_at=training.ends_at,
        hours=attended,
        session_hours=session_hours(training),
        certificate_id=str(enrolment.id),
    )


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
