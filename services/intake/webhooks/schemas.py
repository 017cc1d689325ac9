"""Webhook subscriptions, their deliveries, and polled events: request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from shared.events.catalogue import Envelope
from shared.schemas import ApiModel, OutModel

DeliveryStatus = Literal["pending", "delivered", "dead"]


class WebhookCreate(ApiModel):
    url: str = Field(
        min_length=1,
        max_length=2000,
        examples=["https://crm.partner.example/desk-events"],
        description="Where events are POSTed. https on port 443 in production; no credentials or "
        "fragment; it must resolve to public addresses only (no private, link-local, "
        "loopback or metadata hosts, in any IPv4 or IPv6 form).",
    )
    event_types: list[str] = Field(
        min_length=1,
        max_length=50,
        examples=[["application.submitted"]],
        description='Names from `GET /v1/events/types`, or `["*"]` for every type.',
    )
    description: str | None = Field(None, max_length=500)


class WebhookOut(OutModel):
    id: uuid.UUID
    owner_kind: Literal["partner", "company", "service"]
    partner_id: uuid.UUID | None
    company_id: uuid.UUID | None
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    previous_secret_expires_at: datetime | None = Field(
        description="While in the future, deliveries are also signed with the previous secret."
    )
    created_by: str
    created_at: datetime
    etag: str


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`, Standard Webhooks). Returned only in this response: store it now."
    )


class PortAllowanceCreate(ApiModel):
    host: str = Field(
        min_length=1,
        max_length=253,
        examples=["hooks.partner.example"],
        description="The host name (or IP address) of webhook URLs, as written in them.",
    )
    port: int = Field(ge=1, le=65535, examples=[8443], description="The port webhooks to this host may use.")
    reason: str = Field(min_length=1, max_length=500, description="Why it is allowed (kept in the audit trail).")


class PortAllowanceOut(OutModel):
    id: uuid.UUID
    host: str
    port: int
    reason: str
    created_by: str
    created_at: datetime


class PortAllowancePage(OutModel):
    items: list[PortAllowanceOut]
    next_cursor: str | None = None


class SecretRotation(ApiModel):
    overlap_hours: int = Field(
        24, ge=0, le=168, description="How long deliveries are signed with both the new and the old secret."
    )


class PingOut(OutModel):
    event_id: uuid.UUID = Field(description="The `webhook.ping` event (the webhook-id header of the delivery).")
    delivery_id: int


ERROR_CODES = (
    "`address_forbidden`, `port_not_allowed`, `dns_failed`, `url_invalid`, `timeout`, `connect_failed`, "
    "`transport_error`, `http_error` (a non-2xx status); the endpoint's answer itself is not kept."
)


class DeliveryAttemptOut(OutModel):
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int | None
    error: str | None = Field(description="Why the attempt failed, as a code: " + ERROR_CODES)


class DeliveryOut(OutModel):
    id: int
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None = Field(
        description="The last attempt's error code (" + ERROR_CODES + ") or why the "
        "delivery was dead-lettered (`subscription deleted`, ...)."
    )
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime
    replay_of: int | None = Field(description="The earlier delivery this one replays, if any.")
    attempt_log: list[DeliveryAttemptOut]


class DeliveryPage(OutModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for older deliveries; null at the end.")


class ReplaySince(ApiModel):
    since: AwareDatetime = Field(description="Replay every matching event that occurred at or after this instant.")


class ReplayOut(OutModel):
    count: int
    delivery_ids: list[int]
    truncated: bool = Field(
        False, description="True when more events matched than one request replays; call again with a later `since`."
    )


class EventPage(OutModel):
    items: list[Envelope]
    next_cursor: str | None = Field(description="Pass as `after` to keep polling (set whenever a cursor exists).")


class EventTypeOut(OutModel):
    name: str
    version: int
    source: str
    summary: str
    subject: str = Field(
        description="The envelope's `subject.type`: the noun of the type's name, the object it is about."
    )
    subject_href: str = Field(
        description="Where that object is read, on the `source` service: the `subject.href` template, `{id}` its id."
    )
    data_schema: dict[str, Any] = Field(description="JSON Schema of the envelope's `data`.")


class EventTypePage(OutModel):
    items: list[EventTypeOut]
    next_cursor: str | None = None
