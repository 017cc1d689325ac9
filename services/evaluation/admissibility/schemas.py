"""The evaluation as evaluation exposes it: admissibility checks and cuts, the funding computation and
the de minimis computation, each explanation in the negotiated language and in both."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from services.evaluation.merit.schemas import MeritVerdict
from shared.schemas import Amount, ApiModel, OutModel, VerdictItem

CheckOutcome = Literal["pass", "fail", "needs_review", "deferred"]
Stage = Literal["awaiting_signature", "admissible", "needs_review", "not_admissible", "evaluated"]
AdmissibilityVerdict = Literal["admissible", "needs_review", "not_admissible"]


class Explained(OutModel):
    detail: str = Field(description="In the language negotiated with Accept-Language (Italian by default).")
    detail_it: str
    detail_en: str


class ReviewOut(OutModel):
    outcome: Literal["pass", "fail"]
    note: str
    reviewer: str
    reviewed_at: datetime


class AdmissibilityCheckOut(VerdictItem):
    """The verdict item, with the review trail: `path` says whose check (null for the applicant, the lead of a
    network; /network/members/{i} for a network member; /network for the network's limits); `blocking` is a
    fail (the application is not admissible); deferred: the credit-scoring class is assigned in the merit
    evaluation and applied by the funding computation."""

    outcome: CheckOutcome = Field(
        description="pass, fail, needs_review (an officer decides), or deferred: the credit-scoring class is "
        "assigned in the merit evaluation and applied by the funding computation."
    )
    automatic_outcome: CheckOutcome = Field(description="The outcome of the automatic run, before any review.")
    review: ReviewOut | None = None


class AdmissibilityCutOut(Explained):
    path: str = Field(description="/expense_lines/{i} for a line, /expense_lines for a category's excess over its cap.")
    category: str
    requested: Amount
    allowed: Amount
    reasons: list[str]


class StepOut(Explained):
    code: str
    amount: Amount | None = None


class FundingInstallmentOut(OutModel):
    number: int
    month: int = Field(description="Months from the disbursement.")
    interest: Decimal
    principal: Decimal
    payment: Decimal
    outstanding: Decimal


class FundingComputationOut(OutModel):
    computed_on: date = Field(description="The computation (and de minimis grant) date, in the call's timezone.")
    refused: bool
    reason: str | None = Field(None, description="de_minimis_ceiling when the aid cannot be granted.")
    credit_class: str
    loan_cap_share: Decimal
    loan_years: int
    grace_months: int
    annual_rate: Decimal
    reference_rate: Decimal
    gge_per_euro: Decimal = Field(description="Gross grant equivalent of one euro of the loan.")
    eligible_total: Amount
    requested_grant: Decimal = Field(description="The call's grant before the de minimis ceiling.")
    requested_loan: Decimal
    grant: Amount
    loan: Amount
    loan_gge: Amount
    total_aid: Amount
    installments: list[FundingInstallmentOut]
    steps: list[StepOut]


class DeMinimisOut(OutModel):
    grant_date: date
    members: list[str] = Field(
        description="VAT numbers of the single undertaking (the company and its linked enterprises)."
    )
    ceiling: Decimal
    window_start: date
    window_end: date
    prior_total: Decimal
    headroom: Decimal
    requested_equivalent: Decimal
    allowed_equivalent: Decimal
    reduced: bool
    refused: bool
    steps: list[StepOut]


class MemberDeMinimisOut(OutModel):
    members: list[str] = Field(description="VAT numbers of the member's single undertaking.")
    prior_total: Decimal
    headroom: Decimal
    requested_equivalent: Decimal
    allowed_equivalent: Decimal
    reduced: bool
    refused: bool


class NetworkMemberAidOut(OutModel):
    company_id: uuid.UUID
    vat_number: str
    name: str
    eligible_total: Amount = Field(description="The member's eligible expenses after the cuts.")
    grant: Amount | None = Field(None, description="Set by the funding computation, on the member's own lines.")
    loan: Amount | None = None
    loan_gge: Amount | None = None
    total_aid: Amount | None = None
    de_minimis: MemberDeMinimisOut | None = None


class NetworkLeadAidOut(OutModel):
    company_id: uuid.UUID
    eligible_total: Amount
    grant: Amount | None = None
    loan: Amount | None = None
    loan_gge: Amount | None = None


class NetworkAidOut(OutModel):
    """A network application's aid per company: the lead's (its own lines, as `funding`) and each member's;
    the evaluation's `grant`, `loan` and `loan_gge` are the network's totals, committed on the budget."""

    name: str
    lead: NetworkLeadAidOut
    members: list[NetworkMemberAidOut]
    eligible_total: Amount = Field(description="Lead and members, after the cuts.")
    grant: Amount | None = None
    loan: Amount | None = None
    loan_gge: Amount | None = None
    total_aid: Amount | None = None


class EvaluationOut(OutModel):
    application_id: uuid.UUID
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    stage: str = Field(
        description="awaiting_signature (the call requires the form signed by the legal representative and it has "
        "not arrived yet: no admissibility verdict), admissible, needs_review, not_admissible, evaluated "
        "(funding computed)."
    )
    admissibility_verdict: str | None
    checks: list[AdmissibilityCheckOut]
    cuts: list[AdmissibilityCutOut]
    eligible_total: Amount | None = Field(description="Eligible expenses after the cuts.")
    credit_class: str | None
    score: Decimal | None = Field(
        description="The merit score. A partner or a company sees it (and `merit_verdict`) only once the call's "
        "ranking is published; null until then."
    )
    merit_verdict: MeritVerdict | None = Field(
        description="passed, failed, or third_review_needed (the first two reviews diverge) - as in `/merit`."
    )
    grant: Amount | None = Field(
        description="What the application receives: for a network, the total of the "
        "lead and its members (`network` has each one's)."
    )
    loan: Amount | None
    loan_gge: Amount | None
    funding: FundingComputationOut | None = Field(
        description="The computation; for a network, on the lead's own lines."
    )
    de_minimis: DeMinimisOut | None
    network: NetworkAidOut | None = Field(None, description="A network application: the aid per member.")
    updated_at: datetime
    etag: str


class AdmissibilityReviewIn(ApiModel):
    check_code: Annotated[str, Field(min_length=1, max_length=40, examples=["lombardy_site"])]
    path: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^/network(/members/\d+)?$")] | None = Field(
        None, description="The check's `path`: null for the applicant's own, /network/members/{i} for a member's."
    )
    outcome: Literal["pass", "fail"]
    note: Annotated[
        str, Field(min_length=3, max_length=2000, examples=["Contratto di locazione della sede di Brescia verificato."])
    ]


class FundingIn(ApiModel):
    loan_years: int | None = Field(
        None, le=100, description="Loan duration in years, within the call's bounds; default the call's maximum."
    )


class SignatureDeadlinesOut(OutModel):
    call_id: uuid.UUID
    evaluated: list[uuid.UUID] = Field(
        description="Applications evaluated now: their signing deadline passed without a signature (not "
        "admissible, `signed_form_missing`), or their signed form was accepted and its event had not arrived."
    )
    awaiting_signature: list[uuid.UUID] = Field(description="Applications still within their signing deadline.")
