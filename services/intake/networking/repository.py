"""Queries on the networking tables (`intake.b2b_*`), written only by the intake service.

Every change of an event's agenda (planning, a manual meeting, a withdrawal) runs under the event's row lock
(`get_event(for_update=True)`), so slot loads read here are the committed truth while the change is made; the
partial unique indexes of `b2b_meetings` refuse a double booking whatever happens.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import (
    B2bEvent,
    B2bEventOperator,
    B2bInterest,
    B2bMeeting,
    B2bOperator,
    B2bOperatorPreference,
    Company,
)
from shared.access import company_reachable
from shared.auth import Principal
from shared.db import one_or_none
from shared.pagination import PageParams, page_rows

LIVE = ("proposed", "confirmed")


async def get_operator(session: AsyncSession, operator_id: uuid.UUID) -> B2bOperator | None:
    return await session.get(B2bOperator, operator_id)


async def existing_operators(session: AsyncSession, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    stmt = select(B2bOperator.id).where(B2bOperator.id.in_(ids))
    return set((await session.execute(stmt)).scalars())


async def list_operators(
    session: AsyncSession, page: PageParams, *, country: str | None, kind: str | None
) -> list[B2bOperator]:
    stmt = select(B2bOperator)
    if country is not None:
        stmt = stmt.where(B2bOperator.country == country)
    if kind is not None:
        stmt = stmt.where(B2bOperator.kind == kind)
    return await page_rows(session, stmt, page, B2bOperator)


async def get_event(session: AsyncSession, event_id: uuid.UUID, *, for_update: bool = False) -> B2bEvent | None:
    stmt = select(B2bEvent).where(B2bEvent.id == event_id)
    return await one_or_none(session, stmt, for_update=for_update)


async def list_events(session: AsyncSession, page: PageParams) -> list[B2bEvent]:
    return await page_rows(session, select(B2bEvent), page, B2bEvent)


async def event_operators(session: AsyncSession, event_id: uuid.UUID) -> list[B2bEventOperator]:
    stmt = select(B2bEventOperator).where(B2bEventOperator.event_id == event_id).order_by(B2bEventOperator.operator_id)
    return list((await session.execute(stmt)).scalars())


async def event_operator(session: AsyncSession, event_id: uuid.UUID, operator_id: uuid.UUID) -> B2bEventOperator | None:
    return await session.get(B2bEventOperator, (event_id, operator_id), populate_existing=True)


async def slot_loads(session: AsyncSession, event_id: uuid.UUID) -> dict[int, int]:
    stmt = (
        select(B2bMeeting.slot, func.count())
        .where(B2bMeeting.event_id == event_id, B2bMeeting.status.in_(LIVE))
        .group_by(B2bMeeting.slot)
    )
    return {int(s): int(n) for s, n in (await session.execute(stmt)).all()}


async def company_exists(session: AsyncSession, company_id: uuid.UUID) -> bool:
    return bool((await session.execute(select(exists().where(Company.id == company_id)))).scalar())


async def get_interest(
    session: AsyncSession, event_id: uuid.UUID, company_id: uuid.UUID, operator_id: uuid.UUID
) -> B2bInterest | None:
    stmt = select(B2bInterest).where(
        B2bInterest.event_id == event_id, B2bInterest.company_id == company_id, B2bInterest.operator_id == operator_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_interests(
    session: AsyncSession, principal: Principal, event_id: uuid.UUID, page: PageParams
) -> list[B2bInterest]:
    stmt = select(B2bInterest).where(
        B2bInterest.event_id == event_id, company_reachable(principal, B2bInterest.company_id)
    )
    return await page_rows(session, stmt, page, B2bInterest)


async def active_interests(session: AsyncSession, event_id: uuid.UUID) -> list[B2bInterest]:
    stmt = select(B2bInterest).where(B2bInterest.event_id == event_id, B2bInterest.status == "active")
    return list((await session.execute(stmt)).scalars())


async def withdraw_interests(session: AsyncSession, event_id: uuid.UUID, company_id: uuid.UUID) -> int:
    stmt = (
        update(B2bInterest)
        .where(B2bInterest.event_id == event_id, B2bInterest.company_id == company_id, B2bInterest.status == "active")
        .values(status="withdrawn")
        .execution_options(synchronize_session=False)
    )
    return int((await session.execute(stmt)).rowcount or 0)  # type: ignore[attr-defined]


async def company_withdrawn(session: AsyncSession, event_id: uuid.UUID, company_id: uuid.UUID) -> bool:
    """The company pulled out of the event: it has interests, none of them active."""
    stmt = select(B2bInterest.status).where(B2bInterest.event_id == event_id, B2bInterest.company_id == company_id)
    statuses = set((await session.execute(stmt)).scalars())
    return bool(statuses) and "active" not in statuses


async def operator_preferences(session: AsyncSession, event_id: uuid.UUID) -> list[B2bOperatorPreference]:
    stmt = select(B2bOperatorPreference).where(B2bOperatorPreference.event_id == event_id)
    return list((await session.execute(stmt)).scalars())


async def get_preference(
    session: AsyncSession, event_id: uuid.UUID, operator_id: uuid.UUID, company_id: uuid.UUID
) -> B2bOperatorPreference | None:
    return await session.get(B2bOperatorPreference, (event_id, operator_id, company_id))


async def operator_sectors(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    stmt = select(B2bOperator.id, B2bOperator.sectors).where(B2bOperator.id.in_(ids))
    return {i: list(s) for i, s in (await session.execute(stmt)).all()}


async def company_ateco(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    stmt = select(Company.id, Company.ateco_code).where(Company.id.in_(ids))
    return {i: a for i, a in (await session.execute(stmt)).all()}


async def live_meetings(session: AsyncSession, event_id: uuid.UUID) -> list[B2bMeeting]:
    stmt = (
        select(B2bMeeting)
        .where(B2bMeeting.event_id == event_id, B2bMeeting.status.in_(LIVE))
        .order_by(B2bMeeting.slot, B2bMeeting.company_id, B2bMeeting.operator_id)
    )
    return list((await session.execute(stmt)).scalars())


async def live_meetings_of(
    session: AsyncSession,
    event_id: uuid.UUID,
    *,
    company_id: uuid.UUID | None = None,
    operator_id: uuid.UUID | None = None,
) -> list[B2bMeeting]:
    stmt = select(B2bMeeting).where(B2bMeeting.event_id == event_id, B2bMeeting.status.in_(LIVE))
    if company_id is not None:
        stmt = stmt.where(B2bMeeting.company_id == company_id)
    if operator_id is not None:
        stmt = stmt.where(B2bMeeting.operator_id == operator_id)
    stmt = stmt.order_by(B2bMeeting.slot).with_for_update().execution_options(populate_existing=True)
    return list((await session.execute(stmt)).scalars())


async def list_meetings(
    session: AsyncSession,
    principal: Principal,
    event_id: uuid.UUID,
    page: PageParams,
    *,
    company_id: uuid.UUID | None,
    operator_id: uuid.UUID | None,
    status: str | None,
) -> list[B2bMeeting]:
    stmt = select(B2bMeeting).where(
        B2bMeeting.event_id == event_id, company_reachable(principal, B2bMeeting.company_id)
    )
    if company_id is not None:
        stmt = stmt.where(B2bMeeting.company_id == company_id)
    if operator_id is not None:
        stmt = stmt.where(B2bMeeting.operator_id == operator_id)
    if status is not None:
        stmt = stmt.where(B2bMeeting.status == status)
    return await page_rows(session, stmt, page, B2bMeeting)


async def get_meeting(
    session: AsyncSession, principal: Principal, meeting_id: uuid.UUID, *, for_update: bool = False
) -> B2bMeeting | None:
    stmt = select(B2bMeeting).where(B2bMeeting.id == meeting_id, company_reachable(principal, B2bMeeting.company_id))
    return await one_or_none(session, stmt, for_update=for_update, of=B2bMeeting)


def add(session: AsyncSession, *rows: Any) -> None:
    session.add_all(rows)
