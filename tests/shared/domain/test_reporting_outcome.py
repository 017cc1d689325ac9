"""Monitoring's outcome rules (shared.domain.reporting): worked figures, no database."""

from datetime import date
from decimal import Decimal

import pytest

from shared.domain.reporting import add_months, advance_amount, decide_outcome, revocation

D = Decimal
RULES = {"approved": D("100000.00"), "grant": D("20000.00"), "loan": D("65000.00"), "revocation_threshold": D("0.70")}


def test_full_spend_keeps_the_aid() -> None:
    out = decide_outcome(recognised=D("100000.00"), **RULES)
    assert (out.kind, out.grant, out.loan, out.released) == ("full", D("20000.00"), D("65000.00"), D("0.00"))
    more = decide_outcome(recognised=D("120000.00"), **RULES)
    assert (more.kind, more.grant) == ("full", D("20000.00"))  # spending more never raises the aid


def test_85_percent_reduces_grant_and_loan_in_proportion() -> None:
    out = decide_outcome(recognised=D("85000.00"), **RULES)
    assert (out.kind, out.grant, out.loan, out.released) == ("reduced", D("17000.00"), D("55250.00"), D("12750.00"))


def test_a_reduction_is_floored_to_the_cent() -> None:
    # 24396.37 x 103684.59 / 121981.87 = 20736.9145...; 79288.21 x ... = 67394.9788...
    out = decide_outcome(
        approved=D("121981.87"),
        recognised=D("103684.59"),
        grant=D("24396.37"),
        loan=D("79288.21"),
        revocation_threshold=D("0.70"),
    )
    assert (out.kind, out.grant, out.loan) == ("reduced", D("20736.91"), D("67394.97"))
    assert out.released == D("24396.37") + D("79288.21") - D("20736.91") - D("67394.97") == D("15552.70")


def test_the_threshold_itself_is_a_reduction_and_below_it_a_revocation() -> None:
    at = decide_outcome(recognised=D("70000.00"), **RULES)
    assert (at.kind, at.grant, at.loan) == ("reduced", D("14000.00"), D("45500.00"))
    below = decide_outcome(recognised=D("69999.99"), **RULES)
    assert (below.kind, below.reason, below.grant, below.released) == (
        "revoked",
        "below_threshold",
        D("0.00"),
        D("85000.00"),
    )
    sixty = decide_outcome(recognised=D("60000.00"), **RULES)
    assert (sixty.kind, sixty.reason) == ("revoked", "below_threshold")


def test_deadline_and_site_revoke_whatever_the_spend() -> None:
    late = decide_outcome(recognised=D("100000.00"), deadline_missed=True, **RULES)
    assert (late.kind, late.reason, late.released) == ("revoked", "deadline_missed", D("85000.00"))
    no_site = decide_outcome(recognised=D("100000.00"), site_never_opened=True, **RULES)
    assert (no_site.kind, no_site.reason) == ("revoked", "site_never_opened")
    early = revocation(approved=D("100000.00"), grant=D("20000.00"), loan=D("65000.00"), reason="deadline_missed")
    assert (early.kind, early.grant, early.loan, early.released) == ("revoked", D("0.00"), D("0.00"), D("85000.00"))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        decide_outcome(recognised=D("1.001"), **RULES)
    with pytest.raises(ValueError):
        decide_outcome(
            approved=D("0.00"), recognised=D("1.00"), grant=D("1.00"), loan=D("0.00"), revocation_threshold=D("0.70")
        )


def test_advance_and_dates() -> None:
    assert advance_amount(D("24396.37"), D("0.40")) == D("9758.54")  # 9758.548 floored
    assert add_months(date(2026, 1, 31), 18) == date(2027, 7, 31)
    assert add_months(date(2025, 8, 31), 6) == date(2026, 2, 28)
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)
