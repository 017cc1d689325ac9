"""Routes of merit evaluation: reviewers' conflict declarations (`/v1/reviewers/me/conflicts`), assignments
(`/v1/evaluations/{application_id}/assignments`, `/v1/assignments`), reviews, the merit view and the
credit-scoring class. Officers only (auditors may read the merit view); a reviewer sees only their own
assignments: another's answers 404."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from services.evaluation.merit import repository, service
from services.evaluation.merit.schemas import (
    AssignmentApplication,
    AssignmentCreate,
    AssignmentOut,
    AssignmentStatus,
    ConflictCreate,
    ConflictCreated,
    ConflictOut,
    CreditClassIn,
    CreditClassOut,
    Declaration,
    MeritOut,
    ReviewIn,
)
from services.evaluation.models import ConflictDeclaration, Evaluation, ReviewAssignment
from services.evaluation.peers import IntakeDep
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

router = APIRouter(tags=["merit"], route_class=UnitOfWorkRoute)

officer_auth = Authenticator(kinds=("officer",), scopes=("evaluation:write",))
Reviewer = Annotated[Principal, Depends(officer_auth)]
"""A reviewer is an officer; their identity is the principal's client id."""
officer = Depends(officer_auth)
reader = Depends(Authenticator(kinds=("officer", "auditor"), scopes=("evaluation:read",)))


async def valid_assignment_id(assignment_id: uuid.UUID, session: SessionDep, reviewer: Reviewer) -> ReviewAssignment:
    """The caller's own assignment (another reviewer's answers 404)."""
    return await service.get_own_assignment(session, reviewer, assignment_id)


async def valid_assignment_id_for_update(
    assignment_id: uuid.UUID, session: SessionDep, reviewer: Reviewer
) -> ReviewAssignment:
    """The caller's own assignment, locked for the change (If-Match is checked against the locked row)."""
    return await service.get_own_assignment(session, reviewer, assignment_id, for_update=True)


ValidAssignment = Annotated[ReviewAssignment, Depends(valid_assignment_id)]
LockedAssignment = Annotated[ReviewAssignment, Depends(valid_assignment_id_for_update)]


async def valid_evaluation_for_update(application_id: uuid.UUID, session: SessionDep) -> Evaluation:
    return await service.get_evaluation(session, application_id, for_update=True)


LockedEvaluation = Annotated[Evaluation, Depends(valid_evaluation_for_update)]


# ---------------------------------------------------------------- conflicts of interest


@router.post(
    "/v1/reviewers/me/conflicts",
    response_model=ConflictCreated,
    status_code=201,
    summary="Declare a conflict of interest with a company",
    description="The calling reviewer (an officer) declares a conflict of interest with a company: from now "
    "on they cannot be assigned to its applications, and their open assignments on them are "
    "cancelled. A reviewer declares only for themself.",
)
async def declare_conflict(
    body: ConflictCreate,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _reviewer: Reviewer,
    _idem: Idempotent,
    response: Response,
) -> Any:
    out = await service.declare_conflict(
        session=session, actor=actor, intake=intake, company_id=body.company_id, statement=body.statement
    )
    response.headers["Location"] = "/v1/reviewers/me/conflicts"
    return out


@router.get(
    "/v1/reviewers/me/conflicts",
    response_model=Page[ConflictOut],
    summary="List my declarations (conflicts, and no-conflict declarations on assignments)",
)
async def list_my_conflicts(
    session: SessionDep,
    page: PageDep,
    reviewer: Reviewer,
    conflict: Annotated[
        bool | None, Query(description="Only conflicts (true) or only no-conflict declarations (false).")
    ] = None,
) -> Any:
    stmt = repository.conflicts_listing(reviewer.client_id)
    if conflict is not None:
        stmt = stmt.where(ConflictDeclaration.conflict.is_(conflict))
    rows = await repository.rows(session, keyset(stmt, page, ConflictDeclaration.declared_at, ConflictDeclaration.id))
    return page_of(rows, page, lambda r: service.conflict_out(r.ConflictDeclaration))


# ---------------------------------------------------------------- assignments


