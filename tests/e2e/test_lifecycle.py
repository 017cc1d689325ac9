"""A partner's whole journey through a client generated from our OpenAPI document, over real HTTP.

`openapi-python-client` (the generator partners use) builds a client from the committed openapi/intake.json
at test time; the test imports it and drives intake on a loopback port: an officer registers the partner and
its API client, the partner takes a token, registers a company, subscribes a webhook, prepares, checks and
submits an application. Then the delivery worker brings the signed event to the partner's receiver, where
Standard Webhooks verification passes with the subscription's secret, and to evaluation, which stores it.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from shared.db import make_sessionmaker
from shared.settings import REPO_ROOT
from tests.conftest import make_token
from tests.e2e.harness import (
    Receiver,
    company_body,
    evaluation_server,
    intake_server,
    running_worker,
    settle_deliveries,
    wait_for,
    worker_settings,
)
from tests.factories import draft_body, open_call, stamp_duty_body, vat_number

DOCUMENT = REPO_ROOT / "openapi" / "intake.json"
GENERATE_TIMEOUT = 120


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, imported under a name unique to the document's content."""
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator, "openapi-python-client is a dev dependency: pip install -e .[dev]"
    name = f"desk_intake_client_{hashlib.sha256(DOCUMENT.read_bytes()).hexdigest()[:12]}"
    root = tmp_path_factory.mktemp("generated")
    done = subprocess.run(
        [generator, "generate", "--path", str(DOCUMENT), "--output-path", str(root / name), "--meta", "none"],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def _api(pkg: ModuleType, path: str) -> Any:
    return importlib.import_module(f"{pkg.__name__}.{path}")


@pytest_asyncio.fixture(loop_scope="session")
async def desk(engine: AsyncEngine) -> AsyncIterator[dict[str, Any]]:
    """Intake and evaluation on loopback ports (committed data), a partner's receiver, the delivery worker."""
    await settle_deliveries(engine)
    intake = intake_server(engine)
    evaluation, intake_client = evaluation_server(engine, intake.url)
    receiver = Receiver()
    await intake.start()
    await evaluation.start()
    await receiver.start()
    try:
        async with running_worker(engine, worker_settings(evaluation_url=evaluation.url)):
            yield {"intake": intake, "evaluation": evaluation, "receiver": receiver}
    finally:
        await receiver.stop()
        await evaluation.stop()
        await intake.stop()
        await intake_client.aclose()


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.content)
    return response.parsed


async def test_a_partner_goes_from_token_to_a_verified_webhook_and_evaluation_receives_it(generated, desk, engine):
    pkg = generated
    models = importlib.import_module(f"{pkg.__name__}.models")
    base = desk["intake"].url
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        officer = await make_token(s, "officer")
        await s.commit()
    officer_client = pkg.AuthenticatedClient(base_url=base, token=officer["Authorization"].split()[1])

    # the officer registers the partner and issues its API client
    partner = _ok(
        await _api(pkg, "api.partners.partners_create_partner").asyncio_detailed(
            client=officer_client,
            body=models.PartnerCreate(
                name="Camera di Commercio di Bergamo",
                kind=models.PartnerCreateKind("chamber_of_commerce"),
                fiscal_code=vat_number(),
            ),
        ),
        201,
    )
    creds = _ok(
        await _api(pkg, "api.partners.partners_create_partner_client").asyncio_detailed(
            partner.id, client=officer_client, body=models.ClientCreate(name="CRM della Camera")
        ),
        201,
    )

    # the partner: token (form-encoded client credentials), company, webhook
    token = _ok(
        await _api(pkg, "api.oauth.oauth_token").asyncio_detailed(
            client=pkg.Client(base_url=base),
            body=models.BodyOauthToken(
                grant_type="client_credentials", client_id=creds.client_id, client_secret=creds.client_secret
            ),
        ),
        200,
    )
    assert token.token_type == "Bearer" and token.expires_in > 0
    partner_client = pkg.AuthenticatedClient(base_url=base, token=token.access_token)
    company = _ok(
        await _api(pkg, "api.companies.companies_create_company").asyncio_detailed(
            client=partner_client, body=models.CompanyIn.from_dict(company_body())
        ),
        201,
    )
    receiver: Receiver = desk["receiver"]
    hook = _ok(
        await _api(pkg, "api.webhooks.webhooks_create_webhook").asyncio_detailed(
            client=partner_client, body=models.WebhookCreate(url=receiver.url, event_types=["application.submitted"])
        ),
        201,
    )
    assert str(hook.secret).startswith("whsec_")

    # draft → check → submit
    draft = _ok(
        await _api(pkg, "api.applications.applications_create_application").asyncio_detailed(
            client=partner_client, body=models.ApplicationCreate.from_dict(draft_body(call.id, company.id))
        ),
        201,
    )
    _ok(
        await _api(pkg, "api.applications.applications_declare_stamp_duty").asyncio_detailed(
            draft.id, client=partner_client, body=models.StampDutyIn.from_dict(stamp_duty_body())
        ),
        200,
    )
    check = _ok(
        await _api(pkg, "api.applications.applications_check_application").asyncio_detailed(
            draft.id, client=partner_client
        ),
        200,
    )
    assert check.submittable is True, check.problems
    receipt = _ok(
        await _api(pkg, "api.applications.applications_submit_application").asyncio_detailed(
            draft.id, client=partner_client
        ),
        201,
    )
    assert receipt.receipt.application_id == draft.id and receipt.receipt.protocol_number == 1

    # the webhook arrives, signed with the secret returned at subscription
    await wait_for(lambda: _some(receiver.hits), within=20, what="the webhook at the partner's receiver")
    hit = receiver.hits[0]
    event = Webhook(hook.secret).verify(hit.body, hit.headers)
    assert event["type"] == "application.submitted" and event["subject"] == {
        "type": "application",
        "id": str(draft.id),
        "href": f"/v1/applications/{draft.id}",
    }
    assert event["data"]["protocol_number"] == 1 and hit.webhook_id == event["id"]
    assert orjson.loads(hit.body)["data"]["company_id"] == str(company.id)

    # ... and reached evaluation, which fetched the application from intake and stored it
    async with httpx.AsyncClient(base_url=desk["evaluation"].url, trust_env=False, timeout=10) as ev:

        async def received() -> Any:
            r = await ev.get(f"/v1/applications/{draft.id}", headers=officer)
            return r.json() if r.status_code == 200 else None

        got = await wait_for(received, within=20, what="the application at evaluation")
    assert got["status"] == "received" and got["protocol_number"] == 1 and got["call_id"] == str(call.id)
    assert got["snapshot"]["status"] == "submitted"


async def _some(items: list[Any]) -> bool:
    return bool(items)
