"""Click-day benchmark: the desk's submit against the anchor, same machine, same PostgreSQL.

Two scenarios, each followed by the same load against ../shared/bench/anchor_app.py, so the ratio desk/anchor
comes from one run:

* `--scenario production` (the default): the whole desk running as `desk up` starts it (intake, evaluation
  and monitoring under `desk serve`, the delivery worker under `desk worker`), N drafts (default 30,000) spread
  over 50 partners, each partner with one webhook subscription to `application.submitted` pointing at
  tests/bench/webhook_receiver.py (its own process: it verifies each Standard Webhooks signature and counts
  deliveries by subscription and event id). `desk precheck` runs first, then 20 % of the drafts are edited
  (no current verdict: their submits take the full path). Each draft is submitted by its own partner's token.
  After the burst it waits (--drain-timeout) until evaluation has evaluated every submitted application and
  the receiver has every webhook, and reports how long each took ("not drained" if they did not), the CPU
  seconds of every process (intake, evaluation, monitoring, worker, receiver, the PostgreSQL backends of the
  bench database) per submission, and each process's peak RSS. Checks: every 2xx stored, protocol numbers
  gap-free and in arrival order, the receipt chain verifies, every submitted application evaluated exactly
  once, every webhook delivered to its subscription (duplicates counted and reported; a missing one fails).
* `--scenario submit`: intake's submit alone (evaluation and monitoring beside it for their memory; with
  --with-worker the delivery worker feeds them during the burst; --no-precheck measures the full path).

    python tests/bench/clickday_bench.py [--scenario production] [--drafts 30000] [--partners 50] [--edited 0.2]
                                         [--drain-timeout 300] [--duration 10] [--connections 64] [--workers 1]
                                         [--skip-anchor] [--rounds 1]
    python tests/bench/clickday_bench.py --scenario submit [--with-worker] [--no-precheck] ...

Needs wrk (Debian package `wrk`) and a PostgreSQL: BENCH_DATABASE_URL (default the local server at
127.0.0.1:5432); it creates and drops its own database `desk_bench`. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from shared.auth import DEFAULT_SCOPES, KeyRing, mint_token  # noqa: E402
from shared.domain.receipts import GENESIS, verify_chain  # noqa: E402
from tests.factories import CALL_FILE, company_fields, draft_body, vat_number  # noqa: E402

SHARED_BENCH = Path(os.environ.get("CLICKDAY_SHARED_BENCH", ROOT.parent / "shared" / "bench"))
SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB = "desk_bench"


def url_for(db: str) -> str:
    return make_url(SERVER).set(database=db).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def checkpoint() -> None:
    """Write out what the seeding dirtied before a burst (desk's and anchor's alike), so that neither run
    pays for the other's setup; a server without the right to CHECKPOINT is measured as it is."""
    conn = await asyncpg.connect(url_for(DB))
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError as exc:
        print(f"clickday_bench: no CHECKPOINT before the burst ({exc})", file=sys.stderr)
    finally:
        await conn.close()


async def recreate_database() -> None:
    conn = await asyncpg.connect(url_for(make_url(SERVER).database or "postgres"))
    await conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{DB}"')
    await conn.close()


