"""SQL on applications, their expense lines and the call's protocol counter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.access import company_reachable
from services.intake.models import Application, ExpenseLine
from shared.auth import Principal
from shared.domain.receipts import GENESIS


def readable(principal: Principal) -> Select[Application]:
    """Applications the principal may see; anything else is a 404."""
    return select(Application).where(company_reachable(principal, Application.company_id))


async def get_readable(session: AsyncSession, principal: Principal, application_id: uuid.UUID, *,
                       for_update: bool = False) -> Application | None:
    stmt = readable(principal).where(Application.id == application_id)
    if for_update:
        stmt = stmt.with_for_update(of=Application)
    return (await session.execute(stmt)).scalar_one_or_none()


async def lines_of(session: AsyncSession, application_id: uuid.UUID) -> list[ExpenseLine]:
    stmt = select(ExpenseLine).where(ExpenseLine.application_id == application_id).order_by(ExpenseLine.position)
    return list((await session.execute(stmt)).scalars())


async def replace_lines(session: AsyncSession, application_id: uuid.UUID, lines: list[dict[str, Any]]) -> None:
    await session.execute(delete(ExpenseLine).where(ExpenseLine.application_id == application_id))
    for i, line in enumerate(lines):
        session.add(ExpenseLine(id=uuid.uuid4(), application_id=application_id, position=i, **line))
    await session.flush()


async def has_live_submission(session: AsyncSession, call_id: uuid.UUID, company_id: uuid.UUID) -> bool:
    stmt = select(Application.id).where(Application.call_id == call_id, Application.company_id == company_id,
                                        Application.status == "submitted").limit(1)
    return (await session.execute(stmt)).first() is not None


_NEXT_PROTOCOL = text(
    "UPDATE intake.call_counters SET last_protocol = last_protocol + 1 WHERE call_id = :c "
    "RETURNING last_protocol, last_chain_hash, clock_timestamp() AS now"
)
_SET_CHAIN_HEAD = text("UPDATE intake.call_counters SET last_chain_hash = :h WHERE call_id = :c")


async def take_protocol_number(session: AsyncSession, call_id: uuid.UUID) -> tuple[int, str, datetime]:
    """Next protocol number of the call, with the chain head and the server instant.

    The counter row stays locked until commit: numbers are gap-free (a rolled-back submit
    gives its number back) and follow the order in which submits reach this statement.
    Everything else the submit does happens before, so the lock covers only the last steps.
    """
    row = (await session.execute(_NEXT_PROTOCOL, {"c": call_id})).one()
    return int(row.last_protocol), str(row.last_chain_hash), row.now


async def set_chain_head(session: AsyncSession, call_id: uuid.UUID, chain_hash: str) -> None:
    await session.execute(_SET_CHAIN_HEAD, {"c": call_id, "h": chain_hash})


async def chain_hash_before(session: AsyncSession, app: Application) -> str:
    """The register's link before this application's receipt (the genesis hash for protocol 1)."""
    if not app.protocol_number or app.protocol_number == 1:
        return GENESIS
    stmt = select(Application.chain_hash).where(Application.call_id == app.call_id,
                                                Application.protocol_number == app.protocol_number - 1)
    return (await session.execute(stmt)).scalar_one_or_none() or GENESIS
