"""Pure rules of the reporting (rendicontazione): the automatic checks on each line of an expense claim,
what the desk recognises of a claim (excess over the approved budget cut, flat rates recomputed), and
the sniffing of evidence files. No I/O: the monitoring service loads the facts and stores the results.

Each check has a stable ``code``, a status (``pass``, ``fail``, ``needs_review``) and a message in Italian
and English. A failed *blocking* check means the line cannot be recognised by the officer (an expense
outside the project, a category not approved, a payment that cannot be traced, an invoice claimed twice).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from shared.domain.call_rules import CallRules
from shared.domain.fatturapa import looks_like_fatturapa
from shared.domain.funding import EligibleBreakdown, ExpenseAmount, compute_eligible
from shared.domain.money import ZERO, cents_ok, floor_cent, percent_of

CheckStatus = Literal["pass", "fail", "needs_review"]

#: payment methods that leave a bank trace; anything else (cash) cannot be recognised.
TRACEABLE_METHODS = frozenset({"bank_transfer", "card", "riba", "sepa_dd", "other"})

# check codes, in the order they are reported
ISSUE_DATE_IN_PROJECT = "issue_date_in_project"
ISSUE_DATE_AFTER_SUBMISSION = "issue_date_after_submission"
CATEGORY_APPROVED = "category_approved"
CUP_QUOTED = "cup_quoted"
INVOICE_CLAIMED_ONCE = "invoice_claimed_once"
EVIDENCE_PRESENT = "evidence_present"
EVIDENCE_MATCHES = "evidence_matches"
AMOUNT_WITHIN_BUDGET = "amount_within_budget"
PAYMENT_TRACEABLE = "payment_traceable"

BLOCKING = frozenset(
    {ISSUE_DATE_IN_PROJECT, ISSUE_DATE_AFTER_SUBMISSION, CATEGORY_APPROVED, INVOICE_CLAIMED_ONCE, PAYMENT_TRACEABLE}
)


@dataclass(frozen=True)
class CheckResult:
    code: str
    status: CheckStatus
    message_it: str
    message_en: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.code in BLOCKING and self.status == "fail"

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": self.status,
            "blocking": self.blocking,
            "message_it": self.message_it,
            "message_en": self.message_en,
            "details": {k: str(v) if isinstance(v, (Decimal, date)) else v for k, v in self.details.items()},
        }


def _ok(code: str, it: str, en: str, **details: Any) -> CheckResult:
    return CheckResult(code, "pass", it, en, details)


def _fail(code: str, it: str, en: str, **details: Any) -> CheckResult:
    return CheckResult(code, "fail", it, en, details)


def _review(code: str, it: str, en: str, **details: Any) -> CheckResult:
    return CheckResult(code, "needs_review", it, en, details)


@dataclass(frozen=True)
class ApprovedBudget:
    """What the decision approved: direct amounts per category, amounts per market (None: no market; empty
    mapping: not known, no market limit), and the flat-rate categories granted."""

    by_category: Mapping[str, Decimal]
    by_market: Mapping[str | None, Decimal] = field(default_factory=dict)
    flat_rates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProjectFacts:
    start_date: date
    deadline: date
    submitted_on: date | None
    """Day (in the call's time zone) the application was submitted; None if not known (needs review)."""
    cup: str | None
    budget: ApprovedBudget
    tolerance: Decimal
    """The call's reporting.claim_tolerance_percent (a fraction)."""


@dataclass(frozen=True)
class InvoiceEvidence:
    """What a FatturaPA evidence file says about the line's invoice."""

    supplier_vat: str
    supplier_name: str
    number: str
    issue_date: date
    taxable_amount: Decimal
    currency: str
    cup_found: bool


@dataclass(frozen=True)
class LineFacts:
    id: str
    kind: str
    supplier_vat: str
    document_number: str
    issue_date: date
    taxable_amount: Decimal
    category: str
    market: str | None
    payment_date: date | None
    payment_method: str | None
    cup_quoted: bool
    evidence_count: int
    invoice: InvoiceEvidence | None = None
    claimed_elsewhere: bool = False


@dataclass(frozen=True)
class PriorAmounts:
    """What earlier claims of the project already took (recognised, or claimed and still under review)."""

    by_category: Mapping[str, Decimal] = field(default_factory=dict)
    by_market: Mapping[str | None, Decimal] = field(default_factory=dict)


# ---------------------------------------------------------------- one check each


def check_issue_date_in_project(line: LineFacts, p: ProjectFacts) -> CheckResult:
    d = line.issue_date
    if d < p.start_date:
        return _fail(
            ISSUE_DATE_IN_PROJECT,
            f"Documento del {d} anteriore all'avvio del progetto ({p.start_date}).",
            f"Document dated {d}, before the project's start ({p.start_date}).",
            start_date=p.start_date,
        )
    if d > p.deadline:
        return _fail(
            ISSUE_DATE_IN_PROJECT,
            f"Documento del {d} successivo alla scadenza del progetto ({p.deadline}).",
            f"Document dated {d}, after the project's deadline ({p.deadline}).",
            deadline=p.deadline,
        )
    return _ok(
        ISSUE_DATE_IN_PROJECT,
        "Data del documento entro il periodo del progetto.",
        "Document date within the project's period.",
    )


def check_issue_date_after_submission(line: LineFacts, p: ProjectFacts) -> CheckResult:
    if p.submitted_on is None:
        return _review(
            ISSUE_DATE_AFTER_SUBMISSION,
            "Data di presentazione della domanda non disponibile: verificare.",
            "The application's submission date is not known: check it.",
        )
    if line.issue_date < p.submitted_on:
        return _fail(
            ISSUE_DATE_AFTER_SUBMISSION,
            f"Documento del {line.issue_date} anteriore alla presentazione della domanda "
            f"({p.submitted_on}): spesa non ammissibile.",
            f"Document dated {line.issue_date}, before the application was submitted ({p.submitted_on}): not eligible.",
            submitted_on=p.submitted_on,
        )
    return _ok(
        ISSUE_DATE_AFTER_SUBMISSION,
        "Documento successivo alla presentazione della domanda.",
        "Document dated after the application's submission.",
    )


def check_category_approved(line: LineFacts, p: ProjectFacts) -> CheckResult:
    if p.budget.by_category.get(line.category, ZERO) > 0:
        return _ok(CATEGORY_APPROVED, f"Categoria {line.category} approvata.", f"Category {line.category} approved.")
    return _fail(
        CATEGORY_APPROVED,
        f"La categoria {line.category} non è tra quelle approvate per il progetto.",
        f"Category {line.category} is not approved for the project.",
    )


def check_cup_quoted(line: LineFacts, p: ProjectFacts) -> CheckResult:
    if not p.cup:
        return _review(
            CUP_QUOTED, "Il progetto non ha ancora un CUP: verificare.", "The project has no CUP yet: check."
        )
    if line.invoice is not None:
        if line.invoice.cup_found:
            return _ok(
                CUP_QUOTED,
                f"CUP {p.cup} riportato nella fattura elettronica.",
                f"CUP {p.cup} quoted in the electronic invoice.",
            )
        return _fail(
            CUP_QUOTED,
            f"Il CUP {p.cup} non compare nella fattura elettronica.",
            f"CUP {p.cup} does not appear in the electronic invoice.",
        )
    if line.cup_quoted:
        return _review(
            CUP_QUOTED,
            "CUP dichiarato sul documento: da verificare sul file.",
            "CUP declared on the document: to be verified on the file.",
        )
    return _fail(
        CUP_QUOTED,
        f"Il CUP {p.cup} non risulta riportato sul documento.",
        f"CUP {p.cup} is not quoted on the document.",
    )


def check_invoice_claimed_once(line: LineFacts) -> CheckResult:
    if line.claimed_elsewhere:
        return _fail(
            INVOICE_CLAIMED_ONCE,
            "Documento già rendicontato (in questo o in un altro progetto).",
            "Document already claimed (in this or another project).",
        )
    return _ok(INVOICE_CLAIMED_ONCE, "Documento rendicontato una sola volta.", "Document claimed only once.")


def check_evidence_present(line: LineFacts) -> CheckResult:
    if line.evidence_count > 0:
        return _ok(EVIDENCE_PRESENT, "Giustificativo allegato.", "Evidence attached.", files=line.evidence_count)
    return _fail(EVIDENCE_PRESENT, "Nessun giustificativo allegato.", "No evidence attached.")


def check_evidence_matches(line: LineFacts) -> CheckResult:
    """The declared data against the FatturaPA evidence. Claiming part of an invoice is possible (needs review);
    claiming more than its taxable amount, or another supplier, number or date, is not."""
    inv = line.invoice
    if inv is None:
        return _review(
            EVIDENCE_MATCHES,
            "Nessuna fattura elettronica: dati da verificare sul documento.",
            "No electronic invoice: the declared data are to be checked on the document.",
        )
    mismatches: list[str] = []
    if inv.supplier_vat.upper() != line.supplier_vat.upper():
        mismatches.append("supplier_vat")
    if "".join(inv.number.split()).upper() != "".join(line.document_number.split()).upper():
        mismatches.append("document_number")
    if inv.issue_date != line.issue_date:
        mismatches.append("issue_date")
    if line.taxable_amount > inv.taxable_amount:
        mismatches.append("taxable_amount")
    if mismatches:
        fields = ", ".join(mismatches)
        return _fail(
            EVIDENCE_MATCHES,
            f"I dati dichiarati non corrispondono alla fattura elettronica: {fields}.",
            f"The declared data do not match the electronic invoice: {fields}.",
            mismatches=mismatches,
            invoice_taxable_amount=inv.taxable_amount,
        )
    if inv.currency not in ("", "EUR"):
        return _review(
            EVIDENCE_MATCHES,
            f"Fattura in valuta {inv.currency}: verificare il controvalore.",
            f"Invoice in {inv.currency}: check the amount in euros.",
            currency=inv.currency,
        )
    if line.taxable_amount < inv.taxable_amount:
        return _review(
            EVIDENCE_MATCHES,
            "Rendicontata solo una parte dell'imponibile della fattura: verificare.",
            "Only part of the invoice's taxable amount is claimed: check.",
            invoice_taxable_amount=inv.taxable_amount,
        )
    return _ok(EVIDENCE_MATCHES, "Dati conformi alla fattura elettronica.", "Data match the electronic invoice.")


def check_payment_traceable(line: LineFacts) -> CheckResult:
    if line.payment_method not in TRACEABLE_METHODS:
        return _fail(
            PAYMENT_TRACEABLE,
            "Pagamento non tracciabile (contanti o metodo assente): spesa non ammissibile.",
            "Payment not traceable (cash or no method): not eligible.",
            method=line.payment_method,
        )
    if line.payment_date is None:
        return _fail(PAYMENT_TRACEABLE, "Data di pagamento mancante.", "Payment date missing.")
    if line.payment_date < line.issue_date:
        return _fail(
            PAYMENT_TRACEABLE,
            f"Pagamento del {line.payment_date} anteriore al documento ({line.issue_date}).",
            f"Payment dated {line.payment_date}, before the document ({line.issue_date}).",
        )
    return _ok(PAYMENT_TRACEABLE, "Pagamento tracciabile.", "Traceable payment.")


# ---------------------------------------------------------------- amounts against the approved budget


def ceiling(approved: Decimal, tolerance: Decimal) -> Decimal:
    """The most that can be recognised on an approved amount: approved plus the call's tolerance."""
    return floor_cent(approved * (1 + tolerance))


def allocate_within_budget(
    items: Sequence[tuple[str, str, str | None, Decimal]],
    budget: ApprovedBudget,
    tolerance: Decimal,
    prior: PriorAmounts = PriorAmounts(),
) -> dict[str, Decimal]:
    """For each item ``(id, category, market, amount)``, in the given order, the part that fits in what is
    left of its category's and its market's ceiling after ``prior`` and the earlier items: the excess is cut.
    A market the plan did not name (or a plan without markets) sets no market limit."""
    cat_room = {c: ceiling(a, tolerance) - prior.by_category.get(c, ZERO) for c, a in budget.by_category.items()}
    market_room = {m: ceiling(a, tolerance) - prior.by_market.get(m, ZERO) for m, a in budget.by_market.items()}
    out: dict[str, Decimal] = {}
    for item_id, category, market, amount in items:
        fits = min(amount, max(ZERO, cat_room.get(category, ZERO)))
        if market in market_room:
            fits = min(fits, max(ZERO, market_room[market]))
        out[item_id] = fits
        if category in cat_room:
            cat_room[category] -= fits
        if market in market_room:
            market_room[market] -= fits
    return out


def check_amounts(
    lines: Sequence[LineFacts], p: ProjectFacts, prior: PriorAmounts = PriorAmounts()
) -> dict[str, CheckResult]:
    ordered = sorted(lines, key=lambda ln: (ln.issue_date, ln.id))
    fits = allocate_within_budget(
        [(ln.id, ln.category, ln.market, ln.taxable_amount) for ln in ordered], p.budget, p.tolerance, prior
    )
    out: dict[str, CheckResult] = {}
    for ln in ordered:
        admissible = fits[ln.id]
        cut = ln.taxable_amount - admissible
        if p.budget.by_market and ln.market not in p.budget.by_market and cut == 0:
            out[ln.id] = _review(
                AMOUNT_WITHIN_BUDGET,
                f"Mercato {ln.market or '(nessuno)'} non previsto dal piano approvato: verificare.",
                f"Market {ln.market or '(none)'} is not in the approved plan: check.",
                admissible_amount=admissible,
                cut=cut,
            )
        elif cut > 0:
            out[ln.id] = _fail(
                AMOUNT_WITHIN_BUDGET,
                f"Importo oltre il budget approvato più la tolleranza: tagliati {cut} euro, ammissibili {admissible}.",
                f"Amount beyond the approved budget plus the tolerance: {cut} euros cut, {admissible} admissible.",
                admissible_amount=admissible,
                cut=cut,
            )
        else:
            out[ln.id] = _ok(
                AMOUNT_WITHIN_BUDGET,
                "Importo entro il budget approvato.",
                "Amount within the approved budget.",
                admissible_amount=admissible,
                cut=cut,
            )
    return out


def run_line_checks(
    lines: Sequence[LineFacts], p: ProjectFacts, prior: PriorAmounts = PriorAmounts()
) -> dict[str, tuple[CheckResult, ...]]:
    """Every check on every line of a claim, in the reporting order."""
    amounts = check_amounts(lines, p, prior)
    return {
        ln.id: (
            check_issue_date_in_project(ln, p),
            check_issue_date_after_submission(ln, p),
            check_category_approved(ln, p),
            check_cup_quoted(ln, p),
            check_invoice_claimed_once(ln),
            check_evidence_present(ln),
            check_evidence_matches(ln),
            amounts[ln.id],
            check_payment_traceable(ln),
        )
        for ln in lines
    }


def suggested_amount(line: LineFacts, checks: Iterable[CheckResult]) -> Decimal:
    """What the checks would let the officer recognise: nothing after a blocking failure, else the admissible
    amount of the budget check."""
    amount = line.taxable_amount
    for c in checks:
        if c.blocking:
            return ZERO
        if c.code == AMOUNT_WITHIN_BUDGET:
            amount = min(amount, Decimal(str(c.details.get("admissible_amount", amount))))
    return amount


# ---------------------------------------------------------------- what is recognised


@dataclass(frozen=True)
class RecognisedLine:
    id: str
    category: str
    market: str | None
    amount: Decimal
    """What the officer recognised (0 for a rejected line)."""


@dataclass(frozen=True)
class Recognition:
    direct_by_category: Mapping[str, Decimal]
    flat_rates: Mapping[str, Decimal]
    total: Decimal
    cut_over_budget: Decimal
    """Recognised by the officer but beyond the approved budget plus the tolerance (not recognised)."""
    breakdown: EligibleBreakdown


def recognise(
    rules: CallRules,
    lines: Sequence[RecognisedLine],
    budget: ApprovedBudget,
    tolerance: Decimal,
    prior: PriorAmounts = PriorAmounts(),
) -> Recognition:
    """The recognised total of a set of lines: each line's recognised amount cut to the room left in the
    approved budget plus the tolerance, then the call's caps applied and the flat rates (d, e) recomputed on
    the recognised direct costs by `compute_eligible` (only those the decision granted)."""
    fits = allocate_within_budget(
        [(ln.id, ln.category, ln.market, ln.amount) for ln in lines], budget, tolerance, prior
    )
    amounts = [
        ExpenseAmount(ln.category, fits[ln.id]) for ln in lines if fits[ln.id] > 0 and ln.category in rules.direct_codes
    ]
    breakdown = compute_eligible(rules, amounts, set(budget.flat_rates) & set(rules.flat_rate_codes))
    cut = sum((ln.amount - fits[ln.id] for ln in lines), ZERO)
    return Recognition(
        direct_by_category=dict(breakdown.direct),
        flat_rates=dict(breakdown.flat_rates),
        total=breakdown.total,
        cut_over_budget=cut,
        breakdown=breakdown,
    )


# ---------------------------------------------------------------- evidence files

EvidenceKind = Literal["pdf", "png", "jpeg", "fatturapa"]

MEDIA_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "fatturapa": "application/xml",
}
#: what a declared Content-Type or file extension may say for each kind.
DECLARED_TYPES: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf", "application/x-pdf", ".pdf"}),
    "png": frozenset({"image/png", ".png"}),
    "jpeg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg", ".jpg", ".jpeg"}),
    "fatturapa": frozenset({"application/xml", "text/xml", ".xml"}),
}
#: declared types that say nothing (browsers and scripts send them for any file).
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def sniff_evidence(data: bytes) -> EvidenceKind | None:
    """The kind of an evidence file from its content (magic bytes; the XML's root element)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if looks_like_fatturapa(data):
        return "fatturapa"
    return None


def is_signed_envelope(data: bytes, filename: str) -> bool:
    """A CAdES-signed invoice (.p7m): a DER SEQUENCE, or base64 of one, or the extension."""
    return filename.lower().endswith(".p7m") or data[:2] in (b"0\x80", b"0\x82", b"0\x83") or data.startswith(b"MII")


def declared_matches(kind: EvidenceKind, content_type: str, filename: str) -> bool:
    """True unless the declared Content-Type or the file's extension names another type than the content."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype not in GENERIC_TYPES and ctype not in DECLARED_TYPES[kind]:
        return False
    dot = filename.rfind(".")
    ext = filename[dot:].lower() if dot > 0 else ""
    known_exts = {e for s in DECLARED_TYPES.values() for e in s if e.startswith(".")}
    return not (ext in known_exts and ext not in DECLARED_TYPES[kind])


