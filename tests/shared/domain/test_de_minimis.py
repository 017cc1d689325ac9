import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from shared.domain.call_rules import CallRules
from shared.domain.de_minimis import (
    DEFAULT_MARGINS_BP,
    PriorAid,
    aid_in_period,
    cap_new_aid,
    gge_per_euro,
    loan_gge,
    reference_rate,
    window_start,
)
from shared.domain.funding import gross_grant_equivalent, repayment_plan

D = Decimal  # short name for the worked examples

CALL_FILE = Path(__file__).resolve().parents[3] / "calls" / "verso-nuovi-mercati-2025.yaml"
RULES = CallRules.model_validate(yaml.safe_load(CALL_FILE.read_text(encoding="utf-8")))

GRANT_DATE = date(2025, 6, 10)
APPLICANT = "IT01234567890"
LINKED = "09876543210"  # a linked enterprise: same single undertaking
STRANGER = "11111111111"
MEMBERS = {APPLICANT, LINKED}
RATE = D("0.05")  # GGE of one euro of loan, round for the worked examples


def aid(vat: str, day: date, amount: str, ref: str) -> PriorAid:
    return PriorAid(vat_number=vat, granted_on=day, amount=D(amount), source="RNA", reference=ref)


def register(applicant_recent: str = "100000.00") -> list[PriorAid]:
    # Rolling 3 years ending on 2025-06-10: from 2022-06-11 to 2025-06-10.
    return [
        aid("01234567890", date(2022, 6, 10), "50000.00", "COR-1"),  # exactly 3 years before: outside
        aid("IT 01234567890", date(2022, 6, 11), "20000.00", "COR-2"),  # first day of the window: inside
        aid(APPLICANT, date(2023, 1, 15), applicant_recent, "COR-3"),
        aid(LINKED, date(2024, 3, 1), "150000.00", "COR-4"),  # the linked enterprise's aid counts
        aid(STRANGER, date(2024, 5, 1), "99999.00", "COR-5"),  # another undertaking: not counted
        aid(APPLICANT, date(2025, 7, 1), "1000.00", "COR-6"),  # after the grant date: not counted
    ]


def test_rolling_window() -> None:
    assert window_start(GRANT_DATE, 3) == date(2022, 6, 11)
    assert window_start(date(2028, 2, 29), 3) == date(2025, 3, 1)
    period = aid_in_period(RULES, register(), MEMBERS, GRANT_DATE)
    assert [p.reference for p in period.counted] == ["COR-2", "COR-3", "COR-4"]
    assert [p.reference for p in period.outside_window] == ["COR-1", "COR-6"]
    assert period.total == D("270000.00")
    # A year later (window from 2023-06-11) COR-2 and COR-3 have left it; COR-6 is now inside.
    later = aid_in_period(RULES, register(), MEMBERS, date(2026, 6, 10))
    assert [p.reference for p in later.counted] == ["COR-4", "COR-6"]
    assert later.total == D("151000.00")


def test_new_aid_fits() -> None:
    # Headroom 300 000 - 270 000 = 30 000; grant 24 396 + loan 79 287 x 0.05 = 3 964.35 -> 28 360.35.
    out = cap_new_aid(RULES, register(), MEMBERS, D("24396.00"), D("79287.00"), RATE, grant_date=GRANT_DATE)
    assert out.headroom == D("30000.00")
    assert out.requested_equivalent == D("28360.35")
    assert (out.allowed_grant, out.allowed_loan) == (D("24396.00"), D("79287.00"))
    assert out.allowed_equivalent == D("28360.35")
    assert out.reduced is False and out.refused is False
    codes = [s.code for s in out.computation]
    assert codes == [
        "period",
        "prior_aid_counted",
        "prior_aid_counted",
        "prior_aid_counted",
        "prior_aid_outside_period",
        "prior_aid_outside_period",
        "prior_total",
        "headroom",
        "requested",
        "fits",
    ]
    headroom_step = out.computation[7]
    assert "300.000,00 €" in headroom_step.detail_it and "30.000,00 €" in headroom_step.detail_it
    assert "EUR 270,000.00" in headroom_step.detail_en
    assert out.computation[1].amount == D("20000.00")


def test_the_steps_are_written_when_first_read_and_then_kept() -> None:
    # a submit's check uses the figures only: the texts are not written until someone reads them
    out = cap_new_aid(RULES, register("104000.00"), MEMBERS, D("24396.00"), D("79287.00"), RATE, grant_date=GRANT_DATE)
    assert "computation" not in vars(out)
    assert (out.allowed_grant, out.allowed_loan, out.reduced) == (D("24396.00"), D("32080.00"), True)
    first = out.computation
    assert vars(out)["computation"] is first and out.computation is first
    assert [s.code for s in first][-3:] == ["loan_reduced", "grant_kept", "allowed"]
    # the figures of an outcome, not its texts, make it equal to another
    again = cap_new_aid(
        RULES, register("104000.00"), MEMBERS, D("24396.00"), D("79287.00"), RATE, grant_date=GRANT_DATE
    )
    assert again == out and again.computation == first


