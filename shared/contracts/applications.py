"""The application as intake publishes it (`GET /v1/applications/{id}`): the snapshot evaluation and monitoring
read through `IntakeClient`. Intake owns the data and serves these models; the readers map them to their own."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from shared.contracts.companies import CompanyOut
from shared.schemas import ApiModel, CountryCode, OutModel, PositiveMoney, VatNumber

Text = Annotated[str, Field(max_length=20_000)]
ShortText = Annotated[str, Field(min_length=1, max_length=300)]


class TargetMarket(ApiModel):
    country: CountryCode
    analysis: Text = Field("", description="Market analysis: demand, competitors, channels.")
    risks: Text = Field("", description="Risks and how they are mitigated.")


class MilestoneIn(ApiModel):
    title: ShortText
    due_date: date


class Kpi(ApiModel):
    name: ShortText = Field(examples=["Foreign turnover share"])
    baseline: Decimal = Field(max_digits=14, decimal_places=2, json_schema_extra={"type": "string"})
    target: Decimal = Field(max_digits=14, decimal_places=2, json_schema_extra={"type": "string"})
    unit: ShortText = Field(examples=["%", "EUR", "customers"])


class ActionPlan(ApiModel):
    objectives: Text = Field("", description="Strategic objectives.")
    starting_point: Text = Field("", description="Analysis of the starting point.")
    strategy: Text = Field("", description="Strategy and activities.")
    resources: Text = Field("", description="Resources (people, partners, budget).")
    target_markets: list[TargetMarket] = Field(default_factory=list, max_length=30)
    start_date: date | None = None
    end_date: date | None = None
    milestones: list[MilestoneIn] = Field(default_factory=list, max_length=100)
    kpis: list[Kpi] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _dates(self) -> ActionPlan:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise PydanticCustomError("dates_out_of_order", "The end date precedes the start date")
        return self


#: The de minimis regulations whose aid counts towards the ceiling of Reg. (EU) 2023/2831 (its Art. 5: cumulation
#: with the SGEI, agriculture and fishery de minimis regulations and with aid under its predecessors).
DeMinimisRegulation = Literal[
    "Reg. (UE) 2023/2831",
    "Reg. (UE) 1407/2013",
    "Reg. (UE) 2023/2832",
    "Reg. (UE) 360/2012",
    "Reg. (UE) 1408/2013",
    "Reg. (UE) 717/2014",
]


class DeMinimisDeclaration(ApiModel):
    """A de minimis aid received by the applicant or a linked enterprise of its single undertaking (Reg. (EU)
    2023/2831 Art. 2(2)) in the current and the two previous fiscal years, self-declared under DPR 445/2000."""

    vat_number: VatNumber = Field(
        description="The member of the single undertaking that received it: the "
        "applicant or one of its linked enterprises."
    )
    granting_authority: ShortText = Field(examples=["Camera di commercio di Milano"])
    granted_on: date = Field(
        description="Date of concession (within the current and the two previous fiscal years, not in the future)."
    )
    amount: PositiveMoney = Field(description="Gross grant equivalent (elemento di aiuto), euros.")
    regulation: DeMinimisRegulation = Field(examples=["Reg. (UE) 2023/2831"])
    reference: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None,
        description="The COR of the national state-aid register, if known: the same aid imported from the "
        "register is then counted once.",
    )


class ExpenseLineOut(OutModel):
    category: str
    description: str
    amount: Decimal
    target_market: str | None
    supplier: str | None


class NetworkMemberOut(OutModel):
    company_id: uuid.UUID
    vat_number: str = Field(description="The member's VAT number, as registered when the draft was last saved.")
    name: str
    expense_lines: list[ExpenseLineOut]
    de_minimis_declarations: list[DeMinimisDeclaration] = Field(default_factory=list)


class NetworkOut(OutModel):
    name: str
    members: list[NetworkMemberOut]


class ApplicationOut(OutModel):
    id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    partner_id: uuid.UUID | None
    status: Literal["draft", "submitted", "withdrawn"]
    title: str
    action_plan: ActionPlan
    expense_lines: list[ExpenseLineOut]
    flat_rates: list[str]
    network: NetworkOut | None
    de_minimis_declarations: list[DeMinimisDeclaration] = Field(default_factory=list)
    protocol_number: int | None
    submitted_at: datetime | None
    call_version: int | None = Field(
        None,
        description="The version of the call's rules the application was "
        "submitted under (null for a draft): it is checked, evaluated "
        "and funded under that version.",
    )
    company_vat_number: str | None = Field(
        None,
        description="The company's VAT number as the receipt names it (null for a draft): with the fields "
        "above, what `content_sha256` covers (README, Receipts).",
    )
    content_sha256: str | None = Field(
        None, description="SHA-256 (hex) of the submitted content's canonical JSON (null for a draft)."
    )
    withdrawn_at: datetime | None
    form_signed_at: datetime | None = Field(
        None,
        description="When the application form signed by the company's legal representative (PAdES) was verified "
        "and accepted; null until then. Admissibility waits for it.",
    )
    created_at: datetime
    updated_at: datetime
    etag: str


SNAPSHOTS_MAX = 200


class SnapshotsRequest(ApiModel):
    """Which applications a desk service wants intake's snapshot of, in one request."""

    ids: list[uuid.UUID] = Field(min_length=1, max_length=SNAPSHOTS_MAX, description="Application ids (at most 200).")


class SnapshotsOut(OutModel):
    items: list[ApplicationOut] = Field(description="The applications found, in the order their ids were asked.")
    unknown: list[uuid.UUID] = Field(description="The ids asked for that intake has no application for.")
    companies: list[CompanyOut] = Field(
        default_factory=list,
        description="The companies of the applications found (each applicant and every network member), once each.",
    )
