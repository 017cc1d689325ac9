"""Use cases on partners: register, read, list, and issue their API clients."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Partner
from services.intake.partners import repository
from services.intake.partners.schemas import PartnerCreate
from shared.audit import record_audit
from shared.auth import Principal, PrincipalKind, create_client
from shared.errors import ALREADY_EXISTS, DeskError, NotFound
from shared.pagination import PageParams
from shared.routing import Actor, etag_of


def to_out(partner: Partner) -> dict[str, Any]:
    return {
        "id": partner.id,
        "name": partner.name,
        "kind": partner.kind,
        "fiscal_code": partner.fiscal_code,
        "email": partner.email,
        "created_at": partner.created_at,
        "etag": etag_of(partner.version),
    }


def _snapshot(partner: Partner) -> dict[str, Any]:
    return {"name": partner.name, "kind": partner.kind, "fiscal_code": partner.fiscal_code, "email": partner.email}


def _duplicate(fiscal_code: str) -> DeskError:
    return DeskError(
        f"Esiste già un partner con codice fiscale {fiscal_code}.",
        f"A partner with fiscal code {fiscal_code} already exists.",
        kind=ALREADY_EXISTS,
    )


async def create_partner(*, session: AsyncSession, actor: Actor, data: PartnerCreate) -> Partner:
    if await repository.get_by_fiscal_code(session, data.fiscal_code) is not None:
        raise _duplicate(data.fiscal_code)
    partner = Partner(
        id=uuid.uuid4(), name=data.name, kind=data.kind, fiscal_code=data.fiscal_code, email=data.email, version=1
    )
    if not await repository.add_unique(session, partner):
        raise _duplicate(data.fiscal_code)
    await session.refresh(partner)
    await record_audit(
        session,
        actor,
        action="partner.registered",
        resource_type="partner",
        resource_id=partner.id,
        after=_snapshot(partner),
    )
    return partner


async def get_partner(*, session: AsyncSession, principal: Principal, partner_id: uuid.UUID) -> Partner:
    partner = await repository.get_readable(session, principal, partner_id)
    if partner is None:
        raise NotFound()
    return partner


async def list_partners(*, session: AsyncSession, principal: Principal, page: PageParams) -> list[Partner]:
    return await repository.list_page(session, principal, page)


async def issue_client(
    *,
    session: AsyncSession,
    actor: Actor,
    kind: PrincipalKind,
    name: str,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Create an API client for a partner or a company; the plain secret leaves the desk only here."""
    client, secret = await create_client(session, kind=kind, name=name, partner_id=partner_id, company_id=company_id)
    await record_audit(
        session,
        actor,
        action="api_client.created",
        resource_type="api_client",
        resource_id=client.client_id,
        after={
            "kind": kind,
            "name": name,
            "partner_id": partner_id,
            "company_id": company_id,
            "scopes": list(client.scopes),
        },
    )
    return {"client_id": client.client_id, "client_secret": secret, "kind": kind, "scopes": list(client.scopes)}
