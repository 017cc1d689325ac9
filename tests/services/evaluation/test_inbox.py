"""Evaluation's inbox through HTTP: intake's events as the delivery worker posts them, with the real
intake service answering on a loopback port (committed data), and intake going down and coming back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import DEFAULT_SCOPES, mint_token
from shared.clients.intake import IntakeClient
from shared.db import make_sessionmaker
from shared.events.catalogue import envelope, noun, subject_href
from shared.events.signing import new_webhook_secret, sign_headers
from tests.conftest import KEYRING, make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


def service_headers() -> dict[str, str]:
    token = mint_token(
        KEYRING,
        sub="desk-worker",
        kind="service",
        scopes=list(DEFAULT_SCOPES["service"]),
        issuer="regional-desk",
        ttl=600,
    )
    return {"Authorization": f"Bearer {token}"}


async def submitted_application(engine: AsyncEngine, intake_url: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A partner submits an application through intake's API, on committed data. Returns the receipt."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        company = await make_company(s)
        await delegate(s, partner, company)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.post("/v1/applications", json=draft_body(call.id, company.id), headers=headers)
        assert r.status_code == 201, r.text
        await declare_stamp_duty(http, r.json()["id"], headers)
        r = await http.post(f"/v1/applications/{r.json()['id']}/submit", headers=headers)
        assert r.status_code == 201, r.text
    return r.json()["receipt"], headers


async def outbox_event(engine: AsyncEngine, application_id: str, event_type: str) -> str:
    """The event intake wrote in its outbox, as the delivery worker would send it (the envelope)."""
    async with engine.connect() as c:
        row = (
            await c.execute(
                text(
                    "SELECT event_id, event_type, event_version, source, occurred_at, aggregate_type, "
                    "aggregate_id, payload"
                    " FROM desk.outbox WHERE aggregate_id = :a AND event_type = :t"
                ),
                {"a": application_id, "t": event_type},
            )
        ).one()
    return orjson.dumps(envelope(row)).decode()


async def deliver(client: httpx.AsyncClient, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST as the worker does: Standard Webhooks headers (webhook-id = event id) and a service token."""
    event_id = orjson.loads(body)["id"]
    hdrs = sign_headers(msg_id=event_id, at=datetime.now(UTC), body=body, secrets_=[new_webhook_secret()])
    hdrs["content-type"] = "application/json"
    hdrs.update(service_headers() if headers is None else headers)
    return await client.post("/v1/internal/events", content=body, headers=hdrs)


async def count(session: Any, sql: str, **params: Any) -> int:
    return int((await session.execute(text(sql), params)).scalar_one())


def fake_event(event_type: str = "application.submitted", data: dict[str, Any] | None = None) -> str:
    # the subject as a publisher writes it: intake's events here are about the application, by its id
    kind, sid = noun(event_type), str((data or {}).get("application_id") or uuid.uuid4())
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": event_type,
            "version": 1,
            "source": "intake",
            "occurred_at": "2026-11-28T10:00:00Z",
            "subject": {"type": kind, "id": sid, "href": subject_href(kind, sid)},
            "data": data or {},
        }
    ).decode()


# ---------------------------------------------------------------- submitted


async def test_a_submitted_application_is_fetched_from_intake_and_stored(
    evaluation_client, intake, intake_server, engine, officer, session
):
    receipt, _ = await submitted_application(engine, intake_server.url)
    app_id = receipt["application_id"]
    body = await outbox_event(engine, app_id, "application.submitted")

    r = await deliver(evaluation_client, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"event_id": orjson.loads(body)["id"], "status": "processed", "application_id": app_id}

    r = await evaluation_client.get(f"/v1/applications/{app_id}", headers=officer)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["protocol_number"] == receipt["protocol_number"]
    assert got["call_id"] == receipt["call_id"] and got["status"] == "received"
    assert got["submitted_at"].replace("Z", "+00:00") == receipt["submitted_at"].replace("Z", "+00:00")
    assert got["snapshot"]["id"] == app_id and got["snapshot"]["status"] == "submitted"
    assert got["snapshot"]["expense_lines"], "the snapshot is the whole application as intake returned it"
    assert r.headers["etag"] == '"1"'
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE service = 'evaluation' AND "
            "action = 'application.received' AND resource_id = :a",
            a=app_id,
        )
        == 1
    )

    listed = await evaluation_client.get("/v1/applications", params={"call_id": receipt["call_id"]}, headers=officer)
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [app_id]
    assert "snapshot" not in listed.json()["items"][0]


