"""The peer-service client against a real HTTP server (uvicorn on loopback) that can fail on purpose:
retries only where safe, the circuit breaker, timeouts, the request id and the service token."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from shared.auth import decode_token
from shared.clients import NotFoundAtPeer, PeerError, PeerUnavailable, ServiceClient
from shared.observability import RequestContextMiddleware, current_request_id
from tests.conftest import KEYRING
from tests.loopback import LoopbackServer, free_port


class Upstream:
    """A peer that answers on demand: echo, N failures then success, a fixed status, a hang, a dropped
    connection. `hits` counts the requests each route really received."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.seen: list[dict[str, str]] = []
        self.server: LoopbackServer | None = None
        self.release = asyncio.Event()  # lets hanging requests end when the server stops

    def app(self) -> Starlette:
        async def echo(request: Request) -> JSONResponse:
            self.hits["echo"] += 1
            self.seen.append(dict(request.headers))
            return JSONResponse({"id": str(uuid.uuid4()), "name": "echo"})

        async def flaky(request: Request) -> JSONResponse:
            """The first `fail` requests of a key answer 500 (or 503), then 200."""
            key = request.path_params["key"]
            self.hits[key] += 1
            if self.hits[key] <= int(request.query_params.get("fail", "1")):
                return JSONResponse({"type": "/problems/internal-error", "status": 500}, status_code=500)
            return JSONResponse({"id": str(uuid.uuid4()), "name": key})

        async def status(request: Request) -> JSONResponse:
            code = int(request.path_params["code"])
            self.hits[f"status-{code}"] += 1
            return JSONResponse(
                {"type": "/problems/x", "title": "T", "status": code, "detail": "nope"},
                status_code=code,
                media_type="application/problem+json",
            )

        async def hang(request: Request) -> JSONResponse:
            self.hits["hang"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 3)
            return JSONResponse({"id": str(uuid.uuid4()), "name": "late"})

        async def drop(scope: Scope, receive: Receive, send: Send) -> None:
            """Start a response and break the connection before its body: the client sees a dropped
            connection (RemoteProtocolError). From the `ok_after`-th hit on, answer normally."""
            self.hits["drop"] += 1
            if self.hits["drop"] > 2:
                await JSONResponse({"id": str(uuid.uuid4()), "name": "drop"})(scope, receive, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"500")],
                }
            )
            raise RuntimeError("connection dropped on purpose")

        return Starlette(
            routes=[
                Route("/echo", echo, methods=["GET", "POST"]),
                Route("/flaky/{key}", flaky, methods=["GET", "POST"]),
                Route("/status/{code:int}", status, methods=["GET", "POST"]),
                Route("/hang", hang),
                Mount("/drop", app=drop),
            ]
        )

    async def start(self, port: int | None = None) -> None:
        self.release = asyncio.Event()
        self.server = LoopbackServer(self.app(), port)
        await self.server.start()

    async def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            await self.server.stop()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


@pytest_asyncio.fixture(loop_scope="session")
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    await up.start()
    yield up
    await up.stop()


