"""Route of the inbox: `POST /v1/internal/events`, for the desk's services (the delivery worker) only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from services.monitoring.inbox import facts, service
from services.monitoring.inbox.schemas import InboundEvent, InboxAck
from services.monitoring.peers import IntakeDep
from services.monitoring.projects import service as projects_service
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute

# The consuming packages register their handlers when imported.
_REGISTERED = (facts, projects_service)

internal_router = APIRouter(prefix="/v1/internal", tags=["internal"], route_class=UnitOfWorkRoute,
                            dependencies=[Depends(Authenticator(kinds=("service",), scopes=("internal",)))])


@internal_router.post(
    "/events", response_model=InboxAck, status_code=200, summary="Receive an event from another desk service",
    description="The delivery worker posts each event envelope here (Standard Webhooks headers, service token). "
                "Idempotent on the event id: a redelivery answers 200 `duplicate` and changes nothing. "
                "`decision.accepted` starts the project (deadline, approved budget, timeline, KPIs) and orders "
                "the advance; `application.submitted`, `application.withdrawn`, "
                "`evaluation.admissibility_completed`, `decision.issued`, `decision.accepted` and "
                "`decision.renounced` keep the application facts of the statistics; `company.delegation_changed` "
                "moves the company's projects to its current delegate for notifications. Other types are recorded and "
                "ignored (202). If intake is unreachable the answer is 503 and nothing is kept, so the worker "
                "retries.",
    responses={202: {"model": InboxAck, "description": "Event type not consumed: recorded and ignored."},
               **problem_responses(401, 403, 409, 422, 503)})
async def receive_event(body: InboundEvent, session: SessionDep, actor: ActorDep, intake: IntakeDep,
                        _idem: Idempotent, response: Response) -> Any:
    ack = await service.receive_event(session=session, actor=actor, intake=intake, event=body)
    if ack["status"] == "ignored":
        response.status_code = 202
    return ack
