"""Routes of the budget: the ledger and ranking of a call (officers, auditors), the allocation and single
approvals (officers), releases (services: monitoring's revocations and reductions), and the public,
anonymised view of the funding order and of the budget left (no token)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from services.evaluation.admissibility import service as evaluations
from services.evaluation.budget import repository, service
from services.evaluation.budget.schemas import (
    AllocationOut,
    BudgetOut,
    FundingOut,
    PublicBudget,
    PublicRankingPage,
    PublicRankingVersion,
    RankingPage,
    RankingVersionIn,
    RankingVersionList,
    RankingVersionOut,
    ReleaseOut,
)
from services.evaluation.models import Funding, ReceivedApplication
from services.evaluation.peers import IntakeDep
from shared.auth import Authenticator, Principal
from shared.contracts.funding import FundingStatus, ReleaseIn
from shared.db import SessionDep
from shared.four_eyes import ProposalOut, proposal_out
from shared.pagination import Page, PageDep, SeqPageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, etag_of
from shared.schemas import INT32_MAX

RankingNumber = Annotated[int, Path(ge=1, le=INT32_MAX, description="The ranking's number in its call (1, 2, ...).")]

PUBLIC: dict[str, Any] = {"security": []}
reader = Depends(Authenticator(kinds=("officer", "auditor"), scopes=("evaluation:read",)))
officer = Depends(Authenticator(kinds=("officer",), scopes=("evaluation:write",)))
ApplicantOrStaff = Annotated[
    Principal,
    Depends(Authenticator(kinds=("officer", "auditor", "service", "partner", "company"), scopes=("evaluation:read",))),
]
internal = Depends(Authenticator(kinds=("service",), scopes=("internal",)))

router = APIRouter(prefix="/v1/calls", tags=["budget"], route_class=UnitOfWorkRoute)
fundings_router = APIRouter(prefix="/v1/fundings", tags=["fundings"], route_class=UnitOfWorkRoute)
public_router = APIRouter(prefix="/v1/public/calls", tags=["transparency"], route_class=UnitOfWorkRoute)


@router.get(
    "/{call_id}/budget",
    response_model=BudgetOut,
    dependencies=[reader],
    summary="The call's budget: total, committed, freed, available, and its ledger",
    description="The budget is created on first use from the call's rules (`budget_total`). Aid committed "
    "is grant + loan: the call's endowment finances both. Ledger entries are paged with "
    "`cursor` (from `next_cursor`) and `limit`.",
)
async def get_budget(
    call_id: uuid.UUID, session: SessionDep, intake: IntakeDep, response: Response, page: SeqPageDep
) -> Any:
    out = await service.get_budget_page(
        session=session, intake=intake, call_id=call_id, after=page.after or 0, limit=page.limit
    )
    response.headers["ETag"] = out["etag"]
    return out


@router.post(
    "/{call_id}/allocation",
    response_model=AllocationOut,
    status_code=200,
    dependencies=[officer],
    summary="Allocate the budget to the call's evaluated applications",
    description="Takes every evaluated application of the call not allocated yet, with the waiting list, in "
    "the call's order (first-come: protocol order; ranking: score, ties by protocol), and funds "
    "them strictly in that order while the budget lasts; the first that does not fit is funded "
    "in part or waits as the call says, the rest wait. Applications not admitted get their "
    "`not_admitted` place so that a decree lists them. Running it again allocates only what is "
    "new. A ranking call is refused (409 `ranking-not-ready`, listing what is pending) until its "
    "window has closed and every admissible application has a final score or an exclusion; a "
    "first-come call allocates only up to the first application still undecided "
    "(`held_back`).",
)
async def allocate_budget(
    call_id: uuid.UUID, session: SessionDep, actor: ActorDep, intake: IntakeDep, _idem: Idempotent
) -> Any:
    return await service.allocate_call(session=session, actor=actor, intake=intake, call_id=call_id)


@router.post(
    "/{call_id}/budget/releases",
    response_model=ReleaseOut,
    status_code=200,
    dependencies=[internal],
    summary="Release aid committed to an application (revocation or reduction)",
    description="For the desk's services (monitoring, on a revocation or a reduction). Releasing the whole "
    "granted aid is a revocation, less is a reduction. The freed budget funds the waiting list "
    "at once (scorrimento); each application funded so emits "
    "`funding.granted_from_waiting_list`.",
)
async def release_budget(
    call_id: uuid.UUID, body: ReleaseIn, session: SessionDep, actor: ActorDep, intake: IntakeDep, _idem: Idempotent
) -> Any:
    released = await service.release_amount(
        session=session,
        actor=actor,
        intake=intake,
        call_id=call_id,
        application_id=body.application_id,
        amount=body.amount,
        reason=body.reason,
    )
    return {
        "application_id": body.application_id,
        "released": released.amount,
        "funding": service.to_funding_out(released.funding),
        "granted_from_waiting_list": released.from_waiting_list,
        "budget": service.to_summary(released.budget),
    }


@router.get(
    "/{call_id}/ranking",
    response_model=RankingPage,
    dependencies=[reader],
    summary="The call's funding order with companies and amounts",
    description="Every allocated application by position (protocol order, or score with ties by protocol), "
    "then those not admitted (no position).",
)
async def get_ranking(call_id: uuid.UUID, session: SessionDep, intake: IntakeDep, page: SeqPageDep) -> Any:
    return await service.ranking(
        session=session, intake=intake, call_id=call_id, after=page.after or 0, limit=page.limit
    )


@router.get(
    "/{call_id}/rankings",
    response_model=RankingVersionList,
    dependencies=[reader],
    summary="The call's published rankings: every numbered version with its reason",
)
async def list_ranking_versions(call_id: uuid.UUID, session: SessionDep) -> Any:
    rows = await service.ranking_versions(session, call_id)
    return {
        "call_id": call_id,
        "items": [{"number": r.number, "reason": r.reason, "created_at": r.created_at} for r in rows],
    }


@router.post(
    "/{call_id}/rankings",
    response_model=RankingVersionOut,
    status_code=201,
    dependencies=[officer],
    summary="Publish a new version of the call's ranking (after an appeal, say), with its reason",
    description="The first version is published by the allocation of a ranking call. A new one records the "
    "ranking as it stands now under the next number; earlier versions never change and stay "
    "readable.",
)
async def publish_ranking_version(
    call_id: uuid.UUID,
    body: RankingVersionIn,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
) -> Any:
    row = await service.new_ranking_version(
        session=session, actor=actor, intake=intake, call_id=call_id, reason=body.reason
    )
    return service.ranking_version_out(row)


@router.get(
    "/{call_id}/rankings/{number}",
    response_model=RankingVersionOut,
    dependencies=[reader],
    summary="One published version of the call's ranking",
)
async def get_ranking_version(call_id: uuid.UUID, number: RankingNumber, session: SessionDep) -> Any:
    return service.ranking_version_out(await service.get_ranking_version(session, call_id, number))


@fundings_router.post(
    "/{application_id}/approve",
    response_model=ProposalOut,
    status_code=202,
    dependencies=[officer],
    summary="Propose to fund one evaluated application (four-eyes: a second officer confirms)",
    description="Checks the approval and records it as proposed; nothing is funded until a second, "
    "different officer confirms it (`POST /v1/fundings/{id}/confirm`). An application "
    "already allocated is a 409. First-come: refused (409 `protocol-order-pending`) "
    "while an earlier application is undecided or not allocated. Ranking: refused (409 "
    "`ranking-not-ready`) until the ranking can be formed and every other admitted "
    "application is allocated. Proposed already: 409 `confirmation-pending`.",
)
async def approve_funding(
    application_id: uuid.UUID, session: SessionDep, actor: ActorDep, intake: IntakeDep, _idem: Idempotent
) -> Any:
    proposal = await service.propose_approval(
        session=session, actor=actor, intake=intake, application_id=application_id
    )
    return proposal_out(proposal, f"/v1/fundings/{application_id}/confirm")


@fundings_router.post(
    "/{application_id}/confirm",
    response_model=FundingOut,
    status_code=200,
    dependencies=[officer],
    summary="Confirm a proposed funding approval (a second, different officer)",
    description="Funds the application if the budget covers it after anyone ahead of it on the "
    "waiting list; otherwise it waits (or is funded in part, if the call allows it). "
    "Every check of the approval is made again. The proposer: 403 "
    "`four-eyes-same-officer`; nothing proposed: 409 `nothing-to-confirm`. The audit "
    "record names both officers.",
)
async def confirm_funding(
    application_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    funding = await service.confirm_approval(session=session, actor=actor, intake=intake, application_id=application_id)
    response.headers["ETag"] = etag_of(funding.version)
    return service.to_funding_out(funding)


@fundings_router.get(
    "",
    response_model=Page[FundingOut],
    summary="List the allocations within reach",
    description="Where each application stands in the allocation (funded, partially funded, waiting, not "
    "admitted). Officers, auditors and services see all; a partner or a company those of its own "
    "applications, with the score only once the call's ranking is published. Oldest received first.",
)
async def list_fundings(
    session: SessionDep,
    page: PageDep,
    principal: ApplicantOrStaff,
    call_id: uuid.UUID | None = None,
    status: Annotated[FundingStatus | None, Query(description="Only allocations in this state.")] = None,
) -> Any:
    stmt = keyset(
        repository.fundings(principal, call_id=call_id, status=status),
        page,
        ReceivedApplication.received_at,
        Funding.application_id,
    )
    rows = await repository.page_rows(session, stmt)
    shown = await evaluations.score_shown(session, principal, {r.Funding.call_id for r in rows})
    return page_of(rows, page, lambda r: service.to_funding_out(r.Funding, show_score=r.Funding.call_id in shown))


@fundings_router.get(
    "/{application_id}",
    response_model=FundingOut,
    summary="Where an application stands in the allocation",
    description="A partner or a company reads only those of its own applications (404 otherwise), with the "
    "score only once the call's ranking is published.",
)
async def get_funding(
    application_id: uuid.UUID, session: SessionDep, principal: ApplicantOrStaff, response: Response
) -> Any:
    funding = await service.get_funding(session, principal, application_id)
    shown = await evaluations.score_shown(session, principal, {funding.call_id})
    response.headers["ETag"] = etag_of(funding.version)
    return service.to_funding_out(funding, show_score=funding.call_id in shown)


@public_router.get(
    "/{call_id}/ranking",
    response_model=PublicRankingPage,
    openapi_extra=PUBLIC,
    summary="Public funding order of a call (anonymised)",
    description="Position, protocol number, score, outcome and amounts; no company identifiers.",
)
async def get_public_ranking(call_id: uuid.UUID, session: SessionDep, intake: IntakeDep, page: SeqPageDep) -> Any:
    return await service.ranking(
        session=session, intake=intake, call_id=call_id, after=page.after or 0, limit=page.limit
    )


@public_router.get(
    "/{call_id}/rankings/{number}",
    response_model=PublicRankingVersion,
    openapi_extra=PUBLIC,
    summary="One published version of a call's ranking (public)",
    description="Position, protocol number, score and outcome (funded, waiting, not admitted) of "
    "every application, as published under that number.",
)
async def get_public_ranking_version(call_id: uuid.UUID, number: RankingNumber, session: SessionDep) -> Any:
    return service.ranking_version_out(await service.get_ranking_version(session, call_id, number), public=True)


@public_router.get(
    "/{call_id}/budget",
    response_model=PublicBudget,
    openapi_extra=PUBLIC,
    summary="Public budget of a call: total, committed, available",
)
async def get_public_budget(call_id: uuid.UUID, session: SessionDep, intake: IntakeDep) -> Any:
    return await service.public_budget(session=session, intake=intake, call_id=call_id)
