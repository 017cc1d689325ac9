"""Use cases of payments: order (at most one live advance, balance and recovery per project: the partial unique
index decides), mark paid or failed, cancel on revocation, re-issue to the project's current account, and the
treasury's CSV export.

An order keeps the account (IBAN) it was ordered with: a change of the project's IBAN does not move it; only an
officer's re-issue does.

Nothing is ever paid twice: an order is created only when no order of its kind is ordered or paid for the
project; ordering again returns the live one (200) and a new order is possible only after a failure.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.inbox import facts
from services.monitoring.models import Payment, Project
from services.monitoring.payments import repository
from services.monitoring.peers import call_detail, fetch_company
from services.monitoring.projects.schemas import iban_problem
from shared import four_eyes
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.clients.intake import IntakeClient
from shared.domain.money import ZERO
from shared.domain.reporting import advance_amount
from shared.errors import PAYMENT_NOT_CONFIRMED, Conflict, DeskError, Localized, NotFound
from shared.i18n import validation_message
from shared.routing import Actor, etag_of

OUTGOING = ("advance", "balance")
KIND_IT = {"advance": "anticipo", "balance": "saldo", "recovery": "recupero"}
EXPORT_COLUMNS = ("payment_id", "kind", "beneficiary", "vat_number", "iban", "amount", "cup", "cor", "causale")


def to_out(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "project_id": p.project_id,
        "kind": p.kind,
        "amount": p.amount,
        "iban": p.iban,
        "status": p.status,
        "ordered_at": p.ordered_at,
        "paid_at": p.paid_at,
        "failed_reason": p.failed_reason,
        "created_by": p.created_by,
        "etag": etag_of(p.version),
    }


def _audit_view(p: Payment) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "amount": p.amount,
        "iban": p.iban,
        "status": p.status,
        "failed_reason": p.failed_reason,
        "version": p.version,
    }


async def _emit(session: AsyncSession, actor: Actor, event_type: str, project: Project, p: Payment) -> None:
    await record_event(
        session,
        actor,
        event_type=event_type,
        subject_type="payment",
        subject_id=p.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "payment_id": p.id,
            "project_id": project.id,
            "application_id": project.application_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "kind": p.kind,
            "status": p.status,
            "amount": p.amount,
            "cup": project.cup,
            "reason": p.failed_reason,
        },
    )


async def order_payment(
    *, session: AsyncSession, actor: Actor, project: Project, kind: str, amount: Decimal
) -> tuple[Payment, bool]:
    """Order `amount` of `kind` for the project, unless a live order of that kind exists: then that one is
    returned, unchanged (created False)."""
    if amount <= 0:
        raise ValueError("a payment order needs a positive amount")
    payment = await repository.insert_live(
        session,
        {
            "id": uuid.uuid4(),
            "project_id": project.id,
            "kind": kind,
            "amount": amount,
            "iban": project.iban if kind in OUTGOING else None,
            "status": "ordered",
            "version": 1,
            "created_by": actor.principal.client_id,
        },
    )
    if payment is None:
        existing = await repository.live(session, project.id, kind)
        assert existing is not None  # the index refused the insert because of it
        return existing, False
    await record_audit(
        session,
        actor,
        action="payment.ordered",
        resource_type="payment",
        resource_id=payment.id,
        after={**_audit_view(payment), "project_id": project.id},
    )
    if kind in OUTGOING:
        # four-eyes: whoever ordered it (an officer, or the desk on a decision or an outcome), another officer
        # confirms before it is paid or exported
        await four_eyes.propose(
            session,
            actor,
            action=ORDER,
            resource_type="payment",
            resource_id=payment.id,
            detail={"kind": kind, "amount": str(amount), "iban": payment.iban},
        )
    await _emit(session, actor, "payment.ordered", project, payment)
    return payment, True


async def live_advance(session: AsyncSession, project: Project) -> Decimal:
    """The advance ordered or paid (0 if none is live): what the balance takes off the final grant."""
    advance = await repository.live(session, project.id, "advance")
    return advance.amount if advance is not None else ZERO


async def order_requested(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, project: Project, kind: str
) -> tuple[Payment, bool]:
    """An officer orders the advance (again, after a failure) or the balance."""
    if project.status == "revoked":
        raise Conflict("Il progetto è revocato: nessun pagamento.", "The project is revoked: no payment.")
    if kind == "advance":
        if project.status != "active":
            raise Conflict(
                "L'anticipo si ordina solo su un progetto in corso.",
                "The advance is ordered only while the project is active.",
                extra={"project_status": project.status},
            )
        existing = await repository.live(session, project.id, "advance")
        if existing is not None:
            return existing, False
        rules = (await call_detail(intake, project.call_id)).rules
        amount = advance_amount(project.grant, rules.reporting.advance_percent)
    else:
        if project.status != "completed" or project.final_grant is None:
            raise Conflict(
                "Il saldo si ordina dopo l'esito della rendicontazione finale.",
                "The balance is ordered once the final claim's outcome is applied.",
                extra={"project_status": project.status},
            )
        existing = await repository.live(session, project.id, "balance")
        if existing is not None:
            return existing, False
        amount = project.final_grant - await live_advance(session, project)
    if amount <= 0:
        raise Conflict("Nessun importo da pagare.", "Nothing is due.", extra={"amount": str(amount)})
    return await order_payment(session=session, actor=actor, project=project, kind=kind, amount=amount)


async def get_readable(
    session: AsyncSession, principal: Principal, payment_id: uuid.UUID, *, for_update: bool = False
) -> tuple[Payment, Project]:
    row = await repository.get(session, payment_id, principal, for_update=for_update)
    if row is None:
        raise NotFound()
    return row.Payment, row.Project


def _require_ordered(p: Payment) -> None:
    if p.status != "ordered":
        raise Conflict(
            f"Il pagamento è {p.status}: solo un ordine aperto cambia stato.",
            f"The payment is {p.status}: only an open order changes state.",
            extra={"payment_status": p.status},
        )


ORDER = "payment.order"


async def _require_confirmed(session: AsyncSession, p: Payment) -> None:
    if p.kind in OUTGOING and await four_eyes.open_proposal(session, action=ORDER, resource_id=p.id) is not None:
        raise DeskError(
            "L'ordine di pagamento attende la conferma di un secondo funzionario.",
            "The payment order awaits a second officer's confirmation.",
            kind=PAYMENT_NOT_CONFIRMED,
            extra={"confirm": f"/v1/payments/{p.id}/confirm"},
        )


async def confirm_order(*, session: AsyncSession, actor: Actor, payment: Payment, project: Project) -> Payment:
    """A second officer (not whoever ordered it) confirms an open payment order: it may then be paid and
    exported. The audit record names both."""
    _require_ordered(payment)
    proposal = await four_eyes.confirm(session, actor, action=ORDER, resource_id=payment.id)
    await record_audit(
        session,
        actor,
        action="payment.order_confirmed",
        resource_type="payment",
        resource_id=payment.id,
        after={**_audit_view(payment), "project_id": project.id, **four_eyes.officers(proposal)},
    )
    return payment


async def mark_paid(*, session: AsyncSession, actor: Actor, payment: Payment, project: Project) -> Payment:
    """The treasury paid the order (or, for a recovery, the company paid back)."""
    _require_ordered(payment)
    await _require_confirmed(session, payment)
    if payment.kind in OUTGOING and (payment.iban is None or iban_problem(payment.iban) is not None):
        raise Conflict(
            "Manca un IBAN valido per il pagamento.", "The payment has no valid IBAN.", extra={"iban": payment.iban}
        )
    before = _audit_view(payment)
    payment.status, payment.paid_at = "paid", datetime.now(UTC)
    payment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="payment.paid",
        resource_type="payment",
        resource_id=payment.id,
        before=before,
        after={**_audit_view(payment), "paid_at": payment.paid_at},
    )
    await _emit(session, actor, "payment.paid", project, payment)
    await facts.record_paid(
        session, project.application_id, -payment.amount if payment.kind == "recovery" else payment.amount
    )
    return payment


async def mark_failed(
    *, session: AsyncSession, actor: Actor, payment: Payment, project: Project, reason: str
) -> Payment:
    """The order failed (e.g. the account was closed): it is no longer live, so a new one can be ordered."""
    _require_ordered(payment)
    before = _audit_view(payment)
    payment.status, payment.failed_reason = "failed", reason
    payment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="payment.failed",
        resource_type="payment",
        resource_id=payment.id,
        before=before,
        after=_audit_view(payment),
    )
    await _emit(session, actor, "payment.failed", project, payment)
    return payment


async def cancel_open(*, session: AsyncSession, actor: Actor, project: Project, reason: str) -> list[Payment]:
    """Cancel the orders not paid yet (a revocation): they will not be paid."""
    cancelled = []
    for p in await repository.of_project(session, project.id, for_update=True):
        if p.status != "ordered" or p.kind not in OUTGOING:
            continue
        before = _audit_view(p)
        p.status, p.failed_reason = "cancelled", reason
        p.version += 1
        await session.flush()
        await record_audit(
            session,
            actor,
            action="payment.cancelled",
            resource_type="payment",
            resource_id=p.id,
            before=before,
            after=_audit_view(p),
        )
        await _emit(session, actor, "payment.cancelled", project, p)
        cancelled.append(p)
    return cancelled


async def paid_rows(session: AsyncSession, project: Project) -> list[Payment]:
    """The payments made to the company (advance and balance), oldest first: a recovery's interest runs from each."""
    return await repository.paid_rows(session, project.id, OUTGOING)


