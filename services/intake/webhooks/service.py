"""Use cases of webhook subscriptions and of event polling.

A subscription belongs to the partner or company that created it. Its signing secret is shown
only when created or rotated, and never written to the audit trail. Deliveries are rows of
`desk.deliveries` that the delivery worker (`shared.events.worker`) sends; here they are listed,
targeted (ping) and replayed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.webhooks import repository
from services.intake.webhooks.schemas import WebhookCreate
from shared.audit import event_params, record_audit
from shared.auth import Principal
from shared.errors import Forbidden, NotFound, ProblemError, ValidationFailed
from shared.events import store
from shared.events.catalogue import CATALOGUE, Ping, envelope
from shared.events.signing import new_webhook_secret
from shared.models import Subscription
from shared.pagination import PageParams
from shared.routing import Actor, etag_of

RESOURCE = "webhook_subscription"
REPLAY_MAX_EVENTS = 1000
URL_NOT_ALLOWED = "webhook_url_not_allowed"

# ---------------------------------------------------------------- validation of the endpoint


_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
_METADATA_IPS = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

_REASONS: dict[str, tuple[str, str]] = {
    "metadata": ("un servizio di metadati cloud", "a cloud metadata service"),
    "link_local": ("un indirizzo link-local", "a link-local address"),
    "multicast": ("un indirizzo multicast", "a multicast address"),
    "unspecified": ("un indirizzo non specificato", "an unspecified address"),
    "loopback": ("un indirizzo di loopback", "a loopback address"),
    "private": ("un indirizzo privato o riservato", "a private or reserved address"),
}


def _url_refused(message_it: str, message_en: str) -> ValidationFailed:
    return ValidationFailed(errors=[ProblemError(URL_NOT_ALLOWED, "/url", message_it, message_en)])


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, environment: str) -> str | None:
    """Why a webhook may not target this address (a key of _REASONS), or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_IPS:
        return "metadata"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return None if environment in ("local", "test") else "loopback"
    if environment == "production" and not ip.is_global:
        return "private"
    return None


