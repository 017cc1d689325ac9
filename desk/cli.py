"""`desk`: the command line of the regional desk (migrate, seed, credentials, OpenAPI, local run).

This module is the composition root for developers and operators: it may import every service and
`shared/` (the services lazily, inside the commands), and nothing imports it. It writes no table of
its own: it calls the services' use-case functions, which keep the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from shared.settings import REPO_ROOT, DeskSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.routing import Actor

app = typer.Typer(
    name="desk",
    no_args_is_help=True,
    add_completion=False,
    help="The regional desk: migrate, seed, issue credentials, check the OpenAPI documents, run it locally, "
    "deliver events.",
)

SERVICES: tuple[str, ...] = ("intake", "evaluation", "monitoring")
WORKER = "worker"
WORKER_STOP_SECONDS = 30  # a batch in flight may wait for webhook timeouts before it is recorded
DEFAULT_CALL_FILE = REPO_ROOT / "calls" / "verso-nuovi-mercati-2025.yaml"
OPENAPI_DIR = REPO_ROOT / "openapi"
DEMO_WINDOW_DAYS = 90
CLI_CLIENT_ID = "desk-cli"
CREDENTIALS_FILE = "local-credentials.json"

T = TypeVar("T")


class ClientKind(StrEnum):
    partner = "partner"
    company = "company"
    officer = "officer"
    auditor = "auditor"
    service = "service"


class PartnerKindOption(StrEnum):
    chamber_of_commerce = "chamber_of_commerce"
    trade_association = "trade_association"
    agency = "agency"
    other = "other"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _show(path: Path) -> str:
    """A path as the user should read it: relative to where they stand when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- database plumbing


def _database_url(settings: DeskSettings) -> str:
    from shared.app import resolve_database_url

    return resolve_database_url(settings)


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    ini = REPO_ROOT / "alembic.ini"
    if not ini.exists():  # installed without the checkout: run from the folder that holds alembic.ini
        ini = Path.cwd() / "alembic.ini"
    cfg = Config(str(ini))
    cfg.attributes["database_url"] = url
    cfg.attributes["skip_logging"] = True
    return cfg


