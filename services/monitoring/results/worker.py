"""The daily reminders loop: started by the monitoring app's lifespan, it runs `send_due_reminders` for today
(Europe/Rome) at start-up and then every `reminders_interval_seconds` (setting
`MONITORING_REMINDERS_INTERVAL_SECONDS`, default one day; 0 turns it off; always off when the environment is
`test`). Each run is one transaction. Several replicas may run it at once: the reminders table's unique index lets
only one of them send each reminder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from services.monitoring.results.service import send_due_reminders, today_in_rome

log = structlog.get_logger("monitoring.reminders")


async def run_once(app: FastAPI) -> int:
    async with app.state.sessionmaker() as session:
        sent = await send_due_reminders(session, today_in_rome())
        await session.commit()
    return len(sent)


async def _loop(app: FastAPI, interval: float) -> None:
    while True:
        try:
            sent = await run_once(app)
            if sent:
                log.info("reminders sent", count=sent)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed run is retried at the next tick: the loop survives
            log.exception("reminders run failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def reminders_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    interval = float(getattr(settings, "reminders_interval_seconds", 0) or 0)
    if interval <= 0 or settings.environment == "test":
        yield
        return
    task = asyncio.create_task(_loop(app, interval), name="monitoring-reminders")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
