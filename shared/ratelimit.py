"""Per-client rate limits (token bucket), answered with 429 and Retry-After.

Buckets live in the process: with several replicas each enforces its own share, which is the
intended protection (no client can monopolise a worker) without a round trip per request.
"""

from __future__ import annotations

import math
import time

from shared.errors import RATE_LIMITED, DeskError


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(per_minute // 6, 1))
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def retry_after(self, key: str) -> float | None:
        """Take one token for `key`; None if allowed, else the seconds until one is available."""
        if not self.enabled:
            return None
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:
                self._evict(now)
            return None
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise DeskError(
                f"Troppe richieste: riprova tra {seconds} s.",
                f"Too many requests: retry in {seconds} s.",
                kind=RATE_LIMITED,
                headers={"Retry-After": str(seconds)},
            )

    def _evict(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
