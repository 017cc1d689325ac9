"""The monitoring service: the inbox of the other services' events, projects, payments; on the desk's common app
shape (health, metrics, token endpoint, problems)."""

from __future__ import annotations

from fastapi import FastAPI

from services.monitoring.claims.endpoints import EVIDENCE_PATH, MULTIPART_OVERHEAD, evidence_router
from services.monitoring.claims.endpoints import projects_router as project_claims_router
from services.monitoring.claims.endpoints import router as claims_router
from services.monitoring.inbox.endpoints import internal_router
from services.monitoring.payments.endpoints import project_payments_router
from services.monitoring.payments.endpoints import router as payments_router
from services.monitoring.peers import evaluation_client_lifespan, intake_client_lifespan
from services.monitoring.projects.endpoints import router as projects_router
from services.monitoring.queues.endpoints import router as queues_router
from services.monitoring.results.endpoints import internal_router as reminders_router
from services.monitoring.results.endpoints import router as results_router
from services.monitoring.results.worker import reminders_lifespan
from services.monitoring.stats.endpoints import open_data_router, public_router
from services.monitoring.stats.endpoints import router as stats_router
from shared.app import create_app
from shared.settings import MonitoringSettings

DESCRIPTION = """Monitoring of the regional desk for export grants (Regione Lombardia).

Authenticate with OAuth2 client credentials at `POST /v1/oauth/token`. Errors are RFC 9457 problem details."""


def build_app(settings: MonitoringSettings | None = None) -> FastAPI:
    settings = settings or MonitoringSettings()
    app = create_app(
        settings,
        title="Regional desk — monitoring",
        description=DESCRIPTION,
        routers=[
            internal_router,
            projects_router,
            project_payments_router,
            payments_router,
            project_claims_router,
            claims_router,
            evidence_router,
            queues_router,
            results_router,
            reminders_router,
            stats_router,
            public_router,
            open_data_router,
        ],
        lifespans=[intake_client_lifespan, evaluation_client_lifespan, reminders_lifespan],
        body_limits=[(EVIDENCE_PATH, settings.evidence_max_bytes + MULTIPART_OVERHEAD)],
    )
    app.state.intake_client = None
    app.state.evaluation_client = None
    return app
