"""What the end-to-end tests run: the desk's services on loopback ports over committed data, a partner's
webhook receiver whose behaviour a test scripts (down, slow, failing, blocking), and the delivery worker.

Everything here commits to the test database (real HTTP, real processes), so each test isolates itself with
its own partner, company and call, and `settle_deliveries` first retires what earlier tests left pending.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.evaluation.app import build_app as build_evaluation
from services.intake.app import build_app as build_intake
from shared.clients.intake import IntakeClient
from shared.db import make_sessionmaker
from shared.events.worker import DeliveryWorker, publish_pending
from shared.settings import DeskSettings, EvaluationSettings, IntakeSettings
from tests.conftest import KEYRING, NO_PEER, make_token
from tests.factories import declare_stamp_duty, delegate, draft_body, make_company, make_partner, open_call, vat_number
from tests.loopback import LoopbackServer, free_port

T = TypeVar("T")
QUIET: dict[str, Any] = {
    "environment": "test",
    "access_log": False,
    "log_level": "WARNING",
    "database_url": "postgresql://unused/x",
    **{f"{peer}_url": NO_PEER for peer in ("intake", "evaluation", "monitoring")},
}


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what} (last: {got!r})")
        await asyncio.sleep(every)


# ---------------------------------------------------------------- the services


def intake_server(engine: AsyncEngine) -> LoopbackServer:
    app = build_intake(IntakeSettings(**QUIET))
    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.autocommit_sessionmaker = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
    app.state.engine = engine
    return LoopbackServer(app)


def evaluation_server(engine: AsyncEngine, intake_url: str) -> tuple[LoopbackServer, IntakeClient]:
    """Evaluation committing, its intake client pointed at the loopback intake. Not started: the test does."""
    app = build_evaluation(EvaluationSettings(**QUIET))
    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.engine = engine
    client = IntakeClient(
        intake_url,
        service="evaluation",
        keyring=KEYRING,
        issuer="regional-desk",
        retries=1,
        backoff_base=0.01,
        backoff_max=0.02,
        breaker_threshold=50,
        breaker_cooldown=0.1,
    )
    app.state.intake_client = client
    return LoopbackServer(app), client


def dead_url() -> str:
    """An address nobody listens on (a free port, not bound)."""
    return f"http://127.0.0.1:{free_port()}"


def worker_settings(**kw: Any) -> DeskSettings:
    """Quick back-off so a test sees several attempts within a second or two."""
    values: dict[str, Any] = {
        **QUIET,
        "webhook_backoff_base_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.5,
        "worker_poll_seconds": 0.05,
        "webhook_timeout_seconds": 3.0,
        "webhook_max_attempts": 50,
        # peers a test did not start are addresses nobody listens on, never the default ports of a desk
        # running beside the suite (`dev.py up`), which would be sent the test's events
        "intake_url": dead_url(),
        "evaluation_url": dead_url(),
        "monitoring_url": dead_url(),
    }
    values.update(kw)
    return DeskSettings(**values)


@asynccontextmanager
async def running_worker(engine: AsyncEngine, settings: DeskSettings) -> AsyncIterator[DeliveryWorker]:
    """DeliveryWorker.run in a background task of the test's loop, stopped (gracefully) at the end."""
    worker = DeliveryWorker(engine, KEYRING, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def settle_deliveries(engine: AsyncEngine) -> None:
    """Retire what earlier tests left: publish their events and dead-letter every pending delivery, so this
    test's worker sends only this test's events."""
    async with engine.begin() as conn:
        while await publish_pending(conn):
            pass
        await conn.execute(
            text(
                "UPDATE desk.deliveries SET status = 'dead', last_error = 'retired by a test' WHERE status = 'pending'"
            )
        )


# ---------------------------------------------------------------- a partner's receiver


@dataclass
class Hit:
    body: str
    headers: dict[str, str]
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """A partner's webhook endpoint on loopback. `behave(n)` (n = 1 for the first request) scripts each answer:
    a status code, optionally after sleeping or after waiting for `release`."""

    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 500
    sleep_first: int = 0
    sleep_seconds: float = 0.0
    block_first: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        self.hits.append(Hit((await request.body()).decode(), dict(request.headers), time.monotonic()))
        n = len(self.hits)
        self.arrived.set()
        if n <= self.block_first:
            try:
                await asyncio.wait_for(self.release.wait(), timeout=30)
            except TimeoutError:
                pass
        if n <= self.sleep_first:
            await asyncio.sleep(self.sleep_seconds)
        if n <= self.fail_first:
            return Response("temporarily broken", status_code=self.fail_status)
        return Response(status_code=204)

    async def start(self) -> None:
        if self.server is None:
            self.server = LoopbackServer(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]), self.port)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None and self.server.running:
            self.release.set()
            await self.server.stop()

    def unique_ids(self) -> list[str]:
        """Webhook ids in order of first arrival: what a receiver deduplicating on webhook-id keeps."""
        return list(dict.fromkeys(h.webhook_id for h in self.hits))


