"""The handler registry of monitoring's inbox: event type -> the handlers that consume it.

A package registers its handlers when it is imported (`register_handler("decision.accepted", start_project)`);
the inbox runs every handler of the type, in registration order, in the request's transaction: if one fails,
nothing of the event is kept (inbox row included) and the delivery worker retries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clients.intake import IntakeClient
from shared.errors import ProblemError, ValidationFailed
from shared.events.catalogue import Envelope
from shared.routing import Actor


@dataclass(frozen=True)
class InboxContext:
    session: AsyncSession
    actor: Actor
    intake: IntakeClient


Handler = Callable[[InboxContext, Envelope], Awaitable[None]]

HANDLERS: dict[str, list[Handler]] = {}


def register_handler(event_type: str, handler: Handler) -> None:
    """Consume `event_type` with `handler` (registering the same handler twice is a no-op)."""
    handlers = HANDLERS.setdefault(event_type, [])
    if handler not in handlers:
        handlers.append(handler)


def handlers_for(event_type: str) -> list[Handler]:
    return list(HANDLERS.get(event_type, ()))


D = TypeVar("D", bound=BaseModel)


def event_data(event: Envelope, model: type[D]) -> D:
    """The event's data as its catalogue model; a malformed event is a 422 with a pointer per error."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise ValidationFailed(errors=[
            ProblemError(str(e["type"]), "/data/" + "/".join(str(p) for p in e["loc"]), "Dato dell'evento non valido.",
                         f"Invalid event data: {e['msg']}") for e in exc.errors()]) from None
