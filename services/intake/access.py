"""Who may see which company: the rule every intake repository builds its "readable" queries on.

Officers, auditors and services see every company; a company sees itself; a partner sees the
companies it holds an active delegation for. Anything else answers 404, never 403.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, exists, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.intake.models import Delegation
from shared.auth import Principal


def company_reachable(principal: Principal, company_col: InstrumentedAttribute[uuid.UUID] | ColumnElement[uuid.UUID]
                      ) -> ColumnElement[bool]:
    """A WHERE clause: the row's company is within the principal's reach."""
    if principal.reads_everything:
        return true()
    if principal.kind == "company":
        return company_col == principal.company_id if principal.company_id else false()
    if principal.kind == "partner" and principal.partner_id:
        return exists(
            select(Delegation.id).where(Delegation.company_id == company_col,
                                        Delegation.partner_id == principal.partner_id,
                                        Delegation.status == "active")
        )
    return false()


async def can_reach_company(session: AsyncSession, principal: Principal, company_id: uuid.UUID) -> bool:
    if principal.reads_everything:
        return True
    if principal.kind == "company":
        return principal.company_id == company_id
    if principal.kind == "partner" and principal.partner_id:
        stmt = select(Delegation.id).where(Delegation.company_id == company_id,
                                           Delegation.partner_id == principal.partner_id,
                                           Delegation.status == "active").limit(1)
        return (await session.execute(stmt)).first() is not None
    return False


def acting_partner(principal: Principal) -> uuid.UUID | None:
    return principal.partner_id if principal.kind == "partner" else None
