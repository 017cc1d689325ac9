"""Queries on API clients (`desk.api_clients`, written only through `shared.auth` and this domain)."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Company, Partner
from shared.auth import Principal
from shared.models import ApiClient
from shared.pagination import PageParams, keyset


def readable(principal: Principal) -> ColumnElement[bool]:
    """Officers and auditors see every client; a partner sees the clients acting for it."""
    if principal.kind in ("officer", "auditor"):
        return true()
    if principal.kind == "partner" and principal.partner_id:
        return ApiClient.partner_id == principal.partner_id
    return false()


def _readable_stmt(principal: Principal) -> Select[ApiClient]:
    return select(ApiClient).where(readable(principal))


async def get_readable(
    session: AsyncSession, principal: Principal, client_id: str, *, lock: bool = False
) -> ApiClient | None:
    stmt = _readable_stmt(principal).where(ApiClient.client_id == client_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    principal: Principal,
    page: PageParams,
    *,
    partner_id: uuid.UUID | None,
    kind: str | None,
    status: str | None,
) -> list[ApiClient]:
    stmt = _readable_stmt(principal)
    if partner_id is not None:
        stmt = stmt.where(ApiClient.partner_id == partner_id)
    if kind is not None:
        stmt = stmt.where(ApiClient.kind == kind)
    if status == "active":
        stmt = stmt.where(ApiClient.revoked_at.is_(None))
    elif status == "revoked":
        stmt = stmt.where(ApiClient.revoked_at.is_not(None))
    stmt = keyset(stmt, page, ApiClient.created_at, ApiClient.id)
    return list((await session.execute(stmt)).scalars())


async def partner_exists(session: AsyncSession, partner_id: uuid.UUID) -> bool:
    return (await session.execute(select(Partner.id).where(Partner.id == partner_id))).first() is not None


async def company_exists(session: AsyncSession, company_id: uuid.UUID) -> bool:
    return (await session.execute(select(Company.id).where(Company.id == company_id))).first() is not None
