"""Routes of /v1/companies and /v1/delegations.

Reads are within reach (shared.access): a partner sees the companies it holds an active
delegation for, a company itself, officers/auditors everything; the rest is 404. Writes are for
partners and companies (scope intake:write) and officers (scope intake:admin).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.intake.companies import service
from services.intake.companies.repository import DelegationView
from services.intake.companies.schemas import (
    CompanyIn,
    DelegationCreate,
    DelegationOut,
    DelegationRequestOut,
    DelegationStatus,
)
from services.intake.models import Company
from services.intake.partners import service as partners_service
from services.intake.partners.schemas import ClientCreate, ClientCredentials
from services.intake.principals import ADMIN, WRITE, Reader, officer, participant
from shared.auth import Authenticator
from shared.contracts.companies import CompanyOut
from shared.db import SessionDep
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

# A participant registers and replaces companies and revokes delegations; asking for a delegation is the partner's
# alone, accepting it the company's (or an officer's).
delegation_requester = Depends(Authenticator(kinds=("partner",), scopes=WRITE))
delegation_acceptor = Depends(Authenticator(scopes_by_kind={"company": WRITE, "officer": ADMIN}))

router = APIRouter(prefix="/v1/companies", tags=["companies"], route_class=UnitOfWorkRoute)
delegations_router = APIRouter(prefix="/v1/delegations", tags=["delegations"], route_class=UnitOfWorkRoute)


# ---------------------------------------------------------------- companies


async def valid_company_id(company_id: uuid.UUID, session: SessionDep, principal: Reader) -> Company:
    return await service.get_company(session=session, principal=principal, company_id=company_id)


async def valid_company_id_for_update(company_id: uuid.UUID, session: SessionDep, principal: Reader) -> Company:
    # Locked until commit, so the If-Match check and the write see the same version.
    return await service.get_company(session=session, principal=principal, company_id=company_id, for_update=True)


ValidCompany = Annotated[Company, Depends(valid_company_id)]
LockedCompany = Annotated[Company, Depends(valid_company_id_for_update)]


def _company_headers(response: Response, company: Company) -> None:
    response.headers["ETag"] = etag_of(company.version)


_ALREADY_REGISTERED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": DelegationRequestOut,
        "description": (
            "A partner registering a VAT number that is already registered: a delegation request was made instead "
            "(as POST /v1/delegations), answered without the company's id or name; the company decides."
        ),
    }
}


@router.post(
    "",
    response_model=CompanyOut,
    status_code=201,
    dependencies=[participant],
    summary="Register a company (a partner also gets an active delegation from it)",
    responses=_ALREADY_REGISTERED,
)
async def create_company(
    body: CompanyIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    company = await service.create_company(session=session, actor=actor, data=body)
    if not isinstance(company, Company):
        return JSONResponse(jsonable_encoder(DelegationRequestOut.model_validate(company)), status_code=202)
    _company_headers(response, company)
    response.headers["Location"] = f"/v1/companies/{company.id}"
    return service.to_out(company)


@router.get(
    "",
    response_model=Page[CompanyOut],
    summary="List the companies within reach",
)
async def list_companies(
    session: SessionDep,
    principal: Reader,
    page: PageDep,
    vat_number: Annotated[str | None, Query(max_length=13, description="Exact VAT number.")] = None,
) -> Any:
    rows = await service.list_companies(session=session, principal=principal, page=page, vat_number=vat_number)
    return page_of(rows, page, service.to_out)


@router.get(
    "/{company_id}",
    response_model=CompanyOut,
    summary="Read a company",
)
async def get_company(company: ValidCompany, response: Response) -> Any:
    _company_headers(response, company)
    return service.to_out(company)


@router.put(
    "/{company_id}",
    response_model=CompanyOut,
    dependencies=[participant],
    summary="Replace a company's data (If-Match required; the VAT number cannot change)",
)
async def replace_company(
    company: LockedCompany, body: CompanyIn, request: Request, session: SessionDep, actor: ActorDep, response: Response
) -> Any:
    check_if_match(request, company.version)
    company = await service.replace_company(session=session, actor=actor, company=company, data=body)
    _company_headers(response, company)
    return service.to_out(company)


@router.post(
    "/{company_id}/clients",
    response_model=ClientCredentials,
    status_code=201,
    dependencies=[officer],
    summary="Issue an API client to a company acting for itself (the secret is shown once)",
    description="No Idempotency-Key here on purpose: a replay would have to keep the plain secret in the "
    "idempotency store. A retried request issues another client; the lost one is unusable.",
)
async def create_company_client(
    company: ValidCompany, session: SessionDep, actor: ActorDep, response: Response, body: ClientCreate | None = None
) -> Any:
    response.headers["Cache-Control"] = "no-store"
    name = body.name if body and body.name else company.name
    return await partners_service.issue_client(
        session=session, actor=actor, kind="company", name=name[:200], company_id=company.id
    )


# ---------------------------------------------------------------- delegations


async def valid_delegation_id(delegation_id: uuid.UUID, session: SessionDep, principal: Reader) -> DelegationView:
    return await service.get_delegation(session=session, principal=principal, delegation_id=delegation_id)


async def valid_delegation_id_for_update(
    delegation_id: uuid.UUID, session: SessionDep, principal: Reader
) -> DelegationView:
    return await service.get_delegation(
        session=session, principal=principal, delegation_id=delegation_id, for_update=True
    )


ValidDelegation = Annotated[DelegationView, Depends(valid_delegation_id)]
LockedDelegation = Annotated[DelegationView, Depends(valid_delegation_id_for_update)]


def _delegation_headers(response: Response, view: DelegationView) -> None:
    response.headers["ETag"] = etag_of(view.delegation.version)


@delegations_router.post(
    "",
    response_model=DelegationRequestOut,
    status_code=202,
    dependencies=[delegation_requester],
    summary="Ask a company for a delegation by its VAT number (it decides; the answer says nothing about it)",
    description="Answers 202 with a request id whether or not a company with this VAT number is registered. "
    "When it is, the company is told (event `delegation.requested`, and its pending delegations in "
    "GET /v1/delegations) and accepts or refuses; the partner sees the delegation, with the "
    "company's id and name, once it is accepted (event `delegation.activated`). 409 only when the "
    "partner already holds an active delegation from that company.",
)
async def request_delegation(body: DelegationCreate, session: SessionDep, actor: ActorDep, _idem: Idempotent) -> Any:
    return await service.request_delegation(session=session, actor=actor, vat_number=body.vat_number)


@delegations_router.get(
    "",
    response_model=Page[DelegationOut],
    summary="List delegations (a partner those accepted, a company those on it)",
)
async def list_delegations(
    session: SessionDep, principal: Reader, page: PageDep, status: DelegationStatus | None = None
) -> Any:
    rows = await service.list_delegations(session=session, principal=principal, page=page, status=status)
    return page_of(rows, page, service.delegation_to_out)


@delegations_router.get(
    "/{delegation_id}",
    response_model=DelegationOut,
    summary="Read a delegation",
)
async def get_delegation(view: ValidDelegation, response: Response) -> Any:
    _delegation_headers(response, view)
    return service.delegation_to_out(view)


@delegations_router.post(
    "/{delegation_id}/accept",
    response_model=DelegationOut,
    dependencies=[delegation_acceptor],
    summary="Accept a pending delegation (the company or an officer; If-Match required)",
)
async def accept_delegation(
    view: LockedDelegation,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, view.delegation.version)
    view = await service.accept_delegation(session=session, actor=actor, view=view)
    _delegation_headers(response, view)
    return service.delegation_to_out(view)


@delegations_router.post(
    "/{delegation_id}/revoke",
    response_model=DelegationOut,
    dependencies=[participant],
    summary="Revoke a delegation, or refuse a pending one (the company, the partner or an officer; If-Match required)",
)
async def revoke_delegation(
    view: LockedDelegation,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, view.delegation.version)
    view = await service.revoke_delegation(session=session, actor=actor, view=view)
    _delegation_headers(response, view)
    return service.delegation_to_out(view)
