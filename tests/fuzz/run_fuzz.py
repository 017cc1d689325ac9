"""Fuzz the three services with schemathesis against their own OpenAPI documents, authenticated.

    .venv/bin/python tests/fuzz/run_fuzz.py --cases 1000 --seed 20251128
    .venv/bin/python tests/fuzz/run_fuzz.py --cases 500 --seed random --phases fuzzing   # new seed, printed

What it does, start to end (everything it starts it stops, everything it creates it drops):
1. creates a scratch database on the server of TEST_DATABASE_URL (default: the local PostgreSQL), migrates
   it, seeds an open call, a partner with a delegated company, a draft and a submitted application, and
   registers an officer and a partner client whose tokens it mints with a throw-away signing key;
2. starts intake, evaluation and monitoring as uvicorn processes on loopback ports, bound to that database
   and that key (rate limits off: the fuzzer is one client sending thousands of writes);
3. runs `schemathesis run` against each service's live OpenAPI document (the one `desk openapi --check`
   holds equal to openapi/*.json) once with the officer's token and once with the partner's, with a fixed
   seed, checks not_a_server_error, response_schema_conformance and status_code_conformance;
4. counts the generated test cases from schemathesis' NDJSON event stream and fails if a service got fewer
   than --cases, or if any check failed (the report names the operation and the reproducing curl).

Not collected by pytest (file name), run as its own CI step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from shared.auth import KeyRing, create_client, issue_token  # noqa: E402
from shared.db import create_engine, make_sessionmaker, plain_url  # noqa: E402

SERVICES = ("intake", "evaluation", "monitoring")
PRINCIPALS = ("officer", "partner")
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def say(message: str) -> None:
    print(f"fuzz: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- the scratch database


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(plain_url(server))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(server: str, name: str) -> str:
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")
    return url


def drop_database(server: str, name: str) -> None:
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass(frozen=True)
class Seeded:
    call_id: uuid.UUID
    partner_id: uuid.UUID
    company_id: uuid.UUID
    tokens: dict[str, str]


async def seed(url: str, keyring: KeyRing) -> Seeded:
    from tests.factories import delegate, make_company, make_partner, open_call

    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as s:
            call = await open_call(s, days=30)
            partner = await make_partner(s)
            company = await make_company(s)
            await delegate(s, partner, company)
            tokens = {}
            for kind in PRINCIPALS:
                client, _ = await create_client(
                    s,
                    kind=kind,
                    name=f"fuzz {kind}",  # type: ignore[arg-type]
                    partner_id=partner.id if kind == "partner" else None,
                )
                tokens[kind] = issue_token(
                    keyring, client=client, scopes=list(client.scopes), issuer="regional-desk", ttl=4 * 3600
                )
            await s.commit()
    finally:
        await engine.dispose()
    return Seeded(call.id, partner.id, company.id, tokens)


def seed_through_api(intake_url: str, data: Seeded) -> None:
    """A draft and a submitted application made the way a partner makes them, so reads find real rows."""
    from services.intake.examples import draft_body
    from tests.factories import stamp_duty_body

    auth = {"Authorization": f"Bearer {data.tokens['partner']}"}
    with httpx.Client(base_url=intake_url, timeout=30, trust_env=False) as http:
        r = http.post("/v1/applications", json=draft_body(data.call_id, data.company_id), headers=auth)
        r.raise_for_status()
        http.put(
            f"/v1/applications/{r.json()['id']}/stamp-duty", json=stamp_duty_body(), headers=auth
        ).raise_for_status()
        r = http.post(f"/v1/applications/{r.json()['id']}/submit", headers=auth)
        r.raise_for_status()
        r = http.post(
            "/v1/webhooks", headers=auth, json={"url": "http://127.0.0.1:9/desk-events", "event_types": ["*"]}
        )  # nobody delivers
        if r.status_code >= 300:  # the subscription is a nice-to-have for reads; say why it is missing
            say(f"(no webhook subscription seeded: {r.status_code} {r.text[:200]})")


# ---------------------------------------------------------------- the services


class Services:
    def __init__(self, url: str, keyring: KeyRing, data_dir: Path) -> None:
        self.url = url
        self.keyring = keyring
        self.data_dir = data_dir
        self.ports = {s: free_port() for s in SERVICES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def base(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "INTAKE_", "EVALUATION_", "MONITORING_"))
        }
        env.update(
            {
                "DESK_DATABASE_URL": self.url,
                "DESK_SIGNING_KEY": self.keyring.private_pem().decode(),
                "DESK_ENVIRONMENT": "test",
                "DESK_DATA_DIR": str(self.data_dir),
                "DESK_LOG_LEVEL": "WARNING",
                "DESK_ACCESS_LOG": "false",
                "DESK_RATE_LIMIT_WRITE_PER_MINUTE": "0",
                "DESK_RATE_LIMIT_TOKEN_PER_MINUTE": "0",
                "DESK_DB_POOL_SIZE": "8",
                "DESK_INTAKE_URL": self.base("intake"),
                "DESK_EVALUATION_URL": self.base("evaluation"),
                "DESK_MONITORING_URL": self.base("monitoring"),
            }
        )
        for service in SERVICES:
            log = self.data_dir / f"{service}.log"
            self.logs[service] = log
            with log.open("wb") as out:
                self.procs[service] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "desk.cli",
                        "serve",
                        service,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.ports[service]),
                        "--log-level",
                        "warning",
                        "--graceful-timeout",
                        "5",
                    ],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        deadline = time.monotonic() + 60
        for service in SERVICES:
            while True:
                if self.procs[service].poll() is not None:
                    raise SystemExit(f"fuzz: {service} exited at start:\n{self.logs[service].read_text()[-3000:]}")
                try:
                    if httpx.get(self.base(service) + "/readyz", timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"fuzz: {service} not ready in 60 s")
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for service, proc in self.procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                say(f"{service} did not stop on SIGTERM: killing it")
                proc.kill()
                proc.wait(timeout=5)


# ---------------------------------------------------------------- schemathesis


@dataclass
class RunResult:
    service: str
    principal: str
    cases: int
    failures: int
    errors: int
    seconds: float
    exit_code: int
    output: str


def count_events(ndjson: Path) -> tuple[int, int, int]:
    """(test cases, failed checks, errors) from schemathesis' NDJSON event stream."""
    cases = failures = errors = 0
    for line in ndjson.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for name, body in event.items():
            if name == "ScenarioFinished" and isinstance(body, dict):
                recorder = body.get("recorder") or {}
                cases += len(recorder.get("cases") or {})
                for case_checks in (recorder.get("checks") or {}).values():
                    failures += sum(1 for c in case_checks if str(c.get("status")).lower() not in ("success", "skip"))
            elif name == "NonFatalError":
                errors += 1
    return cases, failures, errors