async def seed(n: int, partners: int = 1) -> tuple[list[str], list[str]]:
    """One open call, `partners` partners, N companies each delegated to one of them (in turn), N complete
    drafts, each held by its company's partner. Returns (partner ids, draft ids); draft i is partner i % partners's."""
    from services.intake.calls.service import load_rules_file

    rules = load_rules_file(CALL_FILE)
    conn = await asyncpg.connect(url_for(DB))
    now = datetime.now(UTC)
    call_id = uuid.uuid4()
    partner_ids = [uuid.uuid4() for _ in range(partners)]
    await conn.execute(
        "INSERT INTO intake.calls (id, code, title, procedure, current_version, opens_at, closes_at, demo_opens_at,"
        " demo_closes_at, budget_total, version) VALUES ($1,$2,$3,$4,1,$5,$6,$7,$8,$9,1)",
        call_id,
        rules.code,
        rules.title,
        rules.procedure,
        rules.window.opens_at,
        rules.window.closes_at,
        now - timedelta(minutes=1),
        now + timedelta(days=1),
        rules.budget_total,
    )
    await conn.execute(
        "INSERT INTO intake.call_versions (call_id, version, rules, created_by) VALUES ($1,1,$2,'bench')",
        call_id,
        orjson.dumps(rules.model_dump(mode="json")).decode(),
    )
    await conn.execute(
        "INSERT INTO intake.call_counters (call_id, last_protocol, last_chain_hash) VALUES ($1,0,$2)", call_id, GENESIS
    )
    await conn.executemany(
        "INSERT INTO intake.partners (id, name, kind, fiscal_code, version) VALUES ($1,$2,'chamber_of_commerce',$3,1)",
        [(pid, f"Camera di Commercio {i + 1} (bench)", vat_number()) for i, pid in enumerate(partner_ids)],
    )
    companies, delegations, delegates, apps, lines = [], [], [], [], []
    template = draft_body(call_id, call_id)
    vats: set[str] = set()
    for k in range(n):
        cid, aid = uuid.uuid4(), uuid.uuid4()
        partner_id = partner_ids[k % partners]
        vat = vat_number()
        while vat in vats:
            vat = vat_number()
        vats.add(vat)
        f = company_fields(vat_number=vat)
        companies.append(
            (
                cid,
                vat,
                vat,
                f["name"],
                f["legal_form"],
                f["ateco_code"],
                orjson.dumps(f["registered_office"]).decode(),
                "[]",
                False,
                f["incorporation_date"],
                f["approved_financial_statements"],
                f["headcount_awu"],
                f["turnover"],
                f["balance_sheet_total"],
                f["previous_year_export_sales"],
                "[]",
                orjson.dumps(f["export_history"]).decode(),
                "small",
                1,
                "bench",
            )
        )
        delegation_id = uuid.uuid4()
        delegations.append((delegation_id, partner_id, cid, "active", 1))
        delegates.append((cid, partner_id, delegation_id, True, now))
        apps.append(
            (
                aid,
                call_id,
                cid,
                partner_id,
                "draft",
                template["title"],
                orjson.dumps(template["action_plan"]).decode(),
                ["d", "e"],
                1,
                "bench",
                f"{aid.int % 10**14:014d}",  # the stamp duty the call requires before submit, one per draft
                date(2026, 11, 30),
            )
        )
        for i, ln in enumerate(template["expense_lines"]):
            lines.append(
                (
                    uuid.uuid4(),
                    aid,
                    i,
                    ln["category"],
                    ln["description"],
                    ln["amount"],
                    ln["target_market"],
                    ln["supplier"],
                )
            )
    await conn.copy_records_to_table(
        "companies",
        schema_name="intake",
        records=companies,
        columns=[
            "id",
            "vat_number",
            "fiscal_code",
            "name",
            "legal_form",
            "ateco_code",
            "registered_office",
            "operating_sites",
            "lombardy_site_commitment",
            "incorporation_date",
            "approved_financial_statements",
            "headcount_awu",
            "turnover",
            "balance_sheet_total",
            "previous_year_export_sales",
            "related_enterprises",
            "export_history",
            "size_class",
            "version",
            "created_by",
        ],
    )
    await conn.copy_records_to_table(
        "delegations",
        schema_name="intake",
        records=delegations,
        columns=["id", "partner_id", "company_id", "status", "version"],
    )
    # the desk-wide projection of the delegations (which partners hear a company's events)
    await conn.copy_records_to_table(
        "company_delegates",
        schema_name="desk",
        records=delegates,
        columns=["company_id", "partner_id", "delegation_id", "active", "changed_at"],
    )
    await conn.copy_records_to_table(
        "applications",
        schema_name="intake",
        records=apps,
        columns=[
            "id",
            "call_id",
            "company_id",
            "partner_id",
            "status",
            "title",
            "action_plan",
            "flat_rates",
            "version",
            "created_by",
            "stamp_duty_id",
            "stamp_duty_issued_on",
        ],
    )
    from decimal import Decimal

    await conn.copy_records_to_table(
        "expense_lines",
        schema_name="intake",
        records=[(*r[:5], Decimal(r[5]), *r[6:]) for r in lines],
        columns=["id", "application_id", "position", "category", "description", "amount", "target_market", "supplier"],
    )
    await conn.execute("ANALYZE")
    await conn.close()
    return [str(p) for p in partner_ids], [str(a[0]) for a in apps]


# A line of the ids file may carry the bearer token to submit it with, after a space (`<id> <token>`): the
# drafts of several partners are then submitted by their own partner in one burst. Patched into the shared
# script's Lua, which otherwise sends the same headers with every request.
LUA_TOKEN_PER_LINE = (
    (
        "local id = ids[(counter % #ids) + 1]",
        'local id, tok = ids[(counter % #ids) + 1]:match("^(%S+)%s*(%S*)$")',
    ),
    (
        "for k, v in pairs(headers) do h[k] = v end",
        'for k, v in pairs(headers) do h[k] = v end\n  if tok ~= "" then h["Authorization"] = "Bearer " .. tok end',
    ),
)


