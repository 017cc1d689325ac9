"""Queries on KPI reports, milestone reports and reminders (schema `monitoring`, written only by monitoring)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import ApplicationFact, KpiReport, MilestoneReport, Project, Reminder

#: project statuses that end the project: no more reports, no more reminders.
CLOSED_STATUSES = ("completed", "revoked")


async def insert_kpi_report(session: AsyncSession, values: dict[str, Any]) -> KpiReport | None:
    """Insert unless the project already has a report for this KPI and period (None then): a concurrent
    duplicate waits on the unique index and then finds the conflict."""
    stmt = (
        insert(KpiReport)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[KpiReport.project_id, KpiReport.kpi, KpiReport.period])
        .returning(KpiReport)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def kpi_reports(session: AsyncSession, project_id: uuid.UUID, kpi: str | None = None) -> list[KpiReport]:
    stmt = select(KpiReport).where(KpiReport.project_id == project_id)
    if kpi is not None:
        stmt = stmt.where(KpiReport.kpi == kpi)
    return list((await session.execute(stmt.order_by(KpiReport.reported_at, KpiReport.id))).scalars().all())


async def set_foreign_share(
    session: AsyncSession, application_id: uuid.UUID, *, baseline: Decimal, latest: Decimal
) -> None:
    """The beneficiary's foreign turnover share on its statistics fact (export growth)."""
    await session.execute(
        update(ApplicationFact)
        .where(ApplicationFact.application_id == application_id)
        .values(foreign_share_baseline=baseline, foreign_share_latest=latest, updated_at=datetime.now(UTC))
    )


async def insert_milestone_report(session: AsyncSession, values: dict[str, Any]) -> MilestoneReport | None:
    stmt = (
        insert(MilestoneReport)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[MilestoneReport.project_id, MilestoneReport.milestone])
        .returning(MilestoneReport)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def milestone_reports(session: AsyncSession, project_ids: list[uuid.UUID]) -> list[MilestoneReport]:
    if not project_ids:
        return []
    stmt = select(MilestoneReport).where(MilestoneReport.project_id.in_(project_ids))
    return list((await session.execute(stmt)).scalars().all())


async def open_projects(session: AsyncSession) -> list[Project]:
    """Projects still running, and completed ones with follow-up results to report (reminders are for them)."""
    stmt = (
        select(Project)
        .where(
            or_(
                Project.status.not_in(CLOSED_STATUSES),
                (Project.status == "completed") & Project.outcome.has_key("follow_up"),
            )
        )
        .order_by(Project.created_at, Project.id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def claim_reminder(session: AsyncSession, *, project_id: uuid.UUID, kind: str, due_date: date) -> bool:
    """Record that a reminder is sent; False when it was sent already (by this run, an earlier one or a
    concurrent replica: the unique index decides, a concurrent duplicate waits for the first to end)."""
    stmt = (
        insert(Reminder)
        .values(id=uuid.uuid4(), project_id=project_id, kind=kind, due_date=due_date)
        .on_conflict_do_nothing(index_elements=[Reminder.project_id, Reminder.kind, Reminder.due_date])
        .returning(Reminder.id)
    )
    return (await session.execute(stmt)).first() is not None