@router.post(
    "/v1/evaluations/{application_id}/assignments",
    response_model=AssignmentOut,
    status_code=201,
    summary="Assign a reviewer to an admissible application",
    description="Refused with 409 when the reviewer declared a conflict of interest with the applicant "
    "company (`/problems/conflict-of-interest`), when the application is not admissible, when "
    "the reviewer is already assigned to it, or when two reviewers are already assigned and "
    "their reviews do not diverge (a third only after a divergence). The problem's `reason` "
    "says which.",
    dependencies=[officer],
)
async def assign_reviewer(
    application_id: uuid.UUID,
    body: AssignmentCreate,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    row, app = await service.assign_reviewer(
        session=session, actor=actor, application_id=application_id, reviewer=body.reviewer
    )
    response.headers["ETag"] = etag_of(row.version)
    response.headers["Location"] = f"/v1/assignments/{row.id}"
    return service.assignment_out(row, app)


@router.get(
    "/v1/assignments",
    response_model=Page[AssignmentOut],
    summary="List my review assignments",
)
async def list_assignments(
    session: SessionDep,
    page: PageDep,
    reviewer: Reviewer,
    reviewer_filter: Annotated[
        Literal["me"], Query(alias="reviewer", description="Only `me`: a reviewer sees only their own.")
    ],
    status: AssignmentStatus | None = None,
) -> Any:
    stmt = keyset(
        repository.assignments_listing(reviewer.client_id, status=status),
        page,
        ReviewAssignment.created_at,
        ReviewAssignment.id,
    )
    rows = await repository.rows(session, stmt)
    return page_of(rows, page, lambda r: service.assignment_out(r.ReviewAssignment, r))


@router.get(
    "/v1/assignments/{assignment_id}",
    response_model=AssignmentOut,
    summary="Read one of my assignments",
)
async def get_assignment(assignment: ValidAssignment, session: SessionDep, response: Response) -> Any:
    app = await service.get_application(session, assignment.application_id)
    response.headers["ETag"] = etag_of(assignment.version)
    return service.assignment_out(assignment, app)


@router.post(
    "/v1/assignments/{assignment_id}/declaration",
    response_model=AssignmentOut,
    status_code=200,
    summary="Declare no conflict of interest (or a conflict) for the assigned application",
    description="Only the assignee, with If-Match. `no_conflict: true` lets them read and score the "
    "application; `false` cancels the assignment and records the conflict with the company.",
)
async def declare(
    assignment: LockedAssignment,
    body: Declaration,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, assignment.version)
    app = await service.declare(
        session=session, actor=actor, assignment=assignment, no_conflict=body.no_conflict, statement=body.statement
    )
    response.headers["ETag"] = etag_of(assignment.version)
    return service.assignment_out(assignment, app)


@router.get(
    "/v1/assignments/{assignment_id}/application",
    response_model=AssignmentApplication,
    summary="Read the assigned application to score it",
    description="403 `/problems/declaration-required` until the reviewer has declared no conflict of interest for it.",
)
async def get_assigned_application(assignment: ValidAssignment, session: SessionDep) -> Any:
    return await service.application_for_review(session=session, assignment=assignment)


@router.put(
    "/v1/assignments/{assignment_id}/review",
    response_model=AssignmentOut,
    summary="Save my scores (every criterion of the call's grid, with comments)",
    description="Only the assignee, with If-Match, until the review is submitted (then 409). Scores outside "
    "the grid, unknown or missing criteria answer 422 with one error per criterion at "
    "`/scores/<code>/points`.",
)
async def save_review(
    assignment: LockedAssignment,
    body: ReviewIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    response: Response,
) -> Any:
    check_if_match(request, assignment.version)
    scores = {code: s.model_dump() for code, s in body.scores.items()}
    app = await service.save_review(session=session, actor=actor, intake=intake, assignment=assignment, scores=scores)
    response.headers["ETag"] = etag_of(assignment.version)
    return service.assignment_out(assignment, app)


@router.post(
    "/v1/assignments/{assignment_id}/review/submit",
    response_model=AssignmentOut,
    status_code=200,
    summary="Submit my review: the scores are frozen",
    description="With the second review (or the third, after a divergence) the consensus score and the "
    "merit verdict are stored on the evaluation; a final verdict emits "
    "`evaluation.merit_completed`.",
)
async def submit_review(
    assignment: LockedAssignment,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    check_if_match(request, assignment.version)
    app = await service.submit_review(session=session, actor=actor, intake=intake, assignment=assignment)
    response.headers["ETag"] = etag_of(assignment.version)
    return service.assignment_out(assignment, app)


# ---------------------------------------------------------------- merit view and credit class


@router.get(
    "/v1/evaluations/{application_id}/merit",
    response_model=MeritOut,
    summary="Read the merit evaluation of an application",
    description="Reviewers and their progress; totals and the consensus only once the verdict is final.",
    dependencies=[reader],
)
async def get_merit(application_id: uuid.UUID, session: SessionDep, intake: IntakeDep, response: Response) -> Any:
    out = await service.merit_of(session=session, intake=intake, application_id=application_id)
    response.headers["ETag"] = out["etag"]
    return out


@router.put(
    "/v1/evaluations/{application_id}/credit-class",
    response_model=CreditClassOut,
    summary="Set the credit-scoring class of an application",
    description="One of the call's `credit_scoring.classes` (unknown: 422). A class whose `loan_cap_share` "
    "is 0 is accepted and flagged `loan_excluded`. If-Match: the evaluation's ETag.",
    dependencies=[officer],
)
async def set_credit_class(
    evaluation: LockedEvaluation,
    body: CreditClassIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    response: Response,
) -> Any:
    check_if_match(request, evaluation.version)
    out = await service.set_credit_class(
        session=session, actor=actor, intake=intake, evaluation=evaluation, class_code=body.class_code
    )
    response.headers["ETag"] = out["etag"]
    return out
