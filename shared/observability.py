"""Request ids, JSON logs, Prometheus metrics and the body-size guard, as pure ASGI middleware.

Pure ASGI (not BaseHTTPMiddleware) keeps the per-request cost low on the click-day path.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PAYLOAD_TOO_LARGE, problem_body
from shared.i18n import pick_language

REQUESTS = Counter("desk_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram(
    "desk_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_RID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# The request id of the request being served, so outbound calls to peer services carry it along.
_REQUEST_ID: ContextVar[str | None] = ContextVar("desk_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context (None outside a request)."""
    return _REQUEST_ID.get()


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o, default=str).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )


_CHILDREN: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}


class RequestContextMiddleware:
    """Request id (accepted from X-Request-ID or made), returned in the response; metrics; access log;
    and a refusal of bodies over the documented limit (413 problem) before any parsing."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        max_body_bytes: int,
        access_log: bool = True,
        body_limits: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.service = service
        self.max_body = max_body_bytes
        # (path regex, limit): the few routes that take larger bodies (file uploads) say so explicitly
        self.body_limits = [(re.compile(p), n) for p, n in body_limits]
        self.access_log = access_log
        self.log = structlog.get_logger("desk.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        length = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                cand = v.decode("latin-1")
                rid = cand if _RID_RE.match(cand) else None
            elif k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status = 500
        rid_b = rid.encode()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid_b)]
            await send(message)

        rid_token = _REQUEST_ID.set(rid)
        max_body = self._limit_for(scope["path"])
        try:
            if length is not None and length > max_body:
                await self._too_large(scope, receive, send_wrapper, max_body)
            else:
                received = 0

                async def receive_guard() -> Message:
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > max_body:
                            # FastAPI turns parse errors into 400; an HTTPException keeps the 413.
                            raise StarletteHTTPException(413)
                    return message

                await self.app(scope, receive_guard, send_wrapper)
        finally:
            _REQUEST_ID.reset(rid_token)
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - start
        key = (self.service, scope["method"], path, status)
        metrics = _CHILDREN.get(key)
        if metrics is None:  # the labelled series, looked up once per route and status, not on every request
            metrics = _CHILDREN[key] = (
                REQUESTS.labels(self.service, scope["method"], path, str(status)),
                LATENCY.labels(self.service, scope["method"], path),
            )
        metrics[0].inc()
        metrics[1].observe(elapsed)
        if self.access_log:
            self.log.info(
                "request",
                request_id=rid,
                method=scope["method"],
                path=scope["path"],
                route=path,
                status=status,
                ms=round(elapsed * 1000, 2),
            )

    def _limit_for(self, path: str) -> int:
        for pattern, limit in self.body_limits:
            if pattern.match(path):
                return limit
        return self.max_body

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, max_body: int) -> None:
        req = Request(scope, receive)
        body = problem_body(
            PAYLOAD_TOO_LARGE,
            req,
            pick_language(req.headers.get("accept-language")),
            detail=f"Limit: {max_body} bytes.",
            extra={"max_bytes": max_body},
        )
        resp = Response(orjson.dumps(body), status_code=413, media_type="application/problem+json")
        await resp(scope, receive, send)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
