"""Formal admissibility of a submitted application ("istruttoria formale"), by the evaluation service.

``admissibility`` runs the pre-check of ``shared.domain.application_check`` (the same rules the
applicant saw before submitting: no logic is duplicated here) and turns its problems into one
outcome per check of the call, each ``pass``, ``fail`` or ``needs_review``, with the call article
and a detail in Italian and English. On top of the pre-check it:

* **cuts expenses instead of rejecting the application**, where the call says so: the excess over a
  category cap (the call's cap semantics, ``funding.compute_eligible``), and the lines that are not
  eligible: a category the call does not provide for, a flat-rate category itemised, an invalid
  amount, or a purchase from a related party ("acquisti infragruppo e da soggetti collegati" in the
  call's ``not_eligible``: a line whose supplier VAT number is one of ``related_vats``). What is left
  must still be within the call's eligible-cost bounds, or the application fails;
* asks for a **review** of what a machine cannot settle: a commitment to open a Lombard site (until
  an officer has verified it), a company with no credit-scoring class yet, an expense attributed to a
  market that is not in the plan.

``today`` is the day the application was **submitted** (its protocol date, Europe/Rome), not the day
of the evaluation: the start date must not precede it and the markets' look-back is counted from it.

The verdict: ``not_admissible`` if any check fails, else ``needs_review`` if any check needs a
review, else ``admissible``.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Literal

from shared.domain.application_check import (
    CompanyFacts,
    DraftFacts,
    DraftLine,
    Problem,
    _pct_en,
    _pct_it,
    ateco_section,
    check_application,
)
from shared.domain.call_rules import CallRules
from shared.domain.de_minimis import normalise_vat
from shared.domain.funding import AidEstimate, EligibleBreakdown
from shared.domain.money import ZERO, eur_en, eur_it

Outcome = Literal["pass", "fail", "needs_review"]
Verdict = Literal["admissible", "not_admissible", "needs_review"]

#: check code -> article key of ``CallRules.articles``, in the order the checks are reported.
CHECKS: tuple[tuple[str, str], ...] = (
    ("sme_class", "applicants"),
    ("ateco", "applicants"),
    ("financial_statements", "applicants"),
    ("lombardy_site", "applicants"),
    ("export_share", "applicants"),
    ("credit_class", "aid"),
    ("target_markets", "projects"),
    ("eligible_categories", "expenses"),
    ("category_caps", "expenses"),
    ("eligible_total", "expenses"),
    ("new_or_emerging_share", "expenses"),
    ("project_duration", "projects"),
    ("plan_completeness", "submission"),
    ("de_minimis", "aid"),
)
CHECK_CODES: tuple[str, ...] = tuple(code for code, _ in CHECKS)

#: pre-check problem code -> the check it belongs to.
PROBLEM_TO_CHECK: Mapping[str, str] = {
    "size_class_not_allowed": "sme_class",
    "ateco_invalid": "ateco",
    "ateco_excluded": "ateco",
    "financial_statements_insufficient": "financial_statements",
    "lombardy_site_missing": "lombardy_site",
    "turnover_not_positive": "export_share",
    "export_share_exceeded": "export_share",
    "credit_class_unknown": "credit_class",
    "credit_class_excluded": "credit_class",
    "target_markets_missing": "target_markets",
    "target_market_invalid": "target_markets",
    "target_market_duplicate": "target_markets",
    "target_market_not_new": "target_markets",
    "expense_market_not_in_plan": "target_markets",
    "expense_category_unknown": "eligible_categories",
    "expense_category_flat_rate": "eligible_categories",
    "expense_amount_not_positive": "eligible_categories",
    "expense_amount_too_many_decimals": "eligible_categories",
    "flat_rate_unknown": "eligible_categories",
    "category_cap_exceeded": "category_caps",
    "eligible_total_below_min": "eligible_total",
    "eligible_total_above_max": "eligible_total",
    "new_or_emerging_share_too_low": "new_or_emerging_share",
    "timeline_missing": "project_duration",
    "start_date_in_past": "project_duration",
    "end_before_start": "project_duration",
    "duration_exceeded": "project_duration",
    "milestone_outside_timeline": "project_duration",
    "plan_section_missing": "plan_completeness",
    "kpis_missing": "plan_completeness",
    "milestones_missing": "plan_completeness",
    "de_minimis_aid_reduced": "de_minimis",
    "de_minimis_ceiling_reached": "de_minimis",
}

#: problems that exclude one line from the eligible expenses (the line is cut, not the application).
LINE_CUT_CODES: frozenset[str] = frozenset(
    {
        "expense_category_unknown",
        "expense_category_flat_rate",
        "expense_amount_not_positive",
        "expense_amount_too_many_decimals",
    }
)
#: reason of the cut of a line bought from a related party.
INTRA_GROUP = "intra_group_purchase"
#: problems that neither fail nor need a review: the expense is cut, or the unknown opt-in ignored.
_NOT_FAILING: frozenset[str] = LINE_CUT_CODES | {
    "category_cap_exceeded",
    "flat_rate_unknown",
    "eligible_total_above_max",
    "de_minimis_aid_reduced",
}
#: problems an officer has to look at.
_NEEDS_REVIEW: frozenset[str] = frozenset({"expense_market_not_in_plan"})

_LINE_PATH = re.compile(r"^/expense_lines/(\d+)(/.*)?$")


@dataclass(frozen=True)
class CheckOutcome:
    code: str
    outcome: Outcome
    article: str
    detail_it: str
    detail_en: str


@dataclass(frozen=True)
class ExpenseCut:
    """Expenses taken out of the eligible total: a whole line, or the excess of a category over its cap."""

    path: str
    """``/expense_lines/{i}`` for a line (``i`` its position in the draft), ``/expense_lines`` for a cap."""
    category: str
    requested: Decimal
    allowed: Decimal
    reasons: tuple[str, ...]
    """Codes: ``intra_group_purchase``, the pre-check's line problem codes, or ``category_cap_exceeded``."""
    detail_it: str
    detail_en: str


