"""The intake service: calls, companies, partners and delegations, applications, trainings, expert
accompaniment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.intake.accompaniment.endpoints import router as accompaniment_router
from services.intake.applications.autocommit import autocommit_sessions
from services.intake.applications.endpoints import internal_router as snapshots_router
from services.intake.applications.endpoints import router as applications_router
from services.intake.applications.endpoints import submit_router
from services.intake.applications.fastpath import CommitBatcher, SubmitFastPath
from services.intake.calls.endpoints import router as calls_router
from services.intake.clients.endpoints import router as clients_router
from services.intake.companies.endpoints import delegations_router
from services.intake.companies.endpoints import router as companies_router
from services.intake.fairness import FairGate
from services.intake.networking.endpoints import router as networking_router
from services.intake.partners.endpoints import router as partners_router
from services.intake.trainings.endpoints import router as trainings_router
from services.intake.webhooks.endpoints import events_router
from services.intake.webhooks.endpoints import router as webhooks_router
from services.intake.webhooks.openapi import document_event_webhooks
from shared.app import create_app, resolve_database_url
from shared.db import plain_url
from shared.settings import IntakeSettings

DESCRIPTION = """Intake of the regional desk for export grants (Regione Lombardia).

Partners (chambers of commerce, trade associations, agencies) and companies register companies,
prepare applications to a call, pre-check them and submit them; officers publish calls.
Authenticate with OAuth2 client credentials at `POST /v1/oauth/token`. Errors are RFC 9457
problem details; state-changing POSTs honour `Idempotency-Key`; changes to mutable resources
need `If-Match` with the resource's `ETag`. Events reach partners as signed webhooks
(`/v1/webhooks`, catalogue under `webhooks` below and at `GET /v1/events/types`) or by polling
`GET /v1/events`. API clients are managed at `/v1/clients` (secrets shown once, rotation with an
overlap, revocation): a revoked client's tokens already issued are refused by every service within
`DESK_REVOCATION_REFRESH_SECONDS` (5 seconds by default)."""


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """The submit path leaves no session state (autocommit statements only: no SET, LISTEN, cursor or
    advisory lock), so a released connection needs no `RESET ALL` round trip."""


@asynccontextmanager
async def submit_pool(app: FastAPI) -> AsyncIterator[None]:
    """The click-day submit path's own asyncpg pool (autocommit: each submit commits in one statement)."""
    settings: IntakeSettings = app.state.settings
    if settings.submit_pool_size <= 0 or getattr(app.state, "engine", None) is None:
        yield
        return
    pool_kw: dict[str, Any] = {
        "server_settings": {"application_name": settings.service_name, "plan_cache_mode": "force_generic_plan"}
    }
    if not settings.db_statement_cache:
        pool_kw["statement_cache_size"] = 0
    app.state.submit_pool = await asyncpg.create_pool(
        # min_size 0: no background "floor" reconnects (and their error logs) while the database is down
        plain_url(resolve_database_url(settings)),
        min_size=0,
        max_size=settings.submit_pool_size,
        reset=_nothing_to_reset,
        **pool_kw,
    )
    app.state.submit_gate = FairGate(settings.submit_pool_size)
    app.state.submit_batcher = CommitBatcher(app.state.submit_pool, app.state.submit_gate)
    # One connection for the durability barrier that concurrent submits share (service.wait_durable).
    app.state.flush_pool = await asyncpg.create_pool(
        plain_url(resolve_database_url(settings)), min_size=0, max_size=1, reset=_nothing_to_reset, **pool_kw
    )
    try:
        yield
    finally:
        pool, app.state.submit_pool = app.state.submit_pool, None
        await pool.close()
        await app.state.flush_pool.close()


def build_app(settings: IntakeSettings | None = None) -> FastAPI:
    app = create_app(
        settings or IntakeSettings(),
        title="Regional desk — intake",
        description=DESCRIPTION,
        routers=[
            calls_router,
            applications_router,
            submit_router,
            snapshots_router,
            trainings_router,
            accompaniment_router,
            networking_router,
            partners_router,
            clients_router,
            companies_router,
            delegations_router,
            webhooks_router,
            events_router,
        ],
        lifespans=[autocommit_sessions, submit_pool],
        inner_middleware=[SubmitFastPath],
    )
    document_event_webhooks(app)  # the event catalogue as OpenAPI 3.1 `webhooks`
    return app
