"""Money helpers: euros as ``Decimal`` with two decimals, aid always rounded down to the cent."""

from decimal import ROUND_DOWN, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def floor_cent(d: Decimal) -> Decimal:
    """Quantize to the cent, rounding towards zero (aid is never rounded up)."""
    return d.quantize(CENT, rounding=ROUND_DOWN)


def percent_of(amount: Decimal, rate: Decimal) -> Decimal:
    """``amount * rate`` floored to the cent; ``rate`` is a fraction (``Decimal("0.20")`` is 20 %)."""
    return floor_cent(amount * rate)


def cents_ok(d: Decimal) -> bool:
    """True if ``d`` is a finite amount with no more than two significant decimals."""
    if not d.is_finite():
        return False
    try:
        return d == d.quantize(CENT)
    except InvalidOperation:  # too many digits for the context precision
        return False


def eur_it(d: Decimal) -> str:
    """An amount as Italian readers write it: Decimal('1234567.5') -> '1.234.567,50 €'."""
    whole, _, cents = f"{d:,.2f}".partition(".")
    return f"{whole.replace(',', '.')},{cents} €"


def eur_en(d: Decimal) -> str:
    """An amount as English readers of the desk see it: Decimal('1234567.5') -> 'EUR 1,234,567.50'."""
    return f"EUR {d:,.2f}"
