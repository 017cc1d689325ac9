"""Evaluation's `POST /v1/internal/events/batch` through HTTP, with the real intake answering on a loopback port:
a batch is applied once per event, a replay changes nothing, an event that cannot be applied does not hold back
the others, and the batch's applications (with their companies) are read from intake in one bulk request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest_asyncio
from sqlalchemy import text

from shared.clients.intake import IntakeClient
from tests.conftest import KEYRING, QUICK_RETRIES
from tests.services.evaluation.test_inbox import (
    count,
    deliver,
    fake_event,
    outbox_event,
    service_headers,
    submitted_application,
)


class Counting(httpx.AsyncHTTPTransport):
    """The real transport, noting each request's method and path (to see how evaluation reads intake)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return await super().handle_async_request(request)


@pytest_asyncio.fixture(loop_scope="session")
async def intake(evaluation_app: Any, intake_server: Any) -> AsyncIterator[tuple[IntakeClient, Counting]]:
    transport = Counting()
    client = IntakeClient(
        intake_server.url,
        service="evaluation",
        keyring=KEYRING,
        issuer="regional-desk",
        transport=transport,
        **QUICK_RETRIES,
    )
    evaluation_app.state.intake_client = client
    yield client, transport
    evaluation_app.state.intake_client = None
    await client.aclose()


async def post_batch(client: httpx.AsyncClient, bodies: list[str]) -> httpx.Response:
    payload = b'{"events":[' + b",".join(b.encode() for b in bodies) + b"]}"
    headers = {"content-type": "application/json", **service_headers()}
    return await client.post("/v1/internal/events/batch", content=payload, headers=headers)


async def test_a_batch_is_applied_once_per_event_and_a_bad_event_blocks_nothing(
    evaluation_client, intake, intake_server, engine, session
):
    _client, transport = intake
    receipts = [(await submitted_application(engine, intake_server.url))[0] for _ in range(3)]
    app_ids = [r["application_id"] for r in receipts]
    good = [await outbox_event(engine, a, "application.submitted") for a in app_ids]
    # an application intake has never heard of: refused (409) on its own, as a single delivery would be
    ghost = str(uuid.uuid4())
    bad = fake_event(
        data={
            "application_id": ghost,
            "call_id": receipts[0]["call_id"],
            "company_id": str(uuid.uuid4()),
            "protocol_number": 999999,
            "submitted_at": "2026-11-28T10:00:00Z",
            "content_sha256": "0" * 64,
            "estimate": None,
        }
    )
    malformed = fake_event(data={"application_id": str(uuid.uuid4())})  # refused by the catalogue's schema (422)
    ignored = fake_event("training.enrolled")
    bodies = [good[0], bad, good[1], ignored, malformed, good[2]]
    ids = [orjson.loads(b)["id"] for b in bodies]

    transport.seen.clear()
    r = await post_batch(evaluation_client, bodies)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["event_id"] for x in results] == ids, "one result per event, in the order sent"
    assert [x["status"] for x in results] == ["processed", "failed", "processed", "ignored", "failed", "processed"]
    assert [results[i]["application_id"] for i in (0, 2, 5)] == app_ids
    assert results[1]["problem"]["status"] == 409 and results[1]["problem"]["type"] == "/problems/conflict"
    assert results[4]["problem"]["status"] == 422

    # read from intake in one bulk request, never one GET per application
    assert transport.seen.count("POST /v1/internal/applications/snapshots") == 1
    assert not [s for s in transport.seen if s.startswith("GET /v1/applications/")]
    # the applicants' companies came with them: admissibility read none of them one by one
    assert not [s for s in transport.seen if s.startswith("GET /v1/companies/")]

    async def state() -> tuple[int, int, int, int]:
        return (
            await count(
                session, "SELECT count(*) FROM evaluation.applications WHERE application_id = ANY(:a)", a=app_ids
            ),
            await count(
                session, "SELECT count(*) FROM evaluation.evaluations WHERE application_id = ANY(:a)", a=app_ids
            ),
            await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = ANY(:e)", e=ids),
            await count(
                session,
                "SELECT count(*) FROM desk.audit_log WHERE service = 'evaluation' AND resource_id = ANY(:a)",
                a=app_ids,
            ),
        )

    # 3 applications stored and evaluated once each; the inbox keeps the 3 and the ignored one, not the failed one;
    # 2 audit records per application (received, admissibility)
    assert await state() == (3, 3, 4, 6)
    assert (
        await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = ANY(:e)", e=[ids[1], ids[4]]) == 0
    )

    # the same batch again: every applied event is a duplicate, nothing changes; the bad one fails again
    before = (
        await session.execute(
            text(
                "SELECT application_id, version, updated_at FROM evaluation.applications WHERE application_id = ANY(:a)"
                " ORDER BY application_id"
            ),
            {"a": app_ids},
        )
    ).all()
    r = await post_batch(evaluation_client, bodies)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == [
        "duplicate",
        "failed",
        "duplicate",
        "duplicate",
        "failed",
        "duplicate",
    ]
    assert await state() == (3, 3, 4, 6)
    after = (
        await session.execute(
            text(
                "SELECT application_id, version, updated_at FROM evaluation.applications WHERE application_id = ANY(:a)"
                " ORDER BY application_id"
            ),
            {"a": app_ids},
        )
    ).all()
    assert after == before