def _migrate(url: str) -> str:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(url)
    command.upgrade(cfg, "head")
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def _run_in_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one session and commit it (the CLI is its own unit of work)."""
    from shared.db import create_engine, make_sessionmaker

    async def main() -> T:
        engine = create_engine(url, pool_size=1, max_overflow=0, application_name="desk-cli")
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _cli_actor() -> Actor:
    from shared.auth import DEFAULT_SCOPES, Principal
    from shared.routing import Actor

    principal = Principal(client_id=CLI_CLIENT_ID, kind="service", scopes=frozenset(DEFAULT_SCOPES["service"]))
    return Actor(principal, None, "desk-cli")


# ---------------------------------------------------------------- migrate, seed


@app.command()
def migrate() -> None:
    """Bring the database to the latest schema (alembic upgrade head)."""
    url = _database_url(DeskSettings())
    head = _migrate(url)
    typer.echo(f"database at {_safe_url(url)} migrated to {head}")


def _seed(url: str, path: Path, open_now: bool) -> dict[str, Any]:
    from datetime import UTC, datetime

    from services.intake.calls.service import effective_window, seed_call, status_of

    async def work(session: AsyncSession) -> dict[str, Any]:
        call = await seed_call(
            session=session, actor=_cli_actor(), path=path, open_now_days=DEMO_WINDOW_DAYS if open_now else None
        )
        opens, closes = effective_window(call)
        return {
            "code": call.code,
            "id": call.id,
            "status": status_of(call, datetime.now(UTC)),
            "opens_at": opens,
            "closes_at": closes,
        }

    return _run_in_session(url, work)


@app.command()
def seed(
    open_now: Annotated[
        bool | None,
        typer.Option(
            "--open-now/--no-open-now",
            help=f"Open the call's demo copy now for {DEMO_WINDOW_DAYS} days (default: on in local mode).",
        ),
    ] = None,
    file: Annotated[
        Path, typer.Option("--file", exists=True, dir_okay=False, help="The call's rules document (YAML).")
    ] = DEFAULT_CALL_FILE,
) -> None:
    """Seed a call from its rules document (idempotent on the call's code)."""
    settings = DeskSettings()
    if open_now is None:
        open_now = settings.environment == "local"
    info = _seed(_database_url(settings), file, open_now)
    typer.echo(
        f"call {info['code']} ({info['id']}): {info['status']}, "
        f"window {info['opens_at']:%Y-%m-%d %H:%M} → {info['closes_at']:%Y-%m-%d %H:%M} UTC"
    )


# ---------------------------------------------------------------- credentials


def _print_credentials(creds: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(creds, default=str, indent=2))
        return
    for key, value in creds.items():
        typer.echo(f"{key}: {value}")
    typer.secho("The secret is shown only now: store it safely.", err=True, fg=typer.colors.YELLOW)


@app.command("create-client")
def create_client_command(
    kind: Annotated[ClientKind, typer.Option("--kind", help="Who the client acts as.")],
    name: Annotated[str, typer.Option("--name", help="A label for the client.")],
    partner_id: Annotated[uuid.UUID | None, typer.Option("--partner-id", help="Required for --kind partner.")] = None,
    company_id: Annotated[uuid.UUID | None, typer.Option("--company-id", help="Required for --kind company.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the credentials as JSON.")] = False,
) -> None:
    """Issue an API client (OAuth2 client credentials); the secret is printed once."""
    if kind is ClientKind.partner and partner_id is None:
        raise _fail("--kind partner needs --partner-id", 2)
    if kind is ClientKind.company and company_id is None:
        raise _fail("--kind company needs --company-id", 2)
    from services.intake.models import Company, Partner
    from services.intake.partners.service import issue_client

    async def work(session: AsyncSession) -> dict[str, Any] | None:
        if partner_id is not None and await session.get(Partner, partner_id) is None:
            return None
        if company_id is not None and await session.get(Company, company_id) is None:
            return None
        return await issue_client(
            session=session,
            actor=_cli_actor(),
            kind=kind.value,
            name=name,
            partner_id=partner_id,
            company_id=company_id,
        )

    creds = _run_in_session(_database_url(DeskSettings()), work)
    if creds is None:
        raise _fail("no such partner or company", 1)
    _print_credentials(creds, as_json)


@app.command("create-partner")
def create_partner_command(
    name: Annotated[str, typer.Option("--name", help="The partner's name.")],
    fiscal_code: Annotated[str, typer.Option("--fiscal-code", help="The partner's codice fiscale (11 digits).")],
    kind: Annotated[PartnerKindOption, typer.Option("--kind", help="What kind of partner.")],
    email: Annotated[str | None, typer.Option("--email", help="A contact address.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print ids and credentials as JSON.")] = False,
) -> None:
    """Register a partner and issue its first API client (for local use, without an officer token)."""
    from pydantic import ValidationError

    from services.intake.partners.schemas import PartnerCreate
    from services.intake.partners.service import create_partner, issue_client
    from shared.errors import DeskError

    try:
        data = PartnerCreate(name=name, kind=kind.value, fiscal_code=fiscal_code, email=email)
    except ValidationError as e:
        raise _fail("\n".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()), 2) from None

    async def work(session: AsyncSession) -> dict[str, Any]:
        actor = _cli_actor()
        partner = await create_partner(session=session, actor=actor, data=data)
        creds = await issue_client(
            session=session, actor=actor, kind="partner", name=partner.name[:200], partner_id=partner.id
        )
        return {"partner_id": partner.id, **creds}

    try:
        out = _run_in_session(_database_url(DeskSettings()), work)
    except DeskError as e:
        raise _fail(str(e.detail_en), 1) from None
    _print_credentials(out, as_json)


