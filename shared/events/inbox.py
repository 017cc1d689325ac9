"""The inbox of a consuming service: receive each event of another desk service once, and run the handlers
registered for its type.

One implementation for every consumer (evaluation, monitoring): the table (`InboxRecord`, one per service's
schema), the de-duplication, the dispatch and the route `POST /v1/internal/events` the delivery worker posts to.
A package registers its handlers when it is imported (`inbox.register("decision.accepted", start_project)`).

The event is recorded in the service's inbox in the request's transaction before its handlers run: a
redelivery of the same id finds it and changes nothing (a concurrent duplicate waits on the primary key until
the first transaction ends); a failure (a peer unreachable, a handler refusing) rolls the whole transaction back,
inbox row included, so the worker's next attempt applies it for real. Handlers run in registration order.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.auth import Authenticator
from shared.clients.intake import IntakeClient
from shared.db import SessionDep
from shared.errors import ProblemError, ValidationFailed
from shared.events.catalogue import Envelope
from shared.routing import Actor, ActorDep, Idempotent, UnitOfWorkRoute
from shared.schemas import OutModel

log = structlog.get_logger("desk.inbox")


class InboxRecord:
    """Columns of a service's inbox table: the events received, kept by id so a redelivery is recognised.
    Each consuming service declares `class InboxEvent(InboxRecord, Base)` with its table name and schema."""

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass(frozen=True)
class InboxContext:
    """What a handler gets besides the event: the request's unit of work, who acts, and intake's client."""

    session: AsyncSession
    actor: Actor
    intake: IntakeClient


Handler = Callable[[InboxContext, Envelope], Awaitable[None]]


class InboxAck(OutModel):
    event_id: uuid.UUID
    status: Literal["processed", "duplicate", "ignored"] = Field(
        description="processed: applied now; duplicate: this event id was already received, nothing changed; "
        "ignored: an event type this service does not consume (recorded, 202)."
    )
    application_id: uuid.UUID | None = None


D = TypeVar("D", bound=BaseModel)


def event_data(event: Envelope, model: type[D]) -> D:
    """The event's data as its catalogue model; a malformed event is a 422 with a pointer per error."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    str(e["type"]),
                    "/data/" + "/".join(str(p) for p in e["loc"]),
                    "Dato dell'evento non valido.",
                    f"Invalid event data: {e['msg']}",
                )
                for e in exc.errors()
            ]
        ) from None


def _application_id(event: Envelope) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(event.data["application_id"]))
    except (KeyError, ValueError):
        return None


class Inbox:
    """A service's inbox: its table and the handlers registered per event type."""

    def __init__(self, service: str, table: type[InboxRecord]) -> None:
        self.service = service
        self.table = table
        self._handlers: dict[str, list[Handler]] = {}

    def register(self, event_type: str, handler: Handler) -> None:
        """Consume `event_type` with `handler` (registering the same handler twice is a no-op)."""
        handlers = self._handlers.setdefault(event_type, [])
        if handler not in handlers:
            handlers.append(handler)

    def handlers_for(self, event_type: str) -> list[Handler]:
        return list(self._handlers.get(event_type, ()))

    async def _record(self, session: AsyncSession, event: Envelope) -> bool:
        """Keep the event by id; False when it was already there (a redelivery)."""
        t: Any = self.table
        stmt = (
            insert(t)
            .values(
                event_id=event.id, event_type=event.type, source=event.source, payload=event.model_dump(mode="json")
            )
            .on_conflict_do_nothing(index_elements=[t.event_id])
            .returning(t.event_id)
        )
        return (await session.execute(stmt)).first() is not None

    async def receive(self, ctx: InboxContext, event: Envelope) -> dict[str, Any]:
        """Apply one event at most once. Returns the acknowledgement (status processed/duplicate/ignored)."""
        if not await self._record(ctx.session, event):
            log.info("duplicate event", service=self.service, event_id=str(event.id), type=event.type)
            return {"event_id": event.id, "status": "duplicate"}
        handlers = self.handlers_for(event.type)
        if not handlers:
            log.info("event type not consumed", service=self.service, event_id=str(event.id), type=event.type)
            return {"event_id": event.id, "status": "ignored"}
        for handler in handlers:
            await handler(ctx, event)
        return {"event_id": event.id, "status": "processed", "application_id": _application_id(event)}

    def router(self, *, intake_dependency: Callable[..., Any], description: str) -> APIRouter:
        """`POST /v1/internal/events`, for the desk's services (the delivery worker) only."""
        router = APIRouter(
            prefix="/v1/internal",
            tags=["internal"],
            route_class=UnitOfWorkRoute,
            dependencies=[Depends(Authenticator(kinds=("service",), scopes=("internal",)))],
        )
        inbox = self

        @router.post(
            "/events",
            response_model=InboxAck,
            status_code=200,
            summary="Receive an event from another desk service",
            description=description,
            responses={
                202: {"model": InboxAck, "description": "Event type not consumed: recorded and ignored."},
            },
        )
        async def receive_event(
            body: Envelope,
            session: SessionDep,
            actor: ActorDep,
            intake: Annotated[IntakeClient, Depends(intake_dependency)],
            _idem: Idempotent,
            response: Response,
        ) -> Any:
            ack = await inbox.receive(InboxContext(session=session, actor=actor, intake=intake), body)
            if ack["status"] == "ignored":
                response.status_code = 202
            return ack

        return router
