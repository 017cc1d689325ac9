"""The received applications as evaluation exposes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from shared.schemas import OutModel

ReceivedStatus = Literal["received", "withdrawn"]


class ReceivedApplicationOut(OutModel):
    id: uuid.UUID = Field(description="The application's id at intake.")
    call_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    submitted_at: datetime
    status: ReceivedStatus
    withdrawal_reason: str | None
    received_at: datetime
    updated_at: datetime
    etag: str


class ReceivedApplicationDetail(ReceivedApplicationOut):
    snapshot: dict[str, Any] = Field(
        description="The application as intake returned it when it was received (intake's ApplicationOut)."
    )
