"""Publication order of the outbox (`published_seq`, the cursor of `GET /v1/events`) on committed data:
an event whose transaction commits after a later one is still polled, fan-outs never interleave, and a
batch is numbered in id order."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import make_sessionmaker
from shared.events.worker import publish_pending
from shared.models import OutboxEvent
from tests.conftest import make_token
from tests.factories import make_partner


async def _insert(conn: AsyncConnection, partner_id: uuid.UUID, n: int = 1) -> list[int]:
    rows = await conn.execute(
        insert(OutboxEvent)
        .values(
            [
                {
                    "event_id": uuid.uuid4(),
                    "event_type": "application.submitted",
                    "event_version": 1,
                    "source": "intake",
                    "aggregate_type": "application",
                    "aggregate_id": (app := str(uuid.uuid4())),
                    "ordering_key": app,
                    "partner_id": partner_id,
                    "payload": {"n": i},
                    "occurred_at": datetime.now(UTC),
                }
                for i in range(n)
            ]
        )
        .returning(OutboxEvent.id)
    )
    return [r.id for r in rows]


async def _publish_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        while await publish_pending(conn):
            pass


async def _seqs(engine: AsyncEngine, ids: list[int]) -> dict[int, int | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(OutboxEvent.id, OutboxEvent.published_seq).where(OutboxEvent.id.in_(ids)))
        return {r.id: r.published_seq for r in rows}


@pytest.fixture
async def poller(engine: AsyncEngine) -> tuple[uuid.UUID, dict[str, str]]:
    async with make_sessionmaker(engine)() as s:
        partner = await make_partner(s)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    return partner.id, headers


async def _poll(http: Any, headers: dict[str, str], after: str | None) -> tuple[list[str], str | None]:
    r = await http.get("/v1/events", params={"cursor": after} if after else {}, headers=headers)
    assert r.status_code == 200, r.text
    page = r.json()
    return [i["data"]["n"] for i in page["items"]], page["next_cursor"]


async def test_an_event_committed_late_is_not_skipped_by_a_poller(engine, committing_client, poller):
    partner_id, headers = poller
    async with engine.connect() as slow:
        slow_tx = await slow.begin()
        (late_id,) = await _insert(slow, partner_id)  # a lower id, still uncommitted
        async with engine.begin() as fast:
            (early_id,) = await _insert(fast, partner_id)
        assert late_id < early_id

        await _publish_all(engine)
        seen, cursor = await _poll(committing_client, headers, None)
        assert len(seen) == 1 and cursor is not None
        assert late_id not in await _seqs(engine, [late_id]), "invisible (and unpublished) while uncommitted"
        await slow_tx.commit()

    await _publish_all(engine)
    seqs = await _seqs(engine, [late_id, early_id])
    assert seqs[late_id] is not None and seqs[early_id] is not None and seqs[late_id] > seqs[early_id]
    more, cursor2 = await _poll(committing_client, headers, cursor)
    assert len(more) == 1, "paging by outbox id would have skipped the late event"
    assert (await _poll(committing_client, headers, cursor2)) == ([], cursor2)


async def test_fan_outs_never_interleave(engine, poller):
    partner_id, _ = poller
    async with engine.connect() as first:
        tx = await first.begin()
        await publish_pending(first)  # holds the fan-out lock until this transaction ends
        async with engine.begin() as c:
            (event_id,) = await _insert(c, partner_id)

        async def second() -> None:
            async with engine.begin() as conn:
                await publish_pending(conn)

        task = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not task.done(), "a second fan-out waits for the first to commit"
        assert (await _seqs(engine, [event_id]))[event_id] is None, "the blocked fan-out has published nothing"
        await tx.commit()
    await asyncio.wait_for(task, timeout=10)
    assert (await _seqs(engine, [event_id]))[event_id] is not None


async def test_a_batch_is_numbered_in_id_order(engine, poller):
    partner_id, _ = poller
    async with engine.begin() as c:
        ids = await _insert(c, partner_id, 25)
    await _publish_all(engine)
    seqs = await _seqs(engine, ids)
    numbers = [seqs[i] for i in sorted(ids)]
    assert None not in numbers and numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


async def test_an_unnumbered_event_takes_no_entry_in_the_publication_index_and_paging_still_uses_it(
    engine, committing_client, poller
):
    """Every event is written unnumbered (one per click-day submit) and numbered by the fan-out later; pings
    stay unnumbered. The publication index holds the numbered ones only: writing 3,000 unnumbered events
    leaves it as it was (with their NULLs it grew from one 8 kB page to five), and the paging query of
    `GET /v1/events` (`published_seq > cursor`) is still answered through it, in order."""
    partner_id, headers = poller
    index_size = text("SELECT pg_relation_size('desk.ix_outbox_published_seq')")
    async with engine.begin() as c:
        ids = await _insert(c, partner_id, 3)
    await _publish_all(engine)
    async with engine.connect() as conn:
        before = (await conn.execute(index_size)).scalar_one()
    async with engine.begin() as c:
        unnumbered = await _insert(c, partner_id, 3000)
    async with engine.connect() as conn:
        assert (await conn.execute(index_size)).scalar_one() == before
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        await conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        stmt = select(OutboxEvent.id).where(OutboxEvent.published_seq > 0).order_by(OutboxEvent.published_seq)
        compiled = stmt.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {compiled}")))
        await conn.rollback()
    assert "using ix_outbox_published_seq" in plan, plan
    seqs = await _seqs(engine, ids + unnumbered[:5])
    assert all(seqs[i] is not None for i in ids) and all(seqs[i] is None for i in unnumbered[:5])

    seen, _ = await _poll(committing_client, headers, None)
    assert seen == [0, 1, 2], "the three numbered events, in publication order; the unnumbered not yet served"
    await _publish_all(engine)
    seen, _ = await _poll(committing_client, headers, None)
    assert seen[:6] == [0, 1, 2, 0, 1, 2], "numbered by the fan-out, the others follow in id order"
