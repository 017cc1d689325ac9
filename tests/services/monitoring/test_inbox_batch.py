"""Monitoring's `POST /v1/internal/events/batch` through HTTP, the real intake on loopback: the application facts
of a batch of submissions are built from one bulk read of intake, once each, and a replay changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest_asyncio
from sqlalchemy import event, text

from shared.clients.intake import IntakeClient
from tests.conftest import KEYRING, QUICK_RETRIES
from tests.services.evaluation.builders import submit_through_intake
from tests.services.evaluation.test_inbox import count, outbox_event
from tests.services.evaluation.test_inbox_batch import Counting, post_batch


@pytest_asyncio.fixture(loop_scope="session")
async def intake(monitoring_app: Any, intake_server: Any) -> AsyncIterator[tuple[IntakeClient, Counting]]:
    transport = Counting()
    client = IntakeClient(
        intake_server.url,
        service="monitoring",
        keyring=KEYRING,
        issuer="regional-desk",
        transport=transport,
        **QUICK_RETRIES,
    )
    monitoring_app.state.intake_client = client
    yield client, transport
    monitoring_app.state.intake_client = None
    await client.aclose()


async def test_a_batch_of_submissions_builds_each_fact_once_from_one_bulk_read(
    monitoring_client, intake, intake_server, engine, session
):
    _client, transport = intake
    subs = [await submit_through_intake(engine, intake_server.url) for _ in range(3)]
    app_ids = [s["application_id"] for s in subs]
    bodies = [await outbox_event(engine, a, "application.submitted") for a in app_ids]

    transport.seen.clear()
    inserts: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MONITORING.APPLICATION_FACTS"):
            inserts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        r = await post_batch(monitoring_client, bodies)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert r.status_code == 200, r.text
    assert len(inserts) == 1, "the batch's facts in one statement"
    assert [x["status"] for x in r.json()["results"]] == ["processed"] * 3
    assert transport.seen == ["POST /v1/internal/applications/snapshots"], "one request, no GET per application"
    # the aid requested is the event's estimate, grant + loan
    requested = {
        e["data"]["application_id"]: Decimal(e["data"]["estimate"]["grant"]) + Decimal(e["data"]["estimate"]["loan"])
        for e in (orjson.loads(b) for b in bodies)
    }
    stored = dict(
        (
            await session.execute(
                text(
                    "SELECT application_id::text, requested_aid FROM monitoring.application_facts"
                    " WHERE application_id = ANY(:a)"
                ),
                {"a": app_ids},
            )
        ).all()
    )
    assert stored == requested and all(v > 0 for v in requested.values())
    facts = (
        await session.execute(
            text(
                "SELECT application_id::text, company_id::text, status FROM monitoring.application_facts"
                " WHERE application_id = ANY(:a) ORDER BY application_id"
            ),
            {"a": app_ids},
        )
    ).all()
    assert sorted((f[0], f[1], f[2]) for f in facts) == sorted(
        (s["application_id"], str(s["company_id"]), "submitted") for s in subs
    )

    r = await post_batch(monitoring_client, bodies)
    assert [x["status"] for x in r.json()["results"]] == ["duplicate"] * 3
    assert (
        await count(
            session, "SELECT count(*) FROM monitoring.application_facts WHERE application_id = ANY(:a)", a=app_ids
        )
        == 3
    )
