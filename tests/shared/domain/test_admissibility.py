from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from shared.domain.admissibility import (
    CHECK_CODES,
    INTRA_GROUP,
    PROBLEM_TO_CHECK,
    Admissibility,
    admissibility,
)
from shared.domain.application_check import (
    PROBLEM_CODES,
    CompanyFacts,
    DraftFacts,
    DraftLine,
    ExportSale,
    Milestone,
)
from shared.domain.call_rules import CallRules
from shared.domain.funding import AidEstimate

D = Decimal  # short name for the worked examples

CALL_FILE = Path(__file__).resolve().parents[3] / "calls" / "verso-nuovi-mercati-2025.yaml"
RULES = CallRules.model_validate(yaml.safe_load(CALL_FILE.read_text(encoding="utf-8")))
SUBMITTED_ON = date(2025, 6, 10)

COMPANY = CompanyFacts(
    size_class="small",
    ateco_code="28.29.99",
    approved_financial_statements=3,
    has_lombardy_site=True,
    lombardy_site_commitment=False,
    turnover=D("5000000.00"),
    previous_year_export_sales=D("1000000.00"),
    export_history=(ExportSale(2024, "DE", D("300000.00")), ExportSale(2023, "FR", D("200000.00"))),
    credit_class="2",
)

DRAFT = DraftFacts(
    target_markets=("US", "BR"),
    objectives="Entrare nel mercato statunitense e brasiliano.",
    starting_point="Vendite solo in Europa.",
    strategy="Fiere, e-commerce e rete di agenti.",
    resources="Export manager e consulente.",
    start_date=date(2025, 7, 1),
    end_date=date(2026, 12, 31),
    milestones=(Milestone("Fiera di Chicago", date(2025, 10, 15)), Milestone("E-commerce", date(2026, 6, 30))),
    kpi_count=3,
    expense_lines=(
        DraftLine("a", D("10000.00")),
        DraftLine("b", D("50000.00"), "US"),
        DraftLine("b", D("30000.00"), "BR"),
        DraftLine("c", D("5000.00")),
    ),
)

# a 10 000, b 80 000, c 5 000; d = 20 % of 95 000 = 19 000; e = 7 % of 114 000 = 7 980: 121 980.
BASE_ESTIMATE = AidEstimate(D("121980.00"), D("24396.00"), D("79287.00"), D("103683.00"), D("121980.00"))


def run(company: CompanyFacts = COMPANY, draft: DraftFacts = DRAFT, **kwargs: object) -> Admissibility:
    return admissibility(RULES, company, draft, today=SUBMITTED_ON, **kwargs)  # type: ignore[arg-type]


def outcomes(result: Admissibility) -> dict[str, str]:
    return {c.code: c.outcome for c in result.checks}


def test_every_problem_maps_to_a_check() -> None:
    assert set(PROBLEM_TO_CHECK) == set(PROBLEM_CODES)
    assert set(PROBLEM_TO_CHECK.values()) <= set(CHECK_CODES)


def test_admissible_with_every_check_passed() -> None:
    result = run()
    assert result.verdict == "admissible"
    assert [c.code for c in result.checks] == list(CHECK_CODES)
    assert set(outcomes(result).values()) == {"pass"}
    assert result.cuts == ()
    assert result.problems == ()
    assert result.breakdown is not None and result.breakdown.total == D("121980.00")
    assert result.estimate == BASE_ESTIMATE
    export = result.check("export_share")
    assert export.article == "A.3"
    assert "20 %" in export.detail_it and "40 %" in export.detail_it
    total = result.check("eligible_total")
    assert "121.980,00 €" in total.detail_it and "EUR 121,980.00" in total.detail_en
    assert result.check("plan_completeness").article == "C.1"


