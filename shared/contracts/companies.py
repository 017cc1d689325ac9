"""The company as intake publishes it (`GET /v1/companies/{id}`, `GET /v1/companies?vat_number=`): what
evaluation and monitoring read through `IntakeClient` (SME size, de minimis single undertaking, open data)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.domain.sme import SizeClass
from shared.schemas import OutModel

LegalForm = Literal[
    "srl", "srls", "spa", "sapa", "snc", "sas", "ss", "coop", "ditta_individuale", "consorzio", "rete_soggetto", "other"
]


class SiteOut(OutModel):
    address: str
    municipality: str
    postal_code: str
    province: str


class RelatedEnterpriseOut(OutModel):
    vat_number: str
    name: str
    relation: Literal["partner", "linked"]
    share: Decimal
    headcount_awu: Decimal
    turnover: Decimal
    balance_sheet_total: Decimal


class ExportRecordOut(OutModel):
    year: int
    country: str
    amount: Decimal


class Figures(OutModel):
    headcount_awu: Decimal
    turnover: Decimal
    balance_sheet_total: Decimal


class CompanyOut(OutModel):
    id: uuid.UUID
    vat_number: str
    fiscal_code: str
    legal_representative_fiscal_code: str | None = None
    name: str
    legal_form: LegalForm
    ateco_code: str
    registered_office: SiteOut
    operating_sites: list[SiteOut]
    lombardy_site_commitment: bool
    has_lombardy_site: bool = Field(description="The registered office or an operating site is in Lombardy.")
    incorporation_date: date
    approved_financial_statements: int
    headcount_awu: Decimal
    turnover: Decimal
    balance_sheet_total: Decimal
    previous_year_export_sales: Decimal
    related_enterprises: list[RelatedEnterpriseOut]
    export_history: list[ExportRecordOut]
    size_class: SizeClass = Field(description="SME class per Rec. 2003/361/EC on the aggregated figures.")
    aggregated_figures: Figures = Field(
        description="Own figures plus partner (pro rata) and linked (100 %) "
        "enterprises', rounded to the cent; size_class uses them."
    )
    created_at: datetime
    updated_at: datetime
    etag: str
