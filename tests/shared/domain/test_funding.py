from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from shared.domain.call_rules import CallRules
from shared.domain.funding import (
    CAP_EXCEEDED,
    AidEstimate,
    Cut,
    ExpenseAmount,
    aid_base,
    compute_aid,
    compute_eligible,
    gross_grant_equivalent,
    repayment_plan,
)

D = Decimal  # short name for the worked examples

CALL_FILE = Path(__file__).resolve().parents[3] / "calls" / "verso-nuovi-mercati-2025.yaml"
RULES = CallRules.model_validate(yaml.safe_load(CALL_FILE.read_text(encoding="utf-8")))


def lines(**amounts: str) -> list[ExpenseAmount]:
    return [ExpenseAmount(category=c, amount=D(a)) for c, a in amounts.items()]


def test_eligible_with_flat_rates() -> None:
    # a 10 000 <= 20 % of (b+c) = 17 000; c 5 000 <= 10 % of b = 8 000: no cut.
    # d = 20 % of (a+b+c) = 19 000; e = 7 % of (a+b+c+d) = 7 % of 114 000 = 7 980.
    b = compute_eligible(RULES, lines(a="10000.00", b="80000.00", c="5000.00"))
    assert b.direct == {"a": D("10000.00"), "b": D("80000.00"), "c": D("5000.00")}
    assert b.flat_rates == {"d": D("19000.00"), "e": D("7980.00")}
    assert b.total == D("121980.00")
    assert b.cuts == ()
    assert compute_aid(RULES, b.total) == AidEstimate(
        eligible_total=D("121980.00"),
        grant=D("24396.00"),
        loan=D("79287.00"),
        total_aid=D("103683.00"),
        aid_base=D("121980.00"),
    )


def test_lines_of_same_category_add_up() -> None:
    b = compute_eligible(
        RULES,
        [ExpenseAmount("b", D("40000.00")), ExpenseAmount("b", D("10000.50"))],
        include_flat_rates=set(),
    )
    assert b.requested["b"] == D("50000.50")
    assert b.requested["a"] == D("0.00")
    assert b.total == D("50000.50")


def test_caps_cut_the_excess_in_dependency_order() -> None:
    # a at 20 % of (b + c); c at 10 % of the eligible total (a + b + c, no flat rates here), a included after
    # its own cap. For c < 50 000, a = 20 % (100 000 + c) < 30 000, so c <= 10 % (120 000 + 1.2 c), i.e.
    # c <= 12 000 / 0.88 = 13 636.36...: to the cent, c = 13 636.36 (a = 22 727.27, total 136 363.63, 10 % of
    # it 13 636.363 -> 13 636.36 >= c); c = 13 636.37 gives the same a and 10 % of 136 363.64 = 13 636.36 < c.
    b = compute_eligible(RULES, lines(a="30000.00", b="100000.00", c="15000.00"), include_flat_rates=set())
    assert b.direct == {"a": D("22727.27"), "b": D("100000.00"), "c": D("13636.36")}
    assert b.requested["a"] == D("30000.00") and b.requested["c"] == D("15000.00")
    assert b.cuts == (
        Cut(category="a", requested=D("30000.00"), allowed=D("22727.27"), reason=CAP_EXCEEDED),
        Cut(category="c", requested=D("15000.00"), allowed=D("13636.36"), reason=CAP_EXCEEDED),
    )
    assert b.flat_rates == {}
    assert b.total == D("136363.63")


def test_training_is_capped_at_ten_percent_of_the_eligible_total_flat_rates_included() -> None:
    # b 80 000, c 20 000, d and e included. With c = x: d = 20 % (80 000 + x), e = 7 % (1.2 (80 000 + x)),
    # total = 1.284 (80 000 + x); x <= 0.1284 (80 000 + x) -> x <= 10 272 / 0.8716 = 11 785.22...
    # To the cent: x = 11 785.22 -> d = 18 357.04, e = 7 % of 110 142.26 = 7 709.95 (7 709.958), total
    # 117 852.21, 10 % = 11 785.22 >= x; x = 11 785.23 -> total 117 852.22 (d 18 357.04, e 7 709.95), 10 % =
    # 11 785.22 < x.
    b = compute_eligible(RULES, lines(b="80000.00", c="20000.00"))
    assert b.direct["c"] == D("11785.22")
    assert b.flat_rates == {"d": D("18357.04"), "e": D("7709.95")}
    assert b.total == D("117852.21")
    assert b.cuts == (Cut(category="c", requested=D("20000.00"), allowed=D("11785.22"), reason=CAP_EXCEEDED),)
    # within the cap nothing moves: c 5 000 <= 10 % of 121 980
    assert compute_eligible(RULES, lines(a="10000.00", b="80000.00", c="5000.00")).cuts == ()


def test_flat_rates_on_capped_bases_and_optional() -> None:
    only_d = compute_eligible(RULES, lines(a="20000.00", b="100000.00", c="10000.00"), include_flat_rates={"d"})
    assert only_d.flat_rates == {"d": D("26000.00")}  # 20 % of 130 000
    only_e = compute_eligible(RULES, lines(a="20000.00", b="100000.00", c="10000.00"), include_flat_rates={"e"})
    assert only_e.flat_rates == {"e": D("9100.00")}  # 7 % of 130 000 (no d)
    assert only_e.total == D("139100.00")


