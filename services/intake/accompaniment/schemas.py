"""Expert accompaniment: request and response bodies of the roster, the engagements and their sessions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import pycountry
from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from services.intake.companies.schemas import AtecoCode
from services.intake.trainings.schemas import Email
from shared.schemas import ApiModel, CountryCode, FiscalCode, OutModel, VatNumber

Phase = Literal["design", "monitoring", "reporting"]
EngagementStatus = Literal["requested", "assigned", "confirmed"]
ConflictReason = Literal["supplier", "drafting_consultant", "declared_conflict"]


def _language(v: Any) -> Any:
    if not isinstance(v, str) or len(v) != 2 or pycountry.languages.get(alpha_2=v.lower()) is None:
        raise PydanticCustomError("language_unknown", "Unknown language {value}", {"value": v})
    return v.lower()


Language = Annotated[str, BeforeValidator(_language), Field(description="ISO 639-1", examples=["en"])]
Hours = Annotated[Decimal, Field(gt=0, max_digits=5, decimal_places=2, examples=["2.50"])]
# A fiscal code (16 characters) or a VAT number (11 digits), as a conflict names a person or a firm.
PartyCode = Annotated[
    str,
    Field(
        pattern=r"^(?:[A-Za-z0-9]{16}|\d{11})$",
        description="Fiscal code (16 characters) or VAT number (11 digits) of a person or firm.",
        examples=["RSSMRA80A01F205X"],
    ),
]


def _unique(values: list[Any], path: str) -> list[Any]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("duplicate_values", "The list {path} repeats a value", {"path": path})
    return values


class ExpertIn(ApiModel):
    """An accredited expert, as an officer registers or replaces it."""

    fiscal_code: FiscalCode = Field(examples=["RSSMRA80A01F205X"])
    vat_number: VatNumber | None = Field(None, description="The expert's VAT number, if it invoices as a firm.")
    name: str = Field(min_length=2, max_length=200, examples=["Mario Rossi"])
    email: Email | None = None
    markets: list[CountryCode] = Field(min_length=1, max_length=60, description="Target markets it knows.")
    sectors: list[AtecoCode] = Field(
        min_length=1, max_length=30, description="ATECO codes it covers; a code covers every code below it."
    )
    languages: list[Language] = Field(min_length=1, max_length=20)
    phases: list[Phase] = Field(min_length=1, max_length=3)
    hours_per_month: Hours = Field(description="Hours available each calendar month (Europe/Rome).")
    accredited_from: date
    accredited_to: date | None = Field(None, description="Last day of the accreditation; null: open-ended.")

    @model_validator(mode="after")
    def _check(self) -> ExpertIn:
        for name in ("markets", "sectors", "languages", "phases"):
            _unique(getattr(self, name), name)
        if self.accredited_to is not None and self.accredited_to < self.accredited_from:
            raise PydanticCustomError("dates_out_of_order", "The accreditation ends before it starts")
        return self


class ExpertOut(OutModel):
    id: uuid.UUID
    fiscal_code: str
    vat_number: str | None
    name: str
    email: str | None
    markets: list[str]
    sectors: list[str]
    languages: list[str]
    phases: list[Phase]
    hours_per_month: Decimal
    accredited_from: date
    accredited_to: date | None
    accredited_today: bool
    client_id: str | None = Field(description="The API client the expert acts through, once issued.")
    created_at: datetime
    etag: str


class EngagementIn(ApiModel):
    application_id: uuid.UUID = Field(
        description="The application whose plan is accompanied; its company must be within your reach. The "
        "markets are the plan's target markets, the sector the company's ATECO code."
    )
    phase: Phase
    language: Language = Field(description="The language the company prefers.")
    drafting_consultant: PartyCode | None = Field(
        None, description="Who helped draft the plan (fiscal code or VAT number): never proposed nor assigned."
    )
    declared_conflicts: list[PartyCode] = Field(
        default_factory=list,
        max_length=50,
        description="Further people or firms in a conflict with the company (its suppliers, its consultants): "
        "never proposed nor assigned.",
    )
    notes: str | None = Field(None, max_length=2000)


class EngagementOut(OutModel):
    id: uuid.UUID
    company_id: uuid.UUID
    application_id: uuid.UUID
    call_id: uuid.UUID
    phase: Phase
    markets: list[str]
    sector: str
    language: str
    drafting_consultant: str | None
    declared_conflicts: list[str]
    notes: str | None
    status: EngagementStatus = Field(
        description="`requested` waits for an officer's assignment; `assigned` for the expert's confirmation "
        "(a decline returns it to `requested`); `confirmed`: the expert logs sessions."
    )
    expert_id: uuid.UUID | None
    declined_by: list[uuid.UUID]
    assigned_at: datetime | None
    confirmed_at: datetime | None
    hours_logged: Decimal
    sessions_count: int
    rating: int | None
    rating_comment: str | None
    rated_at: datetime | None
    created_at: datetime
    etag: str


class ExpertProposal(OutModel):
    expert_id: uuid.UUID
    name: str
    score: Decimal = Field(description="Fit, 0-100: markets 40, sector 25, language 15, availability 20.")
    market_points: Decimal
    sector_points: Decimal
    language_points: Decimal
    availability_points: Decimal
    markets_covered: list[str]
    hours_left_this_month: Decimal


class ExcludedExpert(OutModel):
    expert_id: uuid.UUID
    reasons: list[ConflictReason]


class ExpertProposals(OutModel):
    engagement_id: uuid.UUID
    proposals: list[ExpertProposal] = Field(description="Eligible experts, best fit first.")
    excluded_for_conflict: list[ExcludedExpert] = Field(
        description="Experts otherwise competent for the phase left out for a conflict (officers only; "
        "empty for partners and companies)."
    )


class AssignmentIn(ApiModel):
    expert_id: uuid.UUID


class SessionIn(ApiModel):
    held_on: date = Field(description="The day the session was held (not in the future).")
    hours: Hours
    topics: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=20)
    outcome_notes: str = Field(min_length=1, max_length=5000)
    next_steps: str | None = Field(None, max_length=5000)


class SessionOut(OutModel):
    id: uuid.UUID
    engagement_id: uuid.UUID
    expert_id: uuid.UUID
    held_on: date
    hours: Decimal
    topics: list[str]
    outcome_notes: str
    next_steps: str | None
    created_at: datetime


class RatingIn(ApiModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)


class ExpertLoad(OutModel):
    expert_id: uuid.UUID
    name: str
    hours_per_month: Decimal
    hours_this_month: Decimal
    hours_left: Decimal
    engagements: int = Field(description="Engagements assigned or confirmed.")


class CompanyHours(OutModel):
    company_id: uuid.UUID
    call_id: uuid.UUID
    hours: Decimal
    max_hours: Decimal | None = Field(description="The call's `accompaniment.max_hours_per_company`.")


class PhaseFigures(OutModel):
    phase: Phase
    engagements: int
    hours: Decimal
    average_rating: Decimal | None


class MarketFigures(OutModel):
    market: str
    engagements: int
    hours: Decimal


class AccompanimentStats(OutModel):
    month: str = Field(description="The calendar month (Europe/Rome) of the load figures, YYYY-MM.")
    experts: list[ExpertLoad]
    companies: list[CompanyHours]
    by_phase: list[PhaseFigures]
    by_market: list[MarketFigures] = Field(
        description="An engagement counts, with all its hours, under each of its markets."
    )
