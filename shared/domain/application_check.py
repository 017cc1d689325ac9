"""Pre-check of a draft application against the rules of its call.

``check_application`` reports every problem at once, each with a stable code, a JSON pointer into
the application document, a message in Italian and English quoting the figures, and the call
article. Problems are blocking (the draft cannot be submitted as is) except ``category_cap_exceeded``
(the call cuts the excess over a cap, not the application) and ``eligible_total_above_max`` (an eligible
total above the call's maximum is capped, not refused: the aid is computed on the maximum).

The caller (the intake service) builds ``CompanyFacts`` and ``DraftFacts`` from its rows; this
module does no I/O. JSON pointers used:

* ``/company`` for every company-level problem;
* ``/action_plan/target_markets`` and ``/action_plan/target_markets/{i}``;
* ``/action_plan/objectives``, ``/action_plan/starting_point``, ``/action_plan/strategy``,
  ``/action_plan/kpis``, ``/action_plan/milestones``, ``/action_plan/milestones/{i}/due_date``,
  ``/action_plan/start_date``, ``/action_plan/end_date``;
* ``/expense_lines/{i}/category``, ``/expense_lines/{i}/amount``, ``/expense_lines/{i}/target_market``
  (``i`` is the position of the line in ``DraftFacts.expense_lines``) and ``/expense_lines`` for
  problems about the whole set of lines;
* ``/flat_rates`` for the flat-rate categories the applicant opts in to;
* ``/de_minimis_declarations`` for the de minimis ceiling over the aid the applicant declared.

De minimis at the pre-check counts the applicant's self-declaration only (``DraftFacts.declared_aid``: every
de minimis aid its single undertaking received): intake does not read evaluation's register, so the
headroom shown is what the declaration leaves; the funding computation and the acceptance of a decision
count everything (declared, the national register's, the desk's own). The estimated aid that would
cross the ceiling is cut to the headroom with the warning ``de_minimis_aid_reduced``; with no headroom
left, ``de_minimis_ceiling_reached`` blocks.
"""

import calendar
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

import pycountry

from shared.domain.call_rules import CallRules, SizeClass
from shared.domain.funding import (
    AidEstimate,
    EligibleBreakdown,
    ExpenseAmount,
    compute_aid,
    compute_eligible,
)
from shared.domain.money import ZERO, cents_ok, eur_en, eur_it

if TYPE_CHECKING:
    from shared.domain.de_minimis import DeMinimisOutcome

PROBLEM_CODES: tuple[str, ...] = (
    # company (article "applicants", "aid" for the credit class)
    "size_class_not_allowed",
    "ateco_invalid",
    "ateco_excluded",
    "financial_statements_insufficient",
    "lombardy_site_missing",
    "turnover_not_positive",
    "export_share_exceeded",
    "credit_class_unknown",
    "credit_class_excluded",
    # target markets (article "projects")
    "target_markets_missing",
    "target_market_invalid",
    "target_market_duplicate",
    "target_market_not_new",
    # expense lines (article "expenses")
    "expense_category_unknown",
    "expense_category_flat_rate",
    "expense_amount_not_positive",
    "expense_amount_too_many_decimals",
    "expense_market_not_in_plan",
    "flat_rate_unknown",
    "category_cap_exceeded",
    "eligible_total_below_min",
    "eligible_total_above_max",
    "new_or_emerging_share_too_low",
    # timeline (article "projects")
    "timeline_missing",
    "start_date_in_past",
    "end_before_start",
    "duration_exceeded",
    "milestone_outside_timeline",
    # completeness of the action plan (article "submission")
    "plan_section_missing",
    "kpis_missing",
    "milestones_missing",
    # de minimis over the declared aid (article "aid")
    "de_minimis_aid_reduced",
    "de_minimis_ceiling_reached",
)

NON_BLOCKING_CODES: frozenset[str] = frozenset(
    {"category_cap_exceeded", "eligible_total_above_max", "de_minimis_aid_reduced"}
)

