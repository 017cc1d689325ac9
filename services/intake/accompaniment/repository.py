"""Queries on the accompaniment tables (`intake.experts`, `intake.engagements`, `intake.accompaniment_sessions`).

Hours are written under row locks taken in one order, company then expert then engagement: logging a session
locks the company's row (`FOR NO KEY UPDATE`: the per-company cap of the call) and the expert's (the monthly
capacity), so concurrent sessions of one company, or of one expert, are serialised and each sees the hours the
others committed before it checks its limits.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import (
    AccompanimentSession,
    Application,
    Company,
    Engagement,
    ExpenseLine,
    Expert,
)
from shared.access import company_reachable
from shared.auth import Principal
from shared.db import one_or_none
from shared.pagination import PageParams, page_rows

# ---------------------------------------------------------------- experts


async def get_expert(session: AsyncSession, expert_id: uuid.UUID, *, for_update: bool = False) -> Expert | None:
    stmt = select(Expert).where(Expert.id == expert_id)
    return await one_or_none(session, stmt, for_update=for_update)


async def expert_of_client(session: AsyncSession, client_id: str) -> Expert | None:
    return (await session.execute(select(Expert).where(Expert.client_id == client_id))).scalar_one_or_none()


async def insert_expert(session: AsyncSession, values: dict[str, Any]) -> Expert | None:
    """Insert an expert; None when its fiscal code is already on the roster (also when a concurrent twin
    committed first: the unique constraint decides)."""
    stmt = (
        insert(Expert)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Expert.fiscal_code])
        .returning(Expert)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def fiscal_code_taken(session: AsyncSession, fiscal_code: str, *, other_than: uuid.UUID | None = None) -> bool:
    stmt = select(Expert.id).where(Expert.fiscal_code == fiscal_code)
    if other_than is not None:
        stmt = stmt.where(Expert.id != other_than)
    return (await session.execute(stmt.limit(1))).first() is not None


async def list_experts(
    session: AsyncSession, page: PageParams, *, phase: str | None, market: str | None, accredited_on: date | None
) -> list[Expert]:
    stmt = select(Expert)
    if phase is not None:
        stmt = stmt.where(literal(phase) == func.any(Expert.phases))
    if market is not None:
        stmt = stmt.where(literal(market) == func.any(Expert.markets))
    if accredited_on is not None:
        stmt = stmt.where(Expert.accredited_from <= accredited_on).where(
            (Expert.accredited_to.is_(None)) | (Expert.accredited_to >= accredited_on)
        )
    return await page_rows(session, stmt, page, Expert)


async def all_experts_for_phase(session: AsyncSession, phase: str) -> list[Expert]:
    stmt = select(Expert).where(literal(phase) == func.any(Expert.phases)).order_by(Expert.fiscal_code)
    return list((await session.execute(stmt)).scalars())


async def expert_has_engagements(session: AsyncSession, expert_id: uuid.UUID) -> bool:
    stmt = select(Engagement.id).where(Engagement.expert_id == expert_id).limit(1)
    if (await session.execute(stmt)).first() is not None:
        return True
    stmt = select(AccompanimentSession.id).where(AccompanimentSession.expert_id == expert_id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def hours_in_month(
    session: AsyncSession, expert_ids: list[uuid.UUID], first: date, nxt: date
) -> dict[uuid.UUID, Decimal]:
    if not expert_ids:
        return {}
    stmt = (
        select(AccompanimentSession.expert_id, func.sum(AccompanimentSession.hours))
        .where(
            AccompanimentSession.expert_id.in_(expert_ids),
            AccompanimentSession.held_on >= first,
            AccompanimentSession.held_on < nxt,
        )
        .group_by(AccompanimentSession.expert_id)
    )
    return {eid: Decimal(h) for eid, h in (await session.execute(stmt)).all()}


# ---------------------------------------------------------------- companies and applications


async def get_application(session: AsyncSession, principal: Principal, application_id: uuid.UUID) -> Application | None:
    stmt = select(Application).where(
        Application.id == application_id, company_reachable(principal, Application.company_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_company(session: AsyncSession, company_id: uuid.UUID) -> Company | None:
    return await session.get(Company, company_id)


async def lock_company(session: AsyncSession, company_id: uuid.UUID) -> None:
    stmt = select(Company.id).where(Company.id == company_id).with_for_update(key_share=True)
    await session.execute(stmt)


async def suppliers(session: AsyncSession, application_id: uuid.UUID) -> list[str]:
    stmt = select(ExpenseLine.supplier).where(
        ExpenseLine.application_id == application_id, ExpenseLine.supplier.is_not(None)
    )
    return [s for s in (await session.execute(stmt)).scalars() if s]


async def company_hours(session: AsyncSession, company_id: uuid.UUID, call_id: uuid.UUID) -> Decimal:
    stmt = select(func.coalesce(func.sum(AccompanimentSession.hours), 0)).where(
        AccompanimentSession.company_id == company_id, AccompanimentSession.call_id == call_id
    )
    return Decimal((await session.execute(stmt)).scalar_one())


# ---------------------------------------------------------------- engagements


def engagement_readable(principal: Principal) -> ColumnElement[bool]:
    """An expert reads the engagements assigned to it; everyone else those of the companies within reach."""
    if principal.kind == "expert":
        mine = select(Expert.id).where(Expert.client_id == principal.client_id).scalar_subquery()
        return Engagement.expert_id == mine
    if principal.kind in ("partner", "company", "officer", "auditor", "service"):
        return company_reachable(principal, Engagement.company_id)
    return false()


async def get_engagement(
    session: AsyncSession, principal: Principal, engagement_id: uuid.UUID, *, for_update: bool = False
) -> Engagement | None:
    stmt = select(Engagement).where(Engagement.id == engagement_id, engagement_readable(principal))
    return await one_or_none(session, stmt, for_update=for_update, of=Engagement)


async def list_engagements(
    session: AsyncSession,
    principal: Principal,
    page: PageParams,
    *,
    company_id: uuid.UUID | None,
    expert_id: uuid.UUID | None,
    status: str | None,
) -> list[Engagement]:
    stmt: Select[Any] = select(Engagement).where(engagement_readable(principal))
    if company_id is not None:
        stmt = stmt.where(Engagement.company_id == company_id)
    if expert_id is not None:
        stmt = stmt.where(Engagement.expert_id == expert_id)
    if status is not None:
        stmt = stmt.where(Engagement.status == status)
    return await page_rows(session, stmt, page, Engagement)


async def list_sessions(
    session: AsyncSession, engagement_id: uuid.UUID, page: PageParams
) -> list[AccompanimentSession]:
    stmt = select(AccompanimentSession).where(AccompanimentSession.engagement_id == engagement_id)
    return await page_rows(session, stmt, page, AccompanimentSession)


# ---------------------------------------------------------------- statistics


async def active_engagements_per_expert(session: AsyncSession) -> dict[uuid.UUID, int]:
    stmt = (
        select(Engagement.expert_id, func.count())
        .where(Engagement.expert_id.is_not(None), Engagement.status.in_(("assigned", "confirmed")))
        .group_by(Engagement.expert_id)
    )
    return {eid: int(n) for eid, n in (await session.execute(stmt)).all() if eid is not None}


async def all_experts(session: AsyncSession) -> list[Expert]:
    return list((await session.execute(select(Expert).order_by(Expert.name, Expert.id))).scalars())


async def hours_per_company(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID, Decimal]]:
    stmt = (
        select(AccompanimentSession.company_id, AccompanimentSession.call_id, func.sum(AccompanimentSession.hours))
        .group_by(AccompanimentSession.company_id, AccompanimentSession.call_id)
        .order_by(AccompanimentSession.company_id, AccompanimentSession.call_id)
    )
    return [(c, k, Decimal(h)) for c, k, h in (await session.execute(stmt)).all()]


async def figures_by_phase(session: AsyncSession) -> list[tuple[str, int, Decimal, Decimal | None]]:
    """Per phase: engagements, hours logged, average rating (null when none is rated)."""
    stmt = (
        select(Engagement.phase, func.count(), func.sum(Engagement.hours_logged), func.avg(Engagement.rating))
        .group_by(Engagement.phase)
        .order_by(Engagement.phase)
    )
    return [
        (p, int(n), Decimal(h), None if r is None else Decimal(r)) for p, n, h, r in (await session.execute(stmt)).all()
    ]


async def figures_by_market(session: AsyncSession) -> list[tuple[str, int, Decimal]]:
    """Per market: engagements and hours logged; an engagement counts under each of its markets."""
    market = func.unnest(Engagement.markets).table_valued("market").render_derived(with_types=False)
    stmt = (
        select(market.c.market, func.count(), func.sum(Engagement.hours_logged))
        .select_from(Engagement)
        .join(market, true())
        .group_by(market.c.market)
        .order_by(market.c.market)
    )
    return [(m, int(n), Decimal(h)) for m, n, h in (await session.execute(stmt)).all()]