def test_lombardy_commitment_needs_review_until_verified() -> None:
    company = replace(COMPANY, has_lombardy_site=False, lombardy_site_commitment=True)
    result = run(company)
    assert result.verdict == "needs_review"
    assert [c.code for c in result.checks if c.outcome != "pass"] == ["lombardy_site"]
    assert "da verificare" in result.check("lombardy_site").detail_it
    assert run(company, lombardy_site_verified=True).verdict == "admissible"
    # Without the commitment the check fails.
    missing = run(replace(company, lombardy_site_commitment=False), lombardy_site_verified=True)
    assert missing.verdict == "not_admissible"
    assert outcomes(missing)["lombardy_site"] == "fail"


def test_no_credit_class_yet_needs_review() -> None:
    result = run(replace(COMPANY, credit_class=None))
    assert result.verdict == "needs_review"
    assert [c.code for c in result.checks if c.outcome != "pass"] == ["credit_class"]
    assert result.check("credit_class").article == "B.1"


def test_cap_excess_is_cut_not_the_application() -> None:
    draft = replace(DRAFT, expense_lines=(DraftLine("a", D("30000.00")), *DRAFT.expense_lines[1:]))
    result = run(draft=draft)
    assert result.verdict == "admissible"
    assert outcomes(result)["category_caps"] == "pass"
    (cut,) = result.cuts
    assert (cut.path, cut.category, cut.requested, cut.allowed) == ("/expense_lines", "a", D("30000.00"), D("17000.00"))
    assert cut.reasons == ("category_cap_exceeded",)
    assert "13.000,00 €" in cut.detail_it
    assert result.breakdown is not None and result.breakdown.direct["a"] == D("17000.00")
    # d = 20 % of 102 000 = 20 400; e = 7 % of 122 400 = 8 568; total 130 968.
    assert result.breakdown.total == D("130968.00")
    assert "esclusa" in result.check("category_caps").detail_it


def test_intra_group_and_unknown_lines_are_cut_with_paths_into_the_submission() -> None:
    draft = replace(
        DRAFT,
        expense_lines=(
            *DRAFT.expense_lines,
            DraftLine("b", D("20000.00"), "US"),  # 4: bought from a linked enterprise
            DraftLine("viaggi", D("3000.00")),  # 5: travel is not a category of the call
        ),
    )
    result = run(
        draft=draft,
        related_vats={"IT01234567890", "IT09876543210"},
        line_suppliers={1: "IT55555555555", 4: "09876543210"},
    )
    assert result.verdict == "admissible"
    assert [(c.path, c.category, c.requested, c.allowed, c.reasons) for c in result.cuts] == [
        ("/expense_lines/4", "b", D("20000.00"), D("0.00"), (INTRA_GROUP,)),
        ("/expense_lines/5", "viaggi", D("3000.00"), D("0.00"), ("expense_category_unknown",)),
    ]
    assert "09876543210" in result.cuts[0].detail_it
    # The pre-check ran without line 4, but its paths point at the submitted lines.
    assert [p.path for p in result.problems] == ["/expense_lines/5/category"]
    # What is left is exactly the base application.
    assert result.breakdown is not None and result.breakdown.total == D("121980.00")
    assert result.estimate == BASE_ESTIMATE
    categories = result.check("eligible_categories")
    assert categories.outcome == "pass" and "2 voci" in categories.detail_it


def test_cuts_below_the_minimum_fail_the_application() -> None:
    # 25 000 + 10 000 without flat rates = 35 000; the 10 000 from a related party is cut: 25 000 < 30 000.
    draft = replace(
        DRAFT,
        flat_rates=frozenset(),
        expense_lines=(DraftLine("b", D("25000.00"), "US"), DraftLine("b", D("10000.00"), "BR")),
    )
    assert run(draft=draft).verdict == "admissible"
    result = run(draft=draft, related_vats={"01234567890"}, line_suppliers={1: "IT01234567890"})
    assert result.verdict == "not_admissible"
    assert [c.code for c in result.checks if c.outcome == "fail"] == ["eligible_total"]
    assert "25.000,00 €" in result.check("eligible_total").detail_it
    assert result.estimate is None


