"""The group commit (`intake.commit_submission_group`) is `intake.commit_submission` run for each submit in turn.

Each example stages a group of submits of every kind the click-day route sends (pre-checked drafts with a current
verdict, pre-checked attempts whose draft was edited since, full-path submits with their checked arguments,
submits whose Idempotency-Key was already used with the same or another request, with and without a key), commits
it once with the group function and once, from the same state, with the single function called for each submit
in order, and compares everything either wrote: outcomes, protocol numbers, receipts and their chain, the
drafts returned with `not_prechecked`, the applications, events, audit records and idempotency records. A group
that cannot be committed as such (an application twice, a key twice, a draft changed since its check) raises,
and its submits are committed one by one (tests/services/intake/test_submit_concurrency.py).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.applications import repository, service
from shared.audit_chain import parse_record, record_hash
from shared.audit_trail import _LINES
from shared.auth import Principal
from shared.domain.receipts import GENESIS, canonical_json, chain_link
from shared.routing import Actor
from tests.conftest import KEYRING
from tests.factories import make_company, make_partner, open_call

KINDS = ("prechecked", "edited", "full", "replay", "mismatch")
_OFFICER = Actor(Principal(client_id="group-officer", kind="officer", scopes=frozenset()), "req-group", "intake")


class World:
    def __init__(self, conn: Any, call_id: uuid.UUID, partner_id: uuid.UUID) -> None:
        self.conn, self.call_id, self.partner_id = conn, call_id, partner_id


@pytest.fixture
async def world(session: Any) -> World:
    call = await open_call(session)
    partner = await make_partner(session)
    conn = await repository.driver_connection(session)
    return World(conn, call.id, partner.id)


async def _draft(w: World, session: Any, n: int) -> uuid.UUID:
    company = await make_company(session)
    await session.flush()
    app_id = uuid.uuid4()
    await w.conn.execute(
        "INSERT INTO intake.applications (id, call_id, company_id, partner_id, status, title, action_plan,"
        " de_minimis_declarations, flat_rates, version, created_by, stamp_duty_id, stamp_duty_issued_on)"
        " VALUES ($1, $2, $3, $4, 'draft', $5, '{}', '[]', '{}', 1, 'group', $6, date '2026-11-30')",
        app_id,
        w.call_id,
        company.id,
        w.partner_id,
        f"Progetto {n} «export»",
        f"{app_id.int % 10**14:014d}",
    )
    return app_id


def _key(n: int, digest: bytes) -> service.SubmitKey:
    return service.SubmitKey(
        owner="partner:group", key=f"k-{n}", digest=digest, path="/v1/applications/x/submit", retention=timedelta(1)
    )


async def _stage(w: World, session: Any, kinds: list[str], keyed: list[bool]) -> list[service.CommitArgs]:
    """The group's arguments, in order, and the state each kind needs."""
    args = []
    for n, (kind, with_key) in enumerate(zip(kinds, keyed, strict=True)):
        app_id = await _draft(w, session, n)
        row = (await repository.load_drafts(w.conn, [app_id]))[0]
        digest = hashlib.sha256(f"body-{n}".encode()).digest()
        key = _key(n, digest) if with_key or kind in ("replay", "mismatch") else None
        if kind in ("prechecked", "edited", "replay", "mismatch"):
            await w.conn.execute(
                service._RECORD_PRECHECK,
                app_id,
                row.version,
                row.version,
                row.company_version,
                row.current_version,
                datetime.now(UTC) + timedelta(days=1),
                "ab" * 32,
                canonical_json({"grant": "1000.00", "loan": "500.00"}).decode(),
            )
            a = service.prechecked_args(actor=_OFFICER, application_id=app_id, keyring=KEYRING, key=key, if_match=None)
            assert a is not None
            if kind == "edited":  # edited since the pre-check: the kept verdict is no longer current
                await w.conn.execute("UPDATE intake.applications SET version = version + 1 WHERE id = $1", app_id)
        else:
            payload = orjson.dumps({"application_id": str(app_id), "estimate": None}).decode()
            a = service.full_path_args(row, "cd" * 32, payload, _OFFICER, KEYRING, key)
        if kind in ("replay", "mismatch"):  # the key taken by an earlier request, the same one or another
            await w.conn.execute(
                "INSERT INTO desk.idempotency_keys (principal, key, method, path, request_hash, status_code,"
                " render_ref, expires_at) VALUES ($1, $2, 'POST', $3, $4, 201, $5, now() + interval '1 day')",
                key.owner,
                key.key,
                key.path,
                digest if kind == "replay" else b"another request",
                f"application-receipt:{app_id}",
            )
        args.append(a)
    return args


