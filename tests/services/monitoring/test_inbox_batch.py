"""Monitoring's `POST /v1/internal/events/batch` through HTTP, the real intake on loopback: the application facts
of a batch of submissions are built from one bulk read of intake, once each, and a replay changes nothing; a
batch's admissibility verdicts on facts that exist are set by one UPDATE (the statistics' triggers run once),
ending where the events applied one by one would."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest_asyncio
from sqlalchemy import event, text

from services.monitoring.inbox import repository as facts_repository
from services.monitoring.stats import repository as stats_repository
from services.monitoring.stats.service import fold
from shared.clients.intake import IntakeClient
from tests.conftest import KEYRING, QUICK_RETRIES
from tests.services.evaluation.builders import submit_through_intake
from tests.services.evaluation.test_inbox import count, outbox_event
from tests.services.evaluation.test_inbox_batch import Counting, post_batch
from tests.services.monitoring.builders import envelope


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


# ---------------------------------------------------------------- admissibility verdicts


UPDATE_FACTS = re.compile(r"\bUPDATE\s+monitoring\.application_facts\b", re.IGNORECASE)


@contextmanager
def fact_updates(engine: Any) -> Iterator[list[str]]:
    """The UPDATE statements on the facts sent to PostgreSQL meanwhile (each fires the statistics' triggers)."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if UPDATE_FACTS.search(statement):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def trigger_runs(session: Any) -> int:
    """How many times the statistics' trigger function ran in the test's transaction (track_functions on)."""
    return int(
        await session.scalar(
            text(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
                " WHERE schemaname = 'monitoring' AND funcname = 'fact_groups_maintain'"
            )
        )
    )


async def add_fact(session: Any, call_id: Any, *, status: str = "submitted", admitted: bool = False) -> str:
    """A fact as the submission would have stored it (in Milan, market Japan), committed nowhere."""
    application_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO monitoring.application_facts (application_id, call_id, company_id, province, ateco_section,"
            " size_class, markets, submitted_at, requested_aid, status, admitted, funded, committed, paid, revoked)"
            " VALUES (:a, :c, :co, 'MI', 'C', 'small', ARRAY['JP'], :at, 50000, :s, :adm, false, 0, 0, false)"
        ),
        {
            "a": application_id,
            "c": uuid.UUID(str(call_id)),
            "co": uuid.uuid4(),
            "at": datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
            "s": status,
            "adm": admitted,
        },
    )
    return str(application_id)


def verdict(application_id: str, call_id: Any, value: str | None, company_id: Any = None) -> str:
    data: dict[str, Any] = {
        "application_id": application_id,
        "call_id": str(call_id),
        "company_id": str(company_id or uuid.uuid4()),
        "failed_checks": [],
    }
    if value is not None:
        data["verdict"] = value
    return envelope("evaluation.admissibility_completed", data)


