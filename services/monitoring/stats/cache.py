"""The statistics' cache: a computed view of a call is kept and served again while it is fresh, so a burst of
readers (a click day's dashboards, the public charts) costs one aggregate, not one per request.

Fresh means: computed less than `min_fresh` seconds ago (whatever happened since: under a stream of writes the
aggregate runs at most once per `min_fresh` per view), or computed less than `max_age` seconds ago with no write
to the facts since. Writes are seen through PostgreSQL's cumulative statistics of the facts table (rows inserted,
updated, deleted), which every replica's writes move about a second after they commit, so no replica serves a
view older than about `min_fresh` + 1 second once the facts changed, and none older than `max_age` in any case.
Concurrent misses of one view wait for a single computation. Per process, in memory; `max_age` 0 turns it off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 2048


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    at: float
    changes: int | None
    value: T


def is_fresh(entry: Entry[Any], *, now: float, changes: int | None, max_age: float, min_fresh: float) -> bool:
    age = now - entry.at
    if age < 0 or age >= max_age:
        return False
    return age < min_fresh or (changes is not None and entry.changes == changes)


class StatsCache:
    def __init__(self, *, max_age: float, min_fresh: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.min_fresh = min(min_fresh, max_age)
        self._clock = clock
        self._entries: dict[Hashable, Entry[Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_age > 0

    def _fresh(self, key: Hashable, changes: int | None) -> Entry[Any] | None:
        entry = self._entries.get(key)
        if entry is not None and is_fresh(
            entry, now=self._clock(), changes=changes, max_age=self.max_age, min_fresh=self.min_fresh
        ):
            return entry
        return None

    async def get(self, key: Hashable, changes: int | None, compute: Callable[[], Awaitable[T]]) -> T:
        if not self.enabled:
            return await compute()
        entry = self._fresh(key, changes)
        if entry is not None:
            self.hits += 1
            return entry.value  # type: ignore[no-any-return]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key, changes)  # computed by another request while this one waited
            if entry is not None:
                self.hits += 1
                return entry.value  # type: ignore[no-any-return]
            self.misses += 1
            value = await compute()
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = Entry(self._clock(), changes, value)
            return value

    def invalidate(self, predicate: Callable[[Hashable], bool] | None = None) -> None:
        """Forget the views whose key satisfies `predicate` (all of them without one)."""
        if predicate is None:
            self._entries.clear()
        else:
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]
