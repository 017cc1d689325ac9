"""Intake's reads through HTTP: the application list's filters (call, status, company, protocol number,
submission dates) within reach, one cursor pagination; another partner sees nothing and gets 404."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


async def _draft(client: Any, call_id: Any, company_id: Any, headers: dict[str, str]) -> str:
    r = await client.post("/v1/applications", json=draft_body(call_id, company_id), headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _submit(client: Any, app_id: str, headers: dict[str, str]) -> int:
    await declare_stamp_duty(client, app_id, headers)
    r = await client.post(f"/v1/applications/{app_id}/submit", headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["receipt"]["protocol_number"])


def _ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()["items"]]


async def test_a_partner_filters_its_own_applications_and_another_partner_sees_none(client, session):
    call, other_call = await open_call(session), await open_call(session)
    partner, stranger = await make_partner(session), await make_partner(session)
    firm, sister = await make_company(session), await make_company(session)
    await delegate(session, partner, firm)
    await delegate(session, partner, sister)
    a = await make_token(session, "partner", partner_id=partner.id)
    b = await make_token(session, "partner", partner_id=stranger.id)

    first = await _draft(client, call.id, firm.id, a)  # submitted on 10 March
    second = await _draft(client, call.id, sister.id, a)  # submitted on 20 March
    draft = await _draft(client, other_call.id, firm.id, a)  # stays a draft
    p1 = await _submit(client, first, a)
    p2 = await _submit(client, second, a)
    assert (p1, p2) == (1, 2), "gap-free protocol numbers of the call, in arrival order"
    for app_id, day in ((first, 10), (second, 20)):
        await session.execute(
            text("UPDATE intake.applications SET submitted_at = :at WHERE id = :id"),
            {"at": datetime(2026, 3, day, 9, 0, tzinfo=UTC), "id": app_id},
        )

    def listed(headers: dict[str, str], **params: Any) -> Any:
        return client.get("/v1/applications", params={k: str(v) for k, v in params.items()}, headers=headers)

    assert set(_ids(await listed(a))) == {first, second, draft}
    # rows made in one transaction share created_at: the page's order between them is by id, so compare sets
    assert set(_ids(await listed(a, call_id=call.id))) == {first, second}
    assert _ids(await listed(a, status="draft")) == [draft]
    assert _ids(await listed(a, company_id=sister.id)) == [second]
    assert _ids(await listed(a, call_id=call.id, protocol_number=2)) == [second]
    assert _ids(await listed(a, submitted_from="2026-03-15T00:00:00Z")) == [second]
    assert _ids(await listed(a, submitted_to="2026-03-15T00:00:00Z")) == [first], "the draft has no submission"
    assert _ids(await listed(a, submitted_from="2026-03-10T09:00:00Z", submitted_to="2026-03-20T09:00:00Z")) == [
        first
    ], "from inclusive, to exclusive"
    # one pagination: a page of 2 and its cursor give the third
    page = (await listed(a, limit=2)).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await listed(a, limit=2, cursor=page["next_cursor"])).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {x["id"] for x in page["items"] + rest["items"]} == {first, second, draft}

    assert _ids(await listed(b)) == [] and _ids(await listed(b, call_id=call.id)) == []
    assert (await client.get(f"/v1/applications/{first}", headers=b)).status_code == 404
    bad = await listed(a, protocol_number=0)
    assert bad.status_code == 422
