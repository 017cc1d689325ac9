"""The shared guarantees, through HTTP on real PostgreSQL: tokens, problems, 404/405, size limit,
request ids, idempotency, ETag/If-Match, audit trail, health and metrics."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from sqlalchemy import text

from tests.conftest import KEYRING


async def test_token_endpoint_issues_short_lived_jwt_for_client_credentials(client, session):
    from shared.auth import create_client

    c, secret = await create_client(session, kind="officer", name="officer x")
    r = await client.post(
        "/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": secret}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert r.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], KEYRING.public_key, algorithms=["EdDSA"], audience="regional-desk")
    assert claims["kind"] == "officer" and claims["sub"] == c.client_id
    assert claims["exp"] - claims["iat"] == 900
    # the secret is stored hashed, never in clear
    stored = (
        await session.execute(text("SELECT secret_hash FROM desk.api_clients WHERE client_id = :c"), {"c": c.client_id})
    ).scalar_one()
    assert secret not in stored and stored.startswith("$argon2")


async def test_production_hashes_secrets_with_argon2id_at_rfc_9106_low_memory_cost(client, session):
    """The other tests hash with a cheap hasher (tests/conftest.py); here the one the desk runs with, end to end:
    argon2id, 3 passes over 64 MiB, 4 lanes (argon2-cffi's defaults, RFC 9106's low-memory profile)."""
    from argon2 import Type, extract_parameters, profiles

    from shared.auth import PRODUCTION_HASHER, create_client, use_secret_hasher

    cheap = use_secret_hasher(PRODUCTION_HASHER)
    try:
        c, secret = await create_client(session, kind="auditor", name="auditor p")
    finally:
        use_secret_hasher(cheap)
    stored = (
        await session.execute(text("SELECT secret_hash FROM desk.api_clients WHERE client_id = :c"), {"c": c.client_id})
    ).scalar_one()
    params = extract_parameters(stored)
    assert params == profiles.RFC_9106_LOW_MEMORY
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (Type.ID, 3, 65536, 4)
    # verified with the stored hash's own parameters, whichever hasher is set
    r = await client.post(
        "/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": secret}
    )
    assert r.status_code == 200, r.text
    wrong = await client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": secret + "x"},
    )
    assert wrong.status_code == 401


async def test_token_endpoint_accepts_http_basic_and_narrows_scope(client, session):
    import base64

    from shared.auth import create_client

    c, secret = await create_client(session, kind="auditor", name="auditor x")
    basic = base64.b64encode(f"{c.client_id}:{secret}".encode()).decode()
    r = await client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "audit:read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200 and r.json()["scope"] == "audit:read"
    r = await client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "intake:admin"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    "form,status,error",
    [
        ({"grant_type": "password", "client_id": "x", "client_secret": "y"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "y"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, 400, "invalid_request"),
    ],
)
async def test_token_errors_follow_rfc6749_inside_problem_details(client, form, status, error):
    r = await client.post("/v1/oauth/token", data=form)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["error"] == error


async def test_wrong_secret_is_invalid_client(client, session):
    from shared.auth import create_client

    c, _ = await create_client(session, kind="officer", name="o")
    r = await client.post(
        "/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": "wrong"}
    )
    assert r.status_code == 401 and r.json()["type"] == "/problems/invalid-client"


async def test_protected_route_without_or_with_bad_or_expired_token_is_401(client, session):
    from shared.auth import create_client, issue_token

    body = {"rules": {}}
    r = await client.post("/v1/calls", json=body)
    assert r.status_code == 401 and r.json()["type"] == "/problems/unauthenticated"
    r = await client.post("/v1/calls", json=body, headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    c, _ = await create_client(session, kind="officer", name="o")
    expired = issue_token(KEYRING, client=c, scopes=list(c.scopes), issuer="regional-desk", ttl=-10)
    r = await client.post("/v1/calls", json=body, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["detail"] == "Il token è scaduto."


async def test_token_signed_by_another_key_is_refused(client, session):
    from shared.auth import KeyRing, create_client, issue_token

    c, _ = await create_client(session, kind="officer", name="o")
    forged = issue_token(KeyRing.generate(), client=c, scopes=list(c.scopes), issuer="regional-desk", ttl=60)
    r = await client.post("/v1/calls", json={}, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_role_without_the_function_gets_403(client, token_factory):
    auditor = await token_factory("auditor")
    r = await client.post("/v1/calls", json={"rules": {}}, headers=auditor)
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"


async def test_unknown_route_and_wrong_method_are_problems(client):
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/not-found"
    r = await client.delete("/v1/calls")
    assert r.status_code == 405 and r.json()["type"] == "/problems/method-not-allowed"


async def test_validation_errors_are_bilingual_with_json_pointers(client, officer):
    r = await client.post("/v1/calls", json={"rules": {"code": 5}, "surprise": 1}, headers=officer)
    assert r.status_code == 422
    body = r.json()
    assert body["type"] == "/problems/validation-error" and body["title"] == "Dati non validi"
    paths = {e["path"]: e for e in body["errors"]}
    assert paths["/surprise"]["code"] == "extra_forbidden"
    assert paths["/surprise"]["message"] == "Campo non previsto."
    assert "/rules/title" in paths and paths["/rules/title"]["code"] == "missing"
    r = await client.post("/v1/calls", json={"surprise": 1}, headers={**officer, "Accept-Language": "en-GB,it;q=0.5"})
    assert r.json()["title"] == "Invalid input"
    assert {e["message"] for e in r.json()["errors"]} >= {"Unexpected field.", "Field required."}


async def test_malformed_json_is_a_problem(client, officer):
    r = await client.post("/v1/calls", content=b"{not json", headers={**officer, "Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.headers["content-type"] == "application/problem+json"


async def test_body_over_the_limit_is_413_before_parsing(client, officer):
    r = await client.post(
        "/v1/calls", content=b"x" * (1_048_576 + 1), headers={**officer, "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["type"] == "/problems/payload-too-large"


async def test_request_id_is_returned_and_echoed(client):
    r = await client.get("/healthz")
    assert r.status_code == 200 and len(r.headers["x-request-id"]) == 32
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/v1/nothing", headers={"X-Request-ID": "trace-9"})
    assert r.json()["request_id"] == "trace-9"


async def test_readiness_and_metrics(client):
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200 and "desk_http_requests_total" in r.text and 'route="/healthz"' in r.text


async def test_problem_catalogue_documents_every_type(client):
    r = await client.get("/problems")
    slugs = {p["type"] for p in r.json()}
    assert {"/problems/validation-error", "/problems/idempotency-key-reused", "/problems/precondition-failed"} <= slugs
    r = await client.get("/problems/precondition-failed")
    assert r.json()["status"] == 412
    assert (await client.get("/problems/nope")).status_code == 404


async def test_audit_log_is_append_only(session):
    await session.execute(
        text(
            "INSERT INTO desk.audit_log (service, principal_kind, principal_client_id, action, "
            "resource_type, resource_id)"
            " VALUES ('t', 'officer', 'x', 'a', 'r', '1')"
        )
    )
    with pytest.raises(Exception, match="append-only"):
        async with session.begin_nested():
            await session.execute(text("UPDATE desk.audit_log SET action = 'b'"))
    with pytest.raises(Exception, match="append-only"):
        async with session.begin_nested():
            await session.execute(text("DELETE FROM desk.audit_log"))


def test_every_route_is_authenticated_unless_it_says_public():
    """Router-level rule: a route without `security: []` in its OpenAPI must demand a token."""
    from services.intake.app import build_app
    from shared.auth import Authenticator

    app = build_app()
    spec = app.openapi()
    from fastapi.routing import APIRoute

    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            op = spec["paths"][route.path_format][method.lower()]
            public = op.get("security") == []
            deps = [d.call for d in route.dependant.dependencies]
            flat = list(deps)
            for d in route.dependant.dependencies:
                flat += [x.call for x in d.dependencies]
            guarded = any(
                isinstance(c, Authenticator) or getattr(c, "__name__", "") in ("actor", "idempotency") for c in flat
            )
            assert public or guarded, f"{method} {route.path} is neither public nor authenticated"
            assert op.get("operationId") and op.get("summary"), f"{method} {route.path} lacks operationId/summary"


async def test_token_endpoint_is_rate_limited_per_client(client, intake_app):
    from shared.ratelimit import RateLimiter

    saved = intake_app.state.token_limiter
    intake_app.state.token_limiter = RateLimiter(per_minute=60, burst=2)
    try:
        form = {"grant_type": "client_credentials", "client_id": "nobody-rl", "client_secret": "x"}
        codes = [(await client.post("/v1/oauth/token", data=form)).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        r = await client.post("/v1/oauth/token", data=form)
        assert r.headers["retry-after"] == "1" and r.json()["type"] == "/problems/rate-limited"
        other = {**form, "client_id": "somebody-else"}
        assert (await client.post("/v1/oauth/token", data=other)).status_code == 401
    finally:
        intake_app.state.token_limiter = saved


async def test_writes_are_rate_limited_per_client_but_reads_are_not(client, intake_app, officer):
    from shared.ratelimit import RateLimiter

    saved = intake_app.state.write_limiter
    intake_app.state.write_limiter = RateLimiter(per_minute=60, burst=1)
    try:
        assert (await client.post("/v1/calls", json={}, headers=officer)).status_code == 422
        r = await client.post("/v1/calls", json={}, headers=officer)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert (await client.get("/v1/calls", headers=officer)).status_code == 200
    finally:
        intake_app.state.write_limiter = saved


def test_a_receipt_signature_is_the_ed25519_signature_of_the_desk_key():
    """Receipts are signed with libsodium: byte for byte the RFC 8032 signature the key gives through OpenSSL,
    verified by the published public key (unpadded base64url, as the receipts carry it)."""
    import base64

    from cryptography.exceptions import InvalidSignature

    from shared.auth import KeyRing

    ring = KeyRing.generate()
    data = '{"protocol_number":1,"title":"Über «export»"}'.encode()
    signature = ring.sign(data)
    assert "=" not in signature
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert raw == ring.private_key.sign(data) and len(raw) == 64
    ring.public_key.verify(raw, data)
    assert ring.verify(data, signature) and not ring.verify(data + b" ", signature)
    with pytest.raises(InvalidSignature):
        KeyRing.generate().public_key.verify(raw, data)
    # the same key loaded from its PEM signs the same bytes (Ed25519 is deterministic)
    assert KeyRing.from_pem(ring.private_pem()).sign(data) == signature


async def test_fastapis_opentelemetry_is_consulted_only_when_asked_for(client, monkeypatch):
    """DESK_OPENTELEMETRY: off (the default), a request does not look for OpenTelemetry's global providers;
    on, FastAPI's native instrumentation asks for them on every request."""
    import httpx
    from opentelemetry import trace

    from services.intake.app import build_app
    from shared.settings import IntakeSettings

    looked: list[int] = []
    real = trace.get_tracer_provider

    def counting() -> Any:
        looked.append(1)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200
    assert looked == []

    settings = IntakeSettings(
        environment="test",
        access_log=False,
        log_level="WARNING",
        database_url="postgresql://unused/x",
        opentelemetry=True,
    )
    app = build_app(settings)
    app.state.keyring = KEYRING
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk.test") as on:
        assert (await on.get("/v1/nothing")).status_code == 404  # answered without the database
    assert looked, "with DESK_OPENTELEMETRY on, FastAPI's instrumentation looks for a tracer provider"


