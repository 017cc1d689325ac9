"""Control characters at evaluation's edge (shared.inputguard): a NUL in a decree or in a conflict-of-interest
declaration is 422 `validation-error` naming the field, and nothing is stored (it answered 500 before)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import create_client, issue_token
from shared.db import make_sessionmaker
from tests.conftest import KEYRING
from tests.factories import make_company, make_partner, open_call
from tests.services.evaluation.builders import evaluation_of, received_application


def refused(r: Any, path: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-error"
    assert [(e["code"], e["path"], e["location"]) for e in r.json()["errors"]] == [("control_character", path, "body")]


async def count(session: Any, sql: str, **params: Any) -> int:
    return int((await session.execute(text(sql), params)).scalar_one())


async def reviewer(session: Any) -> tuple[str, dict[str, str]]:
    client, _ = await create_client(session, kind="officer", name="test reviewer", secret="s" * 32)
    token = issue_token(KEYRING, client=client, scopes=list(client.scopes), issuer="regional-desk", ttl=900)
    return client.client_id, {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    async with make_sessionmaker(engine)() as s:
        call, partner, company = await open_call(s), await make_partner(s), await make_company(s)
        ids = {"call": call.id, "partner": partner.id, "company": company.id}
        await s.commit()
    return ids


async def test_decree_number_with_nul_is_422_and_no_decree_is_stored(
    evaluation_client, session, officer, intake, seeded
):
    number = f"DDS-{uuid.uuid4().hex[:8]}"
    r = await evaluation_client.post(
        "/v1/decrees",
        headers=officer,
        json={"call_id": str(seeded["call"]), "number": number + "\u0000", "decree_date": "2026-12-15"},
    )
    refused(r, "/number")
    assert await count(session, "SELECT count(*) FROM evaluation.decrees WHERE call_id = :c", c=seeded["call"]) == 0


async def test_conflict_declaration_with_nul_is_422_and_nothing_is_declared(evaluation_client, session, intake, seeded):
    app = await received_application(
        session, call_id=seeded["call"], company_id=seeded["company"], partner_id=seeded["partner"]
    )
    await evaluation_of(session, app)
    _, manager = await reviewer(session)
    ada, ada_headers = await reviewer(session)
    r = await evaluation_client.post(
        f"/v1/evaluations/{app.application_id}/assignments", json={"reviewer": ada}, headers=manager
    )
    assert r.status_code == 201, r.text
    a = r.json()
    r = await evaluation_client.post(
        f"/v1/assignments/{a['id']}/declaration",
        json={"no_conflict": False, "statement": "Consulente\u0000 dell'impresa."},
        headers={**ada_headers, "If-Match": a["etag"]},
    )
    refused(r, "/statement")
    assert await count(session, "SELECT count(*) FROM evaluation.conflict_declarations WHERE reviewer = :r", r=ada) == 0
    r = await evaluation_client.get(f"/v1/assignments/{a['id']}", headers=ada_headers)
    assert r.status_code == 200 and r.json()["status"] != "cancelled", r.text
