"""Concession decrees and their decisions, as exposed."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from shared.schemas import ApiModel, OutModel

Outcome = Literal["funded", "partially_funded", "waiting", "not_admitted"]
DecisionStatus = Literal["draft", "issued", "accepted", "renounced"]

#: CUP (Codice Unico di Progetto): a letter, two digits, a letter, then eleven digits, e.g. E14D23000010007.
CUP_PATTERN = r"^[A-Z][0-9]{2}[A-Z][0-9]{11}$"
#: COR (Codice Concessione RNA): the numeric code the national state-aid register gives each aid granted.
COR_PATTERN = r"^[0-9]{1,32}$"


class DecreeCreate(ApiModel):
    call_id: uuid.UUID
    number: Annotated[str, Field(min_length=1, max_length=40, examples=["12345/2026"])]
    decree_date: date


class DecreeOut(OutModel):
    id: uuid.UUID
    call_id: uuid.UUID
    number: str
    decree_date: date
    status: Literal["open", "closed"]
    decisions: int = Field(description="How many decisions the decree holds.")
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    etag: str


class DecisionsCreate(ApiModel):
    application_ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=1000)
    all_pending: bool = Field(
        False,
        description="Every application of the call whose allocation has no decision "
        "yet, or changed since its last decision (e.g. funded from the "
        "waiting list).",
    )

    @model_validator(mode="after")
    def _one_of(self) -> DecisionsCreate:
        if (self.application_ids is None) == (not self.all_pending):
            raise PydanticCustomError("decision_selection", "Give either application_ids or all_pending: true")
        return self


class Reason(OutModel):
    code: str | None
    article: str | None = None
    detail_it: str | None = None
    detail_en: str | None = None


class DecisionOut(OutModel):
    id: uuid.UUID
    decree_id: uuid.UUID
    decree_number: str
    decree_date: date
    call_id: uuid.UUID
    application_id: uuid.UUID
    company_id: uuid.UUID
    outcome: Outcome
    reasons: list[dict[str, Any]] = Field(
        description="Why: every failed check for `not_admitted`; budget reasons for `waiting` and `partially_funded`."
    )
    grant: Decimal
    loan: Decimal
    cup: str | None
    cor: str | None
    status: DecisionStatus = Field(
        description="draft while the decree is open; issued when it closes; then accepted or renounced by the company."
    )
    accepted_at: datetime | None
    renounced_at: datetime | None
    created_at: datetime
    etag: str


class DecisionBatchOut(OutModel):
    decree: DecreeOut
    created: list[DecisionOut]


class CupIn(ApiModel):
    cup: str = Field(
        pattern=CUP_PATTERN, description="Codice Unico di Progetto, 15 characters.", examples=["E14D23000010007"]
    )


class CorIn(ApiModel):
    cor: str = Field(pattern=COR_PATTERN, description="Codice Concessione RNA (COR).", examples=["1234567"])


class RenounceIn(ApiModel):
    reason: str = Field(min_length=3, max_length=2000)
