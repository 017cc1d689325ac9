"""The de minimis register as evaluation exposes it, the state-aid register import report, and the
single undertaking's aid in the rolling period."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from services.evaluation.admissibility.schemas import StepOut
from shared.schemas import ApiModel, OutModel, PositiveMoney, VatNumber

Text = Annotated[str, Field(min_length=2, max_length=300)]


class AidIn(ApiModel):
    """An aid granted to an undertaking, entered by an officer (e.g. from a self-declaration or a decree)."""

    vat_number: VatNumber
    granted_on: date
    amount: PositiveMoney = Field(description="Gross grant equivalent of the aid (elemento di aiuto), euros.")
    granting_authority: Text = Field(examples=["Regione Lombardia"])
    regulation: Text = Field(examples=["Reg. (UE) 2023/2831"])
    reference: Annotated[
        str,
        Field(
            min_length=1,
            max_length=100,
            examples=["COR 1234567"],
            description="Its identifier: the COR of the state-aid register, or the act.",
        ),
    ]


class AidOut(OutModel):
    id: uuid.UUID
    vat_number: str
    granted_on: date
    amount: Decimal
    granting_authority: str
    regulation: str
    source: str = Field(description="manual (officer entry), RNA (register import) or desk (the desk's decisions).")
    reference: str
    created_by: str
    created_at: datetime


class ImportRowError(OutModel):
    line: int = Field(description="Line of the file (the header is line 1).")
    field: str = Field(description="The column, as named in the header.")
    code: str
    message: str
    message_it: str
    message_en: str


class ImportReport(OutModel):
    imported: int
    skipped_duplicates: int = Field(description="Rows whose COR is already in the register (or repeated in the file).")
    errors: list[ImportRowError] = Field(description="Invalid rows (only with skip_invalid=true: otherwise 422).")


class MemberOut(OutModel):
    vat_number: str
    name: str | None
    relation: str = Field(description="applicant or linked.")


class PeriodOut(OutModel):
    call_id: uuid.UUID
    regulation: str
    ceiling: Decimal
    window_start: date
    window_end: date
    total: Decimal = Field(description="Aid of the single undertaking granted in the rolling period.")
    headroom: Decimal
    steps: list[StepOut]


class UndertakingOut(OutModel):
    vat_number: str
    company_id: uuid.UUID | None = Field(description="The company registered at intake with this VAT number, if any.")
    on: date
    members: list[MemberOut]
    aids: list[AidOut] = Field(description="Every entry of the register for the members, by date.")
    period: PeriodOut | None = Field(
        description="The rolling period ending on `on` under the call's de minimis rules; only when call_id is given."
    )


class DeclaredAidOut(OutModel):
    vat_number: str
    granting_authority: str
    granted_on: date
    amount: Decimal
    regulation: str
    reference: str | None
    in_register: bool = Field(description="An RNA entry matches it (same COR, or same VAT number, date and amount).")


class ComparedAidOut(AidOut):
    declared: bool = Field(
        description="A declaration of the application matches it (same COR, or same VAT number, date and amount)."
    )


class SourceTotals(OutModel):
    declared: Decimal
    rna: Decimal
    manual: Decimal
    desk: Decimal


class ComparisonOut(OutModel):
    """What the applicant declared, what the national register (RNA) import says and what the desk granted, for
    the application's single undertaking, in the rolling period ending on `on` under the application's call."""

    application_id: uuid.UUID
    on: date
    members: list[str] = Field(description="VAT numbers of the single undertaking, the applicant first.")
    window_start: date
    window_end: date
    ceiling: Decimal
    totals_in_period: SourceTotals = Field(description="Per source, the aid granted in the period.")
    counted_total: Decimal = Field(
        description="What counts against the ceiling: every source, an aid in two of them (same COR) once."
    )
    headroom: Decimal
    declared: list[DeclaredAidOut]
    register_entries: list[ComparedAidOut] = Field(
        description="Every register entry of the members (RNA, manual, desk)."
    )
    declared_not_in_rna: list[DeclaredAidOut] = Field(description="Declared in the period, not found in the RNA.")
    rna_not_declared: list[ComparedAidOut] = Field(description="In the RNA in the period, not declared.")
