"""Funding maths: eligible expenses after caps and flat rates, aid estimate, loan repayment plan and
the gross grant equivalent of the subsidised loan. Pure functions over ``CallRules``.

Amounts are ``Decimal`` euros with two decimals. Aid and flat rates are floored to the cent; loan
installments are rounded half-up to the cent (they are debts, not aid), with the last installment
absorbing the rounding so that the principal repaid equals the principal lent exactly.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from shared.domain.call_rules import CallRules
from shared.domain.money import CENT, ZERO, cents_ok, floor_cent, percent_of

#: reason code of a cut applied to a category that exceeds its cap.
CAP_EXCEEDED = "category_cap_exceeded"


@dataclass(frozen=True)
class ExpenseAmount:
    category: str
    amount: Decimal


@dataclass(frozen=True)
class Cut:
    """A category cut down to its cap: ``requested - allowed`` is not eligible."""

    category: str
    requested: Decimal
    allowed: Decimal
    reason: str


@dataclass(frozen=True)
class EligibleBreakdown:
    requested: Mapping[str, Decimal]
    """Sum of the lines per direct category, as requested (every direct category, possibly 0.00)."""
    direct: Mapping[str, Decimal]
    """Eligible amount per direct category, after the caps."""
    flat_rates: Mapping[str, Decimal]
    """Computed amount per flat-rate category included (only those included)."""
    total: Decimal
    cuts: tuple[Cut, ...] = field(default=())

    @property
    def direct_total(self) -> Decimal:
        return sum(self.direct.values(), ZERO)

    @property
    def flat_rate_total(self) -> Decimal:
        return sum(self.flat_rates.values(), ZERO)


@dataclass(frozen=True)
class AidEstimate:
    eligible_total: Decimal
    grant: Decimal
    loan: Decimal
    total_aid: Decimal
    aid_base: Decimal | None = None
    """What the aid is computed on: the eligible total capped at the call's maximum eligible cost."""


def aid_base(rules: CallRules, eligible_total: Decimal) -> Decimal:
    """The eligible total the aid is computed on: above the call's maximum eligible cost it is capped at the
    maximum (the application stays admissible), never refused."""
    return min(eligible_total, rules.eligible_cost.max)


def compute_eligible(
    rules: CallRules,
    lines: Iterable[ExpenseAmount],
    include_flat_rates: set[str] | None = None,
) -> EligibleBreakdown:
    """Eligible expenses of a set of lines.

    ``include_flat_rates`` lists the flat-rate categories the applicant opts in to; ``None`` means all
    the flat-rate categories of the call. Capped categories are cut down to their cap (in dependency
    order, each cap computed on the already-capped bases); flat rates are computed on the capped
    amounts (and on the flat rates they depend on), floored to the cent.

    Raises ``ValueError`` on an unknown category, an itemised flat-rate category, a non-positive
    amount or an amount with more than two decimals: the pre-check reports those lines as problems
    and leaves them out before calling this function.
    """
    flat_codes = set(rules.flat_rate_codes)
    included = flat_codes if include_flat_rates is None else set(include_flat_rates)
    if not included <= flat_codes:
        raise ValueError(f"not flat-rate categories of the call: {sorted(included - flat_codes)}")

    requested: dict[str, Decimal] = {code: ZERO for code in rules.direct_codes}
    for line in lines:
        if not rules.has_category(line.category):
            raise ValueError(f"unknown expense category {line.category!r}")
        if line.category in flat_codes:
            raise ValueError(f"flat-rate category {line.category!r} is computed, not itemised")
        if not cents_ok(line.amount) or line.amount <= 0:
            raise ValueError(f"amount {line.amount} must be positive with at most two decimals")
        requested[line.category] += line.amount

    # Caps on a share of the eligible total come last: the largest amount that fits, the other caps and the flat
    # rates recomputed with it.
    effective = dict(requested)
    total_cuts: list[Cut] = []
    for code in rules.total_cap_codes:
        cap = rules.category(code).cap
        assert cap is not None
        direct, computed, _ = _apply_caps(rules, effective, included)
        if effective[code] <= percent_of(sum(direct.values(), ZERO) + sum(computed.values(), ZERO), cap.percent):
            continue
        allowed = _largest_within_total_cap(rules, effective, included, code, cap.percent)
        total_cuts.append(Cut(category=code, requested=requested[code], allowed=allowed, reason=CAP_EXCEEDED))
        effective[code] = allowed
    direct, computed, cuts = _apply_caps(rules, effective, included)
    cuts += total_cuts

    total = sum(direct.values(), ZERO) + sum(computed.values(), ZERO)
    flat_rates = {c: computed[c] for c in rules.flat_rate_codes if c in computed}
    return EligibleBreakdown(requested=requested, direct=direct, flat_rates=flat_rates, total=total, cuts=tuple(cuts))


