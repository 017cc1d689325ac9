"""Submits that really commit, many at once: protocol numbers unique, gap-free, in arrival order;
the same draft submitted concurrently wins once; idempotent duplicates in flight execute once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


async def _committed_world(engine: Any, companies: int) -> tuple[Any, dict[str, str], list[Any]]:
    sm = make_sessionmaker(engine)
    async with sm() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        comps = [await make_company(s) for _ in range(companies)]
        for c in comps:
            await delegate(s, partner, c)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    return call, headers, comps


async def test_concurrent_submits_of_different_applications_get_gap_free_ordered_numbers(committing_client, engine):
    n = 40
    call, headers, comps = await _committed_world(engine, n)
    ids = []
    for c in comps:
        r = await committing_client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        await declare_stamp_duty(committing_client, r.json()["id"], headers)
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in ids]
    )
    assert [r.status_code for r in results] == [201] * n
    numbers = sorted(r.json()["receipt"]["protocol_number"] for r in results)
    assert numbers == list(range(1, n + 1))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT protocol_number, submitted_at FROM intake.applications WHERE call_id = :c "
                    "ORDER BY protocol_number"
                ),
                {"c": call.id},
            )
        ).all()
    assert [r.protocol_number for r in rows] == list(range(1, n + 1))
    stamps = [r.submitted_at for r in rows]
    assert stamps == sorted(stamps), "protocol order must follow server arrival order"
    reg = (await committing_client.get(f"/v1/calls/{call.id}/register", params={"limit": 100})).json()
    from shared.domain.receipts import verify_chain

    assert verify_chain((e["receipt"], e["chain_hash"]) for e in reg["items"]) is None


async def test_concurrent_submits_of_the_same_application_win_once(committing_client, engine):
    call, headers, comps = await _committed_world(engine, 1)
    r = await committing_client.post("/v1/applications", json=draft_body(call.id, comps[0].id), headers=headers)
    app_id = r.json()["id"]
    await declare_stamp_duty(committing_client, app_id, headers)
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{app_id}/submit", headers=headers) for _ in range(10)]
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 9
    async with engine.connect() as conn:
        n = (
            await conn.execute(text("SELECT count(*) FROM desk.outbox WHERE aggregate_id = :a"), {"a": app_id})
        ).scalar_one()
        last = (
            await conn.execute(
                text("SELECT last_protocol FROM intake.call_counters WHERE call_id = :c"), {"c": call.id}
            )
        ).scalar_one()
    assert n == 1 and last == 1


async def test_concurrent_duplicates_with_one_idempotency_key_execute_once(committing_client, engine):
    call, headers, comps = await _committed_world(engine, 1)
    r = await committing_client.post("/v1/applications", json=draft_body(call.id, comps[0].id), headers=headers)
    app_id = r.json()["id"]
    await declare_stamp_duty(committing_client, app_id, headers)
    h = {**headers, "Idempotency-Key": f"k-{app_id}"}
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{app_id}/submit", headers=h) for _ in range(8)]
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["receipt"]["protocol_number"] for r in results}) == 1
    assert sum(1 for r in results if r.headers.get("idempotent-replayed") == "true") == 7


async def test_the_click_day_path_answers_like_the_route(committing_client, engine, monkeypatch):
    """committing_client serves submits from the ASGI fast path: same problems, same receipts, same replay."""
    from services.intake.applications import service

    seen: list[str] = []
    real_submit = service.submit

    async def spy(**kw):
        seen.append(type(kw["conn"]).__name__)
        return await real_submit(**kw)

    monkeypatch.setattr(service, "submit", spy)
    call, headers, comps = await _committed_world(engine, 1)
    r = await committing_client.post("/v1/applications", json=draft_body(call.id, comps[0].id), headers=headers)
    app_id = r.json()["id"]
    await declare_stamp_duty(committing_client, app_id, headers)
    url = f"/v1/applications/{app_id}/submit"
    assert (await committing_client.post(url)).status_code == 401
    assert (await committing_client.post(url, headers={**headers, "If-Match": '"7"'})).json()[
        "type"
    ] == "/problems/precondition-failed"
    other = await committing_client.post(
        "/v1/applications/00000000-0000-0000-0000-000000000000/submit", headers=headers
    )
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    first = await committing_client.post(url, headers={**headers, "Idempotency-Key": "fast-1", "X-Request-ID": "r-1"})
    assert first.status_code == 201 and first.headers["x-request-id"] == "r-1"
    again = await committing_client.post(url, headers={**headers, "Idempotency-Key": "fast-1"})
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert (await committing_client.post(url, headers=headers)).status_code == 409
    receipt = await committing_client.get(f"/v1/applications/{app_id}/receipt", headers=headers)
    assert receipt.json() == first.json()
    assert seen and set(seen) == {"PoolConnectionProxy"}, seen  # the pool's connections: the fast path


async def _drafts(client: Any, call: Any, headers: dict[str, str], companies: list[Any]) -> list[str]:
    ids = []
    for c in companies:
        r = await client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        await declare_stamp_duty(client, r.json()["id"], headers)
    return ids


async def test_pre_checked_submits_arriving_together_commit_in_groups(committing_client, engine):
    """The click-day path commits the submits queued together in one transaction: fewer transactions than
    submits (rows committed together share their xmin), numbers still gap-free and in arrival order."""
    n = 24
    call, headers, comps = await _committed_world(engine, n)
    ids = await _drafts(committing_client, call, headers, comps)
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in ids]
    )
    assert [r.status_code for r in results] == [201] * n
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT protocol_number, submitted_at, xmin::text AS tx FROM intake.applications WHERE "
                    "call_id = :c "
                    "ORDER BY protocol_number"
                ),
                {"c": call.id},
            )
        ).all()
    assert [r.protocol_number for r in rows] == list(range(1, n + 1))
    assert [r.submitted_at for r in rows] == sorted(r.submitted_at for r in rows)
    assert len({r.tx for r in rows}) < n, "no two submits were committed together"


async def test_one_refused_submit_does_not_sink_its_group(committing_client, engine):
    """A company's second draft submitted in the same burst makes its group's transaction fail (one live
    submission per company and call); every submit of the group is then committed alone: the others get
    their receipts, the duplicate a 409."""
    call, headers, comps = await _committed_world(engine, 4)
    ids = await _drafts(committing_client, call, headers, [comps[0], *comps])  # comps[0] has two drafts
    results = await asyncio.gather(
        *[committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in ids]
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 201, 201, 201, 409], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 409)
    assert refused.json()["detail"] == "L'impresa ha già presentato una domanda su questo bando."
    numbers = sorted(r.json()["receipt"]["protocol_number"] for r in results if r.status_code == 201)
    assert numbers == [1, 2, 3, 4]


async def test_group_commits_link_their_audit_records_amid_other_intake_writes(committing_client, engine):
    """The click-day group writes its audit records already linked, holding the chain's head to its commit;
    drafts saved at the same time link theirs at their own commit. Every record of both ends in one gap-free
    chain that verifies, each submit's record and each draft's record with a seq."""
    n = 24
    call, headers, comps = await _committed_world(engine, 2 * n)
    ids = []
    for c in comps[:n]:
        r = await committing_client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        await declare_stamp_duty(committing_client, r.json()["id"], headers)
    submits = [committing_client.post(f"/v1/applications/{i}/submit", headers=headers) for i in ids]
    saves = [
        committing_client.post("/v1/applications", json=draft_body(call.id, c.id), headers=headers) for c in comps[n:]
    ]
    interleaved = [job for pair in zip(submits, saves, strict=True) for job in pair]
    results = await asyncio.gather(*interleaved)
    assert [r.status_code for r in results] == [201] * (2 * n)
    created = [r.json()["id"] for r in results[1::2]]

    async with engine.connect() as conn:
        seqs = (
            await conn.execute(
                text(
                    "SELECT resource_id, action, seq FROM desk.audit_log WHERE service = 'intake'"
                    " AND resource_id = ANY(:ids) AND action IN ('application.submitted', 'application.created')"
                ),
                {"ids": ids + created},
            )
        ).all()
    submitted = {r.resource_id for r in seqs if r.action == "application.submitted"}
    assert submitted == set(ids) and {r.resource_id for r in seqs if r.action == "application.created"} >= set(created)
    assert all(r.seq is not None for r in seqs)
    async with make_sessionmaker(engine)() as s:
        auditor = await make_token(s, "auditor")
        await s.commit()
    out = (await committing_client.get("/v1/audit/verify", params={"service": "intake"}, headers=auditor)).json()
    assert out["ok"] is True and out["failure"] is None, out
    assert out["records"] == out["head_seq"], "every record from the first to the head, none missing"
