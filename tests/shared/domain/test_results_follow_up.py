"""Follow-up after completion and the checks on a report's period and value (pure rules)."""

from __future__ import annotations

from datetime import date

from shared.domain.results import (
    allows_negative,
    follow_up_schedule,
    follow_up_until,
    parse_period,
    period_refusal,
)


def test_follow_up_schedule_is_the_calendar_years_after_completion() -> None:
    got = follow_up_schedule(date(2026, 11, 20), [("Vendite export", (2, 1))])
    assert [(r.year_after, r.period, r.due_date) for r in got] == [
        (1, "2027", date(2028, 3, 31)),
        (2, "2028", date(2029, 3, 31)),
    ]
    assert follow_up_until(date(2026, 11, 20), 2) == date(2029, 3, 31)
    assert follow_up_until(date(2026, 11, 20), 0) == date(2026, 11, 20)


def test_period_refusals() -> None:
    start, today = date(2025, 3, 10), date(2026, 12, 2)
    assert period_refusal(parse_period("2030"), project_start=start, last_year=None, today=today) == "period_in_future"
    assert (
        period_refusal(parse_period("2027-01"), project_start=start, last_year=2028, today=today) == "period_in_future"
    )
    assert period_refusal(parse_period("2026-12"), project_start=start, last_year=None, today=today) is None
    assert (
        period_refusal(parse_period("2024-Q4"), project_start=start, last_year=None, today=today)
        == "period_outside_project"
    )
    assert period_refusal(parse_period("2025-01"), project_start=start, last_year=None, today=today) is None
    # completed with follow-up up to 2025: 2026 is outside even though it has started
    assert (
        period_refusal(parse_period("2026-Q1"), project_start=start, last_year=2025, today=today)
        == "period_outside_project"
    )


def test_only_rates_may_be_negative() -> None:
    assert allows_negative("%") and allows_negative(" pp ")
    assert not allows_negative("EUR") and not allows_negative("clienti") and not allows_negative("")
