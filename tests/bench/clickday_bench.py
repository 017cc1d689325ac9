"""Click-day benchmark: the desk's submit against the anchor, same machine, same PostgreSQL.

Seeds N complete drafts (one partner holding delegations for N companies, one open call), starts
intake under uvicorn, fires one submit per draft with wrk through ../shared/bench/clickday_load.py,
then does the same against ../shared/bench/anchor_app.py; prints both runs, the ratio desk/anchor
and the checks: every 2xx has its row and receipt, protocol numbers unique, gap-free and in server
arrival order, the receipt chain verifies, no 5xx, and each service's peak RSS (evaluation and
monitoring run beside intake; with --with-worker the delivery worker feeds them during the burst).

    python tests/bench/clickday_bench.py [--drafts 40000] [--duration 10] [--connections 64] [--workers 1]
                                         [--with-worker] [--skip-anchor] [--no-precheck] [--rounds 1]

Before the burst it runs `desk precheck`, as operators do before a window opens, so each submit commits
in one statement; --no-precheck measures the full path (load, pre-check, commit) instead.

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


async def seed(n: int) -> tuple[str, list[str]]:
    """One open call, one partner, N companies delegated to it, N complete drafts. Returns (partner_id, ids)."""
    from services.intake.calls.service import load_rules_file

    rules = load_rules_file(CALL_FILE)
    conn = await asyncpg.connect(url_for(DB))
    now = datetime.now(UTC)
    call_id, partner_id = uuid.uuid4(), uuid.uuid4()
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
    await conn.execute(
        "INSERT INTO intake.partners (id, name, kind, fiscal_code, version) VALUES "
        "($1,'Camera di Commercio (bench)','chamber_of_commerce',$2,1)",
        partner_id,
        vat_number(),
    )
    companies, delegations, apps, lines = [], [], [], []
    template = draft_body(call_id, call_id)
    vats: set[str] = set()
    for _ in range(n):
        cid, aid = uuid.uuid4(), uuid.uuid4()
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
        delegations.append((uuid.uuid4(), partner_id, cid, "active", 1))
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
    return str(partner_id), [str(a[0]) for a in apps]


def run_load(
    url: str, path: str, ids_file: str, a: argparse.Namespace, headers: list[str], idem: bool = False
) -> dict[str, object]:
    # The shared script writes header keys as `[` + `[==[key]==]` + `]`, which Lua reads as `[[`, a long
    # bracket: any --header breaks its script. Run it unchanged but with a space before each long string.
    wrapper = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import clickday_load as c; "
        "c.lua_string = lambda s: ' [==[' + s + ']==]'; sys.exit(c.main())"
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


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time so far of the server (with its workers) and of every PostgreSQL process on this machine."""
    out = {"server": 0.0, "postgres": 0.0}
    try:
        root = psutil.Process(server_pid)
        for proc in (root, *root.children(recursive=True)):
            t = proc.cpu_times()
            out["server"] += t.user + t.system
    except psutil.Error:
        pass
    for proc in psutil.process_iter(["name"]):
        try:
            if (proc.info["name"] or "").startswith("postgres"):
                t = proc.cpu_times()
                out["postgres"] += t.user + t.system
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
    p.add_argument("--drafts", type=int, default=40000)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--skip-anchor", action="store_true")
    p.add_argument("--with-worker", action="store_true", help="deliver events to evaluation during the burst")
    p.add_argument(
        "--no-precheck",
        action="store_true",
        help="skip `desk precheck` before the burst: every submit then runs the full pre-check",
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
    partner_id, ids = asyncio.run(seed(a.drafts))
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
        anchor_env = {**os.environ, "ANCHOR_DSN": url_for(DB)}
        subprocess.run(
            [sys.executable, str(SHARED_BENCH / "anchor_app.py"), "seed", "300000"], env=anchor_env, check=True
        )
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
            anchor_run = measured_load(anchor.pid, f"http://127.0.0.1:{aport}", "/drafts/{id}/submit", str(aids), a, [])
        finally:
            anchor.send_signal(signal.SIGTERM)
            anchor.wait(timeout=30)
        result["anchor"] = anchor_run
        result["ratio_rps"] = round(float(desk["rps_2xx"]) / float(anchor_run["rps_2xx"]), 3)  # type: ignore[arg-type]
        result["goal"] = {"ratio>=0.5": result["ratio_rps"] >= 0.5, "p99<=100ms": float(desk["p99_ms"]) <= 100}  # type: ignore[arg-type, operator]
    shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
