"""Amending a call through HTTP: before the window opens anything may change; once it has opened only a later
close or a higher budget, each with its decree; any other change is a 409 `call-frozen` naming the fields, and
nothing is stored. Every amendment emits `call.amended` in the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from tests.factories import open_call

DECREE = {"number": "Decreto n. 9012", "date": "2025-07-15"}


async def current(client: Any, call_id: Any) -> dict[str, Any]:
    r = await client.get(f"/v1/calls/{call_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def amend(client: Any, officer: dict[str, str], call_id: Any, change: Any, **body: Any) -> Any:
    """POST a new version: the rules in force changed by `change(rules)`, with the call's ETag."""
    call = await current(client, call_id)
    rules = call["rules"]
    change(rules)
    return await client.post(
        f"/v1/calls/{call_id}/versions",
        json={"rules": rules, "reason": "Modifica", **body},
        headers={**officer, "If-Match": call["etag"]},
    )


def set_rates(rules: dict[str, Any]) -> None:
    rules["aid"]["grant"]["percent"] = "0.25"
    rules["aid"]["loan"]["percent"] = "0.60"
    rules["eligibility"]["sizes"] = ["micro", "small"]
    rules["budget_total"] = "25000000.00"


async def events(session: Any, call_id: Any) -> list[Any]:
    return list(
        (
            await session.execute(
                text(
                    "SELECT payload, event_version, partner_id FROM desk.outbox WHERE event_type = 'call.amended' "
                    "AND aggregate_type = 'call' AND aggregate_id = :c ORDER BY id"
                ),
                {"c": str(call_id)},
            )
        ).all()
    )


async def test_before_opening_any_change_is_a_new_version(client, officer, session):
    call = await open_call(session, opens_in=timedelta(days=2))
    r = await amend(client, officer, call.id, set_rates)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["current_version"] == 2 and out["budget_total"] == "25000000.00"
    assert out["rules"]["aid"]["grant"]["percent"] == "0.25" and out["rules"]["eligibility"]["sizes"] == [
        "micro",
        "small",
    ]
    [event] = await events(session, call.id)
    assert event.event_version == 1 and event.partner_id is None
    assert event.payload["opened"] is False and event.payload["decree"] is None
    assert event.payload["version"] == 2 and event.payload["previous_version"] == 1
    assert event.payload["changed_fields"] == [
        "aid.grant.percent",
        "aid.loan.percent",
        "budget_total",
        "eligibility.sizes",
    ]


async def test_after_opening_aid_rates_and_eligibility_are_frozen_409_and_nothing_is_stored(client, officer, session):
    call = await open_call(session)
    r = await amend(client, officer, call.id, set_rates, decree=DECREE)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == "/problems/call-frozen" and problem["title"] == "Bando congelato"
    # the budget raise is allowed (with its decree); the rates and the sizes are not
    assert problem["refused_fields"] == ["aid.grant.percent", "aid.loan.percent", "eligibility.sizes"]
    assert [e["path"] for e in problem["errors"]] == [
        "/rules/aid/grant/percent",
        "/rules/aid/loan/percent",
        "/rules/eligibility/sizes",
    ]
    assert "aid.grant.percent" in problem["detail"]
    after = await current(client, call.id)
    assert after["current_version"] == 1 and after["budget_total"] == "18978747.97"
    assert (await client.get(f"/v1/calls/{call.id}/versions/2")).status_code == 404
    assert await events(session, call.id) == []

    en = await amend(client, {**officer, "Accept-Language": "en"}, call.id, set_rates, decree=DECREE)
    assert en.status_code == 409 and en.json()["title"] == "Call rules frozen"
    assert en.json()["detail"].startswith("The window has opened")


async def test_after_opening_a_later_close_with_its_decree_is_201(client, officer, session):
    call = await open_call(session)
    before = await current(client, call.id)

    def extend(rules: dict[str, Any]) -> None:
        rules["window"]["closes_at"] = "2025-10-09T12:00:00+02:00"  # 30 days later

    r = await amend(client, officer, call.id, extend, decree=DECREE)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["current_version"] == 2 and out["window"]["closes_at"] == "2025-10-09T10:00:00Z"
    # the server's (demo) window moves by the same 30 days
    old_close = before["effective_window"]["closes_at"]
    assert out["effective_window"]["closes_at"] != old_close
    version = (await client.get(f"/v1/calls/{call.id}/versions/2")).json()
    assert version["decree"] == DECREE
    [event] = await events(session, call.id)
    assert event.payload["changed_fields"] == ["window.closes_at"] and event.payload["decree"] == DECREE
    assert event.payload["opened"] is True

    def earlier(rules: dict[str, Any]) -> None:
        rules["window"]["closes_at"] = "2025-09-01T12:00:00+02:00"

    r = await amend(client, officer, call.id, earlier, decree=DECREE)
    assert r.status_code == 409 and r.json()["refused_fields"] == ["window.closes_at"]


async def test_after_opening_the_budget_may_rise_with_a_decree_only_and_never_fall(client, officer, session):
    call = await open_call(session)

    def raise_budget(rules: dict[str, Any]) -> None:
        rules["budget_total"] = "20000000.00"

    missing = await amend(client, officer, call.id, raise_budget)
    assert missing.status_code == 422, missing.text
    assert missing.json()["type"] == "/problems/validation-error"
    assert [e["path"] for e in missing.json()["errors"]] == ["/decree"]

    r = await amend(client, officer, call.id, raise_budget, decree=DECREE)
    assert r.status_code == 201, r.text
    assert r.json()["budget_total"] == "20000000.00" and r.json()["current_version"] == 2
    [event] = await events(session, call.id)
    assert event.payload["budget_total"] == "20000000.00" and event.payload["previous_budget_total"] == "18978747.97"

    def lower(rules: dict[str, Any]) -> None:
        rules["budget_total"] = "19000000.00"

    r = await amend(client, officer, call.id, lower, decree=DECREE)
    assert r.status_code == 409 and r.json()["refused_fields"] == ["budget_total"]
    assert (await current(client, call.id))["budget_total"] == "20000000.00"
    audit = (
        (
            await session.execute(
                text("SELECT after FROM desk.audit_log WHERE action = 'call.amended' AND resource_id = :c"),
                {"c": str(call.id)},
            )
        )
        .scalars()
        .all()
    )
    assert len(audit) == 1 and audit[0]["decree"] == DECREE