async def paid_out(session: AsyncSession, project: Project) -> Decimal:
    """Everything paid to the company (advance and balance)."""
    return await repository.paid_total(session, project.id, OUTGOING)


async def reissue(*, session: AsyncSession, actor: Actor, payment: Payment, project: Project) -> Payment:
    """An officer re-issues an open order to the project's current account: the only way an order's account
    changes after it was ordered (a change of the project's IBAN never rewrites it)."""
    _require_ordered(payment)
    if payment.kind not in OUTGOING:
        raise Conflict(
            "Un recupero non si paga su un conto.",
            "A recovery is not paid to an account.",
            extra={"kind": payment.kind},
        )
    if project.iban is None:
        raise Conflict("Il progetto non ha un IBAN.", "The project has no IBAN.")
    if payment.iban == project.iban:
        return payment
    before = _audit_view(payment)
    payment.iban = project.iban
    payment.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="payment.reissued",
        resource_type="payment",
        resource_id=payment.id,
        before=before,
        after={
            **_audit_view(payment),
            "project_id": project.id,
            "holder_name": project.iban_holder_name,
            "holder_tax_code": project.iban_holder_tax_code,
        },
    )
    await record_event(
        session,
        actor,
        event_type="payment.reissued",
        subject_type="payment",
        subject_id=payment.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "payment_id": payment.id,
            "project_id": project.id,
            "application_id": project.application_id,
            "call_id": project.call_id,
            "company_id": project.company_id,
            "kind": payment.kind,
            "status": payment.status,
            "amount": payment.amount,
            "cup": project.cup,
            "iban": payment.iban,
            "previous_iban": before["iban"],
        },
    )
    return payment