async def fact_states(session: Any, ids: list[str]) -> dict[str, tuple[bool, str]]:
    rows = await session.execute(
        text(
            "SELECT application_id::text, admitted, status FROM monitoring.application_facts"
            " WHERE application_id = ANY(CAST(:a AS uuid[]))"
        ),
        {"a": ids},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def groups_of(session: Any, call_ids: list[Any]) -> list[tuple[Any, ...]]:
    rows = await session.execute(
        text("SELECT * FROM monitoring.fact_groups WHERE call_id = ANY(CAST(:c AS uuid[])) ORDER BY 1, 2, 3"),
        {"c": [str(c) for c in call_ids]},
    )
    return [tuple(r) for r in rows]


async def test_a_batch_of_verdicts_on_existing_facts_is_one_update_and_a_replay_changes_nothing(
    monitoring_client, intake, engine, session
):
    call_id = uuid.uuid4()
    ids = [await add_fact(session, call_id) for _ in range(6)]
    # the first three admissible, the others not; one of those was admitted before (a review changed its mind)
    await session.execute(
        text("UPDATE monitoring.application_facts SET admitted = true, status = 'admitted' WHERE application_id = :a"),
        {"a": ids[5]},
    )
    bodies = [verdict(a, call_id, "admissible" if i < 3 else "not_admissible") for i, a in enumerate(ids)]
    await session.execute(text("SET LOCAL track_functions = 'all'"))
    runs_before = await trigger_runs(session)

    with fact_updates(engine) as updates:
        r = await post_batch(monitoring_client, bodies)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["processed"] * 6
    assert [x["application_id"] for x in r.json()["results"]] == ids
    assert len(updates) == 1, "the six verdicts in one statement"
    assert await trigger_runs(session) - runs_before == 1, "the statistics' trigger ran once for the batch"
    assert await fact_states(session, ids) == {
        **{a: (True, "admitted") for a in ids[:3]},
        **{a: (False, "not_admitted") for a in ids[3:]},
    }
    # the maintained groups: six applications, three admitted (as counted from scratch)
    totals, _groups = fold(await stats_repository.aggregate(session, call_id, None), None)
    assert (totals.applications, totals.admitted) == (6, 3)
    assert fold(await stats_repository.aggregate(session, call_id, "province"), "province") == fold(
        await stats_repository.recompute(session, call_id, "province"), "province"
    )

    facts_before = (
        await session.execute(
            text(
                "SELECT application_id, admitted, status, updated_at FROM monitoring.application_facts"
                " WHERE call_id = :c ORDER BY 1"
            ),
            {"c": call_id},
        )
    ).all()
    groups_before = await groups_of(session, [call_id])
    runs_before = await trigger_runs(session)
    with fact_updates(engine) as updates:
        again = await post_batch(monitoring_client, bodies)
    assert [x["status"] for x in again.json()["results"]] == ["duplicate"] * 6
    assert updates == [] and await trigger_runs(session) == runs_before
    assert (
        await session.execute(
            text(
                "SELECT application_id, admitted, status, updated_at FROM monitoring.application_facts"
                " WHERE call_id = :c ORDER BY 1"
            ),
            {"c": call_id},
        )
    ).all() == facts_before
    assert await groups_of(session, [call_id]) == groups_before


async def test_a_mixed_batch_ends_as_one_by_one_and_the_statistics_equal_a_recomputation(
    monitoring_client, intake, intake_server, engine, session, officer
):
    """In one batch: verdicts admissible (A), not admissible (B), needing review (C); one on an application
    monitoring has no fact of (D: built from intake); two verdicts on E (admissible, then not); F admissible then
    withdrawn; G submitted and judged admissible in the same batch; an invalid verdict on I (no verdict)."""
    d = await submit_through_intake(engine, intake_server.url)
    g = await submit_through_intake(engine, intake_server.url)
    call_x, call_y = d["call_id"], g["call_id"]
    a, b, c, e, f, i = [await add_fact(session, call_x) for _ in range(6)]
    withdrawn = envelope(
        "application.withdrawn",
        {
            "application_id": f,
            "call_id": call_x,
            "company_id": str(uuid.uuid4()),
            "protocol_number": 1,
            "reason": "Rinuncia",
            "withdrawn_at": "2026-11-28T11:00:00Z",
        },
        source="intake",
    )
    bodies = [
        await outbox_event(engine, g["application_id"], "application.submitted"),
        verdict(a, call_x, "admissible"),
        verdict(b, call_x, "not_admissible"),
        verdict(c, call_x, "needs_review"),
        verdict(d["application_id"], call_x, "admissible", d["company_id"]),
        verdict(e, call_x, "admissible"),
        verdict(g["application_id"], call_y, "admissible", g["company_id"]),
        verdict(f, call_x, "admissible"),
        verdict(e, call_x, "not_admissible"),
        withdrawn,
        verdict(i, call_x, None),
    ]
    await session.execute(text("SET LOCAL track_functions = 'all'"))
    runs_before = await trigger_runs(session)

    with fact_updates(engine) as updates:
        r = await post_batch(monitoring_client, bodies)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["processed"] * 10 + ["failed"]
    assert results[-1]["problem"]["status"] == 422
    # one set-based UPDATE for A, B and G (G's fact stored by the submissions' step just before); one by one: D's
    # verdict after its fact is built, E's two verdicts, F's verdict and withdrawal
    assert len(updates) == 1 + 1 + 2 + 2
    set_based = [u for u in updates if u.lstrip().upper().startswith("WITH")]
    assert len(set_based) == 1
    # + 2 INSERTs (G's fact by the submissions' step, D's by its verdict's handler)
    assert await trigger_runs(session) - runs_before == 6 + 2

    ids = [a, b, c, d["application_id"], e, f, g["application_id"], i]
    assert await fact_states(session, ids) == {
        a: (True, "admitted"),
        b: (False, "not_admitted"),
        c: (False, "submitted"),
        d["application_id"]: (True, "admitted"),
        e: (False, "not_admitted"),  # the later verdict
        f: (True, "withdrawn"),  # withdrawn after being admitted
        g["application_id"]: (True, "admitted"),  # submitted, then admitted
        i: (False, "submitted"),
    }
    # G's fact is the submission's, with the aid requested of its event
    estimate = orjson.loads(bodies[0])["data"]["estimate"]
    assert await session.scalar(
        text("SELECT requested_aid FROM monitoring.application_facts WHERE application_id = :a"),
        {"a": g["application_id"]},
    ) == Decimal(estimate["grant"]) + Decimal(estimate["loan"])

    # the maintained statistics equal a from-scratch recomputation, for every grouping of both calls
    for call_id in (uuid.UUID(call_x), uuid.UUID(call_y)):
        for group_by in stats_repository.GROUP_BYS:
            maintained = fold(await stats_repository.aggregate(session, call_id, group_by), group_by)
            scratch = fold(await stats_repository.recompute(session, call_id, group_by), group_by)
            assert maintained == scratch, (call_id, group_by)
    # and through the API: call X has A, B, C, D, E, F, I (7), admitted A, D, F; call Y has G, admitted
    got = await monitoring_client.get("/v1/stats", params={"call_id": call_x}, headers=officer)
    assert got.status_code == 200, got.text
    assert (got.json()["totals"]["applications"], got.json()["totals"]["admitted"]) == (7, 3)
    got = await monitoring_client.get("/v1/stats", params={"call_id": call_y}, headers=officer)
    assert (got.json()["totals"]["applications"], got.json()["totals"]["admitted"]) == (1, 1)

    # the same batch again: every applied event a duplicate, the refused one refused again, nothing changes
    states = await fact_states(session, ids)
    groups_before = await groups_of(session, [call_x, call_y])
    with fact_updates(engine) as updates:
        again = await post_batch(monitoring_client, bodies)
    assert [x["status"] for x in again.json()["results"]] == ["duplicate"] * 10 + ["failed"]
    assert updates == []
    assert await fact_states(session, ids) == states
    assert await groups_of(session, [call_x, call_y]) == groups_before


async def test_when_the_verdicts_step_fails_each_verdict_is_applied_by_its_handler(
    monitoring_client, intake, engine, session, monkeypatch
):
    async def broken(*args: Any, **kwargs: Any) -> set[uuid.UUID]:
        await kwargs.get("session", args[0]).execute(
            text("UPDATE monitoring.application_facts SET status = 'broken' WHERE application_id = ANY(:a)"),
            {"a": [uuid.UUID(x) for x in ids]},
        )
        raise RuntimeError("the database went away")

    call_id = uuid.uuid4()
    ids = [await add_fact(session, call_id) for _ in range(3)]
    monkeypatch.setattr(facts_repository, "set_admissibility", broken)
    bodies = [verdict(ids[0], call_id, "admissible"), verdict(ids[1], call_id, "not_admissible")]
    bodies.append(verdict(ids[2], call_id, "needs_review"))
    with fact_updates(engine) as updates:
        r = await post_batch(monitoring_client, bodies)
    assert [x["status"] for x in r.json()["results"]] == ["processed"] * 3
    # the step's half-done UPDATE undone, then the two verdicts that change something, one by one
    assert len(updates) == 1 + 2
    assert await fact_states(session, ids) == {
        ids[0]: (True, "admitted"),
        ids[1]: (False, "not_admitted"),
        ids[2]: (False, "submitted"),
    }
