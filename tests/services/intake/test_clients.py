"""API clients through HTTP: created, listed, rotated with an overlap and revoked without SQL; a revoked
client's tokens already issued are refused by intake and by another service."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tests.factories import make_company, make_partner

TOKEN = "/v1/oauth/token"


async def token_for(client: httpx.AsyncClient, creds: dict[str, Any], secret: str | None = None) -> httpx.Response:
    return await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": secret or creds["client_secret"],
        },
    )


async def bearer(client: httpx.AsyncClient, creds: dict[str, Any]) -> dict[str, str]:
    r = await token_for(client, creds)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/clients", json={"kind": "partner", "name": "CRM", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_officer_creates_a_client_whose_secret_is_shown_once(client, officer, session):
    partner = await make_partner(session)
    r = await client.post(
        "/v1/clients",
        json={"kind": "partner", "name": "CRM of the chamber", "partner_id": str(partner.id)},
        headers=officer,
    )
    assert r.status_code == 201, r.text
    creds = r.json()
    assert r.headers["cache-control"] == "no-store" and r.headers["etag"] == '"1"' == creds["etag"]
    assert r.headers["location"] == f"/v1/clients/{creds['client_id']}"
    assert creds["kind"] == "partner" and creds["partner_id"] == str(partner.id) and creds["status"] == "active"
    assert "intake:write" in creds["scopes"] and creds["last_used_at"] is None and creds["rotated_at"] is None

    read = await client.get(f"/v1/clients/{creds['client_id']}", headers=officer)
    assert read.status_code == 200 and "client_secret" not in read.json()
    assert creds["client_secret"] not in read.text
    stored = (
        await session.execute(
            text("SELECT secret_hash FROM desk.api_clients WHERE client_id = :c"), {"c": creds["client_id"]}
        )
    ).scalar_one()
    assert stored.startswith("$argon2") and creds["client_secret"] not in stored
    audit = (
        await session.execute(
            text(
                "SELECT action, after::text AS after FROM desk.audit_log WHERE resource_type = 'api_client' "
                "AND resource_id = :c"
            ),
            {"c": creds["client_id"]},
        )
    ).one()
    assert audit.action == "api_client.created" and creds["client_secret"] not in audit.after
    assert "$argon2" not in audit.after

    headers = await bearer(client, creds)
    r = await client.get("/v1/partners", headers=headers)
    assert [p["id"] for p in r.json()["items"]] == [str(partner.id)]
    used = (await client.get(f"/v1/clients/{creds['client_id']}", headers=officer)).json()
    assert used["last_used_at"] is not None


async def test_officer_creates_any_kind_with_the_holder_it_needs(client, officer, session):
    company = await make_company(session)
    made = await create(client, officer, kind="company", company_id=str(company.id), scopes=["intake:read"])
    assert made["company_id"] == str(company.id) and made["scopes"] == ["intake:read"]
    auditor = await create(client, officer, kind="auditor", name="Internal audit")
    assert auditor["partner_id"] is None and auditor["company_id"] is None and "audit:read" in auditor["scopes"]
    for body, path, code in (
        ({"kind": "partner"}, "/partner_id", "partner_required"),
        ({"kind": "partner", "partner_id": str(uuid.uuid4())}, "/partner_id", "partner_not_found"),
        ({"kind": "company"}, "/company_id", "company_required"),
        ({"kind": "officer", "partner_id": str(uuid.uuid4())}, "/partner_id", "partner_not_allowed"),
        ({"kind": "auditor", "scopes": ["intake:admin"]}, "/scopes/0", "scope_not_allowed"),
    ):
        r = await client.post("/v1/clients", json={"name": "x-client", **body}, headers=officer)
        assert r.status_code == 422, (body, r.text)
        assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [(path, code)], body


async def test_partner_manages_only_its_own_clients(client, officer, session, token_factory):
    a, b = await make_partner(session), await make_partner(session)
    pa = await token_factory("partner", partner_id=a.id)
    pb = await token_factory("partner", partner_id=b.id)
    mine = await create(client, pa)  # partner_id implied
    assert mine["partner_id"] == str(a.id)
    theirs = await create(client, officer, partner_id=str(b.id))
    for body, path in (({"partner_id": str(b.id)}, "/partner_id"), ({"kind": "officer"}, "/kind")):
        r = await client.post("/v1/clients", json={"kind": "partner", "name": "CRM", **body}, headers=pa)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text

    listed = (await client.get("/v1/clients", params={"limit": 100}, headers=pa)).json()
    # its own: the one just created and the one its token belongs to; none of partner B's
    assert {c["partner_id"] for c in listed["items"]} == {str(a.id)} and len(listed["items"]) == 2
    assert mine["client_id"] in {c["client_id"] for c in listed["items"]}
    by_b = (await client.get("/v1/clients", params={"partner_id": str(b.id)}, headers=pa)).json()
    assert by_b["items"] == []
    assert (await client.get(f"/v1/clients/{mine['client_id']}", headers=pa)).status_code == 200
    other = theirs["client_id"]
    for method, url, kw in (
        ("GET", f"/v1/clients/{other}", {}),
        ("POST", f"/v1/clients/{other}/rotate", {"json": {}}),
        ("POST", f"/v1/clients/{other}/revoke", {"json": {"reason": "not mine"}}),
    ):
        r = await client.request(method, url, headers={**pa, "If-Match": '"1"'}, **kw)
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found", (method, url, r.text)
    assert (await client.get(f"/v1/clients/{other}", headers=pb)).json()["status"] == "active"


async def test_officer_lists_with_filters_and_pages(client, officer, auditor, session):
    partner = await make_partner(session)
    made = [await create(client, officer, partner_id=str(partner.id), name=f"CRM {i}") for i in range(3)]
    revoked = made[0]
    r = await client.post(
        f"/v1/clients/{revoked['client_id']}/revoke",
        json={"reason": "old CRM"},
        headers={**officer, "If-Match": revoked["etag"]},
    )
    assert r.status_code == 200, r.text
    seen: list[str] = []
    cursor = None
    while True:
        params = {"partner_id": str(partner.id), "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/clients", params=params, headers=auditor)).json()
        assert len(page["items"]) <= 2
        seen += [c["client_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # one transaction: one created_at, so the pages follow the ids; each client once
    assert len(seen) == 3 and set(seen) == {c["client_id"] for c in made}
    active = (
        await client.get("/v1/clients", params={"partner_id": str(partner.id), "status": "active"}, headers=officer)
    ).json()
    assert {c["client_id"] for c in active["items"]} == {made[1]["client_id"], made[2]["client_id"]}
    gone = (
        await client.get("/v1/clients", params={"partner_id": str(partner.id), "status": "revoked"}, headers=officer)
    ).json()["items"]
    assert [(c["client_id"], c["revoked_reason"]) for c in gone] == [(revoked["client_id"], "old CRM")]
    kinds = (
        await client.get("/v1/clients", params={"partner_id": str(partner.id), "kind": "officer"}, headers=officer)
    ).json()
    assert kinds["items"] == []


async def test_rotated_secret_overlaps_then_stops(client, officer, session):
    partner = await make_partner(session)
    creds = await create(client, officer, partner_id=str(partner.id))
    url = f"/v1/clients/{creds['client_id']}/rotate"
    assert (await client.post(url, json={}, headers=officer)).status_code == 428
    assert (await client.post(url, json={}, headers={**officer, "If-Match": '"7"'})).status_code == 412
    r = await client.post(url, json={"overlap_seconds": 8 * 24 * 3600}, headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/overlap_seconds"

    r = await client.post(url, json={"overlap_seconds": 3600}, headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert r.headers["cache-control"] == "no-store" and rotated["etag"] == '"2"'
    new_secret = rotated["client_secret"]
    assert new_secret != creds["client_secret"]
    at = datetime.fromisoformat(rotated["rotated_at"])
    assert datetime.fromisoformat(rotated["previous_secret_expires_at"]) == at + timedelta(seconds=3600)
    # during the overlap both secrets get tokens; a retried rotation with the old ETag changes nothing
    assert (await token_for(client, creds)).status_code == 200
    assert (await token_for(client, creds, new_secret)).status_code == 200
    assert (await client.post(url, json={}, headers={**officer, "If-Match": '"1"'})).status_code == 412

    # the overlap ends (moved into the past rather than waited for): the old secret stops, the new one works
    await session.execute(
        text(
            "UPDATE desk.api_clients SET previous_secrets = (SELECT jsonb_agg(jsonb_set(p, '{expires_at}', "
            "to_jsonb('2020-01-01T00:00:00+00:00'::text))) FROM jsonb_array_elements(previous_secrets) p) "
            "WHERE client_id = :c"
        ),
        {"c": creds["client_id"]},
    )
    r = await token_for(client, creds)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert (await token_for(client, creds, new_secret)).status_code == 200
    read = (await client.get(f"/v1/clients/{creds['client_id']}", headers=officer)).json()
    assert read["previous_secret_expires_at"] is None and read["status"] == "active"


async def test_a_second_rotation_keeps_the_first_overlap_and_zero_overlap_stops_at_once(client, officer, session):
    partner = await make_partner(session)
    creds = await create(client, officer, partner_id=str(partner.id))
    url = f"/v1/clients/{creds['client_id']}/rotate"
    first = (await client.post(url, json={}, headers={**officer, "If-Match": '"1"'})).json()  # default 24 h
    assert datetime.fromisoformat(first["previous_secret_expires_at"]) == (
        datetime.fromisoformat(first["rotated_at"]) + timedelta(hours=24)
    )
    # a rotation whose response was lost and is redone: the original secret keeps its own overlap
    second = (await client.post(url, json={"overlap_seconds": 0}, headers={**officer, "If-Match": '"2"'})).json()
    assert (await token_for(client, creds)).status_code == 200
    assert (await token_for(client, creds, first["client_secret"])).status_code == 401  # overlap 0: at once
    assert (await token_for(client, creds, second["client_secret"])).status_code == 200
    audit = (
        (
            await session.execute(
                text(
                    "SELECT action FROM desk.audit_log WHERE resource_type = 'api_client' AND resource_id = "
                    ":c ORDER BY id"
                ),
                {"c": creds["client_id"]},
            )
        )
        .scalars()
        .all()
    )
    assert audit == ["api_client.created", "api_client.rotated", "api_client.rotated"]


async def test_revocation_refuses_tokens_already_issued_on_intake_and_evaluation(
    client, evaluation_app, evaluation_client, officer, session
):
    made = await create(client, officer, kind="officer", name="Officer's script")
    headers = await bearer(client, made)  # issued before the revocation
    revoked = evaluation_app.state.revoked_clients
    saved_clock, now = revoked.clock, [1000.0]
    revoked.clock = lambda: now[0]
    revoked.invalidate()
    try:
        assert (await client.get("/v1/partners", headers=headers)).status_code == 200
        assert (await evaluation_client.get("/v1/evaluations", headers=headers)).status_code == 200

        url = f"/v1/clients/{made['client_id']}/revoke"
        assert (await client.post(url, json={}, headers={**officer, "If-Match": '"1"'})).status_code == 422
        r = await client.post(
            url, json={"reason": "Laptop stolen"}, headers={**officer, "If-Match": '"1"', "Idempotency-Key": "revoke-1"}
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "revoked" and out["revoked_reason"] == "Laptop stolen" and out["etag"] == '"2"'
        again = await client.post(
            url, json={"reason": "Laptop stolen"}, headers={**officer, "If-Match": '"1"', "Idempotency-Key": "revoke-1"}
        )
        assert again.headers.get("idempotent-replayed") == "true" and again.content == r.content
        r = await client.post(url, json={"reason": "twice"}, headers={**officer, "If-Match": '"2"'})
        assert r.status_code == 409

        # intake (the process that revoked it) refuses the token at once; no new token either
        r = await client.get("/v1/partners", headers=headers)
        assert r.status_code == 401 and r.json()["type"] == "/problems/unauthenticated", r.text
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        r = await token_for(client, made)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        # evaluation refuses it once its copy of the list is older than the refresh period (5 s)
        now[0] += 1
        assert (await evaluation_client.get("/v1/evaluations", headers=headers)).status_code == 200
        now[0] += 5
        r = await evaluation_client.get("/v1/evaluations", headers=headers)
        assert r.status_code == 401 and r.json()["type"] == "/problems/unauthenticated", r.text
    finally:
        revoked.clock = saved_clock
        revoked.invalidate()
    audit = (
        await session.execute(
            text(
                "SELECT before->>'status' AS was, after->>'status' AS now FROM desk.audit_log "
                "WHERE resource_id = :c AND action = 'api_client.revoked'"
            ),
            {"c": made["client_id"]},
        )
    ).one()
    assert (audit.was, audit.now) == ("active", "revoked")


async def test_last_used_is_written_at_most_once_a_minute(client, officer, session):
    partner = await make_partner(session)
    creds = await create(client, officer, partner_id=str(partner.id))
    await bearer(client, creds)
    first = (await client.get(f"/v1/clients/{creds['client_id']}", headers=officer)).json()["last_used_at"]
    await bearer(client, creds)
    assert (await client.get(f"/v1/clients/{creds['client_id']}", headers=officer)).json()["last_used_at"] == first
    await session.execute(
        text("UPDATE desk.api_clients SET last_used_at = last_used_at - interval '61 seconds' WHERE client_id = :c"),
        {"c": creds["client_id"]},
    )
    await bearer(client, creds)
    later = (await client.get(f"/v1/clients/{creds['client_id']}", headers=officer)).json()["last_used_at"]
    assert datetime.fromisoformat(later) > datetime.fromisoformat(first) - timedelta(seconds=61)
