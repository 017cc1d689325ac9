"""Companies (the SMEs applying) and the delegations through which partners act for them."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.contracts.companies import LegalForm
from shared.schemas import ApiModel, CountryCode, FiscalCode, Money, OutModel, Province, VatNumber

ROME = ZoneInfo("Europe/Rome")

DelegationStatus = Literal["pending", "active", "revoked"]

# ATECO 2007 / 2025: division (2 digits), then group, class, category, subcategory.
_ATECO_RE = re.compile(r"^(\d{2})(?:\.\d(?:\d(?:\.\d{1,2})?)?)?$")


def _ateco(v: Any) -> Any:
    m = _ATECO_RE.match(v.strip()) if isinstance(v, str) else None
    if m is None or not 1 <= int(m.group(1)) <= 99:
        raise PydanticCustomError("ateco_invalid", "Invalid ATECO code {value}", {"value": v})
    return m.group(0)


AtecoCode = Annotated[
    str,
    BeforeValidator(_ateco),
    Field(description="ATECO 2007/2025 code: NN, NN.N, NN.NN, NN.NN.N or NN.NN.NN", examples=["28.29.30"]),
]


def _decimal_string(v: Any) -> Any:
    # Same rule as money: a JSON number may already have lost precision on the client's side.
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        raise PydanticCustomError("decimal_not_string", 'Send decimal figures as strings such as "12.50"')
    return v


def _finite(v: Decimal) -> Decimal:
    if not v.is_finite():
        raise PydanticCustomError("decimal_parsing", "Input should be a finite decimal")
    return v


Headcount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_finite),
    Field(
        ge=0,
        max_digits=10,
        decimal_places=2,
        examples=["12.50"],
        json_schema_extra={"type": "string"},
        description="Annual work units (AWU, ULA) of the last approved period.",
    ),
]
Share = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_finite),
    Field(
        ge=0,
        le=1,
        max_digits=5,
        decimal_places=4,
        examples=["0.30"],
        json_schema_extra={"type": "string"},
        description="Share held, 0..1.",
    ),
]


def _not_future(v: date) -> date:
    if v > datetime.now(ROME).date():
        raise PydanticCustomError("date_in_future", "The date cannot be in the future")
    return v


class Site(ApiModel):
    address: str = Field(min_length=2, max_length=300, examples=["Via Larga 12"])
    municipality: str = Field(min_length=2, max_length=120, examples=["Milano"])
    postal_code: str = Field(pattern=r"^\d{5}$", examples=["20122"])
    province: Province


class RelatedEnterpriseIn(ApiModel):
    vat_number: VatNumber
    name: str = Field(min_length=2, max_length=300)
    relation: Literal["partner", "linked"] = Field(
        description="partner: 25-50 % held either way; linked: more than 50 % (Rec. 2003/361/EC, Art. 3)."
    )
    share: Share
    headcount_awu: Headcount
    turnover: Money
    balance_sheet_total: Money

    @field_validator("share")
    @classmethod
    def _share_fits_relation(cls, v: Decimal, info: ValidationInfo) -> Decimal:
        relation = info.data.get("relation")
        if relation == "partner" and not Decimal("0.25") <= v <= Decimal("0.50"):
            raise PydanticCustomError(
                "share_relation_mismatch",
                "A partner enterprise's share is between 0.25 and 0.50",
                {"relation": relation},
            )
        if relation == "linked" and v <= Decimal("0.50"):
            raise PydanticCustomError(
                "share_relation_mismatch", "A linked enterprise's share is above 0.50", {"relation": relation}
            )
        return v


def _export_year(v: int) -> int:
    if not 2000 <= v <= datetime.now(ROME).year:
        raise PydanticCustomError("year_out_of_range", "The year must be between 2000 and the current year")
    return v


class ExportRecord(ApiModel):
    year: Annotated[int, Field(le=9999), AfterValidator(_export_year)]
    country: CountryCode
    amount: Money


class CompanyIn(ApiModel):
    """The editable facts of a company; POST creates it, PUT replaces them all (the VAT number is fixed)."""

    vat_number: VatNumber
    fiscal_code: FiscalCode = Field(description="For companies usually equal to the VAT number.")
    legal_representative_fiscal_code: FiscalCode | None = Field(
        None,
        description="Fiscal code of the company's legal representative: the person whose qualified signature "
        "the application form must bear (the certificate's subject serialNumber, TINIT-<code>).",
    )
    name: str = Field(min_length=2, max_length=300, examples=["Rossi Meccanica S.r.l."])
    legal_form: LegalForm
    ateco_code: AtecoCode
    registered_office: Site
    operating_sites: list[Site] = Field(default_factory=list, max_length=200)
    lombardy_site_commitment: bool = Field(
        False, description="Commits to open a site in Lombardy before the first payment, when it has none yet."
    )
    incorporation_date: Annotated[date, AfterValidator(_not_future)]
    approved_financial_statements: int = Field(
        ge=0, le=1000, description="How many financial statements have been approved."
    )
    headcount_awu: Headcount
    turnover: Money
    balance_sheet_total: Money
    previous_year_export_sales: Money
    related_enterprises: list[RelatedEnterpriseIn] = Field(default_factory=list, max_length=200)
    export_history: list[ExportRecord] = Field(default_factory=list, max_length=500)

    @field_validator("export_history")
    @classmethod
    def _one_record_per_year_and_country(cls, v: list[ExportRecord]) -> list[ExportRecord]:
        seen: set[tuple[int, str]] = set()
        for record in v:
            key = (record.year, record.country)
            if key in seen:
                raise PydanticCustomError(
                    "duplicate_value", "Repeated value {value}", {"value": f"{record.year} {record.country}"}
                )
            seen.add(key)
        return v


class DelegationCreate(ApiModel):
    vat_number: VatNumber = Field(description="VAT number of the company asked for a delegation.")


class DelegationRequestOut(OutModel):
    """The answer to a delegation request: the same whether or not a company with this VAT number is
    registered, so a partner cannot learn from it which companies use the desk, nor their ids or names."""

    id: uuid.UUID = Field(description="The request's id. Once the company accepts, the delegation carries it.")
    vat_number: str
    status: Literal["requested"]


class DelegationOut(OutModel):
    id: uuid.UUID
    partner_id: uuid.UUID
    partner_name: str
    company_id: uuid.UUID
    company_name: str
    company_vat_number: str
    status: DelegationStatus
    created_at: datetime
    activated_at: datetime | None
    revoked_at: datetime | None
    etag: str
