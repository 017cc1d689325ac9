"""Business-network applications through HTTP: members are registered companies of the same partner, each
with its own lines and checks; the lead is not a member; the network respects the call's limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from services.intake.models import Delegation
from shared.access import record_delegation
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


@dataclass
class World:
    call: Any
    partner: Any
    lead: Any
    members: list[Any]
    delegations: list[Any]
    headers: dict[str, str]


@pytest.fixture
async def world(session) -> World:
    call = await open_call(session)
    partner = await make_partner(session)
    lead = await make_company(session)
    members = [
        await make_company(session, name="Tessile Brianza S.r.l."),
        await make_company(session, name="Alimentare Cremona S.p.A."),
    ]
    await delegate(session, partner, lead)
    delegations = [await delegate(session, partner, m) for m in members]
    headers = await make_token(session, "partner", partner_id=partner.id)
    return World(call, partner, lead, members, delegations, headers)


def line(category: str, amount: str, market: str | None = "VN") -> dict[str, Any]:
    return {
        "category": category,
        "description": f"Spesa {category}",
        "amount": amount,
        "target_market": market,
        "supplier": None,
    }


def network(*members: tuple[Any, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "name": "Rete Lombardia Export",
        "members": [{"company_id": str(c), "expense_lines": lines} for c, lines in members],
    }


def body_of(w: World, net: dict[str, Any] | None) -> dict[str, Any]:
    return draft_body(w.call.id, w.lead.id, network=net)


def two_members(w: World) -> dict[str, Any]:
    return network((w.members[0].id, [line("b", "20000.00")]), (w.members[1].id, [line("b", "40000.00", "BR")]))


async def count(session, table: str) -> int:
    return (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def test_network_draft_is_checked_per_member_with_the_network_totals_and_submitted(client, world):
    r = await client.post("/v1/applications", json=body_of(world, two_members(world)), headers=world.headers)
    assert r.status_code == 201, r.text
    await declare_stamp_duty(client, r.json()["id"], world.headers)
    app = r.json()
    members = app["network"]["members"]
    assert [(m["company_id"], m["vat_number"], m["name"]) for m in members] == [
        (str(c.id), c.vat_number, c.name) for c in world.members
    ]
    assert [ln["amount"] for ln in members[1]["expense_lines"]] == ["40000.00"]

    r = await client.post(f"/v1/applications/{app['id']}/check", headers=world.headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["submittable"] is True and out["problems"] == []
    # The lead's own figures are unchanged (draft_body: 121,980.00 -> grant 24,396.00, loan 79,287.00).
    assert out["estimate"]["eligible_total"] == "121980.00" and out["estimate"]["grant"] == "24396.00"
    # Member 0: b 20,000.00; d 20 % = 4,000.00; e 7 % of 24,000.00 = 1,680.00 -> 25,680.00;
    #   grant 20 % = 5,136.00, loan 65 % = 16,692.00 (85 % of 25,680.00 = 21,828.00, not exceeded).
    # Member 1: b 40,000.00; d 8,000.00; e 7 % of 48,000.00 = 3,360.00 -> 51,360.00;
    #   grant 10,272.00, loan 33,384.00.
    assert out["network"]["members"] == [
        {
            "company_id": str(world.members[0].id),
            "vat_number": world.members[0].vat_number,
            "eligible_total": "25680.00",
            "grant": "5136.00",
            "loan": "16692.00",
            "total_aid": "21828.00",
        },
        {
            "company_id": str(world.members[1].id),
            "vat_number": world.members[1].vat_number,
            "eligible_total": "51360.00",
            "grant": "10272.00",
            "loan": "33384.00",
            "total_aid": "43656.00",
        },
    ]
    # Network: 121,980 + 25,680 + 51,360 = 199,020.00; grant 24,396 + 5,136 + 10,272 = 39,804.00;
    # loan 79,287 + 16,692 + 33,384 = 129,363.00.
    assert {k: out["network"][k] for k in ("eligible_total", "grant", "loan", "total_aid")} == {
        "eligible_total": "199020.00",
        "grant": "39804.00",
        "loan": "129363.00",
        "total_aid": "169167.00",
    }

    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 201, r.text
    got = (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).json()
    assert got["status"] == "submitted" and got["network"]["members"][0]["expense_lines"][0]["amount"] == "20000.00"


async def test_lead_as_member_repeated_or_unreachable_members_are_422_naming_each_path(client, world, session):
    stranger = await make_company(session)  # registered, but not delegated to this partner
    other_partner = await make_partner(session)
    elsewhere = await make_company(session)
    await delegate(session, other_partner, elsewhere)  # delegated to another partner only
    net = network(
        (world.lead.id, [line("b", "20000.00")]),
        (world.members[0].id, [line("b", "20000.00")]),
        (world.members[0].id, [line("z", "1000.00")]),
        (stranger.id, []),
        (elsewhere.id, []),
    )
    before = await count(session, "intake.applications"), await count(session, "desk.audit_log")
    r = await client.post(
        "/v1/applications", json=body_of(world, net), headers={**world.headers, "Accept-Language": "en"}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = [(e["code"], e["path"]) for e in r.json()["errors"]]
    assert errors == [
        ("network_lead_is_member", "/network/members/0/company_id"),
        ("network_member_duplicate", "/network/members/2/company_id"),
        ("expense_category_unknown", "/network/members/2/expense_lines/0/category"),
        ("company_not_found", "/network/members/3/company_id"),
        ("company_not_found", "/network/members/4/company_id"),
    ]
    assert r.json()["errors"][0]["message"] == (
        "The lead (the application's company) cannot be a member of its own network."
    )
    r = await client.post("/v1/applications", json=body_of(world, net), headers=world.headers)
    assert r.json()["errors"][0]["message"].startswith("Il capofila")
    assert (await count(session, "intake.applications"), await count(session, "desk.audit_log")) == before

    # the same refusal on an edit; the draft keeps its content and its version
    r = await client.post("/v1/applications", json=body_of(world, two_members(world)), headers=world.headers)
    app = r.json()
    body = {k: v for k, v in body_of(world, net).items() if k not in ("call_id", "company_id")}
    r = await client.put(f"/v1/applications/{app['id']}", json=body, headers={**world.headers, "If-Match": app["etag"]})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/network/members/0/company_id"
    got = await client.get(f"/v1/applications/{app['id']}", headers=world.headers)
    assert got.headers["etag"] == app["etag"] and got.json()["network"] == app["network"]


async def test_a_failing_member_blocks_check_and_submit_with_its_own_paths(client, world, session):
    outsider = await make_company(
        session,
        size_class="large",
        registered_office={"address": "Via Po 1", "municipality": "Torino", "postal_code": "10121", "province": "TO"},
    )
    await delegate(session, world.partner, outsider)
    net = network((world.members[0].id, [line("b", "20000.00")]), (outsider.id, [line("b", "20000.00", "US")]))
    r = await client.post("/v1/applications", json=body_of(world, net), headers=world.headers)
    assert r.status_code == 201, r.text
    await declare_stamp_duty(client, r.json()["id"], world.headers)
    app = r.json()
    r = await client.post(f"/v1/applications/{app['id']}/check", headers={**world.headers, "Accept-Language": "en"})
    out = r.json()
    assert out["submittable"] is False
    found = {(p["code"], p["path"]) for p in out["problems"]}
    assert found == {
        ("size_class_not_allowed", "/network/members/1/company"),
        ("lombardy_site_missing", "/network/members/1/company"),
        ("expense_market_not_in_plan", "/network/members/1/expense_lines/0/target_market"),
    }
    assert all(p["blocking"] and p["article"] == "A.3" for p in out["problems"] if p["path"].endswith("/company"))

    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/application-not-submittable")
    assert {(e["code"], e["path"]) for e in r.json()["errors"]} == found
    got = (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).json()
    assert got["status"] == "draft" and got["protocol_number"] is None


async def test_network_limits_of_the_call_members_and_total(client, world):
    # One member only (the call asks for at least 2), and a network total above 1,500,000.00:
    # lead as in the above-maximum case: 943,740.00 (its aid on 600,000.00: 510,000.00);
    # member: b 600,000.00, d 120,000.00, e 7 % of 720,000.00 = 50,400.00 -> 770,400.00 (aid on 600,000.00:
    # 510,000.00); network 1,714,140.00 > 1,500,000.00; aid 1,020,000.00 <= 1,275,000.00.
    body = body_of(world, network((world.members[0].id, [line("b", "600000.00")])))
    body["expense_lines"][1]["amount"] = "405000.00"
    body["expense_lines"][2]["amount"] = "315000.00"
    r = await client.post("/v1/applications", json=body, headers=world.headers)
    assert r.status_code == 201, r.text
    await declare_stamp_duty(client, r.json()["id"], world.headers)
    r = await client.post(
        f"/v1/applications/{r.json()['id']}/check", headers={**world.headers, "Accept-Language": "en"}
    )
    out = r.json()
    blocking = {(p["code"], p["path"]) for p in out["problems"] if p["blocking"]}
    assert blocking == {
        ("network_members_too_few", "/network/members"),
        ("network_eligible_total_above_max", "/network"),
    }
    assert out["network"]["eligible_total"] == "1714140.00" and out["network"]["total_aid"] == "1020000.00"
    assert out["network"]["members"][0]["eligible_total"] == "770400.00"
    assert out["network"]["members"][0]["grant"] == "120000.00"
    too_much = next(p for p in out["problems"] if p["code"] == "network_eligible_total_above_max")
    assert "EUR 1,714,140.00" in too_much["message_en"] and "1.500.000,00 €" in too_much["message_it"]


async def test_a_member_delegation_ended_after_the_draft_blocks_the_submit(client, world, session):
    r = await client.post("/v1/applications", json=body_of(world, two_members(world)), headers=world.headers)
    app = r.json()
    d: Delegation = world.delegations[1]
    d.status = "revoked"
    await session.flush()
    await record_delegation(
        session, delegation_id=d.id, company_id=d.company_id, partner_id=d.partner_id, status="revoked"
    )
    await declare_stamp_duty(client, app["id"], world.headers)
    r = await client.post(f"/v1/applications/{app['id']}/submit", headers=world.headers)
    assert r.status_code == 422, r.text
    assert [(e["code"], e["path"]) for e in r.json()["errors"]] == [
        ("company_not_found", "/network/members/1/company_id")
    ]
    got = (await client.get(f"/v1/applications/{app['id']}", headers=world.headers)).json()
    assert got["status"] == "draft"
