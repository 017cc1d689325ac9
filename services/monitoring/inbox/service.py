"""Receive an event once and run the handlers registered for its type (services.monitoring.inbox.registry).

The event is recorded in `monitoring.inbox` in the request's transaction before its handlers run: a redelivery
of the same id finds it and changes nothing; a failure (intake unreachable, a handler refusing) rolls the whole
transaction back, inbox row included, so the worker's next attempt applies it for real.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.inbox import repository
from services.monitoring.inbox.registry import InboxContext, handlers_for
from shared.clients.intake import IntakeClient
from shared.events.catalogue import Envelope
from shared.routing import Actor

log = structlog.get_logger("monitoring.inbox")


def _application_id(event: Envelope) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(event.data["application_id"]))
    except (KeyError, ValueError):
        return None


async def receive_event(*, session: AsyncSession, actor: Actor, intake: IntakeClient,
                        event: Envelope) -> dict[str, Any]:
    """Apply one event at most once. Returns the acknowledgement (status processed/duplicate/ignored)."""
    fresh = await repository.record_event(session, event_id=event.id, event_type=event.type, source=event.source,
                                          payload=event.model_dump(mode="json"))
    if not fresh:
        log.info("duplicate event", event_id=str(event.id), type=event.type)
        return {"event_id": event.id, "status": "duplicate"}
    handlers = handlers_for(event.type)
    if not handlers:
        log.info("event type not consumed", event_id=str(event.id), type=event.type)
        return {"event_id": event.id, "status": "ignored"}
    ctx = InboxContext(session=session, actor=actor, intake=intake)
    for handler in handlers:
        await handler(ctx, event)
    return {"event_id": event.id, "status": "processed", "application_id": _application_id(event)}
