"""Every integer a client sends (path, query, header or body) declares a maximum that fits the database column
behind it, so an over-large number is a 422 and never reaches PostgreSQL (where it answered 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from desk.cli import SERVICES, render_openapi
from shared.pagination import encode_seq_cursor
from shared.schemas import BIGINT_MAX
from tests.factories import open_call

METHODS = {"get", "put", "post", "patch", "delete"}


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return dict(doc["components"]["schemas"][ref.rsplit("/", 1)[1]])
    return schema


def _unbounded(doc: dict[str, Any], schema: Any, where: str, seen: set[str]) -> list[str]:
    """The integers under `schema` (following $refs once each) without a maximum."""
    if isinstance(schema, list):
        return [m for i, s in enumerate(schema) for m in _unbounded(doc, s, f"{where}[{i}]", seen)]
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return []
        seen.add(ref)
        return _unbounded(doc, _resolve(doc, schema), f"{where}<{ref.rsplit('/', 1)[1]}>", seen)
    out = []
    types = schema.get("type")
    if (
        (types == "integer" or (isinstance(types, list) and "integer" in types))
        and "const" not in schema
        and "enum" not in schema
        and "maximum" not in schema
        and "exclusiveMaximum" not in schema
    ):
        out.append(where)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        out += _unbounded(doc, schema.get(key), f"{where}", seen)
    for key in ("items", "additionalProperties"):
        out += _unbounded(doc, schema.get(key), f"{where}[]", seen)
    for name, sub in (schema.get("properties") or {}).items():
        out += _unbounded(doc, sub, f"{where}/{name}", seen)
    return out


def test_the_walk_finds_an_unbounded_integer() -> None:
    doc = {
        "components": {
            "schemas": {
                "In": {"properties": {"n": {"type": "integer", "minimum": 0}, "m": {"type": "integer", "maximum": 9}}}
            }
        }
    }
    assert _unbounded(doc, {"$ref": "#/components/schemas/In"}, "body", set()) == ["body<In>/n"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_integer_a_client_sends_has_a_maximum(service: str) -> None:
    doc = json.loads(render_openapi(service))
    missing: list[str] = []
    walked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for p in op.get("parameters", []):
                walked += 1
                missing += _unbounded(doc, p.get("schema"), f"{method.upper()} {path} {p['in']} {p['name']}", set())
            for media, content in (op.get("requestBody") or {}).get("content", {}).items():
                walked += 1
                missing += _unbounded(doc, content.get("schema"), f"{method.upper()} {path} body ({media})", set())
    assert walked > 10  # the walk found the operations
    assert missing == [], "integers without a maximum:\n" + "\n".join(missing)


async def test_register_cursor_past_bigint_is_422_not_500(client, session):
    call = await open_call(session)
    r = await client.get(f"/v1/calls/{call.id}/register", params={"cursor": encode_seq_cursor(BIGINT_MAX + 1)})
    assert r.status_code == 422, r.text
    assert [(e["code"], e["path"], e["location"]) for e in r.json()["errors"]] == [
        ("cursor_invalid", "/cursor", "query")
    ]
    r = await client.get(f"/v1/calls/{call.id}/register", params={"cursor": encode_seq_cursor(BIGINT_MAX)})
    assert r.status_code == 200, r.text
