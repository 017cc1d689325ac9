from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from shared.domain.call_rules import CallRules
from shared.domain.merit import (
    DEFAULT_DIVERGENCE_THRESHOLD,
    SCORE_PROBLEM_CODES,
    Consensus,
    consensus,
    loan_cap_share,
    passes,
    score_total,
    validate_scores,
)

D = Decimal  # short name for the worked examples

CALL_FILE = Path(__file__).resolve().parents[3] / "calls" / "verso-nuovi-mercati-2025.yaml"
RULES = CallRules.model_validate(yaml.safe_load(CALL_FILE.read_text(encoding="utf-8")))

# Grid of the call: plan_quality 30, market_analysis 20, expected_impact 20, feasibility 20,
# digital_sustainability 10 (total 100, pass mark 60).


def scores(plan: int, market: int, impact: int, feasibility: int, digital: int) -> dict[str, int]:
    return {
        "plan_quality": plan,
        "market_analysis": market,
        "expected_impact": impact,
        "feasibility": feasibility,
        "digital_sustainability": digital,
    }


def test_valid_scores_have_no_problems() -> None:
    assert validate_scores(RULES, scores(30, 20, 20, 20, 10)) == []
    assert validate_scores(RULES, scores(0, 0, 0, 0, 0)) == []
    assert validate_scores(RULES, list(scores(25, 15, 12, 18, 5).items())) == []


def test_every_problem_is_reported() -> None:
    pairs: list[tuple[str, object]] = [
        ("plan_quality", 31),  # above 30
        ("market_analysis", -1),  # below 0
        ("expected_impact", 12.0),  # not an integer
        ("expected_impact", 12),  # duplicate
        ("feasibility", True),  # a bool is not a score
        ("innovation", 5),  # not in the grid
    ]
    problems = validate_scores(RULES, pairs)
    assert [(p.code, p.criterion) for p in problems] == [
        ("points_out_of_range", "plan_quality"),
        ("points_out_of_range", "market_analysis"),
        ("points_not_integer", "expected_impact"),
        ("criterion_duplicate", "expected_impact"),
        ("points_not_integer", "feasibility"),
        ("criterion_unknown", "innovation"),
        ("criterion_missing", "digital_sustainability"),
    ]
    assert {p.code for p in problems} == set(SCORE_PROBLEM_CODES)
    assert "0 e 30" in problems[0].message_it and "0 and 30" in problems[0].message_en


def test_decimal_points_are_not_integers() -> None:
    problems = validate_scores(RULES, {**scores(30, 20, 20, 20, 10), "feasibility": D("18")})
    assert [p.code for p in problems] == ["points_not_integer"]


def test_consensus_of_two_close_reviews_is_their_mean() -> None:
    # 25+15+12+18+5 = 75 and 28+16+14+17+6 = 81: 6 points apart, mean 78.00.
    result = consensus(scores(25, 15, 12, 18, 5), scores(28, 16, 14, 17, 6))
    assert result == Consensus(D("78.00"), False, (75, 81), 6, ("a", "b"))
    # 71 and 76: mean 73.50.
    assert consensus(scores(21, 15, 12, 18, 5), scores(26, 15, 12, 18, 5)).total == D("73.50")


def test_divergence_at_the_threshold_needs_no_third_review() -> None:
    assert DEFAULT_DIVERGENCE_THRESHOLD == 15
    result = consensus(scores(20, 10, 10, 10, 5), scores(30, 15, 10, 10, 5))  # 55 and 70
    assert result.needs_third_review is False
    assert result.total == D("62.50")


def test_divergent_reviews_need_a_third() -> None:
    a, b = scores(20, 10, 10, 10, 4), scores(30, 15, 10, 10, 5)  # 54 and 70: 16 apart
    waiting = consensus(a, b)
    assert waiting == Consensus(None, True, (54, 70), 16, ())
    # Third review 65: |54-65| = 11, |70-65| = 5: the closest are b and c, mean 67.50.
    third = consensus(a, b, scores_c=scores(25, 15, 10, 10, 5))
    assert third == Consensus(D("67.50"), True, (54, 70, 65), 16, ("b", "c"))
    # Third review 56: a and c are closest (2), mean 55.00.
    assert consensus(a, b, scores_c=scores(20, 10, 10, 10, 6)).total == D("55.00")


def test_third_review_equally_far_from_both_takes_the_middle() -> None:
    # 50 and 80, third 65: both pairs are 15 apart; the final is the mean of the three, 65.00.
    a, b, c = scores(20, 10, 10, 10, 0), scores(30, 20, 15, 10, 5), scores(25, 15, 10, 10, 5)
    result = consensus(a, b, scores_c=c)
    assert result.total == D("65.00")
    assert result.averaged == ("a", "b", "c")


def test_threshold_is_a_parameter() -> None:
    a, b = scores(25, 15, 12, 18, 5), scores(28, 16, 14, 17, 6)  # 75 and 81
    assert consensus(a, b, divergence_threshold=5).needs_third_review is True
    assert consensus(a, b, divergence_threshold=5, scores_c=scores(25, 15, 12, 18, 6)).total == D("75.50")
    with pytest.raises(ValueError):
        consensus(a, b, divergence_threshold=-1)


def test_three_way_mean_is_rounded_half_up() -> None:
    # With a threshold of 0 any difference calls the third; 61 / 62 / 63 tie around 62.
    a, b, c = scores(30, 20, 10, 1, 0), scores(30, 20, 10, 3, 0), scores(30, 20, 10, 2, 0)
    assert [score_total(s) for s in (a, b, c)] == [61, 63, 62]
    assert consensus(a, b, scores_c=c, divergence_threshold=0).total == D("62.00")


def test_passes_the_pass_mark() -> None:
    assert RULES.scoring.pass_mark == 60
    assert passes(D("60.00"), RULES) is True
    assert passes(60, RULES) is True
    assert passes(D("59.99"), RULES) is False


def test_loan_cap_share_from_the_rules() -> None:
    assert loan_cap_share(RULES, "1") == D("1.00")
    assert loan_cap_share(RULES, "4") == D("0.50")
    assert loan_cap_share(RULES, "5") == D("0.00")
    with pytest.raises(KeyError):
        loan_cap_share(RULES, "9")
