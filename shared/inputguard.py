"""Control characters are refused at the edge, once, for every service: a 422 validation problem.

PostgreSQL refuses NUL in `text` (and a NUL reaching it answered 500 from a dozen routes: company names,
application fields, webhook URLs, query filters, the token endpoint's `client_id`...); the other C0 controls
are stored but have no use in any of the desk's text fields, and turn into trouble in the documents, exports
and logs made from them. So one pure ASGI middleware, installed by `shared.app.create_app` outside every
service's own middleware (intake's click-day fast path included), looks at the decoded path, the query string
and the body, and answers `validation-error` with one `errors[]` entry per offending field (a JSON pointer to
it) before anything else sees the request. Tab, line feed and carriage return stay allowed.

Cost on the hot paths: a GET costs one regex over the path and one over the raw query string. A body is read
whole only when it is JSON, form-encoded or multipart (bounded by the body-size guard outside), and parsed
only when a cheap byte scan finds a raw control byte or an escape that could encode one (`\\u00..` in JSON,
`%0.`/`%1.` in a form); multipart forms look at their text fields and file names only, never at a file's
content.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import VALIDATION, http_error_handler, problem_body, problem_response
from shared.i18n import pick_language, validation_message

CODE = "control_character"
MAX_ERRORS = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# what might decode to a control character: a raw one, or its escape in JSON / in percent-encoding
_JSON_SUSPECT = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\\u00[01]", re.IGNORECASE)
_FORM_SUSPECT = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|%[01][0-9a-f]", re.IGNORECASE)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PARAM = re.compile(r"\{([^}]+)\}")


def _pointer(parts: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _first_control(text: str) -> str | None:
    found = _CONTROL.search(text)
    return found.group() if found else None


class _Found:
    """The offending fields found so far: (location, JSON pointer, the first control character)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def check(self, location: str, parts: list[str | int], text: str) -> None:
        if len(self.items) < MAX_ERRORS and (char := _first_control(text)) is not None:
            self.items.append((location, _pointer(parts), char))

    def walk_json(self, value: Any, parts: list[str | int]) -> None:
        if isinstance(value, str):
            self.check("body", parts, value)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.check("body", [*parts, k], k)  # a key is text too
                self.walk_json(v, [*parts, k])
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.walk_json(v, [*parts, i])

    def pairs(self, location: str, pairs: list[tuple[str, str]]) -> None:
        for k, v in pairs:
            self.check(location, [k], k)
            self.check(location, [k], v)


class ControlCharacterGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._compiled: list[tuple[re.Pattern[str], list[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = _Found()
        if _first_control(scope["path"]) is not None:
            self._path(scope, found)
        query = scope.get("query_string", b"")
        if query and _FORM_SUSPECT.search(query):
            found.pairs("query", parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        # one refusal at a time is enough: when the path or the query speaks, the body is not read
        kind = self._body_kind(scope) if scope["method"] in _BODY_METHODS and not found.items else None
        if kind is not None:
            try:
                body, receive = await _buffer(receive)
            except StarletteHTTPException as exc:  # the body-size guard outside: 413
                response = await http_error_handler(Request(scope), exc)
                await response(scope, receive, send)
                return
            if body is None:  # the client went away while sending
                return
            await self._body(scope, kind, body, found)
        if found.items:
            await self._refuse(scope, receive, send, found)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _body_kind(scope: Scope) -> str | None:
        for k, v in scope["headers"]:
            if k == b"content-type":
                media = v.split(b";", 1)[0].strip().lower()
                if media == b"application/json" or media.endswith(b"+json"):
                    return "json"
                if media == b"application/x-www-form-urlencoded":
                    return "form"
                if media == b"multipart/form-data":
                    return "multipart"
                return None
        return None

    def _path(self, scope: Scope, found: _Found) -> None:
        """Name the path parameter that holds the character, when a documented path matches; else the whole
        path. (Rare: the templates are compiled the first time it happens.)"""
        path = scope["path"]
        for pattern, names in self._templates(scope.get("app")):
            match = pattern.match(path)
            if match is not None:
                for name, value in zip(names, match.groups(), strict=True):
                    found.check("path", [name], value)
                if found.items:
                    return
        found.check("path", [], path)

    def _templates(self, app: Any) -> list[tuple[re.Pattern[str], list[str]]]:
        if self._compiled is None:
            compiled = []
            openapi = getattr(app, "openapi", None)
            for template in (openapi() if callable(openapi) else {}).get("paths", {}):
                names = _PARAM.findall(template)
                regex = "".join(
                    re.escape(part) if i % 2 == 0 else "([^/]+)" for i, part in enumerate(_PARAM.split(template))
                )
                compiled.append((re.compile(regex + r"\Z", re.DOTALL), names))
            self._compiled = compiled
        return self._compiled

    @staticmethod
    async def _body(scope: Scope, kind: str, body: bytes, found: _Found) -> None:
        if kind == "json":
            if not _JSON_SUSPECT.search(body):
                return
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                return  # the route answers its own 400 malformed-request
            found.walk_json(value, [])
        elif kind == "form":
            if _FORM_SUSPECT.search(body):
                found.pairs("body", parse_qsl(body.decode("latin-1"), keep_blank_values=True))
        elif _RAW_CONTROL.search(body):  # multipart: only its text fields, never a file's content
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            try:
                form = await Request(scope, replay).form()
            except Exception:  # noqa: BLE001 - a malformed form gets the route's own answer
                return
            try:
                # a file part's name is text the service stores; its content is not looked at
                found.pairs(
                    "body", [(k, (v.filename or "") if isinstance(v, UploadFile) else v) for k, v in form.multi_items()]
                )
            finally:
                await form.close()

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, found: _Found) -> None:
        request = Request(scope, receive)
        lang = pick_language(request.headers.get("accept-language"))
        errors = [
            {
                "code": CODE,
                "path": path,
                "location": location,
                "message": validation_message(CODE, {"codepoint": f"{ord(char):04X}"}, "", lang),
            }
            for location, path, char in found.items
        ]
        response = problem_response(problem_body(VALIDATION, request, lang, errors=errors))
        await response(scope, receive, send)


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole body, and a receive that hands it over again (then goes on with the real one)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay
