"""Use cases of webhook subscriptions and of event polling.

A subscription belongs to the partner or company that created it. Its signing secret is shown
only when created or rotated, and never written to the audit trail. Deliveries are rows of
`desk.deliveries` that the delivery worker (`shared.events.worker`) sends; here they are listed,
targeted (ping) and replayed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.webhooks import repository
from services.intake.webhooks.schemas import PortAllowanceCreate, WebhookCreate
from shared.audit import event_params, record_audit
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound, ProblemError, ValidationFailed
from shared.events import egress, store
from shared.events.catalogue import CATALOGUE, SUBJECTS, Ping, envelope, noun
from shared.events.signing import new_webhook_secret
from shared.models import Subscription, WebhookPortAllowance
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

RESOURCE = "webhook_subscription"
PORT_RESOURCE = "webhook_port_allowance"
REPLAY_MAX_EVENTS = 1000
URL_NOT_ALLOWED = "webhook_url_not_allowed"

# ---------------------------------------------------------------- validation of the endpoint


def _url_refused(message_it: str, message_en: str) -> ValidationFailed:
    return ValidationFailed(errors=[ProblemError(URL_NOT_ALLOWED, "/url", message_it, message_en)])


async def check_webhook_url(*, session: AsyncSession, url: str, environment: str) -> str:
    """Refuse endpoints that would let a subscriber make the desk call its own network (SSRF), by the policy
    the delivery worker applies again at every delivery (`shared.events.egress`): the host is resolved now
    and every address it resolves to must be acceptable; in production the port must be 443 or allowed by
    an officer for this host."""
    production = environment == "production"
    try:
        endpoint = egress.parse_url(url, production=production)
        allowed = await store.allowed_ports(session, endpoint.host) if production else []
        await egress.check_url(url, production=production, allowed_ports=allowed)
    except egress.EgressRefused as e:
        raise _url_refused(e.message_it, e.message_en) from None
    return url


_HOST_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def _host_of(raw: str) -> str | None:
    """The host as `egress.parse_url` reads it from a URL (lower case, no brackets or trailing dot), or None
    when it is neither a host name nor an IP address."""
    host = raw.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host if _HOST_NAME.match(host) else None


async def allow_port(*, session: AsyncSession, actor: Actor, body: PortAllowanceCreate) -> WebhookPortAllowance:
    """An officer lets webhooks to one host use a port other than 443 (production refuses the others)."""
    host = _host_of(body.host)
    if host is None:
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "host_invalid",
                    "/host",
                    "Non è un nome di host né un indirizzo IP.",
                    "Neither a host name nor an IP address.",
                )
            ]
        )
    if body.port == egress.HTTPS_PORT or await store.find_port_allowance(session, host, body.port) is not None:
        raise Conflict(
            f"La porta {body.port} è già consentita per {host}.", f"Port {body.port} is already allowed for {host}."
        )
    allowance = WebhookPortAllowance(
        id=uuid.uuid4(),
        host=host,
        port=body.port,
        reason=body.reason,
        created_by=actor.principal.client_id,
        created_at=datetime.now(UTC),
    )
    session.add(allowance)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="webhook.port_allowed",
        resource_type=PORT_RESOURCE,
        resource_id=allowance.id,
        after={"host": host, "port": body.port, "reason": body.reason},
    )
    return allowance


async def list_port_allowances(*, session: AsyncSession) -> list[WebhookPortAllowance]:
    return await store.list_port_allowances(session)


async def revoke_port_allowance(*, session: AsyncSession, actor: Actor, allowance_id: uuid.UUID) -> None:
    """Deliveries to that host and port stop at the next attempt (`port_not_allowed`)."""
    allowance = await store.get_port_allowance(session, allowance_id)
    if allowance is None:
        raise NotFound()
    before = {"host": allowance.host, "port": allowance.port, "reason": allowance.reason}
    await store.delete_port_allowance(session, allowance_id)
    await record_audit(
        session,
        actor,
        action="webhook.port_allowance_revoked",
        resource_type=PORT_RESOURCE,
        resource_id=allowance_id,
        before=before,
    )


def port_allowance_to_out(a: WebhookPortAllowance) -> dict[str, Any]:
    return {
        "id": a.id,
        "host": a.host,
        "port": a.port,
        "reason": a.reason,
        "created_by": a.created_by,
        "created_at": a.created_at,
    }


def check_event_types(names: list[str]) -> list[str]:
    """Known catalogue names (deduplicated, in order), or ["*"] for every type."""
    errors = [
        ProblemError(
            "event_type_unknown", f"/event_types/{i}", f"Tipo di evento sconosciuto: {n}.", f"Unknown event type: {n}."
        )
        for i, n in enumerate(names)
        if n != "*" and n not in CATALOGUE
    ]
    if errors:
        raise ValidationFailed(errors=errors)
    return ["*"] if "*" in names else list(dict.fromkeys(names))


# ---------------------------------------------------------------- cursors over bigint ids


def encode_id_cursor(kind: str, id_: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{id_}".encode()).decode().rstrip("=")


def decode_id_cursor(kind: str, cursor: str, param: str) -> int:
    try:
        prefix, _, raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        value = int(raw)
        if prefix != kind or value < 0:
            raise ValueError(cursor)
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            errors=[
                ProblemError("cursor_invalid", f"/{param}", "Cursore non valido.", "Invalid cursor.", location="query")
            ]
        ) from None


# ---------------------------------------------------------------- subscriptions


def to_out(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "owner_kind": sub.owner_kind,
        "partner_id": sub.partner_id,
        "company_id": sub.company_id,
        "url": sub.url,
        "event_types": sub.event_types,
        "description": sub.description,
        "active": sub.active,
        "previous_secret_expires_at": sub.previous_secret_expires_at,
        "created_by": sub.created_by,
        "created_at": sub.created_at,
        "etag": etag_of(sub.version),
    }


def _audit_view(sub: Subscription) -> dict[str, Any]:
    # Never the secrets: the audit trail is readable by auditors.
    return {
        "url": sub.url,
        "event_types": sub.event_types,
        "description": sub.description,
        "active": sub.active,
        "version": sub.version,
        "previous_secret_expires_at": sub.previous_secret_expires_at,
    }


async def create_subscription(
    *, session: AsyncSession, actor: Actor, body: WebhookCreate, environment: str
) -> tuple[Subscription, str]:
    principal = actor.principal
    owner_id = principal.partner_id if principal.kind == "partner" else principal.company_id
    if principal.kind not in ("partner", "company") or owner_id is None:
        raise Forbidden(
            "Solo un partner o un'impresa possono registrare un webhook.",
            "Only a partner or a company can register a webhook.",
        )
    event_types = check_event_types(body.event_types)
    url = await check_webhook_url(session=session, url=body.url, environment=environment)
    secret = new_webhook_secret()
    sub = Subscription(
        id=uuid.uuid4(),
        owner_kind=principal.kind,
        partner_id=owner_id if principal.kind == "partner" else None,
        company_id=owner_id if principal.kind == "company" else None,
        service=None,
        url=url,
        event_types=event_types,
        description=body.description,
        active=True,
        secret=secret,
        previous_secret=None,
        previous_secret_expires_at=None,
        version=1,
        created_by=principal.client_id,
        created_at=datetime.now(UTC),
        deleted_at=None,
    )
    session.add(sub)
    await session.flush()
    await record_audit(
        session, actor, action="webhook.created", resource_type=RESOURCE, resource_id=sub.id, after=_audit_view(sub)
    )
    return sub, secret


async def get_subscription(
    *, session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, for_update: bool = False
) -> Subscription:
    sub = await repository.get_subscription(session, principal, subscription_id, for_update=for_update)
    if sub is None:
        raise NotFound()
    return sub


async def list_subscriptions(*, session: AsyncSession, principal: Principal, page: PageParams) -> list[Subscription]:
    return await repository.list_subscriptions(session, principal, after=page.after, limit=page.limit)


async def delete_subscription(*, session: AsyncSession, actor: Actor, sub: Subscription) -> None:
    """Soft delete: the row stays for the delivery log; what was still pending is dead-lettered."""
    before = _audit_view(sub)
    sub.active = False
    sub.deleted_at = datetime.now(UTC)
    sub.version += 1
    await session.flush()
    cancelled = await store.cancel_pending_deliveries(session, sub.id, "subscription deleted")
    await record_audit(
        session,
        actor,
        action="webhook.deleted",
        resource_type=RESOURCE,
        resource_id=sub.id,
        before=before,
        after={**_audit_view(sub), "cancelled_deliveries": cancelled},
    )


async def rotate_secret(
    *, session: AsyncSession, actor: Actor, sub: Subscription, overlap_hours: int
) -> tuple[Subscription, str]:
    """A new secret; the old one keeps signing (alongside) for `overlap_hours`."""
    before = _audit_view(sub)
    secret = new_webhook_secret()
    sub.previous_secret = sub.secret
    sub.previous_secret_expires_at = datetime.now(UTC) + timedelta(hours=overlap_hours)
    sub.secret = secret
    sub.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="webhook.secret_rotated",
        resource_type=RESOURCE,
        resource_id=sub.id,
        before=before,
        after=_audit_view(sub),
    )
    return sub, secret


# ---------------------------------------------------------------- deliveries


async def ping(*, session: AsyncSession, actor: Actor, sub: Subscription) -> store.TargetedEvent:
    """A `webhook.ping` event delivered to this subscription only (not to the owner's other endpoints)."""
    params = event_params(
        actor,
        event_type="webhook.ping",
        subject_type="webhook",
        subject_id=sub.id,
        payload=Ping(subscription_id=sub.id).model_dump(mode="json"),
        partner_id=sub.partner_id,
        company_id=sub.company_id,
        version=CATALOGUE["webhook.ping"].version,
    )
    targeted = await store.insert_targeted_event(session, params, sub.id)
    await record_audit(
        session,
        actor,
        action="webhook.pinged",
        resource_type=RESOURCE,
        resource_id=sub.id,
        after={"event_id": targeted.event_id, "delivery_id": targeted.delivery_id},
    )
    return targeted


@dataclass(frozen=True)
class DeliveryPage:
    items: list[store.DeliveryView]
    next_cursor: str | None


async def list_deliveries(
    *, session: AsyncSession, sub: Subscription, status: str | None, cursor: str | None, limit: int
) -> DeliveryPage:
    before = decode_id_cursor("d", cursor, "cursor") if cursor else None
    rows = await store.list_deliveries(session, sub.id, status=status, before_id=before, limit=limit)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(rows, encode_id_cursor("d", rows[-1].delivery.id) if more and rows else None)


def delivery_to_out(view: store.DeliveryView) -> dict[str, Any]:
    d = view.delivery
    return {
        "id": d.id,
        "event_id": view.event_id,
        "event_type": view.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at,
        "delivered_at": d.delivered_at,
        "created_at": d.created_at,
        "replay_of": d.replay_of,
        "attempt_log": [
            {
                "attempt": a.attempt,
                "at": a.at,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
            }
            for a in view.attempt_log
        ],
    }


async def replay_delivery(
    *, session: AsyncSession, actor: Actor, sub: Subscription, delivery_id: int
) -> dict[str, Any]:
    original = await store.get_delivery(session, sub.id, delivery_id)
    if original is None:
        raise NotFound()
    new_id = await store.replay_delivery(session, original)
    await record_audit(
        session,
        actor,
        action="webhook.delivery_replayed",
        resource_type=RESOURCE,
        resource_id=sub.id,
        after={"replay_of": delivery_id, "delivery_id": new_id},
    )
    return {"count": 1, "delivery_ids": [new_id], "truncated": False}


async def replay_since(*, session: AsyncSession, actor: Actor, sub: Subscription, since: datetime) -> dict[str, Any]:
    """New deliveries of every published event since `since` that the subscription matches (the worker's
    rules: type and ownership), at most REPLAY_MAX_EVENTS per call, oldest first."""
    event_ids = await store.matching_events_since(session, sub.id, since, REPLAY_MAX_EVENTS + 1)
    truncated = len(event_ids) > REPLAY_MAX_EVENTS
    delivery_ids = await store.replay_events(session, sub.id, event_ids[:REPLAY_MAX_EVENTS])
    await record_audit(
        session,
        actor,
        action="webhook.events_replayed",
        resource_type=RESOURCE,
        resource_id=sub.id,
        after={"since": since, "count": len(delivery_ids), "truncated": truncated},
    )
    return {"count": len(delivery_ids), "delivery_ids": delivery_ids, "truncated": truncated}


# ---------------------------------------------------------------- polling and the catalogue


EVENT_CURSOR = "p"  # the cursor of GET /v1/events carries a publication number (desk.outbox.published_seq)


def event_cursor(published_seq: int) -> str:
    return encode_id_cursor(EVENT_CURSOR, published_seq)


async def poll_events(
    *, session: AsyncSession, principal: Principal, after: str | None, limit: int, param: str = "cursor"
) -> dict[str, Any]:
    """Published events after the cursor, in publication order. The cursor always moves to the last event
    seen (and stays put when nothing is new), so a client can poll with the `next_cursor` it last got.
    An event is served once the delivery worker has fanned it out (within its poll interval)."""
    after_seq = decode_id_cursor(EVENT_CURSOR, after, param) if after else 0
    rows = await repository.events_after(session, principal, after_seq=after_seq, limit=limit)
    last_seq = rows[-1].published_seq if rows else None  # served events are always numbered
    next_cursor = event_cursor(last_seq) if last_seq is not None else after
    return {"items": [envelope(r) for r in rows], "next_cursor": next_cursor}


def event_types(source: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "name": e.name,
            "version": e.version,
            "source": e.source,
            "summary": e.summary,
            "subject": noun(e.name),
            "subject_href": SUBJECTS[noun(e.name)].href,
            "data_schema": e.data.model_json_schema(),
        }
        for e in CATALOGUE.values()
        if source is None or e.source == source
    ]
