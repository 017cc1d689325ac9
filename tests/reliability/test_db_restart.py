"""The database stops in the middle of traffic and comes back: intake answers 503 problem+json meanwhile
(quickly: no hang, no 500), /readyz says 503, and once PostgreSQL is up again requests succeed without
restarting intake.

The test runs its own PostgreSQL (the embedded pgserver package's binaries, in a temporary data folder,
on a Unix socket) so it can stop and start it; it never touches the shared server."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from alembic import command
from alembic.config import Config

from shared.db import create_engine, make_sessionmaker
from shared.settings import REPO_ROOT
from tests.conftest import make_token
from tests.factories import company_body, delegate, make_company, make_partner, open_call
from tests.reliability.processes import IntakeProcess

BOUND = 5.0  # seconds any answer may take while the database is down


class OwnPostgres:
    """A PostgreSQL server this test may stop and start (pgserver's binaries, its own data folder)."""

    def __init__(self) -> None:
        import pgserver

        self.root = Path(tempfile.mkdtemp(prefix="desk-pg-"))
        self.root.chmod(0o755)  # as root, pgserver runs PostgreSQL as its own system user
        self.server: Any = pgserver.get_server(self.root / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
        self.url = str(self.server.get_uri("postgres"))
        self.socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")  # like a crash for clients: their connections are cut

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start")

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
def intake_on_own(own_postgres: OwnPostgres) -> Iterator[tuple[IntakeProcess, dict[str, str]]]:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = own_postgres.url
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")

    async def seed() -> dict[str, str]:
        engine = create_engine(own_postgres.url, pool_size=1, max_overflow=0)
        try:
            async with make_sessionmaker(engine)() as s:
                await open_call(s)
                partner = await make_partner(s)
                await delegate(s, partner, await make_company(s))
                headers = await make_token(s, "partner", partner_id=partner.id)
                await s.commit()
                return headers
        finally:
            await engine.dispose()

    headers = asyncio.run(seed())
    proc = IntakeProcess(own_postgres.url, env={"DESK_DB_POOL_SIZE": "4", "DESK_DB_MAX_OVERFLOW": "2"})
    try:
        proc.start()
        yield proc, headers
    finally:
        proc.close()


def test_database_down_gives_503_problems_and_intake_recovers_by_itself(
    own_postgres: OwnPostgres, intake_on_own: tuple[IntakeProcess, dict[str, str]]
) -> None:
    intake, headers = intake_on_own
    created = 0
    with httpx.Client(base_url=intake.url, headers=headers, timeout=BOUND * 2, trust_env=False) as http:

        def traffic() -> list[httpx.Response]:
            """One round of what partners do: list, read, register a company (a write), readiness."""
            nonlocal created
            out = []
            for method, url, body in (
                ("GET", "/v1/companies", None),
                ("GET", "/v1/applications", None),
                ("POST", "/v1/companies", company_body()),
                ("GET", "/readyz", None),
            ):
                started = time.monotonic()
                resp = http.request(method, url, json=body)
                assert time.monotonic() - started < BOUND, f"{method} {url} took too long with the database down"
                out.append(resp)
                created += resp.status_code == 201
            return out

        for _ in range(3):  # warm: the pool holds connections that the stop will cut
            assert [r.status_code for r in traffic()] == [200, 200, 201, 200]

        own_postgres.stop()
        for _ in range(3):
            for resp in traffic():
                assert resp.status_code == 503, (resp.request.url, resp.status_code, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
                assert resp.json()["type"] == "/problems/service-unavailable"
                assert resp.headers.get("retry-after")

        own_postgres.start()
        deadline = time.monotonic() + 20
        while True:  # no restart of intake: it must come back on its own
            statuses = [r.status_code for r in traffic()]
            if statuses == [200, 200, 201, 200]:
                break
            assert set(statuses) <= {200, 201, 503}, statuses
            assert time.monotonic() < deadline, f"intake did not recover: {statuses}\n{intake.output()}"
            time.sleep(0.2)
        for _ in range(3):
            assert [r.status_code for r in traffic()] == [200, 200, 201, 200]
        listed = http.get("/v1/companies", params={"limit": 100}).json()["items"]

    assert intake.proc is not None and intake.proc.poll() is None, "intake died with its database"
    assert "Traceback" not in intake.output(), intake.output()
    # the seeded company and every 201; the writes answered 503 during the outage stored nothing
    assert created >= 7
    assert len(listed) == 1 + created