async def test_an_event_twice_in_one_batch_is_applied_once(evaluation_client, intake, intake_server, engine, session):
    receipt, _ = await submitted_application(engine, intake_server.url)
    body = await outbox_event(engine, receipt["application_id"], "application.submitted")
    r = await post_batch(evaluation_client, [body, body])
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["processed", "duplicate"]
    assert (
        await count(
            session,
            "SELECT count(*) FROM evaluation.evaluations WHERE application_id = :a",
            a=receipt["application_id"],
        )
        == 1
    )


async def test_the_batch_route_is_for_services_only(evaluation_client, token_factory, officer, session):
    body = fake_event()
    payload = b'{"events":[' + body.encode() + b"]}"
    for headers in (officer, await token_factory("auditor")):
        r = await evaluation_client.post(
            "/v1/internal/events/batch", content=payload, headers={"content-type": "application/json", **headers}
        )
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
    r = await evaluation_client.post(
        "/v1/internal/events/batch", content=payload, headers={"content-type": "application/json"}
    )
    assert r.status_code == 401
    assert (
        await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = :e", e=orjson.loads(body)["id"])
        == 0
    )


async def test_more_than_200_events_is_a_422_and_changes_nothing(evaluation_client, intake, session):
    bodies = [fake_event("training.enrolled") for _ in range(201)]
    r = await post_batch(evaluation_client, bodies)
    assert r.status_code == 422
    ids = [orjson.loads(b)["id"] for b in bodies]
    assert await count(session, "SELECT count(*) FROM evaluation.inbox WHERE event_id = ANY(:e)", e=ids) == 0


async def test_the_batchs_inbox_records_applications_and_evaluations_are_each_one_insert(
    evaluation_client, intake, intake_server, engine, session
):
    from sqlalchemy import event

    receipts = [(await submitted_application(engine, intake_server.url))[0] for _ in range(4)]
    app_ids = [r["application_id"] for r in receipts]
    bodies = [await outbox_event(engine, a, "application.submitted") for a in app_ids]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        if words[:2] == ["INSERT", "INTO"]:
            statements.append(words[2].lower())
        elif words[0] == "SAVEPOINT":
            statements.append("savepoint")

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        r = await post_batch(evaluation_client, bodies)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == ["processed"] * 4
    assert statements.count("evaluation.inbox") == 1
    assert statements.count("evaluation.applications") == 1
    # admissibility for the four at once: one INSERT of evaluations, one of their events; the audit records of
    # the receptions and of the runs one executemany each
    assert statements.count("evaluation.evaluations") == 1
    assert statements.count("desk.outbox") == 1
    assert statements.count("desk.audit_log") == 2
    # no event needed a savepoint of its own: none after the batch step's began
    step = statements.index("evaluation.applications")
    assert statements[step - 1] == "savepoint" and "savepoint" not in statements[step:]
    assert (
        await count(session, "SELECT count(*) FROM evaluation.evaluations WHERE application_id = ANY(:a)", a=app_ids)
        == 4
    )
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.outbox WHERE event_type = 'evaluation.admissibility_completed'"
            " AND aggregate_id = ANY(:a)",
            a=app_ids,
        )
        == 4
    )


