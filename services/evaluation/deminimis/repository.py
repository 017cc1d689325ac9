"""Queries on the de minimis register (evaluation.de_minimis_aids, written only by evaluation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import PriorAid


async def insert_aids(session: AsyncSession, rows: list[dict[str, Any]]) -> list[PriorAid]:
    """Insert the entries whose (source, reference) is new; returns those inserted (duplicates skipped,
    including a reference repeated within `rows`)."""
    if not rows:
        return []
    stmt = (insert(PriorAid).values(rows)
            .on_conflict_do_nothing(index_elements=[PriorAid.source, PriorAid.reference])
            .returning(PriorAid))
    return list((await session.execute(stmt)).scalars().all())


async def aids_of(session: AsyncSession, vat_numbers: Iterable[str]) -> list[PriorAid]:
    stmt = (select(PriorAid).where(PriorAid.vat_number.in_(list(vat_numbers)))
            .order_by(PriorAid.granted_on, PriorAid.id))
    return list((await session.execute(stmt)).scalars().all())


def listing(*, vat_number: str | None) -> Select[Any]:
    stmt = select(PriorAid)
    if vat_number is not None:
        stmt = stmt.where(PriorAid.vat_number == vat_number)
    return stmt


async def page(session: AsyncSession, stmt: Select[Any]) -> list[PriorAid]:
    return list((await session.execute(stmt)).scalars().all())
