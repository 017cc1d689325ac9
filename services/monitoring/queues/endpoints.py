"""Officers' work queues in monitoring (/v1/queues): what waits for an officer, oldest first. Each queue is a
list over the domain's own repository query, so an item drops out as soon as it is handled."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.monitoring.claims import repository as claims
from services.monitoring.claims import service as claim_service
from services.monitoring.claims.schemas import ClaimOut
from services.monitoring.models import Claim, Payment
from services.monitoring.payments import repository as payments
from services.monitoring.payments import service as payment_service
from services.monitoring.queues.schemas import PaymentToOrderOut
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import UnitOfWorkRoute

Staff = Annotated[Principal, Depends(Authenticator(kinds=("officer", "auditor"), scopes=("monitoring:read",)))]

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=UnitOfWorkRoute)


@router.get(
    "/claims-to-review",
    response_model=Page[ClaimOut],
    summary="Queue: submitted claims awaiting an officer's review",
    description="The oldest submitted first; a claim leaves the queue when its review is completed.",
)
async def claims_to_review(
    session: SessionDep, page: PageDep, principal: Staff, call_id: uuid.UUID | None = None
) -> Any:
    stmt = keyset(claims.to_review(principal, call_id=call_id), page, Claim.submitted_at, Claim.id)
    return page_of(await claims.all_rows(session, stmt), page, lambda r: claim_service.claim_out(r.Claim))


@router.get(
    "/payments-to-order",
    response_model=Page[PaymentToOrderOut],
    summary="Queue: open payment orders (advance, balance) to confirm or to send to the treasury",
    description="Orders in state `ordered`, the oldest first: those awaiting the second officer's confirmation "
    "(`awaiting_confirmation`) and those ready for the treasury file. An order leaves the queue once paid, "
    "failed or cancelled.",
)
async def payments_to_order(
    session: SessionDep, page: PageDep, principal: Staff, call_id: uuid.UUID | None = None
) -> Any:
    stmt = keyset(
        payments.to_order(principal, call_id=call_id, order_action=payment_service.ORDER),
        page,
        Payment.ordered_at,
        Payment.id,
    )
    rows = await payments.rows(session, stmt)
    return page_of(
        rows,
        page,
        lambda r: {**payment_service.to_out(r.Payment), "awaiting_confirmation": r.awaiting_confirmation},
    )
