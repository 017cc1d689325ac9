"""Who may reach which company: the one access rule of every service.

Officers, auditors and services reach every company; a company client reaches itself; a partner reaches a
company while it holds one of the company's *current* active delegations. Whatever a service keeps about a
company (applications, evaluations, decisions, projects, claims, payments, reports) is reached through its
company by this rule, never through the partner recorded on the row when it was written: a partner whose
delegation was revoked loses sight of the company's whole file at once, and the partner the company
delegates next sees all of it, history included. Anything out of reach answers 404, never 403.

The rule reads `desk.company_delegates`, a projection of intake's delegations that only this module writes
(`record_delegation`), in the transaction in which intake changes the delegation: no event has to arrive
first for a revocation to take effect. The click-day submit applies the same rule in SQL, inside its single
statement, to `intake.delegations` itself (the table this projection mirrors in the same transaction): see
`_SUBMIT_REACH` in services.intake.applications.repository and `intake.commit_submission`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.auth import Principal
from shared.models import CompanyDelegate, OutboxEvent

__all__ = [
    "acting_partner",
    "active_delegates",
    "can_reach_company",
    "choose_notified",
    "company_reachable",
    "notified_partner",
    "partner_hears",
    "partner_hears_sql",
    "record_delegation",
]


def company_reachable(
    principal: Principal, company_col: InstrumentedAttribute[uuid.UUID] | ColumnElement[uuid.UUID]
) -> ColumnElement[bool]:
    """A WHERE clause: the row's company (`company_col`) is within the principal's reach."""
    if principal.reads_everything:
        return true()
    if principal.kind == "company":
        return company_col == principal.company_id if principal.company_id is not None else false()
    if principal.kind == "partner" and principal.partner_id is not None:
        return exists(
            select(CompanyDelegate.company_id).where(
                CompanyDelegate.company_id == company_col,
                CompanyDelegate.partner_id == principal.partner_id,
                CompanyDelegate.active,
            )
        )
    return false()


async def can_reach_company(session: AsyncSession, principal: Principal, company_id: uuid.UUID) -> bool:
    """Whether the principal reaches this company now (the same rule as `company_reachable`)."""
    if principal.reads_everything:
        return True
    if principal.kind == "company":
        return principal.company_id is not None and principal.company_id == company_id
    if principal.kind == "partner" and principal.partner_id is not None:
        stmt = (
            select(CompanyDelegate.company_id)
            .where(
                CompanyDelegate.company_id == company_id,
                CompanyDelegate.partner_id == principal.partner_id,
                CompanyDelegate.active,
            )
            .limit(1)
        )
        return (await session.execute(stmt)).first() is not None
    return False


# Events about a delegation itself go to that delegation's partner (a revoked partner learns it was revoked).
_ABOUT_DELEGATION = "({e}.aggregate_type = 'delegation' OR {e}.event_type = 'company.delegation_changed')"


def partner_hears_sql(event: str, partner: str) -> str:
    """SQL: the partner `partner` (a column) hears the outbox row aliased `event`. An event about a company
    goes to the partners acting for the company when it is delivered, not to the one recorded when it was
    written: the recorded partner hears it unless its delegation on the company has ended, and the company's
    current delegates hear it too. Events without a company, and those about a delegation, go to the partner
    recorded."""
    e, p = event, partner
    about = _ABOUT_DELEGATION.format(e=e)
    return f"""(({p} = {e}.partner_id
          AND ({e}.company_id IS NULL OR {about}
               OR NOT EXISTS (SELECT 1 FROM desk.company_delegates cd
                               WHERE cd.company_id = {e}.company_id AND cd.partner_id = {p} AND NOT cd.active)))
         OR ({e}.company_id IS NOT NULL AND NOT {about}
             AND EXISTS (SELECT 1 FROM desk.company_delegates cd
                          WHERE cd.company_id = {e}.company_id AND cd.partner_id = {p} AND cd.active)))"""


def partner_hears(partner_id: uuid.UUID) -> ColumnElement[bool]:
    """`partner_hears_sql` as a WHERE clause over `desk.outbox`, for one partner (the polling API)."""
    e = OutboxEvent
    about = or_(e.aggregate_type == "delegation", e.event_type == "company.delegation_changed")

    def delegate_row(active: bool) -> ColumnElement[bool]:
        return exists(
            select(CompanyDelegate.company_id).where(
                CompanyDelegate.company_id == e.company_id,
                CompanyDelegate.partner_id == partner_id,
                CompanyDelegate.active if active else not_(CompanyDelegate.active),
            )
        )

    return or_(
        and_(e.partner_id == partner_id, or_(e.company_id.is_(None), about, not_(delegate_row(False)))),
        and_(e.company_id.is_not(None), not_(about), delegate_row(True)),
    )


def acting_partner(principal: Principal) -> uuid.UUID | None:
    """The partner acting in this request, if a partner is acting."""
    return principal.partner_id if principal.kind == "partner" else None


async def active_delegates(session: AsyncSession, company_id: uuid.UUID) -> list[uuid.UUID]:
    """The partners holding the company's active delegations, the most recently changed first."""
    stmt = (
        select(CompanyDelegate.partner_id)
        .where(CompanyDelegate.company_id == company_id, CompanyDelegate.active)
        .order_by(CompanyDelegate.changed_at.desc(), CompanyDelegate.partner_id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def active_delegates_of(
    session: AsyncSession, company_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """`active_delegates` of many companies in one statement (a company with none is absent)."""
    stmt = (
        select(CompanyDelegate.company_id, CompanyDelegate.partner_id)
        .where(CompanyDelegate.company_id.in_(list(company_ids)), CompanyDelegate.active)
        .order_by(CompanyDelegate.company_id, CompanyDelegate.changed_at.desc(), CompanyDelegate.partner_id)
    )
    out: dict[uuid.UUID, list[uuid.UUID]] = {}
    for company_id, partner_id in await session.execute(stmt):
        out.setdefault(company_id, []).append(partner_id)
    return out


def choose_notified(recorded: uuid.UUID | None, delegates: Sequence[uuid.UUID]) -> uuid.UUID | None:
    """The partner to notify about a company's file: the one recorded while it still acts for the company, else
    the company's most recent delegate; with no delegate left, the recorded one stays (the webhook fan-out
    sends nothing to a partner whose delegation has ended: `partner_hears_sql`)."""
    if recorded in delegates or not delegates:
        return recorded
    return delegates[0]


async def notified_partner(
    session: AsyncSession, company_id: uuid.UUID, recorded: uuid.UUID | None
) -> uuid.UUID | None:
    """`choose_notified` against the company's current delegates."""
    return choose_notified(recorded, await active_delegates(session, company_id))


async def record_delegation(
    session: AsyncSession,
    *,
    delegation_id: uuid.UUID,
    company_id: uuid.UUID,
    partner_id: uuid.UUID,
    status: str,
    at: datetime | None = None,
) -> list[uuid.UUID]:
    """Record a delegation's new status (intake calls it in the transaction of the change). Returns the
    company's active delegates afterwards, the most recently changed first."""
    values = {
        "company_id": company_id,
        "partner_id": partner_id,
        "delegation_id": delegation_id,
        "active": status == "active",
        "changed_at": at or datetime.now(UTC),
    }
    stmt = insert(CompanyDelegate).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CompanyDelegate.company_id, CompanyDelegate.partner_id],
        set_={k: stmt.excluded[k] for k in ("delegation_id", "active", "changed_at")},
    )
    await session.execute(stmt)
    return await active_delegates(session, company_id)