async def _written(w: World, args: list[service.CommitArgs], rows: list[Any]) -> dict[str, Any]:
    """What a commit answered and wrote, with the instants (the only thing two runs cannot share) checked and
    then left out."""
    ids = [a.application_id for a in args]
    answers, head = [], GENESIS
    for r in rows:
        answer = {k: r[k] for k in ("outcome", "protocol_number", "call_id")}
        answer["draft"] = None if r.get("draft_id") is None else repository.loaded_draft(r)
        if r["outcome"] == "submitted":  # the receipt is the canonical JSON of its fields, chained
            receipt = orjson.loads(r["receipt_json"])
            assert r["receipt_json"].encode() == canonical_json({**receipt, "submitted_at": r["submitted_at"]})
            assert r["chain_hash"] == chain_link(r["previous_hash"], {**receipt, "submitted_at": r["submitted_at"]})
            assert r["previous_hash"] == head, "each receipt chained to the one before"
            head = r["chain_hash"]
            answer["receipt"] = {k: v for k, v in receipt.items() if k != "submitted_at"}
        else:
            assert r["previous_hash"] is None and r["chain_hash"] is None
        answers.append(answer)
    apps = await w.conn.fetch(
        "SELECT id, status, protocol_number, call_version, content_sha256, version, receipt - 'submitted_at' AS r"
        " FROM intake.applications WHERE id = ANY($1::uuid[]) ORDER BY id",
        ids,
    )
    events = await w.conn.fetch(
        "SELECT event_id, event_type, source, aggregate_id, partner_id, company_id, payload - 'submitted_at' AS p"
        " FROM desk.outbox WHERE aggregate_id = ANY($1::text[]) ORDER BY id",
        [str(i) for i in ids],
    )
    audit = await w.conn.fetch(
        "SELECT principal_client_id, action, resource_id, before, after - 'chain_hash' AS after"
        " FROM desk.audit_log WHERE resource_id = ANY($1::text[]) ORDER BY id",
        [str(i) for i in ids],
    )
    keys = await w.conn.fetch(
        "SELECT principal, key, request_hash, render_ref, status_code FROM desk.idempotency_keys"
        " WHERE principal = 'partner:group' ORDER BY key"
    )
    counter = await w.conn.fetchrow(
        "SELECT last_protocol, last_chain_hash FROM intake.call_counters WHERE call_id = $1", w.call_id
    )
    return {
        "answers": answers,
        "applications": [dict(r) for r in apps],
        "events": [dict(r) for r in events],
        "audit": [dict(r) for r in audit],
        "keys": [dict(r) for r in keys],
        "counter": counter["last_protocol"],
        "head_is_last_hash": counter["last_chain_hash"] == head,
    }


async def _audit_head(conn: Any) -> tuple[int, str]:
    head = await conn.fetchrow("SELECT last_seq, last_hash FROM desk.audit_chains WHERE service = 'intake'")
    return (head["last_seq"], head["last_hash"]) if head is not None else (0, "0" * 64)


