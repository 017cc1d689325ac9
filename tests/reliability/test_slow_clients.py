"""Slow clients cannot exhaust a service: intake as deployed (`desk serve`, a real process) with short deadlines
cuts connections that trickle their header or never finish their body, answers everyone else meanwhile, and
beyond its connection cap answers 503 at once instead of running out of open files.

Before the desk had its own protocol (shared/server.py) uvicorn kept such connections open for as long as the
clients liked: every slow connection here would still be open at the end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.reliability.processes import IntakeProcess

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
MARGIN = 3.0  # the server closes at the deadline; this much later is still "in time" on a loaded machine
MAX_CONNECTIONS = 60
SLOW_HEADERS = 50
TRICKLE_EVERY = 0.2


@pytest.fixture
def intake(database_url: str) -> Iterator[IntakeProcess]:
    proc = IntakeProcess(
        database_url,
        graceful_seconds=2,
        env={
            "DESK_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "DESK_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "DESK_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        },
    )
    try:
        proc.start()
        yield proc
    finally:
        proc.close()  # SIGTERM, then SIGKILL: never left running, whatever the test did


@dataclass
class RawConnection:
    """One client connection driven byte by byte; `received` is what the server sent before closing."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: float
    closed: float | None = None
    received: bytes = b""
    reset: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = cls(reader, writer, time.monotonic())
        conn.tasks.append(asyncio.create_task(conn._read_until_closed()))
        return conn

    async def _read_until_closed(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                self.received += chunk
        except ConnectionError:
            self.reset = True
        self.closed = time.monotonic()

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def trickle(self, data: bytes, every: float) -> None:
        async def run() -> None:
            for i in range(len(data)):
                if self.closed is not None:
                    return
                try:
                    self.writer.write(data[i : i + 1])
                    await self.writer.drain()
                except ConnectionError:
                    return
                await asyncio.sleep(every)

        self.tasks.append(asyncio.create_task(run()))

    @property
    def lifetime(self) -> float | None:
        return None if self.closed is None else self.closed - self.opened

    def problem(self) -> tuple[int, dict[str, str], dict[str, object]]:
        head, _, body = self.received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        return int(status_line.split()[1]), headers, json.loads(body)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


async def _all_closed(conns: list[RawConnection], within: float) -> None:
    await asyncio.wait([c.tasks[0] for c in conns], timeout=within)  # their readers end when the server closes


def _cut_counts(metrics: str) -> dict[str, float]:
    out = {}
    for line in metrics.splitlines():
        if line.startswith("desk_http_connections_cut_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


async def test_slow_clients_are_cut_in_time_while_others_are_served_and_the_cap_refuses_the_excess(
    intake: IntakeProcess,
) -> None:
    conns: list[RawConnection] = []
    try:
        # 1. fifty clients trickle a header that never ends, one declares 1000 bytes of body and sends 10
        slow = [await RawConnection.open(intake.port) for _ in range(SLOW_HEADERS)]
        conns += slow
        for c in slow:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: desk\r\n")
            c.trickle(b"X-Slow: " + b"a" * 200, every=TRICKLE_EVERY)  # 40 s of header at this pace
        short_body = await RawConnection.open(intake.port)
        conns.append(short_body)
        short_body.send(
            b"POST /v1/oauth/token HTTP/1.1\r\nHost: desk\r\nAccept-Language: en\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"grant_type"
        )

        # meanwhile an ordinary client is answered promptly, again and again
        latencies = []
        async with httpx.AsyncClient(base_url=intake.url, timeout=10, trust_env=False) as http:
            while any(c.closed is None for c in [*slow, short_body]):
                started = time.monotonic()
                r = await http.get("/healthz")
                latencies.append(time.monotonic() - started)
                assert r.status_code == 200, r.text
                assert started - slow[0].opened < HEADER_TIMEOUT + MARGIN + 1, "slow connections still open"
                await asyncio.sleep(0.05)
        assert len(latencies) >= 10 and max(latencies) < 1.0, latencies

        for c in [*slow, short_body]:
            assert c.lifetime is not None and HEADER_TIMEOUT * 0.9 <= c.lifetime <= HEADER_TIMEOUT + MARGIN, c.lifetime
        # the body that never came: 408 as a problem, in the language asked, and the connection closed
        status, headers, problem = short_body.problem()
        assert (status, problem["type"], problem["status"]) == (408, "/problems/request-timeout", 408)
        assert problem["title"] == "Request not received in time" and headers["connection"] == "close"

        # 2. the cap: sixty connections that send nothing hold every place of the process...
        holders = [await RawConnection.open(intake.port) for _ in range(MAX_CONNECTIONS)]
        conns += holders
        # ...so one more is answered 503 at once and closed, without being read
        extra = await RawConnection.open(intake.port)
        conns.append(extra)
        await _all_closed([extra], within=MARGIN)
        assert extra.lifetime is not None and extra.lifetime < 1.0
        assert all(h.closed is None for h in holders), "the holders were still open: the cap refused it"
        status, headers, problem = extra.problem()
        assert (status, problem["type"], headers["retry-after"]) == (503, "/problems/server-busy", "1")

        # the holders are cut at their header deadline (408), and the process, alive, serves again
        await _all_closed(holders, within=HEADER_TIMEOUT + MARGIN)
        for h in holders:
            assert h.lifetime is not None and HEADER_TIMEOUT * 0.9 <= h.lifetime <= HEADER_TIMEOUT + MARGIN
            assert h.problem()[0] == 408
        assert intake.proc is not None and intake.proc.poll() is None
        async with httpx.AsyncClient(base_url=intake.url, timeout=10, trust_env=False) as http:
            assert (await http.get("/healthz")).status_code == 200
            counts = _cut_counts((await http.get("/metrics")).text)
        assert counts == {"header_timeout": SLOW_HEADERS + MAX_CONNECTIONS, "body_timeout": 1, "over_capacity": 1}
    finally:
        for c in conns:
            await c.close()
