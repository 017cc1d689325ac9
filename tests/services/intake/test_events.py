"""Events through HTTP: polling per principal with a cursor, the public catalogue, the OpenAPI webhooks,
and a real delivery: submit an application, run the worker, and a local receiver gets it signed."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select, text
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.webhooks.service import event_cursor
from shared.db import make_sessionmaker
from shared.events.catalogue import CATALOGUE
from shared.events.worker import DeliveryWorker, publish_pending
from shared.models import OutboxEvent
from shared.settings import IntakeSettings
from tests.conftest import KEYRING, _settings, make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


async def _event(
    session,
    *,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    event_type: str = "application.submitted",
) -> OutboxEvent:
    e = OutboxEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        event_version=1,
        source="intake",
        aggregate_type="application",
        aggregate_id=str(uuid.uuid4()),
        partner_id=partner_id,
        company_id=company_id,
        payload={"protocol_number": 7},
        occurred_at=datetime.now(UTC),
    )
    session.add(e)
    await session.flush()
    return e


# ---------------------------------------------------------------- polling


async def test_polling_shows_each_principal_its_own_events_with_a_working_cursor(client, session, officer, auditor):
    partner, other = await make_partner(session), await make_partner(session)
    company = await make_company(session)
    p_headers = await make_token(session, "partner", partner_id=partner.id)
    c_headers = await make_token(session, "company", company_id=company.id)
    e1 = await _event(session, partner_id=partner.id, company_id=company.id)
    e2 = await _event(session, company_id=company.id)  # the company acting for itself
    e3 = await _event(session, partner_id=other.id)
    e4 = await _event(session, partner_id=partner.id, event_type="delegation.activated")
    r = await client.get("/v1/events", headers=p_headers)
    assert r.json() == {"items": [], "next_cursor": None}, "served only once the worker has published them"
    while await publish_pending(session):
        pass
    for e in (e1, e2, e3, e4):
        await session.refresh(e)
    assert e1.published_seq is not None and e1.published_seq < e2.published_seq < e3.published_seq < e4.published_seq

    r = await client.get("/v1/events", params={"limit": 1}, headers=p_headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["id"] for i in page["items"]] == [str(e1.event_id)]
    item = page["items"][0]
    assert item["type"] == "application.submitted" and item["version"] == 1 and item["source"] == "intake"
    assert item["subject"] == {
        "type": "application",
        "id": e1.aggregate_id,
        "href": f"/v1/applications/{e1.aggregate_id}",
    }
    assert item["data"] == {"protocol_number": 7} and item["occurred_at"].endswith("Z")
    page = (await client.get("/v1/events", params={"cursor": page["next_cursor"]}, headers=p_headers)).json()
    assert [i["id"] for i in page["items"]] == [str(e4.event_id)]
    cursor = page["next_cursor"]
    page = (await client.get("/v1/events", params={"cursor": cursor}, headers=p_headers)).json()
    assert page == {"items": [], "next_cursor": cursor}, "an empty poll keeps the cursor"

    page = (await client.get("/v1/events", headers=c_headers)).json()
    assert [i["id"] for i in page["items"]] == [str(e1.event_id), str(e2.event_id)]

    stranger = await make_token(session, "partner", partner_id=(await make_partner(session)).id)
    assert (await client.get("/v1/events", headers=stranger)).json() == {"items": [], "next_cursor": None}

    before_all = event_cursor(e1.published_seq - 1)
    for reader in (officer, auditor):
        page = (await client.get("/v1/events", params={"cursor": before_all, "limit": 100}, headers=reader)).json()
        ids = [i["id"] for i in page["items"]]
        assert ids[:4] == [str(e.event_id) for e in (e1, e2, e3, e4)]

    r = await client.get("/v1/events", params={"cursor": "not-a-cursor"}, headers=p_headers)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/cursor"
    # `after`, the parameter's former name, still works for one deprecation period
    page = (await client.get("/v1/events", params={"after": before_all, "limit": 1}, headers=officer)).json()
    assert [i["id"] for i in page["items"]] == [str(e1.event_id)]
    r = await client.get("/v1/events", params={"after": "not-a-cursor"}, headers=p_headers)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/after"
    assert (await client.get("/v1/events")).status_code == 401


# ---------------------------------------------------------------- the catalogue


async def test_event_types_are_public_with_the_schema_of_their_data(client):
    r = await client.get("/v1/events/types")
    assert r.status_code == 200, r.text
    types = {t["name"]: t for t in r.json()["items"]}
    assert set(types) == set(CATALOGUE)
    submitted = types["application.submitted"]
    assert submitted["version"] == 1 and submitted["source"] == "intake"
    assert (submitted["subject"], submitted["subject_href"]) == ("application", "/v1/applications/{id}")
    accepted = types["decision.accepted"]
    assert (accepted["source"], accepted["subject"], accepted["subject_href"]) == (
        "evaluation",
        "decision",
        "/v1/decisions/{id}",
    )
    assert "protocol_number" in submitted["data_schema"]["properties"]
    assert "protocol_number" in submitted["data_schema"]["required"]


async def test_openapi_documents_every_event_as_a_webhook(intake_app):
    doc = intake_app.openapi()
    assert set(doc["webhooks"]) == set(CATALOGUE)
    op = doc["webhooks"]["application.submitted"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    envelope = doc["components"]["schemas"][ref]
    assert envelope["properties"]["type"]["const"] == "application.submitted"
    assert envelope["properties"]["version"]["const"] == 1
    data = doc["components"]["schemas"][envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
    assert "protocol_number" in data["properties"]


# ---------------------------------------------------------------- a real delivery


class Receiver:
    """A tiny HTTP endpoint on 127.0.0.1 recording what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str]]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

        async def hook(request: Request) -> Response:
            self.received.append(((await request.body()).decode(), dict(request.headers)))
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))

    async def __aenter__(self) -> Receiver:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        for _ in range(100):
            if self.server.started:
                break
            await asyncio.sleep(0.02)
        assert self.server.started
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        await self.task
        self.sock.close()


