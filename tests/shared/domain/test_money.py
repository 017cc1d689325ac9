from decimal import Decimal

import pytest

from shared.domain.money import ZERO, cents_ok, floor_cent, percent_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.349", "12.34"), ("12.3", "12.30"), ("0.009", "0.00"), ("-1.239", "-1.23"), ("5", "5.00")],
)
def test_floor_cent_rounds_down(value: str, expected: str) -> None:
    assert floor_cent(Decimal(value)) == Decimal(expected)
    assert floor_cent(Decimal(value)).as_tuple().exponent == -2


def test_percent_of_is_floored() -> None:
    assert percent_of(Decimal("100000.00"), Decimal("0.20")) == Decimal("20000.00")
    assert percent_of(Decimal("33333.33"), Decimal("0.65")) == Decimal("21666.66")  # 21666.6645


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1", True),
        ("1.5", True),
        ("1.50", True),
        ("1.500", True),
        ("1.505", False),
        ("NaN", False),
        ("Infinity", False),
        ("-3.21", True),
    ],
)
def test_cents_ok(value: str, ok: bool) -> None:
    assert cents_ok(Decimal(value)) is ok


def test_zero() -> None:
    assert ZERO == 0 and str(ZERO) == "0.00"


def test_euro_amounts_are_written_once_for_each_language() -> None:
    from shared.domain.money import eur_en, eur_it

    assert eur_it(Decimal("1234567.5")) == "1.234.567,50 €"
    assert eur_en(Decimal("1234567.5")) == "EUR 1,234,567.50"
    assert (eur_it(Decimal("0")), eur_en(Decimal("0.005"))) == ("0,00 €", "EUR 0.00")  # half-even to the cent
