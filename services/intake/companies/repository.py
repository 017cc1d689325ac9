"""Queries on companies and delegations. Only the intake service writes these tables.

Every read goes through a "reachable/visible by this caller" statement, so a row outside the
caller's reach is simply not found (404), never forbidden.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Company, Delegation, Partner
from services.intake.partners.repository import add_unique
from shared.access import company_reachable
from shared.auth import Principal
from shared.pagination import PageParams, keyset, page_rows

__all__ = ["DelegationView", "add_unique"]

LIVE_STATUSES = ("pending", "active")


# ---------------------------------------------------------------- companies


def _reachable_companies(principal: Principal) -> Select[Company]:
    return select(Company).where(company_reachable(principal, Company.id))


async def get_reachable(
    session: AsyncSession, principal: Principal, company_id: uuid.UUID, *, for_update: bool = False
) -> Company | None:
    stmt = _reachable_companies(principal).where(Company.id == company_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_many(session: AsyncSession, ids: list[uuid.UUID]) -> list[Company]:
    """The companies with these ids (a desk service's bulk read: no reachability filter)."""
    return list((await session.execute(select(Company).where(Company.id.in_(ids)).order_by(Company.id))).scalars())


async def get_by_vat(session: AsyncSession, vat_number: str) -> Company | None:
    """Not reach-filtered on purpose: VAT numbers are public (the business register), companies' data is not."""
    return (await session.execute(select(Company).where(Company.vat_number == vat_number))).scalar_one_or_none()


async def list_reachable(
    session: AsyncSession, principal: Principal, page: PageParams, *, vat_number: str | None = None
) -> list[Company]:
    stmt = _reachable_companies(principal)
    if vat_number is not None:
        stmt = stmt.where(Company.vat_number == vat_number)
    return await page_rows(session, stmt, page, Company)


# ---------------------------------------------------------------- delegations


@dataclass(frozen=True, slots=True)
class DelegationView:
    """A delegation with the names a front-end shows next to it."""

    delegation: Delegation
    partner_name: str
    company_name: str
    company_vat_number: str

    @property
    def created_at(self) -> Any:  # for page_of's cursor
        return self.delegation.created_at

    @property
    def id(self) -> uuid.UUID:
        return self.delegation.id


def delegation_visible(principal: Principal) -> ColumnElement[bool]:
    """Readers see all; a partner its own delegations once the company has accepted them (a pending or
    refused one would tell it the company's id and name before the company agreed); a company those on it."""
    if principal.reads_everything:
        return true()
    if principal.kind == "partner" and principal.partner_id:
        return and_(
            Delegation.partner_id == principal.partner_id,
            or_(Delegation.status == "active", Delegation.activated_at.is_not(None)),
        )
    if principal.kind == "company" and principal.company_id:
        return Delegation.company_id == principal.company_id
    return false()


def _views() -> Select[Any]:
    stmt = (
        select(Delegation, Partner.name, Company.name, Company.vat_number)
        .join(Partner, Partner.id == Delegation.partner_id)
        .join(Company, Company.id == Delegation.company_id)
    )
    return cast("Select[Any]", stmt)  # shared.pagination.keyset takes one-parameter Selects


def _view(row: Any) -> DelegationView:
    return DelegationView(row[0], row[1], row[2], row[3])


async def get_visible_delegation(
    session: AsyncSession, principal: Principal, delegation_id: uuid.UUID, *, for_update: bool = False
) -> DelegationView | None:
    stmt = _views().where(Delegation.id == delegation_id, delegation_visible(principal))
    if for_update:
        stmt = stmt.with_for_update(of=Delegation)
    row = (await session.execute(stmt)).first()
    return _view(row) if row is not None else None


async def list_visible_delegations(
    session: AsyncSession, principal: Principal, page: PageParams, *, status: str | None = None
) -> list[DelegationView]:
    stmt = _views().where(delegation_visible(principal))
    if status is not None:
        stmt = stmt.where(Delegation.status == status)
    rows = (await session.execute(keyset(stmt, page, Delegation.created_at, Delegation.id))).all()
    return [_view(r) for r in rows]


async def get_live_delegation(session: AsyncSession, partner_id: uuid.UUID, company_id: uuid.UUID) -> Delegation | None:
    stmt = select(Delegation).where(
        Delegation.partner_id == partner_id, Delegation.company_id == company_id, Delegation.status.in_(LIVE_STATUSES)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_partner_name(session: AsyncSession, partner_id: uuid.UUID) -> str | None:
    return (await session.execute(select(Partner.name).where(Partner.id == partner_id))).scalar_one_or_none()
