"""Routes of expert accompaniment: /v1/experts (the roster officers manage, and the experts' API clients),
/v1/engagements (a company's request, the proposals, the assignment, the expert's confirmation, sessions and the
company's rating) and /v1/stats/accompaniment (officers' and auditors' figures)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from services.intake.accompaniment import service
from services.intake.accompaniment.schemas import (
    AccompanimentStats,
    AssignmentIn,
    EngagementIn,
    EngagementOut,
    EngagementStatus,
    ExpertIn,
    ExpertOut,
    ExpertProposals,
    Phase,
    RatingIn,
    SessionIn,
    SessionOut,
)
from services.intake.clients import service as clients
from services.intake.clients.schemas import ApiClientWithSecret
from services.intake.models import Engagement, Expert
from services.intake.principals import Applicant, Officer, Overseer, officer
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.pagination import Page, PageDep, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of
from shared.schemas import CountryCode

router = APIRouter(prefix="/v1", tags=["accompaniment"], route_class=UnitOfWorkRoute)

# Engagements are read by every kind with `intake:read` and by experts with their own scope.
Reader = Annotated[
    Principal,
    Depends(
        Authenticator(
            scopes_by_kind={
                "partner": ("intake:read",),
                "company": ("intake:read",),
                "officer": ("intake:read",),
                "auditor": ("intake:read",),
                "service": ("intake:read",),
                "expert": ("intake:accompaniment",),
            }
        )
    ),
]
ExpertCaller = Annotated[Principal, Depends(Authenticator(kinds=("expert",), scopes=("intake:accompaniment",)))]
ProposalReader = Annotated[
    Principal,
    Depends(
        Authenticator(
            scopes_by_kind={
                "partner": ("intake:read",),
                "company": ("intake:read",),
                "officer": ("intake:read",),
                "auditor": ("intake:read",),
            }
        )
    ),
]
NO_STORE = {"Cache-Control": "no-store"}


async def valid_expert_id(expert_id: uuid.UUID, session: SessionDep, _p: Overseer) -> Expert:
    return await service.get_expert(session, expert_id)


async def locked_expert_id(expert_id: uuid.UUID, session: SessionDep, _p: Officer) -> Expert:
    return await service.get_expert(session, expert_id, for_update=True)


async def valid_engagement_id(engagement_id: uuid.UUID, session: SessionDep, principal: Reader) -> Engagement:
    return await service.get_engagement(session, principal, engagement_id)


async def logged_engagement_id(engagement_id: uuid.UUID, session: SessionDep, principal: ExpertCaller) -> Engagement:
    """The expert's own engagement, its company's and expert's rows locked first (the cap and the capacity)."""
    return await service.engagement_for_session(session, principal, engagement_id)


async def rated_engagement_id(engagement_id: uuid.UUID, session: SessionDep, principal: Applicant) -> Engagement:
    return await service.get_engagement(session, principal, engagement_id, for_update=True)


async def assigned_engagement_id(engagement_id: uuid.UUID, session: SessionDep, principal: Officer) -> Engagement:
    return await service.get_engagement(session, principal, engagement_id, for_update=True)


ValidExpert = Annotated[Expert, Depends(valid_expert_id)]
LockedExpert = Annotated[Expert, Depends(locked_expert_id)]
ValidEngagement = Annotated[Engagement, Depends(valid_engagement_id)]


# ---------------------------------------------------------------- roster


@router.post(
    "/experts",
    response_model=ExpertOut,
    status_code=201,
    summary="Add an accredited expert to the roster",
    description="409 `already-exists` when the fiscal code is already on the roster.",
    dependencies=[officer],
)
async def create_expert(
    body: ExpertIn, session: SessionDep, actor: ActorDep, _idem: Idempotent, response: Response
) -> Any:
    expert = await service.create_expert(session=session, actor=actor, data=body)
    response.headers["ETag"] = etag_of(expert.version)
    response.headers["Location"] = f"/v1/experts/{expert.id}"
    return service.expert_out(expert)


@router.get(
    "/experts",
    response_model=Page[ExpertOut],
    summary="List the roster of experts",
)
async def list_experts(
    _principal: Overseer,
    session: SessionDep,
    page: PageDep,
    phase: Annotated[Phase | None, Query(description="Only experts covering this phase.")] = None,
    market: Annotated[CountryCode | None, Query(description="Only experts knowing this market.")] = None,
    accredited: Annotated[bool, Query(description="Only experts accredited today.")] = False,
) -> Any:
    rows = await service.list_experts(session=session, page=page, phase=phase, market=market, accredited=accredited)
    return page_of(rows, page, service.expert_out)


