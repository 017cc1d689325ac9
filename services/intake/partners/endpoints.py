"""Routes of /v1/partners. Officers register partners and issue their API clients; a partner reads itself."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.intake.models import Partner
from services.intake.partners import service
from services.intake.partners.schemas import ClientCreate, ClientCredentials, PartnerCreate, PartnerOut
from services.intake.principals import officer
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, etag_of

router = APIRouter(prefix="/v1/partners", tags=["partners"], route_class=UnitOfWorkRoute)
Reader = Annotated[
    Principal, Depends(Authenticator(kinds=("partner", "officer", "auditor", "service"), scopes=("intake:read",)))
]
NO_STORE = {"Cache-Control": "no-store"}


async def valid_partner_id(partner_id: uuid.UUID, session: SessionDep, principal: Reader) -> Partner:
    return await service.get_partner(session=session, principal=principal, partner_id=partner_id)


ValidPartner = Annotated[Partner, Depends(valid_partner_id)]


@router.post(
    "",
    response_model=PartnerOut,
    status_code=201,
    summary="Register a partner",
    dependencies=[officer],
)
async def create_partner(
    body: PartnerCreate, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    partner = await service.create_partner(session=session, actor=actor, data=body)
    response.headers["ETag"] = etag_of(partner.version)
    response.headers["Location"] = f"/v1/partners/{partner.id}"
    return service.to_out(partner)


@router.get(
    "",
    response_model=Page[PartnerOut],
    summary="List partners (a partner sees only itself)",
)
async def list_partners(session: SessionDep, principal: Reader, page: PageDep) -> Any:
    rows = await service.list_partners(session=session, principal=principal, page=page)
    return page_of(rows, page, service.to_out)


@router.get(
    "/{partner_id}",
    response_model=PartnerOut,
    summary="Read a partner",
)
async def get_partner(partner: ValidPartner, response: Response) -> Any:
    response.headers["ETag"] = etag_of(partner.version)
    return service.to_out(partner)


@router.post(
    "/{partner_id}/clients",
    response_model=ClientCredentials,
    status_code=201,
    dependencies=[officer],
    summary="Issue an API client to a partner (the secret is shown once)",
    description="No Idempotency-Key here on purpose: a replay would have to keep the plain secret in the "
    "idempotency store. A retried request issues another client; the lost one is unusable.",
)
async def create_partner_client(
    partner: ValidPartner, session: SessionDep, actor: ActorDep, response: Response, body: ClientCreate | None = None
) -> Any:
    response.headers.update(NO_STORE)
    name = body.name if body and body.name else partner.name
    return await service.issue_client(
        session=session, actor=actor, kind="partner", name=name[:200], partner_id=partner.id
    )
