"""Evaluation's peer for tests: its IntakeClient pointed at the real intake app on loopback (tests/conftest.py's
`intake_server`). Modules that need no intake define their own `intake` fixture instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from shared.clients.intake import IntakeClient
from tests.conftest import KEYRING, QUICK_RETRIES


@pytest_asyncio.fixture(loop_scope="session")
async def intake(evaluation_app: Any, intake_server: Any) -> AsyncIterator[IntakeClient]:
    """Evaluation's IntakeClient pointed at the loopback intake (quick retries for tests)."""
    client = IntakeClient(
        intake_server.url, service="evaluation", keyring=KEYRING, issuer="regional-desk", **QUICK_RETRIES
    )
    evaluation_app.state.intake_client = client
    yield client
    evaluation_app.state.intake_client = None
    await client.aclose()
