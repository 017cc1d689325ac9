"""Routes of the reporting: /v1/projects/{id}/claims, /v1/claims/... and /v1/evidence/{id}.

The company (or its partner) files claims, lines and evidence, and submits; officers review. Every claim change
needs `If-Match` with the claim's ETag (the lines and their review are part of the claim).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile

from services.monitoring.claims import repository, service
from services.monitoring.claims.schemas import (
    ClaimCreate,
    ClaimDetail,
    ClaimKind,
    ClaimOut,
    ClaimStatus,
    EvidenceOut,
    LineCreate,
    LineOut,
    LineReview,
    OverrideIn,
)
from services.monitoring.models import Claim, ClaimLine, EvidenceFile, Project
from services.monitoring.peers import IntakeDep
from services.monitoring.storage import StorageDep
from shared.auth import Authenticator, Principal, current_principal
from shared.clients.evaluation import EvaluationClient
from shared.db import SessionDep
from shared.four_eyes import ProposalOut, proposal_out
from shared.i18n import Lang, pick_language
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, etag_of

reader = Depends(Authenticator(scopes=("monitoring:read",)))
beneficiary = Depends(Authenticator(kinds=("partner", "company"), scopes=("monitoring:write",)))
officer = Depends(Authenticator(kinds=("officer",), scopes=("monitoring:write",)))

projects_router = APIRouter(prefix="/v1/projects", tags=["claims"], route_class=UnitOfWorkRoute)
router = APIRouter(prefix="/v1/claims", tags=["claims"], route_class=UnitOfWorkRoute)
evidence_router = APIRouter(prefix="/v1/evidence", tags=["claims"], route_class=UnitOfWorkRoute)

#: the upload route takes bodies up to the evidence limit (plus the multipart envelope), not the JSON limit.
EVIDENCE_PATH = r"^/v1/claims/[^/]+/lines/[^/]+/evidence$"
MULTIPART_OVERHEAD = 64 * 1024


async def valid_project_id(project_id: uuid.UUID, request: Request, session: SessionDep) -> Project:
    return await service.get_project(session, current_principal(request), project_id)


async def valid_claim_id(claim_id: uuid.UUID, request: Request, session: SessionDep) -> tuple[Claim, Project]:
    return await service.get_claim(session, current_principal(request), claim_id)


ValidProject = Annotated[Project, Depends(valid_project_id)]
ValidClaim = Annotated[tuple[Claim, Project], Depends(valid_claim_id)]


async def valid_line_id(line_id: uuid.UUID, found: ValidClaim, session: SessionDep) -> ClaimLine:
    return await service.get_line(session, found[0], line_id)


ValidLine = Annotated[ClaimLine, Depends(valid_line_id)]


def _if_match(request: Request) -> str | None:
    return request.headers.get("if-match")


def _lang(request: Request) -> Lang:
    return pick_language(request.headers.get("accept-language"))


async def _detail(session: Any, claim: Claim, request: Request, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = etag_of(claim.version)
    return await service.claim_detail(session, claim, _lang(request))


# ---------------------------------------------------------------- claims of a project


@projects_router.post(
    "/{project_id}/claims",
    response_model=ClaimDetail,
    status_code=201,
    summary="Open an expense claim (rendicontazione), intermediate or final",
    description="One draft claim per project at a time; none on a revoked or completed project "
    "(409), nor after the final claim.",
    dependencies=[beneficiary],
)
async def create_claim(
    project: ValidProject,
    body: ClaimCreate,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
    request: Request,
) -> Any:
    claim = await service.create_claim(session=session, actor=actor, project=project, kind=body.kind)
    response.headers["Location"] = f"/v1/claims/{claim.id}"
    return await _detail(session, claim, request, response)


@projects_router.get(
    "/{project_id}/claims",
    response_model=Page[ClaimOut],
    summary="List a project's claims",
    dependencies=[reader],
)
async def list_claims(project: ValidProject, session: SessionDep, page: PageDep) -> Any:
    rows = await repository.rows(session, keyset(repository.claims_of(project.id), page, Claim.created_at, Claim.id))
    return page_of(rows, page, service.claim_out)


# ---------------------------------------------------------------- one claim and its lines


@router.get(
    "",
    response_model=Page[ClaimOut],
    summary="List the claims within reach, across projects",
    description="Officers, auditors and services see every claim; a partner or a company those of its "
    "projects (shared.access). Oldest first.",
)
async def list_all_claims(
    session: SessionDep,
    page: PageDep,
    principal: Annotated[Principal, Depends(Authenticator(scopes=("monitoring:read",)))],
    project_id: uuid.UUID | None = None,
    status: Annotated[ClaimStatus | None, Query(description="Only claims in this state.")] = None,
    kind: Annotated[ClaimKind | None, Query(description="Only intermediate or final claims.")] = None,
) -> Any:
    stmt = keyset(
        repository.listing(principal, project_id=project_id, status=status, kind=kind), page, Claim.created_at, Claim.id
    )
    return page_of(await repository.all_rows(session, stmt), page, lambda r: service.claim_out(r.Claim))


@router.get(
    "/{claim_id}",
    response_model=ClaimDetail,
    summary="Read a claim with its lines, checks and evidence",
    dependencies=[reader],
)
async def get_claim(found: ValidClaim, request: Request, session: SessionDep, response: Response) -> Any:
    return await _detail(session, found[0], request, response)


@router.post(
    "/{claim_id}/lines",
    response_model=LineOut,
    status_code=201,
    summary="Add an invoice or payslip to a draft claim",
    description="Needs `If-Match` with the claim's ETag; the new ETag is returned. The same invoice "
    "(supplier, number, date) can be claimed once across all projects and calls: 409 "
    "`invoice-already-claimed` otherwise.",
    dependencies=[beneficiary],
)
async def add_claim_line(
    found: ValidClaim,
    body: LineCreate,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    claim, project = found
    claim, line = await service.add_line(
        session=session, actor=actor, claim=claim, project=project, if_match=_if_match(request), data=body.model_dump()
    )
    response.headers["ETag"] = etag_of(claim.version)
    response.headers["Location"] = f"/v1/claims/{claim.id}"
    return service.line_out(line, [], _lang(request))


@router.delete(
    "/{claim_id}/lines/{line_id}",
    status_code=204,
    summary="Remove a line (and its evidence) from a draft claim",
    dependencies=[beneficiary],
)
async def delete_claim_line(
    found: ValidClaim, line: ValidLine, request: Request, session: SessionDep, actor: ActorDep
) -> Response:
    claim = await service.delete_line(
        session=session, actor=actor, claim=found[0], line=line, if_match=_if_match(request)
    )
    return Response(status_code=204, headers={"ETag": etag_of(claim.version)})


@router.post(
    "/{claim_id}/lines/{line_id}/evidence",
    response_model=EvidenceOut,
    status_code=201,
    summary="Attach an evidence file to a line (PDF, PNG, JPEG or FatturaPA XML)",
    description="Multipart upload (field `file`). The type is recognised from the content; a file that "
    "is not what its Content-Type or extension says is refused (422 `evidence-type-mismatch`), "
    "another type or a signed .p7m gets 415, a file over the size limit 413. A FatturaPA "
    "invoice is read (supplier, number, date, taxable amount, CUP) and compared with the line "
    "when the claim is submitted. The SHA-256 of the file is recorded.",
    dependencies=[beneficiary],
)
async def upload_evidence(
    found: ValidClaim,
    line: ValidLine,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    storage: StorageDep,
    _idem: Idempotent,
    file: Annotated[UploadFile, File(description="The evidence file.")],
) -> Any:
    claim, project = found
    limit = request.app.state.settings.evidence_max_bytes
    data = await file.read(limit + 1)
    e = await service.upload_evidence(
        session=session,
        actor=actor,
        storage=storage,
        claim=claim,
        project=project,
        line=line,
        filename=file.filename,
        content_type=file.content_type,
        data=data,
        max_bytes=limit,
        if_match=_if_match(request),
    )
    return service.evidence_out(e)


@router.post(
    "/{claim_id}/submit",
    response_model=ClaimDetail,
    summary="Submit a claim: the automatic checks run",
    description="Needs `If-Match`. At least one line must have evidence. Every check is stored on its "
    "line (code, pass/fail/needs_review, message); totals are computed.",
    dependencies=[beneficiary],
)
async def submit_claim(
    found: ValidClaim,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    claim, project = found
    claim = await service.submit_claim(
        session=session, actor=actor, intake=intake, claim=claim, project=project, if_match=_if_match(request)
    )
    return await _detail(session, claim, request, response)


@router.put(
    "/{claim_id}/lines/{line_id}/review",
    response_model=LineOut,
    summary="Review one line (officer)",
    description="recognised (in full), partially (with the amount) or rejected; a line with a failed "
    "blocking check can only be rejected. Needs `If-Match` with the claim's ETag.",
    dependencies=[officer],
)
async def review_claim_line(
    found: ValidClaim,
    line: ValidLine,
    body: LineReview,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
) -> Any:
    claim, line = await service.review_line(
        session=session,
        actor=actor,
        claim=found[0],
        line=line,
        outcome=body.outcome,
        amount=body.recognised_amount,
        note=body.note,
        if_match=_if_match(request),
    )
    response.headers["ETag"] = etag_of(claim.version)
    files = await repository.evidence_of(session, [line.id])
    return service.line_out(line, files, _lang(request))


@router.post(
    "/{claim_id}/review/complete",
    response_model=ClaimDetail,
    summary="Complete the review: the recognised total (officer)",
    description="Every line must be reviewed. The recognised total is the direct costs recognised (cut "
    "to the approved budget plus the call's tolerance, the call's caps applied) plus the flat "
    "rates recomputed on them. A final claim then decides the project's outcome.",
    dependencies=[officer],
)
async def complete_claim_review(
    found: ValidClaim,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    claim, project = found
    # only a final claim needs evaluation (a reduction or revocation gives budget back)
    evaluation: EvaluationClient | None = getattr(request.app.state, "evaluation_client", None)
    claim = await service.complete_review(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        claim=claim,
        project=project,
        if_match=_if_match(request),
    )
    return await _detail(session, claim, request, response)


@router.post(
    "/{claim_id}/outcome-override",
    response_model=ProposalOut,
    status_code=202,
    dependencies=[officer],
    summary="Propose to override the computed recognised total (four-eyes: a second officer confirms)",
    description="For a submitted claim whose lines are all reviewed, an officer proposes a recognised total "
    "different from the one the call's rules compute, with a written reason (at least 10 "
    "characters). Nothing changes until a second, different officer confirms it (`POST "
    "/v1/claims/{id}/outcome-override/confirm`). Requires If-Match. More than the claimed total, "
    "or the computed total itself: 422; proposed already: 409 `confirmation-pending` (a "
    "different amount or reason supersedes it). Completing the review without the override "
    "supersedes an open proposal.",
)
async def propose_outcome_override(
    found: ValidClaim,
    body: OverrideIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    claim, project = found
    proposal = await service.propose_override(
        session=session,
        actor=actor,
        intake=intake,
        claim=claim,
        project=project,
        recognised_total=body.recognised_total,
        reason=body.reason,
        if_match=_if_match(request),
    )
    response.headers["ETag"] = etag_of(claim.version)
    return proposal_out(proposal, f"/v1/claims/{claim.id}/outcome-override/confirm")


@router.post(
    "/{claim_id}/outcome-override/confirm",
    response_model=ClaimDetail,
    dependencies=[officer],
    summary="Confirm a proposed override (a second, different officer): the review completes with it",
    description="The claim's recognised total becomes the proposed one; the review records the computed "
    "total, the reason and both officers. A final claim then decides the project's outcome "
    "from the other claims' recognised total plus this one. Requires If-Match. The proposer: "
    "403 `four-eyes-same-officer`; nothing proposed: 409 `nothing-to-confirm`; the claim "
    "changed since the proposal: 409.",
)
async def confirm_outcome_override(
    found: ValidClaim,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    claim, project = found
    evaluation: EvaluationClient | None = getattr(request.app.state, "evaluation_client", None)
    claim = await service.confirm_override(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        claim=claim,
        project=project,
        if_match=_if_match(request),
    )
    return await _detail(session, claim, request, response)


# ---------------------------------------------------------------- evidence download


async def valid_evidence_id(evidence_id: uuid.UUID, request: Request, session: SessionDep) -> EvidenceFile:
    return await service.get_evidence(session, current_principal(request), evidence_id)


@evidence_router.get(
    "/{evidence_id}",
    summary="Download an evidence file",
    dependencies=[reader],
    response_class=Response,
    responses={
        200: {
            "description": "The file, as uploaded.",
            "content": {"application/pdf": {}, "image/png": {}, "image/jpeg": {}, "application/xml": {}},
        },
    },
)
async def download_evidence(e: Annotated[EvidenceFile, Depends(valid_evidence_id)], storage: StorageDep) -> Response:
    data = await service.read_evidence(storage, e)
    return Response(
        data,
        media_type=e.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(e.filename)}",
            "ETag": f'"{e.sha256}"',
            "X-Content-Type-Options": "nosniff",
            "Digest": f"sha-256={e.sha256}",
        },
    )
