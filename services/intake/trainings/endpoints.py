"""Routes of /v1/trainings and /v1/enrolments: officers manage the catalogue; partners, companies and
officers enrol companies' staff; every authenticated caller reads the catalogue."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.intake.models import Enrolment, Training
from services.intake.trainings import service
from services.intake.trainings.schemas import (
    EnrolmentIn,
    EnrolmentOut,
    EnrolmentStatus,
    Topic,
    TrainingIn,
    TrainingOut,
)
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

router = APIRouter(prefix="/v1", tags=["trainings"], route_class=UnitOfWorkRoute)

officer = Depends(Authenticator(kinds=("officer",), scopes=("intake:admin",)))
Reader = Annotated[Principal, Depends(Authenticator(scopes=("intake:read",)))]
# Partners and companies enrol with `intake:write`; officers with `intake:admin`.
Enroller = Annotated[
    Principal,
    Depends(
        Authenticator(
            scopes_by_kind={"partner": ("intake:write",), "company": ("intake:write",), "officer": ("intake:admin",)}
        )
    ),
]


async def valid_training_id(training_id: uuid.UUID, session: SessionDep) -> Training:
    return await service.get_training(session, training_id)


async def locked_training_id(training_id: uuid.UUID, session: SessionDep) -> Training:
    """The session locked until commit, so If-Match and the change see the same version."""
    return await service.get_training(session, training_id, for_update=True)


async def valid_enrolment_id(enrolment_id: uuid.UUID, session: SessionDep, principal: Reader) -> Enrolment:
    return await service.get_enrolment(session, principal, enrolment_id)


async def locked_enrolment_id(enrolment_id: uuid.UUID, session: SessionDep, principal: Enroller) -> Enrolment:
    return await service.get_enrolment(session, principal, enrolment_id, for_update=True)


ValidTraining = Annotated[Training, Depends(valid_training_id)]
LockedTraining = Annotated[Training, Depends(locked_training_id)]
ValidEnrolment = Annotated[Enrolment, Depends(valid_enrolment_id)]
LockedEnrolment = Annotated[Enrolment, Depends(locked_enrolment_id)]


# ---------------------------------------------------------------- catalogue


@router.post(
    "/trainings",
    response_model=TrainingOut,
    status_code=201,
    summary="Publish a training session",
    dependencies=[officer],
    responses=problem_responses(401, 403, 409, 422),
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
    responses=problem_responses(401, 403, 422),
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
    responses=problem_responses(401, 403, 404, 422),
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
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
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
    description="For a company within your reach (404 otherwise). 409 `capacity-exhausted` when the "
    "session is full, `already-exists` when the address is already enrolled, `conflict` when "
    "the session has started.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def enrol_participant(
    _principal: Enroller,
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
    responses=problem_responses(401, 403, 404, 422),
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
    responses=problem_responses(401, 403, 404, 422),
)
async def get_enrolment(enrolment: ValidEnrolment, response: Response) -> Any:
    response.headers["ETag"] = etag_of(service.enrolment_version(enrolment))
    return service.enrolment_out(enrolment)


@router.post(
    "/enrolments/{enrolment_id}/cancel",
    response_model=EnrolmentOut,
    summary="Cancel an enrolment and free its place",
    description="Needs `If-Match`. 409 when already cancelled or when the session has started.",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
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
