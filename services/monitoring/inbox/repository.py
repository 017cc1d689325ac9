"""Queries on the application facts (schema `monitoring`, written only here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text, update
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


# The rows are locked in id order first, so two transactions updating the same facts never wait in a cycle.
_SET_ADMISSIBILITY = text(
    """
    WITH v AS MATERIALIZED (
      SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:admitted AS boolean[]), CAST(:status AS varchar[]))
          AS v(application_id, admitted, status)
    ), locked AS MATERIALIZED (
      SELECT f.application_id FROM monitoring.application_facts f
       WHERE f.application_id IN (SELECT application_id FROM v)
       ORDER BY f.application_id
         FOR UPDATE OF f
    )
    UPDATE monitoring.application_facts f
       SET admitted = v.admitted, status = v.status, updated_at = :now
      FROM v JOIN locked USING (application_id)
     WHERE f.application_id = v.application_id
    RETURNING f.application_id
    """
)


async def set_admissibility(session: AsyncSession, outcomes: dict[uuid.UUID, tuple[bool, str]]) -> set[uuid.UUID]:
    """Set `admitted` and `status` of many facts in one statement (the statistics' triggers run once);
    `outcomes` maps an application to its (admitted, status). The ids of the facts updated (those that exist)."""
    if not outcomes:
        return set()
    ids = sorted(outcomes)
    params = {
        "ids": ids,
        "admitted": [outcomes[a][0] for a in ids],
        "status": [outcomes[a][1] for a in ids],
        "now": datetime.now(UTC),
    }
    return set((await session.execute(_SET_ADMISSIBILITY, params)).scalars())


async def add_paid(session: AsyncSession, application_id: uuid.UUID, amount: Decimal) -> bool:
    """Add to (or, negative, take off) what was paid net of recoveries."""
    stmt = (
        update(ApplicationFact)
        .where(ApplicationFact.application_id == application_id)
        .values(paid=ApplicationFact.paid + amount, updated_at=datetime.now(UTC))
        .returning(ApplicationFact.application_id)
    )
    return (await session.execute(stmt)).first() is not None