def run_schemathesis(
    service: str, principal: str, base: str, token: str, *, examples: int, seed: int, phases: str, report_dir: Path
) -> RunResult:
    ndjson = report_dir / f"{service}-{principal}.ndjson"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base}/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--phases",
        phases,
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--exclude-path",
        "/metrics",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(ndjson),
        "--no-color",
    ]
    env = dict(
        os.environ,
        SCHEMATHESIS_HOOKS="tests.fuzz.hooks",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        NO_COLOR="1",
    )
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=report_dir, env=env, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.monotonic() - started
    cases, failures, errors = count_events(ndjson) if ndjson.exists() else (0, 0, 0)
    return RunResult(service, principal, cases, failures, errors, seconds, proc.returncode, proc.stdout + proc.stderr)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="Minimum generated test cases per service.")
    parser.add_argument(
        "--seed",
        default="20251128",
        help="Hypothesis seed (reproducible runs), or `random` for a new one, printed so a failure "
        "can be replayed with --seed N.",
    )
    parser.add_argument(
        "--phases",
        default="examples,coverage,fuzzing",
        help="schemathesis phases; only `fuzzing` depends on the seed (a random-seed run may skip "
        "the others, which the fixed-seed run covers).",
    )
    parser.add_argument("--jobs", type=int, default=3, help="schemathesis runs at once (one process each).")
    parser.add_argument("--services", default=",".join(SERVICES), help="Comma-separated subset of services.")
    parser.add_argument("--keep", action="store_true", help="Keep the report folder (printed at the end).")
    args = parser.parse_args()
    services = [s for s in args.services.split(",") if s]
    args.seed = secrets.randbelow(2**31) if args.seed == "random" else int(args.seed)
    say(
        f"seed {args.seed} (replay: tests/fuzz/run_fuzz.py --cases {args.cases} --seed {args.seed} "
        f"--phases {args.phases})"
    )

    server = os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER
    db_name = f"desk_fuzz_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="desk-fuzz-"))
    started = time.monotonic()
    keyring = KeyRing.generate()
    procs: Services | None = None
    results: list[RunResult] = []
    try:
        url = create_database(server, db_name)
        data = asyncio.run(seed(url, keyring))
        procs = running = Services(url, keyring, work)
        running.start()
        seed_through_api(running.base("intake"), data)
        say(f"services up and seeded in {time.monotonic() - started:.1f}s")
        plan = []
        for service in services:
            ops = _operation_count(running.base(service))
            # one budget per operation; schemathesis stops early where the input space is small (no parameters),
            # so the per-service total is counted afterwards, not assumed
            per_op = max(20, -(-3 * args.cases // (ops * len(PRINCIPALS))))
            plan += [(service, principal, ops, per_op) for principal in PRINCIPALS]

        def one(item: tuple[str, str, int, int]) -> RunResult:
            service, principal, ops, per_op = item
            r = run_schemathesis(
                service,
                principal,
                running.base(service),
                data.tokens[principal],
                examples=per_op,
                seed=args.seed,
                phases=args.phases,
                report_dir=work,
            )
            say(
                f"{service:<10} as {principal:<7}: {r.cases:>5} cases, {r.failures} failed checks, {r.errors} "
                f"errors, exit {r.exit_code}, {r.seconds:.0f}s ({ops} operations, up to {per_op} examples each)"
            )
            return r

        # parallel processes, one schemathesis worker each: its thread workers trip a CPython 3.11 parser bug
        # ("AST constructor recursion depth mismatch") when hypothesis describes filters from several threads
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(one, plan))
        for r in results:
            if r.exit_code != 0:
                print(f"---- {r.service} as {r.principal}", flush=True)
                print(r.output[-20000:], flush=True)
    finally:
        if procs is not None:
            procs.stop()
            for service, log in procs.logs.items():
                text = log.read_text(errors="replace") if log.exists() else ""
                if "Traceback" in text or "unhandled error" in text:
                    say(f"{service} logged errors:\n{text[-6000:]}")
        drop_database(server, db_name)
        if args.keep:
            say(f"reports kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    ok = True
    for service in services:
        mine = [r for r in results if r.service == service]
        total = sum(r.cases for r in mine)
        if total < args.cases:
            say(f"{service}: only {total} generated cases (< {args.cases})")
            ok = False
        if any(r.exit_code != 0 or r.failures or r.errors for r in mine):
            ok = False
    say(
        f"{'passed' if ok else 'FAILED'}: "
        + ", ".join(f"{s} {sum(r.cases for r in results if r.service == s)} cases" for s in services)
        + f" (seed {args.seed}) in {time.monotonic() - started:.0f}s"
    )
    return 0 if ok else 1


def _operation_count(base: str) -> int:
    doc = httpx.get(base + "/openapi.json", timeout=10, trust_env=False).json()
    return sum(
        1
        for path, item in doc.get("paths", {}).items()
        if path != "/metrics"
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


if __name__ == "__main__":
    sys.exit(main())
