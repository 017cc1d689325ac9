"""A call as the other services read it from intake, kept in memory: the one cache of a call's rules.

A version of a call never changes (an amendment is a new version), so each `(call, version)` read is kept for
the life of the process (least recently used first out past `maxsize`). Which version is in force is asked
again after `ttl` seconds, or at once after `forget` (on a `call.amended` event), so an amendment reaches a
service within `ttl` while a burst of reads costs one peer call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from cachetools import LRUCache, TTLCache

from shared.clients.intake import IntakeClient
from shared.contracts.calls import CallDetail, CallVersionOut


class CallVersions:
    def __init__(self, *, ttl: float, maxsize: int = 4096, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._calls: LRUCache[tuple[uuid.UUID, int], CallDetail] = LRUCache(maxsize)
        self._versions: LRUCache[tuple[uuid.UUID, int], CallVersionOut] = LRUCache(maxsize)
        self._current: TTLCache[uuid.UUID, int] = TTLCache(maxsize, ttl, timer=timer)

    async def current(self, intake: IntakeClient, call_id: uuid.UUID) -> CallDetail:
        """The call as the version in force has it (intake's errors propagate: PeerUnavailable, NotFoundAtPeer)."""
        version = self._current.get(call_id)
        if version is not None:
            cached = self._calls.get((call_id, version))
            if cached is not None:
                return cached
        call = await intake.get_call(call_id)
        key = (call_id, call.current_version)
        if key not in self._calls:  # the first read of a version stays: the same object for every reader
            self._calls[key] = call
        self._current[call_id] = call.current_version
        return self._calls[key]

    def current_version(self, call_id: uuid.UUID) -> int | None:
        """The version last found in force for the call, while it is fresh (None otherwise)."""
        return self._current.get(call_id)

    async def version(self, intake: IntakeClient, call_id: uuid.UUID, version: int) -> CallVersionOut:
        """One version of the call's rules."""
        key = (call_id, version)
        cached = self._versions.get(key)
        if cached is None:
            cached = self._versions[key] = await intake.get_call_version(call_id, version)
        return cached

    def forget(self, call_id: uuid.UUID) -> None:
        """A new version of the call was published: ask intake which version is in force on the next read."""
        self._current.pop(call_id, None)
