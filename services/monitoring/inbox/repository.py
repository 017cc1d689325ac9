"""Queries on the application facts (schema `monitoring`, written only here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import ApplicationFact


async def get_fact(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> ApplicationFact | None:
    stmt = select(ApplicationFact).where(ApplicationFact.application_id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_fact(session: AsyncSession, values: dict[str, Any]) -> bool:
    stmt = (
        insert(ApplicationFact)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ApplicationFact.application_id])
        .returning(ApplicationFact.application_id)
    )
    return (await session.execute(stmt)).first() is not None


async def insert_facts(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Many facts in one statement, skipping those already there; the ids stored."""
    stmt = (
        insert(ApplicationFact)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[ApplicationFact.application_id])
        .returning(ApplicationFact.application_id)
    )
    return set((await session.execute(stmt)).scalars())


async def update_fact(session: AsyncSession, application_id: uuid.UUID, **values: Any) -> bool:
    """Set columns of a fact; False when monitoring has no fact for the application."""
    stmt = (
        update(ApplicationFact)
        .where(ApplicationFact.application_id == application_id)
        .values(**values, updated_at=datetime.now(UTC))
        .returning(ApplicationFact.application_id)
    )
    return (await session.execute(stmt)).first() is not None


async def add_paid(session: AsyncSession, application_id: uuid.UUID, amount: Decimal) -> bool:
    """Add to (or, negative, take off) what was paid net of recoveries."""
    stmt = (
        update(ApplicationFact)
        .where(ApplicationFact.application_id == application_id)
        .values(paid=ApplicationFact.paid + amount, updated_at=datetime.now(UTC))
        .returning(ApplicationFact.application_id)
    )
    return (await session.execute(stmt)).first() is not None
