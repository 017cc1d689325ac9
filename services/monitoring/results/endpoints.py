"""Routes of a project's results (`/v1/projects/{id}/kpi-reports`, `/kpis`, `/milestones`) and the reminders run
(`POST /v1/internal/reminders/run`, services only)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from services.monitoring.models import Project
from services.monitoring.projects import repository as projects
from services.monitoring.results import service
from services.monitoring.results.schemas import (
    KpiList,
    KpiReportIn,
    KpiReportOut,
    MilestoneCompletionIn,
    MilestoneList,
    MilestoneStatusOut,
    RemindersRunIn,
    RemindersRunOut,
)
from shared.auth import Authenticator, Principal
from shared.db import SessionDep
from shared.errors import NotFound
from shared.routing import ActorDep, Idempotent, UnitOfWorkRoute

router = APIRouter(prefix="/v1/projects/{project_id}", tags=["results"], route_class=UnitOfWorkRoute)
internal_router = APIRouter(
    prefix="/v1/internal",
    tags=["internal"],
    route_class=UnitOfWorkRoute,
    dependencies=[Depends(Authenticator(kinds=("service",), scopes=("internal",)))],
)

Reader = Annotated[
    Principal,
    Depends(Authenticator(kinds=("partner", "company", "officer", "auditor", "service"), scopes=("monitoring:read",))),
]
Beneficiary = Annotated[Principal, Depends(Authenticator(kinds=("partner", "company"), scopes=("monitoring:write",)))]


async def valid_project_id(project_id: uuid.UUID, session: SessionDep, principal: Reader) -> Project:
    """The project, if the caller may see it (a partner its applications', a company its own); else 404."""
    project = await projects.get(session, project_id, principal)
    if project is None:
        raise NotFound(f"Il progetto {project_id} non esiste.", f"Project {project_id} does not exist.")
    return project


ValidProject = Annotated[Project, Depends(valid_project_id)]
#: Today in Europe/Rome: the clock that bounds the periods reported (a dependency, so a test can set the day).
Today = Annotated[date, Depends(service.today_in_rome)]


@router.post(
    "/kpi-reports",
    response_model=KpiReportOut,
    status_code=201,
    summary="Report a KPI value for a period",
    description="The beneficiary (its partner or the company itself) reports the value a KPI of the action "
    "plan reached in a period (a year, a quarter or a month). One report per KPI and period: "
    "a second is refused with 409 (`already-exists`). Reports stay open after completion for "
    "the call's follow-up years (the follow-up KPIs of the call, e.g. export sales in the new "
    "markets, included); refused with a problem, nothing changed: a period not started yet or "
    "outside the project's and follow-up years (422 `report-period-not-allowed`), a negative "
    "count or amount (422, `value_negative`), a revoked project or a follow-up over (409 "
    "`reporting-closed`). A report on the foreign turnover share also updates the export "
    "growth shown by the statistics.",
)
async def report_kpi(
    _who: Beneficiary,
    body: KpiReportIn,
    project: ValidProject,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    response: Response,
    today: Today,
) -> Any:
    row = await service.report_kpi(
        session=session,
        actor=actor,
        project=project,
        kpi=body.kpi,
        period=body.period,
        value=body.value,
        note=body.note,
        today=today,
    )
    response.headers["Location"] = f"/v1/projects/{project.id}/kpis"
    return service.report_out(row)


@router.get(
    "/kpis",
    response_model=KpiList,
    summary="KPIs with baseline, target, latest value and progress",
)
async def list_kpis(project: ValidProject, session: SessionDep, today: Today) -> Any:
    return await service.kpi_statuses(session=session, project=project, today=today)


@router.post(
    "/milestones/{index}/completion",
    response_model=MilestoneStatusOut,
    status_code=201,
    summary="Report a milestone as completed",
    description="The beneficiary reports when a milestone of the action plan was reached. Once per "
    "milestone: a second report is refused with 409 (`already-exists`).",
)
async def complete_milestone(
    _who: Beneficiary,
    body: MilestoneCompletionIn,
    project: ValidProject,
    session: SessionDep,
    actor: ActorDep,
    _idem: Idempotent,
    index: Annotated[int, Path(ge=0, le=1000, description="Position in the plan, from 0.")],
) -> Any:
    return await service.complete_milestone(
        session=session, actor=actor, project=project, index=index, completed_on=body.completed_on, note=body.note
    )


@router.get(
    "/milestones",
    response_model=MilestoneList,
    summary="Milestones with their status (done, due, overdue)",
)
async def list_milestones(project: ValidProject, session: SessionDep) -> Any:
    return await service.milestone_statuses(session=session, project=project)


@internal_router.post(
    "/reminders/run",
    response_model=RemindersRunOut,
    status_code=200,
    summary="Send the deadline reminders due",
    description="Emits a `project.reminder` event for each milestone not yet completed and each project deadline "
    "whose nearest lead time (default 30 and 7 days before) is reached on `today`. Each reminder is sent "
    "once, ever: running again (or on another replica) sends nothing new. The monitoring service runs "
    "this daily by itself (`MONITORING_REMINDERS_INTERVAL_SECONDS`); this route runs it on demand.",
)
async def run_reminders(
    session: SessionDep, actor: ActorDep, _idem: Idempotent, body: RemindersRunIn | None = None
) -> Any:
    body = body or RemindersRunIn()
    today = body.today or service.today_in_rome()
    sent = await service.send_due_reminders(session, today, tuple(body.days_before), actor=actor)
    return {"today": today, "sent": sent}
