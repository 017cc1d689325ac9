"""Test fixtures: one migrated database per run, one rolled-back transaction per test.

The database is `TEST_DATABASE_URL` when set (CI points it at the PostgreSQL on 127.0.0.1:5432),
otherwise an embedded pgserver under `.desk/test/`. A fresh database is created and migrated
with Alembic once per run. API tests go through HTTP (httpx + ASGITransport) into the real app,
whose sessions join the test's outer transaction as savepoints; tests that need real commits
(concurrency) use `committing_client` and isolate themselves with unique data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake.applications.fastpath import CommitBatcher
from services.intake.fairness import FairGate
from shared.auth import KeyRing, PrincipalKind, create_client, issue_token, use_secret_hasher
from shared.db import create_engine, make_sessionmaker, plain_url
from shared.settings import REPO_ROOT, EvaluationSettings, IntakeSettings, MonitoringSettings
from tests.problem_conformance import RECORDER, record_problems

KEYRING = KeyRing.generate()
# argon2id at its smallest cost (one pass over 8 KiB): a test client's secret hashes and verifies in well
# under a millisecond instead of a fifth of a second. tests/shared/test_foundation.py checks the production
# parameters on their own.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def cheap_secret_hashes() -> Iterator[None]:
    previous = use_secret_hasher(CHEAP_HASHER)
    yield
    use_secret_hasher(previous)


EMBEDDED_TEST_DIR = REPO_ROOT / ".desk" / "test"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The PostgreSQL the tests create their databases on: TEST_DATABASE_URL's (CI), or the embedded one, which
    the run stops at its end if it started it (`python3 dev.py test` leaves nothing running)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from shared.embedded import embedded_for_run

    with embedded_for_run(EMBEDDED_TEST_DIR) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    server = server_url
    name = f"desk_test_{os.getpid()}"

    async def recreate() -> None:
        conn = await asyncpg.connect(plain_url(server))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(plain_url(server))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=20, max_overflow=20)
    yield eng
    await eng.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as c:
        trans = await c.begin()
        yield c
        await trans.rollback()


# Where a test's settings send peer calls and internal deliveries unless the test names a peer it started: a
# port nothing listens on, never the default ports a desk running beside the suite (`dev.py up`) serves.
NO_PEER = "http://127.0.0.1:1"


def _settings(cls: type, **kw: Any) -> Any:
    peers = {"intake_url": NO_PEER, "evaluation_url": NO_PEER, "monitoring_url": NO_PEER}
    return cls(
        environment="test",
        access_log=False,
        log_level="WARNING",
        database_url="postgresql://unused/x",
        **{**peers, **kw},
    )


def _build(service: str) -> Any:
    """A service's app, recording the problems it answers (`problems_conform` checks them)."""
    if service == "intake":
        from services.intake.app import build_app

        app = build_app(_settings(IntakeSettings))
    elif service == "evaluation":
        from services.evaluation.app import build_app as b

        app = b(_settings(EvaluationSettings))
    else:
        from services.monitoring.app import build_app as m

        app = m(_settings(MonitoringSettings))
    record_problems(app)
    return app


@pytest.fixture(autouse=True)
def problems_conform() -> Iterator[None]:
    """Every problem an app answers during the test is one its operation declares (`x-problem-types`): the
    derived error responses (shared/openapi_problems.py) leave nothing out."""
    RECORDER.clear()
    yield
    undeclared = RECORDER.undeclared()
    RECORDER.clear()
    assert not undeclared, "problem types answered but not declared:\n" + "\n".join(undeclared)


_APPS: dict[str, Any] = {}


def app_for(service: str) -> Any:
    if service not in _APPS:
        app = _build(service)
        app.state.keyring = KEYRING
        _APPS[service] = app
    return _APPS[service]


@pytest_asyncio.fixture(loop_scope="session")
async def intake_app(conn: AsyncConnection, engine: AsyncEngine) -> Any:
    app = app_for("intake")
    app.state.sessionmaker = make_sessionmaker(conn, join_transaction_mode="create_savepoint")
    app.state.autocommit_sessionmaker = None  # every statement stays inside the test's transaction
    app.state.engine = engine
    return app


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk.test")


