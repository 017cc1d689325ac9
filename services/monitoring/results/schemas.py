"""Results: KPI reports, KPI progress, milestones and their status, the reminders run."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from services.monitoring.networking.schemas import B2bResults
from shared.schemas import ApiModel, OutModel


def _decimal_string(v: Any) -> Any:
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        raise PydanticCustomError("number_not_string", 'Values must be strings such as "12.50"')
    return v


#: A KPI value: any sign (a share can fall), two decimals, a JSON string like money.
KpiValue = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(
        max_digits=14, decimal_places=2, allow_inf_nan=False, examples=["27.50"], json_schema_extra={"type": "string"}
    ),
]
PeriodLabel = Annotated[
    str,
    Field(
        pattern=r"^\d{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$",
        description="The period the value refers to: a year (2026), a quarter (2026-Q3) or a month (2026-09).",
        examples=["2026-Q3"],
    ),
]
Note = Annotated[str, Field(max_length=2000)]


class KpiReportIn(ApiModel):
    kpi: Annotated[
        str,
        Field(
            min_length=1, max_length=300, description="The name of one of the project's KPIs, as in its action plan."
        ),
    ]
    period: PeriodLabel
    value: KpiValue
    note: Note | None = None


class KpiReportOut(OutModel):
    id: uuid.UUID
    project_id: uuid.UUID
    kpi: str
    period: str
    value: Decimal
    note: str | None
    reported_by: str
    reported_at: datetime


class LatestValue(OutModel):
    period: str
    value: Decimal
    reported_at: datetime


class KpiStatus(OutModel):
    name: str
    unit: str
    baseline: Decimal
    target: Decimal
    latest: LatestValue | None = Field(description="The report of the most recent period (null: none yet).")
    progress_percent: Decimal | None = Field(
        description="(latest - baseline) / (target - baseline) x 100, two decimals, half-even: 100 means the target "
        "is reached; above 100 exceeded; negative below the baseline. Null without a report or when "
        "target equals baseline."
    )
    reports: int = Field(description="How many periods were reported.")


class FollowUpReportStatus(OutModel):
    kpi: str = Field(description="A follow-up KPI of the call (e.g. export sales in the new markets).")
    unit: str
    year_after: int = Field(description="Years after completion (1: the calendar year after the completion's).")
    period: str = Field(description="The calendar year to report.")
    due_date: date = Field(description="31 March of the year after the period.")
    status: Literal["upcoming", "due", "overdue", "reported"] = Field(
        description="upcoming: its year has not started; due: to be reported by the due date; overdue: the due "
        "date passed without a report; reported: the report is `report`."
    )
    report: KpiReportOut | None


class KpiList(OutModel):
    project_id: uuid.UUID
    items: list[KpiStatus] = Field(description="Every KPI of the action plan, in its order (at most 50: not paged).")
    follow_up: list[FollowUpReportStatus] = Field(
        default_factory=list,
        description="Once the project is completed: the follow-up reports the call asks "
        "after completion (fixed in the outcome), with what was reported.",
    )
    b2b: B2bResults = Field(
        description="Networking with international operators: the outcomes of the company's B2B meetings "
        "(recorded at intake after each event) counted for this project."
    )


class MilestoneCompletionIn(ApiModel):
    completed_on: date = Field(description="When the milestone was reached (not in the future, Europe/Rome).")
    note: Note | None = None


class MilestoneStatusOut(OutModel):
    index: int = Field(description="Position of the milestone in the action plan, from 0.")
    title: str
    due_date: date
    status: Literal["done", "due", "overdue"] = Field(
        description="done: completion reported; overdue: due date passed without it; due: still ahead."
    )
    completed_on: date | None
    note: str | None
    reported_by: str | None
    reported_at: datetime | None


class MilestoneList(OutModel):
    project_id: uuid.UUID
    today: date = Field(description="The day (Europe/Rome) the statuses refer to.")
    items: list[MilestoneStatusOut] = Field(description="Every milestone of the plan, in its order (at most 100).")


class RemindersRunIn(ApiModel):
    today: date | None = Field(None, description="The day to run for (default today, Europe/Rome).")
    days_before: list[Annotated[int, Field(ge=0, le=365)]] = Field(
        default_factory=lambda: [30, 7],
        min_length=1,
        max_length=10,
        description="Lead times in days: each deadline gets a reminder when the nearest one is reached.",
    )


class ReminderSent(OutModel):
    project_id: uuid.UUID
    kind: str
    due_date: date
    days_before: int
    days_left: int


class RemindersRunOut(OutModel):
    today: date
    sent: list[ReminderSent] = Field(description="Reminders emitted by this run (each is sent once, ever).")
