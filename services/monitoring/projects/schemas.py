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

from shared.schemas import ApiModel, Money, OutModel

ProjectStatus = Literal["active", "completed", "revoked"]
OutcomeKind = Literal["full", "reduced", "revoked"]
RevocationCode = Literal["below_threshold", "deadline_missed", "site_never_opened"]


def iban_problem(value: str) -> tuple[str, str] | None:
    """Why `value` cannot receive a payment (code, English message), or None when it is a valid Italian IBAN."""
    compact = stdnum_iban.compact(value)
    try:
        stdnum_iban.validate(compact)
    except StdnumError as e:
        return "iban_invalid", f"Invalid IBAN: {e}"
    if not compact.startswith("IT"):
        return "iban_not_italian", "Payments go to an Italian account: the IBAN must start with IT"
    return None


def _iban(v: Any) -> Any:
    if not isinstance(v, str):
        raise PydanticCustomError("iban_invalid", "Invalid IBAN: {reason}", {"reason": "not a string"})
    problem = iban_problem(v)
    if problem is not None:
        raise PydanticCustomError(problem[0], problem[1])
    return stdnum_iban.compact(v)


Iban = Annotated[str, BeforeValidator(_iban),
                 Field(description="Italian IBAN (spaces allowed; check digits verified).",
                       examples=["IT60X0542811101000000123456"])]
Reason = Annotated[str, Field(min_length=3, max_length=2000)]


class IbanIn(ApiModel):
    iban: Iban


class ExtensionIn(ApiModel):
    reason: Reason = Field(description="Why the extension is justified.")


class LombardySiteIn(ApiModel):
    opened: bool = Field(description="True: the operating site in Lombardy was verified open; false: it was not.")
    note: Annotated[str, Field(max_length=2000)] | None = None


class OutcomeIn(ApiModel):
    recognised_total: Money = Field(description="Spend recognised on the reviewed final claim (eligible, net of VAT, "
                                                "flat rates recomputed).")
    completed_on: date | None = Field(None, description="When the project was completed (the final claim's "
                                                        "submission); default today, Europe/Rome. After the deadline "
                                                        "(extension included) the aid is revoked.")


class RevocationIn(ApiModel):
    reason_code: Literal["deadline_missed", "site_never_opened"] = Field(
        description="deadline_missed: the deadline (extension included) is past and the project was not completed; "
                    "site_never_opened: the operating site in Lombardy the company committed to was never opened.")
    reason: Reason


class ApprovedLine(OutModel):
    dimension: Literal["category", "market"]
    category: str | None = None
    kind: str | None = Field(None, description="direct or flat_rate (categories only).")
    country: str | None = Field(None, description="Target market (markets only; null: no market).")
    amount: Decimal


class Milestone(OutModel):
    title: str
    due_date: date


class LoanTerms(OutModel):
    annual_rate: Decimal
    years: int
    grace_months: int
    periods_per_year: int


class Timeline(OutModel):
    start_date: date | None = Field(description="The action plan's start.")
    end_date: date | None = Field(description="The action plan's end.")
    milestones: list[Milestone]
    loan_terms: LoanTerms


class KpiOut(OutModel):
    name: str
    baseline: Decimal
    target: Decimal
    unit: str


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
    recovery: Decimal = Field(description="Recovery ordered (what was paid and is due back), 0 if none.")
    granted_from_waiting_list: list[uuid.UUID] = Field(
        description="Applications evaluation funded with the released budget (scorrimento).")
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
    lombardy_site_verified: bool = Field(description="False while the company has only committed to open a site "
                                                     "in Lombardy (or an officer found it not opened).")
    iban: str | None
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
