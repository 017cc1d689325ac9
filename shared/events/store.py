"""SQL on the desk's event-delivery tables for the partner-facing webhook and event API.

`desk.subscriptions`, `desk.deliveries`, `desk.delivery_attempts` and `desk.outbox` are cross-cutting
tables written only through the shared library: the delivery worker (`shared.events.worker`) fans
events out and delivers them; this module lets a service manage subscriptions, target one event at
one subscription, replay deliveries, and read the published events for polling. Callers pass the "readable by
this caller" WHERE clause; nothing here knows about principals. Nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.access import partner_hears, partner_hears_sql
from shared.models import Delivery, DeliveryAttempt, OutboxEvent, Subscription, WebhookPortAllowance

# The ownership rule of the worker's FAN_OUT join, as one SQL predicate over `o` (outbox) and `s`
# (subscriptions). A ping is targeted at one subscription, so it never matches another one.
_MATCHES = f"""
    (o.event_type = ANY (s.event_types) OR '*' = ANY (s.event_types))
    AND (s.owner_kind = 'service'
         OR (s.owner_kind = 'partner' AND {partner_hears_sql("o", "s.partner_id")})
         OR (s.owner_kind = 'company' AND s.company_id = o.company_id))
    AND (o.event_type <> 'webhook.ping' OR o.aggregate_id = s.id::text)
"""

_TARGETED_EVENT = text(
    "INSERT INTO desk.outbox (event_id, event_type, event_version, source, aggregate_type, aggregate_id,"
    " ordering_key, partner_id, company_id, payload, published_at) VALUES (:eid, :etype, :ever, :source, :atype,"
    " :aid, :okey, :partner, :company, CAST(:payload AS jsonb), now()) RETURNING id, event_id"
)

_EVENTS_SINCE = text(f"""
SELECT o.id FROM desk.outbox o JOIN desk.subscriptions s ON s.id = :sub
 WHERE o.occurred_at >= :since AND o.published_at IS NOT NULL AND {_MATCHES}
 ORDER BY o.id LIMIT :n
""")

_REPLAY_EVENTS = text("""
INSERT INTO desk.deliveries (event_id, subscription_id, aggregate_key, internal, replay_of)
SELECT o.id, :sub, o.ordering_key,
       coalesce((SELECT s.owner_kind = 'service' FROM desk.subscriptions s WHERE s.id = :sub), false),
       (SELECT max(d.id) FROM desk.deliveries d WHERE d.event_id = o.id AND d.subscription_id = :sub)
  FROM desk.outbox o WHERE o.id = ANY (:ids)
 ORDER BY o.id
RETURNING id
""")


# ---------------------------------------------------------------- who sees what


def subscriptions_of(
    *, partner_id: uuid.UUID | None = None, company_id: uuid.UUID | None = None
) -> ColumnElement[bool]:
    """Subscriptions owned by this partner or company (neither given: none)."""
    if partner_id is not None:
        return and_(Subscription.owner_kind == "partner", Subscription.partner_id == partner_id)
    if company_id is not None:
        return and_(Subscription.owner_kind == "company", Subscription.company_id == company_id)
    return false()


def events_of(*, partner_id: uuid.UUID | None = None, company_id: uuid.UUID | None = None) -> ColumnElement[bool]:
    """Outbox events a partner or a company would receive by webhook (the fan-out's ownership rule)."""
    clauses: list[ColumnElement[bool]] = []
    if partner_id is not None:
        clauses.append(partner_hears(partner_id))
    if company_id is not None:
        clauses.append(OutboxEvent.company_id == company_id)
    return or_(*clauses) if clauses else false()


# ---------------------------------------------------------------- subscriptions


async def get_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, readable: ColumnElement[bool], *, for_update: bool = False
) -> Subscription | None:
    """A live (not deleted) subscription the caller may see, optionally locked until commit."""
    stmt = select(Subscription).where(Subscription.id == subscription_id, Subscription.deleted_at.is_(None), readable)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_subscriptions(
    session: AsyncSession, readable: ColumnElement[bool], *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Subscription]:
    """Live subscriptions in (created_at, id) order after the keyset, one more than `limit`."""
    stmt = select(Subscription).where(Subscription.deleted_at.is_(None), readable)
    if after is not None:
        ts, id_ = after
        stmt = stmt.where(or_(Subscription.created_at > ts, and_(Subscription.created_at == ts, Subscription.id > id_)))
    stmt = stmt.order_by(Subscription.created_at, Subscription.id).limit(limit + 1)
    return list((await session.execute(stmt)).scalars())


