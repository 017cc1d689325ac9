"""The desk through a real PgBouncer in transaction mode (Debian's package `pgbouncer`), as deploy/ runs it.

Transaction pooling hands a server connection to a client only for one transaction, so nothing may
outlive it: no session-level SET, no session advisory lock, no LISTEN, no named prepared statement
(PgBouncer before 1.21 does not track them). The services run with DESK_DB_STATEMENT_CACHE=false, which
makes asyncpg use unnamed statements. Here intake runs under uvicorn on loopback with its own lifespan
(engine built from its settings, as in production) against PgBouncer with a server pool smaller than
the app's pool, so transactions of different requests really share server connections; thirty partners
then go token → company → draft → check → submit at once. Everything must answer 2xx, and the database
(read directly, not through PgBouncer) must hold thirty submissions with gap-free protocol numbers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from shared.auth import create_client
from shared.db import create_engine, make_sessionmaker, plain_url
from shared.settings import IntakeSettings
from tests.conftest import KEYRING
from tests.factories import company_body, declare_stamp_duty, draft_body, make_partner, open_call, vat_number
from tests.loopback import free_port

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None,
    reason="the `pgbouncer` binary is not installed (Debian: apt-get install pgbouncer; .ci/run installs it)",
)

SERVER_POOL = 4  # fewer server connections than the app's pool: transactions of different requests interleave
FLOWS = 30
SECRET = "p" * 40


def _pgbouncer_config(workdir: Path, database_url: str, port: int) -> Path:
    u = make_url(database_url)
    user = u.username or "postgres"
    server = f"host={u.host or '127.0.0.1'} port={u.port or 5432} dbname={u.database} user={user}"
    if u.password:
        server += f" password={u.password}"
    # plan_cache_mode is a startup parameter PgBouncer does not forward: ignore it, and set it on each server
    # connection instead (deploy/pgbouncer/pgbouncer.ini does the same).
    server += " connect_query='SET plan_cache_mode = force_generic_plan'"
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    ini = workdir / "pgbouncer.ini"
    ini.write_text(f"""[databases]
desk = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "userlist.txt"}
pool_mode = transaction
default_pool_size = {SERVER_POOL}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
max_prepared_statements = 0
ignore_startup_parameters = extra_float_digits,plan_cache_mode
server_reset_query =
admin_users = {user}
""")
    # PgBouncer refuses to run as root; it reads the files before dropping to `nobody`
    for f in (workdir, *workdir.iterdir()):
        f.chmod(0o755 if f.is_dir() else 0o644)
    return ini


def _without_unknown_keys(ini: Path) -> None:
    # max_prepared_statements exists from PgBouncer 1.21 only; older versions refuse unknown settings
    version = subprocess.run([str(PGBOUNCER), "--version"], capture_output=True, text=True, check=False).stdout
    first = version.split()[1] if len(version.split()) > 1 else "0"
    major_minor = tuple(int(x) for x in first.split(".")[:2] if x.isdigit())
    if major_minor < (1, 21):
        ini.write_text(
            "\n".join(ln for ln in ini.read_text().splitlines() if not ln.startswith("max_prepared_statements")) + "\n"
        )


@pytest.fixture(scope="module")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    if make_url(database_url).query.get("host"):
        pytest.skip(
            "the embedded PostgreSQL listens on a private Unix socket PgBouncer cannot reach; "
            "set TEST_DATABASE_URL to a TCP server (CI does) to run this test"
        )
    workdir = Path(tempfile.mkdtemp(prefix="desk-pgbouncer-"))
    port = free_port()
    ini = _pgbouncer_config(workdir, database_url, port)
    _without_unknown_keys(ini)
    cmd = [str(PGBOUNCER), str(ini)]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"pgbouncer exited with {proc.returncode}:\n{out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("pgbouncer did not listen within 10 s")
                time.sleep(0.05)
        u = make_url(database_url)
        yield u.set(host="127.0.0.1", port=port, database="desk").render_as_string(hide_password=False)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


class _Server:
    """Intake under uvicorn with its lifespan on: the engine is the one its settings describe."""

    def __init__(self, settings: IntakeSettings) -> None:
        from services.intake.app import build_app

        self.app = build_app(settings)
        self.app.state.keyring = KEYRING  # the lifespan keeps a keyring that is already set
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning", access_log=False
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture
async def intake_via_pgbouncer(pgbouncer_url: str) -> AsyncIterator[str]:
    settings = IntakeSettings(
        environment="test",
        database_url=pgbouncer_url,
        db_statement_cache=False,
        db_pool_size=10,
        db_max_overflow=10,
        access_log=False,
        log_level="WARNING",
        rate_limit_token_per_minute=0,
        rate_limit_write_per_minute=0,
    )
    async with _Server(settings) as base:
        yield base


async def _partner_with_client(database_url: str) -> tuple[Any, str, Any]:
    """An open call and a partner with API credentials, committed directly (no PgBouncer)."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as s:
            call = await open_call(s)
            partner = await make_partner(s)
            client, _ = await create_client(
                s, kind="partner", name="pgbouncer test", partner_id=partner.id, secret=SECRET
            )
            await s.commit()
            return call, client.client_id, partner.id
    finally:
        await engine.dispose()


