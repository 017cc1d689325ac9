"""Monitoring's peers for tests: the real intake and evaluation apps, committing, served by uvicorn on loopback
ports, and monitoring's clients of them set on the monitoring app (reset afterwards). Append yours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from services.evaluation.app import build_app as build_evaluation
from shared.clients.evaluation import EvaluationClient
from shared.clients.intake import IntakeClient
from shared.settings import EvaluationSettings
from tests.conftest import KEYRING, QUICK_RETRIES, serve_committing
from tests.loopback import LoopbackServer

_QUICK = QUICK_RETRIES


def _settings(cls: type) -> Any:
    return cls(environment="test", access_log=False, log_level="WARNING", database_url="postgresql://unused/x")


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def evaluation_server(engine: AsyncEngine, intake_server: LoopbackServer) -> AsyncIterator[LoopbackServer]:
    """The real evaluation app, committing, on 127.0.0.1, reading intake on its loopback port."""
    app = build_evaluation(_settings(EvaluationSettings))
    server = serve_committing(app, engine)
    client = IntakeClient(intake_server.url, service="evaluation", keyring=KEYRING, issuer="regional-desk", **_QUICK)
    app.state.intake_client = client
    await server.start()
    yield server
    await server.stop()
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def intake(monitoring_app: Any, intake_server: LoopbackServer) -> AsyncIterator[IntakeClient]:
    """Monitoring's IntakeClient pointed at the loopback intake."""
    client = IntakeClient(intake_server.url, service="monitoring", keyring=KEYRING, issuer="regional-desk", **_QUICK)
    monitoring_app.state.intake_client = client
    yield client
    monitoring_app.state.intake_client = None
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def evaluation(monitoring_app: Any, evaluation_server: LoopbackServer) -> AsyncIterator[EvaluationClient]:
    """Monitoring's EvaluationClient pointed at the loopback evaluation."""
    client = EvaluationClient(
        evaluation_server.url, service="monitoring", keyring=KEYRING, issuer="regional-desk", **_QUICK
    )
    monitoring_app.state.evaluation_client = client
    yield client
    monitoring_app.state.evaluation_client = None
    await client.aclose()