def test_loan_is_reduced_first() -> None:
    # Prior 274 000: headroom 26 000. The grant 24 396 stays; 1 604 are left for the loan's GGE:
    # loan = 1 604 / 0.05 = 32 080.00 (GGE 1 604.00). Total 26 000.00.
    out = cap_new_aid(RULES, register("104000.00"), MEMBERS, D("24396.00"), D("79287.00"), RATE, grant_date=GRANT_DATE)
    assert out.headroom == D("26000.00")
    assert (out.allowed_grant, out.allowed_loan) == (D("24396.00"), D("32080.00"))
    assert out.allowed_loan_equivalent == D("1604.00")
    assert out.allowed_equivalent == D("26000.00")
    assert out.reduced is True and out.refused is False
    assert [s.code for s in out.computation][-3:] == ["loan_reduced", "grant_kept", "allowed"]
    assert "da 79.287,00 € a 32.080,00 €" in out.computation[-3].detail_it


def test_then_the_grant() -> None:
    # Prior 280 000: headroom 20 000 < grant 24 396: no loan, grant 20 000.
    out = cap_new_aid(RULES, register("110000.00"), MEMBERS, D("24396.00"), D("79287.00"), RATE, grant_date=GRANT_DATE)
    assert (out.allowed_grant, out.allowed_loan) == (D("20000.00"), D("0.00"))
    assert out.allowed_equivalent == D("20000.00")
    assert out.reduced is True and out.refused is False
    assert [s.code for s in out.computation][-3:] == ["loan_reduced", "grant_reduced", "allowed"]


def test_grant_first_order_keeps_the_loan() -> None:
    # Headroom 26 000: the loan's GGE 3 964.35 stays, the grant becomes 22 035.65.
    out = cap_new_aid(
        RULES,
        register("104000.00"),
        MEMBERS,
        D("24396.00"),
        D("79287.00"),
        RATE,
        grant_date=GRANT_DATE,
        order="grant_first",
    )
    assert (out.allowed_grant, out.allowed_loan) == (D("22035.65"), D("79287.00"))
    assert out.allowed_equivalent == D("26000.00")


@pytest.mark.parametrize("recent", ["130000.00", "140000.00"])
def test_refused_without_headroom(recent: str) -> None:
    # Prior 300 000 (exactly the ceiling) or 310 000 (above it): no headroom.
    out = cap_new_aid(RULES, register(recent), MEMBERS, D("24396.00"), D("79287.00"), RATE, grant_date=GRANT_DATE)
    assert out.headroom == D("0.00")
    assert (out.allowed_grant, out.allowed_loan, out.allowed_equivalent) == (D("0.00"), D("0.00"), D("0.00"))
    assert out.refused is True and out.reduced is True
    assert out.computation[-1].code == "refused"


def test_unrelated_and_outside_aid_do_not_count() -> None:
    # Only the stranger's and the old aid: the whole ceiling is free.
    prior = [aid(STRANGER, date(2024, 1, 1), "300000.00", "X"), aid(APPLICANT, date(2021, 1, 1), "300000.00", "Y")]
    out = cap_new_aid(RULES, prior, MEMBERS, D("120000.00"), D("390000.00"), RATE, grant_date=GRANT_DATE)
    assert out.headroom == D("300000.00")
    assert out.reduced is False


def test_loan_equivalent_is_rounded_up() -> None:
    # The loan's GGE 79 287.00 x 0.0437 = 3 464.8419 is counted as 3 464.85 (rounded up): one cent over
    # a headroom of 3 464.84. The largest loan that fits: 3 464.84 / 0.0437 = 79 286.956... -> 79 286.95,
    # whose GGE 3 464.839715 rounds up to 3 464.84.
    prior = [aid(APPLICANT, date(2024, 1, 1), "296535.16", "Z")]
    out = cap_new_aid(RULES, prior, MEMBERS, D("0.00"), D("79287.00"), D("0.0437"), grant_date=GRANT_DATE)
    assert out.headroom == D("3464.84")
    assert out.requested_equivalent == D("3464.85")
    assert out.allowed_loan == D("79286.95")
    assert out.allowed_loan_equivalent == D("3464.84")


def test_reference_rate_margins() -> None:
    assert RULES.de_minimis.reference_base_rate == D("0.0310")
    assert reference_rate(RULES, "2") == D("0.0410")  # good rating, normal collateral: +100 bp
    assert reference_rate(RULES, "1", "high") == D("0.0370")
    assert reference_rate(RULES, "4", "low") == D("0.0960")
    assert reference_rate(RULES, None) == D("0.0710")  # no rating: +400 bp
    assert reference_rate(RULES, "3", margins_bp={"3": {"normal": 150}}) == D("0.0460")
    assert set(DEFAULT_MARGINS_BP) == {c.class_code for c in RULES.credit_scoring.classes}
    with pytest.raises(KeyError):
        reference_rate(RULES, "9")