async def check_webhook_url(url: str, environment: str) -> str:
    """Refuse endpoints that would let a subscriber make the desk call its own network (SSRF).

    The host is resolved now and every address it resolves to must be acceptable.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _url_refused("L'URL non è valido.", "The URL is not valid.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _url_refused("L'URL deve usare https (o http fuori produzione).",
                           "The URL must use https (or http outside production).")
    if environment == "production" and scheme != "https":
        raise _url_refused("In produzione l'URL deve usare https.", "In production the URL must use https.")
    if "@" in parts.netloc:
        raise _url_refused("L'URL non può contenere credenziali (utente:password@).",
                           "The URL may not contain credentials (user:password@).")
    if parts.fragment or "#" in url:
        raise _url_refused("L'URL non può contenere un frammento (#...).", "The URL may not contain a fragment (#...).")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise _url_refused("L'URL non indica un host.", "The URL has no host.")
    if host in _METADATA_HOSTS:
        it, en = _REASONS["metadata"]
        raise _url_refused(f"L'host {host} è {it}.", f"The host {host} is {en}.")
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port or (443 if scheme == "https" else 80),
                                        type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _url_refused(f"L'host {host} non si risolve.", f"The host {host} does not resolve.") from None
    for address in sorted({str(info[4][0]) for info in infos}):
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        reason = address_refusal(ip, environment)
        if reason is not None:
            it, en = _REASONS[reason]
            raise _url_refused(f"L'host {host} si risolve in {ip}, {it}: non consentito.",
                               f"The host {host} resolves to {ip}, {en}: not allowed.")
    return url


def check_event_types(names: list[str]) -> list[str]:
    """Known catalogue names (deduplicated, in order), or ["*"] for every type."""
    errors = [ProblemError("event_type_unknown", f"/event_types/{i}", f"Tipo di evento sconosciuto: {n}.",
                           f"Unknown event type: {n}.") for i, n in enumerate(names) if n != "*" and n not in CATALOGUE]
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
        raise ValidationFailed(errors=[ProblemError("cursor_invalid", f"/{param}", "Cursore non valido.",
                                                    "Invalid cursor.", location="query")]) from None


# ---------------------------------------------------------------- subscriptions


def to_out(sub: Subscription) -> dict[str, Any]:
    return {"id": sub.id, "owner_kind": sub.owner_kind, "partner_id": sub.partner_id, "company_id": sub.company_id,
            "url": sub.url, "event_types": sub.event_types, "description": sub.description, "active": sub.active,
            "previous_secret_expires_at": sub.previous_secret_expires_at, "created_by": sub.created_by,
            "created_at": sub.created_at, "etag": etag_of(sub.version)}


def _audit_view(sub: Subscription) -> dict[str, Any]:
    # Never the secrets: the audit trail is readable by auditors.
    return {"url": sub.url, "event_types": sub.event_types, "description": sub.description, "active": sub.active,
            "version": sub.version, "previous_secret_expires_at": sub.previous_secret_expires_at}


async def create_subscription(*, session: AsyncSession, actor: Actor, body: WebhookCreate,
                              environment: str) -> tuple[Subscription, str]:
    principal = actor.principal
    owner_id = principal.partner_id if principal.kind == "partner" else principal.company_id
    if principal.kind not in ("partner", "company") or owner_id is None:
        raise Forbidden("Solo un partner o un'impresa possono registrare un webhook.",
                        "Only a partner or a company can register a webhook.")
    event_types = check_event_types(body.event_types)
    url = await check_webhook_url(body.url, environment)
    secret = new_webhook_secret()
    sub = Subscription(id=uuid.uuid4(), owner_kind=principal.kind,
                       partner_id=owner_id if principal.kind == "partner" else None,
                       company_id=owner_id if principal.kind == "company" else None, service=None, url=url,
                       event_types=event_types, description=body.description, active=True, secret=secret,
                       previous_secret=None, previous_secret_expires_at=None, version=1,
                       created_by=principal.client_id, created_at=datetime.now(UTC), deleted_at=None)
    session.add(sub)
    await session.flush()
    await record_audit(session, actor, action="webhook.created", resource_type=RESOURCE, resource_id=sub.id,
                       after=_audit_view(sub))
    return sub, secret


async def get_subscription(*, session: AsyncSession, principal: Principal, subscription_id: uuid.UUID,
                           for_update: bool = False) -> Subscription:
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
    await record_audit(session, actor, action="webhook.deleted", resource_type=RESOURCE, resource_id=sub.id,
                       before=before, after={**_audit_view(sub), "cancelled_deliveries": cancelled})


async def rotate_secret(*, session: AsyncSession, actor: Actor, sub: Subscription,
                        overlap_hours: int) -> tuple[Subscription, str]:
    """A new secret; the old one keeps signing (alongside) for `overlap_hours`."""
    before = _audit_view(sub)
    secret = new_webhook_secret()
    sub.previous_secret = sub.secret
    sub.previous_secret_expires_at = datetime.now(UTC) + timedelta(hours=overlap_hours)
    sub.secret = secret
    sub.version += 1
    await session.flush()
    await record_audit(session, actor, action="webhook.secret_rotated", resource_type=RESOURCE, resource_id=sub.id,
                       before=before, after=_audit_view(sub))
    return sub, secret


# ---------------------------------------------------------------- deliveries


async def ping(*, session: AsyncSession, actor: Actor, sub: Subscription) -> store.TargetedEvent:
    """A `webhook.ping` event delivered to this subscription only (not to the owner's other endpoints)."""
    params = event_params(actor, event_type="webhook.ping", aggregate_type="subscription", aggregate_id=sub.id,
                          payload=Ping(subscription_id=sub.id).model_dump(mode="json"), partner_id=sub.partner_id,
                          company_id=sub.company_id, version=CATALOGUE["webhook.ping"].version)
    targeted = await store.insert_targeted_event(session, params, sub.id)
    await record_audit(session, actor, action="webhook.pinged", resource_type=RESOURCE, resource_id=sub.id,
                       after={"event_id": targeted.event_id, "delivery_id": targeted.delivery_id})
    return targeted


@dataclass(frozen=True)
class DeliveryPage:
    items: list[store.DeliveryView]
    next_cursor: str | None


async def list_deliveries(*, session: AsyncSession, sub: Subscription, status: str | None, cursor: str | None,
                          limit: int) -> DeliveryPage:
    before = decode_id_cursor("d", cursor, "cursor") if cursor else None
    rows = await store.list_deliveries(session, sub.id, status=status, before_id=before, limit=limit)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(rows, encode_id_cursor("d", rows[-1].delivery.id) if more and rows else None)


def delivery_to_out(view: store.DeliveryView) -> dict[str, Any]:
    d = view.delivery
    return {"id": d.id, "event_id": view.event_id, "event_type": view.event_type, "status": d.status,
            "attempts": d.attempts, "last_status_code": d.last_status_code, "last_error": d.last_error,
            "next_attempt_at": d.next_attempt_at, "delivered_at": d.delivered_at, "created_at": d.created_at,
            "replay_of": d.replay_of,
            "attempt_log": [{"attempt": a.attempt, "at": a.at, "status_code": a.status_code,
                             "latency_ms": a.latency_ms, "error": a.error} for a in view.attempt_log]}


async def replay_delivery(*, session: AsyncSession, actor: Actor, sub: Subscription,
                          delivery_id: int) -> dict[str, Any]:
    original = await store.get_delivery(session, sub.id, delivery_id)
    if original is None:
        raise NotFound()
    new_id = await store.replay_delivery(session, original)
    await record_audit(session, actor, action="webhook.delivery_replayed", resource_type=RESOURCE,
                       resource_id=sub.id, after={"replay_of": delivery_id, "delivery_id": new_id})
    return {"count": 1, "delivery_ids": [new_id], "truncated": False}


async def replay_since(*, session: AsyncSession, actor: Actor, sub: Subscription, since: datetime) -> dict[str, Any]:
    """New deliveries of every published event since `since` that the subscription matches (the worker's
    rules: type and ownership), at most REPLAY_MAX_EVENTS per call, oldest first."""
    event_ids = await store.matching_events_since(session, sub.id, since, REPLAY_MAX_EVENTS + 1)
    truncated = len(event_ids) > REPLAY_MAX_EVENTS
    delivery_ids = await store.replay_events(session, sub.id, event_ids[:REPLAY_MAX_EVENTS])
    await record_audit(session, actor, action="webhook.events_replayed", resource_type=RESOURCE, resource_id=sub.id,
                       after={"since": since, "count": len(delivery_ids), "truncated": truncated})
    return {"count": len(delivery_ids), "delivery_ids": delivery_ids, "truncated": truncated}


# ---------------------------------------------------------------- polling and the catalogue


EVENT_CURSOR = "p"  # the cursor of GET /v1/events carries a publication number (desk.outbox.published_seq)


def event_cursor(published_seq: int) -> str:
    return encode_id_cursor(EVENT_CURSOR, published_seq)


async def poll_events(*, session: AsyncSession, principal: Principal, after: str | None,
                      limit: int) -> dict[str, Any]:
    """Published events after the cursor, in publication order. The cursor always moves to the last event
    seen (and stays put when nothing is new), so a client can poll with the `next_cursor` it last got.
    An event is served once the delivery worker has fanned it out (within its poll interval)."""
    after_seq = decode_id_cursor(EVENT_CURSOR, after, "after") if after else 0
    rows = await repository.events_after(session, principal, after_seq=after_seq, limit=limit)
    last_seq = rows[-1].published_seq if rows else None  # served events are always numbered
    next_cursor = event_cursor(last_seq) if last_seq is not None else after
    return {"items": [envelope(r) for r in rows], "next_cursor": next_cursor}


def event_types(source: str | None = None) -> list[dict[str, Any]]:
    return [{"name": e.name, "version": e.version, "source": e.source, "summary": e.summary,
             "data_schema": e.data.model_json_schema()}
            for e in CATALOGUE.values() if source is None or e.source == source]