async def _linked_at_insert(w: World, session: Any, args: list[service.CommitArgs], head: tuple[int, str]) -> int:
    """The group's audit records are in the chain before the commit: each with the next seq after the head it
    found, the previous record's hash, and the hash the export's verifier computes; the head moved to the last.
    Returns how many there are."""
    rows = await w.conn.fetch(
        "SELECT id, seq, prev_hash, hash FROM desk.audit_log WHERE resource_id = ANY($1::text[]) ORDER BY id",
        [str(a.application_id) for a in args],
    )
    seq, last = head
    assert [r["seq"] for r in rows] == list(range(seq + 1, seq + 1 + len(rows))), "gap-free after the head"
    if rows:
        lines = (await session.execute(_LINES, {"service": "intake", "lo": seq + 1, "hi": seq + len(rows)})).scalars()
        records = [parse_record(line) for line in lines]
        assert [int(r["id"]) for r in records] == [r["id"] for r in rows]
        for record in records:
            assert record["prev_hash"] == last and record_hash(record) == record["hash"]
            last = record["hash"]
    assert await _audit_head(w.conn) == (seq + len(rows), last)
    return len(rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    group=st.lists(st.tuples(st.sampled_from(KINDS), st.booleans()), min_size=2, max_size=7),
)
async def test_the_group_commit_writes_what_the_single_commit_writes_submit_by_submit(
    world: World, session: Any, group: list[tuple[str, bool]]
) -> None:
    conn = world.conn
    await conn.execute("SAVEPOINT example")
    try:
        kinds, keyed = [k for k, _ in group], [b for _, b in group]
        args = await _stage(world, session, kinds, keyed)
        await conn.execute("SAVEPOINT commit")
        head = await _audit_head(conn)

        rows = await conn.fetch(service.GROUP_SQL, *service.group_arguments(args))
        assert [r["ord"] for r in rows] == list(range(1, len(args) + 1))
        grouped = await _written(world, args, rows)
        linked = await _linked_at_insert(world, session, args, head)
        await conn.execute("ROLLBACK TO SAVEPOINT commit")

        singles = [await conn.fetchrow(service.PRECHECKED_SQL, *a) for a in args]
        one_by_one = await _written(world, args, singles)
        # the single function leaves its record to desk.audit_link, at commit: unlinked until then
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM desk.audit_log WHERE resource_id = ANY($1::text[]) AND seq IS NOT NULL",
                [str(a.application_id) for a in args],
            )
            == 0
        )

        assert grouped == one_by_one
        # and what each kind comes to, from the rules (not from either function)
        expected = {
            "prechecked": "submitted",
            "full": "submitted",
            "edited": "not_prechecked",  # its draft comes back for the full path
            "replay": "replay",
            "mismatch": "idempotency_mismatch",
        }
        outcomes = [a["outcome"] for a in grouped["answers"]]
        assert outcomes == [expected[k] for k in kinds]
        submitted = outcomes.count("submitted")
        numbers = [a["protocol_number"] for a in grouped["answers"] if a["outcome"] == "submitted"]
        assert numbers == list(range(1, submitted + 1)), "gap-free, in the group's order"
        assert grouped["counter"] == submitted and grouped["head_is_last_hash"]
        assert len(grouped["events"]) == len(grouped["audit"]) == submitted
        assert linked == submitted
        drafts = [a["draft"] for a in grouped["answers"]]
        assert [d is not None for d in drafts] == [o == "not_prechecked" for o in outcomes]
    finally:
        await conn.execute("ROLLBACK TO SAVEPOINT example")
        await conn.execute("RELEASE SAVEPOINT example")


async def _refused(world: World, args: list[service.CommitArgs]) -> asyncpg.PostgresError:
    await world.conn.execute("SAVEPOINT refused")
    try:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await world.conn.fetch(service.GROUP_SQL, *service.group_arguments(args))
        return caught.value
    finally:
        await world.conn.execute("ROLLBACK TO SAVEPOINT refused")
        await world.conn.execute("RELEASE SAVEPOINT refused")


async def test_a_group_naming_an_application_twice_is_refused_whole(world: World, session: Any) -> None:
    (a,) = await _stage(world, session, ["prechecked"], [False])
    error = await _refused(world, [a, a._replace(event_id=uuid.uuid4())])
    assert error.sqlstate == "DK003"
    assert (
        await world.conn.fetchval("SELECT count(*) FROM desk.outbox WHERE aggregate_id = $1", str(a.application_id))
        == 0
    )


async def test_a_full_path_draft_changed_since_its_check_refuses_the_group(world: World, session: Any) -> None:
    first, changed = await _stage(world, session, ["prechecked", "full"], [False, False])
    await world.conn.execute(
        "UPDATE intake.applications SET version = version + 1 WHERE id = $1", changed.application_id
    )
    assert (await _refused(world, [first, changed])).sqlstate == "DK002"
    submitted = await world.conn.fetchval(
        "SELECT count(*) FROM intake.applications WHERE id = ANY($1::uuid[]) AND status = 'submitted'",
        [first.application_id, changed.application_id],
    )
    assert submitted == 0, "nothing of the group is written"


async def test_one_key_used_twice_in_a_group_refuses_it(world: World, session: Any) -> None:
    first, second = await _stage(world, session, ["prechecked", "prechecked"], [True, True])
    second = second._replace(idem_key=first.idem_key)
    assert (await _refused(world, [first, second])).sqlstate == "21000"  # ON CONFLICT cannot touch a row twice
