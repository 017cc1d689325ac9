"""Routes of /v1/trainings and /v1/enrolments: officers manage the catalogue and record attendance;
partners, companies and officers enrol companies' staff (a full session puts them on its waiting list);
every authenticated caller reads the catalogue; certificates of attendance are read by whoever sees the
enrolment."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.intake.models import Enrolment, Training
from services.intake.principals import Officer, Participant, Reader, officer
from services.intake.trainings import service
from services.intake.trainings.schemas import (
    AttendanceIn,
    AttendanceOut,
    EnrolmentIn,
    EnrolmentOut,
    EnrolmentStatus,
    Topic,
    TrainingIn,
    TrainingOut,
)
from shared.db import SessionDep
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

router = APIRouter(prefix="/v1", tags=["trainings"], route_class=UnitOfWorkRoute)


async def valid_training_id(training_id: uuid.UUID, session: SessionDep) -> Training:
    return await service.get_training(session, training_id)


async def locked_training_id(training_id: uuid.UUID, session: SessionDep) -> Training:
    """The session locked until commit, so If-Match and the change see the same version."""
    return await service.get_training(session, training_id, for_update=True)


async def valid_enrolment_id(enrolment_id: uuid.UUID, session: SessionDep, principal: Reader) -> Enrolment:
    return await service.get_enrolment(session, principal, enrolment_id)


async def locked_enrolment_id(enrolment_id: uuid.UUID, session: SessionDep, principal: Participant) -> Enrolment:
    """Locked after its session's row, the order every writer of the waiting list follows."""
    return await service.get_enrolment_for_change(session, principal, enrolment_id)


async def attended_enrolment_id(enrolment_id: uuid.UUID, session: SessionDep, principal: Officer) -> Enrolment:
    """Locked, so that two recordings of the same participant's attendance are serialised."""
    return await service.get_enrolment(session, principal, enrolment_id, for_update=True)


ValidTraining = Annotated[Training, Depends(valid_training_id)]
LockedTraining = Annotated[Training, Depends(locked_training_id)]
ValidEnrolment = Annotated[Enrolment, Depends(valid_enrolment_id)]
LockedEnrolment = Annotated[Enrolment, Depends(locked_enrolment_id)]
AttendedEnrolment = Annotated[Enrolment, Depends(attended_enrolment_id)]


# ---------------------------------------------------------------- catalogue