# ATECO 2007 division -> section.
_SECTION_RANGES: tuple[tuple[int, int, str], ...] = (
    (1, 3, "A"),
    (5, 9, "B"),
    (10, 33, "C"),
    (35, 35, "D"),
    (36, 39, "E"),
    (41, 43, "F"),
    (45, 47, "G"),
    (49, 53, "H"),
    (55, 56, "I"),
    (58, 63, "J"),
    (64, 66, "K"),
    (68, 68, "L"),
    (69, 75, "M"),
    (77, 82, "N"),
    (84, 84, "O"),
    (85, 85, "P"),
    (86, 88, "Q"),
    (90, 93, "R"),
    (94, 96, "S"),
    (97, 98, "T"),
    (99, 99, "U"),
)


class ExportSale(NamedTuple):
    year: int
    country: str
    """ISO 3166-1 alpha-2."""
    amount: Decimal


class Milestone(NamedTuple):
    title: str
    due_date: date


@dataclass(frozen=True)
class CompanyFacts:
    size_class: SizeClass
    """From ``shared.domain.sme.size_class`` on the company's figures."""
    ateco_code: str
    """Main ATECO 2007 code, e.g. ``"62.01.00"``, ``"62.01"`` or ``"620100"``."""
    approved_financial_statements: int
    """Approved financial statements (or tax returns, for firms not required to file them)."""
    has_lombardy_site: bool
    lombardy_site_commitment: bool
    turnover: Decimal
    """Turnover of the previous year."""
    previous_year_export_sales: Decimal
    export_history: tuple[ExportSale, ...] = ()
    credit_class: str | None = None
    """Credit-scoring class, if already known; ``None`` estimates the loan with the full cap."""


@dataclass(frozen=True)
class DraftLine:
    category: str
    amount: Decimal
    target_market: str | None = None


@dataclass(frozen=True)
class DeclaredAid:
    """A de minimis aid the applicant declared for a member of its single undertaking."""

    vat_number: str
    granted_on: date
    amount: Decimal
    """Gross grant equivalent, euros with two decimals."""
    reference: str


@dataclass(frozen=True)
class DraftFacts:
    target_markets: tuple[str, ...] = ()
    objectives: str = ""
    starting_point: str = ""
    strategy: str = ""
    resources: str = ""
    start_date: date | None = None
    end_date: date | None = None
    milestones: tuple[Milestone, ...] = ()
    kpi_count: int = 0
    expense_lines: tuple[DraftLine, ...] = ()
    flat_rates: frozenset[str] | None = None
    """Flat-rate categories opted in to; ``None`` means all those of the call."""
    today: date | None = None
    """The day of the check (Europe/Rome); ``check_application(today=...)`` takes precedence."""
    declared_aid: tuple[DeclaredAid, ...] = ()
    """The applicant's de minimis self-declaration (every aid of its single undertaking)."""


@dataclass(frozen=True)
class Problem:
    code: str
    path: str
    message_it: str
    message_en: str
    article: str
    blocking: bool


@dataclass(frozen=True)
class CheckResult:
    problems: tuple[Problem, ...]
    breakdown: EligibleBreakdown | None
    """Eligible expenses of the valid lines; ``None`` if no line is valid."""
    estimate: AidEstimate | None
    """Aid on the eligible total (capped at the call's maximum and at the de minimis headroom left by the
    declared aid); ``None`` below the call's minimum."""
    blocking: bool
    de_minimis: "DeMinimisOutcome | None" = None
    """The de minimis computation over the declared aid, when there is an estimate."""


# ----- formatting ---------------------------------------------------------------------------------


def _pct(rate: Decimal, sep: str) -> str:
    s = f"{rate * 100:.2f}".rstrip("0").rstrip(".")
    return s.replace(".", sep) + " %"


def _pct_it(rate: Decimal) -> str:
    return _pct(rate, ",")


def _pct_en(rate: Decimal) -> str:
    return _pct(rate, ".")


# ----- helpers ------------------------------------------------------------------------------------


def ateco_digits(code: str) -> str | None:
    """The digits of an ATECO 2007 code (``"46.35.00"`` -> ``"463500"``), or ``None`` if malformed."""
    s = code.strip()
    parts = s.split(".")
    if not s or not all(p.isdigit() for p in parts):
        return None
    if len(parts) == 1:
        return s if len(s) in (2, 3, 4, 5, 6) else None
    if len(parts[0]) != 2 or any(not 1 <= len(p) <= 2 for p in parts[1:]) or len(parts) > 3:
        return None
    return "".join(parts)