def run_load(
    url: str, path: str, ids_file: str, a: argparse.Namespace, headers: list[str], idem: bool = False
) -> dict[str, object]:
    # The shared script writes header keys as `[` + `[==[key]==]` + `]`, which Lua reads as `[[`, a long
    # bracket: any --header breaks its script. Run it unchanged but with a space before each long string.
    patches = "".join(
        f"assert {old!r} in c.LUA; c.LUA = c.LUA.replace({old!r}, {new!r}); " for old, new in LUA_TOKEN_PER_LINE
    )
    wrapper = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import clickday_load as c; "
        "c.lua_string = lambda s: ' [==[' + s + ']==]'; " + patches + "sys.exit(c.main())"
    )
    cmd = [
        sys.executable,
        "-c",
        wrapper,
        str(SHARED_BENCH),
        "--url",
        url,
        "--path",
        path,
        "--ids-file",
        ids_file,
        "--duration",
        str(a.duration),
        "--connections",
        str(a.connections),
    ]
    for h in headers:
        cmd += ["--header", h]
    if idem:
        cmd.append("--idempotency-key")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"load failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready: {url}")


def postgres_cpu_seconds() -> float:
    """CPU time so far of every PostgreSQL process on this machine."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if (proc.info["name"] or "").startswith("postgres"):
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time so far of the server (with its workers) and of every PostgreSQL process on this machine."""
    out = {"server": 0.0, "postgres": postgres_cpu_seconds()}
    try:
        root = psutil.Process(server_pid)
        for proc in (root, *root.children(recursive=True)):
            t = proc.cpu_times()
            out["server"] += t.user + t.system
    except psutil.Error:
        pass
    return out