@pytest_asyncio.fixture(loop_scope="session")
async def client(intake_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(intake_app) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def committing_client(engine: AsyncEngine, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests really commit (for concurrency tests); isolate with unique data.

    Submits take the click-day path here (services.intake.applications.fastpath, on its own pool), while
    the rolled-back `client` takes the FastAPI route: both run the same service function."""
    app = _build("intake")
    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.autocommit_sessionmaker = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
    app.state.engine = engine
    app.state.submit_pool = await asyncpg.create_pool(plain_url(database_url), min_size=1, max_size=10)
    app.state.submit_gate = FairGate(10)
    app.state.submit_batcher = CommitBatcher(app.state.submit_pool, app.state.submit_gate)
    app.state.flush_pool = await asyncpg.create_pool(plain_url(database_url), min_size=1, max_size=1)
    try:
        async with _client(app) as c:
            yield c
    finally:
        await app.state.submit_pool.close()
        await app.state.flush_pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def session(conn: AsyncConnection) -> AsyncIterator[Any]:
    """A session inside the test's transaction, for arranging data the API has no route for."""
    sm = make_sessionmaker(conn, join_transaction_mode="create_savepoint")
    async with sm() as s:
        yield s


TokenFactory = Callable[..., Awaitable[dict[str, str]]]


async def make_token(
    sm_session: Any,
    kind: PrincipalKind,
    *,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    scopes: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """Register a client (argon2-hashed secret, cheaply: `cheap_secret_hashes`) and return auth headers for it."""
    client, _secret = await create_client(
        sm_session,
        kind=kind,
        name=f"test {kind}",
        partner_id=partner_id,
        company_id=company_id,
        scopes=scopes,
        secret="s" * 32,
    )
    token = issue_token(KEYRING, client=client, scopes=list(client.scopes), issuer="regional-desk", ttl=900)
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(loop_scope="session")
async def officer(session: Any) -> dict[str, str]:
    return await make_token(session, "officer")


@pytest_asyncio.fixture(loop_scope="session")
async def second_officer(session: Any) -> dict[str, str]:
    """Another officer: confirms the money decisions `officer` proposes (four-eyes)."""
    return await make_token(session, "officer")


@pytest_asyncio.fixture(loop_scope="session")
async def auditor(session: Any) -> dict[str, str]:
    return await make_token(session, "auditor")


@pytest.fixture
def token_factory(session: Any) -> TokenFactory:
    async def factory(kind: PrincipalKind, **kw: Any) -> dict[str, str]:
        return await make_token(session, kind, **kw)

    return factory


CALL_FILE = REPO_ROOT / "calls" / "verso-nuovi-mercati-2025.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # every async test shares the session loop (engine and pool live there)
    for item in items:
        if isinstance(item, pytest.Function) and asyncio.iscoroutinefunction(item.function):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"))


@pytest_asyncio.fixture(loop_scope="session")
async def evaluation_app(conn: AsyncConnection, engine: AsyncEngine) -> Any:
    """The evaluation app inside the test's transaction, like `intake_app`. No lifespan runs under
    ASGITransport: a test that needs intake sets `app.state.intake_client` itself (and resets it)."""
    app = app_for("evaluation")
    app.state.sessionmaker = make_sessionmaker(conn, join_transaction_mode="create_savepoint")
    app.state.engine = engine
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def evaluation_client(evaluation_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(evaluation_app) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def evaluation_committing_app(engine: AsyncEngine) -> Any:
    """An evaluation app whose requests really commit (concurrency tests); isolate with unique data. Its
    `state.intake_client` is None: the test sets one (e.g. builders.FakeIntake)."""
    app = _build("evaluation")
    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.engine = engine
    app.state.intake_client = None
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def evaluation_committing_client(evaluation_committing_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(evaluation_committing_app) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def monitoring_app(conn: AsyncConnection, engine: AsyncEngine) -> Any:
    """The monitoring app inside the test's transaction, like `intake_app`. No lifespan runs under
    ASGITransport: a test that needs a peer sets `app.state.intake_client` / `evaluation_client` (and resets it)."""
    app = app_for("monitoring")
    app.state.sessionmaker = make_sessionmaker(conn, join_transaction_mode="create_savepoint")
    app.state.engine = engine
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def monitoring_client(monitoring_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(monitoring_app) as c:
        yield c


QUICK_RETRIES = {
    "retries": 1,
    "backoff_base": 0.01,
    "backoff_max": 0.02,
    "breaker_threshold": 20,
    "breaker_cooldown": 0.1,
}


def serve_committing(app: Any, engine: AsyncEngine) -> Any:
    """A desk app bound to the real (committing) engine, ready to be served by uvicorn on loopback."""
    from tests.loopback import LoopbackServer

    app.state.keyring = KEYRING
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.engine = engine
    return LoopbackServer(app)


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def intake_server(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The real intake app, committing, on 127.0.0.1: the peer other services' tests read through their clients."""
    server = serve_committing(_build("intake"), engine)
    await server.start()
    yield server
    await server.stop()