def ateco_section(code: str) -> str | None:
    """The ATECO 2007 section letter of a code, or ``None`` if the code or its division is invalid."""
    digits = ateco_digits(code)
    if digits is None:
        return None
    division = int(digits[:2])
    for low, high, section in _SECTION_RANGES:
        if low <= division <= high:
            return section
    return None


def _is_country(code: str) -> bool:
    return len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code) is not None


def _add_months(d: date, months: int) -> date:
    month_index = d.month - 1 + months
    year, month = d.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


class _Problems:
    def __init__(self, rules: CallRules) -> None:
        self._rules = rules
        self.items: list[Problem] = []

    def add(self, code: str, path: str, it: str, en: str, article: str) -> None:
        assert code in PROBLEM_CODES, code
        self.items.append(
            Problem(
                code=code,
                path=path,
                message_it=it,
                message_en=en,
                article=self._rules.article(article),
                blocking=code not in NON_BLOCKING_CODES,
            )
        )


# ----- the check ----------------------------------------------------------------------------------


def check_application(
    rules: CallRules,
    company: CompanyFacts,
    draft: DraftFacts,
    *,
    today: date | None = None,
) -> CheckResult:
    """Every problem of the draft against the call, the eligible breakdown and the aid estimate.

    ``today`` (or ``draft.today``) is the day of the check; if neither is given, today's date in the
    call's timezone is used.
    """
    day = today or draft.today or datetime.now(rules.tz).date()
    problems = _Problems(rules)
    _check_company(rules, company, problems)
    markets = _check_markets(rules, company, draft, day, problems)
    breakdown = _check_expenses(rules, company, draft, markets, day, problems)
    _check_timeline(rules, draft, day, problems)
    _check_plan(draft, problems)

    estimate: AidEstimate | None = None
    if breakdown is not None and breakdown.total >= rules.eligible_cost.min:
        share = Decimal(1)
        if company.credit_class is not None and company.credit_class in {
            c.class_code for c in rules.credit_scoring.classes
        }:
            share = rules.loan_cap_share(company.credit_class)
        estimate = compute_aid(rules, breakdown.total, share)

    de_minimis = None
    if estimate is not None:
        estimate, de_minimis = _check_de_minimis(rules, company, draft, estimate, day, problems)

    items = tuple(problems.items)
    return CheckResult(
        problems=items,
        breakdown=breakdown,
        estimate=estimate,
        blocking=any(p.blocking for p in items),
        de_minimis=de_minimis,
    )


def _check_de_minimis(
    rules: CallRules, company: CompanyFacts, draft: DraftFacts, estimate: AidEstimate, day: date, problems: _Problems
) -> "tuple[AidEstimate, DeMinimisOutcome]":
    """Cap the estimate at the headroom the declared aid leaves (module docstring). The loan's gross grant
    equivalent is estimated over the call's longest loan at the reference rate of the company's credit class
    (the no-rating margin when none is known yet): the funding computation makes it exact."""
    # imported here: shared.domain.de_minimis builds on this module's formatting helpers
    from shared.domain import de_minimis as dm

    terms = rules.aid.loan
    known = company.credit_class in {c.class_code for c in rules.credit_scoring.classes}
    rate = dm.reference_rate(rules, company.credit_class if known else None)
    per_euro = dm.gge_per_euro(rules, terms.max_years, terms.grace_months, rate)
    prior = [dm.PriorAid(a.vat_number, a.granted_on, a.amount, "declared", a.reference) for a in draft.declared_aid]
    members = {a.vat_number for a in draft.declared_aid}
    outcome = dm.cap_new_aid(rules, prior, members, estimate.grant, estimate.loan, per_euro, grant_date=day)
    path = "/de_minimis_declarations"
    if outcome.refused:
        problems.add(
            "de_minimis_ceiling_reached",
            path,
            f"Gli aiuti de minimis dichiarati nel periodo ({eur_it(outcome.period.total)}) esauriscono il "
            f"massimale di {eur_it(outcome.ceiling)}: il bando non può concedere alcun aiuto.",
            f"The de minimis aid declared in the period ({eur_en(outcome.period.total)}) uses up the ceiling of "
            f"{eur_en(outcome.ceiling)}: the call can grant no aid.",
            "aid",
        )
    elif outcome.reduced:
        problems.add(
            "de_minimis_aid_reduced",
            path,
            f"Margine de minimis disponibile {eur_it(outcome.headroom)} (massimale {eur_it(outcome.ceiling)} − "
            f"dichiarati {eur_it(outcome.period.total)}): l'aiuto stimato è ridotto a contributo "
            f"{eur_it(outcome.allowed_grant)} e finanziamento {eur_it(outcome.allowed_loan)}.",
            f"De minimis headroom {eur_en(outcome.headroom)} (ceiling {eur_en(outcome.ceiling)} − declared "
            f"{eur_en(outcome.period.total)}): the estimated aid is cut to grant {eur_en(outcome.allowed_grant)} "
            f"and loan {eur_en(outcome.allowed_loan)}.",
            "aid",
        )
    if outcome.reduced:
        estimate = replace(
            estimate,
            grant=outcome.allowed_grant,
            loan=outcome.allowed_loan,
            total_aid=outcome.allowed_grant + outcome.allowed_loan,
        )
    return estimate, outcome


