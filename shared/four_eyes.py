"""Four-eyes on money decisions: one officer proposes, a second, different officer confirms.

Approving a funding, closing a decree, ordering a payment and overriding a claim's computed outcome each need
two officers. The first call
checks everything the decision needs, records a proposal (`desk.money_confirmations`, written only
here) and an audit record, and changes nothing else; `POST .../confirm` by another officer checks
again, marks the proposal confirmed and lets the caller carry out the decision in the same
transaction, so a refusal at any point rolls everything back. The decision's audit record names
both officers (`officers`). At most one open proposal per action and resource: proposing it again
is a 409 `confirmation-pending`, unless what is proposed changed (e.g. the decree gained decisions),
in which case the stale proposal is superseded.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import expression

from shared.audit import record_audit
from shared.errors import CONFIRMATION_PENDING, FOUR_EYES, NOTHING_TO_CONFIRM, DeskError
from shared.models import MoneyConfirmation
from shared.routing import Actor
from shared.schemas import OutModel


class ProposalOut(OutModel):
    """A money decision proposed by one officer, waiting for a second officer's confirmation."""

    id: uuid.UUID
    action: str = Field(description="`funding.approve`, `decree.close`, `payment.order` or `claim.override`.")
    resource_type: str
    resource_id: str
    status: str = Field(description="`proposed` until a second officer confirms it (`confirmed`).")
    detail: dict[str, Any] = Field(description="What was proposed (e.g. the decree's version, the payment's kind).")
    proposed_by: str
    proposed_at: datetime
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None
    confirm: str = Field(description="Where a second, different officer confirms it (POST).")


def proposal_out(row: MoneyConfirmation, confirm_path: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "status": row.status,
        "detail": row.detail,
        "proposed_by": row.proposed_by,
        "proposed_at": row.proposed_at,
        "confirmed_by": row.confirmed_by,
        "confirmed_at": row.confirmed_at,
        "confirm": confirm_path,
    }


def officers(row: MoneyConfirmation) -> dict[str, Any]:
    """Both officers of a confirmed decision, for its audit record."""
    return {
        "proposed_by": row.proposed_by,
        "proposed_at": row.proposed_at,
        "confirmed_by": row.confirmed_by,
        "confirmed_at": row.confirmed_at,
        "proposal_id": str(row.id),
    }


async def open_proposal(
    session: AsyncSession, *, action: str, resource_id: Any, for_update: bool = False
) -> MoneyConfirmation | None:
    stmt = (
        select(MoneyConfirmation)
        .where(
            MoneyConfirmation.action == action,
            MoneyConfirmation.resource_id == str(resource_id),
            MoneyConfirmation.status == "proposed",
        )
        .execution_options(populate_existing=True)
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def _pending(row: MoneyConfirmation) -> DeskError:
    return DeskError(
        "La decisione è già proposta e attende la conferma di un secondo funzionario.",
        "The decision is already proposed and awaits a second officer's confirmation.",
        kind=CONFIRMATION_PENDING,
        extra={
            "proposal": {
                "id": str(row.id),
                "action": row.action,
                "proposed_by": row.proposed_by,
                "proposed_at": row.proposed_at.isoformat(),
                "detail": row.detail,
            }
        },
    )


async def propose(
    session: AsyncSession, actor: Actor, *, action: str, resource_type: str, resource_id: Any, detail: dict[str, Any]
) -> MoneyConfirmation:
    """Record the proposal of a money decision the caller has already checked."""
    existing = await open_proposal(session, action=action, resource_id=resource_id, for_update=True)
    if existing is not None:
        if existing.detail == detail:
            raise _pending(existing)
        existing.status = "superseded"
        await session.flush()
        await record_audit(
            session,
            actor,
            action=f"{action}.superseded",
            resource_type=resource_type,
            resource_id=resource_id,
            before={"proposal_id": str(existing.id), "detail": existing.detail},
            after={"detail": detail},
        )
    stmt = (
        insert(MoneyConfirmation)
        .values(
            id=uuid.uuid4(),
            service=actor.service,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            status="proposed",
            detail=detail,
            proposed_by=actor.principal.client_id,
        )
        .on_conflict_do_nothing(
            index_elements=[MoneyConfirmation.action, MoneyConfirmation.resource_id],
            index_where=expression.text("status = 'proposed'"),
        )
        .returning(MoneyConfirmation.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    row = await open_proposal(session, action=action, resource_id=resource_id)
    assert row is not None
    if new_id is None:  # another officer's proposal committed in between
        raise _pending(row)
    await record_audit(
        session,
        actor,
        action=f"{action}.proposed",
        resource_type=resource_type,
        resource_id=resource_id,
        after={"proposal_id": str(row.id), "proposed_by": row.proposed_by, "detail": detail},
    )
    return row


async def confirm(session: AsyncSession, actor: Actor, *, action: str, resource_id: Any) -> MoneyConfirmation:
    """Confirm the open proposal as a second, different officer; the caller then carries out the decision and
    records it with `officers(row)`. No proposal: 409; the proposer: 403."""
    row = await open_proposal(session, action=action, resource_id=resource_id, for_update=True)
    if row is None:
        raise DeskError(
            "Nessuna proposta aperta di questa decisione.",
            "No open proposal of this decision.",
            kind=NOTHING_TO_CONFIRM,
            extra={"action": action},
        )
    if row.proposed_by == actor.principal.client_id:
        raise DeskError(
            "Chi ha proposto la decisione non può confermarla: serve un secondo funzionario.",
            "The officer who proposed the decision cannot confirm it: a second officer must.",
            kind=FOUR_EYES,
            extra={"proposed_by": row.proposed_by, "action": action},
        )
    row.status, row.confirmed_by, row.confirmed_at = "confirmed", actor.principal.client_id, datetime.now(UTC)
    await session.flush()
    return row
