"""The committed OpenAPI documents (openapi/<service>.json) are the contract partners generate clients
from: they must match the code, and every operation must be documented well enough to be used."""

from __future__ import annotations

import json
from typing import Any

import pytest

from desk.cli import SERVICES, openapi_path, render_openapi

METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
# System probes answer 200 or 503 only; the problem catalogue's list cannot fail.
EXEMPT_FROM_4XX = ("/healthz", "/readyz", "/metrics", "/problems", "/v1/labels")


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in doc["paths"].items() for method, op in item.items() if method in METHODS
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_committed_openapi_matches_the_code(service: str) -> None:
    path = openapi_path(service)
    assert path.exists(), f"openapi/{service}.json is missing: run `desk openapi` and commit it"
    committed = path.read_text(encoding="utf-8")
    assert committed == render_openapi(service), (
        f"openapi/{service}.json differs from the code: run `desk openapi` (or `python3 dev.py desk openapi`) "
        f"and commit the result"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_has_an_id_a_summary_and_its_client_errors(service: str) -> None:
    doc = json.loads(render_openapi(service))
    ops = _operations(doc)
    assert any(path == "/v1/oauth/token" for path, _, _ in ops)  # the walk found the routes
    missing: list[str] = []
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        if not op.get("operationId"):
            missing.append(f"{where}: no operationId")
        if not op.get("summary"):
            missing.append(f"{where}: no summary")
        if not path.startswith(EXEMPT_FROM_4XX) and not any(str(code).startswith("4") for code in op["responses"]):
            missing.append(f"{where}: no 4xx response declared (derived by shared/openapi_problems.py)")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("service", SERVICES)
def test_operation_ids_are_unique_and_tagged(service: str) -> None:
    ops = _operations(json.loads(render_openapi(service)))
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    untagged = [i for i in ids if "-" not in i]
    assert not untagged, f"operation ids must read <tag>-<route name>: {untagged}"
