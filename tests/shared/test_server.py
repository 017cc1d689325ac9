"""The desk's server configuration (shared/server.py): at start the open-file limit raised, the connection cap
fitted under it, the configuration intact in the worker processes of `desk serve --workers N`; and clients
that are slow but within their deadlines, or only waiting for the service, are served. How a real process
cuts the slow ones: tests/reliability/test_slow_clients.py."""

from __future__ import annotations

import asyncio
import pickle
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared import server as server_module
from shared.server import (
    FD_RESERVE,
    WORKER_HEALTHCHECK_SECONDS,
    DeskHttpProtocol,
    DeskServerConfig,
    OneSendTransport,
    server_config,
)
from shared.settings import REPO_ROOT, DeskSettings
from tests.loopback import LoopbackServer

PROBE = (
    "import resource; from shared.server import server_config; from shared.settings import DeskSettings; "
    "c = server_config('services.intake.app:build_app', DeskSettings(), factory=True); "
    "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], c.limits.max_connections)"
)


def _start_with_open_files(soft: int, hard: int, max_connections: int) -> tuple[int, int]:
    """(soft open-file limit, connection cap) of a process started with these limits."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "DESK_HTTP_MAX_CONNECTIONS": str(max_connections)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )
    limit, cap = out.stdout.splitlines()[-1].split()  # after the warning, when the cap was lowered
    return int(limit), int(cap)


def test_the_open_file_limit_is_raised_and_the_cap_fits_under_it() -> None:
    # the soft limit goes up to the hard one; the cap stays as configured when it fits...
    assert _start_with_open_files(100, 2000, 1000) == (2000, 1000)
    # ...and is lowered, leaving FD_RESERVE files for the database pools and the rest, when it does not
    assert _start_with_open_files(100, 600, 1000) == (600, 600 - FD_RESERVE)


def test_worker_processes_get_the_desks_protocol_and_limits() -> None:
    # `--workers N` hands the configuration to each worker process by pickling it (multiprocessing spawn)
    settings = DeskSettings.model_construct(
        http_header_timeout_seconds=3.0, http_body_timeout_seconds=7.0, http_max_connections=50
    )
    config = server_config("services.intake.app:build_app", settings, factory=True, workers=2)
    copy = pickle.loads(pickle.dumps(config))
    assert isinstance(copy, DeskServerConfig) and copy.http is DeskHttpProtocol and copy.ws == "none"
    assert (copy.limits.header_timeout, copy.limits.body_timeout, copy.limits.max_connections) == (3.0, 7.0, 50)
    # a worker still importing on a busy machine is not taken for a hung one
    assert copy.timeout_worker_healthcheck == WORKER_HEALTHCHECK_SECONDS > 5


def test_worker_processes_start_without_importing_the_application_stack() -> None:
    # what a new worker imports before it can answer the supervisor: this module must stay light
    code = (
        "import sys, shared.server; heavy = {'fastapi', 'sqlalchemy', 'pydantic', 'shared.errors'} & "
        "set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ clients that are slow but not at fault

DEADLINE = 2.0


async def _echo_after_a_pause(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the size of the body, read only after a pause longer than the body deadline when the path is
    /pause (an application busy before it reads, e.g. waiting for the database)."""
    if scope["path"] == "/pause":
        await asyncio.sleep(DEADLINE * 1.5)
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def echo() -> AsyncIterator[LoopbackServer]:
    settings = DeskSettings.model_construct(http_header_timeout_seconds=DEADLINE, http_body_timeout_seconds=DEADLINE)
    server = LoopbackServer(_echo_after_a_pause, settings=settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_body_the_application_is_slow_to_read_is_not_cut(echo: LoopbackServer) -> None:
    # 4 MiB: the server stops reading past 64 KiB until the application asks, so most of it waits in the
    # sockets' buffers for longer than the body deadline, through no fault of the client
    body = b"x" * (4 * 1024 * 1024)
    async with httpx.AsyncClient(base_url=echo.url, timeout=20, trust_env=False) as http:
        r = await http.post("/pause", content=body)
    assert (r.status_code, r.text) == (200, str(len(body)))


async def test_the_header_deadline_runs_from_each_requests_first_byte(echo: LoopbackServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", echo.port)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: desk\r\nContent-Length: 3\r\n\r\nabc")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"3"
        # the next request on the kept-alive connection starts later than one deadline after the connection
        # opened, and its header (slow, but quicker than the deadline) ends later than that too
        await asyncio.sleep(DEADLINE * 0.75)
        for piece in (b"POST /echo HTTP/1.1\r\n", b"Host: desk\r\n", b"Content-Length: 2\r\n\r\n"):
            writer.write(piece)
            await asyncio.sleep(DEADLINE * 0.25)
        writer.write(b"ab")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"2"
    finally:
        writer.close()


# ------------------------------------------------------------------ an answer in one send


class _RecordingTransport(OneSendTransport):
    """The desk's transport, recording what it hands to the real one (one entry per send)."""

    sends: list[bytes] = []

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        real_write = transport.write

        def write(data: Any) -> None:
            _RecordingTransport.sends.append(bytes(data))
            real_write(data)

        transport.write = write  # type: ignore[method-assign]
        super().__init__(transport, loop)


async def _answers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/small: a 5-byte answer; /stream: three chunks with pauses between them, the last one 200 KiB;
    /close: a small answer that closes the connection."""
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for chunk in (b"first|", b"second|", b"z" * 200_000):
            await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-length", b"5")] + ([(b"connection", b"close")] if scope["path"] == "/close" else [])
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
async def recorded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LoopbackServer]:
    monkeypatch.setattr(server_module, "OneSendTransport", _RecordingTransport)
    _RecordingTransport.sends = []
    server = LoopbackServer(_answers)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_an_answers_head_and_body_leave_in_one_send(recorded: LoopbackServer) -> None:
    async with httpx.AsyncClient(base_url=recorded.url, timeout=10, trust_env=False) as http:
        for _ in range(3):  # kept alive: each answer of the connection, one send each
            r = await http.get("/small")
            assert (r.status_code, r.text) == (200, "hello")
    assert len(_RecordingTransport.sends) == 3
    for sent in _RecordingTransport.sends:
        assert sent.startswith(b"HTTP/1.1 200 OK\r\n") and sent.endswith(b"\r\n\r\nhello")


async def test_streamed_and_closing_answers_arrive_whole_and_in_order(recorded: LoopbackServer) -> None:
    async with httpx.AsyncClient(base_url=recorded.url, timeout=10, trust_env=False) as http:
        r = await http.get("/stream")
        assert (r.status_code, r.content) == (200, b"first|second|" + b"z" * 200_000)
        r = await http.get("/close")  # the held answer is sent before the connection closes
        assert (r.status_code, r.text, r.headers["connection"]) == (200, "hello", "close")
    # the stream's head waited for its first chunk (a step later) no longer than that step: it left alone
    # then, and the chunks each as they came; the large one was not held
    stream = b"".join(_RecordingTransport.sends[:-1])
    assert stream.startswith(b"HTTP/1.1 200 OK\r\n") and stream.endswith(b"0\r\n\r\n")
    assert _RecordingTransport.sends[-1].endswith(b"\r\n\r\nhello")