async def test_an_application_evaluated_in_a_batch_is_stored_as_its_single_delivery_would_store_it(
    evaluation_client, intake, intake_server, engine, session
):
    """The batch's set-based admissibility and the handler's run, on two applications built alike, store the same
    evaluation, the same audit record of the run and the same `evaluation.admissibility_completed` event."""
    alone, batched = [(await submitted_application(engine, intake_server.url))[0] for _ in range(2)]
    r = await deliver(evaluation_client, await outbox_event(engine, alone["application_id"], "application.submitted"))
    assert r.status_code == 200, r.text
    r = await post_batch(
        evaluation_client, [await outbox_event(engine, batched["application_id"], "application.submitted")]
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "processed", r.text

    async def stored(receipt: dict[str, Any]) -> dict[str, Any]:
        a = receipt["application_id"]
        evaluation = (
            await session.execute(
                text(
                    "SELECT stage, admissibility_verdict, admissibility_checks, cuts, eligible_total, network, version"
                    " FROM evaluation.evaluations WHERE application_id = :a"
                ),
                {"a": a},
            )
        ).one()
        audit = (
            await session.execute(
                text(
                    "SELECT after FROM desk.audit_log WHERE service = 'evaluation'"
                    " AND action = 'evaluation.admissibility_run' AND resource_id = :a"
                ),
                {"a": a},
            )
        ).scalar_one()
        event = (
            await session.execute(
                text(
                    "SELECT payload, partner_id, company_id, ordering_key FROM desk.outbox"
                    " WHERE event_type = 'evaluation.admissibility_completed' AND aggregate_id = :a"
                ),
                {"a": a},
            )
        ).one()
        payload = dict(event.payload)
        # what differs by construction: the application, its company and its partner
        assert payload.pop("application_id") == a and str(event.ordering_key) == a
        company, partner = (
            await session.execute(
                text("SELECT company_id, partner_id FROM evaluation.applications WHERE application_id = :a"), {"a": a}
            )
        ).one()
        assert payload.pop("company_id") == str(company) == str(event.company_id)
        assert event.partner_id == partner is not None  # the partner acting for the company is notified
        assert payload.pop("call_id") == receipt["call_id"]
        audit = dict(audit)
        assert audit.pop("rules").startswith("VNM-")  # each was submitted to a call of its own
        return {"evaluation": tuple(evaluation), "audit": audit, "event": payload}

    expected = await stored(alone)
    assert expected["evaluation"][0] in ("admissible", "needs_review", "not_admissible")
    assert await stored(batched) == expected


async def test_a_received_application_left_without_its_evaluation_is_evaluated_by_the_redelivery(
    evaluation_client, intake, intake_server, engine, session
):
    # as if an earlier batch stored the application in its set-based step and the event then failed (its inbox
    # record removed, its evaluation never written): the redelivery goes on from the stored row
    receipt, _ = await submitted_application(engine, intake_server.url)
    app_id = receipt["application_id"]
    body = await outbox_event(engine, app_id, "application.submitted")
    assert (await post_batch(evaluation_client, [body])).json()["results"][0]["status"] == "processed"
    await session.execute(text("DELETE FROM evaluation.evaluations WHERE application_id = :a"), {"a": app_id})
    await session.execute(text("DELETE FROM evaluation.inbox WHERE event_id = :e"), {"e": orjson.loads(body)["id"]})
    await session.flush()

    r = await post_batch(evaluation_client, [body])
    assert r.json()["results"][0]["status"] == "processed"
    assert await count(session, "SELECT count(*) FROM evaluation.evaluations WHERE application_id = :a", a=app_id) == 1
    assert await count(session, "SELECT count(*) FROM evaluation.applications WHERE application_id = :a", a=app_id) == 1
    # received once (no second reception record), evaluated twice in all (the lost run and this one)
    assert (
        await count(
            session,
            "SELECT count(*) FROM desk.audit_log WHERE service = 'evaluation' AND resource_id = :a"
            " AND action = 'application.received'",
            a=app_id,
        )
        == 1
    )


async def test_a_network_applications_members_come_with_the_bulk_read(
    evaluation_client, intake, intake_server, engine, session
):
    from tests.services.evaluation.test_networks import network_submitted

    _client, transport = intake
    sub = await network_submitted(evaluation_client, engine, intake_server.url, session)
    body = await outbox_event(engine, sub["application_id"], "application.submitted")
    transport.seen.clear()
    r = await post_batch(evaluation_client, [body])
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "processed", r.text
    assert not [s for s in transport.seen if s.startswith("GET /v1/companies/")], "lead and members read in bulk"
    network = (
        await session.execute(
            text("SELECT network FROM evaluation.evaluations WHERE application_id = :a"), {"a": sub["application_id"]}
        )
    ).scalar_one()
    # each member judged on its own company, as read in the bulk request
    assert [(m["company_id"], m["name"]) for m in network["members"]] == [(str(c.id), c.name) for c in sub["members"]]
