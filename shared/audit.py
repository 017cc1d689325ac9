"""Audit trail and transactional outbox, both written in the caller's transaction.

`desk.audit_log` is append-only (a trigger refuses UPDATE and DELETE); `desk.outbox` holds the
domain events that the delivery worker publishes after commit.

An event's subject follows the catalogue's convention (`shared.events.catalogue`): the type `<noun>.<verb>` is
about the object the noun names, by its UUID. `event_params` refuses anything else, as a programming error.
Its `ordering_key` orders deliveries: one subscription receives the events sharing a key in the order they were
written (the worker holds a later one while an earlier one is pending). Events about an application (its
evaluation, funding, decision, project, claims and payments) take the application's id, so a partner hears
"decision.accepted" before "project.started"; the others default to their subject's id.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.catalogue import SUBJECTS, noun
from shared.routing import Actor

_AUDIT = text(
    "INSERT INTO desk.audit_log (service, request_id, principal_kind, principal_client_id, action, resource_type,"
    " resource_id, before, after) VALUES (:service, :rid, :kind, :client, :action, :rtype, :rid2,"
    " CAST(:before AS jsonb), CAST(:after AS jsonb))"
)
_OUTBOX = text(
    "INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id,"
    " ordering_key, partner_id, company_id, payload) VALUES (:eid, :etype, :ever, :source, :atype, :aid, :okey,"
    " :partner, :company, CAST(:payload AS jsonb))"
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


class SubjectMismatch(ValueError):
    """An event written with a subject that is not the object its type names: a bug in the publisher."""


def _uuid(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise SubjectMismatch(f"{what} must be a UUID, not {value!r}") from None


async def record_audits(session: AsyncSession, actor: Actor, entries: list[dict[str, Any]]) -> None:
    """Many audit records (each as `record_audit`'s keywords) in one executemany."""
    if entries:
        await session.execute(_AUDIT, [audit_params(actor, **e) for e in entries])


def event_params(
    actor: Actor,
    *,
    event_type: str,
    subject_type: str,
    subject_id: Any,
    payload: Any,
    ordering_key: Any = None,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """The outbox row of one event. `subject_type` must be the noun of `event_type` and `subject_id` that
    object's UUID; `ordering_key` (a UUID, the application's for events about an application) defaults to the
    subject's id."""
    if noun(event_type) not in SUBJECTS:
        raise SubjectMismatch(f"{event_type}: its noun is not in the catalogue's SUBJECTS")
    if subject_type != noun(event_type):
        raise SubjectMismatch(
            f"{event_type}: the subject is the {noun(event_type)!r}, not a {subject_type!r} (see SUBJECTS)"
        )
    sid = _uuid(subject_id, f"{event_type}: the subject id")
    okey = sid if ordering_key is None else _uuid(ordering_key, f"{event_type}: the ordering key")
    return {
        "eid": uuid.uuid4(),
        "etype": event_type,
        "ever": version,
        "source": actor.service,
        "atype": subject_type,
        "aid": str(sid),
        "okey": str(okey),
        "partner": partner_id,
        "company": company_id,
        "payload": _dump(payload),
    }


async def record_event(session: AsyncSession, actor: Actor, **kw: Any) -> None:
    await session.execute(_OUTBOX, event_params(actor, **kw))


async def record_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Many events (each its `event_params`) in one executemany, in the order given."""
    if rows:
        await session.execute(_OUTBOX, rows)