@router.get(
    "/experts/{expert_id}",
    response_model=ExpertOut,
    summary="Read an expert of the roster",
)
async def get_expert(expert: ValidExpert, response: Response) -> Any:
    response.headers["ETag"] = etag_of(expert.version)
    return service.expert_out(expert)


@router.put(
    "/experts/{expert_id}",
    response_model=ExpertOut,
    summary="Replace an expert's entry",
    description="Needs `If-Match`.",
)
async def replace_expert(
    expert: LockedExpert, body: ExpertIn, request: Request, session: SessionDep, actor: ActorDep, response: Response
) -> Any:
    check_if_match(request, expert.version)
    expert = await service.update_expert(session=session, actor=actor, expert=expert, data=body)
    response.headers["ETag"] = etag_of(expert.version)
    return service.expert_out(expert)


@router.delete(
    "/experts/{expert_id}",
    status_code=204,
    summary="Remove an expert never engaged",
    description="Needs `If-Match`. Its API client is revoked with it. 409 when the expert has engagements: end "
    "its accreditation instead.",
)
async def delete_expert(
    expert: LockedExpert, request: Request, session: SessionDep, actor: ActorDep, background: BackgroundTasks
) -> Response:
    check_if_match(request, expert.version)
    await service.delete_expert(session=session, actor=actor, expert=expert)
    # after the commit: this process re-reads the revoked clients at once (the others within seconds)
    background.add_task(request.app.state.revoked_clients.invalidate)
    return Response(status_code=204, background=background)


@router.post(
    "/experts/{expert_id}/clients",
    response_model=ApiClientWithSecret,
    status_code=201,
    summary="Issue the expert's API client (the secret is shown once)",
    description="Kind `expert`, scope `intake:accompaniment`: the expert confirms or declines its engagements "
    "and logs their sessions, and sees no other. Needs `If-Match` (the expert's ETag). 409 while the expert "
    "holds an active client (revoke it through `/v1/clients/{client_id}/revoke` first). No Idempotency-Key: the "
    "response holds the plain secret.",
)
async def issue_expert_client(
    expert: LockedExpert, request: Request, session: SessionDep, actor: ActorDep, response: Response
) -> Any:
    check_if_match(request, expert.version)
    client, secret = await service.issue_client(session=session, actor=actor, expert=expert)
    response.headers.update(NO_STORE)
    response.headers["ETag"] = etag_of(client.version)
    response.headers["Location"] = f"/v1/clients/{client.client_id}"
    return {**clients.to_out(client), "client_secret": secret}


# ---------------------------------------------------------------- engagements


