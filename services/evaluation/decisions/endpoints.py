"""Routes of /v1/decrees (officers open, fill and close decrees; auditors read) and /v1/decisions (CUP and COR
by officers; acceptance or renunciation by the company or its partner; reads by whoever reaches the
application)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from services.evaluation.decisions import repository, service
from services.evaluation.decisions.schemas import (
    CorIn,
    CupIn,
    DecisionBatchOut,
    DecisionOut,
    DecisionsCreate,
    DecisionStatus,
    DecreeCreate,
    DecreeOut,
    Outcome,
    RenounceIn,
)
from services.evaluation.models import Decision, Decree, ReceivedApplication
from services.evaluation.peers import IntakeDep
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.four_eyes import ProposalOut, proposal_out
from shared.pagination import Page, PageDep, encode_cursor, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

reader = Depends(Authenticator(kinds=("officer", "auditor"), scopes=("evaluation:read",)))
officer = Depends(Authenticator(kinds=("officer",), scopes=("evaluation:write",)))
anyone_reaching = Authenticator(
    kinds=("officer", "auditor", "service", "partner", "company"), scopes=("evaluation:read",)
)
# Applicants hold no evaluation write scope: answering their own decision is what `evaluation:read` lets them do.
applicant = Authenticator(kinds=("partner", "company"), scopes=("evaluation:read",))

decrees_router = APIRouter(prefix="/v1/decrees", tags=["decrees"], route_class=UnitOfWorkRoute)
decisions_router = APIRouter(prefix="/v1/decisions", tags=["decisions"], route_class=UnitOfWorkRoute)


async def valid_decree_id(decree_id: uuid.UUID, session: SessionDep) -> Decree:
    return await service.get_decree(session, decree_id)


ValidDecree = Annotated[Decree, Depends(valid_decree_id)]


async def reached_decision_for_update(
    decision_id: uuid.UUID, session: SessionDep, principal: Annotated[Principal, Depends(applicant)]
) -> tuple[Decision, Decree, ReceivedApplication]:
    """The decision, locked, if the applicant reaches its company (shared.access); else 404, before the body is
    even read, so nothing about a decision out of reach shows through a validation error."""
    return await service.get_decision(session, principal, decision_id, for_update=True)


ApplicantDecision = Annotated[tuple[Decision, Decree, ReceivedApplication], Depends(reached_decision_for_update)]


@decrees_router.post(
    "",
    response_model=DecreeOut,
    status_code=201,
    dependencies=[officer],
    summary="Open a concession decree (number and date)",
)
async def create_decree(
    body: DecreeCreate, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    decree = await service.create_decree(
        session=session, actor=actor, call_id=body.call_id, number=body.number, decree_date=body.decree_date
    )
    response.headers["ETag"] = etag_of(decree.version)
    response.headers["Location"] = f"/v1/decrees/{decree.id}"
    return service.decree_out(decree, 0)


@decrees_router.get(
    "",
    response_model=Page[DecreeOut],
    dependencies=[reader],
    summary="List decrees",
    description="Officers and auditors; oldest first.",
)
async def list_decrees(
    session: SessionDep,
    page: PageDep,
    call_id: uuid.UUID | None = None,
    status: Annotated[Literal["open", "closed"] | None, Query(description="Only decrees in this state.")] = None,
) -> Any:
    stmt = keyset(repository.decrees(call_id=call_id, status=status), page, Decree.created_at, Decree.id)
    rows = await repository.rows(session, stmt)
    return page_of(rows, page, lambda r: service.decree_out(r.Decree, r.decisions))


@decrees_router.get(
    "/{decree_id}",
    response_model=DecreeOut,
    dependencies=[reader],
    summary="Read a decree",
)
async def get_decree(decree: ValidDecree, session: SessionDep, response: Response) -> Any:
    response.headers["ETag"] = etag_of(decree.version)
    return service.decree_out(decree, await service.count(session, decree))


@decrees_router.get(
    "/{decree_id}/decisions",
    response_model=Page[DecisionOut],
    dependencies=[reader],
    summary="List the decisions of a decree",
)
async def list_decree_decisions(decree: ValidDecree, session: SessionDep, page: PageDep) -> Any:
    rows = await service.decisions_page(session, decree, after=page.after, limit=page.limit)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return {
        "items": [service.decision_out(r.Decision, r.Decree) for r in rows],
        "next_cursor": encode_cursor(rows[-1].Decision.created_at, rows[-1].Decision.id) if more and rows else None,
    }


@decrees_router.post(
    "/{decree_id}/decisions",
    response_model=DecisionBatchOut,
    status_code=201,
    dependencies=[officer],
    summary="Add decisions to an open decree",
    description="For the given applications, or every pending one of the call (`all_pending`): "
    "funded or partially funded (grant, loan), waiting, or not admitted with every "
    "reason. An application not evaluated and allocated yet, or a closed decree, is a "
    "409 and nothing is added. Requires If-Match with the decree's ETag.",
)
async def add_decisions(
    decree: ValidDecree,
    body: DecisionsCreate,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, decree.version)
    created = await service.add_decisions(
        session=session, actor=actor, decree=decree, application_ids=body.application_ids
    )
    decree = await service.get_decree(session, decree.id)
    response.headers["ETag"] = etag_of(decree.version)
    return {
        "decree": service.decree_out(decree, await service.count(session, decree)),
        "created": [service.decision_out(d, decree) for d in created],
    }


@decrees_router.post(
    "/{decree_id}/close",
    response_model=ProposalOut,
    status_code=202,
    dependencies=[officer],
    summary="Propose to close a decree (four-eyes: a second officer confirms)",
    description="Records the closing as proposed for the decree as it stands (its version); nothing "
    "is issued until a second, different officer confirms it (`POST "
    "/v1/decrees/{id}/close/confirm`). Requires If-Match. Proposed already: 409 "
    "`confirmation-pending`; decisions added since supersede a proposal when it is made "
    "again.",
)
async def close_decree(
    decree: ValidDecree, request: Request, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    check_if_match(request, decree.version)
    proposal = await service.propose_close(session=session, actor=actor, decree=decree)
    response.headers["ETag"] = etag_of(decree.version)
    return proposal_out(proposal, f"/v1/decrees/{decree.id}/close/confirm")


@decrees_router.post(
    "/{decree_id}/close/confirm",
    response_model=DecreeOut,
    status_code=200,
    dependencies=[officer],
    summary="Confirm a proposed closing (a second, different officer): its decisions are issued",
    description="Emits one `decision.issued` event per decision. Requires If-Match. The proposer: "
    "403 `four-eyes-same-officer`; nothing proposed: 409 `nothing-to-confirm`; the "
    "decree changed since the proposal: 409. The audit record names both officers.",
)
async def confirm_close_decree(
    decree: ValidDecree, request: Request, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    check_if_match(request, decree.version)
    decree = await service.close_decree(session=session, actor=actor, decree=decree)
    response.headers["ETag"] = etag_of(decree.version)
    return service.decree_out(decree, await service.count(session, decree))


@decisions_router.get(
    "",
    response_model=Page[DecisionOut],
    summary="List the decisions within reach",
    description="Officers, auditors and services see every decision; a partner or a company those of its own "
    "applications (shared.access). Oldest first.",
)
async def list_decisions(
    session: SessionDep,
    page: PageDep,
    principal: Annotated[Principal, Depends(anyone_reaching)],
    call_id: uuid.UUID | None = None,
    decree_id: uuid.UUID | None = None,
    application_id: uuid.UUID | None = None,
    status: Annotated[DecisionStatus | None, Query(description="Only decisions in this state.")] = None,
    outcome: Annotated[Outcome | None, Query(description="Only decisions with this outcome.")] = None,
) -> Any:
    stmt = repository.decisions(
        principal, call_id=call_id, decree_id=decree_id, application_id=application_id, status=status, outcome=outcome
    )
    rows = await repository.rows(session, keyset(stmt, page, Decision.created_at, Decision.id))
    return page_of(rows, page, lambda r: service.decision_out(r.Decision, r.Decree))


@decisions_router.get(
    "/{decision_id}",
    response_model=DecisionOut,
    summary="Read a decision",
)
async def get_decision(
    decision_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(anyone_reaching)],
    response: Response,
) -> Any:
    decision, decree, _ = await service.get_decision(session, principal, decision_id)
    response.headers["ETag"] = etag_of(decision.version)
    return service.decision_out(decision, decree)


@decisions_router.put(
    "/{decision_id}/cup",
    response_model=DecisionOut,
    dependencies=[officer],
    summary="Record the project's CUP on a funded decision (If-Match)",
)
async def set_decision_cup(
    decision_id: uuid.UUID, body: CupIn, request: Request, session: SessionDep, actor: ActorDep, response: Response
) -> Any:
    decision, decree, _ = await service.get_decision(session, actor.principal, decision_id, for_update=True)
    check_if_match(request, decision.version)
    decision = await service.set_cup(session=session, actor=actor, decision=decision, cup=body.cup)
    response.headers["ETag"] = etag_of(decision.version)
    return service.decision_out(decision, decree)


@decisions_router.put(
    "/{decision_id}/cor",
    response_model=DecisionOut,
    dependencies=[officer],
    summary="Record the aid's COR (national state-aid register) on a funded decision (If-Match)",
)
async def set_decision_cor(
    decision_id: uuid.UUID, body: CorIn, request: Request, session: SessionDep, actor: ActorDep, response: Response
) -> Any:
    decision, decree, _ = await service.get_decision(session, actor.principal, decision_id, for_update=True)
    check_if_match(request, decision.version)
    decision = await service.set_cor(session=session, actor=actor, decision=decision, cor=body.cor)
    response.headers["ETag"] = etag_of(decision.version)
    return service.decision_out(decision, decree)


@decisions_router.post(
    "/{decision_id}/accept",
    response_model=DecisionOut,
    status_code=200,
    dependencies=[Depends(applicant)],
    summary="Accept the aid of a funded decision (If-Match)",
    description="By the company or its partner, once, on an issued funded decision with its CUP "
    "and COR. Emits `decision.accepted`, from which monitoring starts the project.",
)
async def accept_decision(
    found: ApplicantDecision,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    decision, decree, app = found
    check_if_match(request, decision.version)
    decision = await service.accept_decision(
        session=session, actor=actor, intake=intake, decision=decision, decree=decree, app=app
    )
    response.headers["ETag"] = etag_of(decision.version)
    return service.decision_out(decision, decree)


@decisions_router.post(
    "/{decision_id}/renounce",
    response_model=DecisionOut,
    status_code=200,
    dependencies=[Depends(applicant)],
    summary="Renounce the aid of a funded decision (If-Match)",
    description="By the company or its partner, once, on an issued funded decision. Emits "
    "`decision.renounced`; the aid is released and the waiting list moves "
    "(scorrimento).",
)
async def renounce_decision(
    found: ApplicantDecision,
    body: RenounceIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    decision, decree, app = found
    check_if_match(request, decision.version)
    decision = await service.renounce_decision(
        session=session, actor=actor, intake=intake, decision=decision, decree=decree, app=app, reason=body.reason
    )
    response.headers["ETag"] = etag_of(decision.version)
    return service.decision_out(decision, decree)
