"""Pure rules of a recovery after a revocation: the statutory interest (tasso di interesse legale, art. 1284 of the
Civil Code, fixed each year by a decree of the Ministry of Economy and Finance) on each amount paid, from its
payment date to the recovery date, and the early repayment of the subsidised loan's outstanding capital.

No I/O. Interest is simple interest, day by day: the days between the payment date (excluded) and the recovery
date (included) are split by calendar year, each year's days earn ``amount x rate(year) x days / days in that year
(365 or 366)``; the segments are summed exactly and the sum is rounded **half-up to the cent once**, on the total of
each payment (the segments shown are the exact figures, not rounded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from shared.domain.funding import Installment
from shared.domain.money import CENT
from shared.domain.reporting import add_months

ZERO = Decimal("0.00")

#: Italy's statutory interest rate by calendar year, as a fraction. Sources: the MEF decrees under art. 1284 c.c.
#: (2025: DM 10/12/2024; 2026: DM 10/12/2025, G.U. n. 289 of 13/12/2025). The 2019-2024 rates are the published
#: figures as the desk recorded them: to be confirmed against the Gazzetta Ufficiale (see README).
LEGAL_INTEREST_RATES: Mapping[int, Decimal] = {
    2019: Decimal("0.008"),
    2020: Decimal("0.0005"),
    2021: Decimal("0.0001"),
    2022: Decimal("0.0125"),
    2023: Decimal("0.05"),
    2024: Decimal("0.025"),
    2025: Decimal("0.02"),
    2026: Decimal("0.016"),
}


@dataclass(frozen=True, slots=True)
class InterestSegment:
    year: int
    days: int
    rate: Decimal
    interest: Decimal
    """Exact (not rounded)."""


@dataclass(frozen=True, slots=True)
class Interest:
    amount: Decimal
    paid_on: date
    recovered_on: date
    segments: tuple[InterestSegment, ...]
    total: Decimal
    """Half-up to the cent, once, on the exact sum of the segments."""


def _days_in_year(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def _year_days(paid_on: date, recovered_on: date) -> list[tuple[int, int]]:
    """(year, days of interest in it) for each calendar year with at least one day between ``paid_on`` (excluded)
    and ``recovered_on`` (included)."""
    out = []
    for year in range(paid_on.year, recovered_on.year + 1):
        first = max(paid_on, date(year - 1, 12, 31))  # day count runs from the later of payment and 31 Dec before
        last = min(recovered_on, date(year, 12, 31))
        if (last - first).days > 0:
            out.append((year, (last - first).days))
    return out


def years_needing_a_rate(paid: Sequence[date], recovered_on: date) -> set[int]:
    """The calendar years whose statutory rate a recovery on ``recovered_on`` of amounts paid on ``paid`` needs:
    those with at least one day of interest (a payment recovered on its own day, or a year with no day counted,
    needs no rate)."""
    return {year for d in paid if d <= recovered_on for year, _ in _year_days(d, recovered_on)}


def legal_interest(
    amount: Decimal, paid_on: date, recovered_on: date, rates: Mapping[int, Decimal] = LEGAL_INTEREST_RATES
) -> Interest:
    """Statutory simple interest on ``amount`` from ``paid_on`` (excluded) to ``recovered_on`` (included), per
    calendar-year segment at that year's rate. ``KeyError`` for a year without a rate (never guess a rate);
    ``ValueError`` when the recovery precedes the payment."""
    if recovered_on < paid_on:
        raise ValueError("the recovery date precedes the payment date")
    segments: list[InterestSegment] = []
    for year, days in _year_days(paid_on, recovered_on):
        rate = rates[year]
        segments.append(InterestSegment(year, days, rate, amount * rate * days / _days_in_year(year)))
    exact = sum((s.interest for s in segments), Decimal(0))
    return Interest(amount, paid_on, recovered_on, tuple(segments), exact.quantize(CENT, rounding=ROUND_HALF_UP))


def outstanding_capital(plan: Sequence[Installment], disbursed_on: date, on: date, principal: Decimal) -> Decimal:
    """The loan's capital still owed on ``on``: the principal less the capital of the installments falling due
    (``disbursed_on`` + their month) on or before that day. Due at once on revocation (early repayment)."""
    repaid = sum((i.principal for i in plan if add_months(disbursed_on, i.month) <= on), ZERO)
    return principal - repaid


@dataclass(frozen=True, slots=True)
class Recovery:
    capital: Decimal
    interest: Decimal
    loan_outstanding: Decimal
    items: tuple[Interest, ...]

    @property
    def total(self) -> Decimal:
        return self.capital + self.interest + self.loan_outstanding


def recovery(
    paid: Sequence[tuple[Decimal, date]],
    recovered_on: date,
    *,
    loan_outstanding: Decimal = ZERO,
    rates: Mapping[int, Decimal] = LEGAL_INTEREST_RATES,
) -> Recovery:
    """What a revoked beneficiary gives back on ``recovered_on``: each amount paid with its statutory interest,
    plus the loan's outstanding capital (early repayment)."""
    items = tuple(legal_interest(a, d, recovered_on, rates) for a, d in paid)
    return Recovery(sum((a for a, _ in paid), ZERO), sum((i.total for i in items), ZERO), loan_outstanding, items)
