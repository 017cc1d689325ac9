"""The call as intake publishes it (`GET /v1/calls/{id}` and its rules versions): what evaluation and
monitoring read through `IntakeClient` to apply the rules of the call an application was submitted under."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.domain.call_rules import CallRules
from shared.schemas import OutModel


class WindowOut(OutModel):
    opens_at: datetime
    closes_at: datetime


class CallOut(OutModel):
    id: uuid.UUID
    code: str
    title: str
    procedure: str
    current_version: int
    budget_total: Decimal
    window: WindowOut = Field(description="The window published in the rules document.")
    effective_window: WindowOut = Field(description="The window the server enforces (differs only in a local demo).")
    demo_window: bool = Field(description="True when a local demo has opened its copy of the call now.")
    status: Literal["upcoming", "open", "closed"]
    etag: str


class CallDetail(CallOut):
    rules: CallRules


class DecreeRef(OutModel):
    number: str
    date: dt.date


class CallVersionOut(OutModel):
    call_id: uuid.UUID
    version: int
    reason: str | None
    decree: DecreeRef | None = None
    created_at: datetime
    rules: CallRules