# ---------------------------------------------------------------- committed data


@dataclass(frozen=True)
class Applicant:
    call_id: uuid.UUID
    partner_id: uuid.UUID
    company_ids: tuple[uuid.UUID, ...]
    headers: dict[str, str]
    officer: dict[str, str]


async def applicant(engine: AsyncEngine, companies: int = 1) -> Applicant:
    """An open call, a partner with delegated companies (one application each per call), tokens (committed)."""
    async with make_sessionmaker(engine)() as s:
        call = await open_call(s)
        partner = await make_partner(s)
        ids = []
        for _ in range(companies):
            company = await make_company(s)
            await delegate(s, partner, company)
            ids.append(company.id)
        headers = await make_token(s, "partner", partner_id=partner.id)
        officer = await make_token(s, "officer")
        await s.commit()
    return Applicant(call.id, partner.id, tuple(ids), headers, officer)


async def subscribe(http: httpx.AsyncClient, who: Applicant, url: str, types: list[str]) -> dict[str, Any]:
    r = await http.post("/v1/webhooks", json={"url": url, "event_types": types}, headers=who.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def submit_new(http: httpx.AsyncClient, who: Applicant, company: int = 0) -> str:
    body = draft_body(who.call_id, who.company_ids[company])
    r = await http.post("/v1/applications", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    app_id = str(r.json()["id"])
    await declare_stamp_duty(http, app_id, who.headers)
    r = await http.post(f"/v1/applications/{app_id}/submit", headers=who.headers)
    assert r.status_code == 201, r.text
    return app_id


async def withdraw(http: httpx.AsyncClient, who: Applicant, app_id: str) -> None:
    r = await http.post(f"/v1/applications/{app_id}/withdraw", json={"reason": "Rinviato"}, headers=who.headers)
    assert r.status_code == 200, r.text


async def deliveries_of(engine: AsyncEngine, subscription_id: str) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT d.id, d.status, d.attempts, d.last_status_code, d.last_error, o.event_id, o.event_type,"
                        " o.aggregate_id FROM desk.deliveries d JOIN desk.outbox o ON o.id = d.event_id"
                        " WHERE d.subscription_id = :s ORDER BY d.id"
                    ),
                    {"s": uuid.UUID(subscription_id)},
                )
            ).all()
        )


async def attempts_of(engine: AsyncEngine, delivery_id: int) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT attempt, status_code, latency_ms, error FROM desk.delivery_attempts WHERE "
                        "delivery_id = :d"
                        " ORDER BY attempt, id"
                    ),
                    {"d": delivery_id},
                )
            ).all()
        )


def company_body() -> dict[str, Any]:
    """A company as a partner registers it through the API (a valid, random VAT number)."""
    vat = vat_number()
    return {
        "vat_number": vat,
        "fiscal_code": vat,
        "name": "Officine Brianza S.r.l.",
        "legal_form": "srl",
        "ateco_code": "28.29.30",
        "registered_office": {
            "address": "Via Manzoni 3",
            "municipality": "Monza",
            "postal_code": "20900",
            "province": "MB",
        },
        "operating_sites": [],
        "lombardy_site_commitment": False,
        "incorporation_date": "2014-06-01",
        "approved_financial_statements": 5,
        "headcount_awu": "25.00",
        "turnover": "5000000.00",
        "balance_sheet_total": "4000000.00",
        "previous_year_export_sales": "1000000.00",
        "related_enterprises": [],
        "export_history": [
            {"year": date.today().year - 1, "country": "DE", "amount": "600000.00"},
            {"year": date.today().year - 1, "country": "FR", "amount": "400000.00"},
        ],
    }