def _apply_caps(
    rules: CallRules, requested: Mapping[str, Decimal], included: set[str]
) -> tuple[dict[str, Decimal], dict[str, Decimal], list[Cut]]:
    """Caps on other categories (in dependency order), then the flat rates on the capped amounts."""
    direct = dict(requested)
    cuts: list[Cut] = []
    for code in rules.cap_order():
        cap = rules.category(code).cap
        assert cap is not None
        limit = percent_of(sum((direct[b] for b in cap.of), ZERO), cap.percent)
        if direct[code] > limit:
            cuts.append(Cut(category=code, requested=direct[code], allowed=limit, reason=CAP_EXCEEDED))
            direct[code] = limit
    computed: dict[str, Decimal] = {}
    for code in rules.flat_rate_order():
        if code not in included:
            continue
        flat = rules.category(code).flat_rate
        assert flat is not None
        base = sum((direct.get(b, computed.get(b, ZERO)) for b in flat.base), ZERO)
        computed[code] = percent_of(base, flat.percent)
    return direct, computed, cuts


def _largest_within_total_cap(
    rules: CallRules, requested: Mapping[str, Decimal], included: set[str], code: str, percent: Decimal
) -> Decimal:
    """The largest amount of `code`, to the cent, not above `percent` of the eligible total it is part of.

    The total grows with the category (directly, through the caps based on it and through the flat rates), but
    by less than 1/percent per euro, so "amount <= percent x total(amount)" holds up to one amount and fails
    beyond it: a bisection on the cents finds it."""

    def fits(cents: int) -> bool:
        amount = Decimal(cents) / 100
        direct, computed, _ = _apply_caps(rules, {**requested, code: amount}, included)
        return amount <= percent_of(sum(direct.values(), ZERO) + sum(computed.values(), ZERO), percent)

    low, high = 0, int(requested[code] * 100)  # fits(low) always; not fits(high), or we would not be here
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return (Decimal(low) / 100).quantize(CENT)


def compute_aid(rules: CallRules, eligible_total: Decimal, loan_cap_share: Decimal = Decimal(1)) -> AidEstimate:
    """Grant and loan on an eligible total.

    grant = min(grant.percent x eligible, grant.cap); loan = min(loan.percent x eligible,
    loan.cap x loan_cap_share), where ``loan_cap_share`` comes from the credit-scoring class
    (``CallRules.loan_cap_share``), where eligible is ``aid_base``: the eligible total capped at the
    call's maximum eligible cost. Each amount is floored to the cent, and the loan is trimmed if the
    total would exceed max_intensity x eligible (floored). The minimum is not checked here (the
    pre-check does it).
    """
    if not cents_ok(eligible_total) or eligible_total < 0:
        raise ValueError(f"eligible total {eligible_total} must be non-negative with at most two decimals")
    if not Decimal(0) <= loan_cap_share <= Decimal(1):
        raise ValueError(f"loan_cap_share must be between 0 and 1, got {loan_cap_share}")
    aid = rules.aid
    base = aid_base(rules, eligible_total)
    grant = min(percent_of(base, aid.grant.percent), aid.grant.cap)
    loan = min(percent_of(base, aid.loan.percent), floor_cent(aid.loan.cap * loan_cap_share))
    ceiling = percent_of(base, aid.max_intensity)
    if grant + loan > ceiling:
        loan = max(ZERO, ceiling - grant)
        grant = min(grant, ceiling)
    eligible = eligible_total.quantize(CENT)
    return AidEstimate(
        eligible_total=eligible, grant=grant, loan=loan, total_aid=grant + loan, aid_base=base.quantize(CENT)
    )