async def test_a_redelivery_is_a_duplicate_and_changes_nothing(
    evaluation_client, intake, intake_server, engine, session
):
    receipt, _ = await submitted_application(engine, intake_server.url)
    app_id = receipt["application_id"]
    body = await outbox_event(engine, app_id, "application.submitted")
    assert (await deliver(evaluation_client, body)).status_code == 200
    before = (
        await session.execute(
            text("SELECT version, updated_at, snapshot FROM evaluation.applications WHERE application_id = :a"),
            {"a": app_id},
        )
    ).one()

    r = await deliver(evaluation_client, body)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"

    event_id = orjson.loads(body)["id"]
    assert await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=event_id) == 1
    assert await count(session, "SELECT count(*) FROM evaluation.applications WHERE application_id = :a", a=app_id) == 1
    after = (
        await session.execute(
            text("SELECT version, updated_at, snapshot FROM evaluation.applications WHERE application_id = :a"),
            {"a": app_id},
        )
    ).one()
    assert after == before
    # one record of the reception, one of the admissibility run: none added by the redelivery
    assert (
        await count(
            session, "SELECT count(*) FROM desk.audit_log WHERE service = 'evaluation' AND resource_id = :a", a=app_id
        )
        == 2
    )


# ---------------------------------------------------------------- who may post


async def test_a_partner_token_is_refused_with_403(evaluation_client, token_factory, session):
    partner = await make_partner(session)
    headers = await token_factory("partner", partner_id=partner.id)
    body = fake_event()
    r = await deliver(evaluation_client, body, headers)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert (
        await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=orjson.loads(body)["id"])
        == 0
    )


async def test_an_officer_token_is_refused_with_403(evaluation_client, officer):
    assert (await deliver(evaluation_client, fake_event(), officer)).status_code == 403


