"""Applications: the draft document (action plan, expense lines, business network), check and receipt."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

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


class ExpenseLineIn(ApiModel):
    category: Annotated[str, Field(min_length=1, max_length=8, description="Category code of the call, e.g. \"b\".")]
    description: ShortText
    amount: PositiveMoney = Field(description="Taxable amount, net of VAT.")
    target_market: CountryCode | None = None
    supplier: Annotated[str, Field(max_length=300)] | None = None


#: The de minimis regulations whose aid counts towards the ceiling of Reg. (EU) 2023/2831 (its Art. 5: cumulation
#: with the SGEI, agriculture and fishery de minimis regulations and with aid under its predecessors).
DeMinimisRegulation = Literal["Reg. (UE) 2023/2831", "Reg. (UE) 1407/2013", "Reg. (UE) 2023/2832",
                              "Reg. (UE) 360/2012", "Reg. (UE) 1408/2013", "Reg. (UE) 717/2014"]


class DeMinimisDeclaration(ApiModel):
    """A de minimis aid received by the applicant or a linked enterprise of its single undertaking (Reg. (EU)
    2023/2831 Art. 2(2)) in the current and the two previous fiscal years, self-declared under DPR 445/2000."""

    vat_number: VatNumber = Field(description="The member of the single undertaking that received it: the "
                                              "applicant or one of its linked enterprises.")
    granting_authority: ShortText = Field(examples=["Camera di commercio di Milano"])
    granted_on: date = Field(description="Date of concession (within the current and the two previous fiscal "
                                         "years, not in the future).")
    amount: PositiveMoney = Field(description="Gross grant equivalent (elemento di aiuto), euros.")
    regulation: DeMinimisRegulation = Field(examples=["Reg. (UE) 2023/2831"])
    reference: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="The COR of the national state-aid register, if known: the same aid imported from the "
                          "register is then counted once.")


class NetworkMember(ApiModel):
    """A member of a business network: a company registered at the desk, with its own expense lines and de minimis
    self-declaration. The partner submitting must act for it (an active delegation, as for the lead); the lead
    (the application's company) is not a member of its own network, and no company is listed twice."""

    company_id: uuid.UUID = Field(description="A company registered at intake, within the caller's reach (the same "
                                              "partner's delegation as the lead).")
    expense_lines: list[ExpenseLineIn] = Field(default_factory=list, max_length=500,
                                               description="This member's own expense lines (as the application's).")
    de_minimis_declarations: list[DeMinimisDeclaration] = Field(
        default_factory=list, max_length=100,
        description="This member's own de minimis self-declaration (its single undertaking).")


class Network(ApiModel):
    """A business network (rete d'impresa): the applicant is the lead company, its own lines are the
    application's `expense_lines`; each member brings its own."""

    name: ShortText
    members: list[NetworkMember] = Field(min_length=1, max_length=50)


class ApplicationDocument(ApiModel):
    title: ShortText
    action_plan: ActionPlan = Field(default_factory=ActionPlan)
    expense_lines: list[ExpenseLineIn] = Field(default_factory=list, max_length=500)
    flat_rates: list[Annotated[str, Field(min_length=1, max_length=8)]] | None = Field(
        None, description="Flat-rate categories claimed (e.g. [\"d\", \"e\"]); null claims every one the call offers.")
    network: Network | None = None
    de_minimis_declarations: list[DeMinimisDeclaration] = Field(
        default_factory=list, max_length=100,
        description="Self-declaration (DPR 445/2000) of every de minimis aid the single undertaking received in the "
                    "current and the two previous fiscal years; an empty list declares none.")


class ApplicationCreate(ApplicationDocument):
    call_id: uuid.UUID
    company_id: uuid.UUID


class ApplicationUpdate(ApplicationDocument):
    pass


class Withdrawal(ApiModel):
    reason: Annotated[str, Field(min_length=3, max_length=2000)]


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


class Receipt(OutModel):
    call_id: uuid.UUID
    call_code: str
    call_version: int
    application_id: uuid.UUID
    company_vat_number: str
    protocol_number: int
    submitted_at: datetime
    content_sha256: str
    key_id: str


class SubmissionReceipt(OutModel):
    receipt: Receipt = Field(description="What was signed: its canonical JSON (sorted keys, no spaces).")
    signature: str = Field(description="Ed25519 signature of the receipt's canonical JSON, base64url.")
    previous_hash: str
    chain_hash: str = Field(description="sha256(previous_hash || canonical receipt): its link in the register.")
    register_url: str


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
    call_version: int | None = Field(None, description="The version of the call's rules the application was "
                                                       "submitted under (null for a draft): it is checked, evaluated "
                                                       "and funded under that version.")
    withdrawn_at: datetime | None
    created_at: datetime
    updated_at: datetime
    etag: str


class CheckProblem(OutModel):
    code: str
    path: str
    message: str
    message_it: str
    message_en: str
    article: str
    blocking: bool


class CutOut(OutModel):
    category: str
    requested: Decimal
    allowed: Decimal
    reason: str


class Breakdown(OutModel):
    requested: dict[str, Decimal]
    direct: dict[str, Decimal]
    flat_rates: dict[str, Decimal]
    total: Decimal
    cuts: list[CutOut]


class Estimate(OutModel):
    eligible_total: Decimal
    aid_base: Decimal | None = Field(None, description="What the aid is computed on: the eligible total capped at "
                                                       "the call's maximum eligible cost (capped, not refused).")
    grant: Decimal
    loan: Decimal
    total_aid: Decimal


class DeMinimisCheckOut(OutModel):
    """The de minimis ceiling over the declared aid only (the funding computation counts everything)."""

    ceiling: Decimal
    window_start: date
    window_end: date
    declared_total: Decimal = Field(description="Declared aid granted in the rolling period.")
    headroom: Decimal
    requested_equivalent: Decimal = Field(description="Estimated grant + the loan's estimated gross grant "
                                                      "equivalent.")
    allowed_equivalent: Decimal = Field(description="What the call can still give, as gross grant equivalent.")
    reduced: bool
    refused: bool


class NetworkMemberEstimate(OutModel):
    company_id: uuid.UUID
    vat_number: str
    eligible_total: Decimal
    grant: Decimal
    loan: Decimal
    total_aid: Decimal


class NetworkEstimate(OutModel):
    """The network's figures: each member's estimated aid on its own lines, and the network's totals (lead +
    members), which the call's `network` limits apply to."""

    members: list[NetworkMemberEstimate]
    eligible_total: Decimal
    grant: Decimal
    loan: Decimal
    total_aid: Decimal


class CheckResultOut(OutModel):
    submittable: bool = Field(description="No blocking problem (the window is checked at submit time).")
    problems: list[CheckProblem]
    breakdown: Breakdown | None
    estimate: Estimate | None
    de_minimis: DeMinimisCheckOut | None = None
    network: NetworkEstimate | None = Field(None, description="For a network application: the aid per member and "
                                                               "the network's totals (`estimate` is the lead's).")


