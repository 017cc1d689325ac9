"""Officers' work queues in evaluation (/v1/queues): what waits for an officer, oldest first. Each queue is a
list over the domain's own repository query, so an item drops out as soon as it is handled."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.evaluation.admissibility import repository as evaluations
from services.evaluation.admissibility import service as evaluation_service
from services.evaluation.admissibility.schemas import EvaluationOut
from services.evaluation.decisions import repository as decisions
from services.evaluation.decisions import service as decision_service
from services.evaluation.decisions.schemas import DecisionOut
from services.evaluation.models import Decision, Evaluation, ReceivedApplication
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.i18n import pick_language
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import UnitOfWorkRoute

Staff = Annotated[Principal, Depends(Authenticator(kinds=("officer", "auditor"), scopes=("evaluation:read",)))]

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=UnitOfWorkRoute)


@router.get(
    "/admissibility-reviews",
    response_model=Page[EvaluationOut],
    summary="Queue: evaluations with a check awaiting an officer's review",
    description="Stage `needs_review`, the oldest received first; settle each with "
    "`POST /v1/evaluations/{application_id}/admissibility-reviews`.",
)
async def admissibility_reviews(
    session: SessionDep, page: PageDep, request: Request, principal: Staff, call_id: uuid.UUID | None = None
) -> Any:
    stmt = keyset(
        evaluations.awaiting_review(principal, call_id=call_id),
        page,
        ReceivedApplication.received_at,
        Evaluation.application_id,
    )
    rows = await evaluations.rows(session, stmt)
    lang = pick_language(request.headers.get("accept-language"))
    return page_of(rows, page, lambda r: evaluation_service.to_out(r.Evaluation, r.ReceivedApplication, lang))


@router.get(
    "/decisions-awaiting-acceptance",
    response_model=Page[DecisionOut],
    summary="Queue: issued funding decisions the company has not answered yet",
    description="Issued, funded or partially funded, neither accepted nor renounced, and not superseded by a "
    "later decision on the same application; the oldest first.",
)
async def decisions_awaiting_acceptance(
    session: SessionDep, page: PageDep, principal: Staff, call_id: uuid.UUID | None = None
) -> Any:
    stmt = keyset(decisions.awaiting_acceptance(principal, call_id=call_id), page, Decision.created_at, Decision.id)
    rows = await decisions.rows(session, stmt)
    return page_of(rows, page, lambda r: decision_service.decision_out(r.Decision, r.Decree))
