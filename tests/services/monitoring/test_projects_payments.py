"""Projects and payments through HTTP: the beneficiary's IBAN, extension and Lombardy site, orders that are never
paid twice, the treasury's CSV, the loan's repayment plan, and who may see and do what. Projects and payments
are built as rows; intake (call rules, companies' names) answers on a loopback port with committed data."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.factories import make_company, make_partner, open_call
from tests.services.monitoring.builders import OTHER_VALID_IBAN, VALID_IBAN, make_payment, make_project


async def committed_call_and_companies(engine: Any, *names: str) -> tuple[Any, list[Any]]:
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        companies = [await make_company(s, name=n) for n in names]
        await s.commit()
    return call, companies


async def scalar(session: Any, sql: str, **params: Any) -> Any:
    return (await session.execute(text(sql), params)).scalar_one()


# ---------------------------------------------------------------- IBAN


async def test_the_beneficiary_sets_an_italian_iban_with_if_match(
    monitoring_client, intake, engine, session, token_factory, auditor
):
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    partner = await make_partner(session)
    project = await make_project(session, call_id=call.id, company_id=alfa.id, partner_id=partner.id)
    headers = await token_factory("partner", partner_id=partner.id)
    url = f"/v1/projects/{project.id}/iban"
    holder = {"name": alfa.name, "tax_code": alfa.vat_number}

    bad = await monitoring_client.put(
        url, json={"iban": "IT61X0542811101000000123456", "holder": holder}, headers={**headers, "If-Match": '"1"'}
    )
    assert bad.status_code == 422
    assert [(e["code"], e["path"]) for e in bad.json()["errors"]] == [("iban_invalid", "/iban")]
    foreign = await monitoring_client.put(
        url, json={"iban": "DE89 3704 0044 0532 0130 00", "holder": holder}, headers={**headers, "If-Match": '"1"'}
    )
    assert foreign.status_code == 422 and foreign.json()["errors"][0]["code"] == "iban_not_italian"
    no_holder = await monitoring_client.put(url, json={"iban": VALID_IBAN}, headers={**headers, "If-Match": '"1"'})
    assert no_holder.status_code == 422 and no_holder.json()["errors"][0]["path"] == "/holder"

    missing = await monitoring_client.put(url, json={"iban": VALID_IBAN, "holder": holder}, headers=headers)
    assert missing.status_code == 428
    ok = await monitoring_client.put(
        url,
        json={"iban": "IT60 X054 2811 1010 0000 0123 456", "holder": holder},
        headers={**headers, "If-Match": '"1"'},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["iban"] == VALID_IBAN and ok.headers["etag"] == '"2"'
    stale = await monitoring_client.put(
        url, json={"iban": OTHER_VALID_IBAN, "holder": holder}, headers={**headers, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert (
        await scalar(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE action = 'project.iban_set' AND resource_id = :p",
            p=str(project.id),
        )
        == 1
    )

    other = await token_factory("partner", partner_id=(await make_partner(session)).id)
    assert (
        await monitoring_client.put(
            url, json={"iban": VALID_IBAN, "holder": holder}, headers={**other, "If-Match": '"2"'}
        )
    ).status_code == 404
    assert (
        await monitoring_client.put(
            url, json={"iban": VALID_IBAN, "holder": holder}, headers={**auditor, "If-Match": '"2"'}
        )
    ).status_code == 403


# ---------------------------------------------------------------- orders: nothing paid twice


async def test_ordering_the_advance_twice_returns_the_live_order_and_nothing_is_paid_twice(
    monitoring_client, intake, session, officer
):
    project = await make_project(session, iban=VALID_IBAN)
    advance = await make_payment(session, project, amount="8000.00")
    order = f"/v1/projects/{project.id}/payments"

    again = await monitoring_client.post(order, json={"kind": "advance"}, headers=officer)
    assert again.status_code == 200 and again.json()["id"] == str(advance.id)

    stale = await monitoring_client.post(f"/v1/payments/{advance.id}/paid", headers={**officer, "If-Match": '"7"'})
    assert stale.status_code == 412
    paid = await monitoring_client.post(f"/v1/payments/{advance.id}/paid", headers={**officer, "If-Match": '"1"'})
    assert paid.status_code == 200 and paid.json()["status"] == "paid" and paid.headers["etag"] == '"2"'
    twice = await monitoring_client.post(f"/v1/payments/{advance.id}/paid", headers={**officer, "If-Match": '"2"'})
    assert twice.status_code == 409
    failed_after_paid = await monitoring_client.post(
        f"/v1/payments/{advance.id}/failed", json={"reason": "oops"}, headers={**officer, "If-Match": '"2"'}
    )
    assert failed_after_paid.status_code == 409
    third = await monitoring_client.post(order, json={"kind": "advance"}, headers={**officer, "Idempotency-Key": "k1"})
    assert third.status_code == 200 and third.json()["id"] == str(advance.id) and third.json()["status"] == "paid"

    assert await scalar(session, "SELECT count(*) FROM monitoring.payments WHERE project_id = :p", p=project.id) == 1
    assert (
        await scalar(
            session,
            "SELECT count(*) FROM desk.outbox WHERE event_type = 'payment.paid' AND aggregate_type = 'payment'"
            " AND aggregate_id = :p AND ordering_key = :a",
            p=str(advance.id),
            a=str(project.application_id),
        )
        == 1
    )
    # the balance waits for the outcome
    balance = await monitoring_client.post(order, json={"kind": "balance"}, headers=officer)
    assert balance.status_code == 409


async def test_a_failed_advance_can_be_ordered_again(monitoring_client, intake, engine, session, officer):
    call, _ = await committed_call_and_companies(engine)
    project = await make_project(session, call_id=call.id, grant="12345.67", iban=VALID_IBAN)
    advance = await make_payment(session, project, amount="4938.26")
    failed = await monitoring_client.post(
        f"/v1/payments/{advance.id}/failed", json={"reason": "Conto chiuso"}, headers={**officer, "If-Match": '"1"'}
    )
    assert failed.status_code == 200 and failed.json()["failed_reason"] == "Conto chiuso"

    r = await monitoring_client.post(f"/v1/projects/{project.id}/payments", json={"kind": "advance"}, headers=officer)
    assert r.status_code == 201, r.text
    # 40 % of 12345.67 = 4938.268, floored
    assert r.json()["amount"] == "4938.26" and r.json()["id"] != str(advance.id)
    assert r.headers["location"] == f"/v1/payments/{r.json()['id']}"
    again = await monitoring_client.post(
        f"/v1/projects/{project.id}/payments", json={"kind": "advance"}, headers=officer
    )
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    listed = (
        await monitoring_client.get("/v1/payments", params={"project_id": str(project.id)}, headers=officer)
    ).json()["items"]
    assert sorted(p["status"] for p in listed) == ["failed", "ordered"]


async def test_a_payment_order_is_paid_and_exported_only_once_a_second_officer_confirms_it(
    monitoring_client, intake, engine, session, officer, second_officer
):
    call, (alfa,) = await committed_call_and_companies(engine, "Alfa Export S.r.l.")
    project = await make_project(session, call_id=call.id, company_id=alfa.id, grant="12345.67", iban=VALID_IBAN)
    r = await monitoring_client.post(f"/v1/projects/{project.id}/payments", json={"kind": "advance"}, headers=officer)
    assert r.status_code == 201, r.text
    order = r.json()
    export = {"call_id": str(call.id)}

    unconfirmed = await monitoring_client.post(
        f"/v1/payments/{order['id']}/paid", headers={**officer, "If-Match": order["etag"]}
    )
    assert unconfirmed.status_code == 409, unconfirmed.text
    assert unconfirmed.json()["type"] == "/problems/payment-not-confirmed"
    csv_file = await monitoring_client.get("/v1/payments/export.csv", params=export, headers=officer)
    assert csv_file.status_code == 200, csv_file.text
    assert order["id"] not in csv_file.text, "the treasury never gets an unconfirmed order"
    own = await monitoring_client.post(
        f"/v1/payments/{order['id']}/confirm", headers={**officer, "If-Match": order["etag"]}
    )
    assert own.status_code == 403 and own.json()["type"] == "/problems/four-eyes-same-officer", own.text
    assert await scalar(session, "SELECT status FROM monitoring.payments WHERE id = :p", p=order["id"]) == "ordered"

    confirmed = await monitoring_client.post(
        f"/v1/payments/{order['id']}/confirm", headers={**second_officer, "If-Match": order["etag"]}
    )
    assert confirmed.status_code == 200, confirmed.text
    again = await monitoring_client.post(
        f"/v1/payments/{order['id']}/confirm", headers={**second_officer, "If-Match": order["etag"]}
    )
    assert again.status_code == 409 and again.json()["type"] == "/problems/nothing-to-confirm"
    audit = (
        await session.execute(
            text("SELECT after FROM desk.audit_log WHERE action = 'payment.order_confirmed' AND resource_id = :p"),
            {"p": order["id"]},
        )
    ).scalar_one()
    assert audit["proposed_by"] != audit["confirmed_by"] and audit["amount"] == "4938.26"
    assert order["id"] in (await monitoring_client.get("/v1/payments/export.csv", params=export, headers=officer)).text
    paid = await monitoring_client.post(
        f"/v1/payments/{order['id']}/paid", headers={**officer, "If-Match": order["etag"]}
    )
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text


async def test_unpaid_order_needs_a_valid_iban(monitoring_client, session, officer):
    project = await make_project(session)
    advance = await make_payment(session, project)
    r = await monitoring_client.post(f"/v1/payments/{advance.id}/paid", headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 409
    assert await scalar(session, "SELECT status FROM monitoring.payments WHERE id = :p", p=advance.id) == "ordered"


# ---------------------------------------------------------------- treasury export


async def test_the_treasury_csv_lists_the_open_orders_and_refuses_bad_ibans(
    monitoring_client, intake, engine, session, officer, token_factory
):
    call, (alfa, beta) = await committed_call_and_companies(engine, "Alfa Export S.r.l.", "Beta, Tessile S.p.A.")
    pa = await make_project(
        session, call_id=call.id, company_id=alfa.id, iban=VALID_IBAN, cup="J11B22000000001", decree_number="DDUO 77"
    )
    pb = await make_project(
        session,
        call_id=call.id,
        company_id=beta.id,
        iban=OTHER_VALID_IBAN,
        cup="J11B22000000002",
        decree_number="DDUO 77",
    )
    a = await make_payment(session, pa, amount="8000.00")
    b = await make_payment(session, pb, amount="4938.26")
    await make_payment(session, pa, kind="balance", amount="12000.00", status="paid")  # not open: not listed
    await make_payment(session, pb, kind="recovery", amount="100.00", iban="")  # collected, not paid out

    r = await monitoring_client.get("/v1/payments/export.csv", params={"call_id": str(call.id)}, headers=officer)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    day = pa.decree_date.strftime("%d/%m/%Y")
    rows = {
        str(a.id): f"{a.id},advance,Alfa Export S.r.l.,{alfa.vat_number},{VALID_IBAN},8000.00,J11B22000000001,"
        f"COR-123456,Verso Nuovi Mercati - anticipo contributo - CUP J11B22000000001 - decreto n. DDUO 77 "
        f"del {day}",
        str(b.id): f'{b.id},advance,"Beta, Tessile S.p.A.",{beta.vat_number},{OTHER_VALID_IBAN},4938.26,'
        f"J11B22000000002,COR-123456,Verso Nuovi Mercati - anticipo contributo - CUP J11B22000000002 - "
        f"decreto n. DDUO 77 del {day}",
    }
    expected = "payment_id,kind,beneficiary,vat_number,iban,amount,cup,cor,causale\r\n" + "".join(
        rows[k] + "\r\n" for k in sorted(rows)
    )  # same order time (one transaction): by id
    assert r.text == expected

    # an order without an IBAN and one with a corrupted IBAN: the whole file is refused, listing them
    pc = await make_project(session, call_id=call.id, company_id=alfa.id)
    c = await make_payment(session, pc, amount="10.00")
    pd = await make_project(session, call_id=call.id, company_id=beta.id)
    d = await make_payment(session, pd, amount="20.00", iban="IT61X0542811101000000123456")
    refused = await monitoring_client.get("/v1/payments/export.csv", params={"call_id": str(call.id)}, headers=officer)
    assert refused.status_code == 409
    problem = refused.json()
    assert sorted((x["payment_id"], x["code"]) for x in problem["refused"]) == sorted(
        [(str(c.id), "iban_missing"), (str(d.id), "iban_invalid")]
    )
    # each row's message in the negotiated language only, never python-stdnum's English
    assert {x["code"]: x["message"] for x in problem["refused"]} == {
        "iban_missing": "Il progetto non ha un IBAN.",
        "iban_invalid": "IBAN non valido: la cifra di controllo non corrisponde.",
    }
    english = await monitoring_client.get(
        "/v1/payments/export.csv", params={"call_id": str(call.id)}, headers={**officer, "Accept-Language": "en"}
    )
    assert english.headers["content-language"] == "en"
    assert {x["code"]: x["message"] for x in english.json()["refused"]} == {
        "iban_missing": "The project has no IBAN.",
        "iban_invalid": "Invalid IBAN: the check digit does not match.",
    }

    partner = await token_factory("partner", partner_id=uuid.uuid4())
    assert (await monitoring_client.get("/v1/payments/export.csv", headers=partner)).status_code == 403


# ---------------------------------------------------------------- loan schedule


async def test_the_loan_schedule_repays_the_principal(monitoring_client, session, token_factory):
    company_id = uuid.uuid4()
    project = await make_project(session, company_id=company_id, loan="65000.00", years=6)
    company = await token_factory("company", company_id=company_id)
    r = await monitoring_client.get(f"/v1/projects/{project.id}/loan-schedule", headers=company)
    assert r.status_code == 200, r.text
    plan = r.json()
    items = plan["installments"]
    assert plan["principal"] == "65000.00" and plan["annual_rate"] == "0.015" and len(items) == 12
    assert sum(Decimal(i["principal"]) for i in items) == Decimal("65000.00")
    assert items[-1]["outstanding"] == "0.00"
    # 12 months' grace: two half-yearly installments of interest only (65000 x 1.5 % / 2 = 487.50)
    assert [(i["principal"], i["interest"]) for i in items[:2]] == [("0.00", "487.50"), ("0.00", "487.50")]
    assert Decimal(plan["total_repaid"]) == Decimal("65000.00") + Decimal(plan["total_interest"])

    other = await token_factory("company", company_id=uuid.uuid4())
    assert (await monitoring_client.get(f"/v1/projects/{project.id}/loan-schedule", headers=other)).status_code == 404


# ---------------------------------------------------------------- officers' changes and access


async def test_extension_once_and_lombardy_site(monitoring_client, intake, engine, session, officer):
    call, _ = await committed_call_and_companies(engine)
    project = await make_project(session, call_id=call.id, lombardy_site_verified=False)
    deadline = project.deadline
    url = f"/v1/projects/{project.id}"

    r = await monitoring_client.post(
        f"{url}/extension", json={"reason": "Fiera rinviata"}, headers={**officer, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["extension_granted"] and got["deadline"] > deadline.isoformat() and r.headers["etag"] == '"2"'
    from shared.domain.reporting import add_months

    assert got["deadline"] == add_months(deadline, 6).isoformat()
    twice = await monitoring_client.post(
        f"{url}/extension", json={"reason": "Ancora"}, headers={**officer, "If-Match": '"2"'}
    )
    assert twice.status_code == 409

    site = await monitoring_client.post(
        f"{url}/lombardy-site", json={"opened": True, "note": "Sopralluogo"}, headers={**officer, "If-Match": '"2"'}
    )
    assert site.status_code == 200 and site.json()["lombardy_site_verified"] is True
    assert (
        await scalar(
            session,
            "SELECT count(*) FROM desk.outbox WHERE event_type = 'project.extended' AND aggregate_id = :p",
            p=str(project.id),
        )
        == 1
    )


async def test_partners_see_only_their_projects_and_not_officer_routes(
    monitoring_client, session, token_factory, auditor
):
    mine, theirs = await make_partner(session), await make_partner(session)
    own = await make_project(session, partner_id=mine.id)
    other = await make_project(session, partner_id=theirs.id)
    pay = await make_payment(session, other)
    headers = await token_factory("partner", partner_id=mine.id)

    assert (await monitoring_client.get(f"/v1/projects/{other.id}", headers=headers)).status_code == 404
    assert (await monitoring_client.get(f"/v1/payments/{pay.id}", headers=headers)).status_code == 404
    listed = (await monitoring_client.get("/v1/projects", headers=headers)).json()["items"]
    assert [p["id"] for p in listed] == [str(own.id)]
    got = await monitoring_client.get(f"/v1/projects/{own.id}", headers=headers)
    assert got.status_code == 200 and got.headers["etag"] == '"1"'

    for path, body in (
        ("extension", {"reason": "xyz"}),
        ("revocation", {"reason_code": "deadline_missed", "reason": "xyz"}),
    ):
        r = await monitoring_client.post(
            f"/v1/projects/{own.id}/{path}", json=body, headers={**headers, "If-Match": '"1"'}
        )
        assert r.status_code == 403, path
    assert (
        await monitoring_client.post(f"/v1/payments/{pay.id}/paid", headers={**headers, "If-Match": '"1"'})
    ).status_code == 403
    assert (await monitoring_client.get(f"/v1/projects/{other.id}", headers=auditor)).status_code == 200
    assert (
        await monitoring_client.post(
            f"/v1/projects/{own.id}/extension", json={"reason": "xyz"}, headers={**auditor, "If-Match": '"1"'}
        )
    ).status_code == 403
