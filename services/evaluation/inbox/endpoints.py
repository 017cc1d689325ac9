"""Routes of the inbox (`POST /v1/internal/events`, services only) and of the received applications
(`/v1/applications`, for officers, auditors and services)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from services.evaluation.inbox import repository, service
from services.evaluation.inbox.schemas import (
    ReceivedApplicationDetail,
    ReceivedApplicationOut,
    ReceivedStatus,
)
from services.evaluation.models import ReceivedApplication
from services.evaluation.peers import intake_client
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import UnitOfWorkRoute, etag_of

router = APIRouter(
    prefix="/v1/applications",
    tags=["applications"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(kinds=("officer", "auditor", "service"), scopes=("evaluation:read",)))],
)


internal_router = service.INBOX.router(
    intake_dependency=intake_client,
    description="The delivery worker posts each event envelope here (Standard Webhooks headers, service token). "
    "Idempotent on the event id: a redelivery answers 200 `duplicate` and changes nothing. "
    "`application.submitted` fetches the application from intake and stores it as received; "
    "`application.withdrawn` marks it withdrawn; `call.amended` gives the call's budget its new total and, "
    "when it grew, funds the waiting list at once; `company.delegation_changed` moves the company's "
    "applications to its current delegate for notifications. Other types are recorded and ignored (202). "
    "If intake is unreachable the answer is 503 and nothing is kept, so the worker retries.",
)


async def valid_received_application_id(application_id: uuid.UUID, session: SessionDep) -> ReceivedApplication:
    return await service.get_received(session, application_id)


ValidReceivedApplication = Annotated[ReceivedApplication, Depends(valid_received_application_id)]


@router.get(
    "",
    response_model=Page[ReceivedApplicationOut],
    summary="List the applications received from intake",
)
async def list_applications(
    session: SessionDep,
    page: PageDep,
    call_id: uuid.UUID | None = None,
    status: Annotated[ReceivedStatus | None, Query()] = None,
) -> Any:
    stmt = keyset(
        repository.listing(call_id=call_id, status=status),
        page,
        ReceivedApplication.received_at,
        ReceivedApplication.application_id,
    )
    rows = await repository.rows(session, stmt)
    return page_of(rows, page, lambda r: service.to_out(r.ReceivedApplication))


@router.get(
    "/{application_id}",
    response_model=ReceivedApplicationDetail,
    summary="Read a received application with intake's snapshot",
)
async def get_application(app: ValidReceivedApplication, response: Response) -> Any:
    response.headers["ETag"] = etag_of(app.version)
    return service.to_out(app, detail=True)
