"""The budget ledger, the fundings (allocation and waiting list), and the rankings as exposed."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.contracts import funding as contract
from shared.contracts.funding import BudgetSummary, FundingStatus
from shared.schemas import Amount, ApiModel, OutModel

EntryKind = Literal["commitment", "release", "amendment"]


class BudgetEntryOut(OutModel):
    id: int = Field(description="Ledger position: entries are numbered in the order they were written.")
    application_id: uuid.UUID | None
    kind: EntryKind
    amount: Amount = Field(
        description="A commitment adds it to `committed`, a release takes it off (both "
        "positive); an amendment (`call.amended`, a new version of the call) "
        "adds it to `total` (negative only for a change before the window "
        "opened)."
    )
    reason: str
    created_by: str
    created_at: datetime


# The contract as it is: schema names are unique across the desk's documents (admissibility's computation is
# FundingComputationOut), so the one FundingOut keeps its name.
FundingOut = contract.FundingOut


class BudgetOut(BudgetSummary):
    items: list[BudgetEntryOut] = Field(description="The ledger, oldest first, one page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page of entries; null at the end.")


class AllocationOut(OutModel):
    call_id: uuid.UUID
    procedure: Literal["first_come", "ranking"]
    considered: int = Field(description="Applications allocated by this run (evaluated, not allocated before).")
    funded: int
    partially_funded: int
    waiting: int
    not_admitted: int
    held_back: int = Field(
        0,
        description="First-come: applications after the first one still undecided (protocol "
        "order), left for a later run so that none is funded ahead of it.",
    )
    committed_now: Amount = Field(description="Aid committed by this run.")
    budget: BudgetSummary


ReleaseOut = contract.ReleaseOut


class RankingEntry(OutModel):
    position: int | None = Field(
        description="Place in the funding order (protocol order or score); null for applications not admitted."
    )
    application_id: uuid.UUID
    company_id: uuid.UUID
    protocol_number: int
    score: Decimal | None
    status: FundingStatus
    requested: Amount
    granted: Amount
    grant: Amount
    loan: Amount


class RankingPage(OutModel):
    call_id: uuid.UUID
    procedure: Literal["first_come", "ranking"]
    items: list[RankingEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class PublicRankingEntry(OutModel):
    position: int | None
    protocol_number: int
    score: Decimal | None
    outcome: FundingStatus
    requested: Amount
    granted: Amount
    grant: Amount
    loan: Amount


class PublicRankingPage(OutModel):
    call_id: uuid.UUID
    procedure: Literal["first_come", "ranking"]
    items: list[PublicRankingEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class PublicBudget(OutModel):
    call_id: uuid.UUID
    total: Amount
    committed: Amount
    available: Amount
    freed: Amount
    funded: int = Field(description="Applications funded in full or in part.")
    waiting: int = Field(description="Applications on the waiting list.")
    updated_at: datetime


class RankingVersionIn(ApiModel):
    reason: str = Field(
        min_length=3, max_length=2000, description="Why a new version is published (e.g. the appeal it follows)."
    )


class PublishedEntry(OutModel):
    position: int | None = Field(description="Null for an application not admitted (excluded).")
    application_id: uuid.UUID
    company_id: uuid.UUID
    company_name: str | None = Field(None, description="As intake registered it when the version was published.")
    protocol_number: int
    score: Decimal | None
    outcome: FundingStatus
    granted: Amount


class RankingVersionOut(OutModel):
    call_id: uuid.UUID
    number: int = Field(description="1 for the first ranking, then 2, 3, ...: a version never changes.")
    reason: str
    procedure: Literal["first_come", "ranking"]
    created_at: datetime
    entries: list[PublishedEntry]


class RankingVersionSummary(OutModel):
    number: int
    reason: str
    created_at: datetime


class RankingVersionList(OutModel):
    call_id: uuid.UUID
    items: list[RankingVersionSummary]


class PublicPublishedEntry(OutModel):
    position: int | None
    company_name: str | None = Field(description="The beneficiary, as Italian graduatorie name it.")
    protocol_number: int
    score: Decimal | None
    outcome: FundingStatus = Field(description="funded, partially funded, waiting, not admitted (excluded), ...")


class PublicRankingVersion(OutModel):
    call_id: uuid.UUID
    number: int
    reason: str
    procedure: Literal["first_come", "ranking"]
    created_at: datetime
    entries: list[PublicPublishedEntry]
