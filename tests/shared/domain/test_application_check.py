from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.domain.application_check import (
    PROBLEM_CODES,
    CheckResult,
    CompanyFacts,
    DeclaredAid,
    DraftFacts,
    DraftLine,
    ExportSale,
    Milestone,
    ateco_section,
    check_application,
)
from shared.domain.call_rules import CallRules
from shared.domain.funding import AidEstimate

D = Decimal  # short name for the worked examples

CALL_FILE = Path(__file__).resolve().parents[3] / "calls" / "verso-nuovi-mercati-2025.yaml"
RULES = CallRules.model_validate(yaml.safe_load(CALL_FILE.read_text(encoding="utf-8")))
TODAY = date(2025, 6, 10)

COMPANY = CompanyFacts(
    size_class="small",
    ateco_code="28.29.99",
    approved_financial_statements=3,
    has_lombardy_site=True,
    lombardy_site_commitment=False,
    turnover=D("5000000.00"),
    previous_year_export_sales=D("1000000.00"),
    export_history=(
        ExportSale(2024, "DE", D("300000.00")),
        ExportSale(2023, "FR", D("200000.00")),
        ExportSale(2020, "US", D("50000.00")),  # before the 3-year look-back: US is new
    ),
)

DRAFT = DraftFacts(
    target_markets=("US", "BR"),
    objectives="Entrare nel mercato statunitense e brasiliano.",
    starting_point="Vendite solo in Europa.",
    strategy="Fiere, e-commerce e rete di agenti.",
    resources="Export manager e consulente.",
    start_date=date(2025, 7, 1),
    end_date=date(2026, 12, 31),
    milestones=(
        Milestone("Fiera di Chicago", date(2025, 10, 15)),
        Milestone("E-commerce", date(2026, 6, 30)),
    ),
    kpi_count=3,
    expense_lines=(
        DraftLine("a", D("10000.00")),
        DraftLine("b", D("50000.00"), "US"),
        DraftLine("b", D("30000.00"), "BR"),
        DraftLine("c", D("5000.00")),
    ),
)


def check(company: CompanyFacts = COMPANY, draft: DraftFacts = DRAFT, rules: CallRules = RULES) -> CheckResult:
    return check_application(rules, company, draft, today=TODAY)


def codes(result: CheckResult) -> list[str]:
    return [p.code for p in result.problems]


def test_valid_draft_has_no_problems_and_exact_estimate() -> None:
    result = check()
    assert result.problems == ()
    assert result.blocking is False
    assert result.breakdown is not None
    assert result.breakdown.direct == {"a": D("10000.00"), "b": D("80000.00"), "c": D("5000.00")}
    assert result.breakdown.flat_rates == {"d": D("19000.00"), "e": D("7980.00")}
    assert result.breakdown.total == D("121980.00")
    assert result.estimate == AidEstimate(
        eligible_total=D("121980.00"),
        grant=D("24396.00"),
        loan=D("79287.00"),
        total_aid=D("103683.00"),
        aid_base=D("121980.00"),
    )


def test_today_from_draft_and_credit_class() -> None:
    draft = replace(DRAFT, today=TODAY, flat_rates=frozenset())
    big = replace(draft, expense_lines=(DraftLine("b", D("600000.00"), "US"),))
    result = check_application(RULES, replace(COMPANY, credit_class="4"), big)
    assert result.problems == ()
    assert result.estimate == AidEstimate(
        D("600000.00"), D("120000.00"), D("195000.00"), D("315000.00"), D("600000.00")
    )


def test_cap_cut_is_not_blocking() -> None:
    draft = replace(DRAFT, expense_lines=(DraftLine("a", D("30000.00")), *DRAFT.expense_lines[1:]))
    result = check(draft=draft)
    assert codes(result) == ["category_cap_exceeded"]
    problem = result.problems[0]
    assert problem.blocking is False and result.blocking is False
    assert problem.path == "/expense_lines"
    assert problem.article == "B.3"
    assert "30.000,00 €" in problem.message_it and "17.000,00 €" in problem.message_it
    assert "EUR 30,000.00" in problem.message_en and "EUR 13,000.00" in problem.message_en
    assert result.breakdown is not None and result.breakdown.direct["a"] == D("17000.00")
    assert result.estimate is not None


