"""Training catalogue and enrolments: request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.schemas import ApiModel, OutModel

Topic = Literal[
    "customs", "compliance", "logistics", "ip_protection", "distribution_networks", "digital_export", "other"
]
TrainingFormat = Literal["training", "mentoring"]
EnrolmentStatus = Literal["enrolled", "waiting", "cancelled"]

# Deliberately strict and simple (email-validator is not a dependency): dot-atom local part, a domain of
# LDH labels and an alphabetic top-level domain. Quoted local parts and IP literals are refused.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

# Addresses are compared case-insensitively: one person is one participant whatever the capitals.
Email = Annotated[
    str, Field(max_length=254, pattern=EMAIL_PATTERN, examples=["m.rossi@example.it"]), AfterValidator(str.lower)
]


class TrainingIn(ApiModel):
    """A training or mentoring session, as an officer publishes or replaces it."""

    title: str = Field(min_length=3, max_length=200)
    topic: Topic
    format: TrainingFormat
    description: str = Field(min_length=1, max_length=5000)
    starts_at: AwareDatetime = Field(description="Start instant with its offset; must be in the future.")
    ends_at: AwareDatetime = Field(description="End instant with its offset; after `starts_at`.")
    location: str | None = Field(None, min_length=2, max_length=500, description="Venue; null for online sessions.")
    capacity: int = Field(ge=1, le=1000, description="Places available.")
    min_attendance_share: Decimal = Field(
        Decimal("0.75"),
        gt=0,
        le=1,
        max_digits=3,
        decimal_places=2,
        description="Share of the session's hours a participant must attend to obtain a certificate of "
        "attendance (0.75: three quarters).",
    )

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        starts = info.data.get("starts_at")
        if starts is not None and v <= starts:
            raise PydanticCustomError("dates_out_of_order", "The end precedes or equals the start")
        return v


class TrainingOut(OutModel):
    id: uuid.UUID
    title: str
    topic: Topic
    format: TrainingFormat
    description: str
    starts_at: datetime
    ends_at: datetime
    location: str | None
    online: bool = Field(description="True when the session has no venue.")
    capacity: int
    enrolled: int = Field(description="Live enrolments (a counter; it does not change the ETag).")
    places_left: int
    hours: Decimal = Field(description="The session's length in hours (from `starts_at` to `ends_at`).")
    min_attendance_share: Decimal
    created_at: datetime
    etag: str = Field(description="Versions the session's definition, the one PUT changes.")


class EnrolmentIn(ApiModel):
    company_id: uuid.UUID = Field(description="The company whose staff member attends; must be within your reach.")
    participant_name: str = Field(min_length=2, max_length=200)
    participant_email: Email
    participant_role: str | None = Field(None, min_length=2, max_length=200, examples=["Export manager"])


class EnrolmentOut(OutModel):
    id: uuid.UUID
    training_id: uuid.UUID
    company_id: uuid.UUID
    participant_name: str
    participant_email: str
    participant_role: str | None
    status: EnrolmentStatus = Field(
        description="`enrolled` holds a place; `waiting` is on the waiting list (the session was full) and is "
        "promoted to `enrolled` automatically, in order of arrival, when a place frees; `cancelled`."
    )
    queue_number: int | None = Field(
        description="Arrival number on the session's waiting list (the lowest waiting number is promoted "
        "first); null for an enrolment that got a place at once."
    )
    promoted_at: datetime | None = Field(description="When the enrolment left the waiting list for a place.")
    created_at: datetime
    cancelled_at: datetime | None
    etag: str


class AttendanceIn(ApiModel):
    hours: Decimal = Field(
        ge=0,
        max_digits=6,
        decimal_places=2,
        description="Hours the participant attended; at most the session's hours.",
        examples=["2.50"],
    )


class AttendanceOut(OutModel):
    enrolment_id: uuid.UUID
    training_id: uuid.UUID
    participant_name: str
    hours: Decimal
    session_hours: Decimal
    required_hours: Decimal = Field(description="Hours needed for a certificate: the session's hours times its share.")
    certificate_available: bool
    recorded_at: datetime
    etag: str
