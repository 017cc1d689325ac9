"""Tables of the `desk` schema: cross-cutting records written only through the shared library.

api_clients (OAuth2 client credentials), audit_log (append-only, hash-chained per service, with the
chains' heads in audit_chains), idempotency_keys, outbox, company_delegates (who may act for which company:
written only by `shared.access`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import expression

from shared.db import Base


class ApiClient(Base):
    """An OAuth2 client. Managed through intake's `/v1/clients` (migration 0019): `previous_secrets` are the
    hashes a rotation replaced, each accepted until its `expires_at`; a revoked client (`revoked_at`) gets no
    token, and the tokens it already holds are refused by every service (`shared.revocation`)."""

    __tablename__ = "api_clients"
    __table_args__ = (
        Index(None, "revoked_at", postgresql_where="revoked_at IS NOT NULL"),
        Index(None, "partner_id"),
        {"schema": "desk"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    company_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    previous_secrets: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, default=list, server_default=expression.text("'[]'::jsonb")
    )
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRecord(Base):
    """One change. `seq`, `prev_hash` and `hash` are set when the writing transaction commits, by the
    deferred trigger `desk.audit_link` (migrations 0013, 0034), whoever inserted the row: see `shared.audit_chain`
    for the canonical form they hash."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "resource_type", "resource_id"),
        UniqueConstraint("service", "seq"),
        {"schema": "desk"},
    )

    # Always from the sequence (migration 0034: linking finds a transaction's records by their ids).
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    service: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    principal_kind: Mapped[str] = mapped_column(String(16))
    principal_client_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Null only until the writing transaction commits (see the class docstring).
    seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChain(Base):
    """The head of one service's audit chain: locked by a committing transaction that links records."""

    __tablename__ = "audit_chains"
    __table_args__ = {"schema": "desk"}

    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index(None, "expires_at"),
        {"schema": "desk"},
    )

    # The key's owner, as shared.routing.idempotency_owner names it (partner:<uuid>, company:<uuid>, client:<id>).
    principal: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # Set when the response is rebuilt from the resource on replay (a submit's receipt) instead of stored.
    render_ref: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _subject_id(context: Any) -> Any:
    return context.get_current_parameters()["aggregate_id"]


class OutboxEvent(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index(None, "aggregate_type", "aggregate_id", "id"),
        Index("ix_outbox_undelivered", "id", postgresql_where="published_at IS NULL"),
        Index("ix_outbox_published_seq", "published_seq", unique=True, postgresql_where="published_seq IS NOT NULL"),
        {"schema": "desk"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(String(100))
    event_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    source: Mapped[str] = mapped_column(String(32))
    # The event's subject (`shared.events.catalogue.SUBJECTS`): the noun of its type and that object's UUID.
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    # Deliveries to one subscription sharing this key go out in order (`shared.audit.event_params`): the
    # application's id for events about an application, otherwise the subject's id (the default here).
    ordering_key: Mapped[str] = mapped_column(String(64), default=_subject_id)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    company_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Publication order (the `GET /v1/events` cursor): set by the worker's fan-out from
    # OUTBOX_PUBLISHED_SEQ under an advisory lock, so it follows the fan-outs' commit order. NULL for
    # events not yet fanned out and for events aimed at one subscription (pings), which are not polled.
    published_seq: Mapped[int | None] = mapped_column(BigInteger)


OUTBOX_PUBLISHED_SEQ = Sequence("outbox_published_seq", schema="desk", metadata=Base.metadata)


class Subscription(Base):
    """Who hears which events: a partner's webhook endpoint, or another desk service."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index(None, "partner_id"),
        {"schema": "desk"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_kind: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    company_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    service: Mapped[str | None] = mapped_column(String(32), unique=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookPortAllowance(Base):
    """A port other than 443 that an officer allowed webhooks to use on one host (production only checks it)."""

    __tablename__ = "webhook_port_allowances"
    __table_args__ = (
        UniqueConstraint("host", "port"),
        {"schema": "desk"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Delivery(Base):
    """One event to one subscriber; delivered at least once, in order per (subscription, aggregate)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # each lane of the worker walks its own queue in id order (migration 0032), and checks each candidate is
        # the oldest pending delivery of its application by reading only that application's (migration 0033)
        Index("ix_deliveries_pending_by_subscription", "subscription_id", "id", postgresql_where="status = 'pending'"),
        Index("ix_deliveries_pending_external", "id", postgresql_where="status = 'pending' AND NOT internal"),
        Index(
            "ix_deliveries_pending_by_aggregate",
            "subscription_id",
            "aggregate_key",
            "id",
            postgresql_where="status = 'pending'",
        ),
        Index(None, "subscription_id", "id"),  # a subscription's deliveries, newest first
        Index(None, "event_id"),
        {"schema": "desk"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("desk.outbox.id"))
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("desk.subscriptions.id"))
    aggregate_key: Mapped[str] = mapped_column(Text)
    # to a desk service's inbox (its subscription's owner_kind is 'service'), set when the delivery is made
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    replay_of: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index(None, "delivery_id"),
        {"schema": "desk"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("desk.deliveries.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class CompanyDelegate(Base):
    """Which partners act for which company, as every service's access rule reads it.

    One row per (company, partner) that ever had a delegation: `active` while the partner holds the company's
    active delegation. Written only through `shared.access.record_delegation`, which intake calls in the
    transaction that changes `intake.delegations`, so a revocation is effective in every service the moment it
    commits.
    """

    __tablename__ = "company_delegates"
    __table_args__ = (
        Index(None, "partner_id", postgresql_where=expression.text("active")),
        {"schema": "desk"},
    )

    company_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    delegation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    active: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MoneyConfirmation(Base):
    """Four-eyes on money decisions: one officer proposes (funding approval, decree closing, payment order, claim
    outcome override), a second, different officer confirms. Written only through `shared.four_eyes`, in the
    transaction of the proposal or of the decision it confirms. At most one open proposal per action and resource."""

    __tablename__ = "money_confirmations"
    __table_args__ = (
        Index(
            "uq_money_confirmations_open",
            "action",
            "resource_id",
            unique=True,
            postgresql_where=expression.text("status = 'proposed'"),
        ),
        {"schema": "desk"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    service: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