def test_loan_gge_worked_example() -> None:
    # 100 000 at 1.5 % over 6 years, 12 months of pre-amortisation, reference 4.10 %.
    ref = D("0.0410")
    plan = repayment_plan(D("100000.00"), D("0.015"), 6, 12)
    expected = gross_grant_equivalent(D("100000.00"), D("0.015"), ref, plan)
    assert loan_gge(D("100000.00"), RULES, 6, 12, ref) == expected == D("8936.85")
    assert loan_gge(D("79287.00"), RULES, 6, 12, ref) == D("7085.76")
    assert loan_gge(D("0.00"), RULES, 6, 12, ref) == D("0.00")
    assert gge_per_euro(RULES, 6, 12, ref) == D("0.08936854")
    # The loan at or above the reference rate carries no aid.
    assert loan_gge(D("100000.00"), RULES, 6, 12, D("0.015")) == D("0.00")
    with pytest.raises(ValueError, match="3 to 6 years"):
        loan_gge(D("100000.00"), RULES, 7, 12, ref)


def test_the_gge_per_euro_is_remembered_per_loan_terms_and_rate_and_follows_them() -> None:
    """Computed once per call terms and rate (not per application), and still a function of both: other terms
    or another rate give their own figure, equal to the computation from scratch."""
    ref = D("0.0410")
    first = gge_per_euro(RULES, 6, 12, ref)
    assert (
        gge_per_euro(RULES, 6, 12, D("0.04100"))
        == first
        == loan_gge(D("1000000.00"), RULES, 6, 12, ref) / D("1000000.00")
    )
    cheaper = RULES.model_copy(
        update={
            "aid": RULES.aid.model_copy(update={"loan": RULES.aid.loan.model_copy(update={"annual_rate": D("0.005")})})
        }
    )
    # 1 000 000 at 0.5 % over 6 years, 12 months of pre-amortisation, reference 4.10 %: a larger aid per euro.
    plan = repayment_plan(D("1000000.00"), D("0.005"), 6, 12)
    expected = gross_grant_equivalent(D("1000000.00"), D("0.005"), ref, plan) / D("1000000.00")
    assert gge_per_euro(cheaper, 6, 12, ref) == expected > first
    assert gge_per_euro(RULES, 6, 12, D("0.0500")) > first
    assert gge_per_euro(RULES, 5, 12, ref) < first


def test_full_path_with_the_real_gge() -> None:
    ref = reference_rate(RULES, "2")
    rate = gge_per_euro(RULES, 6, 12, ref)
    out = cap_new_aid(RULES, register(), MEMBERS, D("24396.00"), D("79287.00"), rate, grant_date=GRANT_DATE)
    # 79 287.00 x 0.08936854 = 7 085.7633... -> 7 085.77; 24 396 + 7 085.77 = 31 481.77 > 30 000.
    assert out.requested_equivalent == D("31481.77")
    # 30 000 - 24 396 = 5 604.00 for the loan: 5 604.00 / 0.08936854 = 62 706.630... -> 62 706.63,
    # GGE 5 603.9875 rounded up -> 5 604.00: exactly the headroom.
    assert out.allowed_grant == D("24396.00")
    assert out.allowed_loan == D("62706.63")
    assert out.allowed_equivalent == out.headroom == D("30000.00")


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        PriorAid(APPLICANT, GRANT_DATE, D("-1.00"), "RNA", "X")
    with pytest.raises(ValueError):
        cap_new_aid(RULES, [], MEMBERS, D("1.001"), D("0.00"), RATE, grant_date=GRANT_DATE)
    with pytest.raises(ValueError):
        cap_new_aid(RULES, [], MEMBERS, D("1.00"), D("0.00"), D("1.5"), grant_date=GRANT_DATE)


@pytest.mark.parametrize("seed", range(10))
def test_random_never_crosses_the_ceiling(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        prior = [
            aid(
                rng.choice([APPLICANT, LINKED, STRANGER]),
                date(2022 + rng.randint(0, 3), 1 + rng.randint(0, 11), 1),
                f"{rng.randint(0, 15000000) / 100:.2f}",
                "R",
            )
            for _ in range(rng.randint(0, 4))
        ]
        grant = D(rng.randint(0, 12000000)) / 100
        loan = D(rng.randint(0, 39000000)) / 100
        rate = D(rng.randint(0, 150000)) / 1000000
        for order in ("loan_first", "grant_first"):
            out = cap_new_aid(RULES, prior, MEMBERS, grant, loan, rate, grant_date=GRANT_DATE, order=order)
            period_total = out.period.total
            assert period_total + out.allowed_equivalent <= max(out.ceiling, period_total)
            assert out.allowed_equivalent <= out.headroom
            assert out.allowed_grant <= grant and out.allowed_loan <= loan
            if not out.reduced:
                assert out.allowed_equivalent == out.requested_equivalent
