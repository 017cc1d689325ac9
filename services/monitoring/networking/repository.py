"""Queries on `monitoring.b2b_outcomes` (written only by the monitoring service)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import B2bOutcome, Project


async def project_of_company(session: AsyncSession, company_id: uuid.UUID) -> Project | None:
    """The company's funded project the networking results count for: the running one, else the latest
    completed; none for a company without one (or whose projects were all revoked)."""
    stmt = (
        select(Project)
        .where(Project.company_id == company_id, Project.status.in_(("active", "completed")))
        .order_by(case((Project.status == "active", 0), else_=1), Project.decree_date.desc(), Project.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_outcome(session: AsyncSession, values: dict[str, Any]) -> bool:
    """One row per meeting: a second event for the same meeting changes nothing."""
    stmt = (
        insert(B2bOutcome)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[B2bOutcome.meeting_id])
        .returning(B2bOutcome.meeting_id)
    )
    return (await session.execute(stmt)).first() is not None


async def outcomes_of_project(session: AsyncSession, project_id: uuid.UUID) -> list[B2bOutcome]:
    stmt = select(B2bOutcome).where(B2bOutcome.project_id == project_id).order_by(B2bOutcome.recorded_at)
    return list((await session.execute(stmt)).scalars())


async def grouped(session: AsyncSession, column: Any, *, event_id: uuid.UUID | None) -> list[Any]:
    """Per value of `column`: meetings, leads, offers, contracts and contract value."""

    def count(outcome: str) -> Any:
        return func.count().filter(B2bOutcome.outcome == outcome)

    stmt = select(
        column.label("key"),
        func.count().label("meetings"),
        count("no_follow_up").label("no_follow_up"),
        count("lead").label("leads"),
        count("offer").label("offers"),
        count("contract").label("contracts"),
        func.coalesce(func.sum(B2bOutcome.contract_value), 0).label("contract_value"),
    ).group_by(column)
    if event_id is not None:
        stmt = stmt.where(B2bOutcome.event_id == event_id)
    return list((await session.execute(stmt.order_by(column))).all())


async def event_titles(session: AsyncSession) -> dict[uuid.UUID, str]:
    stmt = select(B2bOutcome.event_id, func.max(B2bOutcome.event_title)).group_by(B2bOutcome.event_id)
    return {e: t for e, t in (await session.execute(stmt)).all()}