@dataclass(frozen=True)
class Admissibility:
    verdict: Verdict
    checks: tuple[CheckOutcome, ...]
    cuts: tuple[ExpenseCut, ...]
    breakdown: EligibleBreakdown | None
    """Eligible expenses after the cuts; ``None`` if no line is left."""
    estimate: AidEstimate | None
    """Aid on the eligible total after the cuts; ``None`` unless that total is within the call's bounds."""
    problems: tuple[Problem, ...]
    """The pre-check's problems, with paths into the submitted application."""

    def check(self, code: str) -> CheckOutcome:
        for c in self.checks:
            if c.code == code:
                return c
        raise KeyError(code)


def admissibility(
    rules: CallRules,
    company: CompanyFacts,
    draft: DraftFacts,
    *,
    today: date,
    related_vats: Iterable[str] = (),
    line_suppliers: Mapping[int, str] | None = None,
    lombardy_site_verified: bool = False,
) -> Admissibility:
    """The admissibility of a submitted application (see the module).

    ``related_vats`` are the VAT numbers of the applicant itself and of its partner and linked
    enterprises; ``line_suppliers`` gives the supplier VAT number of an expense line by its position
    in ``draft.expense_lines`` (lines without a known supplier are not checked for it).
    ``lombardy_site_verified`` is set by the officer once the commitment to open a site in Lombardy has
    been verified.
    """
    related = {normalise_vat(v) for v in related_vats}
    suppliers = line_suppliers or {}
    kept: list[int] = []
    cuts_by_line: dict[int, list[str]] = {}
    for i, _line in enumerate(draft.expense_lines):
        supplier = suppliers.get(i)
        if supplier is not None and normalise_vat(supplier) in related:
            cuts_by_line[i] = [INTRA_GROUP]
        else:
            kept.append(i)

    result = check_application(
        rules, company, replace(draft, expense_lines=tuple(draft.expense_lines[i] for i in kept)), today=today
    )
    problems = tuple(_remap(p, kept) for p in result.problems)
    line_problems: dict[int, list[Problem]] = {}
    for p in problems:
        if p.code in LINE_CUT_CODES:
            index = _line_index(p.path)
            assert index is not None
            line_problems.setdefault(index, []).append(p)
            cuts_by_line.setdefault(index, [])
            if p.code not in cuts_by_line[index]:
                cuts_by_line[index].append(p.code)

    cuts = [
        _line_cut(i, draft.expense_lines[i], reasons, suppliers.get(i), line_problems.get(i, []))
        for i, reasons in sorted(cuts_by_line.items())
    ]
    breakdown = result.breakdown
    if breakdown is not None:
        cuts.extend(
            ExpenseCut(
                path="/expense_lines",
                category=cut.category,
                requested=cut.requested,
                allowed=cut.allowed,
                reasons=(cut.reason,),
                detail_it=p.message_it,
                detail_en=p.message_en,
            )
            for cut, p in zip(breakdown.cuts, [p for p in problems if p.code == "category_cap_exceeded"], strict=True)
        )

    by_check: dict[str, list[Problem]] = {code: [] for code in CHECK_CODES}
    for p in problems:
        by_check[PROBLEM_TO_CHECK[p.code]].append(p)
    lines_left = len(draft.expense_lines) - len(cuts_by_line)
    context = _Context(rules, company, draft, breakdown, lines_left, len(cuts_by_line), lombardy_site_verified)
    checks = tuple(_outcome(code, kind, by_check[code], context) for code, kind in CHECKS)

    outcomes = {c.outcome for c in checks}
    verdict: Verdict = (
        "not_admissible" if "fail" in outcomes else "needs_review" if "needs_review" in outcomes else "admissible"
    )
    return Admissibility(
        verdict=verdict,
        checks=checks,
        cuts=tuple(cuts),
        breakdown=breakdown,
        estimate=result.estimate,
        problems=problems,
    )


