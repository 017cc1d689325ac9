"""Items of monitoring's work queues."""

from __future__ import annotations

from pydantic import Field

from services.monitoring.payments.schemas import PaymentOut


class PaymentToOrderOut(PaymentOut):
    awaiting_confirmation: bool = Field(
        description="True while the order waits for a second officer's confirmation "
        "(`POST /v1/payments/{id}/confirm`); false once it is ready for the treasury file (`/v1/payments/export.csv`)."
    )
