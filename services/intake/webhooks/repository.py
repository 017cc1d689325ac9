"""Who sees which subscription and event; the SQL itself lives in `shared.events.store` (desk tables).

A partner or a company sees its own subscriptions and the events it would receive by webhook;
officers and auditors see everything. Anything else answers 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.events import store
from shared.models import OutboxEvent, Subscription


def _reads_all(principal: Principal) -> bool:
    return principal.kind in ("officer", "auditor")


def readable_subscriptions(principal: Principal) -> ColumnElement[bool]:
    if _reads_all(principal):
        return true()
    if principal.kind == "partner":
        return store.subscriptions_of(partner_id=principal.partner_id)
    if principal.kind == "company":
        return store.subscriptions_of(company_id=principal.company_id)
    return store.subscriptions_of()


def readable_events(principal: Principal) -> ColumnElement[bool]:
    if _reads_all(principal):
        return true()
    if principal.kind == "partner":
        return store.events_of(partner_id=principal.partner_id)
    if principal.kind == "company":
        return store.events_of(company_id=principal.company_id)
    return store.events_of()


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, *, for_update: bool = False
) -> Subscription | None:
    return await store.get_subscription(
        session, subscription_id, readable_subscriptions(principal), for_update=for_update
    )


async def list_subscriptions(
    session: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Subscription]:
    return await store.list_subscriptions(session, readable_subscriptions(principal), after=after, limit=limit)


async def events_after(session: AsyncSession, principal: Principal, *, after_seq: int, limit: int) -> list[OutboxEvent]:
    return await store.events_after(session, readable_events(principal), after_seq=after_seq, limit=limit)
