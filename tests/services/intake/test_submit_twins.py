"""The submit's twins agree on random content.

The click-day commit (`intake.commit_submission`, migrations/sql/commit_submission.sql) writes in SQL what the
Python code also computes or checks: the receipt's canonical JSON (`shared.domain.receipts.canonical_json`),
its chain link (`chain_link`), the `application.submitted` event's payload (built in SQL on the pre-checked
path, in Python on the full path) and the audit record that the Python verifier re-hashes
(`shared.audit_chain`). The content hash is computed in Python from the draft as PostgreSQL gives it back,
and must be the hash of the draft as the applicant sent it.

Each example writes a draft with random content (unicode titles and texts with quotes and control
characters, amounts, expense lines, nested JSON), random receipt fields and a random chain head, commits it
with the real function in one mode or the other inside a savepoint that is rolled back, and compares every
byte SQL wrote with what Python computes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.applications import repository, service
from shared.audit import event_params
from shared.audit_chain import parse_record, record_hash
from shared.audit_trail import _LINES
from shared.auth import Principal
from shared.domain.receipts import GENESIS, canonical_json, chain_link, sha256_hex
from shared.routing import Actor
from tests.conftest import KEYRING
from tests.factories import make_company, make_partner, open_call

# Text as an applicant may send it: any character PostgreSQL stores (no NUL, no lone surrogate), so quotes,
# backslashes, control characters, U+2028 and astral characters too.
_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def texts(*, min_size: int = 0, max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text(_CHARS, min_size=min_size, max_size=max_size)


# JSON as the API stores it in JSONB: no floats (money travels as strings), integers a JSON reader keeps exact.
_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts()
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(max_size=12), inner, max_size=4),
    max_leaves=12,
)
OBJECTS = st.dictionaries(texts(max_size=12), JSON, max_size=5)
AMOUNTS = st.decimals(min_value=Decimal("0"), max_value=Decimal("999999999999.99"), places=2)
LINES = st.lists(
    st.fixed_dictionaries(
        {
            "category": texts(min_size=1, max_size=8),
            "description": texts(max_size=60),
            "amount": AMOUNTS,
            "target_market": st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
            "supplier": st.none() | texts(),
        }
    ),
    max_size=5,
)
ESTIMATES = st.none() | st.fixed_dictionaries({"eligible_total": AMOUNTS, "grant": AMOUNTS, "loan": AMOUNTS})
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)


@dataclass(frozen=True)
class Draft:
    title: str
    action_plan: dict[str, Any]
    network: dict[str, Any] | None
    de_minimis_declarations: list[dict[str, Any]]
    flat_rates: list[str]
    lines: list[dict[str, Any]]


DRAFTS = st.builds(
    Draft,
    title=texts(min_size=1, max_size=80),
    action_plan=OBJECTS,
    network=st.none() | OBJECTS,
    de_minimis_declarations=st.lists(OBJECTS, max_size=3),
    flat_rates=st.lists(texts(min_size=1, max_size=8), max_size=3),
    lines=LINES,
)


@dataclass(frozen=True)
class Stage:
    session: Any
    conn: Any  # the asyncpg connection under the test's transaction
    call_id: uuid.UUID
    company_id: uuid.UUID
    partner_id: uuid.UUID


@pytest.fixture
async def stage(session: Any) -> Stage:
    call = await open_call(session)
    partner = await make_partner(session)
    company = await make_company(session)
    return Stage(session, await repository.driver_connection(session), call.id, company.id, partner.id)


_OFFICER = Actor(Principal(client_id="twins-officer", kind="officer", scopes=frozenset()), "req-twins", "intake")


async def _write_draft(conn: Any, stage: Stage, draft: Draft) -> uuid.UUID:
    app_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO intake.applications (id, call_id, company_id, partner_id, status, title, action_plan, network,"
        " de_minimis_declarations, flat_rates, version, created_by, stamp_duty_id, stamp_duty_issued_on)"
        " VALUES ($1, $2, $3, $4, 'draft', $5, $6::text::jsonb, $7::text::jsonb, $8::text::jsonb, $9, 1, 'twins',"
        " $10, date '2026-11-30')",
        app_id,
        stage.call_id,
        stage.company_id,
        stage.partner_id,
        draft.title,
        orjson.dumps(draft.action_plan).decode(),
        None if draft.network is None else orjson.dumps(draft.network).decode(),
        orjson.dumps(draft.de_minimis_declarations).decode(),
        draft.flat_rates,
        f"{app_id.int % 10**14:014d}",  # the stamp duty the call requires, its own per draft
    )
    await conn.executemany(
        "INSERT INTO intake.expense_lines (id, application_id, position, category, description, amount, target_market,"
        " supplier) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                uuid.uuid4(),
                app_id,
                i,
                ln["category"],
                ln["description"],
                ln["amount"],
                ln["target_market"],
                ln["supplier"],
            )
            for i, ln in enumerate(draft.lines, start=1)
        ],
    )
    return app_id


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    draft=DRAFTS,
    call_code=texts(min_size=1, max_size=40),
    vat=texts(min_size=1, max_size=11),
    key_id=texts(max_size=20),
    last_protocol=st.integers(0, 2**40),
    last_hash=st.just(GENESIS) | HEX64,
    estimate=ESTIMATES,
    prechecked=st.booleans(),
    audit_before=JSON,
)
async def test_sql_and_python_write_the_same_receipt_hashes_event_and_audit_record(
    stage: Stage,
    draft: Draft,
    call_code: str,
    vat: str,
    key_id: str,
    last_protocol: int,
    last_hash: str,
    estimate: dict[str, Decimal] | None,
    prechecked: bool,
    audit_before: Any,
) -> None:
    conn = stage.conn
    await conn.execute("SAVEPOINT twins")
    try:
        await conn.execute("UPDATE intake.calls SET code = $2 WHERE id = $1", stage.call_id, call_code)
        await conn.execute("UPDATE intake.companies SET vat_number = $2 WHERE id = $1", stage.company_id, vat)
        await conn.execute(
            "UPDATE intake.call_counters SET last_protocol = $2, last_chain_hash = $3 WHERE call_id = $1",
            stage.call_id,
            last_protocol,
            last_hash,
        )
        app_id = await _write_draft(conn, stage, draft)

        # The content hash, as the pre-check computes it: from the draft as PostgreSQL gives it back ...
        (row,) = await repository.load_drafts(conn, [app_id])
        check = await _check(row, estimate)
        # ... is the hash of the draft as the applicant sent it
        sent = {
            "application_id": app_id,
            "call_id": stage.call_id,
            "call_version": 1,
            "company_id": stage.company_id,
            "company_vat_number": vat,
            "title": draft.title,
            "action_plan": draft.action_plan,
            "flat_rates": draft.flat_rates,
            "network": draft.network,
            "de_minimis_declarations": draft.de_minimis_declarations,
            "expense_lines": draft.lines,
        }
        assert check.content_sha256 == sha256_hex(canonical_json(sent))

        if prechecked:  # the verdict kept as `record_precheck` keeps it; SQL builds the payload from it
            await conn.execute(
                service._RECORD_PRECHECK,
                row.id,
                row.version,
                row.version,
                row.company_version,
                row.current_version,
                datetime.now(UTC) + timedelta(days=1),
                check.content_sha256,
                canonical_json(check.estimate).decode(),
            )
            args = service.prechecked_args(
                actor=_OFFICER, application_id=app_id, keyring=KEYRING, key=None, if_match=None
            )
        else:  # the full path's arguments, payload built in Python
            args = service.full_path_args(
                row, check.content_sha256, service.event_payload(row, check).decode(), _OFFICER, KEYRING, None
            )
        assert args is not None
        args = args._replace(key_id=key_id)
        await conn.execute("SET CONSTRAINTS desk.audit_log_link IMMEDIATE")  # link the audit record now
        out = await conn.fetchrow(service.COMMIT_SQL, *args)
        assert out["outcome"] == "submitted"

        # The receipt: SQL's canonical JSON is Python's, byte for byte, and so is its chain link
        receipt = {
            "application_id": app_id,
            "call_code": call_code,
            "call_id": stage.call_id,
            "call_version": 1,
            "company_vat_number": vat,
            "content_sha256": check.content_sha256,
            "key_id": key_id,
            "protocol_number": last_protocol + 1,
            "submitted_at": out["submitted_at"],
        }
        assert out["receipt_json"].encode() == canonical_json(receipt)
        assert out["previous_hash"] == last_hash and out["chain_hash"] == chain_link(last_hash, receipt)
        assert (
            await conn.fetchval("SELECT intake.receipt_chain_link($1, $2)", last_hash, out["receipt_json"])
            == out["chain_hash"]
        )
        # What the API answers now and on a replay (re-read from JSONB, re-canonicalised): the same signed bytes
        answered = service._committed(out, KEYRING, stage.call_id)
        replayed = await service._replay(conn, KEYRING, f"application-receipt:{app_id}")
        assert (replayed["receipt"], replayed["signature"]) == (answered["receipt"], answered["signature"])
        assert answered["signature"] == KEYRING.sign(canonical_json(receipt))
        stored = await conn.fetchrow(
            "SELECT content_sha256, chain_hash, protocol_number FROM intake.applications WHERE id = $1", app_id
        )
        assert tuple(stored) == (check.content_sha256, out["chain_hash"], last_protocol + 1)

        # The event: the pre-checked path's SQL payload is the full path's Python payload
        payload = await conn.fetchval("SELECT payload::text FROM desk.outbox WHERE event_id = $1", args.event_id)
        instant = canonical_json({"t": out["submitted_at"]})[6:-2].decode()
        assert orjson.loads(payload) == {
            **orjson.loads(service.event_payload(row, check)),
            "protocol_number": last_protocol + 1,
            "submitted_at": instant,
        }
        # ... and its subject and ordering key are what `shared.audit.event_params` writes for it
        written = await conn.fetchrow(
            "SELECT aggregate_type, aggregate_id, ordering_key FROM desk.outbox WHERE event_id = $1", args.event_id
        )
        python = event_params(
            _OFFICER, event_type="application.submitted", subject_type="application", subject_id=app_id, payload={}
        )
        assert (
            tuple(written)
            == (python["atype"], python["aid"], python["okey"])
            == ("application", str(app_id), str(app_id))
        )

        # The audit records: the one the function wrote, and one carrying random nested JSON, hash in SQL as the
        # Python verifier re-hashes them from the export
        chain = f"t-{uuid.uuid4().hex[:8]}"
        await conn.execute(
            "INSERT INTO desk.audit_log (service, request_id, principal_kind, principal_client_id, action,"
            " resource_type, resource_id, before, after) VALUES ($1, $2, 'partner', $3, 'a.b', 'r', $4,"
            " $5::text::jsonb, $6::text::jsonb)",
            chain,
            key_id or None,
            vat,
            draft.title,
            orjson.dumps(audit_before).decode(),
            orjson.dumps(draft.action_plan).decode(),
        )
        submit_seq = await conn.fetchval(
            "SELECT seq FROM desk.audit_log WHERE service = 'intake' AND resource_id = $1", str(app_id)
        )
        for name, seq in (("intake", submit_seq), (chain, 1)):
            lines = (await stage.session.execute(_LINES, {"service": name, "lo": seq, "hi": seq})).scalars().all()
            (record,) = [parse_record(line) for line in lines]
            assert record_hash(record) == record["hash"]
    finally:
        await conn.execute("ROLLBACK TO SAVEPOINT twins")
        await conn.execute("RELEASE SAVEPOINT twins")


async def _check(row: Any, estimate: dict[str, Decimal] | None) -> service.Precheck:
    """The pre-check's content hash and estimate, without the call's rules (random content fails them)."""
    lines = [service._Line(d) for d in row.lines]
    content = service.submitted_content(row, row, row.current_version, lines)
    return service.Precheck(
        None,
        sha256_hex(canonical_json(content)),
        estimate,  # type: ignore[arg-type]
        datetime.now(UTC) + timedelta(days=1),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    at=st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2999, 12, 31),
        timezones=st.sampled_from([UTC]) | st.timezones(),
    )
)
async def test_sql_writes_any_instant_as_the_receipts_do(stage: Stage, at: datetime) -> None:
    """The receipt's `submitted_at` and the event's, on instants far from now and in any time zone."""
    got = await stage.conn.fetchval("SELECT intake.receipt_instant($1)", at)
    assert got == canonical_json({"t": at})[6:-2].decode()
