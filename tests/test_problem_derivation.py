"""Each operation's error responses are derived from the code it runs (shared/openapi_problems.py), and list
only what it can raise; tests/problem_conformance.py proves the derivation leaves nothing out."""

from __future__ import annotations

import json
import uuid
from functools import cache
from typing import Any

import httpx
import pytest

from desk.cli import SERVICES, render_openapi
from shared.auth import Authenticator, current_principal
from shared.errors import (
    CATALOGUE,
    CONFLICT,
    FORBIDDEN,
    INVOICE_ALREADY_CLAIMED,
    NOT_FOUND,
    PEER_UNAVAILABLE,
    PROBLEM_MEDIA_TYPE,
    RATE_LIMITED,
    UNAUTHENTICATED,
    Conflict,
    NotFound,
)
from shared.openapi_problems import GENERIC, ProblemDerivation
from tests.conftest import app_for
from tests.problem_conformance import RECORDER, Answered

METHODS = {"get", "put", "post", "patch", "delete"}
BY_TYPE = {k.type_uri: k for k in CATALOGUE.values()}


@cache
def doc(service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(render_openapi(service))
    return document


def _operations(d: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in d["paths"].items() for m, op in item.items() if m in METHODS]


def test_creating_a_call_does_not_say_it_may_answer_invoice_already_claimed() -> None:
    op = doc("intake")["paths"]["/v1/calls"]["post"]
    assert INVOICE_ALREADY_CLAIMED.type_uri not in op["x-problem-types"]
    assert "Invoice already claimed" not in op["responses"]["409"]["description"]
    # what it can raise: a call with the same code exists (409), the caller is not an officer (403)
    assert {"/problems/already-exists", "/problems/forbidden", "/problems/unauthenticated"} <= set(
        op["x-problem-types"]
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/v1/claims/{claim_id}/lines"), ("put", "/v1/claims/{claim_id}/lines/{line_id}/review")],
)
def test_the_claim_routes_that_check_invoices_say_they_may_answer_invoice_already_claimed(
    method: str, path: str
) -> None:
    op = doc("monitoring")["paths"][path][method]
    assert INVOICE_ALREADY_CLAIMED.type_uri in op["x-problem-types"]
    assert "Invoice already claimed (`/problems/invoice-already-claimed`)" in op["responses"]["409"]["description"]


def test_only_the_routes_that_reach_the_invoice_check_list_it() -> None:
    listing = sorted(
        f"{m.upper()} {path}"
        for service in SERVICES
        for path, m, op in _operations(doc(service))
        if INVOICE_ALREADY_CLAIMED.type_uri in op["x-problem-types"]
    )
    assert listing == ["POST /v1/claims/{claim_id}/lines", "PUT /v1/claims/{claim_id}/lines/{line_id}/review"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_lists_its_problem_types_all_in_the_catalogue(service: str) -> None:
    wrong = []
    for path, method, op in _operations(doc(service)):
        types = op.get("x-problem-types")
        if not types:
            wrong.append(f"{method.upper()} {path}: no x-problem-types")
            continue
        wrong += [f"{method.upper()} {path}: {t} not in the catalogue" for t in types if t not in BY_TYPE]
        missing = {k.type_uri for k in GENERIC} - set(types)
        if missing:
            wrong.append(f"{method.upper()} {path}: lacks what every operation may answer: {sorted(missing)}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES)
def test_each_status_lists_only_the_kinds_of_that_status(service: str) -> None:
    wrong = []
    for path, method, op in _operations(doc(service)):
        where = f"{method.upper()} {path}"
        kinds = [BY_TYPE[t] for t in op["x-problem-types"]]
        statuses = {str(k.status) for k in kinds}
        problem_statuses = {s for s, r in op["responses"].items() if PROBLEM_MEDIA_TYPE in r.get("content", {})}
        if problem_statuses != statuses:
            wrong.append(f"{where}: problem statuses {sorted(problem_statuses)}, kinds' statuses {sorted(statuses)}")
        for status in statuses:
            expected = "; ".join(
                f"{k.title_en} (`{k.type_uri}`)"
                for k in sorted((k for k in kinds if str(k.status) == status), key=lambda k: k.slug)
            )
            if op["responses"][status]["description"] != expected:
                wrong.append(f"{where} {status}: {op['responses'][status]['description']!r} != {expected!r}")
    assert not wrong, "\n".join(wrong)


def test_fastapi_s_own_validation_schema_is_gone() -> None:
    """The desk answers a problem for invalid input, never FastAPI's `HTTPValidationError`."""
    for service in SERVICES:
        assert "HTTPValidationError" not in json.dumps(doc(service))


def test_authentication_is_followed_through_the_dependency_and_the_write_limiter_only_on_writes() -> None:
    app = app_for("intake")
    derivation = ProblemDerivation(app)
    assert derivation.kinds_of(current_principal, "GET") == {UNAUTHENTICATED}
    officer_only = Authenticator(kinds=("officer",))
    # the write limiter is reached through request.app.state, and only when the method is not safe
    assert derivation.kinds_of(officer_only, "GET") == {UNAUTHENTICATED, FORBIDDEN}
    assert derivation.kinds_of(officer_only, "POST") == {UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED}
    reads = [op for _, m, op in _operations(doc("intake")) if m == "get"]
    assert reads and not any(RATE_LIMITED.type_uri in op["x-problem-types"] for op in reads)


def test_an_inbox_s_handlers_registered_in_its_table_are_followed() -> None:
    """Evaluation's inbox answers peer-unavailable only through the handlers registered in its table (they read
    the application from intake); the shared route knows none of them."""
    op = doc("evaluation")["paths"]["/v1/internal/events"]["post"]
    assert PEER_UNAVAILABLE.type_uri in op["x-problem-types"]


def test_public_reads_do_not_say_they_need_a_token() -> None:
    op = doc("intake")["paths"]["/v1/calls/{call_id}"]["get"]
    assert UNAUTHENTICATED.type_uri not in op["x-problem-types"]
    assert "/problems/not-found" in op["x-problem-types"]


def _opens(n: int) -> None:  # calls _closes: the two form a cycle
    if n:
        _closes(n - 1)
    raise NotFound()


def _closes(n: int) -> None:
    _opens(n)
    raise Conflict()


def test_a_function_in_a_cycle_gets_all_the_cycle_raises_whichever_is_walked_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for fn in (_opens, _closes):  # read as the desk's own code
        monkeypatch.setattr(fn, "__module__", "shared.cycle_example")
    derivation = ProblemDerivation()
    assert derivation.kinds_of(_opens, "GET") == {NOT_FOUND, CONFLICT}
    assert derivation.kinds_of(_closes, "GET") == {NOT_FOUND, CONFLICT}


async def test_the_conformance_check_records_answers_and_flags_an_undeclared_type(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/v1/applications/{uuid.uuid4()}")
    assert r.status_code == 401
    app = app_for("intake")
    assert Answered(app, "GET", "/v1/applications/{application_id}", 401, UNAUTHENTICATED.type_uri) in (
        RECORDER.answered
    )
    assert RECORDER.undeclared() == []
    RECORDER.answered.append(Answered(app, "POST", "/v1/calls", 409, INVOICE_ALREADY_CLAIMED.type_uri))
    try:
        assert RECORDER.undeclared() == [
            f"{app.title}: POST /v1/calls answered 409 /problems/invoice-already-claimed, not declared"
        ]
    finally:
        RECORDER.clear()