class FakeClock:
    """A monotonic clock that moves only when told: the breaker's cool-down passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_client(url: str, **kw: Any) -> ServiceClient:
    opts: dict[str, Any] = {
        "service": "evaluation",
        "keyring": KEYRING,
        "issuer": "regional-desk",
        "peer": "upstream",
        "retries": 2,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "breaker_threshold": 50,
        "breaker_cooldown": 0.3,
    }
    opts.update(kw)
    return ServiceClient(url, **opts)


@pytest_asyncio.fixture(loop_scope="session")
async def peer(upstream: Upstream) -> AsyncIterator[ServiceClient]:
    async with make_client(upstream.url) as c:
        yield c


# ---------------------------------------------------------------- retries


async def test_a_get_is_retried_on_5xx_and_succeeds(peer: ServiceClient, upstream: Upstream) -> None:
    r = await peer.request("GET", "/flaky/a", params={"fail": 2})
    assert r.status_code == 200 and r.json()["name"] == "a"
    assert upstream.hits["a"] == 3


async def test_a_get_gives_up_after_its_retries_with_peer_unavailable(peer: ServiceClient, upstream: Upstream) -> None:
    with pytest.raises(PeerUnavailable) as exc:
        await peer.request("GET", "/flaky/b", params={"fail": 10})
    assert exc.value.status == 500 and exc.value.peer == "upstream"
    assert upstream.hits["b"] == 3  # one attempt and two retries


@pytest.mark.parametrize("code,error", [(404, NotFoundAtPeer), (409, PeerError), (422, PeerError), (401, PeerError)])
async def test_a_4xx_is_never_retried_and_carries_the_problem(
    peer: ServiceClient, upstream: Upstream, code: int, error: type[PeerError]
) -> None:
    with pytest.raises(error) as exc:
        await peer.request("GET", f"/status/{code}")
    assert type(exc.value) is error
    assert exc.value.status == code and exc.value.problem is not None and exc.value.problem["detail"] == "nope"
    assert upstream.hits[f"status-{code}"] == 1


async def test_a_post_without_idempotency_key_is_not_retried(peer: ServiceClient, upstream: Upstream) -> None:
    with pytest.raises(PeerUnavailable):
        await peer.request("POST", "/flaky/c", params={"fail": 1}, json={})
    assert upstream.hits["c"] == 1


async def test_a_post_with_idempotency_key_is_retried_and_sends_the_key(
    peer: ServiceClient, upstream: Upstream
) -> None:
    r = await peer.request("POST", "/flaky/d", params={"fail": 1}, json={}, idempotency_key="k-1")
    assert r.status_code == 200
    assert upstream.hits["d"] == 2


async def test_a_dropped_connection_is_retried(peer: ServiceClient, upstream: Upstream) -> None:
    r = await peer.request("GET", "/drop/")
    assert r.json()["name"] == "drop"
    assert upstream.hits["drop"] == 3  # two broken responses, then a good one


async def test_a_dropped_connection_on_a_post_is_not_retried(peer: ServiceClient, upstream: Upstream) -> None:
    with pytest.raises(PeerUnavailable) as exc:
        await peer.request("POST", "/drop/", json={})
    assert isinstance(exc.value.__cause__, httpx.TransportError)
    assert upstream.hits["drop"] == 1


async def test_connection_refused_is_peer_unavailable() -> None:
    async with make_client(f"http://127.0.0.1:{free_port()}", retries=1) as c:
        with pytest.raises(PeerUnavailable) as exc:
            await c.request("GET", "/echo")
    assert isinstance(exc.value.__cause__, httpx.ConnectError)


# ---------------------------------------------------------------- timeouts


async def test_read_timeout_is_enforced_on_each_attempt(upstream: Upstream) -> None:
    async with make_client(upstream.url, timeout=httpx.Timeout(0.2, connect=1.0), retries=1) as c:
        start = time.perf_counter()
        with pytest.raises(PeerUnavailable) as exc:
            await c.request("GET", "/hang")
        elapsed = time.perf_counter() - start
    assert isinstance(exc.value.__cause__, httpx.ReadTimeout)
    assert upstream.hits["hang"] == 2
    assert elapsed < 1.5  # two attempts of 0.2 s, not the 3 s the peer takes


async def test_the_default_timeout_is_connect_2s_read_5s() -> None:
    async with make_client("http://127.0.0.1:9") as c:
        t = c._http.timeout
    assert (t.connect, t.read) == (2.0, 5.0)


async def test_a_per_request_timeout_overrides_the_default(peer: ServiceClient, upstream: Upstream) -> None:
    start = time.perf_counter()
    with pytest.raises(PeerUnavailable):
        await peer.request("GET", "/hang", attempt_timeout=0.1)
    assert time.perf_counter() - start < 1.5
    assert upstream.hits["hang"] == 3


# ---------------------------------------------------------------- circuit breaker


async def test_the_circuit_opens_after_n_failures_and_fails_fast(upstream: Upstream) -> None:
    async with make_client(upstream.url, retries=0, breaker_threshold=3, breaker_cooldown=30) as c:
        for _ in range(3):
            with pytest.raises(PeerUnavailable):
                await c.request("GET", "/status/500")
        assert c.breaker.state == "open"
        start = time.perf_counter()
        with pytest.raises(PeerUnavailable, match="circuit open"):
            await c.request("GET", "/echo")
        assert time.perf_counter() - start < 0.05
    assert upstream.hits["status-500"] == 3 and upstream.hits["echo"] == 0  # nothing sent while open


async def test_4xx_answers_do_not_open_the_circuit(upstream: Upstream) -> None:
    async with make_client(upstream.url, retries=0, breaker_threshold=2) as c:
        for _ in range(4):
            with pytest.raises(NotFoundAtPeer):
                await c.request("GET", "/status/404")
        assert c.breaker.state == "closed"


async def test_after_the_cooldown_one_successful_probe_closes_the_circuit(upstream: Upstream) -> None:
    clock = FakeClock()
    async with make_client(upstream.url, retries=0, breaker_threshold=2, breaker_cooldown=30, breaker_clock=clock) as c:
        for _ in range(2):
            with pytest.raises(PeerUnavailable):
                await c.request("GET", "/status/503")
        assert c.breaker.state == "open"
        clock.advance(29.9)
        assert c.breaker.state == "open" and c.breaker.retry_after == pytest.approx(0.1)
        clock.advance(0.1)
        assert c.breaker.state == "half_open"
        r = await c.request("GET", "/echo")
        assert r.status_code == 200
        assert c.breaker.state == "closed"
        await c.request("GET", "/echo")
    assert upstream.hits["echo"] == 2


async def test_a_failed_probe_opens_the_circuit_again(upstream: Upstream) -> None:
    clock = FakeClock()
    async with make_client(upstream.url, retries=0, breaker_threshold=2, breaker_cooldown=30, breaker_clock=clock) as c:
        for _ in range(2):
            with pytest.raises(PeerUnavailable):
                await c.request("GET", "/status/500")
        clock.advance(30)
        with pytest.raises(PeerUnavailable):
            await c.request("GET", "/status/500")  # the probe fails
        assert upstream.hits["status-500"] == 3
        assert c.breaker.state == "open"
        with pytest.raises(PeerUnavailable, match="circuit open"):
            await c.request("GET", "/status/500")
    assert upstream.hits["status-500"] == 3


async def test_half_open_lets_only_one_probe_through(upstream: Upstream) -> None:
    clock = FakeClock()
    async with make_client(
        upstream.url,
        retries=0,
        breaker_threshold=1,
        breaker_cooldown=30,
        breaker_clock=clock,
        timeout=httpx.Timeout(0.3),
    ) as c:
        with pytest.raises(PeerUnavailable):
            await c.request("GET", "/status/500")
        clock.advance(30)
        results = await asyncio.gather(c.request("GET", "/hang"), c.request("GET", "/echo"), return_exceptions=True)
    assert all(isinstance(r, PeerUnavailable) for r in results)
    assert "circuit open" in str(results[1])
    assert upstream.hits["hang"] == 1 and upstream.hits["echo"] == 0


async def test_a_peer_that_recovers_is_used_again(upstream: Upstream) -> None:
    """Stop the peer: the circuit opens; start it again on the same port: after the cool-down it closes."""
    clock = FakeClock()
    async with make_client(upstream.url, retries=0, breaker_threshold=2, breaker_cooldown=30, breaker_clock=clock) as c:
        await c.request("GET", "/echo")
        port = upstream.port
        await upstream.stop()
        for _ in range(2):
            with pytest.raises(PeerUnavailable):
                await c.request("GET", "/echo")
        assert c.breaker.state == "open"
        await upstream.start(port)
        clock.advance(30)
        r = await c.request("GET", "/echo")
        assert r.status_code == 200 and c.breaker.state == "closed"


# ---------------------------------------------------------------- request id and token


async def test_the_request_id_of_the_served_request_is_passed_along(upstream: Upstream) -> None:
    """A service's endpoint calls the peer: the peer sees the id the service's caller sent."""
    async with make_client(upstream.url) as peer:

        async def endpoint(request: Request) -> JSONResponse:
            await peer.request("GET", "/echo")
            return JSONResponse({"inside": current_request_id()})

        service = RequestContextMiddleware(
            Starlette(routes=[Route("/x", endpoint)]), service="test", max_body_bytes=1000, access_log=False
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://svc") as http:
            r = await http.get("/x", headers={"X-Request-ID": "req-abc-123"})
            r2 = await http.get("/x")
    assert r.json()["inside"] == "req-abc-123"
    assert upstream.seen[0]["x-request-id"] == "req-abc-123"
    assert upstream.seen[1]["x-request-id"] == r2.headers["x-request-id"] != "req-abc-123"
    assert current_request_id() is None  # reset once the request is over


async def test_no_request_id_outside_a_request(peer: ServiceClient, upstream: Upstream) -> None:
    await peer.request("GET", "/echo")
    assert "x-request-id" not in upstream.seen[0]


async def test_a_service_token_is_sent_and_reused(peer: ServiceClient, upstream: Upstream) -> None:
    await peer.request("GET", "/echo")
    await peer.request("GET", "/echo")
    auth = [h["authorization"] for h in upstream.seen]
    assert auth[0] == auth[1] and auth[0].startswith("Bearer ")
    principal = decode_token(KEYRING, auth[0].removeprefix("Bearer "), "regional-desk")
    assert principal.kind == "service" and principal.client_id == "service-evaluation"
    assert "internal" in principal.scopes


async def test_a_token_near_expiry_is_renewed(peer: ServiceClient, upstream: Upstream) -> None:
    first = peer.service_token()
    assert first is not None and peer._token is not None
    peer._token = (first, time.time() + 30)  # inside the renewal margin
    second = peer.service_token()
    assert second != first


# ---------------------------------------------------------------- typed models


async def test_get_model_parses_the_contract_and_refuses_a_breach(peer: ServiceClient) -> None:
    from pydantic import BaseModel

    class Thing(BaseModel):
        id: uuid.UUID
        name: str

    class Other(BaseModel):
        missing_field: int

    thing = await peer.get_model("/echo", Thing)
    assert thing.name == "echo"
    with pytest.raises(PeerError) as exc:
        await peer.get_model("/echo", Other)
    assert exc.value.status == 200 and "contract" in str(exc.value.problem)
