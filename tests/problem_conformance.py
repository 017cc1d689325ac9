"""Proof that the derived error responses (shared/openapi_problems.py) do not leave anything out.

Every app the tests build records each problem response it answers (route template, method, type) with
`record_problems`, an outermost ASGI middleware; at the end of each test `problems_conform` (tests/conftest.py)
asserts that every recorded type is in that operation's `x-problem-types` of the app's own OpenAPI document.
A request that matches no operation (an unknown path, a method the path does not take) is not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_MEDIA_TYPE = b"application/problem+json"


@dataclass(frozen=True)
class Answered:
    app: Any
    method: str
    template: str
    status: int
    type: str


@dataclass
class Recorder:
    answered: list[Answered] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def clear(self) -> None:
        self.answered.clear()

    def undeclared(self) -> list[str]:
        out = []
        for a in self.answered:
            # apps of one service render one document: the first one's is kept (a committing app per test
            # would otherwise derive it again)
            document = self.documents.setdefault(a.app.title, a.app.openapi())
            op = document.get("paths", {}).get(a.template, {}).get(a.method.lower())
            declared = (op or {}).get("x-problem-types", [])
            if a.type not in declared:
                out.append(f"{a.app.title}: {a.method} {a.template} answered {a.status} {a.type}, not declared")
        return sorted(set(out))


RECORDER = Recorder()


def _template(app: Any, scope: Scope) -> str | None:
    for route in iter_route_contexts(app.routes):  # included routers' routes with their prefixes
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(route.path_format)
    return None


def record_problems(desk_app: Any) -> None:
    """Wrap `desk_app` (a desk FastAPI app, before its first request) so that its problem answers are recorded."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def watch(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] >= 400:
                    headers = dict(message.get("headers", []))
                    if headers.get(b"content-type", b"").startswith(PROBLEM_MEDIA_TYPE):
                        watch.status = message["status"]  # type: ignore[attr-defined]
                elif message["type"] == "http.response.body" and getattr(watch, "status", None):
                    watch.body += message.get("body", b"")  # type: ignore[attr-defined]
                    if not message.get("more_body"):
                        _record(desk_app, scope, watch.status, watch.body)  # type: ignore[attr-defined]
                        watch.status = None  # type: ignore[attr-defined]
                await send(message)

            watch.body = b""  # type: ignore[attr-defined]
            watch.status = None  # type: ignore[attr-defined]
            await app(scope, receive, watch)

        return asgi

    desk_app.add_middleware(middleware)


def _record(app: Any, scope: Scope, status: int, body: bytes) -> None:
    import orjson

    template = _template(app, scope)
    if template is None:
        return
    try:
        kind = orjson.loads(body).get("type")
    except orjson.JSONDecodeError:
        kind = None
    RECORDER.answered.append(Answered(app, scope["method"], template, status, str(kind)))
