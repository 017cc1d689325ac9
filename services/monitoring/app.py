"""The monitoring service: app factory, health, metrics and the token endpoint, like every desk service."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_app
from shared.settings import MonitoringSettings

DESCRIPTION = """Monitoring of the regional desk for export grants (Regione Lombardia).

Authenticate with OAuth2 client credentials at `POST /v1/oauth/token`. Errors are RFC 9457 problem details."""


def build_app(settings: MonitoringSettings | None = None) -> FastAPI:
    return create_app(settings or MonitoringSettings(), title="Regional desk — monitoring", description=DESCRIPTION,
                      routers=[])
