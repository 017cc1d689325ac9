"""The submit route's unit of work: its only write is one statement that is its own transaction
(`intake.commit_submission`), so its session runs in autocommit and holds no lock across a round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.db import make_sessionmaker
from shared.routing import UnitOfWorkRoute


class AutocommitRoute(UnitOfWorkRoute):
    """A route whose reads take no locks and whose one write commits inside the server. Falls back to the
    ordinary session when the app has no autocommit sessionmaker (tests bound to one transaction)."""

    sessionmaker_attr = "autocommit_sessionmaker"


@asynccontextmanager
async def autocommit_sessions(app: FastAPI) -> AsyncIterator[None]:
    """An autocommit sessionmaker on the app's engine, unless the tests gave one (or none) themselves."""
    engine = getattr(app.state, "engine", None)
    if engine is not None and not hasattr(app.state, "autocommit_sessionmaker"):
        app.state.autocommit_sessionmaker = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
    yield
