"""Audit trail and transactional outbox, both written in the caller's transaction.

`desk.audit_log` is append-only (a trigger refuses UPDATE and DELETE); `desk.outbox` holds the
domain events that the delivery worker publishes after commit.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.routing import Actor

_AUDIT = text(
    "INSERT INTO desk.audit_log (service, request_id, principal_kind, principal_client_id, action, resource_type,"
    " resource_id, before, after) VALUES (:service, :rid, :kind, :client, :action, :rtype, :rid2,"
    " CAST(:before AS jsonb), CAST(:after AS jsonb))"
)
_OUTBOX = text(
    "INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id,"
    " partner_id, company_id, payload) VALUES (:eid, :etype, :ever, :source, :atype, :aid, :partner, :company,"
    " CAST(:payload AS jsonb))"
)


def _dump(obj: Any) -> str | None:
    if obj is None:
        return None
    return orjson.dumps(obj, default=str).decode()


def audit_params(
    actor: Actor, *, action: str, resource_type: str, resource_id: Any, before: Any = None, after: Any = None
) -> dict[str, Any]:
    return {
        "service": actor.service,
        "rid": actor.request_id,
        "kind": actor.principal.kind,
        "client": actor.principal.client_id,
        "action": action,
        "rtype": resource_type,
        "rid2": str(resource_id),
        "before": _dump(before),
        "after": _dump(after),
    }


async def record_audit(
    session: AsyncSession,
    actor: Actor,
    *,
    action: str,
    resource_type: str,
    resource_id: Any,
    before: Any = None,
    after: Any = None,
) -> None:
    await session.execute(
        _AUDIT,
        audit_params(
            actor, action=action, resource_type=resource_type, resource_id=resource_id, before=before, after=after
        ),
    )


async def record_audits(session: AsyncSession, actor: Actor, entries: list[dict[str, Any]]) -> None:
    """Many audit records (each as `record_audit`'s keywords) in one executemany."""
    if entries:
        await session.execute(_AUDIT, [audit_params(actor, **e) for e in entries])


def event_params(
    actor: Actor,
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: Any,
    payload: Any,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    version: int = 1,
) -> dict[str, Any]:
    return {
        "eid": uuid.uuid4(),
        "etype": event_type,
        "ever": version,
        "source": actor.service,
        "atype": aggregate_type,
        "aid": str(aggregate_id),
        "partner": partner_id,
        "company": company_id,
        "payload": _dump(payload),
    }


async def record_event(session: AsyncSession, actor: Actor, **kw: Any) -> None:
    await session.execute(_OUTBOX, event_params(actor, **kw))
