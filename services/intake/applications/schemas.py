"""Applications: the draft document (action plan, expense lines, business network), check and receipt."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from shared.contracts.applications import ActionPlan, DeMinimisDeclaration, ShortText
from shared.schemas import Amount, ApiModel, CountryCode, OutModel, PositiveMoney, VerdictItem


class ExpenseLineIn(ApiModel):
    category: Annotated[str, Field(min_length=1, max_length=8, description='Category code of the call, e.g. "b".')]
    description: ShortText
    amount: PositiveMoney = Field(description="Taxable amount, net of VAT.")
    target_market: CountryCode | None = None
    supplier: Annotated[str, Field(max_length=300)] | None = None


class NetworkMember(ApiModel):
    """A member of a business network: a company registered at the desk, with its own expense lines and de minimis
    self-declaration. The partner submitting must act for it (an active delegation, as for the lead); the lead
    (the application's company) is not a member of its own network, and no company is listed twice."""

    company_id: uuid.UUID = Field(
        description="A company registered at intake, within the caller's reach (the same "
        "partner's delegation as the lead)."
    )
    expense_lines: list[ExpenseLineIn] = Field(
        default_factory=list, max_length=500, description="This member's own expense lines (as the application's)."
    )
    de_minimis_declarations: list[DeMinimisDeclaration] = Field(
        default_factory=list,
        max_length=100,
        description="This member's own de minimis self-declaration (its single undertaking).",
    )


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
        None, description='Flat-rate categories claimed (e.g. ["d", "e"]); null claims every one the call offers.'
    )
    network: Network | None = None
    de_minimis_declarations: list[DeMinimisDeclaration] = Field(
        default_factory=list,
        max_length=100,
        description="Self-declaration (DPR 445/2000) of every de minimis aid the single undertaking received in the "
        "current and the two previous fiscal years; an empty list declares none.",
    )


class ApplicationCreate(ApplicationDocument):
    call_id: uuid.UUID
    company_id: uuid.UUID


class ApplicationUpdate(ApplicationDocument):
    pass


class StampDutyIn(ApiModel):
    """The €16 stamp duty (marca da bollo) the application bears, declared once, before submission."""

    identifier: Annotated[str, Field(pattern=r"^\d{14}$", description="The stamp's 14-digit identifier.")]
    issued_on: date = Field(description="The stamp's issue date.")


class StampDutyOut(OutModel):
    identifier: str
    issued_on: date


class SignedFormOut(OutModel):
    """The accepted copy of the form signed by the company's legal representative."""

    application_id: uuid.UUID
    form_sha256: str = Field(description="SHA-256 of the form the desk rendered (GET .../form.pdf): what was signed.")
    signed_sha256: str = Field(description="SHA-256 of the signed file as uploaded.")
    signer_fiscal_code: str
    signing_time: datetime = Field(description="The signing instant the signature states.")
    signed_at: datetime = Field(description="When the desk verified and accepted it.")


class Withdrawal(ApiModel):
    reason: Annotated[str, Field(min_length=3, max_length=2000)]


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


class PrecheckCutOut(OutModel):
    category: str
    requested: Amount
    allowed: Amount
    reason: str


class Breakdown(OutModel):
    requested: dict[str, Decimal]
    direct: dict[str, Decimal]
    flat_rates: dict[str, Decimal]
    total: Amount
    cuts: list[PrecheckCutOut]


class Estimate(OutModel):
    eligible_total: Amount
    aid_base: Amount | None = Field(
        None,
        description="What the aid is computed on: the eligible total capped at "
        "the call's maximum eligible cost (capped, not refused).",
    )
    grant: Amount
    loan: Amount
    total_aid: Amount


class DeMinimisCheckOut(OutModel):
    """The de minimis ceiling over the declared aid only (the funding computation counts everything)."""

    ceiling: Decimal
    window_start: date
    window_end: date
    declared_total: Decimal = Field(description="Declared aid granted in the rolling period.")
    headroom: Decimal
    requested_equivalent: Decimal = Field(description="Estimated grant + the loan's estimated gross grant equivalent.")
    allowed_equivalent: Decimal = Field(description="What the call can still give, as gross grant equivalent.")
    reduced: bool
    refused: bool


class NetworkMemberEstimate(OutModel):
    company_id: uuid.UUID
    vat_number: str
    eligible_total: Amount
    grant: Amount
    loan: Amount
    total_aid: Amount


class NetworkEstimate(OutModel):
    """The network's figures: each member's estimated aid on its own lines, and the network's totals (lead +
    members), which the call's `network` limits apply to."""

    members: list[NetworkMemberEstimate]
    eligible_total: Amount
    grant: Amount
    loan: Amount
    total_aid: Amount


class CheckResultOut(OutModel):
    submittable: bool = Field(description="No blocking problem (the window is checked at submit time).")
    problems: list[VerdictItem] = Field(
        description="Each rule that did not pass: `fail` (blocking submit) or `warning`."
    )
    breakdown: Breakdown | None
    estimate: Estimate | None
    de_minimis: DeMinimisCheckOut | None = None
    network: NetworkEstimate | None = Field(
        None,
        description="For a network application: the aid per member and "
        "the network's totals (`estimate` is the lead's).",
    )