def test_an_eligible_total_above_the_maximum_is_admissible_and_capped() -> None:
    # b 700 000.00, no flat rates: 700 000.00 > 600 000.00 is capped, not refused; aid on 600 000.00.
    draft = replace(DRAFT, flat_rates=frozenset(), expense_lines=(DraftLine("b", D("700000.00"), "US"),))
    result = run(draft=draft)
    assert result.verdict == "admissible"
    check = result.check("eligible_total")
    assert check.outcome == "pass" and "600.000,00" in check.detail_it and "600,000.00" in check.detail_en
    assert result.estimate is not None and result.estimate.aid_base == D("600000.00")
    assert (result.estimate.grant, result.estimate.loan) == (D("120000.00"), D("390000.00"))


def test_no_eligible_line_at_all() -> None:
    result = run(draft=replace(DRAFT, expense_lines=(DraftLine("viaggi", D("50000.00")),)))
    assert result.verdict == "not_admissible"
    assert outcomes(result)["eligible_categories"] == "fail"
    assert outcomes(result)["eligible_total"] == "fail"
    assert result.breakdown is None


def test_expense_market_outside_the_plan_needs_review() -> None:
    draft = replace(DRAFT, expense_lines=(*DRAFT.expense_lines, DraftLine("b", D("1000.00"), "CN")))
    result = run(draft=draft)
    assert result.verdict == "needs_review"
    target = result.check("target_markets")
    assert target.outcome == "needs_review"
    assert "CN" in target.detail_en
    assert result.cuts == ()


@pytest.mark.parametrize(
    ("company", "draft", "check"),
    [
        (replace(COMPANY, size_class="large"), DRAFT, "sme_class"),
        (replace(COMPANY, ateco_code="46.35.00"), DRAFT, "ateco"),
        (replace(COMPANY, ateco_code="64.19"), DRAFT, "ateco"),
        (replace(COMPANY, approved_financial_statements=1), DRAFT, "financial_statements"),
        (replace(COMPANY, previous_year_export_sales=D("2500000.00")), DRAFT, "export_share"),
        (replace(COMPANY, turnover=D("0.00")), DRAFT, "export_share"),
        (replace(COMPANY, credit_class="5"), DRAFT, "credit_class"),
        (COMPANY, replace(DRAFT, target_markets=("US", "BR", "DE")), "target_markets"),
        (
            COMPANY,
            replace(DRAFT, expense_lines=(DraftLine("b", D("20000.00"), "US"),)),
            "eligible_total",
        ),
        (
            COMPANY,
            replace(
                DRAFT,
                target_markets=("DE", "BR"),
                expense_lines=(DraftLine("b", D("50000.00"), "DE"), DraftLine("b", D("30000.00"), "BR")),
            ),
            "new_or_emerging_share",
        ),
        (COMPANY, replace(DRAFT, end_date=date(2027, 1, 2)), "project_duration"),
        (COMPANY, replace(DRAFT, start_date=date(2025, 6, 9)), "project_duration"),
        (COMPANY, replace(DRAFT, strategy=" "), "plan_completeness"),
        (COMPANY, replace(DRAFT, kpi_count=0), "plan_completeness"),
    ],
)
def test_failing_checks(company: CompanyFacts, draft: DraftFacts, check: str) -> None:
    result = run(company, draft)
    assert result.verdict == "not_admissible"
    failed = result.check(check)
    assert failed.outcome == "fail"
    assert failed.detail_it and failed.detail_en and failed.detail_it != failed.detail_en
    assert failed.article in RULES.articles.values()


def test_dates_are_judged_on_the_submission_day() -> None:
    # Evaluated months later, a project that started after the submission is still fine.
    assert run().check("project_duration").outcome == "pass"
    late = admissibility(RULES, COMPANY, DRAFT, today=date(2025, 11, 1))
    assert late.check("project_duration").outcome == "fail"


def test_several_problems_of_one_check_are_joined() -> None:
    result = run(draft=replace(DRAFT, strategy="", kpi_count=0, milestones=()))
    plan = result.check("plan_completeness")
    assert plan.outcome == "fail"
    assert "strategia" in plan.detail_it and "KPI" in plan.detail_it and "milestone" in plan.detail_it
