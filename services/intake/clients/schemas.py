"""API clients (OAuth2 client credentials) as officers and partners manage them: the secret is shown once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.schemas import ApiModel, OutModel

ClientKind = Literal["partner", "company", "officer", "auditor", "service", "expert"]
ClientStatus = Literal["active", "revoked"]
MAX_OVERLAP_SECONDS = 7 * 24 * 3600
DEFAULT_OVERLAP_SECONDS = 24 * 3600
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ApiClientCreate(ApiModel):
    kind: ClientKind = Field(
        description="Whom the client acts as. A partner creates only `partner` clients, for itself."
    )
    name: str = Field(
        min_length=2, max_length=200, examples=["CRM of the chamber"], description="A label to tell the client apart."
    )
    partner_id: uuid.UUID | None = Field(
        None,
        description="The partner a `partner` client acts for (required when an officer creates one; "
        "a partner may omit it or name itself).",
    )
    company_id: uuid.UUID | None = Field(
        None, description="The company a `company` client acts for (required for that kind, officers only)."
    )
    scopes: list[str] | None = Field(
        None, max_length=20, description="A subset of the kind's scopes; all of them when omitted."
    )


class ApiClientRotation(ApiModel):
    overlap_seconds: int = Field(
        DEFAULT_OVERLAP_SECONDS,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the replaced secret keeps working (default 24 hours, at most 7 days; 0 stops it "
        "at once). Tokens already issued with it live out their lifetime.",
    )


class ApiClientRevocation(ApiModel):
    reason: str = Field(min_length=3, max_length=500, examples=["Secret exposed in a support ticket"])


class ApiClientOut(OutModel):
    client_id: str
    name: str
    kind: ClientKind
    partner_id: uuid.UUID | None
    company_id: uuid.UUID | None
    scopes: list[str]
    status: ClientStatus
    created_at: datetime
    rotated_at: datetime | None = Field(description="When the secret was last rotated.")
    previous_secret_expires_at: datetime | None = Field(
        description="While a rotation's overlap lasts: when the last replaced secret stops working."
    )
    revoked_at: datetime | None
    revoked_reason: str | None
    last_used_at: datetime | None = Field(
        description="When a token was last issued to this client, to the minute (updated at most once a minute)."
    )
    etag: str


class ApiClientWithSecret(ApiClientOut):
    """Shown once: only the secret's hash is kept."""

    client_secret: str = Field(description="Shown only in this response; store it safely.")
