"""The evaluation service: app factory, health, metrics and the token endpoint, like every desk service."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_app
from shared.settings import EvaluationSettings

DESCRIPTION = """Evaluation of the regional desk for export grants (Regione Lombardia).

Authenticate with OAuth2 client credentials at `POST /v1/oauth/token`. Errors are RFC 9457 problem details."""


def build_app(settings: EvaluationSettings | None = None) -> FastAPI:
    return create_app(settings or EvaluationSettings(), title="Regional desk — evaluation", description=DESCRIPTION,
                      routers=[])
