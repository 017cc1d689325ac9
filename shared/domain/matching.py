"""B2B matchmaking: the agenda of a networking event built from mutual preferences. Pure, no I/O.

The algorithm (also in the README, "Networking with international operators"):

1. **Candidates.** A pair (company, operator) is a candidate when the company registered interest in the
   operator with a rank (1 = first choice), both still take part, and the pair has no live meeting yet. The
   operator's rank for the company (registered by an officer) counts when given; when not, the operator ranks
   the company `UNRANKED` (after every explicit rank).
2. **Score.** A pair's score is the sum of the two ranks: the lower, the more mutual. Ties are broken by a
   stable hash of the two ids (SHA-256 of `"company|operator"`), then by the ids themselves, so the order
   never depends on the input's order, the database's or the Python process's.
3. **Round-robin fairness.** Meetings are assigned in rounds: in round k a company with fewer than k meetings
   (kept ones included) may get one more, so every company gets its k-th meeting before anyone gets its
   (k+1)-th. Within a round, candidates are taken in score order; a company takes its best candidate that
   fits, and only one per round.
4. **Placement.** A candidate goes to the earliest slot (in the slots' order) where the company and the
   operator are both free and the slot has a table left (its capacity = parallel tables). No company or
   operator is ever in two meetings of one slot.
5. **Re-planning.** Meetings already in the agenda (`kept`) stay exactly where they are; the algorithm only
   fills the places left free (e.g. by a withdrawal, whose meetings the caller leaves out of `kept`).

Rounds stop when one assigns nothing and no company with more kept meetings is still waiting for its round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: The rank an operator gives a company it has not ranked: after any explicit rank.
UNRANKED = 1000
#: The rank an operator's interests give a company of a sector it buys in, without an explicit rank.
SECTOR_MATCH = 101


@dataclass(frozen=True, order=True)
class Meeting:
    slot: int
    company: str
    operator: str


@dataclass(frozen=True)
class Slot:
    index: int
    capacity: int


def tie_break(company: str, operator: str) -> str:
    """The stable hash that orders pairs of equal score."""
    return hashlib.sha256(f"{company}|{operator}".encode()).hexdigest()


def covers(sector: str, ateco_code: str) -> bool:
    """Whether an ATECO sector covers a company's code: the same code or a parent of it (ATECO codes nest by
    prefix: division 28, group 28.2, class 28.29, category 28.29.3, subcategory 28.29.30)."""
    return ateco_code.startswith(sector)


def with_sector_interests(
    explicit: Mapping[str, Mapping[str, int]],
    operator_sectors: Mapping[str, Sequence[str]],
    company_ateco: Mapping[str, str],
) -> dict[str, dict[str, int]]:
    """The operators' ranks: the explicit ones, and `SECTOR_MATCH` for each company (of `company_ateco`) an
    operator ranked not but whose code its sectors cover."""
    out = {o: dict(ranks) for o, ranks in explicit.items()}
    for o, sectors in operator_sectors.items():
        mine = out.setdefault(o, {})
        for c, code in company_ateco.items():
            if c not in mine and any(covers(s, code) for s in sectors):
                mine[c] = SECTOR_MATCH
    return {o: ranks for o, ranks in out.items() if ranks}


def score(company_rank: int, operator_rank: int | None) -> int:
    return company_rank + (UNRANKED if operator_rank is None else operator_rank)


def plan_agenda(
    *,
    slots: Sequence[Slot],
    company_prefs: Mapping[str, Mapping[str, int]],
    operator_prefs: Mapping[str, Mapping[str, int]],
    kept: Iterable[Meeting] = (),
    companies: Iterable[str] | None = None,
    operators: Iterable[str] | None = None,
) -> list[Meeting]:
    """The new meetings to add to `kept` (sorted by slot, company, operator).

    `company_prefs[c][o]` is the rank company c gave operator o; `operator_prefs[o][c]` the rank operator o
    gave company c. `companies` / `operators`, when given, are those still taking part: preferences naming
    anyone else are ignored. `kept` meetings are taken as they are (they occupy their places)."""
    allowed_c = set(company_prefs) if companies is None else set(companies)
    allowed_o = None if operators is None else set(operators)
    order = sorted(slots, key=lambda s: s.index)
    load = {s.index: 0 for s in order}
    busy_c: set[tuple[str, int]] = set()
    busy_o: set[tuple[str, int]] = set()
    met: set[tuple[str, str]] = set()
    count: dict[str, int] = {c: 0 for c in allowed_c}
    for m in kept:
        load[m.slot] = load.get(m.slot, 0) + 1
        busy_c.add((m.company, m.slot))
        busy_o.add((m.operator, m.slot))
        met.add((m.company, m.operator))
        if m.company in count:
            count[m.company] += 1

    candidates = sorted(
        (
            (score(rank, operator_prefs.get(o, {}).get(c)), tie_break(c, o), c, o)
            for c, ranks in company_prefs.items()
            if c in allowed_c
            for o, rank in ranks.items()
            if (allowed_o is None or o in allowed_o) and (c, o) not in met
        )
    )
    placed: list[Meeting] = []
    pending = list(candidates)
    top = max(count.values(), default=0)
    k = 1
    while pending:
        given: set[str] = set()
        left = []
        for cand in pending:
            _score, _tie, c, o = cand
            if c in given or count[c] >= k:
                left.append(cand)
                continue
            slot = next(
                (
                    s.index
                    for s in order
                    if load[s.index] < s.capacity and (c, s.index) not in busy_c and (o, s.index) not in busy_o
                ),
                None,
            )
            if slot is None:
                continue  # no place for this pair now, nor later: places only fill up
            load[slot] += 1
            busy_c.add((c, slot))
            busy_o.add((o, slot))
            count[c] += 1
            given.add(c)
            placed.append(Meeting(slot, c, o))
        pending = left
        if not given and k > top:
            break
        k += 1
    return sorted(placed)