def _check_company(rules: CallRules, company: CompanyFacts, problems: _Problems) -> None:
    el = rules.eligibility
    path = "/company"
    if company.size_class not in el.sizes:
        allowed = ", ".join(el.sizes)
        problems.add(
            "size_class_not_allowed",
            path,
            f"La dimensione d'impresa '{company.size_class}' non è ammessa (ammesse: {allowed}).",
            f"Enterprise size '{company.size_class}' is not allowed (allowed: {allowed}).",
            "applicants",
        )

    section = ateco_section(company.ateco_code)
    digits = ateco_digits(company.ateco_code)
    if section is None or digits is None:
        problems.add(
            "ateco_invalid",
            path,
            f"Il codice ATECO '{company.ateco_code}' non è un codice ATECO 2007 valido.",
            f"ATECO code '{company.ateco_code}' is not a valid ATECO 2007 code.",
            "applicants",
        )
    elif section in el.excluded_ateco_sections:
        problems.add(
            "ateco_excluded",
            path,
            f"Il codice ATECO {company.ateco_code} appartiene alla sezione {section}, esclusa dal bando.",
            f"ATECO code {company.ateco_code} belongs to section {section}, which the call excludes.",
            "applicants",
        )
    else:
        for prefix in el.excluded_ateco_prefixes:
            if digits.startswith(prefix.replace(".", "")):
                problems.add(
                    "ateco_excluded",
                    path,
                    f"Il codice ATECO {company.ateco_code} rientra nel codice escluso {prefix} (tabacco).",
                    f"ATECO code {company.ateco_code} falls under the excluded code {prefix} (tobacco).",
                    "applicants",
                )
                break

    needed = el.min_approved_financial_statements
    if company.approved_financial_statements < needed:
        problems.add(
            "financial_statements_insufficient",
            path,
            f"Servono almeno {needed} bilanci approvati (o dichiarazioni dei redditi); "
            f"ne risultano {company.approved_financial_statements}.",
            f"At least {needed} approved financial statements (or tax returns) are required; "
            f"{company.approved_financial_statements} found.",
            "applicants",
        )

    if (
        el.lombardy_site_required
        and not company.has_lombardy_site
        and not (el.lombardy_site_commitment_allowed and company.lombardy_site_commitment)
    ):
        if el.lombardy_site_commitment_allowed:
            it = (
                "L'impresa non ha una sede operativa in Lombardia né si impegna ad aprirne una "
                "prima dell'erogazione dell'anticipo."
            )
            en = (
                "The company has no operating site in Lombardy and does not commit to open one "
                "before the advance is paid."
            )
        else:
            it = "L'impresa non ha una sede operativa in Lombardia."
            en = "The company has no operating site in Lombardy."
        problems.add("lombardy_site_missing", path, it, en, "applicants")

    limit = el.max_previous_year_export_share
    if company.turnover <= 0:
        problems.add(
            "turnover_not_positive",
            path,
            f"Il fatturato dell'anno precedente ({eur_it(company.turnover)}) deve essere positivo per "
            f"verificare la quota di export (massimo {_pct_it(limit)}).",
            f"Previous-year turnover ({eur_en(company.turnover)}) must be positive to check the export "
            f"share (at most {_pct_en(limit)}).",
            "applicants",
        )
    else:
        share = company.previous_year_export_sales / company.turnover
        if share > limit:
            problems.add(
                "export_share_exceeded",
                path,
                f"Il fatturato estero dell'anno precedente ({eur_it(company.previous_year_export_sales)}) è "
                f"il {_pct_it(share.quantize(Decimal('0.0001')))} del fatturato "
                f"({eur_it(company.turnover)}): il massimo è {_pct_it(limit)}.",
                f"Previous-year export sales ({eur_en(company.previous_year_export_sales)}) are "
                f"{_pct_en(share.quantize(Decimal('0.0001')))} of turnover ({eur_en(company.turnover)}): "
                f"the maximum is {_pct_en(limit)}.",
                "applicants",
            )

    if company.credit_class is not None:
        classes = {c.class_code: c.loan_cap_share for c in rules.credit_scoring.classes}
        if company.credit_class not in classes:
            known = ", ".join(classes)
            problems.add(
                "credit_class_unknown",
                path,
                f"La classe di merito creditizio '{company.credit_class}' non è prevista (previste: {known}).",
                f"Credit-scoring class '{company.credit_class}' is not provided for (known: {known}).",
                "aid",
            )
        elif classes[company.credit_class] == 0:
            problems.add(
                "credit_class_excluded",
                path,
                f"La classe di merito creditizio {company.credit_class} non consente il finanziamento.",
                f"Credit-scoring class {company.credit_class} does not allow the loan.",
                "aid",
            )


