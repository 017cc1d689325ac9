"""Use cases of the beneficiary's account (IBAN): set it, and the confirmation a partner's change needs while a
payment is ordered and not yet paid.

A partner redirecting an advance already ordered to its own account is what this guards against:
- every change declares the account's holder, whose VAT number or fiscal code must be the company's as intake
  knows it (422 `iban-holder-mismatch` otherwise, nothing changed);
- a change asked by a partner while an advance or balance is ordered and not yet paid is only recorded
  (`pending`); the company's own client or an officer confirms or rejects it. A change asked by the company or
  an officer, or by a partner when nothing is open, applies at once;
- an order keeps the account it was ordered with: changing the project's IBAN never rewrites it. An officer
  re-issues an open order to the current account (`payments.service.reissue`). The one exception is an order
  placed before any account was known (the advance ordered when the project starts): it takes the first account
  applied, which, as it is open, only the company or an officer could have applied.

Every step leaves an audit record and an event for the partner. Services flush, never commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import IbanChange, Project
from services.monitoring.peers import fetch_company
from services.monitoring.projects import repository
from shared.audit import record_audit, record_event
from shared.auth import PrincipalKind
from shared.clients.intake import IntakeClient
from shared.errors import IBAN_HOLDER_MISMATCH, Conflict, DeskError, NotFound, ProblemError
from shared.routing import Actor, etag_of

# Who may apply a change while a payment is open: the beneficiary itself, or the managing body.
CONFIRMING_KINDS: tuple[PrincipalKind, ...] = ("company", "officer")


def change_out(c: IbanChange) -> dict[str, Any]:
    return {
        "id": c.id,
        "project_id": c.project_id,
        "iban": c.iban,
        "holder": {"name": c.holder_name, "tax_code": c.holder_tax_code},
        "previous_iban": c.previous_iban,
        "status": c.status,
        "requested_by": c.requested_by,
        "requested_by_kind": c.requested_by_kind,
        "requested_at": c.requested_at,
        "decided_by": c.decided_by,
        "decided_at": c.decided_at,
        "reason": c.reason,
        "etag": etag_of(c.version),
    }


def _account(p: Project) -> dict[str, Any]:
    return {
        "iban": p.iban,
        "holder_name": p.iban_holder_name,
        "holder_tax_code": p.iban_holder_tax_code,
        "version": p.version,
    }


def _change_view(c: IbanChange) -> dict[str, Any]:
    return {
        "project_id": c.project_id,
        "iban": c.iban,
        "holder_name": c.holder_name,
        "holder_tax_code": c.holder_tax_code,
        "previous_iban": c.previous_iban,
        "status": c.status,
        "requested_by": c.requested_by,
        "requested_by_kind": c.requested_by_kind,
        "decided_by": c.decided_by,
        "reason": c.reason,
        "version": c.version,
    }


async def _emit(session: AsyncSession, actor: Actor, event_type: str, project: Project, c: IbanChange) -> None:
    await record_event(
        session,
        actor,
        event_type=event_type,
        subject_type="project",
        subject_id=project.id,
        ordering_key=project.application_id,
        partner_id=project.partner_id,
        company_id=project.company_id,
        payload={
            "change_id": c.id,
            "project_id": project.id,
            "application_id": project.application_id,
            "company_id": project.company_id,
            "status": c.status,
            "iban": c.iban,
            "previous_iban": c.previous_iban,
            "holder_name": c.holder_name,
            "requested_by": c.requested_by,
            "requested_by_kind": c.requested_by_kind,
            "decided_by": c.decided_by,
            "reason": c.reason,
        },
    )


def _require_not_revoked(project: Project) -> None:
    if project.status == "revoked":
        raise Conflict("Il progetto è revocato.", "The project is revoked.")


async def check_holder(*, intake: IntakeClient, project: Project, holder_tax_code: str) -> None:
    """The holder must be the beneficiary company: its VAT number or fiscal code as intake knows them now."""
    company = await fetch_company(intake, project.company_id)
    if holder_tax_code in {company.vat_number, company.fiscal_code.upper()}:
        return
    raise DeskError(
        "L'intestatario del conto non è l'impresa beneficiaria: nulla è stato modificato.",
        "The account holder is not the beneficiary company: nothing was changed.",
        kind=IBAN_HOLDER_MISMATCH,
        errors=[
            ProblemError(
                "iban_holder_mismatch",
                "/holder/tax_code",
                "La partita IVA o il codice fiscale dell'intestatario devono essere quelli dell'impresa beneficiaria.",
                "The holder's VAT number or fiscal code must be the beneficiary company's.",
            )
        ],
    )


async def _apply(*, session: AsyncSession, actor: Actor, project: Project, change: IbanChange) -> None:
    """The project's account becomes the change's. Open orders keep theirs; only one placed before any account was
    known takes this one."""
    before = _account(project)
    project.iban, project.iban_holder_name = change.iban, change.holder_name
    project.iban_holder_tax_code = change.holder_tax_code
    project.version += 1
    project.updated_at = datetime.now(UTC)
    await session.flush()
    await record_audit(
        session,
        actor,
        action="project.iban_set",
        resource_type="project",
        resource_id=project.id,
        before=before,
        after={
            **_account(project),
            "change_id": change.id,
            "requested_by": change.requested_by,
            "status": change.status,
        },
    )
    await _emit(session, actor, "project.iban_changed", project, change)
    for payment in await repository.open_orders_without_iban(session, project.id):
        payment.iban = change.iban
        payment.version += 1
        await session.flush()
        await record_audit(
            session,
            actor,
            action="payment.iban_set",
            resource_type="payment",
            resource_id=payment.id,
            before={"iban": None, "version": payment.version - 1},
            after={"iban": payment.iban, "version": payment.version, "change_id": change.id},
        )


async def _supersede_pending(*, session: AsyncSession, actor: Actor, project: Project) -> None:
    """A direct change by the company or an officer replaces a partner's change still awaiting confirmation."""
    pending = await repository.pending_iban_change(session, project.id)
    if pending is None:
        return
    before = _change_view(pending)
    pending.status, pending.decided_by, pending.decided_at = "superseded", actor.principal.client_id, datetime.now(UTC)
    pending.reason = "superseded by a later change of the company or an officer"
    pending.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="project.iban_change_superseded",
        resource_type="iban_change",
        resource_id=pending.id,
        before=before,
        after=_change_view(pending),
    )
    await _emit(session, actor, "project.iban_change_rejected", project, pending)