def test_floor_to_cent_matters() -> None:
    b = compute_eligible(RULES, lines(b="33333.33"))
    assert b.flat_rates == {"d": D("6666.66"), "e": D("2799.99")}  # 6666.666 and 2799.9993
    aid = compute_aid(RULES, D("33333.33"))
    assert aid.grant == D("6666.66")  # 6666.666
    assert aid.loan == D("21666.66")  # 21666.6645
    assert aid.total_aid == D("28333.32") <= D("0.85") * D("33333.33")


def test_aid_examples() -> None:
    assert compute_aid(RULES, D("100000.00")) == AidEstimate(
        D("100000.00"), D("20000.00"), D("65000.00"), D("85000.00"), D("100000.00")
    )
    # Above the maximum eligible cost the aid is computed on 600 000: 20 % = 120 000, 65 % = 390 000.
    assert compute_aid(RULES, D("700000.00")) == AidEstimate(
        D("700000.00"), D("120000.00"), D("390000.00"), D("510000.00"), D("600000.00")
    )
    # Credit class 4 halves the loan cap; class 5 has no loan.
    assert compute_aid(RULES, D("600000.00"), D("0.50")).loan == D("195000.00")
    assert compute_aid(RULES, D("100000.00"), D("0.50")).loan == D("65000.00")
    assert compute_aid(RULES, D("100000.00"), D("0")).total_aid == D("20000.00")


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        compute_eligible(RULES, lines(z="10.00"))
    with pytest.raises(ValueError):
        compute_eligible(RULES, lines(d="10.00"))
    with pytest.raises(ValueError):
        compute_eligible(RULES, lines(b="0.00"))
    with pytest.raises(ValueError):
        compute_eligible(RULES, lines(b="10.001"))
    with pytest.raises(ValueError):
        compute_eligible(RULES, lines(b="10.00"), include_flat_rates={"a"})
    with pytest.raises(ValueError):
        compute_aid(RULES, D("10.001"))
    with pytest.raises(ValueError):
        compute_aid(RULES, D("10.00"), D("1.5"))


def test_repayment_plan_french_with_grace() -> None:
    plan = repayment_plan(D("65000.00"), D("0.015"), years=6, grace_months=12)
    assert len(plan) == 12
    assert [i.month for i in plan[:3]] == [6, 12, 18]
    # Grace: interest only (65 000 x 0.75 %).
    assert plan[0].payment == plan[0].interest == D("487.50") and plan[1].principal == D("0.00")
    # Constant payment 65 000 x r / (1 - (1 + r)^-10), r = 0.75 %.
    assert {i.payment for i in plan[2:]} == {D("6771.13")}
    assert plan[2].principal == D("6283.63")
    assert plan[-1].principal == D("6720.72") and plan[-1].outstanding == D("0.00")
    assert sum(i.principal for i in plan) == D("65000.00")


def test_repayment_plan_last_installment_absorbs_rounding() -> None:
    plan = repayment_plan(D("1000.00"), D("0"), years=1, grace_months=0, periods_per_year=3)
    assert [i.principal for i in plan] == [D("333.33"), D("333.33"), D("333.34")]
    assert all(i.interest == 0 for i in plan)


def test_repayment_plan_errors() -> None:
    with pytest.raises(ValueError):
        repayment_plan(D("1000.00"), D("0.015"), years=1, grace_months=12)
    with pytest.raises(ValueError):
        repayment_plan(D("1000.00"), D("0.015"), years=3, grace_months=5)
    with pytest.raises(ValueError):
        repayment_plan(D("0"), D("0.015"), years=3, grace_months=0)


def test_gross_grant_equivalent() -> None:
    # One yearly installment: saving 1 000 x 5 % = 50, discounted one year at 5 %: 47.619...
    plan = repayment_plan(D("1000.00"), D("0"), years=1, grace_months=0, periods_per_year=1)
    assert gross_grant_equivalent(D("1000.00"), D("0"), D("0.05"), plan) == D("47.61")
    # No saving when the loan is not below the reference rate.
    assert gross_grant_equivalent(D("1000.00"), D("0"), D("0"), plan) == D("0.00")
    big = repayment_plan(D("65000.00"), D("0.015"), years=6, grace_months=12)
    gge = gross_grant_equivalent(D("65000.00"), D("0.015"), D("0.041"), big)
    assert D("0") < gge < D("65000.00") * (D("0.041") - D("0.015")) * 6
    assert gge == D("5808.95")
    with pytest.raises(ValueError):
        gross_grant_equivalent(D("999.00"), D("0"), D("0.05"), plan)


def test_an_eligible_total_above_the_maximum_is_capped_not_refused() -> None:
    # 750 000.00 -> base 600 000.00: grant 20 % = 120 000.00, loan 65 % = 390 000.00 (both at their caps), 85 %
    # of the base = 510 000.00 is not exceeded.
    assert aid_base(RULES, D("750000.00")) == D("600000.00")
    assert aid_base(RULES, D("599999.99")) == D("599999.99")
    assert compute_aid(RULES, D("750000.00")) == AidEstimate(
        D("750000.00"), D("120000.00"), D("390000.00"), D("510000.00"), D("600000.00")
    )
    # credit class 4 (loan cap share 50 %): loan min(390 000.00, 195 000.00) = 195 000.00 on the same base
    assert compute_aid(RULES, D("750000.00"), D("0.50")).loan == D("195000.00")
    # the intensity ceiling is taken on the base, not on the total: 85 % of 600 000 = 510 000, not 637 500
    capped = compute_aid(RULES, D("600000.01"))
    assert (capped.aid_base, capped.total_aid) == (D("600000.00"), D("510000.00"))