@router.post(
    "/trainings",
    response_model=TrainingOut,
    status_code=201,
    summary="Publish a training session",
    dependencies=[officer],
)
async def create_training(
    body: TrainingIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    training = await service.create_training(session=session, actor=actor, data=body)
    response.headers["ETag"] = etag_of(training.version)
    response.headers["Location"] = f"/v1/trainings/{training.id}"
    return service.training_out(training)


@router.get(
    "/trainings",
    response_model=Page[TrainingOut],
    summary="List training sessions",
)
async def list_trainings(
    _principal: Reader,
    session: SessionDep,
    page: PageDep,
    topic: Annotated[Topic | None, Query(description="Only sessions on this topic.")] = None,
    upcoming: Annotated[bool, Query(description="Only sessions not started yet.")] = False,
) -> Any:
    rows = await service.list_trainings(session=session, page=page, topic=topic, upcoming=upcoming)
    return page_of(rows, page, service.training_out)


@router.get(
    "/trainings/{training_id}",
    response_model=TrainingOut,
    summary="Read a training session",
)
async def get_training(_principal: Reader, training: ValidTraining, response: Response) -> Any:
    response.headers["ETag"] = etag_of(training.version)
    return service.training_out(training)


@router.put(
    "/trainings/{training_id}",
    response_model=TrainingOut,
    summary="Replace a training session",
    description="Needs `If-Match`. The capacity cannot go below the places already taken (409).",
    dependencies=[officer],
)
async def replace_training(
    training: LockedTraining,
    body: TrainingIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
) -> Any:
    check_if_match(request, training.version)
    training = await service.update_training(session=session, actor=actor, training=training, data=body)
    response.headers["ETag"] = etag_of(training.version)
    return service.training_out(training)


# ---------------------------------------------------------------- enrolments


@router.post(
    "/trainings/{training_id}/enrolments",
    response_model=EnrolmentOut,
    status_code=201,
    summary="Enrol a company's staff member",
    description="For a company within your reach (404 otherwise). When the session is full the enrolment "
    "joins its waiting list (`status` `waiting`, `queue_number` its arrival order) and is promoted "
    "automatically when a place frees (`training.enrolment_promoted`). 409 `already-exists` when the "
    "address is already enrolled or waiting, `conflict` when the session has started.",
)
async def enrol_participant(
    _principal: Participant,
    training: ValidTraining,
    body: EnrolmentIn,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    enrolment = await service.enrol(session=session, actor=actor, training=training, data=body)
    response.headers["ETag"] = etag_of(service.enrolment_version(enrolment))
    response.headers["Location"] = f"/v1/enrolments/{enrolment.id}"
    return service.enrolment_out(enrolment)


@router.get(
    "/trainings/{training_id}/enrolments",
    response_model=Page[EnrolmentOut],
    summary="List a session's enrolments",
    description="Officers and auditors see all of them; partners and companies those of their companies.",
)
async def list_enrolments(
    principal: Reader,
    training: ValidTraining,
    session: SessionDep,
    page: PageDep,
    status: Annotated[EnrolmentStatus | None, Query(description="Only in this state.")] = None,
) -> Any:
    rows = await service.list_enrolments(
        session=session, principal=principal, training=training, page=page, status=status
    )
    return page_of(rows, page, service.enrolment_out)


@router.get(
    "/enrolments/{enrolment_id}",
    response_model=EnrolmentOut,
    summary="Read an enrolment",
)
async def get_enrolment(enrolment: ValidEnrolment, response: Response) -> Any:
    response.headers["ETag"] = etag_of(service.enrolment_version(enrolment))
    return service.enrolment_out(enrolment)


@router.post(
    "/enrolments/{enrolment_id}/cancel",
    response_model=EnrolmentOut,
    summary="Cancel an enrolment and free its place",
    description="Needs `If-Match`. A freed place goes at once to the first enrolment on the waiting list "
    "(in order of arrival, once; event `training.enrolment_promoted`). Cancelling a waiting enrolment "
    "takes it off the list. 409 when already cancelled or when the session has started.",
)
async def cancel_enrolment(
    enrolment: LockedEnrolment,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, service.enrolment_version(enrolment))
    enrolment = await service.cancel_enrolment(session=session, actor=actor, enrolment=enrolment)
    response.headers["ETag"] = etag_of(service.enrolment_version(enrolment))
    return service.enrolment_out(enrolment)


# ---------------------------------------------------------------- attendance and certificates


@router.put(
    "/enrolments/{enrolment_id}/attendance",
    response_model=AttendanceOut,
    summary="Record a participant's attendance",
    description="Officers record the hours a participant attended (201 the first time; then a replacement "
    "that needs `If-Match`, 200). 409 when the participant is not enrolled (waiting or cancelled) or the "
    "session has not started; 422 `hours_above_session` when the hours exceed the session's.",
    dependencies=[officer],
    responses={201: {"model": AttendanceOut}},
)
async def record_attendance(
    enrolment: AttendedEnrolment,
    body: AttendanceIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
) -> Any:
    current = await service.current_attendance_version(session, enrolment)
    if current is not None:
        check_if_match(request, current)
    attendance, training, created = await service.record_attendance(
        session=session, actor=actor, enrolment=enrolment, data=body
    )
    if created:
        response.status_code = 201
    response.headers["ETag"] = etag_of(attendance.version)
    return service.attendance_out(attendance, enrolment, training)


@router.get(
    "/enrolments/{enrolment_id}/certificate",
    response_class=Response,
    summary="Download a certificate of attendance (PDF)",
    description="For a participant who attended at least the session's `min_attendance_share` of its hours "
    "(rounded to the hundredth of an hour). Otherwise 409, naming `hours_attended` and `hours_required`.",
    responses={
        200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
    },
)
async def get_certificate(enrolment: ValidEnrolment, session: SessionDep) -> Response:
    pdf = await service.certificate(session=session, enrolment=enrolment)
    return Response(
        content=pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="attestato-{enrolment.id}.pdf"'},
    )
