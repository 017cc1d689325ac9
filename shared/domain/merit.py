"""Merit evaluation: a reviewer's scores against the call's grid, and the consensus of two (or three)
reviewers.

Pure functions over ``CallRules.scoring``; the evaluation service stores the scores and the consensus.

Assumptions (not given by the call, to be confirmed):

* two independent reviewers score every admissible application; if their totals differ by **more
  than** ``DEFAULT_DIVERGENCE_THRESHOLD`` points (15 on a grid of 100) a third review is needed;
* with three reviews, the final score is the mean of the two closest totals; if the middle total is
  exactly as far from the lowest as from the highest (two "closest" pairs), the final is the mean of
  the three totals, i.e. the middle one: the neutral choice between the two pairs' means;
* the final score is a score, not money: it is rounded to two decimals ROUND_HALF_UP;
* an application passes when its final score is at least ``scoring.pass_mark``.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from shared.domain.call_rules import CallRules

#: totals of the two reviewers may differ by at most this many points without a third review.
DEFAULT_DIVERGENCE_THRESHOLD = 15

SCORE_PROBLEM_CODES: tuple[str, ...] = (
    "criterion_missing",
    "criterion_duplicate",
    "criterion_unknown",
    "points_not_integer",
    "points_out_of_range",
)

_HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True)
class ScoreProblem:
    code: str
    criterion: str
    message_it: str
    message_en: str


def validate_scores(
    rules: CallRules, scores: Mapping[str, object] | Iterable[tuple[str, object]]
) -> list[ScoreProblem]:
    """Problems of one reviewer's scores: every criterion of the grid exactly once, integer points
    between 0 and the criterion's ``max_points``. An empty list means the scores are valid.

    ``scores`` is a mapping criterion -> points or a sequence of (criterion, points) pairs (the
    latter lets a duplicated criterion be reported). ``bool`` is not an integer score.
    """
    pairs = list(scores.items()) if isinstance(scores, Mapping) else list(scores)
    grid = {c.code: c for c in rules.scoring.criteria}
    problems: list[ScoreProblem] = []
    seen: set[str] = set()
    for criterion, points in pairs:
        if criterion not in grid:
            problems.append(
                ScoreProblem(
                    "criterion_unknown",
                    criterion,
                    f"Il criterio '{criterion}' non è nella griglia di valutazione del bando.",
                    f"Criterion '{criterion}' is not in the call's scoring grid.",
                )
            )
            continue
        if criterion in seen:
            problems.append(
                ScoreProblem(
                    "criterion_duplicate",
                    criterion,
                    f"Il criterio '{criterion}' è valutato più di una volta.",
                    f"Criterion '{criterion}' is scored more than once.",
                )
            )
            continue
        seen.add(criterion)
        maximum = grid[criterion].max_points
        if type(points) is not int:
            problems.append(
                ScoreProblem(
                    "points_not_integer",
                    criterion,
                    f"Il punteggio del criterio '{criterion}' ({points!r}) deve essere un numero intero.",
                    f"The points of criterion '{criterion}' ({points!r}) must be an integer.",
                )
            )
        elif not 0 <= points <= maximum:
            problems.append(
                ScoreProblem(
                    "points_out_of_range",
                    criterion,
                    f"Il punteggio del criterio '{criterion}' ({points}) deve essere tra 0 e {maximum}.",
                    f"The points of criterion '{criterion}' ({points}) must be between 0 and {maximum}.",
                )
            )
    for code, criterion_rule in grid.items():
        if code not in seen:
            problems.append(
                ScoreProblem(
                    "criterion_missing",
                    code,
                    f"Manca il punteggio del criterio '{code}' ({criterion_rule.name_it}).",
                    f"The points of criterion '{code}' ({criterion_rule.name_en}) are missing.",
                )
            )
    return problems


def score_total(scores: Mapping[str, int]) -> int:
    return sum(scores.values())


def _round(d: Decimal) -> Decimal:
    return d.quantize(_HUNDREDTH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Consensus:
    total: Decimal | None
    """Final score, two decimals; ``None`` while a needed third review is missing."""
    needs_third_review: bool
    """The first two totals differ by more than the threshold."""
    totals: tuple[int, ...]
    """Totals of the reviews given: (a, b) or (a, b, c)."""
    divergence: int
    """|total a - total b|."""
    averaged: tuple[str, ...]
    """Which reviews the final score averages: ("a", "b"), ("a", "c"), ("b", "c") or ("a", "b", "c")."""


def consensus(
    scores_a: Mapping[str, int],
    scores_b: Mapping[str, int],
    *,
    scores_c: Mapping[str, int] | None = None,
    divergence_threshold: int = DEFAULT_DIVERGENCE_THRESHOLD,
) -> Consensus:
    """The final score of an application from its reviewers' (already validated) scores.

    If the two totals differ by at most ``divergence_threshold`` the final is their mean (a third
    review, if given, is ignored). Otherwise a third review is needed: without ``scores_c`` the total
    is ``None``; with it, the final is the mean of the two closest totals (a tie between two pairs is
    resolved by the mean of the three, see the module). Rounded to two decimals ROUND_HALF_UP.
    """
    if divergence_threshold < 0:
        raise ValueError("divergence_threshold must not be negative")
    a, b = score_total(scores_a), score_total(scores_b)
    divergence = abs(a - b)
    if divergence <= divergence_threshold:
        return Consensus(_round(Decimal(a + b) / 2), False, (a, b), divergence, ("a", "b"))
    if scores_c is None:
        return Consensus(None, True, (a, b), divergence, ())
    c = score_total(scores_c)
    pairs = sorted(
        [(abs(a - b), ("a", "b"), a + b), (abs(a - c), ("a", "c"), a + c), (abs(b - c), ("b", "c"), b + c)],
        key=lambda p: p[0],
    )
    if pairs[0][0] == pairs[1][0]:
        return Consensus(_round(Decimal(a + b + c) / 3), True, (a, b, c), divergence, ("a", "b", "c"))
    _, names, pair_sum = pairs[0]
    return Consensus(_round(Decimal(pair_sum) / 2), True, (a, b, c), divergence, names)


def passes(total: Decimal | int, rules: CallRules) -> bool:
    """True if the final score reaches the call's pass mark."""
    return Decimal(total) >= rules.scoring.pass_mark


def loan_cap_share(rules: CallRules, credit_class: str) -> Decimal:
    """Share of the loan cap granted to a credit-scoring class (``KeyError`` if the call has no such class)."""
    return rules.loan_cap_share(credit_class)
