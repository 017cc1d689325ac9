"""Queries on payments (schema `monitoring`, written only by the monitoring service)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Row, Select, String, exists, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Payment, Project
from services.monitoring.projects.repository import reachable
from shared.auth import Principal
from shared.models import MoneyConfirmation

LIVE = ("ordered", "paid")


async def insert_live(session: AsyncSession, values: dict[str, Any]) -> Payment | None:
    """Order a payment unless a live one (ordered or paid) of its kind exists for the project: the partial unique
    index decides, whatever the concurrency. None when one exists."""
    stmt = (
        insert(Payment)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[Payment.project_id, Payment.kind], index_where=text("status IN ('ordered', 'paid')")
        )
        .returning(Payment.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return None
    return (await session.execute(select(Payment).where(Payment.id == new_id))).scalar_one()


async def live(session: AsyncSession, project_id: uuid.UUID, kind: str) -> Payment | None:
    stmt = select(Payment).where(Payment.project_id == project_id, Payment.kind == kind, Payment.status.in_(LIVE))
    return (await session.execute(stmt)).scalar_one_or_none()


async def of_project(session: AsyncSession, project_id: uuid.UUID, *, for_update: bool = False) -> list[Payment]:
    stmt = select(Payment).where(Payment.project_id == project_id).order_by(Payment.ordered_at, Payment.id)
    if for_update:
        stmt = stmt.with_for_update()
    return list((await session.execute(stmt)).scalars().all())


async def paid_total(session: AsyncSession, project_id: uuid.UUID, kinds: tuple[str, ...]) -> Decimal:
    stmt = select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.project_id == project_id, Payment.kind.in_(kinds), Payment.status == "paid"
    )
    return Decimal((await session.execute(stmt)).scalar_one()).quantize(Decimal("0.01"))


async def paid_rows(session: AsyncSession, project_id: uuid.UUID, kinds: tuple[str, ...]) -> list[Payment]:
    stmt = (
        select(Payment)
        .where(Payment.project_id == project_id, Payment.kind.in_(kinds), Payment.status == "paid")
        .order_by(Payment.paid_at, Payment.id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def get(
    session: AsyncSession, payment_id: uuid.UUID, principal: Principal, *, for_update: bool = False
) -> Row[Any] | None:
    stmt = (
        select(Payment, Project)
        .join(Project, Project.id == Payment.project_id)
        .where(Payment.id == payment_id, reachable(principal))
    )
    if for_update:
        stmt = stmt.with_for_update(of=Payment)
    return cast("Row[Any] | None", (await session.execute(stmt)).first())


def listing(principal: Principal, *, status: str | None, project_id: uuid.UUID | None, kind: str | None) -> Select[Any]:
    """Payments within reach, with the (created_at, id) labels the cursor pagination pages on."""
    stmt = (
        select(Payment, Payment.ordered_at.label("created_at"), Payment.id.label("id"))
        .join(Project, Project.id == Payment.project_id)
        .where(reachable(principal))
    )
    if status is not None:
        stmt = stmt.where(Payment.status == status)
    if project_id is not None:
        stmt = stmt.where(Payment.project_id == project_id)
    if kind is not None:
        stmt = stmt.where(Payment.kind == kind)
    return cast("Select[Any]", stmt)


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Row[Any]]:
    return list((await session.execute(stmt)).all())


async def for_export(session: AsyncSession, *, status: str, call_id: uuid.UUID | None) -> list[Row[Any]]:
    """Outgoing orders (advance, balance) with their project, oldest first."""
    stmt = (
        select(Payment, Project)
        .join(Project, Project.id == Payment.project_id)
        .where(Payment.status == status, Payment.kind.in_(("advance", "balance")))
    )
    if call_id is not None:
        stmt = stmt.where(Project.call_id == call_id)
    return cast("list[Row[Any]]", list((await session.execute(stmt.order_by(Payment.ordered_at, Payment.id))).all()))


def to_order(principal: Principal, *, call_id: uuid.UUID | None, order_action: str) -> Select[Any]:
    """Open outgoing orders (advance, balance), the oldest first, each with whether it still awaits a second
    officer's confirmation (an open four-eyes proposal) or is ready for the treasury file."""
    awaiting = exists(
        select(MoneyConfirmation.id).where(
            MoneyConfirmation.action == order_action,
            MoneyConfirmation.resource_id == Payment.id.cast(String),
            MoneyConfirmation.status == "proposed",
        )
    )
    stmt = (
        select(
            Payment,
            awaiting.label("awaiting_confirmation"),
            Payment.ordered_at.label("created_at"),
            Payment.id.label("id"),
        )
        .join(Project, Project.id == Payment.project_id)
        .where(reachable(principal), Payment.status == "ordered", Payment.kind.in_(("advance", "balance")))
    )
    if call_id is not None:
        stmt = stmt.where(Project.call_id == call_id)
    return cast("Select[Any]", stmt)
