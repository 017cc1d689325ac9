"""The typed HTTP client one desk service uses to read another's data over REST.

What every peer call gets, so no service re-invents it:

* a base URL and a timeout per request (connect 2 s, read 5 s by default);
* retries with exponential back-off and jitter, only where a retry is safe: on connection
  errors, timeouts and 5xx answers, and only for idempotent requests (GET/HEAD) or requests
  carrying an `Idempotency-Key`. A 4xx is the peer's considered answer and is never retried;
* a circuit breaker: after `breaker_threshold` consecutive failed attempts the circuit opens
  and calls fail fast with `PeerUnavailable` for `breaker_cooldown` seconds; then one probe is
  let through (half-open): its success closes the circuit, its failure opens it again;
* the id of the request being served (`X-Request-ID`), so one id follows a request across services;
* a short-lived service token minted with the desk's key, cached until shortly before it expires.

Errors are typed: `PeerUnavailable` (unreachable, timing out, 5xx or circuit open),
`NotFoundAtPeer` (404) and `PeerError(status, problem)` (any other refusal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx
import stamina
import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from shared.auth import DEFAULT_SCOPES, KeyRing, mint_token
from shared.observability import current_request_id

log = structlog.get_logger("desk.clients")

PEER_CALLS = Counter("desk_peer_requests_total", "Attempts of calls to peer services", ["peer", "outcome"])

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_TTL_SECONDS = 600
TOKEN_RENEW_MARGIN_SECONDS = 60

M = TypeVar("M", bound=BaseModel)
BreakerState = Literal["closed", "open", "half_open"]


# ---------------------------------------------------------------- errors


class PeerCallError(Exception):
    """Base of the errors a call to a peer service can end with."""

    def __init__(self, peer: str, message: str) -> None:
        super().__init__(f"{peer}: {message}")
        self.peer = peer


class PeerUnavailable(PeerCallError):
    """The peer could not give an answer: unreachable, too slow, failing (5xx), or the circuit is open.
    Retrying later may succeed; nothing can be concluded about the resource."""

    def __init__(self, peer: str, message: str, *, status: int | None = None, retriable: bool = True) -> None:
        super().__init__(peer, message)
        self.status = status
        self.retriable = retriable  # False when the circuit is open: failing fast, another attempt would too


class PeerError(PeerCallError):
    """The peer answered with a refusal (4xx), or with a body that breaks the contract."""

    def __init__(self, peer: str, status: int, problem: dict[str, Any] | None) -> None:
        detail = (problem or {}).get("detail") or (problem or {}).get("title") or ""
        super().__init__(peer, f"HTTP {status} {detail}".rstrip())
        self.status = status
        self.problem = problem


class NotFoundAtPeer(PeerError):
    """The peer answered 404: the resource does not exist (or is outside the caller's reach)."""


def _worth_retrying(exc: Exception) -> bool:
    """A failure another attempt may cure: unreachable, timing out, 5xx; not an open circuit, not a refusal."""
    return isinstance(exc, PeerUnavailable) and exc.retriable


# ---------------------------------------------------------------- circuit breaker


class CircuitBreaker:
    """Consecutive-failure circuit breaker. Not thread-safe: one per client, used from one event loop
    (no await happens between a check and the state change it makes)."""

    def __init__(self, *, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def retry_after(self) -> float:
        """Seconds until a probe may be let through (0 when the circuit is closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def acquire(self) -> bool:
        """May a request be sent now? True when closed, or when this request becomes the half-open probe."""
        if self._opened_at is None:
            return True
        if self._probe_in_flight or self._clock() - self._opened_at < self.cooldown:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_in_flight or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def release(self) -> None:
        """The attempt ended without a verdict on the peer (e.g. cancelled): free the probe slot."""
        self._probe_in_flight = False


# ---------------------------------------------------------------- the client


class ServiceClient:
    """A client of one peer service. Create one per peer and per process, share it, close it at shutdown."""

    peer: str = "peer"

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        keyring: KeyRing | None,
        issuer: str,
        peer: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 2,
        backoff_base: float = 0.2,
        backoff_max: float = 2.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        breaker_clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if peer is not None:
            self.peer = peer
        self.service = service
        self.keyring = keyring
        self.issuer = issuer
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.breaker = CircuitBreaker(threshold=breaker_threshold, cooldown=breaker_cooldown, clock=breaker_clock)
        self._token: tuple[str, float] | None = None
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"user-agent": f"regional-desk-{service}/1", "accept": "application/json"},
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ plumbing

    def service_token(self) -> str | None:
        """This service's bearer token, minted with the desk's key and reused until shortly before expiry."""
        if self.keyring is None:
            return None
        now = time.time()
        if self._token is None or self._token[1] - TOKEN_RENEW_MARGIN_SECONDS <= now:
            token = mint_token(
                self.keyring,
                sub=f"service-{self.service}",
                kind="service",
                scopes=list(DEFAULT_SCOPES["service"]),
                issuer=self.issuer,
                ttl=TOKEN_TTL_SECONDS,
            )
            self._token = (token, now + TOKEN_TTL_SECONDS)
        return self._token[0]

    def _headers(self, extra: Mapping[str, str] | None, idempotency_key: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        rid = current_request_id()
        if rid:
            headers["x-request-id"] = rid
        token = self.service_token()
        if token:
            headers["authorization"] = f"Bearer {token}"
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        for k, v in (extra or {}).items():
            headers[k.lower()] = v
        return headers

    def _fail_fast(self) -> PeerUnavailable:
        PEER_CALLS.labels(self.peer, "circuit_open").inc()
        return PeerUnavailable(self.peer, f"circuit open, retry in {self.breaker.retry_after:.1f} s", retriable=False)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        attempt_timeout: httpx.Timeout | float | None = None,
        safe: bool = False,
    ) -> httpx.Response:
        """Send a request with retries, the breaker, the request id and the token; a 2xx/3xx response is
        returned, anything else raised as a typed error. `attempt_timeout` overrides the client's timeout for
        each attempt of this request; `safe` marks a POST that only reads (retried like a GET). Retries (stamina):
        exponential back-off from `backoff_base` doubling up to
        `backoff_max`, plus a jitter of up to `backoff_base`."""
        method = method.upper()
        hdrs = self._headers(headers, idempotency_key)
        retriable = safe or method in IDEMPOTENT_METHODS or "idempotency-key" in hdrs
        attempts = 1 + (self.retries if retriable else 0)
        extra: dict[str, Any] = {} if attempt_timeout is None else {"timeout": attempt_timeout}
        try:
            async for attempt in stamina.retry_context(
                on=_worth_retrying,
                attempts=attempts,
                timeout=None,
                wait_initial=self.backoff_base,
                wait_max=self.backoff_max,
                wait_jitter=self.backoff_base,
                wait_exp_base=2,
            ):
                with attempt:
                    return await self._attempt(method, path, params, json, hdrs, extra)
        except PeerUnavailable as exc:
            log.warning("peer call failed", peer=self.peer, method=method, path=path, attempts=attempts, error=str(exc))
            raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        hdrs: dict[str, str],
        extra: dict[str, Any],
    ) -> httpx.Response:
        if not self.breaker.acquire():
            raise self._fail_fast()
        try:
            resp = await self._http.request(method, path, params=params, json=json, headers=hdrs, **extra)
        except httpx.TransportError as exc:
            self.breaker.record_failure()
            PEER_CALLS.labels(self.peer, "transport_error").inc()
            raise PeerUnavailable(self.peer, f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.breaker.release()
            raise
        if resp.status_code < 500:
            self.breaker.record_success()  # a 4xx is a healthy peer's answer
            PEER_CALLS.labels(self.peer, "ok" if resp.status_code < 400 else "client_error").inc()
            if resp.status_code < 400:
                return resp
            raise self._refusal(resp)
        self.breaker.record_failure()
        PEER_CALLS.labels(self.peer, "server_error").inc()
        raise PeerUnavailable(self.peer, f"{method} {path}: HTTP {resp.status_code}", status=resp.status_code)

    def _refusal(self, resp: httpx.Response) -> PeerError:
        problem: dict[str, Any] | None = None
        try:
            body = resp.json()
            if isinstance(body, dict):
                problem = body
        except ValueError:
            problem = None
        if resp.status_code == 404:
            return NotFoundAtPeer(self.peer, 404, problem)
        return PeerError(self.peer, resp.status_code, problem)

    async def get_model(self, path: str, model: type[M], *, params: Mapping[str, Any] | None = None) -> M:
        """GET a resource and parse it into its contract model."""
        resp = await self.request("GET", path, params=params)
        return self.parse(resp, model)

    def parse(self, resp: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(resp.content)
        except ValidationError as exc:
            raise PeerError(
                self.peer,
                resp.status_code,
                {
                    "title": "Response does not match the contract",
                    "detail": f"{model.__name__}: {exc.error_count()} validation errors",
                },
            ) from exc