# ---------------------------------------------------------------- project dates, advance and outcome
#
# The outcome (full aid, proportional reduction, revocation) follows the call's ``reporting`` rules:
#
# * recognised spend >= the approved eligible total -> the aid granted stands (full);
# * ``revocation_threshold`` x approved <= recognised < approved -> grant and loan are each reduced in
#   proportion to recognised / approved, floored to the cent (aid is never rounded up);
# * recognised below the threshold, the deadline (extension included) missed, or the operating site in
#   Lombardy never opened (when the company had only committed to open one) -> revocation: no aid, and
#   everything paid is recovered.
#
# What a reduction or revocation frees (grant + loan granted - grant + loan kept) goes back to the call's budget.

OutcomeKind = Literal["full", "reduced", "revoked"]
RevocationReason = Literal[
    "below_threshold", "deadline_missed", "site_never_opened", "false_declaration", "renunciation", "obligations_broken"
]


def add_months(d: date, months: int) -> date:
    """``d`` plus ``months`` calendar months; the day is clamped to the end of a shorter month
    (31 August + 6 months = 28/29 February)."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def advance_amount(grant: Decimal, advance_percent: Decimal) -> Decimal:
    """The advance paid at acceptance: ``advance_percent`` of the grant, floored to the cent."""
    if not cents_ok(grant) or grant < 0:
        raise ValueError(f"grant {grant} must be non-negative with at most two decimals")
    return percent_of(grant, advance_percent)


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: RevocationReason | None
    """Why the aid is revoked (None unless revoked)."""
    approved: Decimal
    recognised: Decimal
    ratio: Decimal
    """recognised / approved, not rounded (may exceed 1)."""
    grant: Decimal
    """Final grant."""
    loan: Decimal
    """Final loan."""
    released: Decimal
    """Aid (grant + loan) that goes back to the call's budget."""