def measured_load(
    server_pid: int, url: str, path: str, ids_file: str, a: argparse.Namespace, headers: list[str], idem: bool = False
) -> dict[str, object]:
    """run_load, plus the CPU each side spent per successful submit (where the time goes, not a goal)."""
    before = cpu_seconds(server_pid)
    out = run_load(url, path, ids_file, a, headers, idem)
    after = cpu_seconds(server_pid)
    ok = max(int(out["s2xx"]), 1)  # type: ignore[call-overload]
    out["cpu_us_per_2xx"] = {k: round((after[k] - before[k]) / ok * 1e6) for k in after}
    return out


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = False

    def sample(self) -> None:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            self.peak = max(self.peak, max(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass


async def verify(ids_ok: int) -> dict[str, object]:
    conn = await asyncpg.connect(url_for(DB))
    rows = await conn.fetch(
        "SELECT protocol_number, submitted_at, receipt, chain_hash FROM intake.applications "
        "WHERE status = 'submitted' ORDER BY protocol_number"
    )
    outbox = await conn.fetchval("SELECT count(*) FROM desk.outbox WHERE event_type = 'application.submitted'")
    await conn.close()
    numbers = [r["protocol_number"] for r in rows]
    stamps = [r["submitted_at"] for r in rows]
    chain = verify_chain((orjson.loads(r["receipt"]), r["chain_hash"]) for r in rows)
    return {
        "submitted_rows": len(rows),
        "events": outbox,
        "gap_free": numbers == list(range(1, len(rows) + 1)),
        "arrival_order": stamps == sorted(stamps),
        "chain_broken_at": chain,
        "rows_cover_2xx": len(rows) >= ids_ok,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--scenario",
        choices=("production", "submit"),
        default="production",
        help="production: the whole desk running (intake, evaluation, monitoring, the delivery worker), drafts of "
        "50 partners each with a webhook, 20%% edited after the pre-check; submit: intake's submit alone "
        "(with --with-worker / --no-precheck)",
    )
    p.add_argument("--drafts", type=int, default=30000)
    p.add_argument("--partners", type=int, default=50, help="production: partners holding the drafts")
    p.add_argument(
        "--edited",
        type=float,
        default=0.2,
        help="production: share of the drafts edited after the last pre-check (no current verdict)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=300,
        help="production: seconds to wait after the burst for evaluation and the webhooks to catch up",
    )
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--skip-anchor", action="store_true")
    p.add_argument("--with-worker", action="store_true", help="submit: deliver events to evaluation during the burst")
    p.add_argument(
        "--no-precheck",
        action="store_true",
        help="submit: skip `desk precheck` before the burst: every submit then runs the full pre-check",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole measurement (fresh database, desk, then anchor) and report the median "
        "ratio: on a shared machine one pair of runs can be off by a fifth either way",
    )
    a = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    if a.scenario == "production":
        results = []
        for n in range(max(a.rounds, 1)):
            results.append(production_round(a))
            print(json.dumps({"round": n + 1, **results[-1]}, default=str), flush=True)
        if len(results) > 1:
            print(json.dumps(production_summary(results), default=str))
        return 0 if all(r["checks_passed"] for r in results) else 2
    results = [one_round(a) for _ in range(max(a.rounds, 1))]
    if len(results) == 1:
        print(json.dumps(results[0], default=str))
        return 0
    summary: dict[str, object] = {"rounds": results}
    if not a.skip_anchor:
        ratios = sorted(float(r["ratio_rps"]) for r in results)  # type: ignore[arg-type]
        p99s = sorted(float(r["desk"]["p99_ms"]) for r in results)  # type: ignore[index]
        summary["ratios"] = ratios
        summary["ratio_rps_median"] = statistics.median(ratios)
        summary["desk_p99_ms_median"] = statistics.median(p99s)
        summary["goal"] = {
            "ratio>=0.5": summary["ratio_rps_median"] >= 0.5,  # type: ignore[operator]
            "p99<=100ms": summary["desk_p99_ms_median"] <= 100,
        }  # type: ignore[operator]
    summary["checks_passed"] = all(r["checks_passed"] for r in results)
    print(json.dumps(summary, default=str))
    return 0


def one_round(a: argparse.Namespace) -> dict[str, object]:
    asyncio.run(recreate_database())
    env = {
        **os.environ,
        "DESK_DATABASE_URL": url_for(DB),
        "DATABASE_URL": url_for(DB),
        "DESK_ACCESS_LOG": "false",
        "DESK_LOG_LEVEL": "WARNING",
        "DESK_RATE_LIMIT_WRITE_PER_MINUTE": "0",
        "DESK_ENVIRONMENT": "local",
    }
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    partner_ids, ids = asyncio.run(seed(a.drafts))
    partner_id = partner_ids[0]
    # What operators run before the window opens (the drafts are seeded straight into the tables, so
    # none was saved through the API, which records the verdict too).
    precheck: dict[str, object] | None = None
    if not a.no_precheck:
        out = subprocess.run(
            [sys.executable, "-m", "desk.cli", "precheck"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        precheck = json.loads(out.stdout.strip().splitlines()[-1])
    keyring = KeyRing.generate()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "key.pem").write_bytes(keyring.private_pem())
    env["DESK_SIGNING_KEY"] = keyring.private_pem().decode()
    token = mint_token(
        keyring,
        sub="bench-partner",
        kind="partner",
        scopes=list(DEFAULT_SCOPES["partner"]),
        issuer="regional-desk",
        ttl=3600,
        partner_id=uuid.UUID(partner_id),
    )
    ids_file = tmp / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")

    port, eport, mport = free_port(), free_port(), free_port()
    env.update(
        DESK_INTAKE_URL=f"http://127.0.0.1:{port}",
        DESK_EVALUATION_URL=f"http://127.0.0.1:{eport}",
        DESK_MONITORING_URL=f"http://127.0.0.1:{mport}",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "desk.cli",
            "serve",
            "intake",
            "--port",
            str(port),
            "--workers",
            str(a.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    # The other services run during the burst too, so every service's memory is measured; with
    # --with-worker the events flow as on a real click day (evaluation fetches each application).
    others = {
        name: subprocess.Popen(
            [sys.executable, "-m", "desk.cli", "serve", name, "--port", str(p), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
        )
        for name, p in (("evaluation", eport), ("monitoring", mport))
    }
    if a.with_worker:
        others["worker"] = subprocess.Popen([sys.executable, "-m", "desk.cli", "worker"], cwd=ROOT, env=env)
    samplers = {"intake": RssSampler(server.pid), **{n: RssSampler(p.pid) for n, p in others.items()}}
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        wait_ready(f"http://127.0.0.1:{eport}/readyz")
        wait_ready(f"http://127.0.0.1:{mport}/readyz")
        import threading

        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                for sampler in samplers.values():
                    sampler.sample()
                time.sleep(0.25)

        t = threading.Thread(target=poll, daemon=True)
        asyncio.run(checkpoint())
        t.start()
        desk = measured_load(
            server.pid,
            f"http://127.0.0.1:{port}",
            "/v1/applications/{id}/submit",
            str(ids_file),
            a,
            [f"Authorization: Bearer {token}"],
            idem=True,
        )
        stop.set()
        t.join()
    finally:
        for proc in (server, *others.values()):
            proc.send_signal(signal.SIGTERM)
        for proc in (server, *others.values()):
            proc.wait(timeout=30)
    checks = asyncio.run(verify(int(desk["s2xx"])))  # type: ignore[arg-type]
    rss = {name: round(s.peak / 2**20, 1) for name, s in samplers.items()}
    result: dict[str, object] = {
        "desk": desk,
        "checks": checks,
        "peak_rss_mb": rss,
        "checks_passed": bool(
            checks["gap_free"]
            and checks["arrival_order"]
            and checks["chain_broken_at"] is None
            and checks["rows_cover_2xx"]
            and desk["s5xx"] == 0
        ),
        "rss_under_200mb": all(v < 200 for v in rss.values()),
        "workers": a.workers,
        "drafts": a.drafts,
        "with_worker": a.with_worker,
        "precheck": precheck,
    }

    if not a.skip_anchor:
        anchor_run = run_anchor(a, tmp)
        result["anchor"] = anchor_run
        result["ratio_rps"] = round(float(desk["rps_2xx"]) / float(anchor_run["rps_2xx"]), 3)  # type: ignore[arg-type]
        result["goal"] = {"ratio>=0.5": result["ratio_rps"] >= 0.5, "p99<=100ms": float(desk["p99_ms"]) <= 100}  # type: ignore[arg-type, operator]
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def run_anchor(a: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """The anchor on the same PostgreSQL (its own table in the bench database), right after the desk's run."""
    anchor_env = {**os.environ, "ANCHOR_DSN": url_for(DB)}
    subprocess.run([sys.executable, str(SHARED_BENCH / "anchor_app.py"), "seed", "300000"], env=anchor_env, check=True)
    aport = free_port()
    anchor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "anchor_app:app",
            "--port",
            str(aport),
            "--workers",
            str(a.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=SHARED_BENCH,
        env=anchor_env,
    )
    try:
        time.sleep(1.5)
        wait_ready(f"http://127.0.0.1:{aport}/docs")
        asyncio.run(checkpoint())
        aids = tmp / "anchor_ids.txt"
        aids.write_text("\n".join(str(i) for i in range(1, 300001)) + "\n")
        return measured_load(anchor.pid, f"http://127.0.0.1:{aport}", "/drafts/{id}/submit", str(aids), a, [])
    finally:
        anchor.send_signal(signal.SIGTERM)
        anchor.wait(timeout=30)


# ---------------------------------------------------------------- the production-like scenario

EVALUATED = "SELECT count(*) FROM evaluation.evaluations"


class ProcessWatch:
    """Per process: CPU seconds (the process with its children) and peak RSS; and the CPU of the PostgreSQL
    backends serving the bench database (found by their process title, `postgres: user desk_bench ...`),
    followed while they come and go: a backend's time counts from the start of the measurement, or from its
    birth if later (a backend that exits loses only the time since the last sample). `postgres_all` is every
    PostgreSQL process of the machine, followed the same way (other databases' work included)."""

    def __init__(self, procs: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}
        self.peak_rss = dict.fromkeys(procs, 0)
        self.backend_base: dict[int, float] = {}
        self.backend_last: dict[int, float] = {}
        self.pg_base: dict[int, float] = {}
        self.pg_last: dict[int, float] = {}
        self.backend_peak_rss = 0
        self.started = False

    @staticmethod
    def _tree(proc: psutil.Process) -> list[psutil.Process]:
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return []

    @staticmethod
    def _postgres() -> list[tuple[int, float, int, bool]]:
        """Every PostgreSQL process: pid, CPU seconds, RSS, whether it serves the bench database."""
        out = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                if not (proc.info["name"] or "").startswith("postgres"):
                    continue
                title = " ".join(proc.info["cmdline"] or ())
                t = proc.cpu_times()
                out.append((proc.pid, t.user + t.system, proc.memory_info().rss, f" {DB} " in title))
            except psutil.Error:
                pass
        return out

    def start(self) -> None:
        now = self._postgres()
        self.backend_base = {pid: cpu for pid, cpu, _, ours in now if ours}
        self.backend_last = dict(self.backend_base)
        self.pg_base = {pid: cpu for pid, cpu, _, _ in now}
        self.pg_last = dict(self.pg_base)
        self.started = True

    def sample(self) -> None:
        for name, proc in self.procs.items():
            for p in self._tree(proc):
                try:
                    self.peak_rss[name] = max(self.peak_rss[name], p.memory_info().rss)
                except psutil.Error:
                    pass
        if self.started:
            for pid, cpu, rss, ours in self._postgres():
                self.pg_base.setdefault(pid, 0.0)
                self.pg_last[pid] = cpu
                if ours:
                    self.backend_base.setdefault(pid, 0.0)
                    self.backend_last[pid] = cpu
                    self.backend_peak_rss = max(self.backend_peak_rss, rss)

    def cpu(self) -> dict[str, float]:
        self.sample()
        out: dict[str, float] = {}
        for name, proc in self.procs.items():
            total = 0.0
            for p in self._tree(proc):
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
            out[name] = total
        out["postgres_backends"] = sum(self.backend_last[p] - self.backend_base[p] for p in self.backend_last)
        out["postgres_all"] = sum(self.pg_last[p] - self.pg_base[p] for p in self.pg_last)
        return out


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 2) for k in after}


async def edit_after_precheck(ids: list[str]) -> int:
    """What a company does in the last minute: the draft saved once more after the pre-check (a new version,
    a new title), so its verdict is no longer current and its submit takes the full path."""
    conn = await asyncpg.connect(url_for(DB))
    try:
        await conn.execute(
            "UPDATE intake.applications SET title = title || ' (rivisto)', version = version + 1, updated_at = now()"
            " WHERE id = ANY($1::uuid[])",
            ids,
        )
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM intake.applications WHERE status = 'draft' AND precheck_version = version"
            )
        )
    finally:
        await conn.close()


async def subscribe(partner_ids: list[str], receiver: str) -> dict[str, str]:
    """One webhook subscription per partner to `application.submitted`, at the receiver; {subscription: secret}."""
    from shared.events.signing import new_webhook_secret

    subs = {str(uuid.uuid4()): (pid, new_webhook_secret()) for pid in partner_ids}
    conn = await asyncpg.connect(url_for(DB))
    try:
        await conn.executemany(
            "INSERT INTO desk.subscriptions (id, owner_kind, partner_id, url, event_types, description, active, secret,"
            " version, created_by) VALUES ($1::uuid, 'partner', $2::uuid, $3, ARRAY['application.submitted'],"
            " 'bench', true, $4, 1, 'bench')",
            [(sid, pid, f"{receiver}/hooks/{sid}", secret) for sid, (pid, secret) in subs.items()],
        )
    finally:
        await conn.close()
    return {sid: secret for sid, (_, secret) in subs.items()}


async def drain(receiver: str, limit_s: float) -> dict[str, object]:
    """After the burst: poll until evaluation has an evaluation of every submitted application and the receiver
    has every expected webhook (one per submitted event and subscription), or for `limit_s` seconds."""
    conn = await asyncpg.connect(url_for(DB))
    started = time.monotonic()
    out: dict[str, object] = {"timeout_s": limit_s}
    try:
        submitted = int(await conn.fetchval("SELECT count(*) FROM intake.applications WHERE status = 'submitted'"))
        expected = int(
            await conn.fetchval(
                "SELECT count(*) FROM desk.outbox o JOIN desk.subscriptions s ON s.owner_kind = 'partner'"
                " AND s.partner_id = o.partner_id WHERE o.event_type = 'application.submitted'"
            )
        )
        evaluated = hooks = 0
        eval_s: float | None = None
        hooks_s: float | None = None
        async with httpx.AsyncClient() as http:
            while True:
                elapsed = time.monotonic() - started
                if eval_s is None:
                    evaluated = int(await conn.fetchval(EVALUATED))
                    if evaluated >= submitted:
                        eval_s = round(elapsed, 1)
                if hooks_s is None:
                    hooks = int((await http.get(f"{receiver}/counts?summary=1")).json()["distinct"])
                    if hooks >= expected:
                        hooks_s = round(elapsed, 1)
                if (eval_s is not None and hooks_s is not None) or elapsed > limit_s:
                    break
                await asyncio.sleep(0.5)
    finally:
        await conn.close()
    out.update(
        submitted=submitted,
        evaluated=evaluated,
        evaluation_drain_s=eval_s if eval_s is not None else "not drained",
        webhooks_expected=expected,
        webhooks_received=hooks,
        webhooks_drain_s=hooks_s if hooks_s is not None else "not drained",
    )
    return out


async def verify_downstream(counts: dict[str, dict[str, int]]) -> dict[str, object]:
    """Every submitted application evaluated exactly once; every webhook delivered once per subscription."""
    conn = await asyncpg.connect(url_for(DB))
    try:
        not_evaluated = await conn.fetchval(
            "SELECT count(*) FROM intake.applications a WHERE a.status = 'submitted'"
            " AND NOT EXISTS (SELECT 1 FROM evaluation.evaluations e WHERE e.application_id = a.id)"
        )
        evaluated_not_submitted = await conn.fetchval(
            "SELECT count(*) FROM evaluation.evaluations e WHERE NOT EXISTS"
            " (SELECT 1 FROM intake.applications a WHERE a.id = e.application_id AND a.status = 'submitted')"
        )
        # an admissibility run records its `evaluation.admissibility_completed`: two for one application = twice
        twice = await conn.fetchrow(
            "SELECT count(*) AS apps, coalesce(sum(n - 1), 0) AS extra FROM (SELECT aggregate_id, count(*) AS n"
            " FROM desk.outbox WHERE event_type = 'evaluation.admissibility_completed' GROUP BY aggregate_id) x"
            " WHERE n > 1"
        )
        admissibility_runs = await conn.fetchval(
            "SELECT count(*) FROM desk.outbox WHERE event_type = 'evaluation.admissibility_completed'"
        )
        inbox = await conn.fetchval("SELECT count(*) FROM evaluation.inbox WHERE event_type = 'application.submitted'")
        expected = {
            (r["sub"], r["ev"])
            for r in await conn.fetch(
                "SELECT s.id::text AS sub, o.event_id::text AS ev FROM desk.outbox o JOIN desk.subscriptions s"
                " ON s.owner_kind = 'partner' AND s.partner_id = o.partner_id"
                " WHERE o.event_type = 'application.submitted'"
            )
        }
        deliveries = {
            r["status"]: r["n"]
            for r in await conn.fetch(
                "SELECT d.status, count(*) AS n FROM desk.deliveries d JOIN desk.subscriptions s"
                " ON s.id = d.subscription_id WHERE s.owner_kind = 'partner' GROUP BY d.status"
            )
        }
    finally:
        await conn.close()
    received = {(sub, ev) for sub, evs in counts.items() for ev in evs}
    duplicates = sum(n - 1 for evs in counts.values() for n in evs.values())
    return {
        "not_evaluated": not_evaluated,
        "evaluated_not_submitted": evaluated_not_submitted,
        "evaluated_twice": twice["apps"],
        "admissibility_runs": admissibility_runs,
        "inbox_submitted_events": inbox,
        "webhooks_expected": len(expected),
        "webhooks_missing": len(expected - received),
        "webhooks_unexpected": len(received - expected),
        "webhooks_duplicates": duplicates,
        "partner_deliveries": deliveries,
    }


def production_round(a: argparse.Namespace) -> dict[str, object]:
    import random
    import threading

    asyncio.run(recreate_database())
    env = {
        **os.environ,
        "DESK_DATABASE_URL": url_for(DB),
        "DATABASE_URL": url_for(DB),
        "DESK_ACCESS_LOG": "false",
        "DESK_LOG_LEVEL": "WARNING",
        "DESK_RATE_LIMIT_WRITE_PER_MINUTE": "0",
        "DESK_ENVIRONMENT": "local",
    }
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    seeding = time.monotonic()
    partner_ids, ids = asyncio.run(seed(a.drafts, a.partners))
    out = subprocess.run(
        [sys.executable, "-m", "desk.cli", "precheck"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    precheck = json.loads(out.stdout.strip().splitlines()[-1])
    edited = sorted(random.Random(14).sample(range(len(ids)), round(len(ids) * a.edited)))
    current = asyncio.run(edit_after_precheck([ids[i] for i in edited]))
    tmp = Path(tempfile.mkdtemp())
    rport, port, eport, mport = free_port(), free_port(), free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{rport}"
    secrets_file = tmp / "secrets.json"
    secrets_file.write_text(json.dumps(asyncio.run(subscribe(partner_ids, receiver_url))))
    keyring = KeyRing.generate()
    env["DESK_SIGNING_KEY"] = keyring.private_pem().decode()
    tokens = {
        pid: mint_token(
            keyring,
            sub=f"bench-partner-{i}",
            kind="partner",
            scopes=list(DEFAULT_SCOPES["partner"]),
            issuer="regional-desk",
            ttl=3600,
            partner_id=uuid.UUID(pid),
        )
        for i, pid in enumerate(partner_ids)
    }
    ids_file = tmp / "ids.txt"  # each draft with its own partner's token (draft k is partner k % partners's)
    ids_file.write_text("".join(f"{d} {tokens[partner_ids[k % len(partner_ids)]]}\n" for k, d in enumerate(ids)))
    seeded_s = round(time.monotonic() - seeding, 1)

    env.update(
        DESK_INTAKE_URL=f"http://127.0.0.1:{port}",
        DESK_EVALUATION_URL=f"http://127.0.0.1:{eport}",
        DESK_MONITORING_URL=f"http://127.0.0.1:{mport}",
    )
    procs: dict[str, subprocess.Popen[bytes]] = {
        "receiver": subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("webhook_receiver.py")),
                *("--port", str(rport), "--secrets", str(secrets_file)),
            ],
            cwd=ROOT,
        )
    }
    for name, p in (("intake", port), ("evaluation", eport), ("monitoring", mport)):
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "desk.cli", "serve", name, "--port", str(p), "--log-level", "warning"]
            + (["--workers", str(a.workers)] if name == "intake" else []),
            cwd=ROOT,
            env=env,
        )
    result: dict[str, object] = {
        "scenario": "production",
        "drafts": a.drafts,
        "partners": a.partners,
        "edited_after_precheck": len(edited),
        "current_verdicts": current,
        "precheck": precheck,
        "seeding_s": seeded_s,
    }
    try:
        wait_ready(f"{receiver_url}/counts?summary=1")
        for p in (port, eport, mport):
            wait_ready(f"http://127.0.0.1:{p}/readyz")
        procs["worker"] = subprocess.Popen([sys.executable, "-m", "desk.cli", "worker"], cwd=ROOT, env=env)
        time.sleep(1.0)  # the worker registers the internal subscriptions as it starts
        watch = ProcessWatch({n: p.pid for n, p in procs.items()})
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                watch.sample()
                time.sleep(0.5)

        asyncio.run(checkpoint())
        watch.start()
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        cpu0 = watch.cpu()
        desk = run_load(f"http://127.0.0.1:{port}", "/v1/applications/{id}/submit", str(ids_file), a, [], idem=True)
        cpu1 = watch.cpu()
        drained = asyncio.run(drain(receiver_url, a.drain_timeout))
        cpu2 = watch.cpu()
        counts = httpx.get(f"{receiver_url}/counts", timeout=30).json()
        stop.set()
        t.join()
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early with code {proc.returncode}")
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # When the burst outlasts the drafts, wrk sends ids again with the same Idempotency-Key: those 2xx are
    # replays of the stored answer, not new submissions, so at most one row per draft is expected.
    checks = asyncio.run(verify(min(int(desk["s2xx"]), a.drafts)))  # type: ignore[call-overload]
    checks["replayed_2xx"] = max(int(desk["s2xx"]) - a.drafts, 0)  # type: ignore[call-overload]
    checks.update(asyncio.run(verify_downstream(counts["counts"])))
    checks["bad_signatures"] = counts["bad_signature"]
    checks["unknown_subscription"] = counts["unknown_subscription"]
    ok = max(int(checks["submitted_rows"]), 1)  # type: ignore[call-overload]
    total = cpu_between(cpu0, cpu2)
    rss = {name: round(v / 2**20, 1) for name, v in watch.peak_rss.items()}
    rss["postgres_backend_max"] = round(watch.backend_peak_rss / 2**20, 1)
    result.update(
        desk=desk,
        drain=drained,
        cpu_seconds={"burst": cpu_between(cpu0, cpu1), "burst_and_drain": total},
        cpu_us_per_submit={k: round(v / ok * 1e6) for k, v in total.items()},
        peak_rss_mb=rss,
        checks=checks,
    )
    result["checks_passed"] = bool(
        checks["gap_free"]
        and checks["arrival_order"]
        and checks["chain_broken_at"] is None
        and checks["rows_cover_2xx"]
        and checks["events"] == checks["submitted_rows"]
        and desk["s5xx"] == 0
        and checks["not_evaluated"] == 0
        and checks["evaluated_not_submitted"] == 0
        and checks["evaluated_twice"] == 0
        and checks["webhooks_missing"] == 0
        and checks["webhooks_unexpected"] == 0
        and checks["bad_signatures"] == 0
    )
    if not a.skip_anchor:
        anchor = run_anchor(a, tmp)
        result["anchor"] = anchor
        result["ratio_rps"] = round(float(desk["rps_2xx"]) / float(anchor["rps_2xx"]), 3)  # type: ignore[arg-type]
    eval_s = drained["evaluation_drain_s"]
    result["goal"] = {
        "ratio>=0.7": float(result.get("ratio_rps", 0)) >= 0.7,  # type: ignore[arg-type]
        "p99<=150ms": float(desk["p99_ms"]) <= 150,  # type: ignore[arg-type]
        "no_errors": desk["s4xx"] == 0 and desk["s5xx"] == 0 and desk["socket_errors"] == 0,
        "drained<=60s": isinstance(eval_s, float) and eval_s <= 60,
        "rss<200MB": all(v < 200 for k, v in rss.items() if k != "postgres_backend_max"),
    }
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def production_summary(results: list[dict[str, object]]) -> dict[str, object]:
    """Each round's headline figures, and their spread over the rounds."""

    def figures(r: dict[str, Any]) -> dict[str, object]:
        return {
            "desk_rps": r["desk"]["rps_2xx"],
            "anchor_rps": r.get("anchor", {}).get("rps_2xx"),
            "ratio": r.get("ratio_rps"),
            "desk_p99_ms": r["desk"]["p99_ms"],
            "evaluation_drain_s": r["drain"]["evaluation_drain_s"],
            "webhooks_drain_s": r["drain"]["webhooks_drain_s"],
            "checks_passed": r["checks_passed"],
        }

    rounds = [figures(r) for r in results]
    out: dict[str, object] = {"scenario": "production", "per_round": rounds}
    for key in ("desk_rps", "anchor_rps", "ratio", "desk_p99_ms", "evaluation_drain_s", "webhooks_drain_s"):
        values = [float(f[key]) for f in rounds if isinstance(f[key], int | float)]  # type: ignore[arg-type]
        if values:
            out[key] = spread(values)
    out["not_drained_rounds"] = sum(
        1 for f in rounds if "not drained" in (f["evaluation_drain_s"], f["webhooks_drain_s"])
    )
    out["checks_passed"] = all(f["checks_passed"] for f in rounds)
    return out


if __name__ == "__main__":
    sys.exit(main())
