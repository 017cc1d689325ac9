"""The request headers each operation reads, declared as its OpenAPI parameters (so `/docs` and generated
clients can send them). Derived from the routes, not maintained by hand:

- `Accept-Language` on every operation: every answer (problems included) is in the negotiated language;
- `Idempotency-Key` on the operations whose dependencies include `shared.routing.idempotency` (`Idempotent`);
- `If-Match` on the operations whose handler (or one of its dependencies) checks it (`check_if_match`,
  `check_if_match_value`, or reads the `if-match` header and hands it to its service).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from shared.routing import IDEMPOTENCY_KEY_PATTERN, idempotency

ACCEPT_LANGUAGE: dict[str, Any] = {
    "name": "Accept-Language",
    "in": "header",
    "required": False,
    "description": "Language of the messages (RFC 9110, q-values): `it` (default) or `en`.",
    "schema": {"type": "string", "maxLength": 200, "examples": ["en", "it-IT, en;q=0.8"]},
}
IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Send the same key to retry safely: a repeated request with the same key and body "
    "answers the first response again (`Idempotent-Replayed: true`); the same key with another body is 422.",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
}
IF_MATCH: dict[str, Any] = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The resource's current `ETag` (from its GET): a stale one is 412; where the change needs it, "
    "a missing one is 428.",
    "schema": {"type": "string", "maxLength": 64, "examples": ['"3"']},
}

_IF_MATCH_NAMES = frozenset({"check_if_match", "check_if_match_value"})
_IF_MATCH_CONSTS = frozenset({"if-match", "If-Match"})


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _reaches(fn: Any, names: frozenset[str], consts: frozenset[str], depth: int = 3) -> bool:
    """Whether `fn` calls one of `names` or reads a header named in `consts`, itself or through the desk's own
    functions it calls (a few levels down: an endpoint's helper that reads the header for it)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    if names & set(code.co_names) or any(c in consts for c in code.co_consts if isinstance(c, str)):
        return True
    if depth == 0:
        return False
    scope = getattr(fn, "__globals__", {})
    for name in code.co_names:
        callee = scope.get(name)
        module = getattr(callee, "__module__", None) or ""
        if callable(callee) and module.startswith(("services.", "shared.")) and callee is not fn:
            if _reaches(callee, names, consts, depth - 1):
                return True
    return False


def headers_read(route: Any) -> list[dict[str, Any]]:
    """The header parameters of one route, in a stable order."""
    calls = list(_calls(route.dependant))
    out = [ACCEPT_LANGUAGE]
    if any(c is idempotency for c in calls) or any(
        _reaches(c, frozenset({"idempotency_key"}), frozenset()) for c in calls
    ):
        out.append(IDEMPOTENCY_KEY)
    if any(_reaches(c, _IF_MATCH_NAMES, _IF_MATCH_CONSTS) for c in calls):
        out.append(IF_MATCH)
    return out


def declare_headers(schema: dict[str, Any], routes: list[Any]) -> None:
    """Add the headers each route reads to its operations (a header it declares itself is kept as is)."""
    paths = schema.get("paths", {})
    for route in routing.iter_route_contexts(routes):  # included routers' routes with their prefixes
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        item = paths.get(route.path_format)
        if item is None:
            continue
        for method in route.methods or ():
            op = item.get(method.lower())
            if op is None:
                continue
            params = op.setdefault("parameters", [])
            have = {(p.get("in"), p.get("name", "").lower()) for p in params}
            for header in headers_read(route):
                if ("header", header["name"].lower()) not in have:
                    params.append(dict(header))