async def _one_flow(http: httpx.AsyncClient, call_id: Any, client_id: str) -> dict[str, Any]:
    token = await http.post(
        "/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": SECRET}
    )
    assert token.status_code == 200, token.text
    h = {"Authorization": f"Bearer {token.json()['access_token']}"}
    company = await http.post("/v1/companies", json=company_body(vat_number()), headers=h)
    assert company.status_code == 201, company.text
    draft = await http.post("/v1/applications", json=draft_body(call_id, company.json()["id"]), headers=h)
    assert draft.status_code == 201, draft.text
    app_id = draft.json()["id"]
    await declare_stamp_duty(http, app_id, h)
    check = await http.post(f"/v1/applications/{app_id}/check", headers=h)
    assert check.status_code == 200, check.text
    assert not [p for p in check.json().get("problems", []) if p.get("blocking")], check.text
    submit = await http.post(f"/v1/applications/{app_id}/submit", headers={**h, "Idempotency-Key": f"pgb-{app_id}"})
    assert submit.status_code == 201, submit.text
    again = await http.post(f"/v1/applications/{app_id}/submit", headers={**h, "Idempotency-Key": f"pgb-{app_id}"})
    assert again.status_code == 201 and again.json()["receipt"] == submit.json()["receipt"], again.text
    return {"id": app_id, "protocol_number": submit.json()["receipt"]["protocol_number"]}


async def test_click_day_flow_works_through_pgbouncer_in_transaction_mode(
    intake_via_pgbouncer: str, pgbouncer_url: str, database_url: str
) -> None:
    call, client_id, _partner_id = await _partner_with_client(database_url)
    async with httpx.AsyncClient(base_url=intake_via_pgbouncer, timeout=60) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        results = await asyncio.gather(
            *[_one_flow(http, call.id, client_id) for _ in range(FLOWS)], return_exceptions=True
        )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {FLOWS} flows failed through PgBouncer; first: {failures[0]!r}"
    numbers = sorted(r["protocol_number"] for r in results if isinstance(r, dict))
    assert numbers == list(range(1, FLOWS + 1))

    conn = await asyncpg.connect(plain_url(database_url))  # the server itself, not PgBouncer
    try:
        rows = await conn.fetch(
            "SELECT protocol_number FROM intake.applications WHERE call_id = $1 "
            "AND status = 'submitted' ORDER BY protocol_number",
            call.id,
        )
        # PgBouncer really pooled: never more server connections to this database than its pool
        # every backend of the test database but this one and the test session's own engine ('desk'):
        # PgBouncer relabels its server connections with each linked client's application_name
        backends = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
            " AND application_name <> 'desk'",
            make_url(database_url).database,
        )
    finally:
        await conn.close()
    assert [r["protocol_number"] for r in rows] == list(range(1, FLOWS + 1))
    assert 1 <= backends <= SERVER_POOL, backends
