"""Queries on partners. Only the intake service writes `intake.partners`."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Partner
from shared.auth import Principal
from shared.pagination import PageParams, keyset

UNIQUE_VIOLATION = "23505"


async def add_unique(session: AsyncSession, row: object) -> bool:
    """Insert `row` in a savepoint; False if a unique constraint refused it (a concurrent twin won)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as e:
        if getattr(e.orig, "pgcode", None) == UNIQUE_VIOLATION or getattr(e.orig, "sqlstate", None) == UNIQUE_VIOLATION:
            return False
        raise
    return True


def readable(principal: Principal) -> ColumnElement[bool]:
    """Officers, auditors and services see every partner; a partner sees itself."""
    if principal.reads_everything:
        return true()
    if principal.kind == "partner" and principal.partner_id:
        return Partner.id == principal.partner_id
    return false()


def _readable_stmt(principal: Principal) -> Select[Partner]:
    return select(Partner).where(readable(principal))


async def get_readable(session: AsyncSession, principal: Principal, partner_id: uuid.UUID) -> Partner | None:
    stmt = _readable_stmt(principal).where(Partner.id == partner_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_by_fiscal_code(session: AsyncSession, fiscal_code: str) -> Partner | None:
    return (await session.execute(select(Partner).where(Partner.fiscal_code == fiscal_code))).scalar_one_or_none()


async def list_page(session: AsyncSession, principal: Principal, page: PageParams) -> list[Partner]:
    stmt = keyset(_readable_stmt(principal), page, Partner.created_at, Partner.id)
    return list((await session.execute(stmt)).scalars())
