"""The inbox's acknowledgement; what it receives is the catalogue's envelope (the contract)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.events.catalogue import Envelope
from shared.schemas import OutModel

InboundEvent = Envelope


class InboxAck(OutModel):
    event_id: uuid.UUID
    status: Literal["processed", "duplicate", "ignored"] = Field(
        description="processed: applied now; duplicate: this event id was already received, nothing changed; "
                    "ignored: an event type monitoring does not consume (recorded, 202).")
    application_id: uuid.UUID | None = None