def _lines(*lines: DraftLine) -> dict[str, Any]:
    return {"draft": replace(DRAFT, expense_lines=lines)}


# code -> (keyword arguments of check(), expected path of the problem)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "size_class_not_allowed": ({"company": replace(COMPANY, size_class="large")}, "/company"),
    "ateco_invalid": ({"company": replace(COMPANY, ateco_code="04.00")}, "/company"),
    "ateco_excluded": ({"company": replace(COMPANY, ateco_code="46.35.00")}, "/company"),
    "financial_statements_insufficient": (
        {"company": replace(COMPANY, approved_financial_statements=1)},
        "/company",
    ),
    "lombardy_site_missing": ({"company": replace(COMPANY, has_lombardy_site=False)}, "/company"),
    "turnover_not_positive": ({"company": replace(COMPANY, turnover=D("0.00"))}, "/company"),
    "export_share_exceeded": (
        {"company": replace(COMPANY, previous_year_export_sales=D("2500000.00"))},
        "/company",
    ),
    "credit_class_unknown": ({"company": replace(COMPANY, credit_class="9")}, "/company"),
    "credit_class_excluded": ({"company": replace(COMPANY, credit_class="5")}, "/company"),
    "target_markets_missing": ({"draft": replace(DRAFT, target_markets=())}, "/action_plan/target_markets"),
    "target_market_invalid": (
        {"draft": replace(DRAFT, target_markets=("US", "BR", "br"))},
        "/action_plan/target_markets/2",
    ),
    "target_market_duplicate": (
        {"draft": replace(DRAFT, target_markets=("US", "BR", "US"))},
        "/action_plan/target_markets/2",
    ),
    "target_market_not_new": (
        {"draft": replace(DRAFT, target_markets=("US", "BR", "DE"))},
        "/action_plan/target_markets/2",
    ),
    "expense_category_unknown": (
        _lines(*DRAFT.expense_lines, DraftLine("z", D("100.00"))),
        "/expense_lines/4/category",
    ),
    "expense_category_flat_rate": (
        _lines(*DRAFT.expense_lines, DraftLine("d", D("100.00"))),
        "/expense_lines/4/category",
    ),
    "expense_amount_not_positive": (
        _lines(*DRAFT.expense_lines, DraftLine("b", D("-5.00"))),
        "/expense_lines/4/amount",
    ),
    "expense_amount_too_many_decimals": (
        _lines(*DRAFT.expense_lines, DraftLine("b", D("10.005"))),
        "/expense_lines/4/amount",
    ),
    "expense_market_not_in_plan": (
        _lines(*DRAFT.expense_lines, DraftLine("b", D("100.00"), "CN")),
        "/expense_lines/4/target_market",
    ),
    "flat_rate_unknown": ({"draft": replace(DRAFT, flat_rates=frozenset({"d", "x"}))}, "/flat_rates"),
    "category_cap_exceeded": (
        _lines(DraftLine("b", D("50000.00")), DraftLine("c", D("9000.00"))),
        "/expense_lines",
    ),
    "eligible_total_below_min": (_lines(DraftLine("b", D("10000.00"), "US")), "/expense_lines"),
    "eligible_total_above_max": (_lines(DraftLine("b", D("500000.00"), "US")), "/expense_lines"),
    "new_or_emerging_share_too_low": (
        {
            "draft": replace(
                DRAFT,
                target_markets=("DE", "BR"),
                expense_lines=(DraftLine("b", D("50000.00"), "DE"), DraftLine("b", D("30000.00"), "BR")),
            )
        },
        "/expense_lines",
    ),
    "timeline_missing": ({"draft": replace(DRAFT, start_date=None)}, "/action_plan/start_date"),
    "start_date_in_past": ({"draft": replace(DRAFT, start_date=date(2025, 6, 9))}, "/action_plan/start_date"),
    "end_before_start": ({"draft": replace(DRAFT, end_date=date(2025, 6, 30))}, "/action_plan/end_date"),
    "duration_exceeded": ({"draft": replace(DRAFT, end_date=date(2027, 1, 2))}, "/action_plan/end_date"),
    "milestone_outside_timeline": (
        {"draft": replace(DRAFT, milestones=(*DRAFT.milestones, Milestone("Chiusura", date(2027, 2, 1))))},
        "/action_plan/milestones/2/due_date",
    ),
    "plan_section_missing": ({"draft": replace(DRAFT, strategy="  ")}, "/action_plan/strategy"),
    "kpis_missing": ({"draft": replace(DRAFT, kpi_count=0)}, "/action_plan/kpis"),
    "milestones_missing": ({"draft": replace(DRAFT, milestones=())}, "/action_plan/milestones"),
    # declared 290,000.00 on 2025-05-31: headroom 10,000.00 < the estimated grant -> cut, a warning
    "de_minimis_aid_reduced": (
        {"draft": replace(DRAFT, declared_aid=(DeclaredAid("01234567897", date(2025, 5, 31), D("290000.00"), "A"),))},
        "/de_minimis_declarations",
    ),
    # declared 300,000.00 in the period: no headroom -> blocks
    "de_minimis_ceiling_reached": (
        {"draft": replace(DRAFT, declared_aid=(DeclaredAid("01234567897", date(2024, 1, 15), D("300000.00"), "B"),))},
        "/de_minimis_declarations",
    ),
}