def _is_new_market(rules: CallRules, company: CompanyFacts, country: str, day: date) -> bool:
    first = day.year - rules.markets.lookback_years
    return not any(
        sale_country.upper() == country and first <= year <= day.year - 1 and amount > 0
        for year, sale_country, amount in company.export_history
    )


def _check_markets(
    rules: CallRules, company: CompanyFacts, draft: DraftFacts, day: date, problems: _Problems
) -> set[str]:
    """Checks the plan's markets and returns the valid ones."""
    if not draft.target_markets:
        problems.add(
            "target_markets_missing",
            "/action_plan/target_markets",
            "Il piano d'azione non indica alcun mercato obiettivo.",
            "The action plan names no target market.",
            "projects",
        )
    valid: set[str] = set()
    lookback = rules.markets.lookback_years
    for i, country in enumerate(draft.target_markets):
        path = f"/action_plan/target_markets/{i}"
        if not _is_country(country):
            problems.add(
                "target_market_invalid",
                path,
                f"'{country}' non è un codice paese ISO 3166-1 alpha-2 valido.",
                f"'{country}' is not a valid ISO 3166-1 alpha-2 country code.",
                "projects",
            )
            continue
        if country in valid:
            problems.add(
                "target_market_duplicate",
                path,
                f"Il mercato {country} è indicato più di una volta.",
                f"Market {country} is listed more than once.",
                "projects",
            )
            continue
        valid.add(country)
        if rules.markets.require_new_markets and not _is_new_market(rules, company, country, day):
            problems.add(
                "target_market_not_new",
                path,
                f"Il mercato {country} non è nuovo: l'impresa vi ha esportato negli ultimi {lookback} anni "
                f"({day.year - lookback}-{day.year - 1}).",
                f"Market {country} is not new: the company exported there in the last {lookback} years "
                f"({day.year - lookback}-{day.year - 1}).",
                "projects",
            )
    return valid


