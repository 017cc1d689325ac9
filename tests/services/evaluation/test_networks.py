"""Business-network applications in evaluation, through HTTP with intake's API: each member's own admissibility
checks (paths /network/members/{i}), its own de minimis headroom, its aid computed and recorded per member, and
one concession per company in the de minimis register when the decision is accepted.

Figures, worked by hand (the complete draft of tests.factories for the lead; the call's rates: grant 20 %, loan
65 %, credit class 2 -> the whole loan cap, GGE 0.08936854 per euro of a 6-year loan, rounded up):
* lead: eligible 121,980.00 -> grant 24,396.00, loan 79,287.00, GGE 7,085.77 (concession 31,481.77);
* member 0: b 20,000.00 + d 20 % 4,000.00 + e 7 % of 24,000.00 = 1,680.00 -> 25,680.00 -> grant 5,136.00,
  loan 16,692.00, GGE 16,692.00 x 0.08936854 = 1,491.7397 -> 1,491.74 (concession 6,627.74);
* member 1: b 40,000.00 + d 8,000.00 + e 3,360.00 -> 51,360.00 -> grant 10,272.00, loan 33,384.00,
  GGE 2,983.4794 -> 2,983.48 (concession 13,255.48);
* network: grant 39,804.00, loan 129,363.00, GGE 11,560.99, aid 169,167.00.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call
from tests.services.evaluation.test_de_minimis_concessions import decide_and_accept
from tests.services.evaluation.test_funding_computation import fund, record, today_rome
from tests.services.evaluation.test_inbox import deliver, outbox_event, service_headers


def line(category: str, amount: str, market: str = "VN") -> dict[str, Any]:
    return {
        "category": category,
        "description": f"Spesa {category}",
        "amount": amount,
        "target_market": market,
        "supplier": None,
    }


async def network_submitted(
    client: Any, engine: Any, intake_url: str, session: Any, member_fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Commit a call, a partner, the lead and two members delegated to it; the partner creates and submits the
    network application at intake; evaluation receives it; merit passed with credit class 2 (set directly)."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        lead = await make_company(s)
        members = [
            await make_company(s, name="Tessile Brianza S.r.l.", **(member_fields or {})),
            await make_company(s, name="Alimentare Cremona S.p.A."),
        ]
        for c in (lead, *members):
            await delegate(s, partner, c)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    network = {
        "name": "Rete Lombardia Export",
        "members": [
            {"company_id": str(members[0].id), "expense_lines": [line("b", "20000.00")]},
            {"company_id": str(members[1].id), "expense_lines": [line("b", "40000.00", "BR")]},
        ],
    }
    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.post("/v1/applications", json=draft_body(call.id, lead.id, network=network), headers=headers)
        assert r.status_code == 201, r.text
        await declare_stamp_duty(http, r.json()["id"], headers)
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=headers)
        assert r.status_code == 201, r.text
    app_id = r.json()["receipt"]["application_id"]
    return {
        "application_id": app_id,
        "call_id": str(call.id),
        "partner_headers": headers,
        "lead": lead,
        "members": members,
    }


async def receive(client: Any, engine: Any, session: Any, sub: dict[str, Any]) -> None:
    r = await deliver(client, await outbox_event(engine, sub["application_id"], "application.submitted"))
    assert r.status_code == 200, r.text
    await session.execute(
        text(
            "UPDATE evaluation.evaluations SET credit_class = '2', merit_verdict = 'passed', "
            "score = 75 WHERE application_id = :a"
        ),
        {"a": sub["application_id"]},
    )


async def test_each_member_is_checked_funded_and_registered_on_its_own(
    evaluation_client, intake, intake_server, engine, officer, second_officer, auditor, session
):
    sub = await network_submitted(evaluation_client, engine, intake_server.url, session)
    await receive(evaluation_client, engine, session, sub)
    ev = (await evaluation_client.get(f"/v1/evaluations/{sub['application_id']}", headers=officer)).json()
    assert ev["stage"] == "admissible", ev["checks"]
    paths = {c["path"] for c in ev["checks"]}
    assert paths == {None, "/network/members/0", "/network/members/1", "/network"}
    member_checks = sorted(c["code"] for c in ev["checks"] if c["path"] == "/network/members/1")
    assert member_checks == sorted(
        [
            "sme_class",
            "ateco",
            "financial_statements",
            "lombardy_site",
            "export_share",
            "eligible_categories",
            "category_caps",
            "new_or_emerging_share",
        ]
    )
    assert all(c["outcome"] == "pass" for c in ev["checks"] if c["path"] is not None)
    assert ev["eligible_total"] == "121980.00", "the lead's own"
    assert [(m["company_id"], m["eligible_total"]) for m in ev["network"]["members"]] == [
        (str(sub["members"][0].id), "25680.00"),
        (str(sub["members"][1].id), "51360.00"),
    ]
    assert ev["network"]["eligible_total"] == "199020.00"

    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert (ev["funding"]["grant"], ev["funding"]["loan"], ev["funding"]["loan_gge"]) == (
        "24396.00",
        "79287.00",
        "7085.77",
    ), "the lead's figures stay the lead's"
    assert [
        (m["vat_number"], m["eligible_total"], m["grant"], m["loan"], m["loan_gge"], m["total_aid"])
        for m in ev["network"]["members"]
    ] == [
        (sub["members"][0].vat_number, "25680.00", "5136.00", "16692.00", "1491.74", "21828.00"),
        (sub["members"][1].vat_number, "51360.00", "10272.00", "33384.00", "2983.48", "43656.00"),
    ]
    assert ev["network"]["lead"] == {
        "company_id": str(sub["lead"].id),
        "eligible_total": "121980.00",
        "grant": "24396.00",
        "loan": "79287.00",
        "loan_gge": "7085.77",
    }
    assert (ev["grant"], ev["loan"], ev["loan_gge"]) == ("39804.00", "129363.00", "11560.99"), "network totals"
    assert ev["network"]["members"][0]["de_minimis"]["headroom"] == "300000.00"

    cor = str(uuid.uuid4().int % 10**9)
    r = await decide_and_accept(
        evaluation_client,
        sub["call_id"],
        sub["application_id"],
        officer,
        sub["partner_headers"],
        cor=cor,
        confirmer=second_officer,
        engine=engine,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["grant"], r.json()["loan"]) == ("39804.00", "129363.00")
    for company, reference, amount in (
        (sub["lead"], cor, "31481.77"),
        (sub["members"][0], f"{cor}/1", "6627.74"),
        (sub["members"][1], f"{cor}/2", "13255.48"),
    ):
        r = await evaluation_client.get(
            "/v1/de-minimis/aids", params={"vat_number": company.vat_number}, headers=auditor
        )
        assert [(a["source"], a["reference"], a["amount"]) for a in r.json()["items"]] == [
            ("desk", reference, amount)
        ], company.name

    # monitoring reduces the aid by half (84,583.50 of 169,167.00): the budget keeps grant 39,804.00 x 1/2 =
    # 19,902.00 and loan 84,583.50 - 19,902.00 = 64,681.50, split as computed: member 0 grant 2,568.00, loan
    # 8,346.00; member 1 grant 5,136.00, loan 16,692.00; the lead the rest: grant 19,902.00 - 7,704.00 = 12,198.00,
    # loan 64,681.50 - 25,038.00 = 39,643.50. Concessions (loan x 0.08936854, rounded up): lead 12,198.00 +
    # 3,542.89 = 15,740.89; member 0: 2,568.00 + 745.87 = 3,313.87; member 1: 5,136.00 + 1,491.74 = 6,627.74.
    r = await evaluation_client.post(
        f"/v1/calls/{sub['call_id']}/budget/releases",
        headers=service_headers(),
        json={"application_id": sub["application_id"], "amount": "84583.50", "reason": "Spese non riconosciute"},
    )
    assert r.status_code == 200, r.text
    for company, amount in ((sub["lead"], "15740.89"), (sub["members"][0], "3313.87"), (sub["members"][1], "6627.74")):
        r = await evaluation_client.get(
            "/v1/de-minimis/aids", params={"vat_number": company.vat_number}, headers=auditor
        )
        assert [a["amount"] for a in r.json()["items"]] == [amount], company.name

    # then revokes the rest (84,583.50): every company's concession drops to 0.00
    r = await evaluation_client.post(
        f"/v1/calls/{sub['call_id']}/budget/releases",
        headers=service_headers(),
        json={"application_id": sub["application_id"], "amount": "84583.50", "reason": "Revoca (DPR 445/2000 art. 75)"},
    )
    assert r.status_code == 200, r.text
    for company, reference in ((sub["lead"], cor), (sub["members"][0], f"{cor}/1"), (sub["members"][1], f"{cor}/2")):
        r = await evaluation_client.get(
            "/v1/de-minimis/aids", params={"vat_number": company.vat_number}, headers=auditor
        )
        assert [(a["reference"], a["amount"]) for a in r.json()["items"]] == [(reference, "0.00")], company.name


async def test_a_member_failing_a_check_makes_the_application_not_admissible(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await network_submitted(evaluation_client, engine, intake_server.url, session)
    # after the submit, member 1 turns out large (its figures updated at intake): its own check fails
    async with engine.begin() as c:
        await c.execute(
            text("UPDATE intake.companies SET size_class = 'large', version = version + 1 WHERE id = :c"),
            {"c": sub["members"][1].id},
        )
    await receive(evaluation_client, engine, session, sub)
    r = await evaluation_client.get(
        f"/v1/evaluations/{sub['application_id']}", headers={**officer, "Accept-Language": "en"}
    )
    ev = r.json()
    assert ev["stage"] == "not_admissible"
    failed = [(c["code"], c["path"]) for c in ev["checks"] if c["outcome"] == "fail"]
    assert failed == [("sme_class", "/network/members/1")]
    assert "'large'" in next(c["message"] for c in ev["checks"] if c["outcome"] == "fail")
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 409 and r.json()["reason"] == "not_admissible", r.text


async def test_a_member_without_headroom_gets_no_aid_and_the_others_keep_theirs(
    evaluation_client, intake, intake_server, engine, officer, session
):
    sub = await network_submitted(evaluation_client, engine, intake_server.url, session)
    await receive(evaluation_client, engine, session, sub)
    await record(evaluation_client, officer, sub["members"][1].vat_number, today_rome(), "300000.00")
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev["stage"] == "evaluated"
    m0, m1 = ev["network"]["members"]
    assert (m0["grant"], m0["loan"]) == ("5136.00", "16692.00")
    assert (m1["grant"], m1["loan"], m1["loan_gge"], m1["total_aid"]) == ("0.00", "0.00", "0.00", "0.00")
    assert (m1["de_minimis"]["prior_total"], m1["de_minimis"]["headroom"], m1["de_minimis"]["refused"]) == (
        "300000.00",
        "0.00",
        True,
    )
    # 24,396.00 + 5,136.00 = 29,532.00; 79,287.00 + 16,692.00 = 95,979.00; 7,085.77 + 1,491.74 = 8,577.51
    assert (ev["grant"], ev["loan"], ev["loan_gge"]) == ("29532.00", "95979.00", "8577.51")


async def test_an_acceptance_over_a_members_ceiling_is_refused_and_registers_nothing(
    evaluation_client, intake, intake_server, engine, officer, second_officer, auditor, session
):
    sub = await network_submitted(evaluation_client, engine, intake_server.url, session)
    await receive(evaluation_client, engine, session, sub)
    r = await fund(evaluation_client, sub["application_id"], officer)
    assert r.status_code == 200, r.text
    # after the computation, member 0's undertaking receives 295,000.00 elsewhere: 5,000.00 left < 6,627.74
    await record(evaluation_client, officer, sub["members"][0].vat_number, today_rome(), "295000.00")
    r = await decide_and_accept(
        evaluation_client,
        sub["call_id"],
        sub["application_id"],
        officer,
        {**sub["partner_headers"], "Accept-Language": "en"},
        cor="445566",
        confirmer=second_officer,
        engine=engine,
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/problems/de-minimis-ceiling")
    assert (problem["amount"], problem["headroom"]) == ("6627.74", "5000.00")
    assert problem["members"] == [sub["members"][0].vat_number]
    for company in (sub["lead"], *sub["members"]):
        r = await evaluation_client.get(
            "/v1/de-minimis/aids", params={"vat_number": company.vat_number}, headers=auditor
        )
        assert all(a["source"] != "desk" for a in r.json()["items"]), "no concession registered"


async def test_a_members_check_under_review_is_settled_by_naming_its_path(
    evaluation_client, intake, intake_server, engine, officer, session
):
    # member 0 has no site in Lombardy yet, only the commitment to open one: an officer verifies it
    sub = await network_submitted(
        evaluation_client,
        engine,
        intake_server.url,
        session,
        member_fields={
            "registered_office": {
                "address": "Via Po 1",
                "municipality": "Torino",
                "postal_code": "10121",
                "province": "TO",
            },
            "lombardy_site_commitment": True,
        },
    )
    await receive(evaluation_client, engine, session, sub)
    url = f"/v1/evaluations/{sub['application_id']}"
    ev = (await evaluation_client.get(url, headers=officer)).json()
    assert ev["stage"] == "needs_review"
    assert [(c["code"], c["path"]) for c in ev["checks"] if c["outcome"] == "needs_review"] == [
        ("lombardy_site", "/network/members/0")
    ]
    review = {"check_code": "lombardy_site", "outcome": "pass", "note": "Contratto di locazione verificato."}
    # without the path it names the lead's check, which awaits no review: refused, nothing changes
    r = await evaluation_client.post(
        f"{url}/admissibility-reviews",
        json=review,
        headers={**officer, "If-Match": ev["etag"], "Accept-Language": "en"},
    )
    assert r.status_code == 409 and r.json()["reason"] == "check_not_under_review", r.text
    r = await evaluation_client.post(
        f"{url}/admissibility-reviews",
        json={**review, "path": "/network/members/7"},
        headers={**officer, "If-Match": ev["etag"]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "check_unknown", r.text
    assert (await evaluation_client.get(url, headers=officer)).headers["etag"] == ev["etag"]
    r = await evaluation_client.post(
        f"{url}/admissibility-reviews",
        json={**review, "path": "/network/members/0"},
        headers={**officer, "If-Match": ev["etag"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "admissible"
    reviewed = next(c for c in r.json()["checks"] if c["path"] == "/network/members/0" and c["code"] == "lombardy_site")
    assert reviewed["outcome"] == "pass" and reviewed["review"]["note"] == "Contratto di locazione verificato."
