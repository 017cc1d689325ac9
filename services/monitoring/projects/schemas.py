"""Projects as monitoring exposes them, and the bodies of the changes officers and beneficiaries make."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.it import codicefiscale, iva

from shared.i18n import stdnum_reason
from shared.schemas import ApiModel, OutModel

ProjectStatus = Literal["active", "completed", "revoked"]
OutcomeKind = Literal["full", "reduced", "revoked"]
RevocationCode = Literal[
    "below_threshold", "deadline_missed", "site_never_opened", "false_declaration", "renunciation", "obligations_broken"
]


def iban_problem(value: str) -> tuple[str, dict[str, str]] | None:
    """Why `value` cannot receive a payment (a shared.i18n.VALIDATION_MESSAGES code and its context), or None
    when it is a valid Italian IBAN."""
    compact = stdnum_iban.compact(value)
    try:
        stdnum_iban.validate(compact)
    except StdnumError as e:
        return "iban_invalid", {"reason": stdnum_reason(e)}
    if not compact.startswith("IT"):
        return "iban_not_italian", {}
    return None


def _iban(v: Any) -> Any:
    if not isinstance(v, str):
        raise PydanticCustomError("iban_invalid", "Invalid IBAN: {reason}", {"reason": "not_a_string"})
    problem = iban_problem(v)
    if problem is not None:
        raise PydanticCustomError(problem[0], "Invalid IBAN", problem[1])
    return stdnum_iban.compact(v)


Iban = Annotated[
    str,
    BeforeValidator(_iban),
    Field(
        description="Italian IBAN (spaces allowed; check digits verified).", examples=["IT60X0542811101000000123456"]
    ),
]
Reason = Annotated[str, Field(min_length=3, max_length=2000)]


def _tax_code(v: Any) -> Any:
    """An Italian VAT number (11 digits, `IT` prefix allowed) or fiscal code (16 characters), compacted."""
    if not isinstance(v, str):
        raise PydanticCustomError(
            "holder_tax_code_invalid", "Invalid VAT number or fiscal code: {reason}", {"reason": "not_a_string"}
        )
    compact = "".join(v.split()).upper()
    if len(compact) == 13 and compact.startswith("IT"):
        compact = compact[2:]
    try:
        return iva.validate(compact) if len(compact) == 11 else codicefiscale.validate(compact)
    except StdnumError as e:
        raise PydanticCustomError(
            "holder_tax_code_invalid", "Invalid VAT number or fiscal code: {reason}", {"reason": stdnum_reason(e)}
        ) from None


HolderTaxCode = Annotated[
    str,
    BeforeValidator(_tax_code),
    Field(
        description="The holder's VAT number (partita IVA, 11 digits) or fiscal code "
        "(codice fiscale); it must be the beneficiary company's.",
        examples=["01234567897"],
    ),
]
IbanChangeStatus = Literal["applied", "pending", "confirmed", "rejected", "superseded"]


class IbanHolder(ApiModel):
    name: Annotated[str, Field(min_length=2, max_length=200, description="The account holder's name.")]
    tax_code: HolderTaxCode


class IbanIn(ApiModel):
    iban: Iban
    holder: IbanHolder = Field(description="Who holds the account: payments go only to the beneficiary company.")


class IbanHolderOut(OutModel):
    name: str
    tax_code: str


class IbanChangeOut(OutModel):
    id: uuid.UUID
    project_id: uuid.UUID
    iban: str
    holder: IbanHolderOut
    previous_iban: str | None = Field(description="The project's IBAN when the change was requested.")
    status: IbanChangeStatus = Field(
        description="applied: applied at once (no payment was open, or the company or an officer asked); pending: "
        "asked by a partner while a payment is ordered and not yet paid, awaiting the company's or an "
        "officer's confirmation; confirmed or rejected by them; superseded by a later direct change."
    )
    requested_by: str = Field(description="Client id of who asked for the change.")
    requested_by_kind: str = Field(description="partner, company or officer.")
    requested_at: datetime
    decided_by: str | None = Field(
        description="Client id of who confirmed or rejected it (who applied it, when applied at once)."
    )
    decided_at: datetime | None
    reason: str | None = Field(description="Why it was rejected or superseded.")
    etag: str


class IbanChangeRejectIn(ApiModel):
    reason: Reason = Field(description="Why the change is refused.")


class ExtensionIn(ApiModel):
    reason: Reason = Field(description="Why the extension is justified.")


class LombardySiteIn(ApiModel):
    opened: bool = Field(description="True: the operating site in Lombardy was verified open; false: it was not.")
    note: Annotated[str, Field(max_length=2000)] | None = None


class RevocationIn(ApiModel):
    reason_code: Literal[
        "deadline_missed", "site_never_opened", "false_declaration", "renunciation", "obligations_broken"
    ] = Field(
        description="A reason of the call's catalogue (`revocation_reasons`, each citing its article). "
        "deadline_missed: the deadline (extension included) is past and the project was not completed; "
        "site_never_opened: the operating site in Lombardy the company committed to was never opened; "
        "false_declaration: a declaration was found false (DPR 445/2000 art. 75), before or after "
        "completion; renunciation: the beneficiary renounces the aid; obligations_broken: an obligation "
        "after completion was broken (e.g. the investment not kept), only once completed."
    )
    reason: Reason = Field(description="The officer's written grounds (the findings, the documents).")
    recovery_date: date | None = Field(
        None,
        description="The day the statutory interest runs to (the recovery order's due date); default today, "
        "Europe/Rome. Not before a payment to recover, and only in a year whose statutory rate the "
        "desk knows (422 otherwise).",
    )


class ApprovedLine(OutModel):
    dimension: Literal["category", "market"]
    category: str | None = None
    kind: str | None = Field(None, description="direct or flat_rate (categories only).")
    country: str | None = Field(None, description="Target market (markets only; null: no market).")
    amount: Decimal


class Milestone(OutModel):
    title: str
    due_date: date


class ProjectLoanTerms(OutModel):
    annual_rate: Decimal
    years: int
    grace_months: int
    periods_per_year: int


class Timeline(OutModel):
    start_date: date | None = Field(description="The action plan's start.")
    end_date: date | None = Field(description="The action plan's end.")
    milestones: list[Milestone]
    loan_terms: ProjectLoanTerms


class KpiOut(OutModel):
    name: str
    baseline: Decimal
    target: Decimal
    unit: str


class InterestSegmentOut(OutModel):
    year: int
    days: int
    rate: Decimal = Field(description="The year's statutory rate, a fraction (0.016 = 1.6 %).")
    interest: Decimal = Field(description="The segment's interest, exact (not rounded).")


class InterestOut(OutModel):
    amount: Decimal = Field(description="An amount paid to the company.")
    paid_on: date
    interest: Decimal = Field(
        description="Statutory simple interest from the payment date (excluded) to the "
        "recovery date (included), rounded half-up to the cent once."
    )
    segments: list[InterestSegmentOut]


class RecoveryOut(OutModel):
    recovered_on: date = Field(description="The date the interest runs to (the revocation's day, Europe/Rome).")
    capital: Decimal = Field(description="Everything paid to the company (advance and balance).")
    interest: Decimal = Field(description="Statutory interest (tasso di interesse legale, by year) on each amount.")
    loan_outstanding: Decimal = Field(description="The loan's capital not yet repaid, due at once (early repayment).")
    total: Decimal
    items: list[InterestOut]


class FollowUpReportOut(OutModel):
    kpi: str
    year_after: int
    period: str
    due_date: date


class FollowUpOut(OutModel):
    completed_on: date
    until: date = Field(description="Last day KPI and milestone reports are taken.")
    last_year: int = Field(description="Last calendar year a report may refer to.")
    reports: list[FollowUpReportOut] = Field(description="The results the call asks after completion.")


class OutcomeOut(OutModel):
    kind: OutcomeKind
    reason_code: RevocationCode | None
    reason: str | None
    approved: Decimal = Field(description="Approved eligible total.")
    recognised: Decimal | None = Field(description="Spend recognised on the final claim (null: revoked before).")
    ratio: Decimal | None = Field(description="recognised / approved, four decimals (rounded down).")
    grant: Decimal = Field(description="Final grant.")
    loan: Decimal = Field(description="Final loan.")
    released: Decimal = Field(description="Aid (grant + loan) given back to the call's budget.")
    balance: Decimal = Field(description="Balance ordered (final grant - advance), 0 if none.")
    recovery: Decimal = Field(
        description="Recovery ordered (what was paid and is due back, with the statutory "
        "interest and the loan's outstanding capital), 0 if none."
    )
    article: str | None = Field(None, description="The article the revocation rests on (the call's catalogue).")
    recovery_detail: RecoveryOut | None = Field(None, description="How a revocation's recovery is made up.")
    follow_up: FollowUpOut | None = Field(
        None, description="Results reporting after completion (the call's follow-up years)."
    )
    granted_from_waiting_list: list[uuid.UUID] = Field(
        description="Applications evaluation funded with the released budget (scorrimento)."
    )
    decided_at: datetime


class ProjectOut(OutModel):
    id: uuid.UUID
    application_id: uuid.UUID
    decision_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    partner_id: uuid.UUID | None
    cup: str | None
    cor: str | None
    decree_number: str
    decree_date: date
    status: ProjectStatus
    grant: Decimal = Field(description="Grant of the decision.")
    loan: Decimal = Field(description="Subsidised loan of the decision.")
    eligible_total: Decimal = Field(description="Approved eligible total (the evaluation's cuts applied).")
    approved_budget: list[ApprovedLine]
    timeline: Timeline
    kpis: list[KpiOut]
    start_date: date = Field(description="Expenses are eligible from this date (the application's submission).")
    deadline: date = Field(description="Decree date + the call's duration (+ the extension, if granted).")
    extension_granted: bool
    lombardy_site_verified: bool = Field(
        description="False while the company has only committed to open a site "
        "in Lombardy (or an officer found it not opened)."
    )
    iban: str | None = Field(
        description="The account payments ordered from now on go to; an order keeps the "
        "account it was ordered with unless an officer re-issues it."
    )
    iban_holder: IbanHolderOut | None = Field(
        description="The account's holder, checked against the company's VAT number or fiscal code."
    )
    final_grant: Decimal | None
    final_loan: Decimal | None
    outcome: OutcomeOut | None
    created_at: datetime
    updated_at: datetime
    etag: str


class InstallmentOut(OutModel):
    number: int
    month: int = Field(description="Months from the loan's disbursement to the due date.")
    interest: Decimal
    principal: Decimal
    payment: Decimal
    outstanding: Decimal


class LoanScheduleOut(OutModel):
    project_id: uuid.UUID
    principal: Decimal = Field(description="The loan (final loan once the outcome is applied; 0 if revoked).")
    annual_rate: Decimal
    years: int
    grace_months: int
    periods_per_year: int
    total_interest: Decimal
    total_repaid: Decimal
    installments: list[InstallmentOut]
