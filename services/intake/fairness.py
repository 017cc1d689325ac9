"""A first-come, first-served gate for a connection pool.

asyncpg's pool hands a released connection to whichever coroutine asks next: a waiter woken by the
release can lose the connection to a newcomer that arrives before it runs, and it then queues again at
the back. Under a click-day burst that barging starves a few requests for hundreds of milliseconds while
the median stays low. `FairGate`, sized like the pool, admits at most that many holders and hands each
freed place directly to the longest waiter, so no request is served before one that arrived earlier and
the pool itself never has to queue anyone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any


class FairGate:
    """At most `size` holders at once; waiters admitted strictly in arrival order."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a gate needs at least one place")
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # a place was handed over as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place goes to this waiter, never back to the free count
                return
        self._free += 1


class GroupFlush:
    """Shares one durability barrier among the commits that wait for it at the same time.

    `flush(connection, statement)` returns once a run of `statement` that *started after the call* has
    completed: one run at a time, and the callers who arrived while a run was in flight are all covered by
    the next one, which the first of them performs on a connection from `connection()` (an async context
    manager). With PostgreSQL's WAL written in order, a synchronous commit that writes WAL makes every
    earlier commit durable, so N concurrent submits need one such commit between them instead of N.
    """

    def __init__(self) -> None:
        self._gate = FairGate(1)
        self._started = 0
        self._done = 0

    async def flush(self, connection: Callable[[], AbstractAsyncContextManager[Any]], statement: str) -> None:
        needed = self._started + 1  # any run numbered higher starts after this point
        async with self._gate:
            if self._done >= needed:
                return
            self._started += 1
            number = self._started
            async with connection() as conn:
                await conn.execute(statement)
            self._done = max(self._done, number)
