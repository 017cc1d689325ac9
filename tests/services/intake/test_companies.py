"""Companies and delegations through HTTP: validation with JSON pointers, SME size class, reach (404 outside
it), ETag/If-Match, idempotent registration, audit trail and the delegation lifecycle with its events."""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from stdnum import luhn


def vat() -> str:
    """A random valid partita IVA (office code 001-100, Luhn check digit)."""
    base = f"{random.randint(1, 9_999_999):07d}{random.randint(1, 100):03d}"
    return base + luhn.calc_check_digit(base)


def with_wrong_check_digit(number: str) -> str:
    return number[:10] + str((int(number[10]) + 1) % 10)


def company_body(**over: Any) -> dict[str, Any]:
    number = vat()
    body: dict[str, Any] = {
        "vat_number": number,
        "fiscal_code": number,
        "name": "Rossi Meccanica S.r.l.",
        "legal_form": "srl",
        "ateco_code": "28.29.30",
        "registered_office": {
            "address": "Via Larga 12",
            "municipality": "Milano",
            "postal_code": "20122",
            "province": "MI",
        },
        "operating_sites": [],
        "lombardy_site_commitment": False,
        "incorporation_date": "2015-03-01",
        "approved_financial_statements": 8,
        "headcount_awu": "5.00",
        "turnover": "1000000.00",
        "balance_sheet_total": "800000.00",
        "previous_year_export_sales": "150000.00",
        "related_enterprises": [],
        "export_history": [
            {"year": 2023, "country": "DE", "amount": "100000.00"},
            {"year": 2024, "country": "DE", "amount": "150000.00"},
        ],
    }
    body.update(over)
    return body