def decide_outcome(
    *,
    approved: Decimal,
    recognised: Decimal,
    grant: Decimal,
    loan: Decimal,
    revocation_threshold: Decimal,
    deadline_missed: bool = False,
    site_never_opened: bool = False,
) -> Outcome:
    """The outcome of a project whose final claim recognised ``recognised`` of the ``approved`` eligible
    total, with the ``grant`` and ``loan`` granted. Deadline and site failures revoke whatever the spend."""
    for name, value in (("approved", approved), ("recognised", recognised), ("grant", grant), ("loan", loan)):
        if not cents_ok(value) or value < 0:
            raise ValueError(f"{name} {value} must be non-negative with at most two decimals")
    if approved <= 0:
        raise ValueError("the approved eligible total must be positive")
    if not Decimal(0) <= revocation_threshold <= Decimal(1):
        raise ValueError("revocation_threshold must be a fraction between 0 and 1")
    ratio = recognised / approved
    granted = grant + loan
    reason: RevocationReason | None = None
    if deadline_missed:
        reason = "deadline_missed"
    elif site_never_opened:
        reason = "site_never_opened"
    elif recognised < approved * revocation_threshold:
        reason = "below_threshold"
    if reason is not None:
        return Outcome("revoked", reason, approved, recognised, ratio, ZERO, ZERO, granted)
    if recognised >= approved:
        return Outcome("full", None, approved, recognised, ratio, grant, loan, ZERO)
    new_grant = floor_cent(grant * recognised / approved)
    new_loan = floor_cent(loan * recognised / approved)
    return Outcome("reduced", None, approved, recognised, ratio, new_grant, new_loan, granted - new_grant - new_loan)


def revocation(*, approved: Decimal, grant: Decimal, loan: Decimal, reason: RevocationReason) -> Outcome:
    """A revocation by a catalogued reason (before the final claim, or after completion for a false declaration,
    a renunciation or obligations broken): nothing is kept, and ``grant + loan`` (what is still committed) goes
    back to the budget."""
    return Outcome("revoked", reason, approved, ZERO, ZERO, ZERO, ZERO, grant + loan)
