"""The evaluation service: the inbox of intake's events and the applications received, on the desk's
common app shape (health, metrics, token endpoint, problems)."""

from __future__ import annotations

from fastapi import FastAPI

from services.evaluation.admissibility.endpoints import calls_router as evaluation_calls_router
from services.evaluation.admissibility.endpoints import router as evaluations_router
from services.evaluation.budget.endpoints import fundings_router, public_router
from services.evaluation.budget.endpoints import router as budget_router
from services.evaluation.decisions.endpoints import decisions_router, decrees_router
from services.evaluation.deminimis.endpoints import router as de_minimis_router
from services.evaluation.inbox.endpoints import internal_router
from services.evaluation.inbox.endpoints import router as applications_router
from services.evaluation.merit.endpoints import router as merit_router
from services.evaluation.peers import intake_client_lifespan
from services.evaluation.queues.endpoints import router as queues_router
from shared.app import create_app
from shared.settings import EvaluationSettings

DESCRIPTION = """Evaluation of the regional desk for export grants (Regione Lombardia).

Authenticate with OAuth2 client credentials at `POST /v1/oauth/token`. Errors are RFC 9457 problem details."""


def build_app(settings: EvaluationSettings | None = None) -> FastAPI:
    app = create_app(
        settings or EvaluationSettings(),
        title="Regional desk — evaluation",
        description=DESCRIPTION,
        routers=[
            applications_router,
            internal_router,
            merit_router,
            evaluations_router,
            evaluation_calls_router,
            de_minimis_router,
            budget_router,
            fundings_router,
            public_router,
            decrees_router,
            decisions_router,
            queues_router,
        ],
        lifespans=[intake_client_lifespan],
    )
    app.state.intake_client = None
    return app
