"""Idempotency keys belong to the partner or company acting, not to one of its API clients: any of its
clients retrying gets the original response, byte for byte, on an ordinary route and on the submit (its
FastAPI route and its click-day path); another partner's same key is another request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from shared.auth import Principal
from shared.db import make_sessionmaker
from shared.routing import idempotency_owner
from tests.conftest import make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call


async def _partner_with_two_clients(session: Any) -> tuple[Any, Any, dict[str, str], dict[str, str]]:
    partner = await make_partner(session)
    company = await make_company(session)
    await delegate(session, partner, company)
    first = await make_token(session, "partner", partner_id=partner.id)
    second = await make_token(session, "partner", partner_id=partner.id)
    return partner, company, first, second


def _replayed(original: Any, replay: Any) -> None:
    assert replay.status_code == original.status_code, replay.text
    assert replay.content == original.content  # the same bytes, not merely the same JSON
    assert replay.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in original.headers
    assert replay.headers["location"] == original.headers["location"]


async def test_a_partners_second_client_replays_the_stored_response(client, session):
    call = await open_call(session)
    _, company, first, second = await _partner_with_two_clients(session)
    key = {"Idempotency-Key": f"draft-{uuid.uuid4()}"}
    body = draft_body(call.id, company.id)
    original = await client.post("/v1/applications", json=body, headers={**first, **key})
    assert original.status_code == 201, original.text
    replay = await client.post("/v1/applications", json=body, headers={**second, **key})
    _replayed(original, replay)
    drafts = (
        await session.execute(text("SELECT count(*) FROM intake.applications WHERE company_id = :c"), {"c": company.id})
    ).scalar_one()
    assert drafts == 1

    # the same key with another body is still refused, whichever of the partner's clients sends it
    other = await client.post(
        "/v1/applications", json=draft_body(call.id, company.id, title="Altro"), headers={**second, **key}
    )
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"


async def test_another_partner_using_the_same_key_gets_its_own_request(client, session):
    call = await open_call(session)
    partner_a, company_a, headers_a, _ = await _partner_with_two_clients(session)
    partner_b, company_b, headers_b, _ = await _partner_with_two_clients(session)
    key = {"Idempotency-Key": f"same-key-{uuid.uuid4()}"}
    a = await client.post("/v1/applications", json=draft_body(call.id, company_a.id), headers={**headers_a, **key})
    b = await client.post("/v1/applications", json=draft_body(call.id, company_b.id), headers={**headers_b, **key})
    assert a.status_code == b.status_code == 201, b.text
    assert "idempotent-replayed" not in b.headers and b.json()["id"] != a.json()["id"]
    assert b.json()["company_id"] == str(company_b.id)
    owners = (
        (
            await session.execute(
                text("SELECT principal FROM desk.idempotency_keys WHERE key = :k"), {"k": key["Idempotency-Key"]}
            )
        )
        .scalars()
        .all()
    )
    assert sorted(owners) == sorted([f"partner:{partner_a.id}", f"partner:{partner_b.id}"])


async def test_a_submit_replayed_by_the_partners_second_client_is_the_same_bytes(client, session):
    call = await open_call(session)
    _, company, first, second = await _partner_with_two_clients(session)
    draft = await client.post("/v1/applications", json=draft_body(call.id, company.id), headers=first)
    await declare_stamp_duty(client, draft.json()["id"], first)
    url = f"/v1/applications/{draft.json()['id']}/submit"
    key = {"Idempotency-Key": f"submit-{uuid.uuid4()}"}
    original = await client.post(url, headers={**first, **key})
    assert original.status_code == 201, original.text
    _replayed(original, await client.post(url, headers={**second, **key}))


async def test_a_submit_replayed_by_the_same_client_is_the_same_bytes(client, session):
    """The receipt is re-read from the application (JSONB, which reorders keys) on a replay: the answer must
    still be the original's bytes, not merely an equal JSON document."""
    call = await open_call(session)
    _, company, first, _ = await _partner_with_two_clients(session)
    draft = await client.post("/v1/applications", json=draft_body(call.id, company.id), headers=first)
    await declare_stamp_duty(client, draft.json()["id"], first)
    url = f"/v1/applications/{draft.json()['id']}/submit"
    key = {"Idempotency-Key": f"submit-{uuid.uuid4()}"}
    original = await client.post(url, headers={**first, **key})
    assert original.status_code == 201, original.text
    _replayed(original, await client.post(url, headers={**first, **key}))


async def test_the_click_day_path_replays_for_the_partners_second_client_byte_for_byte(committing_client, engine):
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        _, company, first, second = await _partner_with_two_clients(s)
        await s.commit()
    draft = await committing_client.post("/v1/applications", json=draft_body(call.id, company.id), headers=first)
    await declare_stamp_duty(committing_client, draft.json()["id"], first)
    url = f"/v1/applications/{draft.json()['id']}/submit"
    key = {"Idempotency-Key": f"fast-{uuid.uuid4()}"}
    original = await committing_client.post(url, headers={**first, **key})
    assert original.status_code == 201, original.text
    _replayed(original, await committing_client.post(url, headers={**second, **key}))


@pytest.mark.parametrize(
    ("principal", "owner"),
    [
        (Principal("p-1", "partner", frozenset(), partner_id=uuid.UUID(int=1)), f"partner:{uuid.UUID(int=1)}"),
        (Principal("c-1", "company", frozenset(), company_id=uuid.UUID(int=2)), f"company:{uuid.UUID(int=2)}"),
        (Principal("o-1", "officer", frozenset()), "client:o-1"),
        (Principal("p-2", "partner", frozenset()), "client:p-2"),  # bound to no partner: owns its keys alone
    ],
)
def test_idempotency_owner(principal: Principal, owner: str) -> None:
    assert idempotency_owner(principal) == owner


async def test_committed_replays_by_the_same_client_are_the_original_bytes(committing_client, engine):
    """Committed for real (the replay reads the stored answer back from the database): an ordinary POST and the
    click-day submit both answer the original bytes, keys in the original order, not merely equal JSON."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        _, company, first, _ = await _partner_with_two_clients(s)
        await s.commit()
    body = draft_body(call.id, company.id)
    key = {"Idempotency-Key": f"draft-{uuid.uuid4()}"}
    draft = await committing_client.post("/v1/applications", json=body, headers={**first, **key})
    assert draft.status_code == 201, draft.text
    again = await committing_client.post("/v1/applications", json=body, headers={**first, **key})
    _replayed(draft, again)
    assert list(again.json()) == list(draft.json())
    await declare_stamp_duty(committing_client, draft.json()["id"], first)
    url = f"/v1/applications/{draft.json()['id']}/submit"
    key = {"Idempotency-Key": f"fast-{uuid.uuid4()}"}
    original = await committing_client.post(url, headers={**first, **key})
    assert original.status_code == 201, original.text
    replay = await committing_client.post(url, headers={**first, **key})
    _replayed(original, replay)
    assert list(replay.json()["receipt"]) == sorted(original.json()["receipt"])  # the signed (canonical) order
