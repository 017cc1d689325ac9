"""Use cases of a project's results: KPI reports and progress, milestone completion and status, and the
deadline reminders (`send_due_reminders`, run daily by the monitoring app and on demand by a service).

Reporting stays open after completion for the call's follow-up years (fixed in the outcome at completion, with
reminders for the follow-up results due); it is refused after a revocation, for a period not started yet or
outside the project's and follow-up years, and for a negative count or amount.

A KPI report is immutable: one per KPI and period (the unique index decides, so a retry or a concurrent
duplicate is a 409, never a second row). A report on the plan's foreign-turnover-share KPI also updates the
beneficiary's statistics fact (baseline and latest share: the export growth the statistics show).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import KpiReport, MilestoneReport, Project
from services.monitoring.networking import service as networking
from services.monitoring.results import repository
from shared.audit import record_audit, record_event
from shared.auth import Principal
from shared.domain.results import (
    Deadline,
    KpiValue,
    allows_negative,
    is_foreign_share_kpi,
    kpi_progress,
    latest_value,
    milestone_status,
    parse_period,
    period_refusal,
    plan_deadlines,
    reminders_due,
)
from shared.errors import (
    ALREADY_EXISTS,
    REPORT_PERIOD_NOT_ALLOWED,
    REPORTING_CLOSED,
    DeskError,
    NotFound,
    ProblemError,
    ValidationFailed,
)
from shared.routing import Actor

ROME = ZoneInfo("Europe/Rome")
REMINDER_ACTOR = Actor(
    Principal(client_id="monitoring-reminders", kind="service", scopes=frozenset()), None, "monitoring"
)


def today_in_rome() -> date:
    return datetime.now(ROME).date()


def _kpis(project: Project) -> list[dict[str, Any]]:
    return list(project.kpis or [])


def _milestones(project: Project) -> list[tuple[str, date]]:
    out = []
    for m in (project.timeline or {}).get("milestones", []):
        due = m["due_date"]
        out.append((str(m["title"]), due if isinstance(due, date) else date.fromisoformat(due)))
    return out


def follow_up(project: Project) -> dict[str, Any] | None:
    """The follow-up the outcome fixed at completion (the call's years and results after completion), if any."""
    doc = (project.outcome or {}).get("follow_up")
    return doc if project.status == "completed" and doc else None


def _refuse_closed(project: Project, today: date) -> None:
    """Reports are taken while the project runs and, once completed, until its follow-up years are over; never
    after a revocation."""
    if project.status == "active":
        return
    fu = follow_up(project)
    if fu is not None and today <= date.fromisoformat(fu["until"]):
        return
    until = fu["until"] if fu else None
    raise DeskError(
        f"Il progetto è {project.status}: non accetta più rapporti"
        + (f" (follow-up concluso il {until})." if until else "."),
        f"The project is {project.status}: it takes no more reports"
        + (f" (follow-up ended on {until})." if until else "."),
        kind=REPORTING_CLOSED,
        extra={"status": project.status, "follow_up_until": until},
    )


def report_out(r: KpiReport) -> dict[str, Any]:
    return {
        "id": r.id,
        "project_id": r.project_id,
        "kpi": r.kpi,
        "period": r.period,
        "value": r.value,
        "note": r.note,
        "reported_by": r.reported_by,
        "reported_at": r.reported_at,
    }


# ---------------------------------------------------------------- KPIs


async def report_kpi(
    *,
    session: AsyncSession,
    actor: Actor,
    project: Project,
    kpi: str,
    period: str,
    value: Any,
    note: str | None,
    today: date | None = None,
) -> KpiReport:
    """`today` (Europe/Rome) bounds the periods that may be reported; the route passes the app's clock."""
    today = today or today_in_rome()
    _refuse_closed(project, today)
    fu = follow_up(project)
    known = _kpis(project) + [
        k for k in (fu or {}).get("kpis", []) if k["name"] not in {p["name"] for p in _kpis(project)}
    ]
    plan = next((k for k in known if k["name"] == kpi), None)
    if plan is None:
        names = [k["name"] for k in known]
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "kpi_unknown",
                    "/kpi",
                    f"Il progetto non ha un indicatore '{kpi}' (indicatori: {names}).",
                    f"The project has no KPI named '{kpi}' (KPIs: {names}).",
                    extra={"kpis": names},
                )
            ]
        )
    why = period_refusal(
        parse_period(period),
        project_start=project.start_date,
        last_year=int(fu["last_year"]) if fu else None,
        today=today,
    )
    if why == "period_in_future":
        raise DeskError(
            kind=REPORT_PERIOD_NOT_ALLOWED,
            errors=[
                ProblemError(
                    why,
                    "/period",
                    f"Il periodo {period} non è ancora iniziato.",
                    f"Period {period} has not started yet.",
                )
            ],
        )
    if why == "period_outside_project":
        last = fu["last_year"] if fu else today.year
        raise DeskError(
            kind=REPORT_PERIOD_NOT_ALLOWED,
            errors=[
                ProblemError(
                    why,
                    "/period",
                    f"Il periodo {period} è fuori dagli anni del progetto e del follow-up "
                    f"({project.start_date.year}-{last}).",
                    f"Period {period} is outside the project's and follow-up years ({project.start_date.year}-{last}).",
                    extra={"first_year": project.start_date.year, "last_year": last},
                )
            ],
        )
    unit = str(plan.get("unit", ""))
    if value < 0 and not allows_negative(unit):
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "value_negative",
                    "/value",
                    f"Un conteggio o un importo ({unit}) non può essere negativo.",
                    f"A count or an amount ({unit}) cannot be negative.",
                    extra={"unit": unit},
                )
            ]
        )
    row = await repository.insert_kpi_report(
        session,
        {
            "id": uuid.uuid4(),
            "project_id": project.id,
            "kpi": kpi,
            "period": period,
            "value": value,
            "note": note,
            "reported_by": actor.principal.client_id,
        },
    )
    if row is None:
        raise DeskError(
            f"Il valore di '{kpi}' per il periodo {period} è già stato comunicato.",
            f"'{kpi}' was already reported for period {period}.",
            kind=ALREADY_EXISTS,
            extra={"kpi": kpi, "period": period},
        )
    await record_audit(
        session,
        actor,
        action="kpi_report.create",
        resource_type="kpi_report",
        resource_id=row.id,
        after={
            "project_id": str(project.id),
            **{k: str(v) for k, v in report_out(row).items() if k in ("kpi", "period", "value", "note")},
        },
    )
    if is_foreign_share_kpi(plan["name"], str(plan.get("unit", ""))):
        reports = await repository.kpi_reports(session, project.id, kpi)
        latest = latest_value(KpiValue(r.period, r.value, i) for i, r in enumerate(reports))
        if latest is not None:
            await repository.set_foreign_share(
                session, project.application_id, baseline=_dec(plan["baseline"]), latest=latest.value
            )
    return row


