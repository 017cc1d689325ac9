import random
import time
from decimal import Decimal

import pytest

from shared.domain.allocation import (
    Allocation,
    Candidate,
    Funded,
    Procedure,
    allocate,
    ranking_order,
    scorrimento,
)

D = Decimal  # short name for the worked examples


def cand(app: str, protocol: int, score: str | None, requested: str) -> Candidate:
    return Candidate(app, protocol, None if score is None else D(score), D(requested))


# Five admissible applications of a ranking call. Protocol order: E, C, A, D, B.
FIVE = [
    cand("A", 3, "90", "100000.00"),
    cand("B", 5, "85", "120000.00"),
    cand("C", 2, "80", "80000.00"),
    cand("D", 4, "75", "150000.00"),
    cand("E", 1, "70", "40000.00"),
]


def ids(allocation: Allocation) -> list[str]:
    return [f.application_id for f in allocation.funded]


def test_budget_fits_three_of_five_and_order_is_strict() -> None:
    # A + B + C = 300 000 of 340 000; D (150 000) does not fit in the 40 000 left. E (40 000) would
    # fit, but it comes after D: it does not jump the queue, the 40 000 are kept for the scorrimento.
    result = allocate(FIVE, D("340000.00"), procedure="ranking", partial_funding_of_last=False)
    assert result.order == ["A", "B", "C", "D", "E"]
    assert result.funded == [
        Funded("A", D("100000.00"), False),
        Funded("B", D("120000.00"), False),
        Funded("C", D("80000.00"), False),
    ]
    assert result.waiting == ["D", "E"]
    assert result.remaining == D("40000.00")
    assert result.funded_total == D("300000.00")


def test_partial_funding_of_the_fourth_when_allowed() -> None:
    result = allocate(FIVE, D("340000.00"), procedure="ranking", partial_funding_of_last=True)
    assert result.funded[-1] == Funded("D", D("40000.00"), True)
    assert ids(result) == ["A", "B", "C", "D"]
    assert result.waiting == ["E"]
    assert result.remaining == D("0.00")
    assert result.funded_total == D("340000.00")


def test_no_partial_funding_with_nothing_left() -> None:
    result = allocate(FIVE, D("300000.00"), procedure="ranking", partial_funding_of_last=True)
    assert ids(result) == ["A", "B", "C"]
    assert result.waiting == ["D", "E"]
    assert result.remaining == D("0.00")


def test_exact_fit_is_funded_in_full() -> None:
    result = allocate(FIVE, D("450000.00"), procedure="ranking", partial_funding_of_last=True)
    assert ids(result) == ["A", "B", "C", "D"]
    assert all(not f.partial for f in result.funded)
    assert result.waiting == ["E"]
    assert result.remaining == D("0.00")


def test_first_come_follows_protocol_order_and_ignores_scores() -> None:
    # E 40 000 + C 80 000 + A 100 000 = 220 000; D 150 000 does not fit in 30 000; B waits behind it.
    candidates = [*FIVE[:4], cand("E", 1, None, "40000.00")]
    result = allocate(candidates, D("250000.00"), procedure="first_come", partial_funding_of_last=False)
    assert result.order == ["E", "C", "A", "D", "B"]
    assert ids(result) == ["E", "C", "A"]
    assert result.waiting == ["D", "B"]
    assert result.remaining == D("30000.00")


def test_ties_broken_by_protocol_lower_first() -> None:
    tied = [
        cand("late", 9, "80.50", "10000.00"),
        cand("early", 2, "80.50", "10000.00"),
        cand("middle", 5, "80.50", "10000.00"),
        cand("top", 7, "91", "10000.00"),
        cand("low", 1, "60", "10000.00"),
    ]
    assert [c.application_id for c in ranking_order(tied, "ranking")] == ["top", "early", "middle", "late", "low"]
    result = allocate(tied, D("25000.00"), procedure="ranking", partial_funding_of_last=True)
    assert result.funded == [
        Funded("top", D("10000.00"), False),
        Funded("early", D("10000.00"), False),
        Funded("middle", D("5000.00"), True),
    ]
    assert result.waiting == ["late", "low"]


def test_scorrimento_funds_the_next_in_order_and_never_twice() -> None:
    first = allocate(FIVE, D("340000.00"), procedure="ranking", partial_funding_of_last=False)
    by_id = {c.application_id: c for c in FIVE}
    waiting = [by_id[i] for i in first.waiting]

    # 60 000 are freed by a reduction: with the 40 000 left that is 100 000, still not enough for
    # D (150 000); strict order, so E (40 000) keeps waiting behind D.
    nothing = scorrimento(waiting, D("60000.00"), first.remaining, already_funded=ids(first))
    assert nothing.funded == []
    assert nothing.waiting == ["D", "E"]
    assert nothing.remaining == D("100000.00")

    # 110 000 freed: 40 000 + 110 000 = 150 000 funds D exactly; E still waits.
    second = scorrimento(waiting, D("110000.00"), first.remaining, already_funded=ids(first))
    assert second.funded == [Funded("D", D("150000.00"), False)]
    assert second.waiting == ["E"]
    assert second.remaining == D("0.00")

    # Later 45 000 are freed: E is funded and 5 000 stay.
    third = scorrimento(
        [by_id[i] for i in second.waiting], D("45000.00"), second.remaining, already_funded=ids(first) + ids(second)
    )
    assert third.funded == [Funded("E", D("40000.00"), False)]
    assert third.waiting == []
    assert third.remaining == D("5000.00")

    # Nobody is funded twice.
    with pytest.raises(ValueError, match="already funded"):
        scorrimento(waiting, D("1000000.00"), D("0.00"), already_funded=["D"])
    with pytest.raises(ValueError, match="more than once"):
        scorrimento([by_id["D"], by_id["D"]], D("1000000.00"), D("0.00"))


