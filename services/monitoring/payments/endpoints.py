"""Routes of /v1/payments (reads within reach; paid/failed, re-issue and the treasury export by officers) and of
`POST /v1/projects/{id}/payments` (an officer orders the advance again after a failure, or the balance)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.monitoring.models import Payment, Project
from services.monitoring.payments import repository, service
from services.monitoring.payments.schemas import (
    PaymentFailedIn,
    PaymentKind,
    PaymentOrderIn,
    PaymentOut,
    PaymentStatus,
)
from services.monitoring.peers import IntakeDep
from services.monitoring.projects.endpoints import LockedProject
from shared.auth import Authenticator
from shared.db import SessionDep
from shared.pagination import Page, PageDep, keyset, page_of
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute, check_if_match, etag_of

reader = Depends(Authenticator(scopes=("monitoring:read",)))
officer = Depends(Authenticator(kinds=("officer",), scopes=("monitoring:write",)))

router = APIRouter(prefix="/v1/payments", tags=["payments"], route_class=UnitOfWorkRoute)
project_payments_router = APIRouter(prefix="/v1/projects", tags=["payments"], route_class=UnitOfWorkRoute)


async def valid_payment_id(payment_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> tuple[Payment, Project]:
    return await service.get_readable(session, actor.principal, payment_id)


async def lockable_payment_id(payment_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> tuple[Payment, Project]:
    return await service.get_readable(session, actor.principal, payment_id, for_update=True)


ValidPayment = Annotated[tuple[Payment, Project], Depends(valid_payment_id)]
LockedPayment = Annotated[tuple[Payment, Project], Depends(lockable_payment_id)]


def _out(payment: Payment, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = etag_of(payment.version)
    return service.to_out(payment)


@router.get(
    "",
    response_model=Page[PaymentOut],
    dependencies=[reader],
    summary="List the payments within reach",
    description="Officers and auditors see every payment; a partner or a company those of its projects.",
)
async def list_payments(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    status: Annotated[PaymentStatus | None, Query()] = None,
    project_id: uuid.UUID | None = None,
    kind: Annotated[PaymentKind | None, Query()] = None,
) -> Any:
    stmt = keyset(
        repository.listing(actor.principal, status=status, project_id=project_id, kind=kind),
        page,
        Payment.ordered_at,
        Payment.id,
    )
    return page_of(await repository.rows(session, stmt), page, lambda r: service.to_out(r.Payment))


@router.get(
    "/export.csv",
    dependencies=[officer],
    summary="The treasury file of the payment orders (CSV)",
    description="One row per outgoing order (advance, balance) in the given status, oldest first: "
    "payment_id, kind, beneficiary, vat_number, iban, amount, cup, cor, causale (RFC 4180, "
    "UTF-8). If any order lacks a valid Italian IBAN the whole file is refused with a 409 listing "
    "those orders (`refused`). Recoveries are collected, not paid: they are not in the file.",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The CSV file."},
    },
)
async def export_payments(
    session: SessionDep,
    intake: IntakeDep,
    status: Annotated[PaymentStatus, Query()] = "ordered",
    call_id: uuid.UUID | None = None,
) -> Response:
    body = await service.export_csv(session=session, intake=intake, status=status, call_id=call_id)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="payments-{status}.csv"'},
    )


@router.get(
    "/{payment_id}",
    response_model=PaymentOut,
    dependencies=[reader],
    summary="Read a payment",
)
async def get_payment(payment: ValidPayment, response: Response) -> Any:
    return _out(payment[0], response)


@router.post(
    "/{payment_id}/paid",
    response_model=PaymentOut,
    status_code=200,
    dependencies=[officer],
    summary="Record that the treasury paid the order, or that a recovery was collected (If-Match)",
    description="Only an open order (`ordered`) can be paid; an outgoing order needs a valid IBAN and a "
    "second officer's confirmation (409 `payment-not-confirmed` otherwise).",
)
async def mark_payment_paid(
    payment: LockedPayment,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, payment[0].version)
    paid = await service.mark_paid(session=session, actor=actor, payment=payment[0], project=payment[1])
    return _out(paid, response)


@router.post(
    "/{payment_id}/confirm",
    response_model=PaymentOut,
    status_code=200,
    dependencies=[officer],
    summary="Confirm a payment order (four-eyes: an officer other than whoever ordered it) (If-Match)",
    description="An advance or balance order is paid or exported to the treasury only once a second officer "
    "has confirmed it. Whoever ordered it: 403 `four-eyes-same-officer`; already confirmed: "
    "409 `nothing-to-confirm`. The audit record names both.",
)
async def confirm_payment_order(
    payment: LockedPayment,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, payment[0].version)
    confirmed = await service.confirm_order(session=session, actor=actor, payment=payment[0], project=payment[1])
    return _out(confirmed, response)


@router.post(
    "/{payment_id}/failed",
    response_model=PaymentOut,
    status_code=200,
    dependencies=[officer],
    summary="Record that the order failed; a new one can then be ordered (If-Match)",
)
async def mark_payment_failed(
    body: PaymentFailedIn,
    payment: LockedPayment,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, payment[0].version)
    failed = await service.mark_failed(
        session=session, actor=actor, payment=payment[0], project=payment[1], reason=body.reason
    )
    return _out(failed, response)


@router.post(
    "/{payment_id}/reissue",
    response_model=PaymentOut,
    status_code=200,
    dependencies=[officer],
    summary="Re-issue an open order to the project's current account (If-Match)",
    description="An order keeps the IBAN it was ordered with, whatever later changes of the project's "
    "account; an officer moves an open advance or balance to the current one here. Already "
    "on it: returned unchanged.",
)
async def reissue_payment(
    payment: LockedPayment,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    _idem: Idempotent,
) -> Any:
    check_if_match(request, payment[0].version)
    reissued = await service.reissue(session=session, actor=actor, payment=payment[0], project=payment[1])
    return _out(reissued, response)


@project_payments_router.post(
    "/{project_id}/payments",
    response_model=PaymentOut,
    status_code=201,
    dependencies=[officer],
    summary="Order the project's advance (again, after a failure) or its balance",
    description="Idempotent by construction: at most one order of each kind is live (ordered or paid) per project. "
    "If one is, it is returned unchanged with 200 and nothing new is ordered, so nothing is ever paid "
    "twice; 201 means a new order. The advance is the call's share of the grant, while the project is "
    "active; the balance is final grant - advance, once the outcome is applied.",
    responses={
        200: {"model": PaymentOut, "description": "The live order of that kind, unchanged."},
    },
)
async def order_project_payment(
    body: PaymentOrderIn,
    project: LockedProject,
    session: SessionDep,
    actor: ActorDep,
    intake: IntakeDep,
    response: Response,
    _idem: Idempotent,
) -> Any:
    payment, created = await service.order_requested(
        session=session, actor=actor, intake=intake, project=project, kind=body.kind
    )
    if created:
        response.headers["Location"] = f"/v1/payments/{payment.id}"
    else:
        response.status_code = 200
    return _out(payment, response)
