"""Queries on claims, their lines and evidence (schema `monitoring`, written only by the monitoring service)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Claim, ClaimLine, EvidenceFile, Project
from services.monitoring.projects.repository import reachable
from shared.auth import Principal

INVOICE_ONCE_INDEX = "uq_claim_lines_invoice_once"
OPEN_STATUSES = ("draft",)
#: claims whose lines take room in the approved budget (their lines not rejected).
LIVE_STATUSES = ("submitted", "approved", "partially_approved")


def is_duplicate_invoice(exc: IntegrityError) -> bool:
    return INVOICE_ONCE_INDEX in str(exc.orig)


async def project(
    session: AsyncSession, project_id: uuid.UUID, principal: Principal, *, for_update: bool = False
) -> Project | None:
    stmt = select(Project).where(Project.id == project_id, reachable(principal))
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim(session: AsyncSession, claim_id: uuid.UUID, principal: Principal) -> tuple[Claim, Project] | None:
    stmt = (
        select(Claim, Project)
        .join(Project, Project.id == Claim.project_id)
        .where(Claim.id == claim_id, reachable(principal))
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row is not None else None


async def lock_claim(session: AsyncSession, claim_id: uuid.UUID) -> Claim:
    """The claim, locked for the rest of the transaction and reloaded (a concurrent change waits here)."""
    stmt = select(Claim).where(Claim.id == claim_id).with_for_update().execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


def claims_of(project_id: uuid.UUID) -> Select[Any]:
    return select(Claim).where(Claim.project_id == project_id)


def listing(
    principal: Principal,
    *,
    project_id: uuid.UUID | None = None,
    status: str | None = None,
    kind: str | None = None,
) -> Select[Any]:
    """Claims within the principal's reach (through their project's company), with the (created_at, id)
    labels the cursor pagination pages on."""
    stmt = (
        select(Claim, Claim.created_at.label("created_at"), Claim.id.label("id"))
        .join(Project, Project.id == Claim.project_id)
        .where(reachable(principal))
    )
    if project_id is not None:
        stmt = stmt.where(Claim.project_id == project_id)
    if status is not None:
        stmt = stmt.where(Claim.status == status)
    if kind is not None:
        stmt = stmt.where(Claim.kind == kind)
    return cast("Select[Any]", stmt)


def to_review(principal: Principal, *, call_id: uuid.UUID | None = None) -> Select[Any]:
    """Submitted claims awaiting an officer's review, paged on their submission (the oldest submitted first)."""
    stmt = (
        select(Claim, Claim.submitted_at.label("created_at"), Claim.id.label("id"))
        .join(Project, Project.id == Claim.project_id)
        .where(reachable(principal), Claim.status == "submitted")
    )
    if call_id is not None:
        stmt = stmt.where(Project.call_id == call_id)
    return cast("Select[Any]", stmt)


async def all_rows(session: AsyncSession, stmt: Select[Any]) -> list[Any]:
    return list((await session.execute(stmt)).all())


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Any]:
    return list((await session.execute(stmt)).scalars().all())


async def claims_with_status(
    session: AsyncSession, project_id: uuid.UUID, statuses: Sequence[str], kind: str | None = None
) -> list[Claim]:
    stmt = select(Claim).where(Claim.project_id == project_id, Claim.status.in_(statuses))
    if kind is not None:
        stmt = stmt.where(Claim.kind == kind)
    return await rows(session, stmt.order_by(Claim.created_at, Claim.id))


async def lines(session: AsyncSession, claim_id: uuid.UUID) -> list[ClaimLine]:
    stmt = select(ClaimLine).where(ClaimLine.claim_id == claim_id).order_by(ClaimLine.created_at, ClaimLine.id)
    return await rows(session, stmt)


async def line(session: AsyncSession, claim_id: uuid.UUID, line_id: uuid.UUID) -> ClaimLine | None:
    stmt = select(ClaimLine).where(ClaimLine.id == line_id, ClaimLine.claim_id == claim_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def project_lines(
    session: AsyncSession, project_id: uuid.UUID, statuses: Sequence[str], *, exclude_claim: uuid.UUID | None = None
) -> list[tuple[ClaimLine, Claim]]:
    """The project's lines on claims in `statuses`, in the order the claims were submitted."""
    stmt = (
        select(ClaimLine, Claim)
        .join(Claim, Claim.id == ClaimLine.claim_id)
        .where(Claim.project_id == project_id, Claim.status.in_(statuses))
    )
    if exclude_claim is not None:
        stmt = stmt.where(Claim.id != exclude_claim)
    stmt = stmt.order_by(Claim.submitted_at, Claim.id, ClaimLine.issue_date, ClaimLine.id)
    return [(r[0], r[1]) for r in (await session.execute(stmt)).all()]


async def evidence_of(session: AsyncSession, line_ids: Sequence[uuid.UUID]) -> list[EvidenceFile]:
    if not line_ids:
        return []
    stmt = (
        select(EvidenceFile)
        .where(EvidenceFile.claim_line_id.in_(line_ids))
        .order_by(EvidenceFile.uploaded_at, EvidenceFile.id)
    )
    return await rows(session, stmt)


async def evidence(session: AsyncSession, evidence_id: uuid.UUID, principal: Principal) -> EvidenceFile | None:
    """An evidence file, if its line's project is within the caller's reach."""
    stmt = (
        select(EvidenceFile)
        .join(ClaimLine, ClaimLine.id == EvidenceFile.claim_line_id)
        .join(Project, Project.id == ClaimLine.project_id)
        .where(EvidenceFile.id == evidence_id, reachable(principal))
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def claimed_elsewhere(session: AsyncSession, line: ClaimLine) -> bool:
    """Another live line (not rejected) with the same invoice identity. The partial unique index makes this
    impossible; the check is recorded all the same, so the evidence of it is on the line."""
    stmt = (
        select(func.count())
        .select_from(ClaimLine)
        .where(
            ClaimLine.supplier_vat == line.supplier_vat,
            ClaimLine.document_number == line.document_number,
            ClaimLine.issue_date == line.issue_date,
            ClaimLine.outcome != "rejected",
            ClaimLine.id != line.id,
        )
    )
    return bool((await session.execute(stmt)).scalar_one())


async def delete_line(session: AsyncSession, line_id: uuid.UUID) -> None:
    await session.execute(delete(EvidenceFile).where(EvidenceFile.claim_line_id == line_id))
    await session.execute(delete(ClaimLine).where(ClaimLine.id == line_id))


async def claimed_total(session: AsyncSession, claim_id: uuid.UUID) -> Any:
    stmt = select(func.coalesce(func.sum(ClaimLine.taxable_amount), 0)).where(ClaimLine.claim_id == claim_id)
    return (await session.execute(stmt)).scalar_one()
