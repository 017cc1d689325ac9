"""How a desk service is served: uvicorn with deadlines on slow clients and a cap on connections.

uvicorn (0.54) closes idle keep-alive connections, but it never times out a request still arriving: a
client that sends its header a byte at a time, or declares a body it never sends, keeps its connection,
and so an open file, for as long as it likes; enough of them take the process to its open-file limit and
every new client fails. So every desk service is served with `DeskHttpProtocol`, uvicorn's own httptools
protocol plus:

- the whole header of a request must arrive within `http_header_timeout_seconds`, counted from the
  connection's opening (a client that sends nothing) or from the request's first byte (the idle time
  between two requests of a kept-alive connection is uvicorn's keep-alive timeout);
- its whole body within `http_body_timeout_seconds` of the header;
- time the client spends waiting for us (an earlier answer still being computed, a body we stopped reading
  because the application has not consumed what came) does not count: the deadline is extended instead;
- on expiry the client gets 408 (problem+json) unless an answer was started, and the connection is closed;
- a process keeps at most `http_max_connections` client connections: one more is answered 503 and closed
  at once, so a crowd of connections never costs more open files than that;
- at start the open-file soft limit is raised to the hard limit, and the cap lowered to fit under it;
- an answer's head and the body that follows it leave in one send (`OneSendTransport`): uvicorn writes
  them separately, two system calls and, on a connection without Nagle's delay, two packets the client
  reads one by one.

This builds on uvicorn's internals (its protocol class and worker supervisor), which is why uvicorn is
pinned exactly; tests/reliability/test_slow_clients.py holds a real server process to the rules above.
"""

from __future__ import annotations

import asyncio
import http
import resource
import sys
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

if TYPE_CHECKING:
    from prometheus_client import Counter

    from shared.settings import DeskSettings

# Only uvicorn at import: `--workers N` unpickles the configuration, hence imports this module, in each new
# worker before it answers the supervisor's health check; the rest is imported on first use (the application
# has imported it long before a connection is cut).

# Open files a process needs besides its clients: database pools, logs, the listening socket, the event loop.
FD_RESERVE = 128
BUSY_RETRY_AFTER_SECONDS = 1
STARTUP_FAILURE = 3  # uvicorn's exit code when the server could not start
WORKER_HEALTHCHECK_SECONDS = 20
NOTICE_EVERY_SECONDS = 10.0  # an attack cuts thousands of connections: one log line per period, with counts

CutReason = Literal["header_timeout", "body_timeout", "over_capacity"]


@cache
def connections_cut() -> Counter:
    from prometheus_client import Counter

    return Counter(
        "desk_http_connections_cut_total",
        "Client connections the server closed on its own (slow or over the cap)",
        ["reason"],
    )


def _log() -> Any:
    import structlog

    return structlog.get_logger("desk.server")


@dataclass(frozen=True)
class ServerLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int


class DeskServerConfig(uvicorn.Config):
    """uvicorn's configuration with the desk's protocol and limits (picklable, so workers get it too)."""

    def __init__(self, app: Any, *, limits: ServerLimits, **options: Any) -> None:
        # no WebSocket endpoint anywhere in the desk: an upgrade request is served as plain HTTP
        super().__init__(app, http=DeskHttpProtocol, ws="none", **options)
        self.limits = limits


