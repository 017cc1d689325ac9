"""Queries on the de minimis register (evaluation.de_minimis_aids, written only by evaluation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import Decision, PriorAid


async def insert_aids(session: AsyncSession, rows: list[dict[str, Any]]) -> list[PriorAid]:
    """Insert the entries whose (source, reference) is new; returns those inserted (duplicates skipped,
    including a reference repeated within `rows`)."""
    if not rows:
        return []
    stmt = (
        insert(PriorAid)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[PriorAid.source, PriorAid.reference])
        .returning(PriorAid)
    )
    return list((await session.execute(stmt)).scalars().all())


async def aids_of(session: AsyncSession, vat_numbers: Iterable[str]) -> list[PriorAid]:
    stmt = select(PriorAid).where(PriorAid.vat_number.in_(list(vat_numbers))).order_by(PriorAid.granted_on, PriorAid.id)
    return list((await session.execute(stmt)).scalars().all())


def listing(*, vat_number: str | None) -> Select[Any]:
    stmt = select(PriorAid)
    if vat_number is not None:
        stmt = stmt.where(PriorAid.vat_number == vat_number)
    return stmt


async def page(session: AsyncSession, stmt: Select[Any]) -> list[PriorAid]:
    return list((await session.execute(stmt)).scalars().all())


async def lock_undertaking(session: AsyncSession, vat_numbers: Iterable[str]) -> None:
    """Serialise the register's writers per VAT number until the transaction ends, like the budget's ledger lock:
    two concessions to one single undertaking (or to two undertakings sharing a linked enterprise) never read the
    same headroom. Taken in sorted order, so two writers never wait on each other crosswise."""
    for vat in sorted(set(vat_numbers)):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"de_minimis:{vat}"})


async def desk_aid(session: AsyncSession, reference: str) -> PriorAid | None:
    stmt = select(PriorAid).where(PriorAid.source == "desk", PriorAid.reference == reference).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def accepted_cor(session: AsyncSession, application_id: Any) -> str | None:
    """The COR of the application's accepted decision: the reference of the desk's concession in the register."""
    stmt = select(Decision.cor).where(Decision.application_id == application_id, Decision.status == "accepted")
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()
