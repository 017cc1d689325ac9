"""Payments as monitoring exposes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from shared.schemas import ApiModel, OutModel

PaymentKind = Literal["advance", "balance", "recovery"]
PaymentStatus = Literal["ordered", "paid", "failed", "cancelled"]


class PaymentOut(OutModel):
    id: uuid.UUID
    project_id: uuid.UUID
    kind: PaymentKind = Field(
        description="advance and balance are paid to the company; recovery is what the company "
        "must give back after a revocation."
    )
    amount: Decimal
    iban: str | None = Field(
        description="The account paid: the project's IBAN when the order was placed (an order "
        "placed before any IBAN takes the first one applied), or when an officer "
        "re-issued it."
    )
    status: PaymentStatus
    ordered_at: datetime
    paid_at: datetime | None
    failed_reason: str | None = Field(description="Why it failed or was cancelled.")
    created_by: str
    etag: str


class PaymentOrderIn(ApiModel):
    kind: Literal["advance", "balance"] = Field(
        description="advance: the call's share of the grant, while the project is active; balance: final grant - "
        "advance, once the outcome is applied. Recoveries are ordered by revocations only."
    )


class PaymentFailedIn(ApiModel):
    reason: Annotated[str, Field(min_length=3, max_length=2000)]
