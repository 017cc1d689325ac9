"""A click-day submit whose body streams past the size limit (chunked: no Content-Length to refuse it up front)
is 413 payload-too-large on the fast path, as on the FastAPI route, and the draft stays a draft. The fast path
read the body for the idempotency digest and answered the guard's 413 as a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from shared.db import make_sessionmaker
from tests.conftest import make_token
from tests.factories import delegate, draft_body, make_company, make_partner, open_call

LIMIT = 1_048_576  # DeskSettings.max_body_bytes


async def chunks() -> AsyncIterator[bytes]:
    for _ in range(LIMIT // 65_536 + 2):  # 64 KiB at a time, past the limit
        yield b" " * 65_536


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
async def test_chunked_submit_body_over_the_limit_is_413_on_the_fast_path(
    committing_client, engine, content_type: str
) -> None:
    app: Any = committing_client._transport.app  # type: ignore[attr-defined]
    assert app.state.submit_pool is not None  # the click-day path answers this submit, not the FastAPI route
    async with make_sessionmaker(engine)() as s:
        call, partner, company = await open_call(s), await make_partner(s), await make_company(s)
        await delegate(s, partner, company)
        headers = await make_token(s, "partner", partner_id=partner.id)
        await s.commit()
    r = await committing_client.post("/v1/applications", json=draft_body(call.id, company.id), headers=headers)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]

    r = await committing_client.post(
        f"/v1/applications/{app_id}/submit",
        content=chunks(),
        headers={**headers, "Content-Type": content_type, "Idempotency-Key": f"big-{uuid.uuid4()}"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["type"] == "/problems/payload-too-large"
    async with engine.connect() as conn:
        status = (
            await conn.execute(text("SELECT status FROM intake.applications WHERE id = :i"), {"i": app_id})
        ).scalar_one()
    assert status == "draft"
