"""Revoked API clients, as every service's `Authenticator` sees them: tokens already issued stop working.

Access tokens are self-contained JWTs, so a revocation has to reach every process that verifies them. Each
process keeps the set of client ids revoked recently (only those can still hold an unexpired token: a
revoked client gets no new one) and re-reads it from `desk.api_clients` at most every
`DESK_REVOCATION_REFRESH_SECONDS` (5 s by default), on the first authenticated request after it went
stale: one small indexed query per process per period, never a round trip per request, so the click-day
submit path stays as it was. A revocation therefore takes effect everywhere within that period; the intake
process that revoked the client forgets its copy right after the commit, so there it takes effect at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Interval, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ApiClient

# Besides the token lifetime: room for a lifetime changed between deployments, and for clock skew.
WINDOW_MARGIN_SECONDS = 3600


class RevokedClients:
    """The per-process copy of the recently revoked clients, refreshed every `refresh_seconds`."""

    def __init__(
        self, *, refresh_seconds: float, token_ttl_seconds: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.window = timedelta(seconds=token_ttl_seconds + WINDOW_MARGIN_SECONDS)
        self.clock = clock
        self._ids: frozenset[str] = frozenset()
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self.loads = 0

    def stale(self) -> bool:
        return self._loaded_at is None or self.clock() - self._loaded_at >= self.refresh_seconds

    def invalidate(self) -> None:
        """Re-read at the next check (called once a revocation has committed)."""
        self._loaded_at = None

    async def is_revoked(self, client_id: str, session_factory: Callable[[], Any]) -> bool:
        if self.stale():
            async with self._lock:
                if self.stale():  # another request may have refreshed it while this one waited
                    async with session_factory() as session:
                        self._ids = await self._load(session)
                    self._loaded_at = self.clock()
                    self.loads += 1
        return client_id in self._ids

    async def _load(self, session: AsyncSession) -> frozenset[str]:
        since = func.now() - bindparam("window", self.window, type_=Interval())
        stmt = select(ApiClient.client_id).where(ApiClient.revoked_at.is_not(None), ApiClient.revoked_at > since)
        return frozenset((await session.execute(stmt)).scalars())