def _line_index(path: str) -> int | None:
    m = _LINE_PATH.match(path)
    return int(m.group(1)) if m else None


def _remap(p: Problem, kept: list[int]) -> Problem:
    """The pre-check ran on the kept lines only: point its line paths back at the submitted lines."""
    m = _LINE_PATH.match(p.path)
    if m is None:
        return p
    return replace(p, path=f"/expense_lines/{kept[int(m.group(1))]}{m.group(2) or ''}")


def _line_cut(
    index: int, line: DraftLine, reasons: list[str], supplier: str | None, problems: list[Problem]
) -> ExpenseCut:
    if reasons == [INTRA_GROUP]:
        it = (
            f"La voce {index} ({line.category}, {eur_it(line.amount)}) è un acquisto da un soggetto collegato "
            f"(P. IVA {supplier}): non ammissibile, esclusa."
        )
        en = (
            f"Line {index} ({line.category}, {eur_en(line.amount)}) is a purchase from a related party "
            f"(VAT {supplier}): not eligible, cut."
        )
    else:
        # The amount may be malformed (negative, too many decimals): quoted as given.
        it = " ".join(
            [f"La voce {index} ({line.category}, {line.amount}) è esclusa:", *(p.message_it for p in problems)]
        )
        en = " ".join([f"Line {index} ({line.category}, {line.amount}) is cut:", *(p.message_en for p in problems)])
    return ExpenseCut(
        path=f"/expense_lines/{index}",
        category=line.category,
        requested=line.amount,
        allowed=ZERO,
        reasons=tuple(reasons),
        detail_it=it,
        detail_en=en,
    )


@dataclass(frozen=True)
class _Context:
    rules: CallRules
    company: CompanyFacts
    draft: DraftFacts
    breakdown: EligibleBreakdown | None
    lines_left: int
    lines_cut: int
    lombardy_site_verified: bool


