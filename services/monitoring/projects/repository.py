"""Queries on projects (schema `monitoring`, written only by the monitoring service)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import IbanChange, Payment, Project
from shared.access import choose_notified, company_reachable
from shared.auth import Principal


def reachable(principal: Principal) -> ColumnElement[bool]:
    """The projects the caller may see: those of the companies it reaches (shared.access: officers, auditors
    and services all; a company its own; a partner while it acts for the company, whoever recorded the
    project). Anything else answers 404."""
    return company_reachable(principal, Project.company_id)


async def get(
    session: AsyncSession, project_id: uuid.UUID, principal: Principal, *, for_update: bool = False
) -> Project | None:
    stmt = select(Project).where(Project.id == project_id, reachable(principal))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_application(session: AsyncSession, application_id: uuid.UUID) -> Project | None:
    stmt = select(Project).where(Project.application_id == application_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_project(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert unless a project for the decision or application (or with the CUP) exists: None then."""
    stmt = insert(Project).values(**values).on_conflict_do_nothing().returning(Project.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def load(session: AsyncSession, project_id: uuid.UUID) -> Project:
    return (await session.execute(select(Project).where(Project.id == project_id))).scalar_one()


def listing(
    principal: Principal, *, call_id: uuid.UUID | None, company_id: uuid.UUID | None, status: str | None
) -> Select[Any]:
    stmt = select(Project).where(reachable(principal))
    if call_id is not None:
        stmt = stmt.where(Project.call_id == call_id)
    if company_id is not None:
        stmt = stmt.where(Project.company_id == company_id)
    if status is not None:
        stmt = stmt.where(Project.status == status)
    return cast("Select[Any]", stmt)


async def projects(session: AsyncSession, stmt: Select[Any]) -> list[Project]:
    return list((await session.execute(stmt)).scalars().all())


# ---------------------------------------------------------------- the account (IBAN) and its changes

OPEN_OUTGOING = ("advance", "balance")


async def has_open_order(session: AsyncSession, project_id: uuid.UUID) -> bool:
    """A payment to the company (advance, balance) is ordered and not yet paid."""
    stmt = (
        select(Payment.id)
        .where(Payment.project_id == project_id, Payment.status == "ordered", Payment.kind.in_(OPEN_OUTGOING))
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def open_orders_without_iban(session: AsyncSession, project_id: uuid.UUID) -> list[Payment]:
    """Open orders placed before any account was known (the advance ordered when the project started)."""
    stmt = (
        select(Payment)
        .where(
            Payment.project_id == project_id,
            Payment.status == "ordered",
            Payment.kind.in_(OPEN_OUTGOING),
            Payment.iban.is_(None),
        )
        .order_by(Payment.ordered_at, Payment.id)
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars().all())


async def insert_iban_change(session: AsyncSession, values: dict[str, Any]) -> IbanChange | None:
    """Insert unless the project already has a pending change (the partial unique index decides): None then."""
    stmt = (
        insert(IbanChange)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[IbanChange.project_id], index_where=text("status = 'pending'"))
        .returning(IbanChange.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return None
    return (await session.execute(select(IbanChange).where(IbanChange.id == new_id))).scalar_one()


async def pending_iban_change(session: AsyncSession, project_id: uuid.UUID) -> IbanChange | None:
    stmt = (
        select(IbanChange).where(IbanChange.project_id == project_id, IbanChange.status == "pending").with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def iban_change(
    session: AsyncSession, project_id: uuid.UUID, change_id: uuid.UUID, *, for_update: bool = False
) -> IbanChange | None:
    """A change of the given project (the caller has already reached the project)."""
    stmt = select(IbanChange).where(IbanChange.id == change_id, IbanChange.project_id == project_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def iban_changes(project_id: uuid.UUID) -> Select[Any]:
    """The project's changes, with the (created_at, id) labels the cursor pagination pages on."""
    stmt = select(IbanChange, IbanChange.requested_at.label("created_at"), IbanChange.id.label("id")).where(
        IbanChange.project_id == project_id
    )
    return cast("Select[Any]", stmt)


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Any]:
    return list((await session.execute(stmt)).all())


async def move_partner(
    session: AsyncSession, *, company_id: uuid.UUID, delegates: list[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]]:
    """Give the company's projects whose recorded partner no longer acts for it the company's most recent
    delegate (shared.access.choose_notified); returns (project, before, after) for each project changed."""
    stmt = select(Project).where(Project.company_id == company_id).order_by(Project.id).with_for_update()
    moved = []
    for project in (await session.execute(stmt)).scalars().all():
        after = choose_notified(project.partner_id, delegates)
        if after != project.partner_id:
            moved.append((project.id, project.partner_id, after))
            project.partner_id = after
            project.version += 1
    await session.flush()
    return moved
