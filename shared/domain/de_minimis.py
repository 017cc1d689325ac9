"""De minimis ceiling (Regulation (EU) 2023/2831) on the new aid of a call.

The evaluation service keeps the de minimis register (aid granted to each VAT number, from the
national state-aid register RNA and from the desk's own decisions); it loads the entries of the
single undertaking and calls ``cap_new_aid`` before a decision. Pure functions, no I/O.

Rules applied:

* **single undertaking** (Art. 2(2)): the caller gives the VAT numbers of every enterprise of the
  single undertaking, the applicant included; the aid of all of them counts. VAT numbers are
  compared after removing spaces, upper-casing and dropping an "IT" prefix;
* **rolling period** (Art. 3(2) and recital 10): the aid counted is that granted in the
  ``de_minimis.period_years`` years that end on the grant date: from the day after the same date
  ``period_years`` years earlier, to the grant date, both included (grant on 2025-06-10, 3 years:
  aid granted from 2022-06-11 to 2025-06-10). Entries after the grant date are not counted;
* **gross grant equivalent of the loan** (Art. 4(3)(b) and the Commission Communication on
  reference and discount rates, OJ C 14, 19.1.2008): ``shared.domain.funding.gross_grant_equivalent``
  with the reference rate = the call's ``de_minimis.reference_base_rate`` + a margin that depends on
  the company's rating and collateral (``DEFAULT_MARGINS_BP``); the GGE of the grant is its amount;
* **the new aid never makes the total cross the ceiling**: it is reduced, by default the loan first
  and then the grant (``order="loan_first"``: the grant is the fixed part of the call's aid mix,
  the loan the part a bank can replace), or refused when the single undertaking has no headroom.
  ``order="grant_first"`` is offered because it keeps more financing when the headroom is small
  (one euro of headroom buys 1/GGE-rate euros of loan); which order the call wants is to be
  confirmed. The loan's equivalent is rounded *up* to the cent so the register never undercounts.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_UP, Decimal
from functools import cached_property, lru_cache
from typing import Final, Literal

from shared.domain.call_rules import CallRules, LoanTerms
from shared.domain.funding import gross_grant_equivalent, repayment_plan
from shared.domain.money import CENT, ZERO, cents_ok, eur_en, eur_it, floor_cent

Collateral = Literal["high", "normal", "low"]
ReductionOrder = Literal["loan_first", "grant_first"]

#: Margins in basis points over the base rate, by the call's credit-scoring class and collateral.
#: The table of the 2008 Communication, its rating categories mapped onto the call's classes 1-5:
#: 1 = strong (AAA-A), 2 = good (BBB), 3 = satisfactory (BB), 4 = weak (B),
#: 5 = bad / financial difficulties (CCC and below). The mapping is the desk's (to be confirmed).
DEFAULT_MARGINS_BP: Final[Mapping[str, Mapping[Collateral, int]]] = {
    "1": {"high": 60, "normal": 75, "low": 100},
    "2": {"high": 75, "normal": 100, "low": 220},
    "3": {"high": 100, "normal": 220, "low": 400},
    "4": {"high": 220, "normal": 400, "low": 650},
    "5": {"high": 400, "normal": 650, "low": 1000},
}

#: Margin for a company with no rating (no credit history): "at least 400 basis points" (2008 Communication).
NO_RATING_MARGIN_BP: Final = 400

#: Principal on which ``gge_per_euro`` computes the GGE rate: large enough for 8 decimals per euro.
_NOMINAL = Decimal("1000000.00")

_BP = Decimal(10000)


def normalise_vat(vat: str) -> str:
    v = "".join(vat.split()).upper()
    return v[2:] if v.startswith("IT") else v


@dataclass(frozen=True)
class PriorAid:
    """An entry of the de minimis register."""

    vat_number: str
    granted_on: date
    amount: Decimal
    """Gross grant equivalent of the aid, euros with two decimals."""
    source: str
    """Where the entry comes from, e.g. "RNA" or "desk"."""
    reference: str
    """Its identifier there, e.g. the RNA COR code."""

    def __post_init__(self) -> None:
        if not cents_ok(self.amount) or self.amount < 0:
            raise ValueError(f"aid {self.reference}: amount {self.amount} must be non-negative with two decimals")


@dataclass(frozen=True)
class ComputationStep:
    code: str
    detail_it: str
    detail_en: str
    amount: Decimal | None = None


@dataclass(frozen=True)
class PeriodAid:
    window_start: date
    window_end: date
    total: Decimal
    counted: tuple[PriorAid, ...]
    """Entries of the single undertaking inside the window, by date."""
    outside_window: tuple[PriorAid, ...]
    """Entries of the single undertaking outside the window (not counted), by date."""


@dataclass(frozen=True)
class DeMinimisOutcome:
    ceiling: Decimal
    period: PeriodAid
    headroom: Decimal
    """Ceiling minus the aid already counted, never below zero."""
    requested_equivalent: Decimal
    """Grant + GGE of the loan, as requested."""
    allowed_grant: Decimal
    allowed_loan: Decimal
    allowed_loan_equivalent: Decimal
    allowed_equivalent: Decimal
    """Grant + GGE of the loan, as allowed: never more than ``headroom``."""
    reduced: bool
    refused: bool
    explain: Callable[[], tuple[ComputationStep, ...]] = field(repr=False, compare=False)
    """Writes `computation`; called once, when it is first read."""

    @cached_property
    def computation(self) -> tuple[ComputationStep, ...]:
        """Every step of the computation in Italian and English with its figures. Written when first read: a
        submit's check of a draft needs only the figures, not the texts (about a fifth of that check)."""
        return self.explain()


