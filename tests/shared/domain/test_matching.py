"""The B2B agenda (shared.domain.matching): hand-worked agendas for the rules of the algorithm, and properties
over random events: nobody double-booked, no slot over its tables, kept meetings untouched, the same agenda
whatever the order of the input, and nothing left that could still fit."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.matching import (
    SECTOR_MATCH,
    UNRANKED,
    Meeting,
    Slot,
    covers,
    plan_agenda,
    score,
    tie_break,
    with_sector_interests,
)


def test_pairs_by_mutual_rank_in_the_earliest_free_slot_within_capacity():
    # scores: B-X 1+1=2, A-X 1+2=3, C-Y 1+UNRANKED=1001, A-Y 2+UNRANKED=1002, C-X 3+UNRANKED=1003
    # round 1: B-X takes slot 0 (its one table); A-X: X is busy in 0 -> slot 1; C-Y -> slot 1 (second table)
    # round 2: A-Y and C-X find slot 0 and slot 1 full: nothing more
    new = plan_agenda(
        slots=[Slot(0, 1), Slot(1, 2)],
        company_prefs={"A": {"X": 1, "Y": 2}, "B": {"X": 1}, "C": {"Y": 1, "X": 3}},
        operator_prefs={"X": {"B": 1, "A": 2}},
    )
    assert new == [Meeting(0, "B", "X"), Meeting(1, "A", "X"), Meeting(1, "C", "Y")]
    assert score(3, None) == 3 + UNRANKED


def test_every_company_gets_its_kth_meeting_before_anyone_its_k_plus_1th():
    # A's three choices all score better than B's only one, yet B's first meeting comes before A's second:
    # round 1: A-X slot 0, B-X slot 1 (X is busy in 0); round 2: A-Y slot 2; round 3: A-Z finds no slot
    new = plan_agenda(
        slots=[Slot(0, 1), Slot(1, 1), Slot(2, 1)],
        company_prefs={"A": {"X": 1, "Y": 2, "Z": 3}, "B": {"X": 2}},
        operator_prefs={},
    )
    assert new == [Meeting(0, "A", "X"), Meeting(1, "B", "X"), Meeting(2, "A", "Y")]


def test_replanning_after_a_withdrawal_keeps_every_meeting_and_fills_only_the_freed_place():
    # the first example's agenda, after B withdraws: its meeting (slot 0) is gone, the others are kept.
    # A and C already have one meeting each; round 2: A-Y takes the freed slot 0; C-X finds no place.
    kept = [Meeting(1, "A", "X"), Meeting(1, "C", "Y")]
    new = plan_agenda(
        slots=[Slot(0, 1), Slot(1, 2)],
        company_prefs={"A": {"X": 1, "Y": 2}, "C": {"Y": 1, "X": 3}},
        operator_prefs={"X": {"B": 1, "A": 2}},
        kept=kept,
    )
    assert new == [Meeting(0, "A", "Y")]


def test_withdrawn_operators_are_left_out_and_ties_follow_the_stable_hash():
    # equal scores (1 + UNRANKED): the pair with the smaller hash gets the only table
    pairs = sorted([("A", "X"), ("B", "X")], key=lambda p: tie_break(*p))
    new = plan_agenda(
        slots=[Slot(0, 1)],
        company_prefs={"A": {"X": 1, "Y": 1}, "B": {"X": 1}},
        operator_prefs={},
        operators=["X"],
    )
    assert new == [Meeting(0, *pairs[0])]


def test_an_operators_sectors_rank_the_companies_it_buys_from_after_explicit_ranks():
    assert covers("28", "28.29.30") and covers("28.29", "28.29.30") and covers("10.1", "10.11")
    assert not covers("28.1", "28.29.30") and not covers("10.11", "10.1")
    prefs = with_sector_interests(
        {"X": {"A": 3}},
        {"X": ["28"], "Y": ["10.1"], "Z": ["01"]},
        {"A": "28.29.30", "B": "28.11", "C": "10.11.00"},
    )
    # X's explicit rank for A stands; B is in its sector; Y buys C's food; Z matches nobody
    assert prefs == {"X": {"A": 3, "B": SECTOR_MATCH}, "Y": {"C": SECTOR_MATCH}}
    # one table: A and B both rank X first; X's sectors cover B only -> B (1 + 101) before A (1 + 1000)
    new = plan_agenda(
        slots=[Slot(0, 1)],
        company_prefs={"A": {"X": 1}, "B": {"X": 1}},
        operator_prefs=with_sector_interests({}, {"X": ["28.11"]}, {"A": "10.11", "B": "28.11.00"}),
    )
    assert new == [Meeting(0, "B", "X")]


# ---------------------------------------------------------------- properties

COMPANIES = [f"c{i}" for i in range(6)]
OPERATORS = [f"o{i}" for i in range(4)]


@st.composite
def events(draw: st.DrawFn) -> dict:
    slots = [Slot(i, draw(st.integers(1, 3))) for i in range(draw(st.integers(1, 4)))]
    ranks = st.integers(1, 5)
    company_prefs = {
        c: draw(st.dictionaries(st.sampled_from(OPERATORS), ranks, max_size=4))
        for c in draw(st.lists(st.sampled_from(COMPANIES), unique=True, max_size=6))
    }
    operator_prefs = {
        o: draw(st.dictionaries(st.sampled_from(COMPANIES), ranks, max_size=6))
        for o in draw(st.lists(st.sampled_from(OPERATORS), unique=True, max_size=4))
    }
    return {"slots": slots, "company_prefs": company_prefs, "operator_prefs": operator_prefs}


def _assert_valid(slots: list[Slot], meetings: list[Meeting], company_prefs: dict) -> None:
    assert len({(m.company, m.slot) for m in meetings}) == len(meetings), "a company double-booked"
    assert len({(m.operator, m.slot) for m in meetings}) == len(meetings), "an operator double-booked"
    assert len({(m.company, m.operator) for m in meetings}) == len(meetings), "a pair met twice"
    load = Counter(m.slot for m in meetings)
    assert all(load[s.index] <= s.capacity for s in slots), "a slot over its tables"
    assert all(m.operator in company_prefs.get(m.company, {}) for m in meetings)


def _nothing_left_fits(slots: list[Slot], meetings: list[Meeting], company_prefs: dict) -> None:
    load = Counter(m.slot for m in meetings)
    busy = {(m.company, m.slot) for m in meetings} | {(m.operator, m.slot) for m in meetings}
    met = {(m.company, m.operator) for m in meetings}
    for c, ranks in company_prefs.items():
        for o in ranks:
            if (c, o) in met:
                continue
            assert not any(
                load[s.index] < s.capacity and (c, s.index) not in busy and (o, s.index) not in busy for s in slots
            ), f"{c}-{o} could still meet"


@settings(max_examples=300, deadline=None)
@given(events(), st.randoms(use_true_random=False))
def test_agenda_is_valid_maximal_and_deterministic(event: dict, rnd: random.Random) -> None:
    new = plan_agenda(**event)
    _assert_valid(event["slots"], new, event["company_prefs"])
    _nothing_left_fits(event["slots"], new, event["company_prefs"])
    # the same agenda whatever the order of slots, companies, operators and their preferences
    shuffled = {
        "slots": rnd.sample(event["slots"], len(event["slots"])),
        "company_prefs": {
            c: dict(rnd.sample(list(p.items()), len(p)))
            for c, p in rnd.sample(list(event["company_prefs"].items()), len(event["company_prefs"]))
        },
        "operator_prefs": dict(rnd.sample(list(event["operator_prefs"].items()), len(event["operator_prefs"]))),
    }
    assert plan_agenda(**shuffled) == new


@settings(max_examples=300, deadline=None)
@given(events(), st.randoms(use_true_random=False), st.sampled_from(COMPANIES))
def test_replanning_keeps_every_kept_meeting_where_it_is(event: dict, rnd: random.Random, gone: str) -> None:
    first = plan_agenda(**event)
    # a withdrawal: the company `gone` pulls out; some other meetings are kept (confirmed), the rest too
    prefs = {c: p for c, p in event["company_prefs"].items() if c != gone}
    kept = [m for m in first if m.company != gone]
    new = plan_agenda(slots=event["slots"], company_prefs=prefs, operator_prefs=event["operator_prefs"], kept=kept)
    whole = kept + new
    _assert_valid(event["slots"], whole, prefs)
    _nothing_left_fits(event["slots"], whole, prefs)
    assert all(m.company != gone for m in new)
    assert not set(new) & set(kept)