def test_scorrimento_with_partial_funding() -> None:
    waiting = [FIVE[3], FIVE[4]]
    result = scorrimento(waiting, D("60000.00"), D("40000.00"), partial_funding_of_last=True)
    assert result.funded == [Funded("D", D("100000.00"), True)]
    assert result.waiting == ["E"]
    assert result.remaining == D("0.00")


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        ([cand("A", 1, "1", "10.00"), cand("A", 2, "1", "10.00")], "more than once"),
        ([cand("A", 1, "1", "10.00"), cand("B", 1, "1", "10.00")], "protocol number 1"),
        ([cand("A", 1, "1", "0.00")], "must be positive"),
        ([cand("A", 1, "1", "10.001")], "must be positive"),
        ([cand("A", 1, None, "10.00")], "no score"),
    ],
)
def test_invalid_candidates(candidates: list[Candidate], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allocate(candidates, D("100.00"), procedure="ranking", partial_funding_of_last=False)


def test_invalid_budget_and_procedure() -> None:
    with pytest.raises(ValueError, match="budget_available"):
        allocate(FIVE, D("-1.00"), procedure="ranking", partial_funding_of_last=False)
    with pytest.raises(ValueError, match="unknown procedure"):
        ranking_order(FIVE, "lottery")  # type: ignore[arg-type]


def test_empty() -> None:
    result = allocate([], D("100.00"), procedure="ranking", partial_funding_of_last=True)
    assert result == Allocation(funded=[], waiting=[], remaining=D("100.00"), order=[])


def _random_candidates(rng: random.Random, n: int) -> list[Candidate]:
    protocols = rng.sample(range(1, 10 * n + 1), n)
    return [
        Candidate(
            application_id=f"app-{i}",
            protocol_number=protocols[i],
            score=D(rng.randint(0, 20)) * D("5"),  # few distinct scores: many ties
            requested=D(rng.randint(1, 5_000_000)) / 100,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_random_allocations_respect_budget_and_order(seed: int) -> None:
    rng = random.Random(seed)
    candidates = _random_candidates(rng, rng.randint(0, 300))
    total = sum((c.requested for c in candidates), D("0.00"))
    budget = (total * D(rng.random())).quantize(D("0.01")) if candidates else D("0.00")
    procedure: Procedure = "ranking" if rng.random() < 0.5 else "first_come"
    partial = rng.random() < 0.5
    result = allocate(candidates, budget, procedure=procedure, partial_funding_of_last=partial)
    funded = ids(result)
    by_id = {c.application_id: c for c in candidates}

    assert result.funded_total <= budget
    assert result.remaining == budget - result.funded_total
    assert len(set(funded)) == len(funded)
    assert sorted(funded + result.waiting) == sorted(by_id)
    # Strict order: the funded are a prefix of the order; only the last may be partial.
    assert result.order[: len(funded)] == funded
    assert all(not f.partial for f in result.funded[:-1])
    assert all(f.amount == by_id[f.application_id].requested for f in result.funded if not f.partial)
    if result.waiting and not partial:
        assert by_id[result.waiting[0]].requested > result.remaining
    # Ranking order: scores never increase; equal scores by protocol.
    if procedure == "ranking":
        keys = [(-by_id[i].score, by_id[i].protocol_number) for i in result.order]  # type: ignore[operator]
        assert keys == sorted(keys)

    # Scorrimento over the waiting list never funds anyone twice nor exceeds the budget given.
    freed = D(rng.randint(0, 10_000_000)) / 100
    more = scorrimento(
        [by_id[i] for i in result.waiting],
        freed,
        result.remaining,
        partial_funding_of_last=partial,
        already_funded=funded,
    )
    again = [f.application_id for f in more.funded]
    assert not set(again) & set(funded)
    assert more.funded_total <= freed + result.remaining
    assert again + more.waiting == result.waiting


def test_hundred_thousand_candidates_fast() -> None:
    candidates = _random_candidates(random.Random(42), 100_000)
    start = time.perf_counter()
    result = allocate(candidates, D("18978747.97") * 100, procedure="ranking", partial_funding_of_last=True)
    elapsed = time.perf_counter() - start
    assert result.funded_total <= D("1897874797.00")
    assert len(result.funded) + len(result.waiting) == 100_000
    assert elapsed < 2.0
