"""Queries on calls, their versions and counters."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Application, Call, CallVersion


async def get(session: AsyncSession, call_id: uuid.UUID, *, for_update: bool = False) -> Call | None:
    stmt = select(Call).where(Call.id == call_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_by_code(session: AsyncSession, code: str) -> Call | None:
    return (await session.execute(select(Call).where(Call.code == code))).scalar_one_or_none()


async def get_version(session: AsyncSession, call_id: uuid.UUID, version: int) -> CallVersion | None:
    return await session.get(CallVersion, (call_id, version))


async def list_page(session: AsyncSession, stmt_mod: Any) -> list[Call]:
    return list((await session.execute(stmt_mod(select(Call)))).scalars())


async def register_rows(session: AsyncSession, call_id: uuid.UUID, after: int, limit: int) -> list[Application]:
    stmt = (
        select(Application)
        .where(Application.call_id == call_id, Application.protocol_number > after)
        .order_by(Application.protocol_number)
        .limit(limit + 1)
    )
    return list((await session.execute(stmt)).scalars())
