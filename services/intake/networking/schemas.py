"""Networking with international operators: request and response bodies."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from services.intake.companies.schemas import AtecoCode
from shared.schemas import Amount, ApiModel, CountryCode, OutModel, PositiveMoney

OperatorKind = Literal["buyer", "distributor", "importer"]
B2bEventKind = Literal["incoming_mission", "virtual_matchmaking"]
MeetingStatus = Literal["proposed", "confirmed", "withdrawn"]
MeetingOrigin = Literal["planned", "manual"]
Outcome = Literal["no_follow_up", "lead", "offer", "contract"]
ParticipationStatus = Literal["active", "withdrawn"]
Rank = Annotated[int, Field(ge=1, le=100, description="1 = first choice.")]


class OperatorIn(ApiModel):
    """A foreign operator, as an officer registers it."""

    name: str = Field(min_length=2, max_length=200)
    kind: OperatorKind
    country: CountryCode
    sectors: list[AtecoCode] = Field(default_factory=list, max_length=20, description="ATECO codes it buys in.")
    interests: list[Annotated[str, Field(min_length=2, max_length=200)]] = Field(
        default_factory=list, max_length=20, examples=[["macchine per il packaging"]]
    )


class OperatorOut(OutModel):
    id: uuid.UUID
    name: str
    kind: OperatorKind
    country: str
    sectors: list[str]
    interests: list[str]
    created_at: datetime
    etag: str


class SlotIn(ApiModel):
    starts_at: AwareDatetime = Field(description="With its offset; a year from 2000 to 2100.")
    ends_at: AwareDatetime = Field(description="With its offset; after `starts_at`.")
    capacity: int = Field(ge=1, le=500, description="Parallel tables: meetings the slot holds at once.")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _plausible_year(cls, v: datetime) -> datetime:
        # also keeps the conversion to UTC within the calendar (year 1 at +01:00 would fall before it)
        if not 2000 <= v.year <= 2100:
            raise PydanticCustomError("year_out_of_range", "The year must be between 2000 and 2100")
        return v


class SlotOut(OutModel):
    index: int = Field(description="Position of the slot in time order, from 0: what meetings name.")
    starts_at: datetime
    ends_at: datetime
    capacity: int
    taken: int = Field(description="Live meetings (proposed or confirmed) in the slot.")


class B2bEventIn(ApiModel):
    """A B2B event, as an officer publishes it (an event already held may be recorded after the fact)."""

    title: str = Field(min_length=3, max_length=200)
    kind: B2bEventKind
    slots: list[SlotIn] = Field(min_length=1, max_length=200, description="Non-overlapping time slots.")
    operator_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=500, description="The operators taking part (registered operators)."
    )

    @model_validator(mode="after")
    def _slots_in_order(self) -> B2bEventIn:
        ordered = sorted(self.slots, key=lambda s: s.starts_at)
        for s in ordered:
            if s.ends_at <= s.starts_at:
                raise PydanticCustomError("dates_out_of_order", "A slot ends before or when it starts")
        for a, b in itertools.pairwise(ordered):
            if b.starts_at < a.ends_at:
                raise PydanticCustomError("slots_overlap", "Two slots overlap")
        if len(set(self.operator_ids)) != len(self.operator_ids):
            raise PydanticCustomError("operators_repeated", "An operator is listed twice")
        return self


class B2bEventOperatorOut(OutModel):
    operator_id: uuid.UUID
    status: ParticipationStatus


class B2bEventOut(OutModel):
    id: uuid.UUID
    title: str
    kind: B2bEventKind
    starts_at: datetime = Field(description="The first slot's start.")
    ends_at: datetime = Field(description="The last slot's end: outcomes are recorded after it.")
    slots: list[SlotOut]
    operators: list[B2bEventOperatorOut]
    created_at: datetime


class B2bInterestIn(ApiModel):
    company_id: uuid.UUID = Field(description="A company within your reach.")
    operator_id: uuid.UUID = Field(description="An operator taking part in the event.")
    rank: Rank


class B2bInterestOut(OutModel):
    id: uuid.UUID
    event_id: uuid.UUID
    company_id: uuid.UUID
    operator_id: uuid.UUID
    rank: int
    status: ParticipationStatus
    created_at: datetime


class OperatorPreferenceIn(ApiModel):
    operator_id: uuid.UUID = Field(description="An operator taking part in the event.")
    company_id: uuid.UUID
    rank: Rank


class OperatorPreferenceOut(OutModel):
    event_id: uuid.UUID
    operator_id: uuid.UUID
    company_id: uuid.UUID
    rank: int


class B2bWithdrawalIn(ApiModel):
    """Exactly one of the two: a company (within your reach) or, for officers, an operator."""

    company_id: uuid.UUID | None = None
    operator_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> B2bWithdrawalIn:
        if (self.company_id is None) == (self.operator_id is None):
            raise PydanticCustomError("one_of_required", "Name either company_id or operator_id")
        return self


class MeetingIn(ApiModel):
    company_id: uuid.UUID
    operator_id: uuid.UUID
    slot: int = Field(ge=0, le=199, description="The slot's index.")


class MeetingOut(OutModel):
    id: uuid.UUID
    event_id: uuid.UUID
    company_id: uuid.UUID
    operator_id: uuid.UUID
    slot: int
    starts_at: datetime
    ends_at: datetime
    status: MeetingStatus = Field(
        description="`proposed` by the agenda or an officer; `confirmed` by an officer or a participant; "
        "`withdrawn` when the company or the operator pulled out."
    )
    origin: MeetingOrigin
    confirmed_at: datetime | None
    outcome: Outcome | None
    contract_value: Amount | None
    market: str | None
    outcome_recorded_at: datetime | None
    etag: str


class B2bWithdrawalOut(OutModel):
    event_id: uuid.UUID
    withdrawn_meetings: list[MeetingOut] = Field(description="The meetings it freed (now `withdrawn`).")


class B2bAgendaOut(OutModel):
    event_id: uuid.UUID
    added: list[MeetingOut] = Field(description="The meetings this planning added (`proposed`).")
    meetings: list[MeetingOut] = Field(description="Every live meeting of the event, by slot.")


class MeetingOutcomeIn(ApiModel):
    outcome: Outcome
    contract_value: PositiveMoney | None = Field(None, description="Required for a contract; refused otherwise.")
    market: CountryCode | None = Field(None, description="Required for a contract; refused otherwise.")

    @model_validator(mode="after")
    def _contract_terms(self) -> MeetingOutcomeIn:
        if self.outcome == "contract" and (self.contract_value is None or self.market is None):
            raise PydanticCustomError("contract_terms_required", "A contract needs contract_value and market")
        if self.outcome != "contract" and (self.contract_value is not None or self.market is not None):
            raise PydanticCustomError("contract_terms_not_allowed", "Only a contract has a value and a market")
        return self