def _check_expenses(
    rules: CallRules,
    company: CompanyFacts,
    draft: DraftFacts,
    markets: set[str],
    day: date,
    problems: _Problems,
) -> EligibleBreakdown | None:
    flat_codes = set(rules.flat_rate_codes)
    valid_lines: list[DraftLine] = []
    for i, line in enumerate(draft.expense_lines):
        base = f"/expense_lines/{i}"
        ok = True
        if not rules.has_category(line.category):
            known = ", ".join(rules.direct_codes)
            problems.add(
                "expense_category_unknown",
                f"{base}/category",
                f"La categoria di spesa '{line.category}' non è prevista dal bando (categorie: {known}).",
                f"Expense category '{line.category}' is not provided for by the call (categories: {known}).",
                "expenses",
            )
            ok = False
        elif line.category in flat_codes:
            cat = rules.category(line.category)
            problems.add(
                "expense_category_flat_rate",
                f"{base}/category",
                f"La categoria {cat.code} ({cat.name_it}) è calcolata a forfait: non va esposta a voci di spesa.",
                f"Category {cat.code} ({cat.name_en}) is a flat rate: it is computed, not itemised.",
                "expenses",
            )
            ok = False
        if line.amount.is_nan() or line.amount <= 0:
            problems.add(
                "expense_amount_not_positive",
                f"{base}/amount",
                f"L'importo {line.amount} deve essere maggiore di zero.",
                f"Amount {line.amount} must be greater than zero.",
                "expenses",
            )
            ok = False
        if not cents_ok(line.amount):
            problems.add(
                "expense_amount_too_many_decimals",
                f"{base}/amount",
                f"L'importo {line.amount} ha più di due decimali.",
                f"Amount {line.amount} has more than two decimals.",
                "expenses",
            )
            ok = False
        if line.target_market is not None and line.target_market not in markets:
            problems.add(
                "expense_market_not_in_plan",
                f"{base}/target_market",
                f"Il mercato {line.target_market} della spesa non è tra i mercati obiettivo del piano.",
                f"The line's market {line.target_market} is not one of the plan's target markets.",
                "expenses",
            )
        if ok:
            valid_lines.append(line)

    included: set[str] | None = None
    if draft.flat_rates is not None:
        unknown = sorted(set(draft.flat_rates) - flat_codes)
        if unknown:
            known = ", ".join(sorted(flat_codes))
            problems.add(
                "flat_rate_unknown",
                "/flat_rates",
                f"Categorie forfettarie non previste: {', '.join(unknown)} (previste: {known}).",
                f"Flat-rate categories not provided for: {', '.join(unknown)} (known: {known}).",
                "expenses",
            )
        included = set(draft.flat_rates) & flat_codes

    breakdown: EligibleBreakdown | None = None
    total = ZERO
    if valid_lines:
        breakdown = compute_eligible(
            rules, [ExpenseAmount(category=ln.category, amount=ln.amount) for ln in valid_lines], included
        )
        total = breakdown.total
        for cut in breakdown.cuts:
            cat = rules.category(cut.category)
            cap = cat.cap
            assert cap is not None
            of_it = " + ".join(cap.of) if cap.base == "categories" else "totale ammissibile"
            of_en = " + ".join(cap.of) if cap.base == "categories" else "the eligible total"
            excess = cut.requested - cut.allowed
            problems.add(
                "category_cap_exceeded",
                "/expense_lines",
                f"La categoria {cat.code} ({cat.name_it}) supera il limite "
                f"del {_pct_it(cap.percent)} di {of_it}: "
                f"richiesti {eur_it(cut.requested)}, ammissibili {eur_it(cut.allowed)}; "
                f"l'eccedenza di {eur_it(excess)} è esclusa.",
                f"Category {cat.code} ({cat.name_en}) exceeds its cap of {_pct_en(cap.percent)} of {of_en}: "
                f"requested {eur_en(cut.requested)}, eligible {eur_en(cut.allowed)}; "
                f"the excess of {eur_en(excess)} is cut.",
                "expenses",
            )

    low, high = rules.eligible_cost.min, rules.eligible_cost.max
    if total < low:
        problems.add(
            "eligible_total_below_min",
            "/expense_lines",
            f"Le spese ammissibili ({eur_it(total)}) sono inferiori al minimo di {eur_it(low)}.",
            f"Eligible expenses ({eur_en(total)}) are below the minimum of {eur_en(low)}.",
            "expenses",
        )
    elif total > high:
        problems.add(
            "eligible_total_above_max",
            "/expense_lines",
            f"Le spese ammissibili ({eur_it(total)}) superano il massimo di {eur_it(high)}: la domanda è "
            f"ammissibile e l'aiuto è calcolato su {eur_it(high)}.",
            f"Eligible expenses ({eur_en(total)}) exceed the maximum of {eur_en(high)}: the application is "
            f"admissible and the aid is computed on {eur_en(high)}.",
            "expenses",
        )

    # Share of the direct spend attributed to a (valid) market that goes to new or emerging markets,
    # on the requested amounts (before caps).
    attributable = ZERO
    new_or_emerging = ZERO
    for line in valid_lines:
        if line.target_market is None or line.target_market not in markets:
            continue
        attributable += line.amount
        if rules.is_emerging(line.target_market) or _is_new_market(rules, company, line.target_market, day):
            new_or_emerging += line.amount
    minimum = rules.markets.min_share_new_or_emerging
    if attributable > 0 and new_or_emerging / attributable < minimum:
        share = (new_or_emerging / attributable).quantize(Decimal("0.0001"))
        problems.add(
            "new_or_emerging_share_too_low",
            "/expense_lines",
            f"Solo {eur_it(new_or_emerging)} su {eur_it(attributable)} di spese attribuite a un mercato "
            f"({_pct_it(share)}) riguardano mercati nuovi o emergenti: il minimo è {_pct_it(minimum)}.",
            f"Only {eur_en(new_or_emerging)} of {eur_en(attributable)} of market-attributed spend "
            f"({_pct_en(share)}) goes to new or emerging markets: the minimum is {_pct_en(minimum)}.",
            "expenses",
        )
    return breakdown


