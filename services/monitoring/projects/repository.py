"""Queries on projects (schema `monitoring`, written only by the monitoring service)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Project
from shared.auth import Principal


def reachable(principal: Principal) -> ColumnElement[bool]:
    """The projects the caller may see: officers, auditors and services all; a partner those of its
    applications; a company its own. Anything else answers 404."""
    if principal.reads_everything:
        return true()
    if principal.kind == "partner" and principal.partner_id is not None:
        return Project.partner_id == principal.partner_id
    if principal.kind == "company" and principal.company_id is not None:
        return Project.company_id == principal.company_id
    return false()


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
