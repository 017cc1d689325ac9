"""Queries on the budget, its ledger and the fundings (schema `evaluation`, written only by evaluation).

The budget's `committed` only moves through `commit` and `release`: one conditional UPDATE each, so
the database decides whether an amount fits (never a read followed by a write); the CHECK constraint
`committed >= 0 AND committed <= total` is the last line of defence.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import (
    Budget,
    BudgetEntry,
    Evaluation,
    Funding,
    RankingVersion,
    ReceivedApplication,
)
from shared.access import company_reachable
from shared.auth import Principal

QUEUE_STATUSES = ("partially_funded", "waiting")
COMMITTING_STATUSES = ("funded", "partially_funded")
_CHUNK = 1000  # rows per multi-row INSERT: well under the 32,767 bind parameters of one statement


async def get_budget(session: AsyncSession, call_id: uuid.UUID, *, for_update: bool = False) -> Budget | None:
    stmt = select(Budget).where(Budget.call_id == call_id).execution_options(populate_existing=True)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_budget(
    session: AsyncSession, call_id: uuid.UUID, total: Decimal, call_version: int | None = None
) -> None:
    """Create the budget row unless it exists (two first uses at once: one INSERT wins, the other waits)."""
    await session.execute(
        insert(Budget)
        .values(
            call_id=call_id,
            total=total,
            committed=Decimal("0.00"),
            freed=Decimal("0.00"),
            version=1,
            call_version=call_version,
        )
        .on_conflict_do_nothing(index_elements=[Budget.call_id])
    )


async def set_total(session: AsyncSession, call_id: uuid.UUID, total: Decimal, call_version: int) -> bool:
    """The call's amended total, from `call_version`, unless it would fall below what is committed (False)."""
    stmt = (
        update(Budget)
        .where(Budget.call_id == call_id, Budget.committed <= total)
        .values(total=total, call_version=call_version, version=Budget.version + 1, updated_at=func.now())
        .returning(Budget.call_id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).first() is not None


async def commit(session: AsyncSession, call_id: uuid.UUID, amount: Decimal) -> bool:
    """Add `amount` to committed if it still fits in the total; False (nothing changed) if it does not."""
    stmt = (
        update(Budget)
        .where(Budget.call_id == call_id, Budget.committed + amount <= Budget.total)
        .values(committed=Budget.committed + amount, version=Budget.version + 1, updated_at=func.now())
        .returning(Budget.call_id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).first() is not None


async def release(session: AsyncSession, call_id: uuid.UUID, amount: Decimal) -> bool:
    """Take `amount` off committed (and count it as freed) unless committed would go below zero."""
    stmt = (
        update(Budget)
        .where(Budget.call_id == call_id, Budget.committed - amount >= 0)
        .values(
            committed=Budget.committed - amount,
            freed=Budget.freed + amount,
            version=Budget.version + 1,
            updated_at=func.now(),
        )
        .returning(Budget.call_id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).first() is not None


async def add_entries(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(entries), _CHUNK):
        await session.execute(insert(BudgetEntry).values(list(entries[start : start + _CHUNK])))


async def entries_page(session: AsyncSession, call_id: uuid.UUID, *, after: int, limit: int) -> list[BudgetEntry]:
    stmt = (
        select(BudgetEntry)
        .where(BudgetEntry.call_id == call_id, BudgetEntry.id > after)
        .order_by(BudgetEntry.id)
        .limit(limit + 1)
    )
    return list((await session.execute(stmt)).scalars())


async def evaluation_of(session: AsyncSession, application_id: uuid.UUID) -> Any:
    stmt = (
        select(Evaluation, ReceivedApplication)
        .join(ReceivedApplication, ReceivedApplication.application_id == Evaluation.application_id)
        .where(Evaluation.application_id == application_id)
    )
    return (await session.execute(stmt)).first()


async def received(session: AsyncSession, application_id: uuid.UUID) -> ReceivedApplication | None:
    stmt = select(ReceivedApplication).where(ReceivedApplication.application_id == application_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_funding(session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False) -> Funding | None:
    stmt = select(Funding).where(Funding.application_id == application_id).execution_options(populate_existing=True)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_fundings(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert funding rows; an application that already has one is skipped (its primary key): returns the ids
    actually inserted, so nobody is allocated twice even if two allocations race past the budget lock."""
    inserted: list[uuid.UUID] = []
    for start in range(0, len(rows), _CHUNK):
        stmt = (
            insert(Funding)
            .values(list(rows[start : start + _CHUNK]))
            .on_conflict_do_nothing(index_elements=[Funding.application_id])
            .returning(Funding.application_id)
        )
        inserted.extend((await session.execute(stmt)).scalars())
    return inserted


async def queue(session: AsyncSession, call_id: uuid.UUID) -> list[Any]:
    """The waiting list (and the partially funded, to top up), locked, with each one's evaluation and
    received application (for the grant/loan split and the event's recipients)."""
    stmt = (
        select(Funding, Evaluation, ReceivedApplication)
        .join(Evaluation, Evaluation.application_id == Funding.application_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Funding.application_id)
        .where(Funding.call_id == call_id, Funding.status.in_(QUEUE_STATUSES))
        .order_by(Funding.protocol_number)
        .with_for_update(of=Funding)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).all())


async def fundings_of_call(session: AsyncSession, call_id: uuid.UUID) -> list[Any]:
    stmt = (
        select(Funding, ReceivedApplication.company_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Funding.application_id)
        .where(Funding.call_id == call_id)
    )
    return list((await session.execute(stmt)).all())


async def status_counts(session: AsyncSession, call_id: uuid.UUID) -> dict[str, int]:
    stmt = select(Funding.status, func.count()).where(Funding.call_id == call_id).group_by(Funding.status)
    return {status: int(n) for status, n in (await session.execute(stmt)).all()}


async def not_allocated(session: AsyncSession, call_id: uuid.UUID) -> list[Any]:
    """Every received (not withdrawn) application of the call with no funding row yet, with its evaluation if it
    has one (None before admissibility has run), in protocol order: what an allocation must wait for or take."""
    stmt = (
        select(ReceivedApplication, Evaluation)
        .outerjoin(Evaluation, Evaluation.application_id == ReceivedApplication.application_id)
        .where(
            ReceivedApplication.call_id == call_id,
            ReceivedApplication.status == "received",
            ~select(Funding.application_id)
            .where(Funding.application_id == ReceivedApplication.application_id)
            .exists(),
        )
        .order_by(ReceivedApplication.protocol_number)
    )
    return list((await session.execute(stmt)).all())


async def last_ranking_number(session: AsyncSession, call_id: uuid.UUID) -> int:
    stmt = select(func.coalesce(func.max(RankingVersion.number), 0)).where(RankingVersion.call_id == call_id)
    return int((await session.execute(stmt)).scalar_one())


async def add_ranking(session: AsyncSession, values: dict[str, Any]) -> RankingVersion:
    row = RankingVersion(**values)
    session.add(row)
    await session.flush()
    return row


async def rankings_of_call(session: AsyncSession, call_id: uuid.UUID) -> list[RankingVersion]:
    stmt = select(RankingVersion).where(RankingVersion.call_id == call_id).order_by(RankingVersion.number)
    return list((await session.execute(stmt)).scalars())


async def ranking_version(session: AsyncSession, call_id: uuid.UUID, number: int) -> RankingVersion | None:
    stmt = select(RankingVersion).where(RankingVersion.call_id == call_id, RankingVersion.number == number)
    return (await session.execute(stmt)).scalar_one_or_none()


def fundings(principal: Principal, *, call_id: uuid.UUID | None = None, status: str | None = None) -> Select[Any]:
    """Allocations within the principal's reach, paged on the application's reception."""
    stmt = (
        select(
            Funding,
            ReceivedApplication.received_at.label("created_at"),
            Funding.application_id.label("id"),
        )
        .join(ReceivedApplication, ReceivedApplication.application_id == Funding.application_id)
        .where(company_reachable(principal, ReceivedApplication.company_id))
    )
    if call_id is not None:
        stmt = stmt.where(Funding.call_id == call_id)
    if status is not None:
        stmt = stmt.where(Funding.status == status)
    return cast("Select[Any]", stmt)


async def reachable_funding(session: AsyncSession, principal: Principal, application_id: uuid.UUID) -> Funding | None:
    """The application's funding if the principal reaches its company (shared.access)."""
    stmt = (
        select(Funding)
        .join(ReceivedApplication, ReceivedApplication.application_id == Funding.application_id)
        .where(Funding.application_id == application_id, company_reachable(principal, ReceivedApplication.company_id))
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def page_rows(session: AsyncSession, stmt: Select[Any]) -> list[Any]:
    return list((await session.execute(stmt)).all())
