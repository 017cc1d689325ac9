"""Partners (chambers of commerce, trade associations, agencies) and the API clients issued to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.schemas import ApiModel, FiscalCode, OutModel

PartnerKind = Literal["chamber_of_commerce", "trade_association", "agency", "other"]
# Deliberately loose: deliverability is the partner's business; this only refuses obvious garbage.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class PartnerCreate(ApiModel):
    name: str = Field(min_length=2, max_length=300, examples=["Camera di Commercio di Milano Monza Brianza Lodi"])
    kind: PartnerKind
    fiscal_code: FiscalCode = Field(description="Codice fiscale of the entity (11 digits).")
    email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN, examples=["export@example.it"])


class PartnerOut(OutModel):
    id: uuid.UUID
    name: str
    kind: PartnerKind
    fiscal_code: str
    email: str | None
    created_at: datetime
    etag: str


class ClientCreate(ApiModel):
    name: str | None = Field(
        None, min_length=2, max_length=200, description="A label for the client (defaults to the holder's name)."
    )


class ClientCredentials(OutModel):
    """Shown once: only the secret's hash is kept."""

    client_id: str
    client_secret: str = Field(description="Shown only in this response; store it safely.")
    kind: Literal["partner", "company"]
    scopes: list[str]