async def set_iban(
    *,
    session: AsyncSession,
    actor: Actor,
    intake: IntakeClient,
    project: Project,
    iban: str,
    holder_name: str,
    holder_tax_code: str,
) -> tuple[Project, IbanChange | None]:
    """Set the project's account, or record the change as pending (a partner, a payment open). Returns the project
    and the change (None when the account is already this one: nothing to do)."""
    _require_not_revoked(project)
    await check_holder(intake=intake, project=project, holder_tax_code=holder_tax_code)
    if (project.iban, project.iban_holder_name, project.iban_holder_tax_code) == (iban, holder_name, holder_tax_code):
        return project, None
    principal = actor.principal
    needs_confirmation = principal.kind not in CONFIRMING_KINDS and await repository.has_open_order(session, project.id)
    values = {
        "id": uuid.uuid4(),
        "project_id": project.id,
        "iban": iban,
        "holder_name": holder_name,
        "holder_tax_code": holder_tax_code,
        "previous_iban": project.iban,
        "status": "pending" if needs_confirmation else "applied",
        "requested_by": principal.client_id,
        "requested_by_kind": principal.kind,
        "version": 1,
    }
    if needs_confirmation:
        change = await repository.insert_iban_change(session, values)
        if change is None:
            pending = await repository.pending_iban_change(session, project.id)
            raise Conflict(
                "Una modifica dell'IBAN attende già la conferma dell'impresa o di un funzionario.",
                "A change of IBAN is already awaiting the company's or an officer's confirmation.",
                extra={"pending_change_id": str(pending.id) if pending is not None else None},
            )
        await record_audit(
            session,
            actor,
            action="project.iban_change_requested",
            resource_type="iban_change",
            resource_id=change.id,
            before=_account(project),
            after=_change_view(change),
        )
        await _emit(session, actor, "project.iban_change_requested", project, change)
        return project, change
    await _supersede_pending(session=session, actor=actor, project=project)
    values.update(decided_by=principal.client_id, decided_at=datetime.now(UTC))
    change = await repository.insert_iban_change(session, values)
    assert change is not None  # not pending: the index does not apply
    await _apply(session=session, actor=actor, project=project, change=change)
    return project, change


async def get_change(
    session: AsyncSession, project: Project, change_id: uuid.UUID, *, for_update: bool = False
) -> IbanChange:
    change = await repository.iban_change(session, project.id, change_id, for_update=for_update)
    if change is None:
        raise NotFound()
    return change


def _require_pending(change: IbanChange) -> None:
    if change.status != "pending":
        raise Conflict(
            f"La modifica dell'IBAN è {change.status}: solo una modifica in attesa si conferma o si respinge.",
            f"The change of IBAN is {change.status}: only a pending change can be confirmed or rejected.",
            extra={"change_status": change.status},
        )


async def confirm_change(
    *, session: AsyncSession, actor: Actor, intake: IntakeClient, project: Project, change: IbanChange
) -> IbanChange:
    """The company or an officer confirms a partner's change: the project's account becomes it. The holder is
    checked again against the company as intake knows it now."""
    _require_pending(change)
    _require_not_revoked(project)
    await check_holder(intake=intake, project=project, holder_tax_code=change.holder_tax_code)
    before = _change_view(change)
    change.status, change.decided_by, change.decided_at = "confirmed", actor.principal.client_id, datetime.now(UTC)
    change.previous_iban = project.iban
    change.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="project.iban_change_confirmed",
        resource_type="iban_change",
        resource_id=change.id,
        before=before,
        after=_change_view(change),
    )
    await _apply(session=session, actor=actor, project=project, change=change)
    return change


async def reject_change(
    *, session: AsyncSession, actor: Actor, project: Project, change: IbanChange, reason: str
) -> IbanChange:
    """The company or an officer refuses a partner's change: the project's account stays as it is."""
    _require_pending(change)
    before = _change_view(change)
    change.status, change.decided_by, change.decided_at = "rejected", actor.principal.client_id, datetime.now(UTC)
    change.reason = reason
    change.version += 1
    await session.flush()
    await record_audit(
        session,
        actor,
        action="project.iban_change_rejected",
        resource_type="iban_change",
        resource_id=change.id,
        before=before,
        after=_change_view(change),
    )
    await _emit(session, actor, "project.iban_change_rejected", project, change)
    return change
