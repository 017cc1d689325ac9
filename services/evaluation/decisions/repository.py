"""Queries on decrees and decisions (schema `evaluation`, written only by evaluation)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, and_, exists, func, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.evaluation.models import Decision, Decree, Evaluation, Funding, ReceivedApplication
from shared.access import company_reachable
from shared.auth import Principal


async def insert_decree(session: AsyncSession, values: dict[str, Any]) -> bool:
    """False when a decree with this number already exists."""
    stmt = insert(Decree).values(**values).on_conflict_do_nothing(index_elements=[Decree.number]).returning(Decree.id)
    return (await session.execute(stmt)).first() is not None


async def get_decree(session: AsyncSession, decree_id: uuid.UUID, *, for_update: bool = False) -> Decree | None:
    stmt = select(Decree).where(Decree.id == decree_id).execution_options(populate_existing=True)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_decisions(session: AsyncSession, decree_id: uuid.UUID) -> int:
    return int(
        (
            await session.execute(select(func.count()).select_from(Decision).where(Decision.decree_id == decree_id))
        ).scalar_one()
    )


async def get_decision(session: AsyncSession, decision_id: uuid.UUID, *, for_update: bool = False) -> Any:
    """The decision with its decree and received application."""
    stmt = (
        select(Decision, Decree, ReceivedApplication)
        .join(Decree, Decree.id == Decision.decree_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Decision.application_id)
        .where(Decision.id == decision_id)
        .execution_options(populate_existing=True)
    )
    if for_update:
        stmt = stmt.with_for_update(of=Decision)
    return (await session.execute(stmt)).first()


async def decisions_of_decree(
    session: AsyncSession, decree_id: uuid.UUID, *, after: tuple[Any, uuid.UUID] | None, limit: int
) -> list[Any]:
    stmt = (
        select(Decision, Decree, ReceivedApplication)
        .join(Decree, Decree.id == Decision.decree_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Decision.application_id)
        .where(Decision.decree_id == decree_id)
    )
    if after is not None:
        stmt = stmt.where(tuple_(Decision.created_at, Decision.id) > tuple_(*after))
    return list((await session.execute(stmt.order_by(Decision.created_at, Decision.id).limit(limit + 1))).all())


async def all_decisions_of_decree(session: AsyncSession, decree_id: uuid.UUID) -> list[Any]:
    stmt = (
        select(Decision, Decree, ReceivedApplication)
        .join(Decree, Decree.id == Decision.decree_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Decision.application_id)
        .where(Decision.decree_id == decree_id)
        .order_by(ReceivedApplication.protocol_number)
        .with_for_update(of=Decision)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).all())


async def allocation_rows(
    session: AsyncSession, *, call_id: uuid.UUID, application_ids: Sequence[uuid.UUID] | None
) -> list[Any]:
    """Received applications (of the call, or the given ones) with their funding and evaluation, if any."""
    stmt = (
        select(ReceivedApplication, Funding, Evaluation)
        .outerjoin(Funding, Funding.application_id == ReceivedApplication.application_id)
        .outerjoin(Evaluation, Evaluation.application_id == ReceivedApplication.application_id)
    )
    if application_ids is not None:
        stmt = stmt.where(ReceivedApplication.application_id.in_(list(application_ids)))
    else:
        stmt = stmt.where(ReceivedApplication.call_id == call_id, Funding.application_id.is_not(None))
    return list((await session.execute(stmt.order_by(ReceivedApplication.protocol_number))).all())


async def latest_decisions(session: AsyncSession, application_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decision]:
    """Each application's most recent decision (any decree)."""
    if not application_ids:
        return {}
    stmt = (
        select(Decision)
        .where(Decision.application_id.in_(list(application_ids)))
        .order_by(Decision.application_id, Decision.created_at.desc(), Decision.id.desc())
        .ext(distinct_on(Decision.application_id))
    )
    return {d.application_id: d for d in (await session.execute(stmt)).scalars()}


async def decided_in(session: AsyncSession, decree_id: uuid.UUID) -> set[uuid.UUID]:
    stmt = select(Decision.application_id).where(Decision.decree_id == decree_id)
    return set((await session.execute(stmt)).scalars())


async def cup_taken(session: AsyncSession, cup: str, decision_id: uuid.UUID) -> bool:
    stmt = select(Decision.id).where(Decision.cup == cup, Decision.id != decision_id)
    return (await session.execute(stmt)).first() is not None


async def evaluation(session: AsyncSession, application_id: uuid.UUID) -> Evaluation | None:
    stmt = select(Evaluation).where(Evaluation.application_id == application_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def funding(session: AsyncSession, application_id: uuid.UUID) -> Funding | None:
    stmt = select(Funding).where(Funding.application_id == application_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


# ---------------------------------------------------------------- lists and queues (paged on (created_at, id))


def decrees(*, call_id: uuid.UUID | None, status: str | None) -> Select[Any]:
    """Decrees with the count of their decisions."""
    count = select(func.count()).where(Decision.decree_id == Decree.id).correlate(Decree).scalar_subquery()
    stmt = select(Decree, count.label("decisions"), Decree.created_at.label("created_at"), Decree.id.label("id"))
    if call_id is not None:
        stmt = stmt.where(Decree.call_id == call_id)
    if status is not None:
        stmt = stmt.where(Decree.status == status)
    return cast("Select[Any]", stmt)


def decisions(
    principal: Principal,
    *,
    call_id: uuid.UUID | None = None,
    decree_id: uuid.UUID | None = None,
    application_id: uuid.UUID | None = None,
    status: str | None = None,
    outcome: str | None = None,
) -> Select[Any]:
    """Decisions within the principal's reach (shared.access, through the application's company)."""
    stmt = (
        select(Decision, Decree, Decision.created_at.label("created_at"), Decision.id.label("id"))
        .join(Decree, Decree.id == Decision.decree_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Decision.application_id)
        .where(company_reachable(principal, ReceivedApplication.company_id))
    )
    if call_id is not None:
        stmt = stmt.where(Decree.call_id == call_id)
    if decree_id is not None:
        stmt = stmt.where(Decision.decree_id == decree_id)
    if application_id is not None:
        stmt = stmt.where(Decision.application_id == application_id)
    if status is not None:
        stmt = stmt.where(Decision.status == status)
    if outcome is not None:
        stmt = stmt.where(Decision.outcome == outcome)
    return cast("Select[Any]", stmt)


def awaiting_acceptance(principal: Principal, *, call_id: uuid.UUID | None) -> Select[Any]:
    """Issued funding decisions the company has neither accepted nor renounced, and that no later decision on
    the same application supersedes."""
    later = aliased(Decision)
    superseded = exists(
        select(later.id).where(
            later.application_id == Decision.application_id,
            tuple_(later.created_at, later.id) > tuple_(Decision.created_at, Decision.id),
        )
    )
    return decisions(principal, call_id=call_id, status="issued").where(
        and_(Decision.outcome.in_(("funded", "partially_funded")), ~superseded)
    )


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Any]:
    return list((await session.execute(stmt)).all())