def test_an_eligible_total_above_the_maximum_is_a_warning_and_the_aid_is_computed_on_the_maximum() -> None:
    # b 750 000.00 alone, no flat rates: eligible 750 000.00 > 600 000.00. Not blocking; the aid on 600 000.00:
    # grant 20 % = 120 000.00, loan 65 % = 390 000.00, total 510 000.00.
    draft = replace(DRAFT, today=TODAY, flat_rates=frozenset(), expense_lines=(DraftLine("b", D("750000.00"), "US"),))
    result = check_application(RULES, COMPANY, draft)
    assert codes(result) == ["eligible_total_above_max"]
    [problem] = result.problems
    assert problem.blocking is False and result.blocking is False
    assert "600.000,00" in problem.message_it and "calcolato su" in problem.message_it
    assert "the aid is computed on EUR 600,000.00" in problem.message_en
    assert result.estimate == AidEstimate(
        D("750000.00"), D("120000.00"), D("390000.00"), D("510000.00"), D("600000.00")
    )
    # below the minimum still blocks
    small = replace(draft, expense_lines=(DraftLine("b", D("29999.99"), "US"),))
    low = check_application(RULES, COMPANY, small)
    assert codes(low) == ["eligible_total_below_min"] and low.blocking is True and low.estimate is None


def test_every_code_has_a_case() -> None:
    assert set(CASES) == set(PROBLEM_CODES)
    assert len(set(PROBLEM_CODES)) == len(PROBLEM_CODES)


@pytest.mark.parametrize("code", PROBLEM_CODES)
def test_each_problem_code(code: str) -> None:
    kwargs, path = CASES[code]
    result = check(**kwargs)
    matching = [p for p in result.problems if p.code == code]
    assert matching, codes(result)
    problem = matching[0]
    assert problem.path == path
    assert problem.message_it and problem.message_en and problem.message_it != problem.message_en
    assert problem.article in RULES.articles.values()
    assert problem.blocking is (
        code not in ("category_cap_exceeded", "eligible_total_above_max", "de_minimis_aid_reduced")
    )
    assert result.blocking is any(p.blocking for p in result.problems)