# ---------------------------------------------------------------- OpenAPI


def build_service_app(service: str) -> FastAPI:
    """The service's app with default settings (the environment must not change the contract)."""
    from shared.settings import EvaluationSettings, IntakeSettings, MonitoringSettings

    quiet: dict[str, Any] = {"environment": "test", "log_level": "WARNING", "access_log": False}
    if service == "intake":
        from services.intake.app import build_app as intake_app

        return intake_app(IntakeSettings.model_construct(**quiet))
    if service == "evaluation":
        from services.evaluation.app import build_app as evaluation_app

        return evaluation_app(EvaluationSettings.model_construct(**quiet))
    if service == "monitoring":
        from services.monitoring.app import build_app as monitoring_app

        return monitoring_app(MonitoringSettings.model_construct(**quiet))
    raise ValueError(f"unknown service {service!r}")


def render_openapi(service: str) -> str:
    """The service's OpenAPI document exactly as committed under openapi/."""
    return json.dumps(build_service_app(service).openapi(), indent=2, sort_keys=True) + "\n"


def openapi_path(service: str) -> Path:
    return OPENAPI_DIR / f"{service}.json"


@app.command()
def precheck(
    call: Annotated[str | None, typer.Option("--call", help="Only this call's drafts (its code).")] = None,
) -> None:
    """Pre-check every draft of the calls not yet closed and remember the verdicts.

    Run it shortly before a window opens (and after changing a call's rules): a draft whose verdict is
    current is submitted in one statement on click day. Drafts are re-checked whenever they are saved or
    checked anyway; this catches those whose verdict went stale (a company edited, a new year)."""
    from sqlalchemy import select

    from services.intake.applications.repository import driver_connection
    from services.intake.applications.service import record_prechecks
    from services.intake.calls.service import status_of
    from services.intake.models import Application, Call

    async def work(session: AsyncSession) -> dict[str, Any] | None:
        calls = (
            (await session.execute(select(Call) if call is None else select(Call).where(Call.code == call)))
            .scalars()
            .all()
        )
        if call is not None and not calls:
            return None
        now, conn = datetime.now(UTC), await driver_connection(session)
        live = [c.id for c in calls if status_of(c, now) != "closed"]
        ids = (
            (
                await session.execute(
                    select(Application.id).where(Application.call_id.in_(live), Application.status == "draft")
                )
            )
            .scalars()
            .all()
        )
        submittable = 0
        for start in range(0, len(ids), 1000):
            submittable += await record_prechecks(conn, list(ids[start : start + 1000]))
        return {"calls": len(live), "drafts": len(ids), "submittable": submittable}

    started = time.monotonic()
    out = _run_in_session(_database_url(DeskSettings()), work)
    if out is None:
        raise _fail(f"no call with code {call}", 1)
    typer.echo(json.dumps({**out, "seconds": round(time.monotonic() - started, 1)}))


@app.command("audit-verify")
def audit_verify(
    file: Annotated[Path, typer.Argument(help="An export of GET /v1/audit/export (JSON Lines).")],
    anchor: Annotated[
        str | None,
        typer.Option("--anchor", help="Hash of the record before the export's first one, kept from an earlier export."),
    ] = None,
) -> None:
    """Verify an audit-trail export offline: exit 0 if every record holds, 1 at the first one that does not."""
    from shared.audit_chain import main as verify_main

    code = verify_main([str(file), *(["--anchor", anchor] if anchor else [])])
    if code:
        raise typer.Exit(code)


@app.command()
def openapi(
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 if a committed file differs.")] = False,
) -> None:
    """Write openapi/<service>.json from the code (or, with --check, verify they are up to date)."""
    stale: list[Path] = []
    for service in SERVICES:
        path = openapi_path(service)
        text = render_openapi(service)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if check:
        if stale:
            for path in stale:
                typer.echo(f"{_show(path)} differs from the code", err=True)
            raise _fail("The OpenAPI documents are out of date: run `desk openapi` and commit them.", 1)
        typer.echo(f"OpenAPI documents up to date ({', '.join(SERVICES)})")
        return
    for path in stale:
        typer.echo(f"wrote {_show(path)}")
    if not stale:
        typer.echo("OpenAPI documents already up to date")


