"""A funding as evaluation publishes it, and the budget release monitoring asks for
(`POST /v1/calls/{call_id}/budget/releases`, through `EvaluationClient`) when aid is revoked or reduced."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.schemas import Amount, ApiModel, OutModel, PositiveMoney

FundingStatus = Literal["funded", "partially_funded", "waiting", "not_admitted", "withdrawn", "renounced", "revoked"]


class BudgetSummary(OutModel):
    call_id: uuid.UUID
    total: Amount = Field(description="The call's endowment (rules `budget_total`), covering grant and loan.")
    committed: Amount = Field(description="Aid committed now: grant + loan of every funded application.")
    freed: Amount = Field(
        description="Aid released so far (withdrawals, renunciations, revocations, reductions),"
        " cumulative; what was freed may have been committed again."
    )
    available: Amount = Field(description="total - committed.")
    updated_at: datetime
    etag: str


class FundingOut(OutModel):
    application_id: uuid.UUID
    call_id: uuid.UUID
    status: FundingStatus
    requested: Amount = Field(description="Aid the evaluation computed: grant + loan.")
    granted: Amount = Field(description="Aid committed on the budget now (grant + loan).")
    grant: Amount
    loan: Amount
    partial: bool
    protocol_number: int
    score: Decimal | None
    updated_at: datetime
    etag: str


class ReleaseIn(ApiModel):
    application_id: uuid.UUID
    amount: PositiveMoney = Field(
        description="Aid to release (grant + loan); the whole granted aid is a revocation, less is a reduction."
    )
    reason: str = Field(min_length=3, max_length=2000)


class ReleaseOut(OutModel):
    application_id: uuid.UUID
    released: Amount
    funding: FundingOut
    granted_from_waiting_list: list[uuid.UUID] = Field(
        description="Applications funded by the scorrimento the release triggered, in order."
    )
    budget: BudgetSummary
