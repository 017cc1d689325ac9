from decimal import Decimal

import pytest

from shared.domain.sme import EnterpriseFigures, RelatedEnterprise, aggregate_figures, size_class

D = Decimal  # short name for the worked examples


def fig(awu: str, turnover: str, balance: str) -> EnterpriseFigures:
    return EnterpriseFigures(headcount_awu=D(awu), turnover=D(turnover), balance_sheet_total=D(balance))


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (fig("9", "2000000", "5000000"), "micro"),
        (fig("9", "3000000", "2000000"), "micro"),  # balance sheet alone suffices
        (fig("9", "3000000", "3000000"), "small"),
        (fig("10", "1000000", "1000000"), "small"),  # headcount ceiling is strict
        (fig("49.5", "10000000", "20000000"), "small"),
        (fig("50", "5000000", "5000000"), "medium"),
        (fig("249", "60000000", "43000000"), "medium"),
        (fig("249", "50000000", "90000000"), "medium"),
        (fig("249", "50000001", "43000001"), "large"),
        (fig("250", "1000000", "1000000"), "large"),
    ],
)
def test_size_class_thresholds(figures: EnterpriseFigures, expected: str) -> None:
    assert size_class(figures) == expected


def test_partner_proportional_linked_full() -> None:
    own = fig("8", "1500000", "1000000")
    partner = RelatedEnterprise(relation="partner", share=D("0.30"), figures=fig("20", "5000000", "4000000"))
    linked = RelatedEnterprise(relation="linked", share=D("0.60"), figures=fig("5", "500000", "300000"))
    agg = aggregate_figures(own, [partner, linked])
    assert agg == fig("19.00", "3500000.00", "2500000.00")
    assert size_class(own) == "micro"
    assert size_class(own, [partner, linked]) == "small"


def test_validation() -> None:
    with pytest.raises(ValueError):
        fig("-1", "0", "0")
    with pytest.raises(ValueError):
        RelatedEnterprise(relation="partner", share=D("1.2"), figures=fig("1", "1", "1"))
