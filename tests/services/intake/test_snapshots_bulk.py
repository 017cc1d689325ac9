"""`POST /v1/internal/applications/snapshots`: many applications in one request, for the desk's services only;
unknown ids are listed, not refused; the snapshot is the one `GET /v1/applications/{id}` serves, and the
applications' companies come with them."""

from __future__ import annotations

import uuid

from tests.factories import delegate, draft_body, make_company, make_partner, open_call

PATH = "/v1/internal/applications/snapshots"


async def _two_drafts(client, session, token_factory):
    call = await open_call(session)
    partner = await make_partner(session)
    companies = [await make_company(session), await make_company(session)]
    for c in companies:
        await delegate(session, partner, c)
    headers = await token_factory("partner", partner_id=partner.id)
    ids = []
    for c in companies:
        r = await client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids, headers


async def test_a_service_reads_many_applications_in_one_request(client, session, token_factory):
    (a, b), partner = await _two_drafts(client, session, token_factory)
    service = await token_factory("service")
    unknown = str(uuid.uuid4())
    # asked out of order, with a repeat and an unknown id
    r = await client.post(PATH, json={"ids": [b, unknown, a, b]}, headers=service)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == [b, a]
    assert body["unknown"] == [unknown]
    one = await client.get(f"/v1/applications/{a}", headers=partner)
    assert body["items"][1] == one.json(), "the same snapshot as the single read"
    assert body["items"][1]["expense_lines"], "with its expense lines"
    # and their two companies, once each, as the company route serves them
    companies = {c["id"]: c for c in body["companies"]}
    assert set(companies) == {i["company_id"] for i in body["items"]} and len(body["companies"]) == 2
    company_id = body["items"][1]["company_id"]
    c = await client.get(f"/v1/companies/{company_id}", headers=partner)
    assert companies[company_id] == c.json()


async def test_only_unknown_ids_give_an_empty_list(client, token_factory):
    service = await token_factory("service")
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    r = await client.post(PATH, json={"ids": ids}, headers=service)
    assert r.status_code == 200
    assert r.json() == {"items": [], "unknown": ids, "companies": []}


async def test_partners_officers_and_auditors_are_refused_and_nobody_unauthenticated(client, session, token_factory):
    (a, _b), partner = await _two_drafts(client, session, token_factory)
    for headers in (partner, await token_factory("officer"), await token_factory("auditor")):
        r = await client.post(PATH, json={"ids": [a]}, headers=headers)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "action_plan" not in r.text
    r = await client.post(PATH, json={"ids": [a]})
    assert r.status_code == 401


async def test_too_many_or_no_ids_are_a_422(client, token_factory):
    service = await token_factory("service")
    r = await client.post(PATH, json={"ids": []}, headers=service)
    assert r.status_code == 422
    r = await client.post(PATH, json={"ids": [str(uuid.uuid4()) for _ in range(201)]}, headers=service)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
