"""Calls: the catalogue and its versioned rules documents."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime

from pydantic import Field

from shared.domain.call_rules import CallRules
from shared.schemas import ApiModel, OutModel


class CallCreate(ApiModel):
    rules: CallRules = Field(description="The call's rules document (version 1).")


class DecreeIn(ApiModel):
    number: str = Field(min_length=1, max_length=100, description='The decree\'s number, e.g. "Decreto n. 9012".')
    date: dt.date = Field(description="The decree's date.")


class CallVersionCreate(ApiModel):
    rules: CallRules
    reason: str = Field(min_length=3, max_length=2000, description="Why the rules change (amendment).")
    decree: DecreeIn | None = Field(
        None,
        description="The decree ordering the amendment. Required once the window has opened, when only a "
        "later `window.closes_at` and a higher `budget_total` may change.",
    )


class RegisterEntry(OutModel):
    protocol_number: int
    application_id: uuid.UUID
    submitted_at: datetime
    content_sha256: str
    receipt: dict[str, object] = Field(description="The signed receipt as issued (canonical JSON is what is hashed).")
    signature: str
    previous_hash: str
    chain_hash: str = Field(description="sha256(previous_hash || canonical_json(receipt)), hex.")


class RegisterPage(OutModel):
    call_id: uuid.UUID
    public_key_pem: str = Field(description="Ed25519 key that verifies every receipt signature.")
    genesis_hash: str
    items: list[RegisterEntry]
    next_cursor: str | None