def test_boundaries_do_not_trigger() -> None:
    # A commitment to open a Lombard site is enough; 40 % export share is allowed; 18 months exactly.
    company = replace(
        COMPANY,
        has_lombardy_site=False,
        lombardy_site_commitment=True,
        previous_year_export_sales=D("2000000.00"),
        ateco_code="46.36.00",
    )
    draft = replace(DRAFT, start_date=TODAY, end_date=date(2026, 12, 10))
    assert check(company=company, draft=draft).problems == ()


@pytest.mark.parametrize(
    ("code", "section"),
    [
        ("01.11.00", "A"),
        ("12.00.00", "C"),
        ("47.26", "G"),
        ("64.19", "K"),
        ("68.20.01", "L"),
        ("620100", "J"),
        ("99", "U"),
        ("34.00", None),
        ("6.2", None),
        ("ab", None),
        ("", None),
    ],
)
def test_ateco_section(code: str, section: str | None) -> None:
    assert ateco_section(code) == section


@pytest.mark.parametrize("code", ["01.11.00", "12.00.00", "47.26.00", "64.19.10", "68.20.01"])
def test_excluded_ateco(code: str) -> None:
    assert "ateco_excluded" in codes(check(company=replace(COMPANY, ateco_code=code)))


def test_not_new_market_ignored_when_not_required() -> None:
    rules = RULES.model_copy(update={"markets": RULES.markets.model_copy(update={"require_new_markets": False})})
    draft = replace(
        DRAFT,
        target_markets=("US", "DE"),
        expense_lines=(DraftLine("b", D("50000.00"), "US"), DraftLine("b", D("30000.00"), "DE")),
    )
    assert check(draft=draft, rules=rules).problems == ()


def test_all_problems_reported_at_once() -> None:
    company = replace(
        COMPANY,
        size_class="large",
        ateco_code="64.19",
        approved_financial_statements=0,
        has_lombardy_site=False,
        turnover=D("0"),
    )
    draft = DraftFacts(
        target_markets=("US", "XX", "US"),
        start_date=date(2025, 1, 1),
        end_date=date(2027, 12, 31),
        expense_lines=(
            DraftLine("a", D("10000.00")),
            DraftLine("q", D("5.00")),
            DraftLine("e", D("0")),
            DraftLine("b", D("1.001"), "FR"),
        ),
    )
    result = check(company=company, draft=draft)
    assert result.blocking is True
    assert set(codes(result)) >= {
        "size_class_not_allowed",
        "ateco_excluded",
        "financial_statements_insufficient",
        "lombardy_site_missing",
        "turnover_not_positive",
        "target_market_invalid",
        "target_market_duplicate",
        "expense_category_unknown",
        "expense_category_flat_rate",
        "expense_amount_not_positive",
        "expense_amount_too_many_decimals",
        "expense_market_not_in_plan",
        "category_cap_exceeded",
        "eligible_total_below_min",
        "start_date_in_past",
        "duration_exceeded",
        "plan_section_missing",
        "kpis_missing",
        "milestones_missing",
    }
    paths = {p.path for p in result.problems}
    assert {
        "/expense_lines/1/category",
        "/expense_lines/2/category",
        "/expense_lines/2/amount",
        "/expense_lines/3/amount",
        "/expense_lines/3/target_market",
        "/action_plan/target_markets/1",
        "/action_plan/target_markets/2",
        "/action_plan/objectives",
        "/action_plan/starting_point",
        "/action_plan/strategy",
    } <= paths
    # Only line 0 is valid: a = 10 000 capped to 0 (no b or c), so nothing is eligible and no estimate.
    assert result.breakdown is not None and result.breakdown.total == D("0.00")
    assert result.estimate is None


def test_messages_quote_figures() -> None:
    result = check(company=replace(COMPANY, previous_year_export_sales=D("2500000.00")))
    (problem,) = result.problems
    assert "50 %" in problem.message_it and "40 %" in problem.message_it
    assert "EUR 2,500,000.00" in problem.message_en
    assert problem.article == "A.3"