async def cancel_pending_deliveries(session: AsyncSession, subscription_id: uuid.UUID, reason: str) -> int:
    """Dead-letter what a removed subscription still had to send (the worker claims by status only)."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == subscription_id, Delivery.status == "pending")
        .values(status="dead", last_error=reason)
        .returning(Delivery.id)
    )
    return len(result.all())


# ---------------------------------------------------------------- ports an officer allowed


async def allowed_ports(session: AsyncSession, host: str) -> list[int]:
    """The ports other than 443 that webhooks may use on this host (lower case, as `egress.parse_url` gives)."""
    rows = await session.execute(select(WebhookPortAllowance.port).where(WebhookPortAllowance.host == host))
    return sorted(rows.scalars())


async def list_port_allowances(session: AsyncSession) -> list[WebhookPortAllowance]:
    stmt = select(WebhookPortAllowance).order_by(WebhookPortAllowance.host, WebhookPortAllowance.port)
    return list((await session.execute(stmt)).scalars())


async def get_port_allowance(session: AsyncSession, allowance_id: uuid.UUID) -> WebhookPortAllowance | None:
    return await session.get(WebhookPortAllowance, allowance_id)


async def find_port_allowance(session: AsyncSession, host: str, port: int) -> WebhookPortAllowance | None:
    stmt = select(WebhookPortAllowance).where(WebhookPortAllowance.host == host, WebhookPortAllowance.port == port)
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_port_allowance(session: AsyncSession, allowance_id: uuid.UUID) -> None:
    await session.execute(delete(WebhookPortAllowance).where(WebhookPortAllowance.id == allowance_id))


# ---------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class TargetedEvent:
    outbox_id: int
    event_id: uuid.UUID
    delivery_id: int


async def insert_targeted_event(
    session: AsyncSession, params: dict[str, Any], subscription_id: uuid.UUID
) -> TargetedEvent:
    """An outbox event for exactly one subscription: the row is born published (so the fan-out skips
    it) and its one delivery is inserted here. `params` are `shared.audit.event_params(...)`."""
    row = (await session.execute(_TARGETED_EVENT, params)).one()
    delivery_id = (
        await session.execute(
            insert(Delivery)
            .values(event_id=row.id, subscription_id=subscription_id, aggregate_key=params["okey"])
            .returning(Delivery.id)
        )
    ).scalar_one()
    return TargetedEvent(row.id, row.event_id, delivery_id)


async def get_delivery(session: AsyncSession, subscription_id: uuid.UUID, delivery_id: int) -> Delivery | None:
    stmt = select(Delivery).where(Delivery.id == delivery_id, Delivery.subscription_id == subscription_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def replay_delivery(session: AsyncSession, delivery: Delivery) -> int:
    """A new pending delivery of the same event to the same subscription, pointing at the original."""
    return (
        await session.execute(
            insert(Delivery)
            .values(
                event_id=delivery.event_id,
                subscription_id=delivery.subscription_id,
                aggregate_key=delivery.aggregate_key,
                replay_of=delivery.id,
            )
            .returning(Delivery.id)
        )
    ).scalar_one()


async def matching_events_since(
    session: AsyncSession, subscription_id: uuid.UUID, since: datetime, limit: int
) -> list[int]:
    """Outbox ids of the published events since `since` that the subscription matches, oldest first.

    Unpublished events are left out: the fan-out will deliver them anyway.
    """
    rows = await session.execute(_EVENTS_SINCE, {"sub": subscription_id, "since": since, "n": limit})
    return [r.id for r in rows]


async def replay_events(session: AsyncSession, subscription_id: uuid.UUID, outbox_ids: Sequence[int]) -> list[int]:
    """New pending deliveries of these events to the subscription (replay_of: its latest earlier delivery)."""
    if not outbox_ids:
        return []
    rows = await session.execute(_REPLAY_EVENTS, {"sub": subscription_id, "ids": list(outbox_ids)})
    return sorted(r.id for r in rows)


@dataclass(frozen=True)
class DeliveryView:
    delivery: Delivery
    event_id: uuid.UUID
    event_type: str
    attempt_log: list[DeliveryAttempt]


async def list_deliveries(
    session: AsyncSession, subscription_id: uuid.UUID, *, status: str | None, before_id: int | None, limit: int
) -> list[DeliveryView]:
    """The subscription's deliveries, newest first, with their event and attempt log (`limit` + 1 rows)."""
    stmt = (
        select(Delivery, OutboxEvent.event_id, OutboxEvent.event_type)
        .join(OutboxEvent, OutboxEvent.id == Delivery.event_id)
        .where(Delivery.subscription_id == subscription_id)
    )
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    if before_id is not None:
        stmt = stmt.where(Delivery.id < before_id)
    rows = (await session.execute(stmt.order_by(Delivery.id.desc()).limit(limit + 1))).all()
    ids = [r[0].id for r in rows]
    log: dict[int, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        attempts = await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(ids))
            .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt, DeliveryAttempt.id)
        )
        for a in attempts.scalars():
            log[a.delivery_id].append(a)
    return [DeliveryView(r[0], r[1], r[2], log[r[0].id]) for r in rows]


# ---------------------------------------------------------------- polling


async def events_after(
    session: AsyncSession, readable: ColumnElement[bool], *, after_seq: int, limit: int
) -> list[OutboxEvent]:
    """Published events the caller may see, in publication order, after a publication number.

    Paging by `published_seq` (not by the outbox id, taken at INSERT and committed in any order)
    never skips an event: the fan-out numbers events under a lock, so every number below one that
    is visible is visible too. Events not fanned out yet are not served until they are.
    """
    stmt = (
        select(OutboxEvent)
        .where(OutboxEvent.published_seq > after_seq, readable)
        .order_by(OutboxEvent.published_seq)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
