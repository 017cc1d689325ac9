"""The event catalogue: every event type the desk emits, its version and the JSON Schema of its data.

Each event reaches subscribers in this envelope (the webhook body), signed per Standard Webhooks:

    {"id": "<event uuid>", "type": "application.submitted", "version": 1, "source": "intake",
     "occurred_at": "...Z", "subject": {"type": "application", "id": "..."}, "data": {...}}

The catalogue is published as the `webhooks` of intake's OpenAPI 3.1 document and at `GET /v1/events/types`.
Adding a field is compatible; changing or removing one is a new `version` of the type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class EstimateData(BaseModel):
    eligible_total: Decimal
    grant: Decimal
    loan: Decimal


class ApplicationSubmitted(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    submitted_at: datetime
    content_sha256: str
    estimate: EstimateData | None


class ApplicationWithdrawn(_Data):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int | None
    reason: str
    withdrawn_at: datetime


class DelegationChanged(_Data):
    delegation_id: uuid.UUID
    partner_id: uuid.UUID
    company_id: uuid.UUID
    status: str


class EnrolmentChanged(_Data):
    enrolment_id: uuid.UUID
    training_id: uuid.UUID
    company_id: uuid.UUID
    status: str
    training_title: str
    starts_at: datetime
    places_left: int


class Ping(_Data):
    subscription_id: uuid.UUID
    message: str = "ping"


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    source: str
    summary: str
    data: type[BaseModel]


CATALOGUE: dict[str, EventType] = {e.name: e for e in (
    EventType("application.submitted", 1, "intake", "An application was submitted: protocol number and receipt hash.",
              ApplicationSubmitted),
    EventType("application.withdrawn", 1, "intake", "A submitted application was withdrawn by its applicant.",
              ApplicationWithdrawn),
    EventType("delegation.requested", 1, "intake", "A partner asked a company for a delegation.", DelegationChanged),
    EventType("delegation.activated", 1, "intake", "A delegation became active.", DelegationChanged),
    EventType("delegation.revoked", 1, "intake", "A delegation was revoked.", DelegationChanged),
    EventType("training.enrolled", 1, "intake", "A company's staff member was enrolled in a session.",
              EnrolmentChanged),
    EventType("training.enrolment_cancelled", 1, "intake", "An enrolment was cancelled.", EnrolmentChanged),
    EventType("webhook.ping", 1, "intake", "A test event sent on request to check an endpoint.", Ping),
)}


def register(event: EventType) -> None:
    """Other services add their event types (evaluation's decisions, monitoring's payments) here."""
    CATALOGUE[event.name] = event


class Subject(BaseModel):
    type: str
    id: str


class Envelope(BaseModel):
    """The body of every webhook and of every item of `GET /v1/events`."""

    id: uuid.UUID = Field(description="Event id; also the webhook-id header: deduplicate on it.")
    type: str
    version: int
    source: str
    occurred_at: datetime
    subject: Subject
    data: dict[str, Any]


def envelope(row: Any) -> dict[str, Any]:
    """The envelope of an outbox row (desk.outbox), JSON-ready."""
    return {
        "id": str(row.event_id), "type": row.event_type, "version": row.event_version, "source": row.source,
        "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
        "subject": {"type": row.aggregate_type, "id": row.aggregate_id}, "data": row.payload,
    }
