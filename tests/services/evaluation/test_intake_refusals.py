"""What evaluation answers when intake refuses an identifier the caller gave, and when intake is really down:
a refusal is reported as what it is (422 on the caller's field, 404 for a call intake does not know), never as
503 "intake does not answer"; 503 stays for a peer that is unreachable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from shared.clients.intake import IntakeClient
from tests.conftest import KEYRING, QUICK_RETRIES
from tests.factories import vat_number


async def test_a_vat_number_intake_refuses_is_422_on_the_path_parameter(evaluation_client, intake, officer):
    r = await evaluation_client.get(
        f"/v1/de-minimis/undertakings/{'1' * 20}", headers={**officer, "Accept-Language": "en"}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["type"] == "/problems/validation-error"
    assert [(e["code"], e["path"], e["location"]) for e in body["errors"]] == [
        ("string_too_long", "/vat_number", "path")
    ]
    assert body["errors"][0]["message"] == (
        "Company 11111111111111111111: invalid identifier (refused by intake, HTTP 422)."
    )
    assert body["peer_status"] == 422


async def test_a_call_intake_does_not_know_is_404(evaluation_client, intake, officer):
    r = await evaluation_client.get(
        f"/v1/de-minimis/undertakings/{vat_number()}", params={"call_id": str(uuid.uuid4())}, headers=officer
    )
    assert r.status_code == 404, r.text
    assert r.json()["type"] == "/problems/not-found"


@pytest_asyncio.fixture(loop_scope="session")
async def intake_down(evaluation_app: Any) -> AsyncIterator[IntakeClient]:
    """Evaluation's IntakeClient pointed at a loopback port nobody listens on."""
    client = IntakeClient(
        "http://127.0.0.1:9", service="evaluation", keyring=KEYRING, issuer="regional-desk", **QUICK_RETRIES
    )
    evaluation_app.state.intake_client = client
    yield client
    evaluation_app.state.intake_client = None
    await client.aclose()


async def test_intake_unreachable_is_still_503(evaluation_client, intake_down, officer):
    r = await evaluation_client.get(f"/v1/de-minimis/undertakings/{vat_number()}", headers=officer)
    assert r.status_code == 503, r.text
    assert r.json()["type"] == "/problems/peer-unavailable"
    assert r.json()["detail"] == "Il servizio intake non risponde: riprovare più tardi."
    assert r.headers["retry-after"] == "30"