# ---------------------------------------------------------------- worker


async def _run_worker(settings: DeskSettings, url: str) -> None:
    from shared.auth import load_or_create_key
    from shared.db import create_engine
    from shared.events.worker import DeliveryWorker

    pem = settings.signing_key.get_secret_value() if settings.signing_key else None
    keyring = load_or_create_key(pem, settings.data_dir, allow_generate=settings.environment != "production")
    engine = create_engine(
        url, pool_size=2, max_overflow=2, statement_cache=settings.db_statement_cache, application_name="desk-worker"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await DeliveryWorker(engine, keyring, settings).run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await engine.dispose()


@app.command()
def worker() -> None:
    """Run the delivery worker (outbox fan-out, webhook and internal deliveries) until SIGINT or SIGTERM.

    Stopping is graceful: the batch in flight is sent and recorded first. Several workers may run at once.
    Internal subscribers' URLs come from settings (DESK_EVALUATION_URL, ...)."""
    from shared.observability import configure_logging

    settings = DeskSettings()
    configure_logging(settings.log_level)
    url = _database_url(settings)
    typer.echo(f"desk: delivery worker on {_safe_url(url)} (evaluation at {settings.evaluation_url})")
    asyncio.run(_run_worker(settings, url))
    typer.echo("desk: delivery worker stopped")


# ---------------------------------------------------------------- serve


class ServiceName(StrEnum):
    intake = "intake"
    evaluation = "evaluation"
    monitoring = "monitoring"


@app.command()
def serve(
    service: Annotated[ServiceName, typer.Argument(help="The service to serve.")],
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: <SERVICE>_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: <SERVICE>_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes sharing the port.")] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="Client address and scheme from X-Forwarded-* sent by the trusted proxies.")
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies trusted for X-Forwarded-* (default: $FORWARDED_ALLOW_IPS, else 127.0.0.1)."),
    ] = None,
    root_path: Annotated[str, typer.Option(help="The prefix the proxy strips (e.g. /intake).")] = "",
    graceful_timeout: Annotated[
        int | None, typer.Option(help="Seconds in-flight requests get after SIGTERM (default: no limit).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's own log level.")] = "info",
) -> None:
    """Serve one service with uvicorn and the desk's guards: header and body deadlines for slow clients and a
    cap on connections per process (DESK_HTTP_*), the open-file limit raised. No access log: the desk logs
    each request itself."""
    from shared.server import serve as run_server
    from shared.server import server_config
    from shared.settings import EvaluationSettings, IntakeSettings, MonitoringSettings

    settings_class = {"intake": IntakeSettings, "evaluation": EvaluationSettings, "monitoring": MonitoringSettings}[
        service.value
    ]
    settings = settings_class()
    config = server_config(
        f"services.{service.value}.app:build_app",
        settings,
        factory=True,
        host=settings.host if host is None else host,
        port=settings.port if port is None else port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        root_path=root_path,
        timeout_graceful_shutdown=graceful_timeout,
        access_log=False,
        log_level=log_level,
    )
    run_server(config)