async def test_no_token_is_401(evaluation_client):
    r = await evaluation_client.post(
        "/v1/internal/events", content=fake_event(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 401
    assert r.json()["type"] == "/problems/unauthenticated"


async def test_partners_cannot_read_the_received_applications(evaluation_client, token_factory, session, auditor):
    partner = await make_partner(session)
    headers = await token_factory("partner", partner_id=partner.id)
    assert (await evaluation_client.get("/v1/applications", headers=headers)).status_code == 403
    assert (await evaluation_client.get("/v1/applications", headers=auditor)).status_code == 200
    assert (await evaluation_client.get(f"/v1/applications/{uuid.uuid4()}", headers=auditor)).status_code == 404


# ---------------------------------------------------------------- intake down


async def test_intake_down_answers_503_and_keeps_nothing_then_succeeds_when_back(
    evaluation_client, intake, intake_server, engine, officer, session
):
    receipt, _ = await submitted_application(engine, intake_server.url)
    app_id = receipt["application_id"]
    body = await outbox_event(engine, app_id, "application.submitted")
    event_id = orjson.loads(body)["id"]

    await intake_server.stop()
    r = await deliver(evaluation_client, body)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/peer-unavailable" and "retry-after" in r.headers
    assert await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=event_id) == 0
    assert (await evaluation_client.get(f"/v1/applications/{app_id}", headers=officer)).status_code == 404

    await intake_server.start()  # same port: intake is back
    r = await deliver(evaluation_client, body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed"
    got = (await evaluation_client.get(f"/v1/applications/{app_id}", headers=officer)).json()
    assert got["protocol_number"] == receipt["protocol_number"]
    assert await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=event_id) == 1


# ---------------------------------------------------------------- withdrawn


async def _withdraw(intake_url: str, app_id: str, headers: dict[str, str], reason: str) -> None:
    async with httpx.AsyncClient(base_url=intake_url) as http:
        r = await http.post(f"/v1/applications/{app_id}/withdraw", json={"reason": reason}, headers=headers)
        assert r.status_code == 200, r.text


async def test_a_withdrawn_event_marks_the_application_withdrawn(
    evaluation_client, intake, intake_server, engine, officer, session
):
    receipt, partner = await submitted_application(engine, intake_server.url)
    app_id = receipt["application_id"]
    assert (
        await deliver(evaluation_client, await outbox_event(engine, app_id, "application.submitted"))
    ).status_code == 200
    await _withdraw(intake_server.url, app_id, partner, "Progetto rinviato al prossimo anno")

    r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.withdrawn"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed"

    r = await evaluation_client.get(f"/v1/applications/{app_id}", headers=officer)
    got = r.json()
    assert got["status"] == "withdrawn" and got["withdrawal_reason"] == "Progetto rinviato al prossimo anno"
    assert r.headers["etag"] == '"2"'
    audit = (
        await session.execute(
            text(
                "SELECT before, after FROM desk.audit_log WHERE service = 'evaluation' AND resource_id = :a "
                "AND action = 'application.withdrawn'"
            ),
            {"a": app_id},
        )
    ).one()
    assert audit.before["status"] == "received" and audit.after["status"] == "withdrawn"
    listed = await evaluation_client.get(
        "/v1/applications", params={"call_id": receipt["call_id"], "status": "received"}, headers=officer
    )
    assert listed.json()["items"] == []


async def test_a_withdrawal_arriving_first_stores_the_application_withdrawn(
    evaluation_client, intake, intake_server, engine, officer
):
    receipt, partner = await submitted_application(engine, intake_server.url)
    app_id = receipt["application_id"]
    await _withdraw(intake_server.url, app_id, partner, "Errore nella domanda")

    r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.withdrawn"))
    assert r.status_code == 200, r.text
    got = (await evaluation_client.get(f"/v1/applications/{app_id}", headers=officer)).json()
    assert got["status"] == "withdrawn" and got["withdrawal_reason"] == "Errore nella domanda"
    assert got["protocol_number"] == receipt["protocol_number"]

    # the late submission does not bring it back
    r = await deliver(evaluation_client, await outbox_event(engine, app_id, "application.submitted"))
    assert r.status_code == 200
    got = (await evaluation_client.get(f"/v1/applications/{app_id}", headers=officer)).json()
    assert got["status"] == "withdrawn"


# ---------------------------------------------------------------- other events


async def test_an_unknown_event_type_is_recorded_and_ignored_with_202(evaluation_client, intake, session):
    body = fake_event("delegation.activated", {"delegation_id": str(uuid.uuid4())})
    r = await deliver(evaluation_client, body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "ignored"
    row = (
        await session.execute(
            text("SELECT event_type, source FROM evaluation.inbox WHERE event_id = :e"), {"e": orjson.loads(body)["id"]}
        )
    ).one()
    assert tuple(row) == ("delegation.activated", "intake")
    assert (await deliver(evaluation_client, body)).json()["status"] == "duplicate"


async def test_an_event_with_invalid_data_is_422_and_not_kept(evaluation_client, intake, session):
    body = fake_event("application.submitted", {"application_id": "not-a-uuid"})
    r = await deliver(evaluation_client, body)
    assert r.status_code == 422
    assert any(e["path"].startswith("/data/") for e in r.json()["errors"])
    assert (
        await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=orjson.loads(body)["id"])
        == 0
    )


async def test_an_application_unknown_to_intake_is_409_and_not_kept(evaluation_client, intake, session):
    data = {
        "application_id": str(uuid.uuid4()),
        "call_id": str(uuid.uuid4()),
        "company_id": str(uuid.uuid4()),
        "protocol_number": 1,
        "submitted_at": "2026-11-28T10:00:00Z",
        "content_sha256": "0" * 64,
        "estimate": None,
    }
    body = fake_event("application.submitted", data)
    r = await deliver(evaluation_client, body)
    assert r.status_code == 409, r.text
    assert (
        await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=orjson.loads(body)["id"])
        == 0
    )


async def test_the_lifespan_creates_the_intake_client_from_settings_and_closes_it(engine):
    from services.evaluation.app import build_app
    from shared.settings import EvaluationSettings

    app = build_app(
        EvaluationSettings(
            environment="test",
            access_log=False,
            log_level="WARNING",
            database_url="postgresql://unused/x",
            intake_url="http://127.0.0.1:1/",
        )
    )
    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    async with app.router.lifespan_context(app):
        client = app.state.intake_client
        assert isinstance(client, IntakeClient)
        assert client.base_url == "http://127.0.0.1:1" and client.keyring is KEYRING
    assert app.state.intake_client is None and client._http.is_closed
