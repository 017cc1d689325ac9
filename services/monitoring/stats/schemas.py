"""Statistics as programs read them (JSON), the public view, and the open data's rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from shared.schemas import OutModel

GroupBy = Literal["province", "ateco_section", "size_class", "market", "continent", "day", "hour"]


class StatsFigures(OutModel):
    applications: int = Field(description="Applications submitted (withdrawn ones included).")
    admitted: int = Field(description="Applications found admissible.")
    funded: int = Field(description="Applications funded (the company accepted the decision).")
    committed: Decimal = Field(description="Aid (grant + loan) committed, net of reductions and revocations.")
    paid: Decimal = Field(description="Aid paid, net of recoveries.")
    revoked: int = Field(description="Funded projects whose aid was revoked.")
    export_growth_beneficiaries: int = Field(
        description="Funded beneficiaries with both a baseline and a reported foreign turnover share."
    )
    export_growth_points: Decimal | None = Field(
        description="Mean change of their foreign turnover share (latest - baseline), in percentage points, two "
        "decimals half-even; null when none reported."
    )


class Group(StatsFigures):
    key: str | None = Field(
        description="The group: province code, ATECO section, size class, market (ISO alpha-2), "
        "continent (AF AN AS EU NA OC SA), day (YYYY-MM-DD) or hour (ISO instant, "
        "Europe/Rome offset); null: not known."
    )
    label: str | None = Field(description="A name for people (province, country, continent).")


class CallBudget(OutModel):
    id: uuid.UUID
    code: str
    title: str
    budget: Decimal = Field(description="The call's endowment (its rules in force).")
    committed: Decimal = Field(description="Aid committed on the call (sum over its applications).")
    available: Decimal = Field(description="budget - committed.")
    committed_percent: Decimal = Field(description="committed / budget x 100, two decimals, half-even.")


class StatsOut(OutModel):
    call: CallBudget
    group_by: GroupBy | None
    totals: StatsFigures
    groups: list[Group] = Field(
        description="Every group with at least one application (not paged: a handful of "
        "provinces, sections, classes or markets, or the hours of the window). "
        "By market or continent an application counts in each it targets, so "
        "the groups add up to more than the totals."
    )
    generated_at: datetime


class PublicStatsOut(StatsOut):
    suppressed_groups: int = Field(
        description="Groups left out because they (or, to prevent recovering them from "
        "the totals, the smallest others with them) hold fewer than "
        "`min_group_size` applications."
    )
    min_group_size: int
