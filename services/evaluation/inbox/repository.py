"""Queries on evaluation's received applications (schema `evaluation`, written only here)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Row, Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import Evaluation, ReceivedApplication


async def insert_application(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store a received application unless one with its id is already there."""
    stmt = (
        insert(ReceivedApplication)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ReceivedApplication.application_id])
        .returning(ReceivedApplication.application_id)
    )
    return (await session.execute(stmt)).first() is not None


async def insert_applications(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Store many received applications in one statement, skipping those already there; the ids stored."""
    stmt = (
        insert(ReceivedApplication)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[ReceivedApplication.application_id])
        .returning(ReceivedApplication.application_id)
    )
    return set((await session.execute(stmt)).scalars())


async def evaluated(session: AsyncSession, application_id: uuid.UUID) -> bool:
    """Whether the application has its admissibility evaluation."""
    stmt = select(Evaluation.application_id).where(Evaluation.application_id == application_id)
    return (await session.execute(stmt)).first() is not None


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> ReceivedApplication | None:
    stmt = select(ReceivedApplication).where(ReceivedApplication.application_id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def listing(*, call_id: uuid.UUID | None, status: str | None) -> Select[Any]:
    """Received applications, with the (created_at, id) labels the cursor pagination pages on."""
    stmt = select(
        ReceivedApplication,
        ReceivedApplication.received_at.label("created_at"),
        ReceivedApplication.application_id.label("id"),
    )
    if call_id is not None:
        stmt = stmt.where(ReceivedApplication.call_id == call_id)
    if status is not None:
        stmt = stmt.where(ReceivedApplication.status == status)
    return cast("Select[Any]", stmt)  # shared.pagination.keyset takes one-parameter Selects


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Row[Any]]:
    return list((await session.execute(stmt)).all())


async def applications_of_company(session: AsyncSession, company_id: uuid.UUID) -> list[ReceivedApplication]:
    """The company's received applications, locked for an update."""
    stmt = (
        select(ReceivedApplication)
        .where(ReceivedApplication.company_id == company_id)
        .order_by(ReceivedApplication.application_id)
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars().all())