def _dec(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


async def kpi_statuses(*, session: AsyncSession, project: Project, today: date | None = None) -> dict[str, Any]:
    reports = await repository.kpi_reports(session, project.id)
    items = []
    for k in _kpis(project):
        mine = [r for r in reports if r.kpi == k["name"]]
        chosen = latest_value(KpiValue(r.period, r.value, i) for i, r in enumerate(mine))
        row = mine[chosen.order] if chosen is not None else None
        baseline, target = _dec(k["baseline"]), _dec(k["target"])
        items.append(
            {
                "name": k["name"],
                "unit": k.get("unit", ""),
                "baseline": baseline,
                "target": target,
                "latest": {"period": row.period, "value": row.value, "reported_at": row.reported_at} if row else None,
                "progress_percent": kpi_progress(baseline, target, row.value if row else None),
                "reports": len(mine),
            }
        )
    return {
        "project_id": project.id,
        "items": items,
        "follow_up": _follow_up_statuses(project, reports, today),
        "b2b": await networking.project_results(session, project.id),
    }


def _follow_up_statuses(project: Project, reports: Sequence[KpiReport], today: date | None) -> list[dict[str, Any]]:
    """The follow-up reports the outcome scheduled at completion, each with the report filed for its KPI and
    period (if any): reported, due (its year has started, the due date not passed) or overdue; upcoming before
    its year starts."""
    fu = (project.outcome or {}).get("follow_up") or {}
    today = today or today_in_rome()
    units = {k["name"]: k.get("unit", "") for k in fu.get("kpis", [])}
    filed = {(r.kpi, r.period): r for r in reports}
    out = []
    for f in fu.get("reports", []):
        row = filed.get((f["kpi"], f["period"]))
        due = date.fromisoformat(f["due_date"])
        status = (
            "reported"
            if row is not None
            else "upcoming"
            if today < date(int(f["period"]), 1, 1)
            else "overdue"
            if today > due
            else "due"
        )
        out.append(
            {
                "kpi": f["kpi"],
                "unit": units.get(f["kpi"], ""),
                "year_after": f["year_after"],
                "period": f["period"],
                "due_date": due,
                "status": status,
                "report": report_out(row) if row is not None else None,
            }
        )
    return out


# ---------------------------------------------------------------- milestones


async def complete_milestone(
    *, session: AsyncSession, actor: Actor, project: Project, index: int, completed_on: date, note: str | None
) -> dict[str, Any]:
    milestones = _milestones(project)
    if not 0 <= index < len(milestones):
        raise NotFound(f"Il progetto non ha la milestone {index}.", f"The project has no milestone {index}.")
    _refuse_closed(project, today_in_rome())
    if completed_on > today_in_rome():
        raise ValidationFailed(
            errors=[
                ProblemError(
                    "completed_on_in_future",
                    "/completed_on",
                    "La data di completamento è nel futuro.",
                    "The completion date is in the future.",
                )
            ]
        )
    title, due = milestones[index]
    row = await repository.insert_milestone_report(
        session,
        {
            "id": uuid.uuid4(),
            "project_id": project.id,
            "milestone": str(index),
            "due_date": due,
            "completed_on": completed_on,
            "note": note,
            "reported_by": actor.principal.client_id,
        },
    )
    if row is None:
        raise DeskError(
            f"Il completamento della milestone {index} è già stato comunicato.",
            f"Completion of milestone {index} was already reported.",
            kind=ALREADY_EXISTS,
        )
    await record_audit(
        session,
        actor,
        action="milestone.complete",
        resource_type="milestone_report",
        resource_id=row.id,
        after={
            "project_id": str(project.id),
            "index": index,
            "title": title,
            "completed_on": completed_on.isoformat(),
            "note": note,
        },
    )
    return _milestone_out(index, title, due, row, today_in_rome())


def _milestone_out(index: int, title: str, due: date, report: MilestoneReport | None, today: date) -> dict[str, Any]:
    completed = report.completed_on if report else None
    return {
        "index": index,
        "title": title,
        "due_date": due,
        "status": milestone_status(due, completed, today),
        "completed_on": completed,
        "note": report.note if report else None,
        "reported_by": report.reported_by if report else None,
        "reported_at": report.reported_at if report else None,
    }


async def milestone_statuses(*, session: AsyncSession, project: Project, today: date | None = None) -> dict[str, Any]:
    today = today or today_in_rome()
    reports = {r.milestone: r for r in await repository.milestone_reports(session, [project.id])}
    items = [
        _milestone_out(i, title, due, reports.get(str(i)), today) for i, (title, due) in enumerate(_milestones(project))
    ]
    return {"project_id": project.id, "today": today, "items": items}


# ---------------------------------------------------------------- reminders


async def _deadlines(session: AsyncSession, project: Project, done: set[int]) -> list[Deadline]:
    """A running project's milestones and deadline; a completed one's follow-up results not yet reported."""
    fu = follow_up(project)
    if fu is None:
        return plan_deadlines(_milestones(project), project.deadline, done)
    reported = {(r.kpi, r.period) for r in await repository.kpi_reports(session, project.id)}
    return [
        Deadline("follow_up", date.fromisoformat(r["due_date"]), f"{r['kpi']} {r['period']}", i)
        for i, r in enumerate(fu.get("reports", []))
        if (r["kpi"], r["period"]) not in reported
    ]


async def send_due_reminders(
    session: AsyncSession, today: date, days_before: Sequence[int] = (30, 7), *, actor: Actor | None = None
) -> list[dict[str, Any]]:
    """Emit a `project.reminder` event for every milestone not yet completed and every project deadline whose
    nearest lead time (`days_before`) is reached on `today`, each exactly once: the reminder is recorded in
    `monitoring.reminders` (unique per project, kind and due date) in the same transaction as its event, and a
    reminder already recorded is skipped. Flushes, never commits."""
    actor = actor or REMINDER_ACTOR
    projects = await repository.open_projects(session)
    done: dict[uuid.UUID, set[int]] = {}
    for r in await repository.milestone_reports(session, [p.id for p in projects]):
        if r.completed_on is not None and r.milestone.isdigit():
            done.setdefault(r.project_id, set()).add(int(r.milestone))
    sent: list[dict[str, Any]] = []
    for project in projects:
        deadlines = await _deadlines(session, project, done.get(project.id, set()))
        for due in reminders_due(deadlines, today, days_before):
            if not await repository.claim_reminder(
                session, project_id=project.id, kind=due.key, due_date=due.deadline.due_date
            ):
                continue
            payload = {
                "project_id": str(project.id),
                "application_id": str(project.application_id),
                "call_id": str(project.call_id),
                "company_id": str(project.company_id),
                "cup": project.cup,
                "kind": due.deadline.kind,
                "milestone_index": due.deadline.index,
                "title": due.deadline.title,
                "due_date": due.deadline.due_date.isoformat(),
                "days_before": due.days_before,
                "days_left": due.days_left,
            }
            await record_event(
                session,
                actor,
                event_type="project.reminder",
                subject_type="project",
                subject_id=project.id,
                ordering_key=project.application_id,
                payload=payload,
                partner_id=project.partner_id,
                company_id=project.company_id,
            )
            sent.append(
                {
                    "project_id": project.id,
                    "kind": due.key,
                    "due_date": due.deadline.due_date,
                    "days_before": due.days_before,
                    "days_left": due.days_left,
                }
            )
    if sent:
        await record_audit(
            session,
            actor,
            action="reminders.send",
            resource_type="reminder_run",
            resource_id=today.isoformat(),
            after={"sent": len(sent), "at": datetime.now(UTC)},
        )
    await session.flush()
    return sent
