"""Partners and their API clients, through HTTP: officers register them, a partner sees only itself."""

from __future__ import annotations

import random
import uuid
from typing import Any

from sqlalchemy import text
from stdnum import luhn


def entity_code() -> str:
    """A random valid 11-digit codice fiscale / partita IVA (office code 001-100)."""
    base = f"{random.randint(1, 9_999_999):07d}{random.randint(1, 100):03d}"
    return base + luhn.calc_check_digit(base)


def partner_body(**over: Any) -> dict[str, Any]:
    return {
        "name": "Camera di Commercio di Milano",
        "kind": "chamber_of_commerce",
        "fiscal_code": entity_code(),
        "email": "export@example.it",
        **over,
    }


async def test_officer_registers_a_partner_and_reads_it_back(client, officer, session):
    body = partner_body()
    r = await client.post("/v1/partners", json=body, headers=officer)
    assert r.status_code == 201, r.text
    out = r.json()
    assert r.headers["location"] == f"/v1/partners/{out['id']}"
    assert r.headers["etag"] == '"1"' and out["etag"] == '"1"'
    assert out["fiscal_code"] == body["fiscal_code"] and out["kind"] == "chamber_of_commerce"

    r = await client.get(f"/v1/partners/{out['id']}", headers=officer)
    assert r.status_code == 200 and r.json()["name"] == body["name"] and r.headers["etag"] == '"1"'
    r = await client.get("/v1/partners", params={"limit": 100}, headers=officer)
    assert out["id"] in {p["id"] for p in r.json()["items"]}

    audit = (
        await session.execute(
            text(
                "SELECT action, before, after FROM desk.audit_log WHERE resource_type = 'partner' AND resource_id = :id"
            ),
            {"id": out["id"]},
        )
    ).one()
    assert audit.action == "partner.registered" and audit.before is None
    assert audit.after["fiscal_code"] == body["fiscal_code"]


async def test_duplicate_fiscal_code_is_409_already_exists(client, officer):
    body = partner_body()
    assert (await client.post("/v1/partners", json=body, headers=officer)).status_code == 201
    r = await client.post("/v1/partners", json={**body, "name": "Another name"}, headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"
    assert r.headers["content-type"] == "application/problem+json"


async def test_partner_cannot_register_partners(client, officer, token_factory):
    created = (await client.post("/v1/partners", json=partner_body(), headers=officer)).json()
    partner = await token_factory("partner", partner_id=uuid.UUID(created["id"]))
    r = await client.post("/v1/partners", json=partner_body(), headers=partner)
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"
    r = await client.post(f"/v1/partners/{created['id']}/clients", json={}, headers=partner)
    assert r.status_code == 403


async def test_invalid_partner_fields_are_422_with_pointers(client, officer):
    r = await client.post(
        "/v1/partners", json=partner_body(fiscal_code="12345678901", kind="bank", email="nope"), headers=officer
    )
    assert r.status_code == 422
    errors = {e["path"]: e["code"] for e in r.json()["errors"]}
    assert errors == {
        "/fiscal_code": "fiscal_code_invalid",
        "/kind": "literal_error",
        "/email": "string_pattern_mismatch",
    }


async def test_partner_sees_only_itself(client, officer, token_factory):
    a = (await client.post("/v1/partners", json=partner_body(), headers=officer)).json()
    b = (await client.post("/v1/partners", json=partner_body(kind="agency"), headers=officer)).json()
    partner_a = await token_factory("partner", partner_id=uuid.UUID(a["id"]))
    assert (await client.get(f"/v1/partners/{a['id']}", headers=partner_a)).status_code == 200
    r = await client.get(f"/v1/partners/{b['id']}", headers=partner_a)
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
    r = await client.get("/v1/partners", headers=partner_a)
    assert [p["id"] for p in r.json()["items"]] == [a["id"]]


async def test_auditor_reads_all_partners_and_pages_through_them(client, officer, auditor):
    ids = {(await client.post("/v1/partners", json=partner_body(), headers=officer)).json()["id"] for _ in range(3)}
    seen: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/partners", params=params, headers=auditor)).json()
        assert len(page["items"]) <= 2
        seen |= {p["id"] for p in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids <= seen


async def test_officer_issues_a_partner_client_whose_secret_works_once_shown(client, officer, session):
    partner = (await client.post("/v1/partners", json=partner_body(), headers=officer)).json()
    r = await client.post(f"/v1/partners/{partner['id']}/clients", json={"name": "CRM of the chamber"}, headers=officer)
    assert r.status_code == 201, r.text
    creds = r.json()
    assert creds["kind"] == "partner" and "intake:write" in creds["scopes"]
    assert r.headers["cache-control"] == "no-store"

    stored = (
        await session.execute(
            text("SELECT secret_hash, partner_id FROM desk.api_clients WHERE client_id = :c"), {"c": creds["client_id"]}
        )
    ).one()
    assert creds["client_secret"] not in stored.secret_hash and str(stored.partner_id) == partner["id"]

    token = await client.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    r = await client.get("/v1/partners", headers=headers)
    assert [p["id"] for p in r.json()["items"]] == [partner["id"]]


async def test_client_for_an_unknown_partner_is_404(client, officer):
    r = await client.post(f"/v1/partners/{uuid.uuid4()}/clients", headers=officer)
    assert r.status_code == 404
