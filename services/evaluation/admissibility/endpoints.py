"""Routes of /v1/evaluations: read an evaluation (officers and auditors all, a partner or a company its
own), list them (officers, auditors), review a check that needs one, compute the funding (officers)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.evaluation.admissibility import repository, service
from services.evaluation.admissibility.schemas import (
    AdmissibilityReviewIn,
    AdmissibilityVerdict,
    EvaluationOut,
    FundingIn,
    SignatureDeadlinesOut,
    Stage,
)
from services.evaluation.deminimis import service as deminimis
from services.evaluation.models import Evaluation, ReceivedApplication
from services.evaluation.peers import IntakeDep
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.i18n import pick_language
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"], route_class=UnitOfWorkRoute)
Reader = Annotated[Principal, Depends(Authenticator(scopes=("evaluation:read",)))]
officer = Depends(Authenticator(kinds=("officer",), scopes=("evaluation:write",)))


async def valid_evaluation_id(
    application_id: uuid.UUID, session: SessionDep, principal: Reader
) -> tuple[Evaluation, ReceivedApplication]:
    return await service.get_visible(session, principal, application_id)


async def valid_evaluation_id_for_update(
    application_id: uuid.UUID, session: SessionDep, principal: Reader
) -> tuple[Evaluation, ReceivedApplication]:
    return await service.get_visible(session, principal, application_id, for_update=True)


ValidEvaluation = Annotated[tuple[Evaluation, ReceivedApplication], Depends(valid_evaluation_id)]
LockedEvaluation = Annotated[tuple[Evaluation, ReceivedApplication], Depends(valid_evaluation_id_for_update)]


def _lang(request: Request) -> Any:
    return pick_language(request.headers.get("accept-language"))


@router.get(
    "",
    response_model=Page[EvaluationOut],
    summary="List the evaluations within reach",
    description="Officers, auditors and services see every evaluation; a partner or a company those of its own "
    "applications (shared.access), with the merit score only once the call's ranking is published. Oldest "
    "received first.",
)
async def list_evaluations(
    session: SessionDep,
    page: PageDep,
    request: Request,
    principal: Reader,
    call_id: uuid.UUID | None = None,
    stage: Annotated[Stage | None, Query()] = None,
    admissibility_verdict: Annotated[
        AdmissibilityVerdict | None, Query(description="Only evaluations with this admissibility verdict.")
    ] = None,
) -> Any:
    stmt = keyset(
        repository.listing(principal, call_id=call_id, stage=stage, admissibility_verdict=admissibility_verdict),
        page,
        ReceivedApplication.received_at,
        Evaluation.application_id,
    )
    rows = await repository.rows(session, stmt)
    shown = await service.score_shown(session, principal, {r.Evaluation.call_id for r in rows})
    lang = _lang(request)
    return page_of(
        rows,
        page,
        lambda r: service.to_out(r.Evaluation, r.ReceivedApplication, lang, show_score=r.Evaluation.call_id in shown),
    )


@router.get(
    "/{application_id}",
    response_model=EvaluationOut,
    summary="Read an application's evaluation, every verdict explained",
    description="Admissibility checks with their call articles, the cuts, the eligible total, and once "
    "computed the funding and de minimis computations step by step, in the language of "
    "Accept-Language (it by default; `detail_it`/`detail_en` always). A partner or a company "
    "reads only the evaluations of its own applications (404 otherwise), and their merit score "
    "only once the call's ranking is published.",
)
async def get_evaluation(
    found: ValidEvaluation, request: Request, response: Response, session: SessionDep, principal: Reader
) -> Any:
    evaluation, app = found
    shown = await service.score_shown(session, principal, {evaluation.call_id})
    response.headers["ETag"] = etag_of(evaluation.version)
    return service.to_out(evaluation, app, _lang(request), show_score=evaluation.call_id in shown)


@router.post(
    "/{application_id}/admissibility-reviews",
    response_model=EvaluationOut,
    summary="Settle an admissibility check that needs an officer's review",
    dependencies=[officer],
    description="The check must be `needs_review`; the verdict is recomputed: every check passes -> "
    "admissible, any fails -> not_admissible. Needs If-Match with the evaluation's ETag.",
)
async def review_admissibility_check(
    found: LockedEvaluation,
    body: AdmissibilityReviewIn,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
) -> Any:
    evaluation, app = found
    check_if_match(request, evaluation.version)
    evaluation = await service.review_check(
        session=session,
        actor=actor,
        evaluation=evaluation,
        app=app,
        check_code=body.check_code,
        outcome=body.outcome,
        note=body.note,
        path=body.path,
    )
    response.headers["ETag"] = etag_of(evaluation.version)
    return service.to_out(evaluation, app, _lang(request))


@router.post(
    "/{application_id}/funding",
    response_model=EvaluationOut,
    summary="Compute grant, loan and its gross grant equivalent under the de minimis ceiling",
    dependencies=[officer],
    description="For an admissible application that passed the merit evaluation and has a credit-scoring "
    "class: the call's grant and loan on the eligible total after the cuts, the loan's "
    "repayment plan and gross grant equivalent (EU reference rate method), then the de minimis "
    "ceiling over the single undertaking's aid in the rolling period: the aid is reduced, or "
    "refused (stage not_admissible, reason de_minimis_ceiling). Every step is in the response. "
    "Needs If-Match.",
)
async def compute_funding(
    found: LockedEvaluation,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    _idem: Idempotent,
    response: Response,
    body: FundingIn | None = None,
) -> Any:
    evaluation, app = found
    check_if_match(request, evaluation.version)
    evaluation = await deminimis.compute_funding(
        session=session,
        actor=actor,
        intake=intake,
        evaluation=evaluation,
        app=app,
        loan_years=body.loan_years if body else None,
    )
    response.headers["ETag"] = etag_of(evaluation.version)
    return service.to_out(evaluation, app, _lang(request))


calls_router = APIRouter(prefix="/v1/calls", tags=["evaluations"], route_class=UnitOfWorkRoute)


@calls_router.post(
    "/{call_id}/signature-deadlines",
    response_model=SignatureDeadlinesOut,
    status_code=200,
    dependencies=[officer],
    summary="Settle the evaluations awaiting a signed form whose deadline has passed",
    description="For a call whose admissibility waits for the form signed by the legal representative "
    "(`formalities.signed_form_required`): every evaluation still `awaiting_signature` whose "
    "`formalities.signature_days` after submission have passed without a signature is evaluated, and is "
    "not admissible (the failed check `signed_form_missing`); one whose signed form was accepted meanwhile "
    "is evaluated as usual. The others keep waiting. Running it again settles only what is new.",
)
async def settle_signature_deadlines(
    call_id: uuid.UUID, session: SessionDep, actor: ActorDep, intake: IntakeDep, _idem: Idempotent
) -> Any:
    return await service.settle_signature_deadlines(session=session, actor=actor, intake=intake, call_id=call_id)
