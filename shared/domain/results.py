"""Pure rules of a funded project's results: reporting periods, KPI progress, milestone status and the
deadline reminders due on a day. No I/O: the monitoring service loads the project and its reports, calls
these functions and stores what they decide.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

HUNDRED = Decimal(100)
PERCENT_QUANTUM = Decimal("0.01")

_PERIOD_RE = re.compile(r"^(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?$")

MilestoneStatus = Literal["done", "due", "overdue"]
ReminderKind = Literal["milestone", "deadline", "follow_up"]


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period: a year (``2026``), a quarter (``2026-Q3``) or a month (``2026-09``)."""

    label: str
    start: date
    end: date


def parse_period(label: str) -> Period:
    """The period named by ``label``; ``ValueError`` if it is none of ``YYYY``, ``YYYY-Qn``, ``YYYY-MM``."""
    m = _PERIOD_RE.match(label)
    if m is None:
        raise ValueError(f"{label!r} is not a period (YYYY, YYYY-Qn or YYYY-MM)")
    year = int(m["year"])
    if year < 1900:
        raise ValueError(f"{label!r}: year out of range")
    if m["quarter"]:
        first = 3 * (int(m["quarter"]) - 1) + 1
        last = first + 2
    elif m["month"]:
        first = last = int(m["month"])
    else:
        first, last = 1, 12
    return Period(label, date(year, first, 1), date(year, last, calendar.monthrange(year, last)[1]))


def kpi_progress(baseline: Decimal, target: Decimal, value: Decimal | None) -> Decimal | None:
    """How far ``value`` has gone from ``baseline`` towards ``target``, in percent with two decimals
    (half-even rounding): 0 at the baseline, 100 at the target, more when the target is exceeded, negative
    when the value fell below the baseline. None without a value, or when target equals baseline (no
    distance to cover: progress is not defined)."""
    if value is None or target == baseline:
        return None
    return ((value - baseline) * HUNDRED / (target - baseline)).quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class KpiValue:
    period: str
    value: Decimal
    order: int = 0
    """Tie-break between reports whose periods end on the same day (e.g. ``2026`` and ``2026-Q4``): the later
    report (higher order) wins."""


def latest_value(values: Iterable[KpiValue]) -> KpiValue | None:
    """The report of the most recent period: the one whose period ends last; ties go to the later report."""
    best: tuple[date, int] | None = None
    chosen: KpiValue | None = None
    for v in values:
        key = (parse_period(v.period).end, v.order)
        if best is None or key > best:
            best, chosen = key, v
    return chosen


def milestone_status(due_date: date, completed_on: date | None, today: date) -> MilestoneStatus:
    """done once completion is reported; overdue when its due date has passed without it; due otherwise."""
    if completed_on is not None:
        return "done"
    return "overdue" if today > due_date else "due"


@dataclass(frozen=True, slots=True)
class Deadline:
    """Something a project must meet by a date: a milestone (``index`` in the plan) or the project deadline."""

    kind: ReminderKind
    due_date: date
    title: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class ReminderDue:
    deadline: Deadline
    days_before: int
    days_left: int

    @property
    def key(self) -> str:
        """What makes the reminder unique for its project, with its due date (at most 32 characters)."""
        if self.deadline.kind in ("milestone", "follow_up"):
            return f"{self.deadline.kind}:{self.deadline.index}:{self.days_before}d"
        return f"deadline:{self.days_before}d"


def reminders_due(
    deadlines: Sequence[Deadline], today: date, days_before: Sequence[int] = (30, 7)
) -> list[ReminderDue]:
    """The reminders to send on ``today``: for each deadline still ahead (or today), the reminder of the
    nearest lead time already reached. A run that missed the 30-day mark sends the 7-day reminder only when it
    is reached, never both at once; a deadline already past gets none (its status says overdue)."""
    leads = sorted({d for d in days_before if d >= 0})
    out: list[ReminderDue] = []
    for deadline in deadlines:
        left = (deadline.due_date - today).days
        if left < 0:
            continue
        reached = [d for d in leads if left <= d]
        if reached:
            out.append(ReminderDue(deadline, reached[0], left))
    return out


def plan_deadlines(
    milestones: Sequence[tuple[str, date]], project_deadline: date, completed: Iterable[int] = ()
) -> list[Deadline]:
    """The deadlines of a project: its milestones not yet completed (by index) and the project deadline."""
    done = set(completed)
    out = [Deadline("milestone", due, title, i) for i, (title, due) in enumerate(milestones) if i not in done]
    out.append(Deadline("deadline", project_deadline, "project deadline"))
    return out


_FOREIGN_WORDS = ("estero", "estera", "esteri", "export", "foreign", "abroad")


def is_foreign_share_kpi(name: str, unit: str) -> bool:
    """Whether a KPI of the plan is the share of turnover made abroad (a percentage whose name says foreign or
    export): its baseline and latest value are the beneficiary's export growth in the statistics."""
    lowered = name.lower()
    return unit.strip() == "%" and any(w in lowered for w in _FOREIGN_WORDS)


# ---------------------------------------------------------------- follow-up after completion and report checks


@dataclass(frozen=True, slots=True)
class FollowUpReport:
    """A result due after completion: ``kpi`` for the calendar year ``period`` (the ``year_after``-th year after
    the year of completion), due by 31 March of the year after it."""

    kpi: str
    year_after: int
    period: str
    due_date: date


def follow_up_schedule(completed_on: date, kpis: Sequence[tuple[str, Sequence[int]]]) -> list[FollowUpReport]:
    """The follow-up reports of a project completed on ``completed_on``: for each (KPI name, years after
    completion), the calendar year ``completed_on.year + n``, due by 31 March of the next year."""
    out = []
    for name, years in kpis:
        for n in sorted(set(years)):
            year = completed_on.year + n
            out.append(FollowUpReport(name, n, str(year), date(year + 1, 3, 31)))
    return out


def follow_up_until(completed_on: date, follow_up_years: int) -> date:
    """The last day results may be reported after completion: 31 March after the last follow-up year (the
    completion date itself without follow-up years)."""
    if follow_up_years <= 0:
        return completed_on
    return date(completed_on.year + follow_up_years + 1, 3, 31)


PeriodRefusal = Literal["period_in_future", "period_outside_project"]


def period_refusal(period: Period, *, project_start: date, last_year: int | None, today: date) -> PeriodRefusal | None:
    """Why a report for ``period`` is refused, or None: a period that has not started yet (``today`` in the call's
    time zone), or one outside the project's years (from the year it started) and its follow-up years
    (``last_year``, the last follow-up year once completed; None while the project runs: today bounds it)."""
    if period.start > today:
        return "period_in_future"
    if period.end.year < project_start.year or (last_year is not None and period.start.year > last_year):
        return "period_outside_project"
    return None


_SIGNED_UNITS = ("%", "pp", "p.p.", "punti percentuali", "percentage points")


def allows_negative(unit: str) -> bool:
    """Only a rate (a percentage or percentage points: a growth can be negative) may be below zero; every other
    unit is a count (customers, fairs, employees) or an amount (EUR) and is refused when negative."""
    return unit.strip().lower() in _SIGNED_UNITS
