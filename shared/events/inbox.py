"""The inbox of a consuming service: receive each event of another desk service once, and run the handlers
registered for its type.

One implementation for every consumer (evaluation, monitoring): the table (`InboxRecord`, one per service's
schema), the de-duplication, the dispatch and the route `POST /v1/internal/events` the delivery worker posts to.
A package registers its handlers when it is imported (`inbox.register("decision.accepted", start_project)`).

The event is recorded in the service's inbox in the request's transaction before its handlers run: a
redelivery of the same id finds it and changes nothing (a concurrent duplicate waits on the primary key until
the first transaction ends); a failure (a peer unreachable, a handler refusing) rolls the whole transaction back,
inbox row included, so the worker's next attempt applies it for real. Handlers run in registration order.

`POST /v1/internal/events/batch` carries up to `BATCH_MAX` events in one request (the delivery worker's internal
deliveries). The batch's inbox rows are written by one statement (a redelivered id is found there and acknowledged
`duplicate`); the snapshots of the batch's submitted applications, and their companies, are read from intake in
one bulk request
before any handler runs; a consumer may register a set-based step for a type (one INSERT for the batch's rows);
then each new event is applied in a savepoint of its own. An event whose handler refuses
(or whose peer is down) is rolled back alone, its inbox row removed, and reported `failed` with its problem: the
others are kept, and the worker retries only the failed ones. The answer is 200 with one result per event.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import DateTime, String, delete, func
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.auth import Authenticator
from shared.clients.base import NotFoundAtPeer, PeerCallError
from shared.clients.intake import IntakeClient
from shared.contracts.applications import SNAPSHOTS_MAX, ApplicationOut
from shared.contracts.companies import CompanyOut
from shared.db import SessionDep
from shared.errors import INTERNAL, DeskError, ProblemError, ValidationFailed
from shared.events.catalogue import Envelope
from shared.routing import Actor, ActorDep, Idempotent, UnitOfWorkRoute
from shared.schemas import ApiModel, OutModel

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
    # intake's snapshots of the applications of a batch, read in one request before the handlers run (None: intake
    # answered that it has no such application)
    snapshots: dict[uuid.UUID, ApplicationOut | None] = field(default_factory=dict)
    # the companies of those applications (applicants and network members), from the same request
    companies: dict[uuid.UUID, CompanyOut] = field(default_factory=dict)
    # what a batch step (register_batch_step) has done already, by id, for the handlers to go on from
    prepared: set[uuid.UUID] = field(default_factory=set)
    # the events a batch step has applied for its type's handler, by event id (not by application: an
    # application's events of several types are told apart): that handler has nothing left to do for them
    applied: set[uuid.UUID] = field(default_factory=set)
    # the batch's new events, every type, in the order sent: for a step to see what else the batch changes
    batch: list[Envelope] = field(default_factory=list)


async def read_application(
    intake: IntakeClient, application_id: uuid.UUID, snapshots: dict[uuid.UUID, ApplicationOut | None] | None = None
) -> ApplicationOut:
    """The application as intake returns it: from a batch's bulk read when it is there, else one GET. Raises as
    the GET would (NotFoundAtPeer for an application intake does not have)."""
    if snapshots is not None and application_id in snapshots:
        found = snapshots[application_id]
        if found is None:
            raise NotFoundAtPeer("intake", 404, None)
        return found
    return await intake.get_application(application_id)


Handler = Callable[[InboxContext, Envelope], Awaitable[None]]
# A set-based step over a batch's new events of one type, run before their handlers (see Inbox.register_batch_step).
BatchStep = Callable[[InboxContext, list[Envelope]], Awaitable[None]]


class InboxAck(OutModel):
    event_id: uuid.UUID
    status: Literal["processed", "duplicate", "ignored"] = Field(
        description="processed: applied now; duplicate: this event id was already received, nothing changed; "
        "ignored: an event type this service does not consume (recorded, 202)."
    )
    application_id: uuid.UUID | None = None


BATCH_MAX = 200
# Events whose application's snapshot is read in bulk before a batch is applied.
PREFETCHED = frozenset({"application.submitted"})


class InboxBatchIn(ApiModel):
    events: list[Envelope] = Field(min_length=1, max_length=BATCH_MAX, description="Up to 200 event envelopes.")


class EventProblem(OutModel):
    type: str = Field(description="The problem type the event's single delivery would have been refused with.")
    status: int = Field(ge=400, le=599)
    detail: str


class InboxBatchResult(OutModel):
    event_id: uuid.UUID
    status: Literal["processed", "duplicate", "ignored", "failed"] = Field(
        description="processed, duplicate, ignored: as for one event (acknowledged, not to be sent again); "
        "failed: not applied, nothing of it kept; send it again later (see `problem`)."
    )
    application_id: uuid.UUID | None = None
    problem: EventProblem | None = None


class InboxBatchAck(OutModel):
    results: list[InboxBatchResult] = Field(description="One result per event, in the order they were sent.")


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
        self._batch_steps: dict[str, BatchStep] = {}

    def register_batch_step(self, event_type: str, step: BatchStep) -> None:
        """Before a batch's events of `event_type` are applied one by one, `step` may do for all of them at once
        what their handlers would do first (e.g. one INSERT for all their rows). Steps run in registration order,
        all before any handler; `ctx.batch` holds the batch's new events of every type, for a step that must
        leave to the handlers what the batch's other events would change after it. It runs in a savepoint: if it
        fails, it is undone and the handlers do everything per event. Its work must be what the handlers would
        have done, so that a handler finding it done goes on from there (and an event that then fails is sent
        again and completes it). An event the step adds to `ctx.applied` is acknowledged `processed` without
        running its handlers (nor taking a savepoint): the step marks one only when it has done all the work of
        all its type's handlers."""
        self._batch_steps[event_type] = step

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

    async def _record_many(self, session: AsyncSession, events: list[Envelope]) -> set[uuid.UUID]:
        """Keep a batch's events by id in one statement; returns the ids that were not there yet. Rows go in id
        order, so two batches sharing events (a redelivery after a lease ended) lock them in the same order."""
        t: Any = self.table
        stmt = (
            insert(t)
            .values(
                [
                    {"event_id": e.id, "event_type": e.type, "source": e.source, "payload": e.model_dump(mode="json")}
                    for e in sorted(events, key=lambda e: e.id)
                ]
            )
            .on_conflict_do_nothing(index_elements=[t.event_id])
            .returning(t.event_id)
        )
        return set((await session.execute(stmt)).scalars())

    async def _prefetch(self, ctx: InboxContext, events: list[Envelope]) -> None:
        """Intake's snapshots of the batch's submitted applications, in one request per 200. Intake down or
        refusing is not decided here: the handlers then read one by one and fail as a single delivery would."""
        ids = list(dict.fromkeys(a for e in events if e.type in PREFETCHED and (a := _application_id(e)) is not None))
        for start in range(0, len(ids), SNAPSHOTS_MAX):
            try:
                got = await ctx.intake.get_snapshots(ids[start : start + SNAPSHOTS_MAX])
            except PeerCallError as exc:
                log.warning("bulk snapshot read failed", service=self.service, error=str(exc))
                return
            ctx.snapshots.update((a.id, a) for a in got.items)
            ctx.snapshots.update((a, None) for a in got.unknown)
            ctx.companies.update((c.id, c) for c in got.companies)

    async def receive_batch(self, ctx: InboxContext, events: list[Envelope]) -> list[dict[str, Any]]:
        """Apply each event of a batch at most once; one that fails is undone alone and reported `failed`."""
        unique = list({e.id: e for e in reversed(events)}.values())[::-1]  # first occurrence of each id
        new = await self._record_many(ctx.session, unique)
        fresh = [e for e in unique if e.id in new]
        ctx.batch.extend(fresh)
        await self._prefetch(ctx, fresh)
        for event_type, step in self._batch_steps.items():
            of_type = [e for e in fresh if e.type == event_type]
            if not of_type:
                continue
            marks = (set(ctx.prepared), set(ctx.applied))
            try:
                async with ctx.session.begin_nested():
                    await step(ctx, of_type)
            except Exception:  # undone: the handlers then do it event by event, whatever the step had marked
                log.exception("batch step failed", service=self.service, type=event_type)
                ctx.prepared.intersection_update(marks[0])
                ctx.applied.intersection_update(marks[1])
        results: list[dict[str, Any]] = []
        seen: set[uuid.UUID] = set()
        for event in events:
            if event.id in seen or event.id not in new:
                results.append({"event_id": event.id, "status": "duplicate"})
                seen.add(event.id)
                continue
            seen.add(event.id)
            handlers = self.handlers_for(event.type)
            if not handlers:
                results.append({"event_id": event.id, "status": "ignored"})
                continue
            if event.id in ctx.applied:  # its step did its handlers' work: no savepoint, nothing left to run
                results.append({"event_id": event.id, "status": "processed", "application_id": _application_id(event)})
                continue
            problem = await self._apply_alone(ctx, event, handlers)
            if problem is None:
                results.append({"event_id": event.id, "status": "processed", "application_id": _application_id(event)})
            else:
                results.append({"event_id": event.id, "status": "failed", "problem": problem})
        return results

    async def _apply_alone(self, ctx: InboxContext, event: Envelope, handlers: list[Handler]) -> dict[str, Any] | None:
        """Run the handlers in a savepoint; on failure undo them and forget the event (None when applied)."""
        try:
            async with ctx.session.begin_nested():
                for handler in handlers:
                    await handler(ctx, event)
            return None
        except DeskError as exc:
            problem = {"type": exc.kind.type_uri, "status": exc.kind.status, "detail": str(exc)}
        except Exception as exc:  # a bug or a database error in one event must not cost the others
            log.exception("event failed in a batch", service=self.service, event_id=str(event.id), type=event.type)
            problem = {"type": INTERNAL.type_uri, "status": INTERNAL.status, "detail": type(exc).__name__}
        t: Any = self.table
        await ctx.session.execute(delete(t).where(t.event_id == event.id))
        log.info("event failed in a batch", service=self.service, event_id=str(event.id), problem=problem)
        return problem

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

        @router.post(
            "/events/batch",
            response_model=InboxBatchAck,
            status_code=200,
            summary="Receive a batch of events from another desk service",
            description=f"Up to {BATCH_MAX} event envelopes in one request, each applied at most once as by "
            "`POST /v1/internal/events`: the answer lists one result per event. An event already received is "
            "`duplicate` (nothing changes); an event that cannot be applied now is `failed` with its problem and "
            "nothing of it is kept, while the others of the batch are applied; the sender retries the failed ones.",
        )
        async def receive_events(
            body: InboxBatchIn,
            session: SessionDep,
            actor: ActorDep,
            intake: Annotated[IntakeClient, Depends(intake_dependency)],
        ) -> Any:
            ctx = InboxContext(session=session, actor=actor, intake=intake)
            return {"results": await inbox.receive_batch(ctx, body.events)}

        return router