def window_start(grant_date: date, period_years: int) -> date:
    """First day of the rolling period that ends on ``grant_date`` (see the module)."""
    try:
        same_day = grant_date.replace(year=grant_date.year - period_years)
    except ValueError:  # 29 February in a non-leap year
        same_day = date(grant_date.year - period_years, 2, 28)
    return same_day + timedelta(days=1)


def aid_in_period(rules: CallRules, prior: Iterable[PriorAid], members: Iterable[str], grant_date: date) -> PeriodAid:
    """The de minimis aid of the single undertaking (``members``) in the rolling period ending on ``grant_date``."""
    group = {normalise_vat(v) for v in members}
    start = window_start(grant_date, rules.de_minimis.period_years)
    mine = sorted((p for p in prior if normalise_vat(p.vat_number) in group), key=lambda p: p.granted_on)
    counted = tuple(p for p in mine if start <= p.granted_on <= grant_date)
    outside = tuple(p for p in mine if not start <= p.granted_on <= grant_date)
    return PeriodAid(
        window_start=start,
        window_end=grant_date,
        total=sum((p.amount for p in counted), ZERO),
        counted=counted,
        outside_window=outside,
    )


def reference_rate(
    rules: CallRules,
    credit_class: str | None,
    collateral: Collateral = "normal",
    *,
    margins_bp: Mapping[str, Mapping[Collateral, int]] = DEFAULT_MARGINS_BP,
    no_rating_margin_bp: int = NO_RATING_MARGIN_BP,
) -> Decimal:
    """Reference rate = ``de_minimis.reference_base_rate`` + the margin of the class and collateral.

    ``credit_class=None`` (no rating) takes ``no_rating_margin_bp``. An unknown class raises ``KeyError``.
    """
    if credit_class is None:
        margin = no_rating_margin_bp
    else:
        margin = margins_bp[credit_class][collateral]
    return rules.de_minimis.reference_base_rate + Decimal(margin) / _BP


def loan_gge(principal: Decimal, rules: CallRules, years: int, grace_months: int, reference_rate: Decimal) -> Decimal:
    """Gross grant equivalent of the call's subsidised loan, floored to the cent.

    The loan runs ``years`` (within the call's ``aid.loan.min_years..max_years``) at the call's
    ``aid.loan.annual_rate``, with ``grace_months`` of interest only, half-yearly installments
    (``funding.repayment_plan``); the GGE is ``funding.gross_grant_equivalent`` at ``reference_rate``.
    """
    return _loan_gge(principal, rules.aid.loan, years, grace_months, reference_rate)


def _loan_gge(principal: Decimal, terms: LoanTerms, years: int, grace_months: int, reference_rate: Decimal) -> Decimal:
    if not terms.min_years <= years <= terms.max_years:
        raise ValueError(f"the loan lasts {terms.min_years} to {terms.max_years} years, not {years}")
    if not cents_ok(principal) or principal < 0:
        raise ValueError(f"principal {principal} must be non-negative with at most two decimals")
    if principal == 0:
        return ZERO
    plan = repayment_plan(principal, terms.annual_rate, years, grace_months)
    return gross_grant_equivalent(principal, terms.annual_rate, reference_rate, plan)


def gge_per_euro(rules: CallRules, years: int, grace_months: int, reference_rate: Decimal) -> Decimal:
    """GGE of one euro of loan: ``loan_gge`` of a nominal 1,000,000.00 divided by it (8 decimals).

    It depends on the call's loan terms and the rate only, not on the application, so it is computed once
    per terms and rate (the whole repayment plan is most of a pre-check's arithmetic otherwise)."""
    return _gge_per_euro(rules.aid.loan, years, grace_months, reference_rate)


