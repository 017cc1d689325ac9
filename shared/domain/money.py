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
