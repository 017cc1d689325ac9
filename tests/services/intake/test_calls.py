"""Calls: public catalogue, officers publish and amend, versions frozen, the seed opens a demo copy."""

from __future__ import annotations

from typing import Any

import yaml

from services.intake.calls.service import seed_call
from shared.auth import Principal
from shared.routing import Actor
from tests.factories import CALL_FILE


def rules(**kw: Any) -> dict[str, Any]:
    doc = yaml.safe_load(CALL_FILE.read_text())
    doc.update(kw)
    return doc


async def test_officer_publishes_a_call_and_anyone_reads_it(client, officer):
    r = await client.post("/v1/calls", json={"rules": rules(code="VNM-TEST-1")}, headers=officer)
    assert r.status_code == 201, r.text
    call = r.json()
    assert call["budget_total"] == "18978747.97" and call["procedure"] == "ranking"
    assert call["window"]["opens_at"] == "2025-06-03T08:00:00Z" and call["status"] == "closed"
    assert r.headers["location"] == f"/v1/calls/{call['id']}"
    pub = await client.get(f"/v1/calls/{call['id']}")
    assert pub.status_code == 200 and pub.json()["rules"]["aid"]["grant"]["cap"] == "120000.00"
    listed = await client.get("/v1/calls", params={"limit": 100})
    assert call["id"] in [c["id"] for c in listed.json()["items"]]


async def test_duplicate_code_is_409_and_invalid_rules_are_422(client, officer):
    await client.post("/v1/calls", json={"rules": rules(code="VNM-TEST-2")}, headers=officer)
    r = await client.post("/v1/calls", json={"rules": rules(code="VNM-TEST-2")}, headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"
    bad = rules(code="VNM-TEST-3")
    bad["window"] = {"opens_at": "2025-06-03T10:00:00", "closes_at": "2025-06-01T10:00:00+02:00"}
    r = await client.post("/v1/calls", json={"rules": bad}, headers=officer)
    assert r.status_code == 422 and any(e["path"].startswith("/rules/window") for e in r.json()["errors"])


async def test_amendment_is_a_new_version_and_old_versions_stay(client, officer):
    call = (await client.post("/v1/calls", json={"rules": rules(code="VNM-TEST-4")}, headers=officer)).json()
    url = f"/v1/calls/{call['id']}/versions"
    new = rules(code="VNM-TEST-4", budget_total="20000000.00")
    r = await client.post(url, json={"rules": new, "reason": "Rifinanziamento"}, headers=officer)
    assert r.status_code == 428
    decree = {"number": "Decreto n. 9012", "date": "2025-07-15"}  # the window has opened: a raise needs its decree
    r = await client.post(
        url,
        json={"rules": new, "reason": "Rifinanziamento", "decree": decree},
        headers={**officer, "If-Match": call["etag"]},
    )
    assert r.status_code == 201 and r.json()["current_version"] == 2 and r.json()["budget_total"] == "20000000.00"
    r = await client.post(url, json={"rules": new, "reason": "ancora"}, headers={**officer, "If-Match": call["etag"]})
    assert r.status_code == 412
    v1 = (await client.get(f"{url}/1")).json()
    assert v1["rules"]["budget_total"] == "18978747.97" and v1["reason"] is None
    assert (await client.get(f"{url}/3")).status_code == 404


async def test_partner_cannot_publish(client, token_factory, session):
    from tests.factories import make_partner

    p = await make_partner(session)
    h = await token_factory("partner", partner_id=p.id)
    r = await client.post("/v1/calls", json={"rules": rules(code="VNM-TEST-5")}, headers=h)
    assert r.status_code == 403


async def test_seed_is_idempotent_and_opens_a_demo_window_keeping_the_published_dates(client, session):
    actor = Actor(Principal("desk-cli", "service", frozenset()), None, "intake")
    call = await seed_call(session=session, actor=actor, path=CALL_FILE, open_now_days=90)
    again = await seed_call(session=session, actor=actor, path=CALL_FILE, open_now_days=90)
    assert again.id == call.id
    out = (await client.get(f"/v1/calls/{call.id}")).json()
    assert out["status"] == "open" and out["demo_window"] is True
    assert out["window"]["closes_at"] == "2025-09-09T10:00:00Z"
    assert out["rules"]["window"]["opens_at"] == "2025-06-03T10:00:00+02:00"
