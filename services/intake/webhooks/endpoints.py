"""Routes of /v1/webhooks (subscriptions, secrets, deliveries, replays) and /v1/events (polling, catalogue).

Partners and companies manage their own subscriptions (scope intake:write) and read them
(intake:read); officers and auditors read every subscription and its deliveries, and change none.
A subscription outside the caller's reach answers 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.intake.principals import Applicant, Officer, Overseer
from services.intake.webhooks import service
from services.intake.webhooks.schemas import (
    DeliveryPage,
    DeliveryStatus,
    EventPage,
    EventTypePage,
    PingOut,
    PortAllowanceCreate,
    PortAllowanceOut,
    PortAllowancePage,
    ReplayOut,
    ReplaySince,
    SecretRotation,
    WebhookCreate,
    WebhookOut,
    WebhookWithSecret,
)
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.models import Subscription
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of
from shared.schemas import BIGINT_MAX

PUBLIC: dict[str, Any] = {"security": []}
READ_KINDS = ("partner", "company", "officer", "auditor")
Reader = Annotated[Principal, Depends(Authenticator(kinds=READ_KINDS, scopes=("intake:read",)))]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=UnitOfWorkRoute)
events_router = APIRouter(prefix="/v1/events", tags=["events"], route_class=UnitOfWorkRoute)


async def valid_webhook_id(webhook_id: uuid.UUID, session: SessionDep, principal: Reader) -> Subscription:
    return await service.get_subscription(session=session, principal=principal, subscription_id=webhook_id)


async def owned_webhook_id(webhook_id: uuid.UUID, session: SessionDep, principal: Applicant) -> Subscription:
    return await service.get_subscription(session=session, principal=principal, subscription_id=webhook_id)


async def locked_webhook_id(webhook_id: uuid.UUID, session: SessionDep, principal: Applicant) -> Subscription:
    # Locked until commit, so the If-Match check and the write see the same version.
    return await service.get_subscription(
        session=session, principal=principal, subscription_id=webhook_id, for_update=True
    )


ValidWebhook = Annotated[Subscription, Depends(valid_webhook_id)]
OwnedWebhook = Annotated[Subscription, Depends(owned_webhook_id)]
LockedWebhook = Annotated[Subscription, Depends(locked_webhook_id)]


def _no_store(response: Response, sub: Subscription) -> None:
    response.headers["ETag"] = etag_of(sub.version)
    response.headers["Cache-Control"] = "no-store"


@router.post(
    "",
    response_model=WebhookWithSecret,
    status_code=201,
    summary="Subscribe an endpoint to events (the signing secret is returned once)",
    description="Deliveries are signed per Standard Webhooks (webhook-id, webhook-timestamp, "
    "webhook-signature) with the returned secret. The secret is in this response only (and in "
    "its idempotent replay). The URL is checked now and again at every delivery: no "
    "credentials or fragment; in production https on port 443 (another port only where an "
    "officer allowed it), and every address its host resolves to must be public: no private, "
    "link-local, loopback, multicast or metadata address, nor an IPv6 form embedding one "
    "(`webhook_url_not_allowed` at `/url`).",
)
async def create_webhook(
    body: WebhookCreate,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _owner: Applicant,
    _idem: Idempotent,
    response: Response,
) -> Any:
    sub, secret = await service.create_subscription(
        session=session, actor=actor, body=body, environment=request.app.state.settings.environment
    )
    _no_store(response, sub)
    response.headers["Location"] = f"/v1/webhooks/{sub.id}"
    return {**service.to_out(sub), "secret": secret}


@router.get(
    "",
    response_model=Page[WebhookOut],
    summary="List webhook subscriptions (own; officers all)",
)
async def list_webhooks(session: SessionDep, principal: Reader, page: PageDep) -> Any:
    rows = await service.list_subscriptions(session=session, principal=principal, page=page)
    return page_of(rows, page, service.to_out)


# Declared before /{webhook_id}, so the literal path wins.
@router.post(
    "/allowed-ports",
    response_model=PortAllowanceOut,
    status_code=201,
    summary="Allow webhooks to one host to use a port other than 443 (officers)",
    description="In production a webhook URL must use port 443; an officer may allow another port for "
    "one host (e.g. a partner gateway on 8443). Checked when a subscription is created and "
    "at every delivery. Audited.",
)
async def allow_webhook_port(
    body: PortAllowanceCreate, session: SessionDep, actor: ActorDep, _officer: Officer, _idem: Idempotent
) -> Any:
    allowance = await service.allow_port(session=session, actor=actor, body=body)
    return service.port_allowance_to_out(allowance)


@router.get(
    "/allowed-ports",
    response_model=PortAllowancePage,
    summary="Ports other than 443 that officers allowed for webhooks (officers and auditors)",
)
async def list_webhook_ports(session: SessionDep, _reader: Overseer) -> Any:
    rows = await service.list_port_allowances(session=session)
    return {"items": [service.port_allowance_to_out(a) for a in rows], "next_cursor": None}


@router.delete(
    "/allowed-ports/{allowance_id}",
    status_code=204,
    summary="Withdraw a port allowance (officers); deliveries using it stop at their next attempt",
)
async def revoke_webhook_port(
    allowance_id: uuid.UUID, session: SessionDep, actor: ActorDep, _officer: Officer
) -> Response:
    await service.revoke_port_allowance(session=session, actor=actor, allowance_id=allowance_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Read a webhook subscription",
)
async def get_webhook(sub: ValidWebhook, response: Response) -> Any:
    response.headers["ETag"] = etag_of(sub.version)
    return service.to_out(sub)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook subscription (If-Match required)",
    description="Nothing more is sent to it: deliveries still pending are dead-lettered.",
)
async def delete_webhook(sub: LockedWebhook, request: Request, session: SessionDep, actor: ActorDep) -> Response:
    check_if_match(request, sub.version)
    await service.delete_subscription(session=session, actor=actor, sub=sub)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    summary="Rotate the signing secret (If-Match required; the new secret is returned once)",
    description="During `overlap_hours` every delivery carries two signatures, one per secret, so a "
    "receiver verifying with either keeps working while it switches.",
)
async def rotate_webhook_secret(
    sub: LockedWebhook,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
    body: SecretRotation | None = None,
) -> Any:
    check_if_match(request, sub.version)
    overlap = (body or SecretRotation()).overlap_hours
    sub, secret = await service.rotate_secret(session=session, actor=actor, sub=sub, overlap_hours=overlap)
    _no_store(response, sub)
    return {**service.to_out(sub), "secret": secret}


@router.post(
    "/{webhook_id}/ping",
    response_model=PingOut,
    status_code=202,
    summary="Send a webhook.ping event to this endpoint only",
)
async def ping_webhook(sub: OwnedWebhook, session: SessionDep, actor: ActorDep, _idem: Idempotent) -> Any:
    targeted = await service.ping(session=session, actor=actor, sub=sub)
    return {"event_id": targeted.event_id, "delivery_id": targeted.delivery_id}


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="List deliveries to this endpoint, newest first, with their attempt log",
)
async def list_webhook_deliveries(
    sub: ValidWebhook,
    request: Request,
    session: SessionDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this status.")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="Opaque cursor from `next_cursor`.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size (default 20, at most 100).")] = None,
) -> Any:
    s = request.app.state.settings
    page = await service.list_deliveries(
        session=session, sub=sub, status=status, cursor=cursor, limit=min(limit or s.page_size_default, s.page_size_max)
    )
    return {"items": [service.delivery_to_out(v) for v in page.items], "next_cursor": page.next_cursor}


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    response_model=ReplayOut,
    status_code=202,
    summary="Send one delivery's event again (a new delivery)",
)
async def replay_webhook_delivery(
    sub: OwnedWebhook,
    delivery_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
) -> Any:
    return await service.replay_delivery(session=session, actor=actor, sub=sub, delivery_id=delivery_id)


@router.post(
    "/{webhook_id}/replay",
    response_model=ReplayOut,
    status_code=202,
    summary="Send again every matching event since an instant",
    description="Matches as the delivery worker does (event type and ownership), on events already "
    "published; at most 1000 per call, oldest first (`truncated` says when more remain).",
)
async def replay_webhook_events(
    sub: OwnedWebhook, body: ReplaySince, session: SessionDep, actor: ActorDep, _idem: Idempotent
) -> Any:
    return await service.replay_since(session=session, actor=actor, sub=sub, since=body.since)


# ---------------------------------------------------------------- /v1/events


@events_router.get(
    "",
    response_model=EventPage,
    summary="Poll events (the alternative to webhooks)",
    description="Events the caller would receive by webhook (officers and auditors: all), in "
    "publication order after `cursor`. Keep calling with the returned `next_cursor` "
    "(opaque). An event appears once the delivery worker has published it, normally "
    "within a second of the change; paging never skips one that commits late. "
    "Test pings (`webhook.ping`) go only to their endpoint and are not listed here.",
)
async def list_events(
    request: Request,
    session: SessionDep,
    principal: Reader,
    cursor: Annotated[str | None, Query(max_length=200, description="Opaque cursor from `next_cursor`.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size (default 20, at most 100).")] = None,
    after: Annotated[
        str | None, Query(max_length=200, deprecated=True, description="Former name of `cursor`; use `cursor`.")
    ] = None,
) -> Any:
    s = request.app.state.settings
    return await service.poll_events(
        session=session,
        principal=principal,
        after=cursor if cursor is not None else after,
        param="cursor" if cursor is not None else "after",
        limit=min(limit or s.page_size_default, s.page_size_max),
    )


@events_router.get(
    "/types",
    response_model=EventTypePage,
    openapi_extra=PUBLIC,
    summary="The event catalogue: every type, its version and the JSON Schema of its data",
)
async def list_event_types(
    source: Annotated[str | None, Query(max_length=32, description="Only the types this service emits.")] = None,
) -> Any:
    return {"items": service.event_types(source), "next_cursor": None}
