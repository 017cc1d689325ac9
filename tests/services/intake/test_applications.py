"""Applications through HTTP: draft, edit, pre-check, submit, receipt, register, withdrawal, and bad input."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import KEYRING, make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


@dataclass
class World:
    call: Any
    partner: Any
    company: Any
    headers: dict[str, str]


@pytest.fixture
async def world(session) -> World:
    call = await open_call(session)
    partner = await make_partner(session)
    company = await make_company(session)
    await delegate(session, partner, company)
    headers = await make_token(session, "partner", partner_id=partner.id)
    return World(call, partner, company, headers)


async def create(client, w: World, **kw: Any) -> dict[str, Any]:
    """A draft with its stamp duty declared (the call requires it before submission)."""
    r = await client.post("/v1/applications", json=draft_body(w.call.id, w.company.id, **kw), headers=w.headers)
    assert r.status_code == 201, r.text
    await declare_stamp_duty(client, r.json()["id"], w.headers)
    return r.json()


async def test_draft_is_created_read_and_listed(client, world):
    app = await create(client, world)
    assert app["status"] == "draft" and app["partner_id"] == str(world.partner.id)
    assert [ln["amount"] for ln in app["expense_lines"]] == ["10000.00", "45000.00", "35000.00", "5000.00"]
    r = await client.get(f"/v1/applications/{app['id']}", headers=world.headers)
    assert r.status_code == 200 and r.headers["etag"] == '"1"' and r.json()["title"] == app["title"]
    r = await client.get("/v1/applications", params={"call_id": str(world.call.id)}, headers=world.headers)
    assert [a["id"] for a in r.json()["items"]] == [app["id"]]


async def test_check_lists_nothing_and_estimates_to_the_cent(client, world):
    app = await create(client, world)
    r = await client.post(f"/v1/applications/{app['id']}/check", headers=world.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["submittable"] is True and body["problems"] == []
    assert body["breakdown"]["flat_rates"] == {"d": "19000.00", "e": "7980.00"}
    assert body["estimate"] == {
        "eligible_total": "121980.00",
        "aid_base": "121980.00",
        "grant": "24396.00",
        "loan": "79287.00",
        "total_aid": "103683.00",
    }


async def test_check_above_the_maximum_warns_without_blocking_and_estimates_on_the_maximum(client, world):
    body = draft_body(world.call.id, world.company.id)
    body["expense_lines"][1]["amount"] = "405000.00"  # both (b) lines x 9: same markets' shares
    body["expense_lines"][2]["amount"] = "315000.00"
    r = await client.post("/v1/applications", json=body, headers=world.headers)
    assert r.status_code == 201, r.text
    await declare_stamp_duty(client, r.json()["id"], world.headers)
    r = await client.post(
        f"/v1/applications/{r.json()['id']}/check", headers={**world.headers, "Accept-Language": "en"}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    # direct 10,000 + 720,000 + 5,000 = 735,000; d = 20 % = 147,000; e = 7 % of 882,000 = 61,740; eligible
    # 943,740.00 > 600,000.00: capped, not refused. Aid on 600,000.00: grant 20 % = 120,000.00, loan 65 % =
    # 390,000.00.
    assert [(p["code"], p["blocking"], p["outcome"]) for p in out["problems"]] == [
        ("eligible_total_above_max", False, "warning")
    ]
    assert "the aid is computed on EUR 600,000.00" in out["problems"][0]["message"]
    assert out["submittable"] is True
    assert out["estimate"] == {
        "eligible_total": "943740.00",
        "aid_base": "600000.00",
        "grant": "120000.00",
        "loan": "390000.00",
        "total_aid": "510000.00",
    }


async def test_check_reports_every_problem_at_once_and_changes_nothing(client, world, session):
    body = draft_body(world.call.id, world.company.id)
    body["action_plan"]["target_markets"] = [{"country": "DE"}]  # not new: the company sells there
    body["action_plan"]["kpis"] = []
    body["expense_lines"][0]["amount"] = "50000.00"  # consulting above 20 % of (b)+(c): cut, not blocking
    body["expense_lines"][1]["target_market"] = "US"  # not one of the plan's markets
    r = await client.post("/v1/applications", json=body, headers=world.headers)
    app = r.json()
    before = (await session.execute(text("SELECT count(*) FROM desk.audit_log"))).scalar_one()
    r = await client.post(f"/v1/applications/{app['id']}/check", headers={**world.headers, "Accept-Language": "en"})
    out = r.json()
    codes = {p["code"]: p for p in out["problems"]}
    expected = {"target_market_not_new", "kpis_missing", "category_cap_exceeded", "expense_market_not_in_plan"}
    assert expected <= set(codes)
    assert codes["category_cap_exceeded"]["blocking"] is False
    assert codes["target_market_not_new"]["path"] == "/action_plan/target_markets/0"
    off_plan = {p["path"] for p in out["problems"] if p["code"] == "expense_market_not_in_plan"}
    assert off_plan == {"/expense_lines/1/target_market", "/expense_lines/2/target_market"}
    assert codes["kpis_missing"]["message"] == codes["kpis_missing"]["message_en"]
    assert all(p["article"] for p in out["problems"])
    assert out["submittable"] is False
    after = (await session.execute(text("SELECT count(*) FROM desk.audit_log"))).scalar_one()
    assert after == before


async def test_submit_returns_signed_receipt_and_register_chains_it(client, world):
    app = await create(client, world)
    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["receipt"]["protocol_number"] == 1 and rec["receipt"]["application_id"] == app["id"]
    assert len(rec["receipt"]["content_sha256"]) == 64
    from shared.domain.receipts import GENESIS, canonical_json, chain_link

    assert KEYRING.verify(canonical_json(rec["receipt"]), rec["signature"])
    assert rec["previous_hash"] == GENESIS and rec["chain_hash"] == chain_link(GENESIS, rec["receipt"])
    # the application is now read-only and carries the protocol
    got = (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).json()
    assert got["status"] == "submitted" and got["protocol_number"] == 1
    doc = {k: v for k, v in draft_body(world.call.id, world.company.id).items() if k not in ("call_id", "company_id")}
    r = await client.put(f"/v1/applications/{app['id']}", json=doc, headers={**world.headers, "If-Match": '"2"'})
    assert r.status_code == 409 and r.json()["application_status"] == "submitted"
    # the public register shows it, without a token
    reg = (await client.get(f"/v1/calls/{world.call.id}/register")).json()
    assert reg["items"][0]["chain_hash"] == rec["chain_hash"]
    assert (await client.get(f"/v1/applications/{app['id']}/receipt", headers=world.headers)).json() == rec


async def test_register_chain_verifies_across_several_submissions(client, session, world):
    ids = []
    for _ in range(3):
        company = await make_company(session)
        await delegate(session, world.partner, company)
        r = await client.post("/v1/applications", json=draft_body(world.call.id, company.id), headers=world.headers)
        ids.append(r.json()["id"])
    for i in ids:
        await declare_stamp_duty(client, i, world.headers)
        assert (await client.post(f"/v1/applications/{i}/submit", headers=world.headers)).status_code == 201
    reg = (await client.get(f"/v1/calls/{world.call.id}/register")).json()
    from shared.domain.receipts import verify_chain

    assert [e["protocol_number"] for e in reg["items"]] == [1, 2, 3]
    assert verify_chain((e["receipt"], e["chain_hash"]) for e in reg["items"]) is None
    tampered = copy.deepcopy(reg["items"])
    tampered[1]["receipt"]["submitted_at"] = tampered[0]["receipt"]["submitted_at"]
    assert verify_chain((e["receipt"], e["chain_hash"]) for e in tampered) == 1
    page1 = (await client.get(f"/v1/calls/{world.call.id}/register", params={"limit": 1})).json()
    assert [e["protocol_number"] for e in page1["items"]] == [1] and page1["next_cursor"]
    page2 = (
        await client.get(f"/v1/calls/{world.call.id}/register", params={"cursor": page1["next_cursor"], "limit": 1})
    ).json()
    assert [e["protocol_number"] for e in page2["items"]] == [2]
    assert page2["items"][0]["previous_hash"] == reg["items"][0]["chain_hash"]


async def test_submit_records_event_and_audit_in_the_same_transaction(client, world, session):
    app = await create(client, world)
    await declare_stamp_duty(client, app["id"], world.headers)
    await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    ev = (
        await session.execute(
            text("SELECT event_type, partner_id, payload FROM desk.outbox WHERE aggregate_id = :a"), {"a": app["id"]}
        )
    ).one()
    assert ev.event_type == "application.submitted" and ev.partner_id == world.partner.id
    assert ev.payload["protocol_number"] == 1 and ev.payload["estimate"]["grant"] == "24396.00"
    actions = (
        (
            await session.execute(
                text("SELECT action FROM desk.audit_log WHERE resource_id = :a ORDER BY id"), {"a": app["id"]}
            )
        )
        .scalars()
        .all()
    )
    assert actions == ["application.created", "application.stamp_duty_declared", "application.submitted"]


async def test_second_submit_is_refused_and_idempotent_retry_replays(client, world, session):
    app = await create(client, world)
    h = {**world.headers, "Idempotency-Key": "submit-1"}
    await declare_stamp_duty(client, app["id"], h)
    first = await client.post(f"/v1/applications/{app['id']}/submit", headers=h)
    again = await client.post(f"/v1/applications/{app['id']}/submit", headers=h)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    plain = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert plain.status_code == 409
    n = (
        await session.execute(text("SELECT count(*) FROM desk.outbox WHERE aggregate_id = :a"), {"a": app["id"]})
    ).scalar_one()
    assert n == 1


async def test_a_submit_key_reused_for_another_draft_is_422_and_leaves_it_a_draft(client, world):
    first, second = await create(client, world), await create(client, world, title="Seconda bozza")
    h = {**world.headers, "Idempotency-Key": "submit-once"}
    await declare_stamp_duty(client, first["id"], h)
    assert (await client.post(f"/v1/applications/{first['id']}/submit", headers=h)).status_code == 201
    await declare_stamp_duty(client, second["id"], h)
    r = await client.post(f"/v1/applications/{second['id']}/submit", headers=h)
    assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-key-reused"
    got = (await client.get(f"/v1/applications/{second['id']}", headers=world.headers)).json()
    assert got["status"] == "draft" and got["protocol_number"] is None


async def test_same_idempotency_key_with_another_body_is_422(client, world):
    h = {**world.headers, "Idempotency-Key": "create-1"}
    r1 = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=h)
    r2 = await client.post(
        "/v1/applications", json=draft_body(world.call.id, world.company.id, title="Altro"), headers=h
    )
    assert r1.status_code == 201 and r2.status_code == 422
    assert r2.json()["type"] == "/problems/idempotency-key-reused"
    r3 = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=h)
    assert r3.json()["id"] == r1.json()["id"]


async def test_submit_outside_the_window_is_refused(client, session, world):
    later = await open_call(session, opens_in=timedelta(days=2))
    r = await client.post("/v1/applications", json=draft_body(later.id, world.company.id), headers=world.headers)
    assert r.status_code == 201
    await declare_stamp_duty(client, r.json()["id"], world.headers)
    r = await client.post(f"/v1/applications/{r.json()['id']}/submit", headers=world.headers)
    assert r.status_code == 409 and r.json()["type"] == "/problems/call-window-closed"
    assert "opens_at" in r.json()


async def test_submit_with_blocking_problems_is_422_with_every_reason(client, world):
    body = draft_body(world.call.id, world.company.id)
    body["expense_lines"] = [{"category": "b", "description": "Fiera", "amount": "1000.00", "target_market": "VN"}]
    app = (await client.post("/v1/applications", json=body, headers=world.headers)).json()
    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 422 and r.json()["type"] == "/problems/application-not-submittable"
    codes = {e["code"] for e in r.json()["errors"]}
    assert "eligible_total_below_min" in codes
    got = (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).json()
    assert got["status"] == "draft" and got["protocol_number"] is None


async def test_edit_needs_if_match_and_refuses_stale(client, world):
    app = await create(client, world)
    url = f"/v1/applications/{app['id']}"
    body = draft_body(world.call.id, world.company.id, title="Titolo nuovo")
    body.pop("call_id")
    body.pop("company_id")
    r = await client.put(url, json=body, headers=world.headers)
    assert r.status_code == 428
    r = await client.put(url, json=body, headers={**world.headers, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["title"] == "Titolo nuovo" and r.headers["etag"] == '"2"'
    r = await client.put(url, json=body, headers={**world.headers, "If-Match": '"1"'})
    assert r.status_code == 412 and r.json()["current_etag"] == '"2"'


async def test_another_partner_sees_nothing(client, session, world):
    app = await create(client, world)
    other = await make_partner(session)
    h = await make_token(session, "partner", partner_id=other.id)
    assert (await client.get(f"/v1/applications/{app['id']}", headers=h)).status_code == 404
    assert (await client.post(f"/v1/applications/{app['id']}/submit", headers=h)).status_code == 404
    assert (await client.post(f"/v1/applications/{app['id']}/check", headers=h)).status_code == 404
    assert (await client.get("/v1/applications", headers=h)).json()["items"] == []
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/company_id"


async def test_company_acts_for_itself_and_officer_cannot_prepare(client, session, world):
    h = await make_token(session, "company", company_id=world.company.id)
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=h)
    assert r.status_code == 201 and r.json()["partner_id"] is None
    officer = await make_token(session, "officer")
    r = await client.post("/v1/applications", json=draft_body(world.call.id, world.company.id), headers=officer)
    assert r.status_code == 403
    assert (
        await client.get(
            f"/v1/applications/{r.json().get('id', '00000000-0000-0000-0000-000000000000')}", headers=officer
        )
    ).status_code == 404


async def test_pending_or_revoked_delegation_gives_no_access(client, session, world):
    company = await make_company(session)
    d = await delegate(session, world.partner, company, status="pending")
    r = await client.post("/v1/applications", json=draft_body(world.call.id, company.id), headers=world.headers)
    assert r.status_code == 422
    firm = await make_token(session, "company", company_id=company.id)
    r = await client.post(f"/v1/delegations/{d.id}/accept", headers={**firm, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    app = (
        await client.post("/v1/applications", json=draft_body(world.call.id, company.id), headers=world.headers)
    ).json()
    r = await client.post(f"/v1/delegations/{d.id}/revoke", headers={**firm, "If-Match": '"2"'})
    assert r.status_code == 200, r.text
    assert (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).status_code == 404


@pytest.mark.parametrize(
    "mutate,code,path",
    [
        (lambda b: b["expense_lines"][1].update(amount=45000.5), "money_not_string", "/expense_lines/1/amount"),
        (lambda b: b["expense_lines"][1].update(amount="-5.00"), "greater_than", "/expense_lines/1/amount"),
        (lambda b: b["expense_lines"][1].update(amount="10.001"), "decimal_max_places", "/expense_lines/1/amount"),
        # what the schema's pattern refuses, validation refuses (README, "Conventions": money)
        (lambda b: b["expense_lines"][1].update(amount="10.000"), "decimal_max_places", "/expense_lines/1/amount"),
        (lambda b: b["expense_lines"][1].update(amount="1e3"), "decimal_parsing", "/expense_lines/1/amount"),
        (lambda b: b["expense_lines"][1].update(amount="+50"), "decimal_parsing", "/expense_lines/1/amount"),
        (lambda b: b["expense_lines"][1].update(amount=" 50 "), "decimal_parsing", "/expense_lines/1/amount"),
        (
            lambda b: b["expense_lines"][1].update(target_market="XX"),
            "country_unknown",
            "/expense_lines/1/target_market",
        ),
        (
            lambda b: b["action_plan"]["target_markets"][0].update(country="ZZ"),
            "country_unknown",
            "/action_plan/target_markets/0/country",
        ),
        (lambda b: b["expense_lines"][1].update(category="z"), "expense_category_unknown", "/expense_lines/1/category"),
        (lambda b: b.update(hacker=True), "extra_forbidden", "/hacker"),
        (lambda b: b.update(status="submitted"), "extra_forbidden", "/status"),
        (lambda b: b["action_plan"].update(end_date="2020-01-01"), "dates_out_of_order", "/action_plan"),
        (lambda b: b.update(flat_rates=["b"]), "flat_rate_unknown", "/flat_rates/0"),
    ],
)
async def test_bad_input_is_a_problem_and_changes_nothing(client, world, session, mutate, code, path):
    body = draft_body(world.call.id, world.company.id)
    mutate(body)
    before = (await session.execute(text("SELECT count(*) FROM intake.applications"))).scalar_one()
    r = await client.post("/v1/applications", json=body, headers=world.headers)
    assert r.status_code == 422, r.text
    errs = {(e["code"], e["path"]) for e in r.json()["errors"]}
    assert (code, path) in errs, errs
    after = (await session.execute(text("SELECT count(*) FROM intake.applications"))).scalar_one()
    assert after == before


async def test_milestone_outside_the_project_is_reported(client, world):
    body = draft_body(world.call.id, world.company.id)
    body["action_plan"]["milestones"][0]["due_date"] = "2099-01-01"
    app = (await client.post("/v1/applications", json=body, headers=world.headers)).json()
    out = (await client.post(f"/v1/applications/{app['id']}/check", headers=world.headers)).json()
    assert any(
        p["code"] == "milestone_outside_timeline" and p["path"] == "/action_plan/milestones/0/due_date"
        for p in out["problems"]
    )


async def test_withdraw_then_the_company_may_submit_again(client, world):
    app = await create(client, world)
    await declare_stamp_duty(client, app["id"], world.headers)
    await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    r = await client.post(
        f"/v1/applications/{app['id']}/withdraw", json={"reason": "Cambio strategia"}, headers=world.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    again = await client.post(
        f"/v1/applications/{app['id']}/withdraw", json={"reason": "ancora"}, headers=world.headers
    )
    assert again.status_code == 409
    second = await create(client, world)
    await declare_stamp_duty(client, second["id"], world.headers)
    r = await client.post(f"/v1/applications/{second['id']}/submit", headers=world.headers)
    assert r.status_code == 201 and r.json()["receipt"]["protocol_number"] == 2


async def test_one_live_submission_per_company_and_call(client, world):
    a = await create(client, world)
    b = await create(client, world)
    await declare_stamp_duty(client, a["id"], world.headers)
    assert (await client.post(f"/v1/applications/{a['id']}/submit", headers=world.headers)).status_code == 201
    await declare_stamp_duty(client, b["id"], world.headers)
    r = await client.post(f"/v1/applications/{b['id']}/submit", headers=world.headers)
    assert r.status_code == 409


async def test_delete_draft(client, world):
    app = await create(client, world)
    url = f"/v1/applications/{app['id']}"
    assert (await client.delete(url, headers={**world.headers, "If-Match": '"9"'})).status_code == 412
    assert (await client.delete(url, headers={**world.headers, "If-Match": '"1"'})).status_code == 204
    assert (await client.get(url, headers=world.headers)).status_code == 404
