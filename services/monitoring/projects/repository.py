"""Queries on projects (schema `monitoring`, written only by the monitoring service)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Project
from shared.access import choose_notified, company_reachable
from shared.auth import Principal


def reachable(principal: Principal) -> ColumnElement[bool]:
    """The projects the caller may see: those of the companies it reaches (shared.access: officers, auditors
    and services all; a company its own; a partner while it acts for the company, whoever recorded the
    project). Anything else answers 404."""
    return company_reachable(principal, Project.company_id)


async def get(session: AsyncSession, project_id: uuid.UUID, principal: Principal, *,
              for_update: bool = False) -> Project | None:
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


def listing(principal: Principal, *, call_id: uuid.UUID | None, company_id: uuid.UUID | None,
            status: str | None) -> Select[Any]:
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


async def move_partner(session: AsyncSession, *, company_id: uuid.UUID, delegates: list[uuid.UUID]
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