def _check_timeline(rules: CallRules, draft: DraftFacts, day: date, problems: _Problems) -> None:
    start, end = draft.start_date, draft.end_date
    if start is None:
        problems.add(
            "timeline_missing",
            "/action_plan/start_date",
            "Manca la data di inizio del progetto.",
            "The project start date is missing.",
            "projects",
        )
    elif start < day:
        problems.add(
            "start_date_in_past",
            "/action_plan/start_date",
            f"La data di inizio {start.isoformat()} è precedente a oggi ({day.isoformat()}).",
            f"The start date {start.isoformat()} is before today ({day.isoformat()}).",
            "projects",
        )
    if end is None:
        problems.add(
            "timeline_missing",
            "/action_plan/end_date",
            "Manca la data di fine del progetto.",
            "The project end date is missing.",
            "projects",
        )
    if start is not None and end is not None:
        months = rules.project.duration_months
        if end < start:
            problems.add(
                "end_before_start",
                "/action_plan/end_date",
                f"La data di fine {end.isoformat()} precede la data di inizio {start.isoformat()}.",
                f"The end date {end.isoformat()} is before the start date {start.isoformat()}.",
                "projects",
            )
        elif end > _add_months(start, months):
            latest = _add_months(start, months)
            problems.add(
                "duration_exceeded",
                "/action_plan/end_date",
                f"Il progetto dura più di {months} mesi: con inizio il {start.isoformat()} deve finire "
                f"entro il {latest.isoformat()}, non il {end.isoformat()}.",
                f"The project lasts more than {months} months: starting on {start.isoformat()} it must end "
                f"by {latest.isoformat()}, not on {end.isoformat()}.",
                "projects",
            )
    for i, milestone in enumerate(draft.milestones):
        title, due = milestone
        before = start is not None and due < start
        after = end is not None and due > end
        if before or after:
            span = f"{start.isoformat() if start else '…'} – {end.isoformat() if end else '…'}"
            problems.add(
                "milestone_outside_timeline",
                f"/action_plan/milestones/{i}/due_date",
                f"La milestone '{title}' ({due.isoformat()}) cade fuori dal periodo del progetto ({span}).",
                f"Milestone '{title}' ({due.isoformat()}) falls outside the project period ({span}).",
                "projects",
            )


_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("objectives", "gli obiettivi", "the objectives"),
    ("starting_point", "la situazione di partenza", "the starting point"),
    ("strategy", "la strategia", "the strategy"),
)


def _check_plan(draft: DraftFacts, problems: _Problems) -> None:
    for field_name, it, en in _SECTIONS:
        text: str = getattr(draft, field_name)
        if not text.strip():
            problems.add(
                "plan_section_missing",
                f"/action_plan/{field_name}",
                f"Il piano d'azione non descrive {it}.",
                f"The action plan does not describe {en}.",
                "submission",
            )
    if draft.kpi_count < 1:
        problems.add(
            "kpis_missing",
            "/action_plan/kpis",
            "Il piano d'azione deve indicare almeno un indicatore (KPI).",
            "The action plan must give at least one indicator (KPI).",
            "submission",
        )
    if not draft.milestones:
        problems.add(
            "milestones_missing",
            "/action_plan/milestones",
            "Il piano d'azione deve indicare almeno una milestone.",
            "The action plan must give at least one milestone.",
            "submission",
        )