async def test_the_worker_delivers_a_submission_signed_with_the_subscription_secret(committing_client, engine):
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        company = await make_company(s)
        await delegate(s, partner, company)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()

    settings: IntakeSettings = _settings(IntakeSettings)
    async with Receiver() as receiver, httpx.AsyncClient(trust_env=False, timeout=5) as http:
        r = await committing_client.post(
            "/v1/webhooks",
            headers=headers,
            json={"url": f"http://127.0.0.1:{receiver.port}/hook", "event_types": ["application.submitted"]},
        )
        assert r.status_code == 201, r.text
        sub = r.json()
        r = await committing_client.post("/v1/applications", json=draft_body(call.id, company.id), headers=headers)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        await declare_stamp_duty(committing_client, app_id, headers)
        r = await committing_client.post(f"/v1/applications/{app_id}/submit", headers=headers)
        assert r.status_code == 201, r.text
        protocol = r.json()["receipt"]["protocol_number"]

        worker = DeliveryWorker(engine, KEYRING, settings, http=http)
        status_sql = text("SELECT d.id, d.status, d.attempts FROM desk.deliveries d WHERE d.subscription_id = :s")
        row = None
        for _ in range(100):
            await worker.run_once()
            async with engine.connect() as conn:
                row = (await conn.execute(status_sql, {"s": uuid.UUID(sub["id"])})).first()
            if row is not None and row.status == "delivered":
                break
            await asyncio.sleep(0.05)
        assert row is not None and row.status == "delivered" and row.attempts == 1

    assert len(receiver.received) == 1
    body, got = receiver.received[0]
    payload = Webhook(sub["secret"]).verify(body, got)  # raises unless signed with this subscription's secret
    assert payload["type"] == "application.submitted" and payload["subject"]["id"] == app_id
    assert payload["data"]["protocol_number"] == protocol and got["webhook-id"] == payload["id"]

    async with engine.connect() as conn:
        attempts = (
            await conn.execute(
                text("SELECT attempt, status_code FROM desk.delivery_attempts WHERE delivery_id = :d"), {"d": row.id}
            )
        ).all()
        event = (
            await conn.execute(select(OutboxEvent.event_type).where(OutboxEvent.event_id == uuid.UUID(payload["id"])))
        ).scalar_one()
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 204)] and event == "application.submitted"

    log = (await committing_client.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=headers)).json()["items"]
    assert [(d["status"], d["event_id"], len(d["attempt_log"])) for d in log] == [("delivered", payload["id"], 1)]
    r = await committing_client.delete(f"/v1/webhooks/{sub['id']}", headers={**headers, "If-Match": '"1"'})
    assert r.status_code == 204
