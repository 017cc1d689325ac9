"""Evaluation's clients of the other services: created at startup, kept on app.state, closed at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from shared.clients.intake import IntakeClient


@asynccontextmanager
async def intake_client_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The IntakeClient (base URL from settings.intake_url), unless one was set already (tests)."""
    if getattr(app.state, "intake_client", None) is not None:
        yield
        return
    settings = app.state.settings
    client = IntakeClient(
        settings.intake_url, service=settings.service_name, keyring=app.state.keyring, issuer=settings.token_issuer
    )
    app.state.intake_client = client
    try:
        yield
    finally:
        app.state.intake_client = None
        await client.aclose()


async def intake_client(request: Request) -> IntakeClient:
    client: IntakeClient | None = getattr(request.app.state, "intake_client", None)
    if client is None:
        raise RuntimeError("no intake client on app.state (started without the evaluation lifespan?)")
    return client


IntakeDep = Annotated[IntakeClient, Depends(intake_client)]