@dataclass(frozen=True)
class Installment:
    number: int
    """1-based."""
    month: int
    """Months from the disbursement of the loan to the due date."""
    interest: Decimal
    principal: Decimal
    payment: Decimal
    outstanding: Decimal
    """Principal still owed after this installment."""


def _half_up(d: Decimal) -> Decimal:
    return d.quantize(CENT, rounding=ROUND_HALF_UP)


def repayment_plan(
    principal: Decimal,
    annual_rate: Decimal,
    years: int,
    grace_months: int,
    periods_per_year: int = 2,
) -> tuple[Installment, ...]:
    """Installments of a loan with French amortisation (constant payment) after a grace period.

    The grace (pre-amortisation) period is *within* the ``years`` of the loan: during it only the
    interest is paid. The period rate is the nominal annual rate divided by ``periods_per_year``.
    Interest and payments are rounded half-up to the cent; the last installment repays whatever
    principal is left, so the principal parts sum exactly to ``principal``.
    """
    if not cents_ok(principal) or principal <= 0:
        raise ValueError(f"principal {principal} must be positive with at most two decimals")
    if annual_rate < 0:
        raise ValueError("annual_rate must not be negative")
    if periods_per_year <= 0 or 12 % periods_per_year:
        raise ValueError("periods_per_year must divide 12")
    months_per_period = 12 // periods_per_year
    if years <= 0 or grace_months < 0 or grace_months % months_per_period:
        raise ValueError("years must be positive and grace_months a multiple of the period")
    periods = years * periods_per_year
    grace = grace_months // months_per_period
    amortising = periods - grace
    if amortising <= 0:
        raise ValueError("the grace period must be shorter than the loan")

    rate = annual_rate / periods_per_year
    if rate == 0:
        payment = _half_up(principal / amortising)
    else:
        payment = _half_up(principal * rate / (1 - (1 + rate) ** -amortising))

    plan: list[Installment] = []
    outstanding = principal
    for n in range(1, periods + 1):
        interest = _half_up(outstanding * rate)
        if n <= grace:
            repaid = ZERO
        elif n == periods:
            repaid = outstanding
        else:
            repaid = min(payment - interest, outstanding)
        outstanding -= repaid
        plan.append(
            Installment(
                number=n,
                month=n * months_per_period,
                interest=interest,
                principal=repaid,
                payment=interest + repaid,
                outstanding=outstanding,
            )
        )
    return tuple(plan)


def gross_grant_equivalent(
    principal: Decimal,
    annual_rate: Decimal,
    reference_rate: Decimal,
    plan: Iterable[Installment],
) -> Decimal:
    """Gross grant equivalent (GGE) of a subsidised loan, floored to the cent.

    Method (Commission Communication on reference and discount rates, OJ C 14, 19.1.2008, as used for
    de minimis loans by Art. 4(3) Reg. (EU) 2023/2831): for every installment, the interest saving is
    the outstanding balance during the period times the difference between the reference rate and
    the loan's rate, both taken per period (annual rate / periods per year); each saving is discounted
    to the disbursement date at the reference rate, compounded yearly: ``saving / (1 + ref) ** (month/12)``.
    The GGE is the sum of the discounted savings (zero if the loan is not below the reference rate).
    ``reference_rate`` is the base rate plus the margin for the company's rating, chosen by the caller.
    ``plan`` must be the plan of ``principal`` (its principal parts must sum to it).
    """
    installments = tuple(plan)
    if sum((i.principal for i in installments), ZERO) != principal:
        raise ValueError("the plan does not repay the principal")
    if reference_rate <= annual_rate or not installments:
        return ZERO
    first = installments[0]
    months_per_period = first.month // first.number if first.number else 0
    if months_per_period <= 0:
        raise ValueError("installments must have increasing months")
    periods_per_year = Decimal(12) / months_per_period
    spread = (reference_rate - annual_rate) / periods_per_year
    total = Decimal(0)
    for inst in installments:
        balance = inst.outstanding + inst.principal
        total += balance * spread / (1 + reference_rate) ** (Decimal(inst.month) / 12)
    return floor_cent(total)
