"""Expert accompaniment: who may accompany a company, how well each expert fits, and the hour limits.

Pure rules, no I/O. The fit score (0-100, two decimals, rounded half up) adds four parts:

| part | points | how |
|---|---|---|
| markets | 40 | 40 x (the request's markets the expert covers) / (the request's markets); 0 when it names none |
| sector | 25 | 25 when one of the expert's ATECO codes is a prefix of the company's ("28" covers "28.29.30") |
| language | 15 | 15 when the expert speaks the preferred language |
| availability | 20 | 20 x (hours left this month) / (hours per month) |

Proposals are the experts eligible for the request, best score first (ties: more hours left, then fiscal code).
An expert is eligible when accredited on the day, competent for the phase, with hours left this month, not
among those who declined the engagement, and free of conflicts. A conflict is an expert whose fiscal code or
VAT number appears among the suppliers of the application's planned expense lines (`supplier`), is the
consultant declared for the plan's drafting, or is named in the request's declared conflicts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

Phase = str  # "design", "monitoring", "reporting"
PHASES: tuple[Phase, ...] = ("design", "monitoring", "reporting")

MARKET_POINTS = Decimal(40)
SECTOR_POINTS = Decimal(25)
LANGUAGE_POINTS = Decimal(15)
AVAILABILITY_POINTS = Decimal(20)
_CENT = Decimal("0.01")
_CODE = re.compile(r"[A-Z0-9]{11,16}")

# conflict reasons, as the API names them
SUPPLIER = "supplier"
DRAFTING_CONSULTANT = "drafting_consultant"
DECLARED = "declared_conflict"


@dataclass(frozen=True, slots=True)
class ExpertFacts:
    id: uuid.UUID
    fiscal_code: str
    vat_number: str | None
    markets: tuple[str, ...]
    sectors: tuple[str, ...]
    languages: tuple[str, ...]
    phases: tuple[str, ...]
    hours_per_month: Decimal
    hours_this_month: Decimal
    accredited_from: date
    accredited_to: date | None


@dataclass(frozen=True, slots=True)
class Need:
    """What the company asks for, and what the desk knows of its file."""

    phase: Phase
    markets: tuple[str, ...]
    sector: str
    language: str
    suppliers: tuple[str, ...]
    drafting_consultant: str | None
    declared_conflicts: tuple[str, ...]
    declined_by: frozenset[uuid.UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class Fit:
    expert_id: uuid.UUID
    score: Decimal
    market_points: Decimal
    sector_points: Decimal
    language_points: Decimal
    availability_points: Decimal
    markets_covered: tuple[str, ...]
    hours_left: Decimal


def hours_left(e: ExpertFacts) -> Decimal:
    return max(e.hours_per_month - e.hours_this_month, Decimal(0))


def accredited_on(e: ExpertFacts, day: date) -> bool:
    return e.accredited_from <= day and (e.accredited_to is None or day <= e.accredited_to)


def _codes(e: ExpertFacts) -> set[str]:
    codes = {e.fiscal_code.upper()}
    if e.vat_number:
        codes.add(e.vat_number.upper())
    return codes


def _named(text: str) -> set[str]:
    """The fiscal codes and VAT numbers a free text names (an `IT` prefix on a VAT number is dropped)."""
    found = set()
    for token in _CODE.findall(text.upper()):
        found.add(token)
        if token.startswith("IT") and len(token) == 13:
            found.add(token[2:])
    return found


def conflicts(e: ExpertFacts, need: Need) -> list[str]:
    """Why the expert may not accompany this company (empty: no conflict)."""
    codes = _codes(e)
    reasons = []
    if any(codes & _named(s) for s in need.suppliers):
        reasons.append(SUPPLIER)
    if need.drafting_consultant is not None and need.drafting_consultant.upper() in codes:
        reasons.append(DRAFTING_CONSULTANT)
    if codes & {c.upper() for c in need.declared_conflicts}:
        reasons.append(DECLARED)
    return reasons


def sector_covers(expert_sector: str, company_sector: str) -> bool:
    """ "28" covers "28.29.30"; "28.2" covers "28.29"; "28.29.30" covers only itself."""
    digits_e = expert_sector.replace(".", "")
    digits_c = company_sector.replace(".", "")
    return digits_c.startswith(digits_e)


def _q(d: Decimal) -> Decimal:
    return d.quantize(_CENT, ROUND_HALF_UP)


def fit(e: ExpertFacts, need: Need) -> Fit:
    covered = tuple(m for m in need.markets if m in e.markets)
    market = (MARKET_POINTS * len(covered) / len(need.markets)) if need.markets else Decimal(0)
    sector = SECTOR_POINTS if any(sector_covers(s, need.sector) for s in e.sectors) else Decimal(0)
    language = LANGUAGE_POINTS if need.language in e.languages else Decimal(0)
    left = hours_left(e)
    availability = AVAILABILITY_POINTS * left / e.hours_per_month
    return Fit(
        expert_id=e.id,
        score=_q(market + sector + language + availability),
        market_points=_q(market),
        sector_points=_q(sector),
        language_points=_q(language),
        availability_points=_q(availability),
        markets_covered=covered,
        hours_left=left,
    )


def eligible(e: ExpertFacts, need: Need, today: date) -> bool:
    return (
        accredited_on(e, today)
        and need.phase in e.phases
        and hours_left(e) > 0
        and e.id not in need.declined_by
        and not conflicts(e, need)
    )


def proposals(experts: list[ExpertFacts], need: Need, today: date) -> list[tuple[ExpertFacts, Fit]]:
    ranked = [(e, fit(e, need)) for e in experts if eligible(e, need, today)]
    ranked.sort(key=lambda ef: (-ef[1].score, -ef[1].hours_left, ef[0].fiscal_code))
    return ranked


def month_of(day: date) -> tuple[date, date]:
    """The first day of `day`'s month and the first day of the next."""
    first = day.replace(day=1)
    nxt = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return first, nxt