# ---------------------------------------------------------------- treasury export


def _causale(title: str, project: Project, payment: Payment) -> str:
    return (
        f"{title} - {KIND_IT[payment.kind]} contributo - CUP {project.cup or '-'} - decreto n. "
        f"{project.decree_number} del {project.decree_date.strftime('%d/%m/%Y')}"
    )


async def export_csv(*, session: AsyncSession, intake: IntakeClient, status: str, call_id: uuid.UUID | None) -> str:
    """The treasury file: one row per outgoing order. Every row must carry a valid Italian IBAN: otherwise the
    whole file is refused (409) with the rows to fix, so the treasury never gets a partial batch."""
    rows = [
        r
        for r in await repository.for_export(session, status=status, call_id=call_id)
        if await four_eyes.open_proposal(session, action=ORDER, resource_id=r.Payment.id) is None
    ]
    refused = []
    for r in rows:
        problem = ("iban_missing", {}) if r.Payment.iban is None else iban_problem(r.Payment.iban)
        if problem is not None:
            refused.append(
                {
                    "payment_id": str(r.Payment.id),
                    "project_id": str(r.Project.id),
                    "code": problem[0],
                    "message": Localized(
                        validation_message(problem[0], problem[1], "", "it"),
                        validation_message(problem[0], problem[1], "", "en"),
                    ),
                }
            )
    if refused:
        raise Conflict(
            f"{len(refused)} ordini senza un IBAN valido: correggerli prima dell'esportazione.",
            f"{len(refused)} orders have no valid IBAN: fix them before exporting.",
            extra={"refused": refused},
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    companies: dict[uuid.UUID, Any] = {}
    for r in rows:
        p, project = r.Payment, r.Project
        if project.company_id not in companies:
            companies[project.company_id] = await fetch_company(intake, project.company_id)
        company = companies[project.company_id]
        title = (await call_detail(intake, project.call_id)).title
        writer.writerow(
            (
                str(p.id),
                p.kind,
                company.name,
                company.vat_number,
                p.iban,
                f"{p.amount:.2f}",
                project.cup or "",
                project.cor or "",
                _causale(title, project, p),
            )
        )
    return out.getvalue()
