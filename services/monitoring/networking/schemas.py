"""Networking results: a project's B2B entry and the B2B statistics."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared.schemas import Amount, OutModel


class MarketContracts(OutModel):
    market: str = Field(description="ISO 3166-1 alpha-2.")
    contracts: int
    contract_value: Amount


class B2bResults(OutModel):
    """The outcomes of the company's B2B meetings, counted for its project."""

    meetings: int = Field(description="Meetings with an outcome recorded.")
    no_follow_up: int
    leads: int
    offers: int
    contracts: int
    contract_value: Amount = Field(description="Sum of the contracts' values, euro.")
    by_market: list[MarketContracts] = Field(description="Contracts and their value per market, by market code.")


class B2bGroup(OutModel):
    meetings: int
    no_follow_up: int
    leads: int
    offers: int
    contracts: int
    contract_value: Amount


class B2bEventGroup(B2bGroup):
    event_id: uuid.UUID
    event_title: str


class B2bMarketGroup(B2bGroup):
    market: str = Field(
        description="The contract's market (ISO 3166-1 alpha-2); for other outcomes the operator's country."
    )


class B2bOutcomeGroup(OutModel):
    outcome: Literal["no_follow_up", "lead", "offer", "contract"]
    meetings: int
    contract_value: Amount


class B2bStatsOut(OutModel):
    by_event: list[B2bEventGroup]
    by_market: list[B2bMarketGroup]
    by_outcome: list[B2bOutcomeGroup]
