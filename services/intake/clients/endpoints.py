"""Routes of /v1/clients: API credentials without SQL. Officers manage every client; a partner its own."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response

from services.intake.clients import service
from services.intake.clients.schemas import (
    CLIENT_ID_PATTERN,
    ApiClientCreate,
    ApiClientOut,
    ApiClientRevocation,
    ApiClientRotation,
    ApiClientWithSecret,
    ClientKind,
    ClientStatus,
)
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.models import ApiClient
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

REVOCATION_NOTE = (
    "A revoked client gets no token from then on, and the tokens it already holds are refused by "
    "every service within `DESK_REVOCATION_REFRESH_SECONDS` (5 seconds by default; at once on the "
    "intake process that revoked it), not only when they expire."
)
router = APIRouter(prefix="/v1/clients", tags=["clients"], route_class=UnitOfWorkRoute)
Reader = Annotated[Principal, Depends(Authenticator(kinds=("partner", "officer", "auditor"), scopes=("intake:read",)))]
writer = Depends(Authenticator(scopes_by_kind={"officer": ("intake:admin",), "partner": ("intake:write",)}))
ClientIdPath = Annotated[str, Path(pattern=CLIENT_ID_PATTERN, description="The client's OAuth `client_id`.")]
NO_STORE = {"Cache-Control": "no-store"}


async def valid_client_id(client_id: ClientIdPath, session: SessionDep, principal: Reader) -> ApiClient:
    return await service.get(session=session, principal=principal, client_id=client_id)


async def locked_client_id(client_id: ClientIdPath, session: SessionDep, principal: Reader) -> ApiClient:
    return await service.get(session=session, principal=principal, client_id=client_id, lock=True)


ValidClient = Annotated[ApiClient, Depends(valid_client_id)]
LockedClient = Annotated[ApiClient, Depends(locked_client_id)]


def _with_etag(response: Response, client: ApiClient, *, secret: bool = False) -> None:
    response.headers["ETag"] = etag_of(client.version)
    if secret:
        response.headers.update(NO_STORE)


@router.get(
    "",
    response_model=Page[ApiClientOut],
    summary="List API clients (a partner sees its own)",
)
async def list_clients(
    session: SessionDep,
    principal: Reader,
    page: PageDep,
    partner_id: Annotated[uuid.UUID | None, Query(description="Only the clients acting for this partner.")] = None,
    kind: Annotated[ClientKind | None, Query(description="Only clients of this kind.")] = None,
    status: Annotated[ClientStatus | None, Query(description="Only active or only revoked clients.")] = None,
) -> Any:
    rows = await service.list_clients(
        session=session, principal=principal, page=page, partner_id=partner_id, kind=kind, status=status
    )
    return page_of(rows, page, service.to_out)


@router.post(
    "",
    response_model=ApiClientWithSecret,
    status_code=201,
    dependencies=[writer],
    summary="Create an API client (the secret is shown once)",
    description="Officers create a client of any kind; a partner creates a `partner` client for itself. "
    "No Idempotency-Key here on purpose: a replay would have to keep the plain secret in the "
    "idempotency store. A retried request creates another client: revoke the one whose "
    "secret was lost.",
)
async def create_client(body: ApiClientCreate, session: SessionDep, actor: ActorDep, response: Response) -> Any:
    client, secret = await service.create(session=session, actor=actor, data=body)
    _with_etag(response, client, secret=True)
    response.headers["Location"] = f"/v1/clients/{client.client_id}"
    return {**service.to_out(client), "client_secret": secret}


@router.get(
    "/{client_id}",
    response_model=ApiClientOut,
    summary="Read an API client (never its secret)",
)
async def get_client(client: ValidClient, response: Response) -> Any:
    _with_etag(response, client)
    return service.to_out(client)


@router.post(
    "/{client_id}/rotate",
    response_model=ApiClientWithSecret,
    dependencies=[writer],
    summary="Rotate the secret (If-Match required; the new secret is shown once)",
    description="The replaced secret keeps working at the token endpoint for `overlap_seconds` (24 hours "
    "by default, at most 7 days), so the caller switches whenever it likes within the window; "
    "tokens issued meanwhile live out their lifetime. No Idempotency-Key (the response holds "
    "the plain secret): `If-Match` makes a retry safe, as a retried rotation answers 412 "
    "instead of rotating twice. " + REVOCATION_NOTE,
)
async def rotate_client(
    client: LockedClient,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
    body: ApiClientRotation | None = None,
) -> Any:
    check_if_match(request, client.version)
    secret = await service.rotate(
        session=session, actor=actor, client=client, overlap_seconds=(body or ApiClientRotation()).overlap_seconds
    )
    _with_etag(response, client, secret=True)
    return {**service.to_out(client), "client_secret": secret}


@router.post(
    "/{client_id}/revoke",
    response_model=ApiClientOut,
    dependencies=[writer],
    summary="Revoke an API client (If-Match required); its tokens stop working",
    description=REVOCATION_NOTE + " A revocation is final: create a new client instead.",
)
async def revoke_client(
    client: LockedClient,
    body: ApiClientRevocation,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
    background: BackgroundTasks,
) -> Any:
    check_if_match(request, client.version)
    await service.revoke(session=session, actor=actor, client=client, reason=body.reason)
    # runs once the response is ready, i.e. after the commit: this process re-reads the revoked list at once
    background.add_task(request.app.state.revoked_clients.invalidate)
    _with_etag(response, client)
    return service.to_out(client)
