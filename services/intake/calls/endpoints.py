"""Routes of /v1/calls. Reading calls and the register is public; publishing is for officers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from services.intake.calls import repository, service
from services.intake.calls.schemas import CallCreate, CallVersionCreate, RegisterPage
from services.intake.models import Application, Call
from services.intake.principals import officer
from shared.contracts.calls import CallDetail, CallOut, CallVersionOut
from shared.db import SessionDep
from shared.domain.receipts import GENESIS, canonical_json
from shared.errors import NotFound
from shared.pagination import Page, PageDep, SeqPageDep, encode_seq_cursor, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of
from shared.schemas import INT32_MAX

PUBLIC: dict[str, Any] = {"security": []}
router = APIRouter(prefix="/v1/calls", tags=["calls"], route_class=UnitOfWorkRoute)


async def valid_call_id(call_id: uuid.UUID, session: SessionDep) -> Call:
    return await service.get_call(session, call_id)


ValidCall = Annotated[Call, Depends(valid_call_id)]


@router.get("", response_model=Page[CallOut], summary="List calls", openapi_extra=PUBLIC)
async def list_calls(session: SessionDep, page: PageDep) -> Any:
    rows = await repository.list_page(session, lambda s: keyset(s, page, Call.created_at, Call.id))
    return page_of(rows, page, service.to_out)


@router.get(
    "/{call_id}",
    response_model=CallDetail,
    summary="Read a call with its rules in force",
    openapi_extra=PUBLIC,
)
async def get_call(call: ValidCall, session: SessionDep, response: Response) -> Any:
    response.headers["ETag"] = etag_of(call.version)
    return service.to_out(call, await service.rules_of_call(session, call))


@router.get(
    "/{call_id}/versions/{version}",
    response_model=CallVersionOut,
    summary="Read one version of the rules",
    openapi_extra=PUBLIC,
)
async def get_call_version(
    call: ValidCall, version: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep
) -> Any:
    v = await repository.get_version(session, call.id, version)
    if v is None:
        raise NotFound()
    return {
        "call_id": v.call_id,
        "version": v.version,
        "reason": v.reason,
        "decree": v.decree,
        "created_at": v.created_at,
        "rules": v.rules,
    }


@router.post(
    "",
    response_model=CallDetail,
    status_code=201,
    summary="Publish a new call",
    dependencies=[officer],
)
async def create_call(
    body: CallCreate, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    call = await service.create_call(session=session, actor=actor, rules=body.rules)
    response.headers["ETag"] = etag_of(call.version)
    response.headers["Location"] = f"/v1/calls/{call.id}"
    return service.to_out(call, body.rules)


@router.post(
    "/{call_id}/versions",
    response_model=CallDetail,
    status_code=201,
    summary="Amend a call: publish a new version of its rules",
    dependencies=[officer],
    description="Before the window opens anything may change. Once it has opened the rules are frozen: a new "
    "version may only move `window.closes_at` later or raise `budget_total`, each with the "
    "`decree` that orders it (a missing decree is a 422); any other change is a 409 "
    "`call-frozen` problem whose `refused_fields` (and `errors[]`) name the fields, and nothing "
    "is stored. Emits `call.amended`: evaluation's budget takes the new total and funds its "
    "waiting list at once.",
)
async def add_call_version(
    call: ValidCall,
    body: CallVersionCreate,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, call.version)
    call = await service.add_version(
        session=session, actor=actor, call=call, rules=body.rules, reason=body.reason, decree=body.decree
    )
    response.headers["ETag"] = etag_of(call.version)
    return service.to_out(call, body.rules)


@router.get(
    "/{call_id}/register",
    response_model=RegisterPage,
    openapi_extra=PUBLIC,
    summary="The call's public register: receipts in protocol order, hash-chained",
    description="Anyone can verify it: each `chain_hash` is sha256 of the previous entry's hash (the genesis "
    "hash for protocol 1) followed by the canonical JSON of the receipt; each signature verifies "
    "with `public_key_pem`. Page with `cursor` (from `next_cursor`) and `limit`.",
)
async def get_register(
    call: ValidCall,
    request: Request,
    session: SessionDep,
    page: SeqPageDep,
) -> Any:
    after, limit = page.after or 0, page.limit
    rows = await repository.register_rows(session, call.id, after, limit)
    more = len(rows) > limit
    rows = rows[:limit]
    prev = GENESIS
    if after > 0 and rows:
        from sqlalchemy import select

        prev = (
            await session.execute(
                select(Application.chain_hash).where(
                    Application.call_id == call.id, Application.protocol_number == after
                )
            )
        ).scalar_one_or_none() or GENESIS
    items = []
    for r in rows:
        items.append(
            {
                "protocol_number": r.protocol_number,
                "application_id": r.id,
                "submitted_at": r.submitted_at,
                "content_sha256": r.content_sha256,
                "receipt": r.receipt,
                "signature": request.app.state.keyring.sign(canonical_json(r.receipt)),
                "previous_hash": prev,
                "chain_hash": r.chain_hash,
            }
        )
        prev = r.chain_hash or prev
    return {
        "call_id": call.id,
        "public_key_pem": request.app.state.keyring.public_pem(),
        "genesis_hash": GENESIS,
        "items": items,
        "next_cursor": encode_seq_cursor(rows[-1].protocol_number or 0) if more and rows else None,
    }
