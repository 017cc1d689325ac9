"""One contract across the three services (README, "Conventions"), checked on the OpenAPI documents the code
renders: one schema per name across the documents, one pagination, money and decimals as patterned strings,
UUID ids, the headers each operation reads declared, one verdict item shape."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from desk.cli import SERVICES, render_openapi
from shared.schemas import DECIMAL_PATTERN, MONEY_PATTERN, VerdictItem

METHODS = {"get", "put", "post", "patch", "delete"}
PAGE_PARAMS = {"cursor", "limit"}
# Names that page a list in some other style, refused on any list operation.
OTHER_PAGING = {"after", "before", "page", "page_size", "per_page", "offset", "skip", "start", "size", "next"}
# Lists that are short and fixed: one page, `next_cursor` always null.
ONE_PAGE = {"/v1/events/types", "/v1/webhooks/allowed-ports"}
# Identifiers that are not the id of a desk object, each for its reason (README, "Conventions"):
NOT_UUID = {
    "client_id": "an OAuth client identifier (RFC 6749), chosen at registration",
    "principal_client_id": "the same OAuth client identifier",
    "request_id": "a trace id, as the caller's X-Request-ID header or generated",
    "resource_id": "the audited object's key, whatever its kind",
    "key_id": "the signing key's fingerprint",
}
# Positions in append-only logs: ordered integers, so that readers can page and compare them.
LOG_POSITIONS = {("AuditRecordOut", "id"), ("AuditFailure", "id"), ("BudgetEntryOut", "id"), ("DeliveryOut", "id")}
LOG_POSITIONS |= {("PingOut", "delivery_id"), ("path", "delivery_id")}


@cache
def doc(service: str) -> dict[str, Any]:
    return json.loads(render_openapi(service))


def _operations(d: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in d["paths"].items() for m, op in item.items() if m in METHODS]


def _resolve(d: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return d["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else node


def _response_schema(d: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    for code in ("200", "201"):
        content = op.get("responses", {}).get(code, {}).get("content", {}).get("application/json")
        if content and "schema" in content:
            return _resolve(d, content["schema"])
    return None


def _is_list(d: dict[str, Any], op: dict[str, Any]) -> bool:
    """A paged list answers an object with `items` and `next_cursor`."""
    schema = _response_schema(d, op)
    return bool(schema and {"items", "next_cursor"} <= set(schema.get("properties", {})))


def _properties(d: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, prop, spec)
        for name, schema in d["components"]["schemas"].items()
        for prop, spec in schema.get("properties", {}).items()
    ]


def _variants(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in spec.get("anyOf", [spec]) if v.get("type") != "null"]


def test_a_schema_name_means_one_schema_across_the_three_documents() -> None:
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    clashes: list[str] = []
    for service in SERVICES:
        for name, schema in doc(service)["components"]["schemas"].items():
            if "__" in name:  # pydantic's fallback when one document holds two models of one name
                clashes.append(f"{service}: {name} is named by its module: two models share its name")
            if name in seen and seen[name][1] != schema:
                clashes.append(f"{name}: differs between {seen[name][0]} and {service}")
            seen.setdefault(name, (service, schema))
    assert not clashes, "\n".join(clashes)


@pytest.mark.parametrize("service", SERVICES)
def test_every_list_pages_with_cursor_and_limit_and_answers_next_cursor(service: str) -> None:
    d = doc(service)
    lists = [(path, m, op) for path, m, op in _operations(d) if m == "get" and _is_list(d, op)]
    assert len(lists) > 3  # the walk found the lists
    wrong: list[str] = []
    for path, method, op in lists:
        where = f"{method.upper()} {path}"
        query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        if path not in ONE_PAGE and not PAGE_PARAMS <= set(query):
            wrong.append(f"{where}: no cursor/limit")
        for name, p in query.items():
            if name in OTHER_PAGING and not p.get("deprecated"):
                wrong.append(f"{where}: pages with `{name}`")
        if "limit" in query:
            schema = _variants(query["limit"]["schema"])[0]
            if (schema.get("minimum"), schema.get("maximum")) != (1, 100):
                wrong.append(f"{where}: limit is not 1..100 ({schema})")
        if "cursor" in query and _variants(query["cursor"]["schema"])[0].get("type") != "string":
            wrong.append(f"{where}: cursor is not an opaque string")
        next_cursor = _response_schema(d, op)["properties"]["next_cursor"]  # type: ignore[index]
        if [v.get("type") for v in _variants(next_cursor)] != ["string"]:
            wrong.append(f"{where}: next_cursor is not a string or null")
    # no response pages with another field name either
    for name, prop, _ in _properties(d):
        if prop in {"next_after", "next_page", "next_offset"}:
            wrong.append(f"{name}.{prop}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES)
def test_money_and_every_decimal_are_strings_with_a_pattern(service: str) -> None:
    d = doc(service)
    wrong: list[str] = []
    money = 0

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "number":
                wrong.append(f"{where}: a number (amounts and decimals are strings)")
            if node.get("type") == "string" and node.get("pattern") == MONEY_PATTERN:
                nonlocal money
                money += 1
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(d, "")
    assert money > 0, "no amount carries the money pattern"
    assert not wrong, "\n".join(wrong)


def test_the_money_pattern_is_what_validation_accepts() -> None:
    import re

    from pydantic import BaseModel, ValidationError

    from shared.schemas import Money

    class M(BaseModel):
        amount: Money

    accepted = ["0", "7", "1234.5", "1234.50", "0005"]
    refused = ["1e3", "+5", "5.", ".5", "1_000", "5.000", " 5 ", "5,00", "NaN", "Infinity", ""]
    for v in accepted:
        assert re.fullmatch(MONEY_PATTERN, v) and M(amount=v).amount is not None
    for v in refused:
        assert not re.fullmatch(MONEY_PATTERN, v), v
        with pytest.raises(ValidationError):
            M(amount=v)
    with pytest.raises(ValidationError):
        M(amount=5)  # type: ignore[arg-type]
    assert re.fullmatch(DECIMAL_PATTERN, "0.016")


@pytest.mark.parametrize("service", SERVICES)
def test_ids_are_uuids(service: str) -> None:
    d = doc(service)
    wrong = []
    for name, prop, spec in _properties(d):
        if (prop != "id" and not prop.endswith("_id")) or prop in NOT_UUID or (name, prop) in LOG_POSITIONS:
            continue
        if name == "Subject":  # an event's subject: the object's key as a string, whatever its kind
            continue
        variants = _variants(spec)
        if any(v.get("format") != "uuid" and "$ref" not in v and v.get("type") != "array" for v in variants):
            wrong.append(f"{name}.{prop}: {spec}")
    for path, method, op in _operations(d):
        for p in op.get("parameters", []):
            if p["in"] != "path" or not p["name"].endswith("_id") or p["name"] in NOT_UUID:
                continue
            if ("path", p["name"]) not in LOG_POSITIONS and _variants(p["schema"])[0].get("format") != "uuid":
                wrong.append(f"{method.upper()} {path}: {p['name']}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES)
def test_the_headers_an_operation_reads_are_declared(service: str) -> None:
    d = doc(service)
    missing = []
    idempotent = if_match = 0
    for path, method, op in _operations(d):
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        if "Accept-Language" not in headers:
            missing.append(f"{method.upper()} {path}: Accept-Language")
        idempotent += "Idempotency-Key" in headers
        if_match += "If-Match" in headers
        if "Idempotency-Key" in headers and method != "post":
            missing.append(f"{method.upper()} {path}: Idempotency-Key on a {method}")
    assert not missing, "\n".join(missing)
    assert idempotent > 5 and if_match > 5


@pytest.mark.parametrize(
    ("service", "method", "path", "header"),
    [
        ("intake", "post", "/v1/applications/{application_id}/submit", "Idempotency-Key"),
        ("evaluation", "post", "/v1/calls/{call_id}/allocation", "Idempotency-Key"),
        ("evaluation", "post", "/v1/decisions/{decision_id}/accept", "If-Match"),
        ("monitoring", "put", "/v1/projects/{project_id}/iban", "If-Match"),
    ],
)
def test_known_operations_declare_the_header_they_read(service: str, method: str, path: str, header: str) -> None:
    op = doc(service)["paths"][path][method]
    assert header in {p["name"] for p in op["parameters"] if p["in"] == "header"}


@pytest.mark.parametrize(
    ("service", "schema", "field", "item"),
    [
        ("intake", "CheckResultOut", "problems", "VerdictItem"),
        ("evaluation", "EvaluationOut", "checks", "AdmissibilityCheckOut"),
        ("monitoring", "LineOut", "checks", "VerdictItem"),
    ],
)
def test_pre_check_admissibility_and_claim_checks_answer_one_verdict_item(
    service: str, schema: str, field: str, item: str
) -> None:
    schemas = doc(service)["components"]["schemas"]
    assert schemas[schema]["properties"][field]["items"] == {"$ref": f"#/components/schemas/{item}"}
    verdict = VerdictItem.model_json_schema()
    got = schemas[item]
    for prop in ("code", "blocking", "path", "article", "message", "message_it", "message_en", "details"):
        want = {k: v for k, v in verdict["properties"][prop].items() if k != "default"}
        assert {k: v for k, v in got["properties"][prop].items() if k != "default"} == want, (item, prop)
    # outcome: the verdict's values, or fewer (admissibility never warns)
    outcomes = set(got["properties"]["outcome"]["enum"])
    assert outcomes <= set(verdict["properties"]["outcome"]["enum"]) and {"pass", "fail"} <= outcomes
    assert set(verdict["required"]) <= set(got["required"])