def test_processes_starting_together_on_a_new_desk_share_one_signing_key(tmp_path):
    """`desk up` starts three services and the worker at once: with no key yet, each may generate one, but
    every process must end up signing with the one kept on disk (else the worker's tokens are refused)."""
    import subprocess
    import sys
    import time

    code = (
        "import sys, time; from pathlib import Path; from shared.auth import load_or_create_key;"
        "Path(sys.argv[2]).touch();"
        "go = Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.0005)\n"
        "r = load_or_create_key(None, Path(sys.argv[1]), allow_generate=True);"
        "print(r.private_pem().decode().replace(chr(10), ''))"
    )
    for attempt in range(3):
        data, sync = tmp_path / f"desk-{attempt}", tmp_path / f"sync-{attempt}"
        sync.mkdir()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(data), str(sync / f"ready-{i}"), str(sync / "go")],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(6)
        ]
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        (sync / "go").touch()  # all of them at once, none with a key on disk yet
        keys = {p.communicate(timeout=60)[0].strip() for p in procs}
        assert all(p.returncode == 0 for p in procs)
        on_disk = (data / "signing_key.pem").read_text().replace("\n", "")
        assert keys == {on_disk}
        assert [f.name for f in data.iterdir()] == ["signing_key.pem"], "no temporary file left behind"
