"""Request and response bodies of the expense claims (rendicontazione), their lines and evidence."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import pycountry
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.it import codicefiscale, iva

from shared.i18n import stdnum_reason
from shared.schemas import ApiModel, CountryCode, Money, OutModel, PositiveMoney, VerdictItem

ClaimKind = Literal["intermediate", "final"]
ClaimStatus = Literal["draft", "submitted", "approved", "partially_approved", "rejected"]
LineKind = Literal["invoice", "payslip"]
PaymentMethod = Literal["bank_transfer", "card", "riba", "sepa_dd", "other", "cash"]
LineOutcome = Literal["recognised", "partially", "rejected"]


class ClaimCreate(ApiModel):
    kind: ClaimKind


def _vat_error(reason: str) -> PydanticCustomError:
    """`reason` is a shared.i18n.STDNUM_REASONS code: clients read it translated."""
    return PydanticCustomError("vat_number_invalid", "Invalid VAT number: {reason}", {"reason": reason})


def normalise_supplier_id(value: str, kind: str) -> str:
    """The supplier's identity as stored (and compared for duplicates): an Italian VAT number as its 11 digits;
    a foreign one with its country prefix (EU numbers verified with python-stdnum); for a payslip, the
    employee's codice fiscale is accepted too."""
    v = "".join(value.split()).upper().replace(".", "").replace("-", "")
    if v[:2].isalpha():
        country, rest = v[:2], v[2:]
        if country == "IT":
            v = rest
        elif country.lower() in eu_vat.MEMBER_STATES or country == "EL":
            try:
                return str(eu_vat.validate(v))
            except StdnumError as e:
                raise _vat_error(stdnum_reason(e)) from None
        elif len(v) == 16 and kind == "payslip":
            pass  # a codice fiscale starts with letters too
        else:
            # outside the EU there is no common check digit: the country must exist, the code look like one
            if pycountry.countries.get(alpha_2=country) is None or not (2 <= len(rest) <= 14 and rest.isalnum()):
                raise _vat_error("foreign_tax_number")
            return v
    if len(v) == 16 and kind == "payslip":
        try:
            return str(codicefiscale.validate(v))
        except StdnumError as e:
            raise PydanticCustomError(
                "fiscal_code_invalid", "Invalid fiscal code: {reason}", {"reason": stdnum_reason(e)}
            ) from None
    try:
        return str(iva.validate(v))
    except StdnumError as e:
        raise _vat_error(stdnum_reason(e)) from None


class LineCreate(ApiModel):
    kind: LineKind
    supplier_vat: str = Field(
        min_length=2,
        max_length=20,
        description="Italian partita IVA (11 digits, check digit verified), or a foreign VAT number with its "
        "country prefix (EU numbers verified); for a payslip, the employee's codice fiscale.",
        examples=["01234567897", "DE136695976"],
    )
    supplier_name: str = Field(min_length=1, max_length=200)
    document_number: str = Field(
        min_length=1,
        max_length=40,
        description="Invoice or payslip number; stored upper-case without spaces (the same invoice is compared "
        "on supplier, number and date across all projects and calls).",
    )
    issue_date: date
    taxable_amount: PositiveMoney = Field(description="Taxable amount, net of VAT.")
    category: str = Field(min_length=1, max_length=8, description="One of the project's approved direct categories.")
    market: CountryCode | None = None
    payment_date: date | None = None
    payment_method: PaymentMethod | None = Field(
        None,
        description="How it was paid. Cash (or no method) fails the payment_traceable check: the line can "
        "then not be recognised.",
    )
    cup_quoted: bool = Field(
        False,
        description="The document quotes the project's CUP (declared for PDF/images; "
        "a FatturaPA evidence file is read instead).",
    )

    @model_validator(mode="after")
    def _normalise(self) -> LineCreate:
        self.supplier_vat = normalise_supplier_id(self.supplier_vat, self.kind)
        self.document_number = "".join(self.document_number.split()).upper()
        return self


class LineReview(ApiModel):
    outcome: LineOutcome
    recognised_amount: Money | None = Field(
        None, description="recognised: the taxable amount (default); partially: required, below it; rejected: 0."
    )
    note: str | None = Field(None, max_length=2000)


class EvidenceOut(OutModel):
    id: uuid.UUID
    claim_line_id: uuid.UUID
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    invoice_data: dict[str, Any] | None = Field(
        None, description="What a FatturaPA file says (supplier, number, date, taxable amount, CUP found)."
    )
    uploaded_at: datetime
    download_url: str


class LineOut(OutModel):
    id: uuid.UUID
    claim_id: uuid.UUID
    project_id: uuid.UUID
    kind: str
    supplier_vat: str
    supplier_name: str | None
    document_number: str
    issue_date: date
    taxable_amount: Decimal
    category: str
    market: str | None
    payment_date: date | None
    payment_method: str | None
    cup_quoted: bool
    checks: list[VerdictItem] = Field(
        description="Every check of the line: `pass`, `fail` (`blocking` when it stops the payment) or `needs_review`."
    )
    outcome: str = Field(description="pending, recognised, partially or rejected.")
    recognised_amount: Decimal | None
    officer_note: str | None
    evidence: list[EvidenceOut]
    created_at: datetime


class ClaimOut(OutModel):
    id: uuid.UUID
    project_id: uuid.UUID
    kind: str
    status: ClaimStatus
    claimed_total: Decimal
    recognised_total: Decimal | None
    submitted_at: datetime | None
    reviewed_at: datetime | None
    review: dict[str, Any] | None = Field(None, description="Totals at submission and at the end of the review.")
    etag: str
    created_at: datetime


class ClaimDetail(ClaimOut):
    lines: list[LineOut]


class OverrideIn(ApiModel):
    """An officer's override of the recognised total the call's rules compute for a claim."""

    recognised_total: Money = Field(
        description="The total to recognise instead of the computed one (at most the claimed total)."
    )
    reason: str = Field(
        min_length=10,
        max_length=2000,
        description="Why the computed outcome is overridden (e.g. the appeal or the finding it "
        "follows): it is recorded with both officers.",
    )
