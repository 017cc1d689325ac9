"""Queries of merit evaluation (schema `evaluation`, written only by the evaluation service)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import ConflictDeclaration, Evaluation, ReceivedApplication, ReviewAssignment
from shared.models import ApiClient

OPEN_STATUSES = ("assigned", "declared")
ACTIVE_STATUSES = ("assigned", "declared", "submitted")


async def get_application(session: AsyncSession, application_id: uuid.UUID) -> ReceivedApplication | None:
    return await session.get(ReceivedApplication, application_id)


async def get_evaluation(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> Evaluation | None:
    stmt = select(Evaluation).where(Evaluation.application_id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def officer_exists(session: AsyncSession, client_id: str) -> bool:
    stmt = select(ApiClient.id).where(
        ApiClient.client_id == client_id, ApiClient.kind == "officer", ApiClient.active.is_(True)
    )
    return (await session.execute(stmt)).first() is not None


# ---------------------------------------------------------------- conflicts


async def conflict_with(session: AsyncSession, reviewer: str, company_id: uuid.UUID) -> ConflictDeclaration | None:
    stmt = (
        select(ConflictDeclaration)
        .where(
            ConflictDeclaration.reviewer == reviewer,
            ConflictDeclaration.company_id == company_id,
            ConflictDeclaration.conflict.is_(True),
        )
        .order_by(ConflictDeclaration.declared_at)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add(session: AsyncSession, row: Any) -> None:
    session.add(row)
    await session.flush()


def conflicts_listing(reviewer: str) -> Select[Any]:
    stmt = select(
        ConflictDeclaration, ConflictDeclaration.declared_at.label("created_at"), ConflictDeclaration.id.label("id")
    ).where(ConflictDeclaration.reviewer == reviewer)
    return cast("Select[Any]", stmt)  # shared.pagination.keyset takes one-parameter Selects


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Row[Any]]:
    return list((await session.execute(stmt)).all())


# ---------------------------------------------------------------- assignments


async def get_assignment(
    session: AsyncSession, assignment_id: uuid.UUID, *, for_update: bool = False
) -> ReviewAssignment | None:
    stmt = select(ReviewAssignment).where(ReviewAssignment.id == assignment_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def assignments_of(session: AsyncSession, application_id: uuid.UUID) -> list[ReviewAssignment]:
    """Every assignment of the application, in the order reviews were submitted (then assigned)."""
    stmt = (
        select(ReviewAssignment)
        .where(ReviewAssignment.application_id == application_id)
        .order_by(ReviewAssignment.scored_at.asc().nulls_last(), ReviewAssignment.created_at, ReviewAssignment.id)
    )
    return list((await session.execute(stmt)).scalars())


async def open_assignments_on_company(
    session: AsyncSession, reviewer: str, company_id: uuid.UUID
) -> list[ReviewAssignment]:
    stmt = (
        select(ReviewAssignment)
        .join(ReceivedApplication, ReceivedApplication.application_id == ReviewAssignment.application_id)
        .where(
            ReviewAssignment.reviewer == reviewer,
            ReceivedApplication.company_id == company_id,
            ReviewAssignment.status.in_(OPEN_STATUSES),
        )
        .order_by(ReviewAssignment.created_at, ReviewAssignment.id)
        .with_for_update(of=ReviewAssignment)
    )
    return list((await session.execute(stmt)).scalars())


def assignments_listing(reviewer: str, *, status: str | None) -> Select[Any]:
    stmt = (
        select(
            ReviewAssignment,
            ReceivedApplication.call_id,
            ReceivedApplication.protocol_number,
            ReviewAssignment.created_at.label("created_at"),
            ReviewAssignment.id.label("id"),
        )
        .join(ReceivedApplication, ReceivedApplication.application_id == ReviewAssignment.application_id)
        .where(ReviewAssignment.reviewer == reviewer)
    )
    if status is not None:
        stmt = stmt.where(ReviewAssignment.status == status)
    return cast("Select[Any]", stmt)


async def now(session: AsyncSession) -> Any:
    """The database clock's instant (not the transaction's start): the order of submitted reviews, which decides
    which are the first two of a consensus, must follow the real order even within one transaction."""
    return (await session.execute(select(func.clock_timestamp()))).scalar_one()
