"""The submit path's gate: strictly first come, first served, and nothing lost on cancellation."""

from __future__ import annotations

import asyncio

import pytest

from services.intake.fairness import FairGate


async def test_waiters_are_admitted_in_arrival_order_even_when_newcomers_arrive_at_release() -> None:
    gate, order = FairGate(1), []
    release = asyncio.Event()

    async def holder() -> None:
        async with gate:
            await release.wait()

    async def request(n: int) -> None:
        async with gate:
            order.append(n)
            await asyncio.sleep(0)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(request(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert gate.waiting == 5
    release.set()
    await first
    # A newcomer arriving right after the release must queue behind the five who waited.
    late = asyncio.create_task(request(99))
    await asyncio.gather(*waiters, late)
    assert order == [0, 1, 2, 3, 4, 99]


async def test_at_most_size_holders_at_once() -> None:
    gate, inside, peak = FairGate(3), 0, 0

    async def work() -> None:
        nonlocal inside, peak
        async with gate:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(work() for _ in range(20)))
    assert peak == 3 and inside == 0


async def test_a_cancelled_waiter_gives_up_its_turn_without_losing_the_place() -> None:
    gate = FairGate(1)
    await gate.__aenter__()
    cancelled = asyncio.create_task(gate.__aenter__())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await gate.__aexit__(None, None, None)
    # The place is free again: a new request gets in at once.
    await asyncio.wait_for(gate.__aenter__(), timeout=1)


async def test_a_place_handed_to_a_waiter_cancelled_at_that_moment_passes_to_the_next() -> None:
    gate = FairGate(1)
    await gate.__aenter__()
    a = asyncio.create_task(gate.__aenter__())
    b = asyncio.create_task(gate.__aenter__())
    await asyncio.sleep(0)
    await gate.__aexit__(None, None, None)  # hands the place to a ...
    a.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await a
    await asyncio.wait_for(b, timeout=1)  # b got it


def test_a_gate_needs_a_place() -> None:
    with pytest.raises(ValueError):
        FairGate(0)
