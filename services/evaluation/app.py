"""The evaluation service: the inbox of intake's events and the applications received, on the desk's
common app shape (health, metrics, token endpoint, problems)."""

from __future__ import annotations

from fastapi import FastAPI

from services.evaluation.inbox.endpoints import internal_router
from services.evaluation.inbox.endpoints import router as applications_router
from services.evaluation.peers import intake_client_lifespan
from shared.app import create_app
from shared.settings import EvaluationSettings

DESCRIPTION = """Evaluation of the regional desk for export grants (Regione Lombardia).

Authenticate with OAuth2 client credentials at `POST /v1/oauth/token`. Errors are RFC 9457 problem details."""


def build_app(settings: EvaluationSettings | None = None) -> FastAPI:
    app = create_app(settings or EvaluationSettings(), title="Regional desk — evaluation", description=DESCRIPTION,
                     routers=[applications_router, internal_router], lifespans=[intake_client_lifespan])
    app.state.intake_client = None
    return app