@router.post(
    "/engagements",
    response_model=EngagementOut,
    status_code=201,
    summary="Request expert accompaniment for a phase of a plan",
    description="For an application of a company within your reach (404 otherwise). The markets are the plan's "
    "target markets and the sector the company's ATECO code. 409 when the call offers no accompaniment. Event "
    "`engagement.requested`.",
)
async def request_accompaniment(
    _principal: Applicant,
    body: EngagementIn,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    g = await service.request(session=session, actor=actor, data=body)
    response.headers["ETag"] = etag_of(g.version)
    response.headers["Location"] = f"/v1/engagements/{g.id}"
    return service.engagement_out(g)


@router.get(
    "/engagements",
    response_model=Page[EngagementOut],
    summary="List engagements",
    description="Partners and companies see those of their companies, an expert those assigned to it, officers, "
    "auditors and services all of them.",
)
async def list_engagements(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    company_id: Annotated[uuid.UUID | None, Query(description="Only this company's.")] = None,
    expert_id: Annotated[uuid.UUID | None, Query(description="Only this expert's.")] = None,
    status: Annotated[EngagementStatus | None, Query(description="Only in this state.")] = None,
) -> Any:
    rows = await service.list_engagements(
        session=session, principal=principal, page=page, company_id=company_id, expert_id=expert_id, status=status
    )
    return page_of(rows, page, service.engagement_out)


@router.get(
    "/engagements/{engagement_id}",
    response_model=EngagementOut,
    summary="Read an engagement",
)
async def get_engagement(g: ValidEngagement, response: Response) -> Any:
    response.headers["ETag"] = etag_of(g.version)
    return service.engagement_out(g)


@router.get(
    "/engagements/{engagement_id}/proposals",
    response_model=ExpertProposals,
    summary="Experts proposed for an engagement, best fit first",
    description="Experts accredited today, covering the phase, with hours left this month, who did not decline "
    "the engagement and have no conflict with the company (a supplier in the application's planned expense "
    "lines, named there by fiscal code or VAT number; the plan's drafting consultant; a declared conflict). Fit "
    "score 0-100: markets covered 40 x share of the plan's markets; sector 25 when one of the expert's ATECO "
    "codes covers the company's; language 15; availability 20 x share of the month's hours left. Ties: more "
    "hours left, then fiscal code.",
)
async def get_proposals(principal: ProposalReader, session: SessionDep, engagement_id: uuid.UUID) -> Any:
    g = await service.get_engagement(session, principal, engagement_id)
    return await service.proposals(session=session, principal=principal, g=g)


@router.post(
    "/engagements/{engagement_id}/assignment",
    response_model=EngagementOut,
    summary="Assign an expert to a requested engagement",
    description="Needs `If-Match`. Refused with 409 naming the `reason`: `conflict` (with `conflicts`), "
    "`over_capacity` (no hours left this month), `not_accredited`, `phase_not_covered`, `declined`, "
    "`not_requested`. Event `engagement.assigned`.",
)
async def assign_expert(
    g: Annotated[Engagement, Depends(assigned_engagement_id)],
    body: AssignmentIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, g.version)
    g = await service.assign(session=session, actor=actor, g=g, data=body)
    response.headers["ETag"] = etag_of(g.version)
    return service.engagement_out(g)


async def _answer(
    principal: Principal, engagement_id: uuid.UUID, request: Request, session: SessionDep, actor: Any, confirm: bool
) -> Engagement:
    g = await service.get_engagement(session, principal, engagement_id, for_update=True)
    check_if_match(request, g.version)
    return await service.answer(session=session, actor=actor, g=g, confirm=confirm)


@router.post(
    "/engagements/{engagement_id}/confirm",
    response_model=EngagementOut,
    summary="The assigned expert confirms the engagement",
    description="Needs `If-Match`. Only the expert assigned (404 for any other). Event `engagement.confirmed`.",
)
async def confirm_engagement(
    principal: ExpertCaller,
    engagement_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    g = await _answer(principal, engagement_id, request, session, actor, True)
    response.headers["ETag"] = etag_of(g.version)
    return service.engagement_out(g)


@router.post(
    "/engagements/{engagement_id}/decline",
    response_model=EngagementOut,
    summary="The assigned expert declines the engagement",
    description="Needs `If-Match`. The engagement returns to `requested`; the expert is not proposed for it again. "
    "Event `engagement.declined`.",
)
async def decline_engagement(
    principal: ExpertCaller,
    engagement_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    g = await _answer(principal, engagement_id, request, session, actor, False)
    response.headers["ETag"] = etag_of(g.version)
    return service.engagement_out(g)


@router.post(
    "/engagements/{engagement_id}/sessions",
    response_model=SessionOut,
    status_code=201,
    summary="Log a session of a confirmed engagement",
    description="Only the engagement's expert (404 for any other). 409 naming the `reason`: `company_cap` (the "
    "call's `accompaniment.max_hours_per_company` over all the company's sessions under the call), "
    "`over_capacity` (the expert's hours in the session's month), `not_confirmed`. Both limits hold whatever the "
    "concurrency. Event `engagement.session_logged`.",
)
async def log_session(
    g: Annotated[Engagement, Depends(logged_engagement_id)],
    body: SessionIn,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    row, g = await service.log_session(session=session, actor=actor, g=g, data=body)
    response.headers["Location"] = f"/v1/engagements/{g.id}/sessions"
    return service.session_out(row)


@router.get(
    "/engagements/{engagement_id}/sessions",
    response_model=Page[SessionOut],
    summary="List an engagement's sessions",
)
async def list_sessions(g: ValidEngagement, session: SessionDep, page: PageDep) -> Any:
    rows = await service.list_sessions(session=session, g=g, page=page)
    return page_of(rows, page, service.session_out)


@router.post(
    "/engagements/{engagement_id}/rating",
    response_model=EngagementOut,
    summary="Rate an engagement (1-5, once)",
    description="By the company or its partner, once the engagement has a session (409 `no_sessions` before; "
    "409 `already-exists` the second time). Event `engagement.rated`.",
)
async def rate_engagement(
    g: Annotated[Engagement, Depends(rated_engagement_id)],
    body: RatingIn,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    g = await service.rate(session=session, actor=actor, g=g, data=body)
    response.headers["ETag"] = etag_of(g.version)
    return service.engagement_out(g)


# ---------------------------------------------------------------- figures


@router.get(
    "/stats/accompaniment",
    response_model=AccompanimentStats,
    summary="Accompaniment figures: load per expert, hours per company, by phase and market",
    description="Load per expert for the current month (Europe/Rome): hours of the sessions held in it against "
    "its availability. Hours per company and call against the call's cap. By phase: engagements, hours and "
    "average rating; by market: an engagement counts, with all its hours, under each of its markets.",
)
async def accompaniment_stats(_principal: Overseer, session: SessionDep) -> Any:
    return await service.stats(session=session)