async def new_partner(client, officer, token_factory) -> tuple[str, dict[str, str]]:
    base = f"{random.randint(1, 9_999_999):07d}{random.randint(1, 100):03d}"
    r = await client.post(
        "/v1/partners",
        json={
            "name": "Confartigianato Lombardia",
            "kind": "trade_association",
            "fiscal_code": base + luhn.calc_check_digit(base),
        },
        headers=officer,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    return pid, await token_factory("partner", partner_id=uuid.UUID(pid))


async def register(client, headers, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post("/v1/companies", json=body or company_body(), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def errors_of(r) -> dict[str, str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return {e["path"]: e["code"] for e in r.json()["errors"]}


# ---------------------------------------------------------------- registration


async def test_partner_registers_a_company_and_holds_an_active_delegation(client, officer, token_factory, session):
    partner_id, partner = await new_partner(client, officer, token_factory)
    body = company_body(
        operating_sites=[{"address": "Via Roma 1", "municipality": "Torino", "postal_code": "10121", "province": "to"}]
    )
    r = await client.post("/v1/companies", json=body, headers=partner)
    assert r.status_code == 201, r.text
    out = r.json()
    assert r.headers["location"] == f"/v1/companies/{out['id']}" and r.headers["etag"] == '"1"'
    assert out["size_class"] == "micro" and out["has_lombardy_site"] is True
    assert out["operating_sites"][0]["province"] == "TO"
    assert out["turnover"] == "1000000.00" and out["headcount_awu"] == "5.00"
    assert out["aggregated_figures"] == {
        "headcount_awu": "5.00",
        "turnover": "1000000.00",
        "balance_sheet_total": "800000.00",
    }

    r = await client.get(f"/v1/companies/{out['id']}", headers=partner)
    assert r.status_code == 200 and r.json()["vat_number"] == body["vat_number"] and r.headers["etag"] == '"1"'

    delegations = (await client.get("/v1/delegations", headers=partner)).json()["items"]
    assert [(d["company_id"], d["status"]) for d in delegations] == [(out["id"], "active")]
    event = (
        await session.execute(
            text("SELECT event_type, partner_id, company_id FROM desk.outbox WHERE aggregate_id = :id"),
            {"id": delegations[0]["id"]},
        )
    ).one()
    assert event.event_type == "delegation.activated"
    assert str(event.partner_id) == partner_id and str(event.company_id) == out["id"]


async def test_officer_registers_a_company_without_delegation(client, officer, session):
    out = await register(client, officer)
    count = (
        await session.execute(text("SELECT count(*) FROM intake.delegations WHERE company_id = :c"), {"c": out["id"]})
    ).scalar_one()
    assert count == 0


async def test_company_principal_cannot_register_a_company(client, officer, token_factory):
    existing = await register(client, officer)
    company = await token_factory("company", company_id=uuid.UUID(existing["id"]))
    r = await client.post("/v1/companies", json=company_body(), headers=company)
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"


async def test_auditor_reads_but_cannot_write(client, officer, auditor):
    out = await register(client, officer)
    assert (await client.get(f"/v1/companies/{out['id']}", headers=auditor)).status_code == 200
    assert (await client.post("/v1/companies", json=company_body(), headers=auditor)).status_code == 403
    r = await client.put(
        f"/v1/companies/{out['id']}",
        json=company_body(vat_number=out["vat_number"]),
        headers={**auditor, "If-Match": '"1"'},
    )
    assert r.status_code == 403


async def test_officer_registering_a_known_vat_gets_409(client, officer):
    body = company_body()
    await register(client, officer, body)
    r = await client.post("/v1/companies", json={**body, "name": "Someone else"}, headers=officer)
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"


async def test_partner_registering_a_known_vat_makes_a_delegation_request_that_reveals_nothing(
    client, officer, token_factory, session
):
    partner_id, partner = await new_partner(client, officer, token_factory)
    body = company_body(name="Bianchi Export S.r.l.")
    existing = await register(client, officer, body)
    company = await token_factory("company", company_id=uuid.UUID(existing["id"]))

    r = await client.post("/v1/companies", json={**body, "name": "Someone else"}, headers=partner)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer == {"id": answer["id"], "vat_number": body["vat_number"], "status": "requested"}
    assert existing["id"] not in r.text and "Bianchi" not in r.text and "location" not in r.headers
    # the same answer as asking for a delegation on a VAT number nobody registered
    unknown = await client.post("/v1/delegations", json={"vat_number": vat()}, headers=partner)
    assert unknown.status_code == 202 and set(unknown.json()) == set(answer)
    # the company learns of it and decides; the partner still does not reach it
    pending = (await client.get("/v1/delegations", params={"status": "pending"}, headers=company)).json()["items"]
    assert [(d["id"], d["partner_id"]) for d in pending] == [(answer["id"], partner_id)]
    assert (await client.get(f"/v1/companies/{existing['id']}", headers=partner)).status_code == 404
    count = (
        await session.execute(
            text("SELECT count(*) FROM intake.companies WHERE vat_number = :v"), {"v": body["vat_number"]}
        )
    ).scalar_one()
    assert count == 1


# ---------------------------------------------------------------- validation


async def test_wrong_vat_check_digit_is_422_on_vat_number(client, officer):
    body = company_body()
    body["vat_number"] = with_wrong_check_digit(body["vat_number"])
    r = await client.post("/v1/companies", json=body, headers=officer)
    assert errors_of(r) == {"/vat_number": "vat_number_invalid"}


async def test_unknown_province_and_country_are_422_with_json_pointers(client, officer):
    body = company_body()
    body["registered_office"]["province"] = "XX"
    body["operating_sites"] = [
        {"address": "Via Po 1", "municipality": "Parigi", "postal_code": "75001", "province": "PA"},
        {"address": "Rue 1", "municipality": "Paris", "postal_code": "750", "province": "ZZ"},
    ]
    body["export_history"][1]["country"] = "ZZ"
    errors = errors_of(await client.post("/v1/companies", json=body, headers=officer))
    assert errors == {
        "/registered_office/province": "province_unknown",
        "/operating_sites/1/postal_code": "string_pattern_mismatch",
        "/operating_sites/1/province": "province_unknown",
        "/export_history/1/country": "country_unknown",
    }


async def test_money_as_float_is_refused(client, officer):
    body = company_body(turnover=1000000.5, previous_year_export_sales=10)
    body["export_history"][0]["amount"] = 99.9
    errors = errors_of(await client.post("/v1/companies", json=body, headers=officer))
    assert errors == {
        "/turnover": "money_not_string",
        "/previous_year_export_sales": "money_not_string",
        "/export_history/0/amount": "money_not_string",
    }


async def test_unknown_fields_are_refused(client, officer):
    body = company_body(size_class="micro")
    body["registered_office"]["country"] = "IT"
    errors = errors_of(await client.post("/v1/companies", json=body, headers=officer))
    assert errors == {"/size_class": "extra_forbidden", "/registered_office/country": "extra_forbidden"}


@pytest.mark.parametrize(
    "code,ok",
    [
        ("28", True),
        ("28.2", True),
        ("28.29", True),
        ("28.29.3", True),
        ("28.29.30", True),
        ("01.11.00", True),
        ("00.11", False),
        ("2", False),
        ("28.", False),
        ("28.2.1", False),
        ("28.29.300", False),
        ("AB.CD", False),
        ("28-29-30", False),
    ],
)
async def test_ateco_code_format(client, officer, code, ok):
    r = await client.post("/v1/companies", json=company_body(ateco_code=code), headers=officer)
    if ok:
        assert r.status_code == 201, r.text
        assert r.json()["ateco_code"] == code
    else:
        assert errors_of(r) == {"/ateco_code": "ateco_invalid"}


async def test_business_rules_on_dates_shares_headcount_and_history(client, officer):
    related = {
        "vat_number": vat(),
        "name": "Holding S.p.A.",
        "relation": "partner",
        "share": "0.60",
        "headcount_awu": "3",
        "turnover": "1.00",
        "balance_sheet_total": "1.00",
    }
    body = company_body(
        incorporation_date=(date.today() + timedelta(days=2)).isoformat(),
        headcount_awu=12,
        related_enterprises=[related, {**related, "relation": "linked", "share": "0.50"}],
        export_history=[
            {"year": 2024, "country": "DE", "amount": "1.00"},
            {"year": 2024, "country": "de", "amount": "2.00"},
            {"year": 1999, "country": "FR", "amount": "2.00"},
        ],
    )
    errors = errors_of(await client.post("/v1/companies", json=body, headers=officer))
    assert errors == {
        "/incorporation_date": "date_in_future",
        "/headcount_awu": "decimal_not_string",
        "/related_enterprises/0/share": "share_relation_mismatch",
        "/related_enterprises/1/share": "share_relation_mismatch",
        "/export_history/2/year": "year_out_of_range",
    }
    body = company_body(
        export_history=[
            {"year": 2024, "country": "DE", "amount": "1.00"},
            {"year": 2024, "country": "de", "amount": "2.00"},
        ]
    )
    assert errors_of(await client.post("/v1/companies", json=body, headers=officer)) == {
        "/export_history": "duplicate_value"
    }


# ---------------------------------------------------------------- SME size class


@pytest.mark.parametrize(
    "headcount,turnover,balance,expected",
    [
        ("9.50", "2000000.00", "5000000.00", "micro"),
        ("10.00", "1000000.00", "1000000.00", "small"),  # 10 AWU is not "fewer than 10"
        ("49.00", "12000000.00", "9000000.00", "small"),  # turnover over, balance within: still small
        ("120.00", "30000000.00", "20000000.00", "medium"),
        ("249.00", "60000000.00", "44000000.00", "large"),  # both financial ceilings exceeded
        ("250.00", "1000000.00", "1000000.00", "large"),
    ],
)
async def test_size_class(client, officer, headcount, turnover, balance, expected):
    out = await register(
        client, officer, company_body(headcount_awu=headcount, turnover=turnover, balance_sheet_total=balance)
    )
    assert out["size_class"] == expected


async def test_partner_enterprise_pushes_a_small_firm_into_medium(client, officer, session):
    own = {"headcount_awu": "40.00", "turnover": "8000000.00", "balance_sheet_total": "7000000.00"}
    alone = await register(client, officer, company_body(**own))
    assert alone["size_class"] == "small"

    partner_firm = {
        "vat_number": vat(),
        "name": "Partner S.p.A.",
        "relation": "partner",
        "share": "0.40",
        "headcount_awu": "30.00",
        "turnover": "10000000.00",
        "balance_sheet_total": "10000000.00",
    }
    out = await register(client, officer, company_body(**own, related_enterprises=[partner_firm]))
    assert out["size_class"] == "medium"
    # 40 + 30 x 0.40 = 52 AWU (>= 50): no longer small, whatever the money
    assert out["aggregated_figures"] == {
        "headcount_awu": "52.00",
        "turnover": "12000000.00",
        "balance_sheet_total": "11000000.00",
    }
    stored = (
        await session.execute(text("SELECT size_class FROM intake.companies WHERE id = :id"), {"id": out["id"]})
    ).scalar_one()
    assert stored == "medium"


async def test_linked_enterprise_counts_in_full(client, officer):
    linked = {
        "vat_number": vat(),
        "name": "Controllata S.r.l.",
        "relation": "linked",
        "share": "0.51",
        "headcount_awu": "6.00",
        "turnover": "500000.00",
        "balance_sheet_total": "500000.00",
    }
    out = await register(client, officer, company_body(related_enterprises=[linked]))
    assert out["aggregated_figures"]["headcount_awu"] == "11.00"
    assert out["size_class"] == "small"


# ---------------------------------------------------------------- reach, ETag, replacement


async def test_another_partners_company_is_404_on_get_put_and_absent_from_lists(client, officer, token_factory):
    _, partner_a = await new_partner(client, officer, token_factory)
    _, partner_b = await new_partner(client, officer, token_factory)
    body = company_body()
    out = await register(client, partner_a, body)

    r = await client.get(f"/v1/companies/{out['id']}", headers=partner_b)
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
    r = await client.put(f"/v1/companies/{out['id']}", json=body, headers={**partner_b, "If-Match": '"1"'})
    assert r.status_code == 404
    assert (await client.get("/v1/companies", headers=partner_b)).json()["items"] == []
    r = await client.get("/v1/companies", params={"vat_number": f"IT{body['vat_number']}"}, headers=partner_a)
    assert [c["id"] for c in r.json()["items"]] == [out["id"]]
    assert (await client.get(f"/v1/companies/{uuid.uuid4()}", headers=officer)).status_code == 404


async def test_put_replaces_recomputes_and_needs_a_fresh_if_match(client, officer, token_factory, session):
    _, partner = await new_partner(client, officer, token_factory)
    body = company_body()
    out = await register(client, partner, body)
    url = f"/v1/companies/{out['id']}"

    bigger = copy.deepcopy(body)
    bigger.update(headcount_awu="60.00", turnover="20000000.00", operating_sites=[])
    bigger["registered_office"].update(province="TO", municipality="Torino", postal_code="10121")
    r = await client.put(url, json=bigger, headers=partner)
    assert r.status_code == 428 and r.json()["type"] == "/problems/precondition-required"

    r = await client.put(url, json=bigger, headers={**partner, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"' and r.json()["size_class"] == "medium"
    assert r.json()["has_lombardy_site"] is False

    r = await client.put(url, json=body, headers={**partner, "If-Match": '"1"'})
    assert r.status_code == 412 and r.json()["current_etag"] == '"2"'

    r = await client.put(url, json={**bigger, "vat_number": vat()}, headers={**partner, "If-Match": '"2"'})
    assert errors_of(r) == {"/vat_number": "vat_number_immutable"}

    audit = (
        await session.execute(
            text(
                "SELECT before, after FROM desk.audit_log WHERE resource_type = 'company' AND resource_id = :id "
                "AND action = 'company.updated'"
            ),
            {"id": out["id"]},
        )
    ).one()
    assert audit.before["size_class"] == "micro" and audit.after["size_class"] == "medium"
    assert audit.before["headcount_awu"] == "5.00" and audit.after["headcount_awu"] == "60.00"


async def test_company_updates_itself(client, officer, token_factory):
    body = company_body()
    out = await register(client, officer, body)
    company = await token_factory("company", company_id=uuid.UUID(out["id"]))
    r = await client.put(
        f"/v1/companies/{out['id']}",
        json={**body, "name": "Rossi Meccanica S.p.A.", "legal_form": "spa"},
        headers={**company, "If-Match": out["etag"]},
    )
    assert r.status_code == 200 and r.json()["legal_form"] == "spa"
    listed = (await client.get("/v1/companies", headers=company)).json()["items"]
    assert [c["name"] for c in listed] == ["Rossi Meccanica S.p.A."]


# ---------------------------------------------------------------- idempotency and audit


async def test_idempotent_registration_replays_and_creates_one_row(client, officer, token_factory, session):
    _, partner = await new_partner(client, officer, token_factory)
    body = company_body()
    headers = {**partner, "Idempotency-Key": f"reg-{uuid.uuid4()}"}
    first = await client.post("/v1/companies", json=body, headers=headers)
    again = await client.post("/v1/companies", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    count = (
        await session.execute(
            text("SELECT count(*) FROM intake.companies WHERE vat_number = :v"), {"v": body["vat_number"]}
        )
    ).scalar_one()
    assert count == 1

    r = await client.post("/v1/companies", json={**body, "name": "Changed"}, headers=headers)
    assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-key-reused"


async def test_company_registration_leaves_an_audit_record(client, officer, token_factory, session):
    _, partner = await new_partner(client, officer, token_factory)
    body = company_body()
    out = await register(client, partner, body)
    row = (
        await session.execute(
            text(
                "SELECT action, principal_kind, before, after FROM desk.audit_log "
                "WHERE resource_type = 'company' AND resource_id = :id"
            ),
            {"id": out["id"]},
        )
    ).one()
    assert row.action == "company.registered" and row.principal_kind == "partner"
    assert row.before is None
    assert row.after["vat_number"] == body["vat_number"] and row.after["size_class"] == "micro"
    assert row.after["registered_office"]["province"] == "MI"


# ---------------------------------------------------------------- delegations


async def test_delegation_lifecycle(client, officer, token_factory, session):
    partner_id, partner = await new_partner(client, officer, token_factory)
    body = company_body()
    company_out = await register(client, officer, body)
    company = await token_factory("company", company_id=uuid.UUID(company_out["id"]))
    company_url = f"/v1/companies/{company_out['id']}"

    r = await client.post("/v1/delegations", json={"vat_number": body["vat_number"]}, headers=partner)
    assert r.status_code == 202, r.text
    d = r.json()
    assert d == {"id": d["id"], "vat_number": body["vat_number"], "status": "requested"}
    url = f"/v1/delegations/{d['id']}"

    # pending: the partner reaches neither the company nor, yet, the delegation (it names the company)
    assert (await client.get(company_url, headers=partner)).status_code == 404
    assert (await client.get(url, headers=partner)).status_code == 404
    assert (await client.get("/v1/delegations", headers=partner)).json()["items"] == []
    # the company sees the request and who made it
    on_me = (await client.get("/v1/delegations", headers=company)).json()["items"]
    assert [(x["id"], x["partner_name"], x["status"]) for x in on_me] == [
        (d["id"], "Confartigianato Lombardia", "pending")
    ]
    # the partner may not accept its own request
    assert (await client.post(f"{url}/accept", headers={**partner, "If-Match": '"1"'})).status_code == 403

    assert (await client.post(f"{url}/accept", headers=company)).status_code == 428
    r = await client.post(f"{url}/accept", headers={**company, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["activated_at"] and r.headers["etag"] == '"2"'
    assert (await client.get(company_url, headers=partner)).status_code == 200
    # accepted: now the partner learns the company's id and name
    seen = (await client.get(url, headers=partner)).json()
    assert (seen["company_id"], seen["company_name"]) == (company_out["id"], company_out["name"])
    r = await client.post(f"{url}/accept", headers={**company, "If-Match": '"2"'})
    assert r.status_code == 409 and r.json()["type"] == "/problems/conflict"

    assert (await client.post(f"{url}/revoke", headers={**company, "If-Match": '"1"'})).status_code == 412
    r = await client.post(f"{url}/revoke", headers={**company, "If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_at"]
    assert (await client.get(company_url, headers=partner)).status_code == 404
    assert (
        await client.put(company_url, json=body, headers={**partner, "If-Match": company_out["etag"]})
    ).status_code == 404
    # the partner still sees its (revoked) delegation
    assert (await client.get(url, headers=partner)).json()["status"] == "revoked"

    events = (
        await session.execute(
            text(
                "SELECT event_type, partner_id, company_id FROM desk.outbox WHERE aggregate_type = 'delegation' "
                "AND aggregate_id = :id ORDER BY id"
            ),
            {"id": d["id"]},
        )
    ).all()
    # the request goes to the company only; the partner hears of the delegation from its activation on
    assert [(e.event_type, e.partner_id and str(e.partner_id)) for e in events] == [
        ("delegation.requested", None),
        ("delegation.activated", partner_id),
        ("delegation.revoked", partner_id),
    ]
    assert all(str(e.company_id) == company_out["id"] for e in events)
    actions = (
        (
            await session.execute(
                text(
                    "SELECT action FROM desk.audit_log WHERE resource_type = 'delegation' AND resource_id = "
                    ":id ORDER BY id"
                ),
                {"id": d["id"]},
            )
        )
        .scalars()
        .all()
    )
    assert actions == ["delegation.requested", "delegation.activated", "delegation.revoked"]

    # after revocation, a new request is allowed again
    r = await client.post("/v1/delegations", json={"vat_number": body["vat_number"]}, headers=partner)
    assert r.status_code == 202 and r.json()["id"] != d["id"]
    on_me = (await client.get("/v1/delegations", params={"status": "pending"}, headers=company)).json()["items"]
    assert [x["id"] for x in on_me] == [r.json()["id"]]


async def test_delegation_request_answers_alike_whether_or_not_the_company_exists(
    client, officer, token_factory, session
):
    _, partner = await new_partner(client, officer, token_factory)
    body = company_body(name="Verdi Tessile S.p.A.")
    known = await register(client, officer, body)
    answers = {
        "registered": await client.post("/v1/delegations", json={"vat_number": body["vat_number"]}, headers=partner),
        "again, while pending": await client.post(
            "/v1/delegations", json={"vat_number": body["vat_number"]}, headers=partner
        ),
        "never registered": await client.post("/v1/delegations", json={"vat_number": vat()}, headers=partner),
    }
    for case, r in answers.items():
        assert r.status_code == 202, (case, r.text)
        assert sorted(r.json()) == ["id", "status", "vat_number"] and r.json()["status"] == "requested", case
        assert sorted(r.headers) == sorted(answers["never registered"].headers), case
        assert known["id"] not in r.text and "Verdi" not in r.text, case
    assert len({r.json()["id"] for r in answers.values()}) == 3
    # one pending delegation; every request, matched or not, is in the audit trail
    pending = (
        await session.execute(
            text("SELECT count(*) FROM intake.delegations WHERE company_id = :c AND status = 'pending'"),
            {"c": known["id"]},
        )
    ).scalar_one()
    assert pending == 1
    audited = (
        await session.execute(
            text(
                "SELECT resource_type, after->>'outcome' FROM desk.audit_log WHERE action = 'delegation.requested' "
                "AND resource_id = ANY(:ids) ORDER BY id"
            ),
            {"ids": [r.json()["id"] for r in answers.values()]},
        )
    ).all()
    assert [tuple(a) for a in audited] == [
        ("delegation", None),
        ("delegation_request", "already_pending"),
        ("delegation_request", "unmatched"),
    ]


async def test_delegation_request_checks_the_vat_and_refuses_a_second_active_delegation(client, officer, token_factory):
    _, partner = await new_partner(client, officer, token_factory)
    r = await client.post("/v1/delegations", json={"vat_number": with_wrong_check_digit(vat())}, headers=partner)
    assert errors_of(r) == {"/vat_number": "vat_number_invalid"}
    # the partner that registered a company already holds an active delegation on it (it knows the company)
    own = company_body()
    await register(client, partner, own)
    r = await client.post("/v1/delegations", json={"vat_number": own["vat_number"]}, headers=partner)
    assert r.status_code == 409 and r.json()["type"] == "/problems/already-exists"


async def test_a_refused_request_tells_the_partner_nothing(client, officer, token_factory, session):
    partner_id, partner = await new_partner(client, officer, token_factory)
    body = company_body()
    out = await register(client, officer, body)
    company = await token_factory("company", company_id=uuid.UUID(out["id"]))
    d = (await client.post("/v1/delegations", json={"vat_number": body["vat_number"]}, headers=partner)).json()
    r = await client.post(f"/v1/delegations/{d['id']}/revoke", headers={**company, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert (await client.get(f"/v1/delegations/{d['id']}", headers=partner)).status_code == 404
    events = (
        await session.execute(
            text("SELECT count(*) FROM desk.outbox WHERE aggregate_type = 'delegation' AND partner_id = :p"),
            {"p": partner_id},
        )
    ).scalar_one()
    assert events == 0


async def test_delegations_are_visible_only_to_their_parties(client, officer, token_factory, auditor):
    _, partner_a = await new_partner(client, officer, token_factory)
    _, partner_b = await new_partner(client, officer, token_factory)
    body = company_body()
    company_out = await register(client, officer, body)
    d = (await client.post("/v1/delegations", json={"vat_number": body["vat_number"]}, headers=partner_a)).json()
    other = await token_factory("company", company_id=uuid.UUID((await register(client, officer))["id"]))

    for outsider in (partner_b, other):
        assert (await client.get(f"/v1/delegations/{d['id']}", headers=outsider)).status_code == 404
        assert (await client.get("/v1/delegations", headers=outsider)).json()["items"] == []
        r = await client.post(f"/v1/delegations/{d['id']}/revoke", headers={**outsider, "If-Match": '"1"'})
        assert r.status_code == 404
    assert (await client.get(f"/v1/delegations/{d['id']}", headers=auditor)).status_code == 200
    r = await client.get("/v1/delegations", params={"status": "pending"}, headers=officer)
    assert d["id"] in {x["id"] for x in r.json()["items"]}
    # an officer can activate it on the company's behalf, and the partner can end it
    r = await client.post(f"/v1/delegations/{d['id']}/accept", headers={**officer, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert (await client.get(f"/v1/companies/{company_out['id']}", headers=partner_a)).status_code == 200
    r = await client.post(f"/v1/delegations/{d['id']}/revoke", headers={**partner_a, "If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["status"] == "revoked"


# ---------------------------------------------------------------- company clients


async def test_officer_issues_a_company_client_that_sees_only_its_company(client, officer, token_factory):
    out = await register(client, officer)
    await register(client, officer)
    r = await client.post(f"/v1/companies/{out['id']}/clients", json={}, headers=officer)
    assert r.status_code == 201, r.text
    creds = r.json()
    assert creds["kind"] == "company" and r.headers["cache-control"] == "no-store"
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
    assert [c["id"] for c in (await client.get("/v1/companies", headers=headers)).json()["items"]] == [out["id"]]

    _, partner = await new_partner(client, officer, token_factory)
    assert (await client.post(f"/v1/companies/{out['id']}/clients", headers=partner)).status_code == 403
    assert (await client.post(f"/v1/companies/{uuid.uuid4()}/clients", headers=officer)).status_code == 404


# ---------------------------------------------------------------- races (real commits)


async def test_concurrent_registrations_of_one_vat_give_one_company_and_409s(committing_client, officer):
    body = company_body()
    responses = await asyncio.gather(
        *[committing_client.post("/v1/companies", json=body, headers=officer) for _ in range(4)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"/problems/already-exists"}


async def test_concurrent_delegation_requests_leave_one_live_delegation(committing_client, officer, token_factory):
    partner_id, partner = await new_partner(committing_client, officer, token_factory)
    body = company_body()
    await register(committing_client, officer, body)
    request = {"vat_number": body["vat_number"]}
    responses = await asyncio.gather(
        *[committing_client.post("/v1/delegations", json=request, headers=partner) for _ in range(4)]
    )
    assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
    live = (await committing_client.get("/v1/delegations", params={"status": "pending"}, headers=officer)).json()
    assert [d["partner_id"] for d in live["items"] if d["company_vat_number"] == body["vat_number"]] == [partner_id]
