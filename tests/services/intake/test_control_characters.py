"""Control characters at intake's edge (shared.inputguard): a NUL anywhere in a text field, the path, the query
string or a form is 422 `validation-error` naming the field, and nothing is stored. PostgreSQL refuses NUL in
text, and before the guard these requests answered 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from shared.auth import create_client
from tests.conftest import make_token
from tests.factories import company_body, delegate, draft_body, make_company, make_partner, open_call


def refused(r: Any, path: str, location: str = "body", lang: str = "it") -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "/problems/validation-error"
    assert [(e["code"], e["path"], e["location"]) for e in body["errors"]] == [("control_character", path, location)]
    message = body["errors"][0]["message"]
    assert message == (
        "Carattere di controllo non ammesso (U+0000)." if lang == "it" else "Control character not allowed (U+0000)."
    )


async def count(session: Any, sql: str, **params: Any) -> int:
    return int((await session.execute(text(sql), params)).scalar_one())


async def test_company_name_with_nul_is_422_and_nothing_is_stored(client, session, token_factory):
    partner = await make_partner(session)
    headers = await token_factory("partner", partner_id=partner.id)
    body = company_body()
    body["name"] = "Rossi\u0000 Meccanica S.r.l."
    r = await client.post("/v1/companies", json=body, headers={**headers, "Accept-Language": "en"})
    refused(r, "/name", lang="en")
    assert (
        await count(session, "SELECT count(*) FROM intake.companies WHERE vat_number = :v", v=body["vat_number"]) == 0
    )


async def test_application_field_with_nul_is_422_and_no_draft_is_stored(client, session):
    call = await open_call(session)
    partner = await make_partner(session)
    company = await make_company(session)
    await delegate(session, partner, company)
    headers = await make_token(session, "partner", partner_id=partner.id)
    body = draft_body(call.id, company.id)
    body["expense_lines"][1]["description"] = "Fiera\u0000 Vietnam"
    r = await client.post("/v1/applications", json=body, headers=headers)
    refused(r, "/expense_lines/1/description")
    assert await count(session, "SELECT count(*) FROM intake.applications WHERE call_id = :c", c=call.id) == 0


async def test_a_raw_json_escape_is_found_as_well_as_a_decoded_one(client, session):
    """The byte scan looks for the JSON escape (`\\u0000` as six characters), not only for a raw NUL byte."""
    partner = await make_partner(session)
    headers = await make_token(session, "partner", partner_id=partner.id)
    raw = b'{"url": "http://127.0.0.1:9/x\\u0000y", "event_types": ["*"]}'
    r = await client.post("/v1/webhooks", content=raw, headers={**headers, "Content-Type": "application/json"})
    refused(r, "/url")
    assert await count(session, "SELECT count(*) FROM desk.subscriptions WHERE partner_id = :p", p=partner.id) == 0


async def test_other_control_characters_are_refused_but_tab_and_newlines_are_kept(client, session):
    partner = await make_partner(session)
    headers = await make_token(session, "partner", partner_id=partner.id)
    r = await client.post(
        "/v1/webhooks",
        headers=headers,
        json={"url": "http://127.0.0.1:9/desk-events", "event_types": ["*"], "description": "CRM\u001b[31m"},
    )
    assert r.status_code == 422, r.text
    assert [(e["code"], e["path"]) for e in r.json()["errors"]] == [("control_character", "/description")]
    assert r.json()["errors"][0]["message"] == "Carattere di controllo non ammesso (U+001B)."
    r = await client.post(
        "/v1/webhooks",
        headers=headers,
        json={"url": "http://127.0.0.1:9/desk-events", "event_types": ["*"], "description": "CRM\tinterno\r\nsede"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "CRM\tinterno\r\nsede"


async def test_vat_number_query_parameter_with_nul_is_422(client, officer):
    r = await client.get("/v1/companies", params={"vat_number": "IT0123\u00004560157"}, headers=officer)
    refused(r, "/vat_number", "query")


async def test_token_client_id_with_nul_is_422_without_authentication(client, session):
    c, secret = await create_client(session, kind="officer", name="officer nul")
    r = await client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": c.client_id + "\u0000", "client_secret": secret},
    )
    refused(r, "/client_id")


@pytest.mark.parametrize("tail", ["%00", "x%00y"])
async def test_a_nul_in_a_path_parameter_names_the_parameter(client, officer, tail):
    r = await client.get(f"/v1/companies/{uuid.uuid4()}{tail}", headers=officer)
    refused(r, "/company_id", "path")
