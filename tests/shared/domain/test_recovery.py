"""The statutory interest of a recovery and the loan's outstanding capital, worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.domain.funding import repayment_plan
from shared.domain.recovery import (
    LEGAL_INTEREST_RATES,
    legal_interest,
    outstanding_capital,
    recovery,
    years_needing_a_rate,
)


def test_interest_across_a_year_boundary_is_split_by_year_and_rounded_once_half_up() -> None:
    # 10 000.00 paid on 1 Oct 2025, recovered on 2 Mar 2026.
    # 2025: 2 Oct .. 31 Dec = 30 + 30 + 31 = 91 days at 2 %:   10000 x 0.02 x 91/365  = 18200/365 = 49.86301369...
    # 2026: 1 Jan .. 2 Mar  = 31 + 28 + 2  = 61 days at 1.6 %: 10000 x 0.016 x 61/365 =  9760/365 = 26.73972602...
    # total 27960/365 = 76.60273972... -> 76.60
    got = legal_interest(Decimal("10000.00"), date(2025, 10, 1), date(2026, 3, 2))
    assert [(s.year, s.days, s.rate) for s in got.segments] == [
        (2025, 91, Decimal("0.02")),
        (2026, 61, Decimal("0.016")),
    ]
    assert got.total == Decimal("76.60")
    assert sum(s.interest for s in got.segments) == Decimal(27960) / Decimal(365)


def test_half_up_at_the_half_cent_and_leap_years_count_366_days() -> None:
    # 2024 is a leap year: 36 600.00 x 2.5 % x 1/366 = 2.50 exactly; 18 300.00 -> 1.25; 1 464.00 -> 0.10
    assert legal_interest(Decimal("36600.00"), date(2024, 5, 1), date(2024, 5, 2)).total == Decimal("2.50")
    # 2023 at 5 %: 73.00 x 0.05 x 1/365 = 0.01; 36.50 x 0.05 / 365 = 0.005 -> half-up 0.01
    assert legal_interest(Decimal("36.50"), date(2023, 3, 1), date(2023, 3, 2)).total == Decimal("0.01")
    assert legal_interest(Decimal("36.49"), date(2023, 3, 1), date(2023, 3, 2)).total == Decimal("0.00")


def test_same_day_is_no_interest_and_unknown_years_or_reversed_dates_are_refused() -> None:
    assert legal_interest(Decimal("100.00"), date(2025, 6, 1), date(2025, 6, 1)).total == Decimal("0.00")
    with pytest.raises(ValueError):
        legal_interest(Decimal("100.00"), date(2025, 6, 2), date(2025, 6, 1))
    unknown = max(LEGAL_INTEREST_RATES) + 1  # the first year the table does not know yet
    with pytest.raises(KeyError):
        legal_interest(Decimal("100.00"), date(unknown - 1, 12, 1), date(unknown, 1, 2))
    # a payment recovered on its own day earns nothing: no rate is needed, even in a year the table lacks
    assert legal_interest(Decimal("100.00"), date(unknown, 3, 1), date(unknown, 3, 1)).segments == ()
    assert LEGAL_INTEREST_RATES[2023] == Decimal("0.05")


def test_outstanding_capital_counts_only_installments_already_due() -> None:
    # 1 000.00 at 0 %, one year, no grace, half-yearly: 500.00 due at month 6 and 500.00 at month 12
    plan = repayment_plan(Decimal("1000.00"), Decimal("0"), 1, 0, 2)
    start = date(2025, 1, 15)
    assert outstanding_capital(plan, start, date(2025, 7, 14), Decimal("1000.00")) == Decimal("1000.00")
    assert outstanding_capital(plan, start, date(2025, 7, 15), Decimal("1000.00")) == Decimal("500.00")
    assert outstanding_capital(plan, start, date(2026, 1, 15), Decimal("1000.00")) == Decimal("0.00")


def test_recovery_adds_capital_interest_and_the_loans_outstanding_capital() -> None:
    r = recovery([(Decimal("10000.00"), date(2025, 10, 1))], date(2026, 3, 2), loan_outstanding=Decimal("65000.00"))
    assert (r.capital, r.interest, r.loan_outstanding, r.total) == (
        Decimal("10000.00"),
        Decimal("76.60"),
        Decimal("65000.00"),
        Decimal("75076.60"),
    )


def test_only_years_with_a_day_of_interest_need_a_rate() -> None:
    # paid 31 Dec 2025, recovered 1 Jan 2026: one day, in 2026 (the payment day is excluded): 2025 needs no rate
    assert years_needing_a_rate([date(2025, 12, 31)], date(2026, 1, 1)) == {2026}
    # paid and recovered the same day: none; paid 1 Oct 2025, recovered 2 Mar 2026: both years
    assert years_needing_a_rate([date(2030, 5, 4)], date(2030, 5, 4)) == set()
    assert years_needing_a_rate([date(2025, 10, 1), date(2026, 3, 2)], date(2026, 3, 2)) == {2025, 2026}