def _outcome(code: str, kind: str, problems: list[Problem], ctx: _Context) -> CheckOutcome:
    article = ctx.rules.article(kind)
    failing = [p for p in problems if p.code not in _NOT_FAILING and p.code not in _NEEDS_REVIEW]
    review = [p for p in problems if p.code in _NEEDS_REVIEW]
    if failing:
        return CheckOutcome(
            code,
            "fail",
            failing[0].article,
            " ".join(p.message_it for p in failing),
            " ".join(p.message_en for p in failing),
        )
    outcome, it, en = _clean(code, ctx)
    if review:
        outcome = "needs_review"
        it = " ".join([it, *(p.message_it for p in review)])
        en = " ".join([en, *(p.message_en for p in review)])
    noted = [p for p in problems if p.code in _NOT_FAILING and p.code not in LINE_CUT_CODES]
    if noted:
        it = " ".join([it, *(p.message_it for p in noted)])
        en = " ".join([en, *(p.message_en for p in noted)])
    return CheckOutcome(code, outcome, article, it, en)


def _clean(code: str, ctx: _Context) -> tuple[Outcome, str, str]:
    """Outcome and detail of a check the pre-check found nothing (failing) against."""
    rules, company, draft = ctx.rules, ctx.company, ctx.draft
    el = rules.eligibility
    if code == "sme_class":
        allowed = ", ".join(el.sizes)
        return (
            "pass",
            f"Dimensione d'impresa '{company.size_class}' ammessa ({allowed}).",
            f"Enterprise size '{company.size_class}' allowed ({allowed}).",
        )
    if code == "ateco":
        section = ateco_section(company.ateco_code)
        return (
            "pass",
            f"Codice ATECO {company.ateco_code} (sezione {section}) non escluso.",
            f"ATECO code {company.ateco_code} (section {section}) not excluded.",
        )
    if code == "financial_statements":
        n, needed = company.approved_financial_statements, el.min_approved_financial_statements
        return (
            "pass",
            f"{n} bilanci approvati (minimo {needed}).",
            f"{n} approved financial statements (at least {needed}).",
        )
    if code == "lombardy_site":
        return _lombardy(ctx)
    if code == "export_share":
        share = (company.previous_year_export_sales / company.turnover).quantize(Decimal("0.0001"))
        limit = el.max_previous_year_export_share
        return (
            "pass",
            f"Fatturato estero dell'anno precedente pari al {_pct_it(share)} del fatturato (massimo {_pct_it(limit)}).",
            f"Previous-year export sales are {_pct_en(share)} of turnover (at most {_pct_en(limit)}).",
        )
    if code == "credit_class":
        if company.credit_class is None:
            return (
                "needs_review",
                "La classe di merito creditizio non è ancora attribuita: il finanziamento non può essere determinato.",
                "No credit-scoring class has been assigned yet: the loan cannot be determined.",
            )
        share = rules.loan_cap_share(company.credit_class)
        return (
            "pass",
            f"Classe di merito creditizio {company.credit_class}: {_pct_it(share)} del massimale del finanziamento.",
            f"Credit-scoring class {company.credit_class}: {_pct_en(share)} of the loan cap.",
        )
    if code == "target_markets":
        markets = ", ".join(draft.target_markets)
        return ("pass", f"Mercati obiettivo: {markets}.", f"Target markets: {markets}.")
    if code == "eligible_categories":
        if ctx.breakdown is None:  # no line left after the cuts
            return (
                "fail",
                "Nessuna voce di spesa rientra nelle categorie ammissibili del bando.",
                "No expense line falls within the call's eligible categories.",
            )
        if ctx.lines_cut:
            return (
                "pass",
                f"{ctx.lines_cut} voci di spesa non ammissibili sono escluse (vedi i tagli); "
                f"le altre rientrano nelle categorie del bando.",
                f"{ctx.lines_cut} ineligible expense lines are cut (see the cuts); "
                "the others fall within the call's categories.",
            )
        return (
            "pass",
            f"Tutte le {ctx.lines_left} voci di spesa rientrano nelle categorie ammissibili.",
            f"All {ctx.lines_left} expense lines fall within the eligible categories.",
        )
    if code == "category_caps":
        if ctx.breakdown is not None and ctx.breakdown.cuts:
            return (
                "pass",
                "Le eccedenze sui limiti di categoria sono escluse, non la domanda:",
                "The excess over the category caps is cut, not the application:",
            )
        return ("pass", "Nessuna eccedenza sui limiti di categoria.", "No category exceeds its cap.")
    if code == "eligible_total":
        total = ctx.breakdown.total if ctx.breakdown is not None else ZERO
        low, high = rules.eligible_cost.min, rules.eligible_cost.max
        if total > high:  # capped, not refused: the note (eligible_total_above_max) follows
            return (
                "pass",
                f"Spese ammissibili dopo i tagli {eur_it(total)}.",
                f"Eligible expenses after the cuts {eur_en(total)}.",
            )
        return (
            "pass",
            f"Spese ammissibili dopo i tagli {eur_it(total)}, entro i limiti {eur_it(low)} – {eur_it(high)}.",
            f"Eligible expenses after the cuts {eur_en(total)}, within {eur_en(low)} – {eur_en(high)}.",
        )
    if code == "new_or_emerging_share":
        minimum = rules.markets.min_share_new_or_emerging
        return (
            "pass",
            f"Quota minima di spesa su mercati nuovi o emergenti ({_pct_it(minimum)}) rispettata.",
            f"Minimum share of spend on new or emerging markets ({_pct_en(minimum)}) met.",
        )
    if code == "project_duration":
        start, end = draft.start_date, draft.end_date
        assert start is not None and end is not None  # else the pre-check reports timeline_missing
        months = rules.project.duration_months
        return (
            "pass",
            f"Progetto dal {start.isoformat()} al {end.isoformat()}, entro {months} mesi.",
            f"Project from {start.isoformat()} to {end.isoformat()}, within {months} months.",
        )
    if code == "plan_completeness":
        kpis, milestones = draft.kpi_count, len(draft.milestones)
        return (
            "pass",
            f"Piano d'azione completo: obiettivi, situazione di partenza, strategia, {kpis} KPI, "
            f"{milestones} milestone.",
            f"Action plan complete: objectives, starting point, strategy, {kpis} KPIs, {milestones} milestones.",
        )
    if code == "de_minimis":
        declared = sum((a.amount for a in draft.declared_aid), ZERO)
        return (
            "pass",
            f"Aiuti de minimis dichiarati: {eur_it(declared)}; il massimale si applica al calcolo del "
            "finanziamento su tutti gli aiuti (dichiarati, RNA, concessi dallo sportello).",
            f"De minimis aid declared: {eur_en(declared)}; the ceiling is applied by the funding computation to "
            "every aid (declared, RNA, granted by the desk).",
        )
    raise KeyError(code)


def _lombardy(ctx: _Context) -> tuple[Outcome, str, str]:
    el, company = ctx.rules.eligibility, ctx.company
    if not el.lombardy_site_required:
        return ("pass", "Il bando non richiede una sede in Lombardia.", "The call requires no site in Lombardy.")
    if company.has_lombardy_site:
        return ("pass", "Sede operativa in Lombardia presente.", "Operating site in Lombardy present.")
    # No site, no failing problem: the company committed to open one, which the call allows.
    if ctx.lombardy_site_verified:
        return (
            "pass",
            "Impegno ad aprire una sede operativa in Lombardia verificato.",
            "Commitment to open an operating site in Lombardy verified.",
        )
    return (
        "needs_review",
        "L'impresa si impegna ad aprire una sede operativa in Lombardia prima dell'erogazione dell'anticipo: "
        "impegno da verificare.",
        "The company commits to open an operating site in Lombardy before the advance is paid: "
        "the commitment is to be verified.",
    )