# ---------------------------------------------------------------- up


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _local_officer(url: str, data_dir: Path) -> dict[str, str]:
    """The local officer's credentials: kept in `.desk/local-credentials.json` (mode 0600) and reused; the
    client is (re)registered with the same id and secret when the database does not know it."""
    from argon2.exceptions import VerificationError
    from sqlalchemy import select

    from shared.auth import create_client, verify_secret
    from shared.models import ApiClient

    path = data_dir / CREDENTIALS_FILE
    stored: dict[str, str] | None = None
    if path.exists():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            stored = {"client_id": str(raw["client_id"]), "client_secret": str(raw["client_secret"])}
        except (ValueError, KeyError, TypeError):
            stored = None

    async def work(session: AsyncSession) -> dict[str, str]:
        if stored is not None:
            row = (
                await session.execute(select(ApiClient).where(ApiClient.client_id == stored["client_id"]))
            ).scalar_one_or_none()
            if row is None:
                await create_client(
                    session,
                    kind="officer",
                    name="local officer (desk up)",
                    client_id=stored["client_id"],
                    secret=stored["client_secret"],
                )
                return stored
            try:
                if row.active and verify_secret(row.secret_hash, stored["client_secret"]):
                    return stored
            except VerificationError:
                pass
        client, secret = await create_client(session, kind="officer", name="local officer (desk up)")
        return {"client_id": client.client_id, "client_secret": secret}

    creds = _run_in_session(url, work)
    if creds != stored:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(
                {**creds, "note": "Local officer of `desk up`; delete this file to issue a new one."}, f, indent=2
            )
            f.write("\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return creds


def _stop_embedded(data_dir: Path) -> None:
    from shared.embedded import embedded_server, stop_embedded

    embedded_server(data_dir)  # the handle stop_embedded gives back
    stop_embedded(data_dir)


class _StopRequested(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def _wait_ready(procs: dict[str, subprocess.Popen[bytes]], urls: dict[str, str], timeout: float = 90) -> None:
    import httpx

    pending = dict(urls)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while pending:
            for service in list(pending):
                if procs[service].poll() is not None:
                    raise RuntimeError(f"{service} exited with code {procs[service].returncode} while starting")
                try:
                    if http.get(f"{pending[service]}/readyz").status_code == 200:
                        typer.echo(f"desk: {service} ready")
                        del pending[service]
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
            if pending:
                time.sleep(0.25)


def _stop_children(procs: dict[str, subprocess.Popen[bytes]], timeout: float = 10) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for service, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            typer.echo(f"desk: {service} did not stop in {timeout:.0f}s, killing it", err=True)
            proc.kill()
            proc.wait()


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """The worker first (it finishes the deliveries in flight, to services still up), then the services."""
    if WORKER in procs:
        _stop_children({WORKER: procs[WORKER]}, timeout=WORKER_STOP_SECONDS)
    _stop_children({name: proc for name, proc in procs.items() if name != WORKER})


@app.command()
def up(
    host: Annotated[str, typer.Option("--host", help="Interface the services listen on.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Uvicorn workers per service.")] = 1,
) -> None:
    """Run the whole desk locally: database (embedded when no DATABASE_URL), migrations, seed, three services
    and the delivery worker."""
    from shared.auth import load_or_create_key
    from shared.settings import EvaluationSettings, IntakeSettings, MonitoringSettings

    settings = DeskSettings()
    embedded = settings.database_url is None
    ports = {
        "intake": IntakeSettings().port,
        "evaluation": EvaluationSettings().port,
        "monitoring": MonitoringSettings().port,
    }
    busy = [f"{port} ({service})" for service, port in ports.items() if not _port_free(host, port)]
    if busy:
        raise _fail(f"port already in use on {host}: {', '.join(busy)} — is another desk running?")

    procs: dict[str, subprocess.Popen[bytes]] = {}
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    database_started = False
    try:
        if embedded:
            typer.echo(f"desk: starting the embedded PostgreSQL in {_show(settings.data_dir / 'pgdata')}")
        url = _database_url(settings)
        database_started = True
        typer.echo(f"desk: database {_safe_url(url)}")
        typer.echo(f"desk: migrated to {_migrate(url)}")
        info = _seed(url, DEFAULT_CALL_FILE, open_now=True)
        typer.echo(f"desk: call {info['code']} {info['status']} until {info['closes_at']:%Y-%m-%d} (demo window)")
        creds = _local_officer(url, settings.data_dir)
        if settings.signing_key is None:
            # create the shared signing key once, before three processes race to generate their own
            load_or_create_key(None, settings.data_dir, allow_generate=settings.environment != "production")

        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - comparing, not binding
        bases = {service: f"http://{local}:{port}" for service, port in ports.items()}
        env = {**os.environ, "DESK_DATABASE_URL": url}
        for service, base in bases.items():  # peers (and the worker's internal subscribers) where they run here,
            if f"{service}_url" not in settings.model_fields_set:  # unless configured otherwise
                env[f"DESK_{service.upper()}_URL"] = base
        for service, port in ports.items():
            cmd = [
                sys.executable,
                "-m",
                "desk.cli",
                "serve",
                service,
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--graceful-timeout",
                "5",
            ]
            # own session: the terminal's Ctrl-C reaches only `desk`, which stops the children in order
            procs[service] = subprocess.Popen(  # noqa: S603 - our own argv
                cmd,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )
        _wait_ready(procs, bases)
        procs[WORKER] = subprocess.Popen(
            [sys.executable, "-m", "desk.cli", "worker"], cwd=REPO_ROOT, env=env, start_new_session=True
        )

        typer.echo("")
        typer.secho("The desk is up.", bold=True)
        for service, base in bases.items():
            typer.echo(f"  {service:<11} {base}   docs: {base}/docs")
        typer.echo(
            f"  {WORKER:<11} delivering events (pid {procs[WORKER].pid}) to webhooks and to evaluation at "
            f"{env.get('DESK_EVALUATION_URL', settings.evaluation_url)}"
        )
        typer.echo(f"\nLocal officer (kept in {_show(settings.data_dir / CREDENTIALS_FILE)}):")
        typer.echo(f"  client_id:     {creds['client_id']}\n  client_secret: {creds['client_secret']}")
        typer.echo("\nGet a token:")
        typer.echo(
            f"  curl -s -X POST {bases['intake']}/v1/oauth/token -d grant_type=client_credentials "
            f"-d client_id={creds['client_id']} -d client_secret={creds['client_secret']}"
        )
        typer.echo("\nPress Ctrl-C to stop.\n")

        while True:
            for service, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{service} exited with code {proc.returncode}")
            time.sleep(0.5)
    except _StopRequested as e:
        typer.echo(f"\ndesk: {e} received, stopping")
    except RuntimeError as e:
        typer.secho(f"desk: {e}", err=True, fg=typer.colors.RED)
        exit_code = 1
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        _stop_all(procs)
        if procs:
            typer.echo("desk: services and worker stopped")
        if embedded and database_started:
            _stop_embedded(settings.data_dir)
            typer.echo("desk: embedded PostgreSQL stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if exit_code:
        raise typer.Exit(exit_code)


# ---------------------------------------------------------------- version


example_app = typer.Typer(
    help="Print example request bodies (valid, with dates relative to today).", no_args_is_help=True
)
app.add_typer(example_app, name="example")


@example_app.command("company")
def example_company() -> None:
    """A small manufacturing company in Bergamo, with a fresh valid VAT number."""
    from services.intake.examples import company_body

    typer.echo(json.dumps(company_body(), indent=2))


@example_app.command("application")
def example_application(
    call_id: Annotated[str, typer.Option(help="The call's id (GET /v1/calls).")],
    company_id: Annotated[str, typer.Option(help="The company's id (from POST /v1/companies).")],
) -> None:
    """A complete "Verso Nuovi Mercati" draft that passes every check (new markets VN and BR)."""
    from services.intake.examples import draft_body

    typer.echo(json.dumps(draft_body(call_id, company_id), indent=2))


@app.command()
def version() -> None:
    """Print the desk's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        v = dist_version("regional-desk")
    except PackageNotFoundError:
        v = "unknown (not installed: pip install -e .)"
    typer.echo(f"regional-desk {v}")


if __name__ == "__main__":
    app()