class _Notices:
    """Counts of cut connections, logged at most once per period."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.since = time.monotonic()
        self.logged = False

    def add(self, reason: CutReason, client: tuple[str, int] | None) -> None:
        connections_cut().labels(reason).inc()
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if self.logged and now - self.since < NOTICE_EVERY_SECONDS:
            return
        _log().warning(
            "client connections cut",
            **self.counts,
            seconds=round(now - self.since, 1),
            last_client=client[0] if client else None,
        )
        self.counts, self.since, self.logged = {}, now, True


NOTICES = _Notices()


def _problem_bytes(
    slug: str, accept_language: str | None, server_state: ServerState, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> bytes:
    """A whole HTTP response carrying the catalogue's problem `slug`, closing the connection."""
    import orjson

    from shared.errors import CATALOGUE, PROBLEM_MEDIA_TYPE, problem_body
    from shared.i18n import pick_language

    kind = CATALOGUE[slug]
    lang = pick_language(accept_language)
    body = orjson.dumps(problem_body(kind, None, lang))
    lines = [f"HTTP/1.1 {kind.status} {http.HTTPStatus(kind.status).phrase}".encode("ascii")]
    headers = [
        *server_state.default_headers,
        (b"content-type", PROBLEM_MEDIA_TYPE.encode("ascii")),
        (b"content-language", lang.encode("ascii")),
        (b"vary", b"Accept-Language"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close"),
        *extra,
    ]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# A write up to this size waits for the rest of the loop's step: the next write joins it in one send.
HOLD_AT_MOST_BYTES = 4096
SEND_JOINED_UP_TO_BYTES = 65536


class OneSendTransport(asyncio.Transport):
    """The connection's transport, with a small write held until the next write or the end of the event
    loop's step, whichever comes first, and then sent with it.

    uvicorn writes an answer's status line and headers as soon as the application starts the response, and
    the body when it sends it, usually in the same step: held, the head goes out with the body in one send.
    At most one write of at most `HOLD_AT_MOST_BYTES` is held, never beyond the step (a streaming body that
    waits between chunks sends each as it comes); order is kept, and `close` sends what is held first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= SEND_JOINED_UP_TO_BYTES:
                self._transport.write(held + bytes(data))
            else:  # not worth copying a large body for
                self._transport.write(held)
                self._transport.write(data)
        elif len(data) <= HOLD_AT_MOST_BYTES and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self._send_held)
        else:
            self._transport.write(data)

    def _send_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._send_held()
        self._transport.write_eof()


class DeskHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a cap on connections."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, DeskServerConfig):
            raise TypeError("DeskHttpProtocol needs a DeskServerConfig (shared.server.server_config)")
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits
        self._deadline: asyncio.TimerHandle | None = None
        # where the request being received is: its header, its body, or between requests ("idle")
        self._phase: Literal["header", "body", "idle"] = "header"
        self._refused = False

    # -------------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # closed before anything is read: the open file is given back now, not when the client pleases
            self._refused = True
            self.transport = transport
            NOTICES.add("over_capacity", transport.get_extra_info("peername"))
            transport.write(
                _problem_bytes(
                    "server-busy",
                    None,
                    self.server_state,
                    ((b"retry-after", str(BUSY_RETRY_AFTER_SECONDS).encode("ascii")),),
                )
            )
            transport.close()
            return
        super().connection_made(transport)
        # after uvicorn's flow control took the real transport (it pauses and resumes reading on it)
        self.transport = OneSendTransport(transport, self.loop)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        # a request left unfinished by this read gets its deadline now (none while one is running)
        if self._deadline is None and self._phase != "idle" and not self.transport.is_closing():
            self._arm()

    # -------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self._phase = "header"
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._phase = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = "idle"
        super().on_message_complete()

    # -------------------------------------------------------------- deadlines

    def _arm(self) -> None:
        timeout = self.limits.header_timeout if self._phase == "header" else self.limits.body_timeout
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _waiting_for_us(self) -> bool:
        if self.flow is not None and self.flow.read_paused:
            return True  # we stopped reading (the application has not consumed the body, or pipelining)
        if self.cycle is None:
            return False
        if self._phase == "body":  # the client sends the body after our "100 Continue", sent when the app reads
            return self.cycle.waiting_for_100_continue
        # a pipelined request's header arrives while the previous answer is still being computed
        return not self.cycle.response_complete

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._phase == "idle":
            return
        if self._waiting_for_us():
            self._arm()
            return
        cycle = self.cycle if self._phase == "body" else None
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # the application's receive() now sees http.disconnect, and whatever it sends goes nowhere
            cycle.disconnected = True
            cycle.message_event.set()
        NOTICES.add("header_timeout" if self._phase == "header" else "body_timeout", self.client)
        if not answered:
            languages = dict(self.headers).get(b"accept-language") if cycle is not None else None
            self.transport.write(
                _problem_bytes("request-timeout", languages.decode("latin-1") if languages else None, self.server_state)
            )
        self.transport.close()


# ------------------------------------------------------------------ process start


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # a platform that caps it lower (macOS: OPEN_MAX)
            pass
    return int(soft if soft != resource.RLIM_INFINITY else 1 << 20)


def server_config(app: Any, settings: DeskSettings, **options: Any) -> DeskServerConfig:
    """The desk's server configuration for `app` (an ASGI app or an import string; uvicorn's options pass
    through). Raises the open-file limit of this process, which its worker processes inherit."""
    open_files = raise_open_file_limit()
    cap = min(settings.http_max_connections, max(1, open_files - FD_RESERVE))
    if cap < settings.http_max_connections:
        _log().warning(
            "connection cap lowered to fit the open-file limit",
            configured=settings.http_max_connections,
            cap=cap,
            open_file_limit=open_files,
        )
    # a new worker answers the supervisor's health check only once it has imported the desk's modules, which on
    # a busy node (pods added in the middle of a click day) takes longer than uvicorn's 5 s: it would be killed
    # and started again, over and over; a worker that hangs later is still replaced, after this long
    options.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_SECONDS)
    limits = ServerLimits(
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_connections=cap,
    )
    return DeskServerConfig(app, limits=limits, **options)


def serve(config: DeskServerConfig) -> None:
    """Run the server as `uvicorn.run` does: in this process, or in `config.workers` processes sharing the
    listening socket (each with its own cap of connections)."""
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