@lru_cache(maxsize=1024)
def _gge_per_euro(terms: LoanTerms, years: int, grace_months: int, reference_rate: Decimal) -> Decimal:
    return _loan_gge(_NOMINAL, terms, years, grace_months, reference_rate) / _NOMINAL


def _ceil_cent(d: Decimal) -> Decimal:
    return d.quantize(CENT, rounding=ROUND_UP)


def _loan_equivalent(loan: Decimal, rate: Decimal) -> Decimal:
    return _ceil_cent(loan * rate)


def loan_equivalent(loan: Decimal, gge_per_euro_of_loan: Decimal) -> Decimal:
    """What a loan counts against the ceiling: ``loan`` x the GGE of one euro (``gge_per_euro``), rounded up."""
    return _loan_equivalent(loan, gge_per_euro_of_loan)


def _max_loan(room: Decimal, rate: Decimal, requested: Decimal) -> Decimal:
    """The largest loan (at most ``requested``) whose equivalent fits in ``room``."""
    if rate == 0:
        return requested
    loan = min(requested, floor_cent(room / rate))
    while loan > 0 and _loan_equivalent(loan, rate) > room:
        loan -= CENT
    return max(loan, ZERO)


def _it_date(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def cap_new_aid(
    rules: CallRules,
    prior: Iterable[PriorAid],
    members: Iterable[str],
    grant: Decimal,
    loan: Decimal,
    gge_per_euro_of_loan: Decimal,
    *,
    grant_date: date,
    order: ReductionOrder = "loan_first",
) -> DeMinimisOutcome:
    """The grant and loan the single undertaking may receive without crossing the de minimis ceiling.

    ``members`` are the VAT numbers of the single undertaking (applicant included); ``grant`` and
    ``loan`` the amounts the call would give; ``gge_per_euro_of_loan`` the GGE of one euro of the loan
    (``gge_per_euro``). Returns the allowed amounts and every step of the computation in Italian and
    English with its figures.
    """
    for name, value in (("grant", grant), ("loan", loan)):
        if not cents_ok(value) or value < 0:
            raise ValueError(f"{name} {value} must be non-negative with at most two decimals")
    if not gge_per_euro_of_loan.is_finite() or not 0 <= gge_per_euro_of_loan <= 1:
        raise ValueError(f"gge_per_euro_of_loan must be between 0 and 1, got {gge_per_euro_of_loan}")
    rate = gge_per_euro_of_loan
    ceiling = rules.de_minimis.ceiling
    years = rules.de_minimis.period_years
    period = aid_in_period(rules, prior, members, grant_date)
    headroom = max(ZERO, ceiling - period.total)
    loan_eq = _loan_equivalent(loan, rate)
    requested = grant + loan_eq
    if requested <= headroom:
        allowed_grant, allowed_loan = grant, loan
    elif headroom == 0:
        allowed_grant, allowed_loan = ZERO, ZERO
    elif order == "loan_first":
        if grant <= headroom:
            allowed_grant = grant
            allowed_loan = _max_loan(headroom - grant, rate, loan)
        else:
            allowed_grant, allowed_loan = headroom, ZERO
    else:
        if loan_eq <= headroom:
            allowed_loan = loan
            allowed_grant = headroom - loan_eq
        else:
            allowed_grant = ZERO
            allowed_loan = _max_loan(headroom, rate, loan)
    allowed_loan_eq = _loan_equivalent(allowed_loan, rate)
    allowed = allowed_grant + allowed_loan_eq
    assert allowed <= headroom  # the invariant of the whole module
    reduced = (allowed_grant, allowed_loan) != (grant, loan)
    refused = (grant > 0 or loan > 0) and allowed_grant == 0 and allowed_loan == 0

    def explain() -> tuple[ComputationStep, ...]:
        steps: list[ComputationStep] = []

        def step(code: str, it: str, en: str, amount: Decimal | None = None) -> None:
            steps.append(ComputationStep(code, it, en, amount))

        step(
            "period",
            f"Periodo mobile di {years} anni ({rules.de_minimis.regulation}): aiuti concessi dal "
            f"{_it_date(period.window_start)} al {_it_date(grant_date)}.",
            f"Rolling period of {years} years ({rules.de_minimis.regulation}): aid granted from "
            f"{period.window_start.isoformat()} to {grant_date.isoformat()}.",
        )
        for p in period.counted:
            step(
                "prior_aid_counted",
                f"Conteggiato: aiuto {p.reference} ({p.source}) a {p.vat_number} del {_it_date(p.granted_on)}, "
                f"{eur_it(p.amount)}.",
                f"Counted: aid {p.reference} ({p.source}) to {p.vat_number} on {p.granted_on.isoformat()}, "
                f"{eur_en(p.amount)}.",
                p.amount,
            )
        for p in period.outside_window:
            step(
                "prior_aid_outside_period",
                f"Non conteggiato (fuori periodo): aiuto {p.reference} ({p.source}) a {p.vat_number} del "
                f"{_it_date(p.granted_on)}, {eur_it(p.amount)}.",
                f"Not counted (outside the period): aid {p.reference} ({p.source}) to {p.vat_number} on "
                f"{p.granted_on.isoformat()}, {eur_en(p.amount)}.",
                p.amount,
            )
        step(
            "prior_total",
            f"Aiuti de minimis dell'impresa unica nel periodo: {eur_it(period.total)}.",
            f"De minimis aid of the single undertaking in the period: {eur_en(period.total)}.",
            period.total,
        )
        step(
            "headroom",
            f"Margine disponibile: massimale {eur_it(ceiling)} − {eur_it(period.total)} = {eur_it(headroom)}.",
            f"Headroom: ceiling {eur_en(ceiling)} − {eur_en(period.total)} = {eur_en(headroom)}.",
            headroom,
        )
        step(
            "requested",
            f"Nuovo aiuto: contributo {eur_it(grant)} + ESL del finanziamento {eur_it(loan)} × {rate} = "
            f"{eur_it(loan_eq)}; totale {eur_it(requested)}.",
            f"New aid: grant {eur_en(grant)} + GGE of the loan {eur_en(loan)} × {rate} = {eur_en(loan_eq)}; "
            f"total {eur_en(requested)}.",
            requested,
        )

        if requested <= headroom:
            step(
                "fits",
                f"Il nuovo aiuto ({eur_it(requested)}) rientra nel margine ({eur_it(headroom)}): nessuna riduzione.",
                f"The new aid ({eur_en(requested)}) fits in the headroom ({eur_en(headroom)}): no reduction.",
                requested,
            )
        elif headroom == 0:
            step(
                "refused",
                f"Nessun margine: l'impresa unica ha già raggiunto il massimale di {eur_it(ceiling)}; "
                "l'aiuto non può essere concesso.",
                f"No headroom: the single undertaking has already reached the ceiling of {eur_en(ceiling)}; "
                "the aid cannot be granted.",
                ZERO,
            )
        elif order == "loan_first":
            _reduction_steps(step, "loan", loan, allowed_loan, rate)
            _reduction_steps(step, "grant", grant, allowed_grant, rate)
        else:
            _reduction_steps(step, "grant", grant, allowed_grant, rate)
            _reduction_steps(step, "loan", loan, allowed_loan, rate)

        if reduced and not refused:
            step(
                "allowed",
                f"Aiuto concedibile: contributo {eur_it(allowed_grant)} + finanziamento {eur_it(allowed_loan)} "
                f"(ESL {eur_it(allowed_loan_eq)}); totale {eur_it(allowed)} ≤ margine {eur_it(headroom)}.",
                f"Aid that may be granted: grant {eur_en(allowed_grant)} + loan {eur_en(allowed_loan)} "
                f"(GGE {eur_en(allowed_loan_eq)}); total {eur_en(allowed)} ≤ headroom {eur_en(headroom)}.",
                allowed,
            )
        return tuple(steps)

    return DeMinimisOutcome(
        ceiling=ceiling,
        period=period,
        headroom=headroom,
        requested_equivalent=requested,
        allowed_grant=allowed_grant,
        allowed_loan=allowed_loan,
        allowed_loan_equivalent=allowed_loan_eq,
        allowed_equivalent=allowed,
        reduced=reduced,
        refused=refused,
        explain=explain,
    )


_StepFn = Callable[[str, str, str, Decimal | None], None]

_NAMES = {"loan": ("finanziamento", "loan"), "grant": ("contributo", "grant")}


def _reduction_steps(step: _StepFn, what: str, requested: Decimal, allowed: Decimal, rate: Decimal) -> None:
    it, en = _NAMES[what]
    if allowed == requested:
        step(
            f"{what}_kept",
            f"Il {it} resta di {eur_it(requested)}.",
            f"The {en} stays at {eur_en(requested)}.",
            requested,
        )
    else:
        step(
            f"{what}_reduced",
            f"Il {it} è ridotto da {eur_it(requested)} a {eur_it(allowed)}.",
            f"The {en} is reduced from {eur_en(requested)} to {eur_en(allowed)}.",
            allowed,
        )
