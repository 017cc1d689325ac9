"""SME size class per Commission Recommendation 2003/361/EC (Annex, Arts. 2-6).

Simplifications, to be kept in mind by whoever collects the figures:

* the figures are those of the last approved accounting period, one year only: the rule that a
  threshold must be crossed in two consecutive periods to change class (Art. 4(2)) is not applied;
* headcount is given directly in annual work units (AWU), already computed by the caller;
* related enterprises are taken as declared: the caller says whether each one is a partner or a
  linked enterprise and gives its share; the 25 % / 50 % thresholds, the investor exceptions of
  Art. 3(2) and the public-body rule of Art. 3(4) are not verified here;
* only the enterprises directly related to the applicant are aggregated; the caller must already
  have included, in a linked enterprise's figures, those of its own partners and linked enterprises
  (consolidated accounts), as Art. 6 prescribes.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

SizeClass = Literal["micro", "small", "medium", "large"]

_MILLION = Decimal(1_000_000)

#: (class, headcount strictly below, turnover at most, balance sheet total at most)
_THRESHOLDS: tuple[tuple[SizeClass, Decimal, Decimal, Decimal], ...] = (
    ("micro", Decimal(10), 2 * _MILLION, 2 * _MILLION),
    ("small", Decimal(50), 10 * _MILLION, 10 * _MILLION),
    ("medium", Decimal(250), 50 * _MILLION, 43 * _MILLION),
)


@dataclass(frozen=True)
class EnterpriseFigures:
    headcount_awu: Decimal
    turnover: Decimal
    balance_sheet_total: Decimal

    def __post_init__(self) -> None:
        for name in ("headcount_awu", "turnover", "balance_sheet_total"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value}")


@dataclass(frozen=True)
class RelatedEnterprise:
    relation: Literal["partner", "linked"]
    share: Decimal
    figures: EnterpriseFigures

    def __post_init__(self) -> None:
        if self.relation not in ("partner", "linked"):
            raise ValueError(f"relation must be 'partner' or 'linked', got {self.relation!r}")
        if not self.share.is_finite() or not Decimal(0) <= self.share <= Decimal(1):
            raise ValueError(f"share must be between 0 and 1, got {self.share}")


def aggregate_figures(own: EnterpriseFigures, related: Iterable[RelatedEnterprise] = ()) -> EnterpriseFigures:
    """Own figures plus partners' in proportion to the share held, plus 100 % of linked enterprises'."""
    headcount, turnover, balance = own.headcount_awu, own.turnover, own.balance_sheet_total
    for r in related:
        weight = r.share if r.relation == "partner" else Decimal(1)
        headcount += r.figures.headcount_awu * weight
        turnover += r.figures.turnover * weight
        balance += r.figures.balance_sheet_total * weight
    return EnterpriseFigures(headcount_awu=headcount, turnover=turnover, balance_sheet_total=balance)


def size_class(own: EnterpriseFigures, related: Iterable[RelatedEnterprise] = ()) -> SizeClass:
    """The size class: fewer than the headcount ceiling AND (turnover OR balance sheet within limits)."""
    f = aggregate_figures(own, related)
    for name, max_headcount, max_turnover, max_balance in _THRESHOLDS:
        if f.headcount_awu < max_headcount and (f.turnover <= max_turnover or f.balance_sheet_total <= max_balance):
            return name
    return "large"
