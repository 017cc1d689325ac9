"""Where a full-path submit goes: CPU per submit of intake and of PostgreSQL, and a profile of both.

The full path is the submit of a draft with no current pre-check verdict (edited after its last check, or
never checked): intake loads the draft, runs the call's rules, hashes the content and commits. Each round
seeds N such drafts (as `clickday_bench.py --no-precheck` does, in its own database), starts intake under
uvicorn, submits a warm-up share of the drafts, then submits the rest with C concurrent clients and reports

- intake's CPU per submit: the server process's user + system CPU time (from /proc) over the burst, divided
  by the 201 answers;
- PostgreSQL's CPU per submit: the user + system CPU time of the backends connected to this database
  (their pids from pg_stat_activity, their times from /proc), divided likewise. The server's shared
  processes (WAL writer, checkpointer) are not counted; pg_stat_statements needs
  shared_preload_libraries, which a shared server seldom has, so the statement table below comes from the
  client side instead.

With --profile a last pass runs intake under cProfile, with every asyncpg call timed by statement: it
prints intake's top functions (cumulative and own time per submit) and the statements by time per submit,
plus PostgreSQL's own time in each SQL function (pg_stat_user_functions, `track_functions = all` on this
database). The profiler slows intake down several times: its CPU figures are not the measured ones.

Every round checks that each 201 is stored, numbers gap-free, in arrival order, the chain verified.

    python tests/bench/submit_profile.py [--drafts 3000] [--warmup 300] [--concurrency 16] [--rounds 3]
                                         [--profile] [--precheck]

--precheck runs `desk precheck` first, for the click-day path's figures to compare with. Needs a PostgreSQL
(BENCH_DATABASE_URL, default the local server at 127.0.0.1:5432, a superuser for `track_functions`) on this
machine (its backends' CPU is read from /proc); creates and drops the database `desk_submit_profile`
(--database).
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import clickday_bench as bench  # noqa: E402

bench.DB = "desk_submit_profile"  # the seeding and checks of the click-day benchmark, on a database of our own


# ---------------------------------------------------------------- the profiled server


def serve_profiled(out_dir: str, argv: list[str]) -> None:
    """Run `desk serve …` in this process under cProfile, each asyncpg call timed by statement; on exit write
    `intake.prof` and `sql.json` into out_dir."""
    import asyncpg.connection
    import asyncpg.pool

    timings: dict[str, list[float]] = {}

    def timed(name: str) -> None:
        original = getattr(asyncpg.connection.Connection, name)

        async def wrapper(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(self, query, *args, **kwargs)
            finally:
                key = " ".join(query.split())[:110]
                entry = timings.setdefault(key, [0, 0.0, 0])
                entry[0] += 1
                entry[1] += time.perf_counter() - started
                entry[2] += len(args[0]) if name in ("fetchmany", "executemany") and args else 1

        setattr(asyncpg.connection.Connection, name, wrapper)

    for name in ("fetch", "fetchrow", "fetchval", "fetchmany", "execute", "executemany"):
        timed(name)
    profiler = cProfile.Profile(time.thread_time)  # CPU time: a busy machine's waits are not charged

    def start(*_: Any) -> None:  # SIGUSR1: the burst begins (start-up and warm-up are not profiled)
        timings.clear()
        profiler.enable()

    def stop(*_: Any) -> None:  # SIGUSR2: the burst is over
        profiler.disable()
        profiler.dump_stats(os.path.join(out_dir, "intake.prof"))
        Path(out_dir, "sql.json").write_text(json.dumps(timings))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from desk.cli import app

    sys.argv = ["desk", *argv]
    app(standalone_mode=False)


# ---------------------------------------------------------------- measuring


def backend_pids(dsn: str) -> set[int]:
    async def pids() -> set[int]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", bench.DB
            )
        finally:
            await conn.close()
        return {r["pid"] for r in rows}

    return asyncio.run(pids())


def cpu_of(pids: set[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def process_cpu(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(t.user + t.system for t in (p.cpu_times() for p in (root, *root.children(recursive=True))))


async def drive(base: str, token: str, ids: list[str], concurrency: int) -> dict[str, int]:
    """Submit each draft once, `concurrency` at a time, each with its own Idempotency-Key; count the answers."""
    counts: dict[str, int] = {}
    queue = iter(ids)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def client() -> None:
            for application_id in queue:
                r = await c.post(
                    f"/v1/applications/{application_id}/submit",
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                counts[str(r.status_code)] = counts.get(str(r.status_code), 0) + 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return counts


def start_intake(env: dict[str, str], port: int, profile_dir: str | None) -> subprocess.Popen[bytes]:
    serve = ["serve", "intake", "--port", str(port), "--log-level", "warning"]
    if profile_dir is None:
        cmd = [sys.executable, "-m", "desk.cli", *serve]
    else:
        cmd = [sys.executable, str(Path(__file__)), "--serve-profiled", profile_dir, "--", *serve]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    bench.wait_ready(f"http://127.0.0.1:{port}/readyz")
    return proc


def prepare(a: argparse.Namespace) -> tuple[dict[str, str], str, list[str]]:
    """A fresh migrated database with N drafts; the server's environment, a partner's token, the draft ids."""
    asyncio.run(bench.recreate_database())
    env = {
        **os.environ,
        "DESK_DATABASE_URL": bench.url_for(bench.DB),
        "DATABASE_URL": bench.url_for(bench.DB),
        "DESK_ACCESS_LOG": "false",
        "DESK_LOG_LEVEL": "WARNING",
        "DESK_RATE_LIMIT_WRITE_PER_MINUTE": "0",
        "DESK_ENVIRONMENT": "local",
    }
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    (partner_id,), ids = asyncio.run(bench.seed(a.drafts))  # one partner holds every draft

    async def track_functions() -> None:
        conn = await asyncpg.connect(bench.url_for(bench.DB))
        try:
            await conn.execute(f"ALTER DATABASE \"{bench.DB}\" SET track_functions = 'all'")
        except asyncpg.PostgresError as exc:
            print(f"submit_profile: no per-function times ({exc})", file=sys.stderr)
        finally:
            await conn.close()

    asyncio.run(track_functions())
    if a.precheck:
        subprocess.run(
            [sys.executable, "-m", "desk.cli", "precheck"], cwd=ROOT, env=env, check=True, capture_output=True
        )
    from shared.auth import DEFAULT_SCOPES, KeyRing, mint_token

    keyring = KeyRing.generate()
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
    return env, token, ids


def one_round(a: argparse.Namespace, profile_dir: str | None = None) -> dict[str, Any]:
    env, token, ids = prepare(a)
    port = bench.free_port()
    server = start_intake(env, port, profile_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        warm = asyncio.run(drive(base, token, ids[: a.warmup], a.concurrency))
        pids = backend_pids(bench.url_for(bench.DB))
        if profile_dir is not None:
            server.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
        pg_before, intake_before, started = cpu_of(pids), process_cpu(server.pid), time.perf_counter()
        counts = asyncio.run(drive(base, token, ids[a.warmup :], a.concurrency))
        elapsed = time.perf_counter() - started
        intake_after = process_cpu(server.pid)
        pids_after = backend_pids(bench.url_for(bench.DB))
        pg_after = cpu_of(pids | pids_after)
        if profile_dir is not None:
            server.send_signal(signal.SIGUSR2)
            deadline = time.time() + 30
            while not Path(profile_dir, "sql.json").exists() and time.time() < deadline:
                time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    ok = counts.get("201", 0)
    pg = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_after.items())
    checks = asyncio.run(bench.verify(ok + warm.get("201", 0)))
    return {
        "answers": counts,
        "warmup_answers": warm,
        "submits_per_s": round(ok / elapsed, 1),
        "intake_cpu_us_per_submit": round((intake_after - intake_before) / max(ok, 1) * 1e6),
        "postgres_cpu_us_per_submit": round(pg / max(ok, 1) * 1e6),
        "postgres_backends": len(pids | pids_after),
        "checks": checks,
        "checks_passed": bool(
            checks["gap_free"]
            and checks["arrival_order"]
            and checks["chain_broken_at"] is None
            and checks["rows_cover_2xx"]
            and ok == len(ids) - a.warmup
        ),
    }


def function_times() -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(bench.url_for(bench.DB))
        try:
            await asyncio.sleep(0.6)  # the statistics collector's flush
            rows = await conn.fetch(
                "SELECT schemaname || '.' || funcname AS function, calls, total_time, self_time"
                " FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 8"
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    return asyncio.run(read())


def report_profile(a: argparse.Namespace, out: dict[str, Any], profile_dir: str, submits: int) -> None:
    stats = pstats.Stats(os.path.join(profile_dir, "intake.prof"))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())

    def name(func: tuple[str, int, str]) -> str:
        file, line, fn = func
        file = file.replace(str(ROOT) + "/", "")
        if "site-packages/" in file:
            file = file.split("site-packages/", 1)[1]
        return f"{file}:{line}({fn})"

    def top(key: Callable[[tuple[Any, ...]], float], n: int) -> list[dict[str, Any]]:
        rows = sorted(raw.items(), key=lambda kv: key(kv[1]), reverse=True)[:n]
        return [
            {
                "function": name(f),
                "calls_per_submit": round(v[1] / submits, 2),
                "own_us_per_submit": round(v[2] / submits * 1e6),
                "cumulative_us_per_submit": round(v[3] / submits * 1e6),
            }
            for f, v in rows
        ]

    sql = json.loads(Path(profile_dir, "sql.json").read_text())
    out["profile"] = {
        "submits": submits,
        "profiled_cpu_us_per_submit": round(total / submits * 1e6),
        "top_cumulative": top(lambda v: v[3], a.top),
        "top_own": top(lambda v: v[2], a.top),
        "sql_by_time": sorted(
            (
                {
                    "statement": k,
                    "calls_per_submit": round(v[0] / submits, 3),
                    "rows_per_submit": round(v[2] / submits, 3),
                    "client_us_per_submit": round(v[1] / submits * 1e6),
                }
                for k, v in sql.items()
            ),
            key=lambda r: -r["client_us_per_submit"],
        )[: a.top],
        "postgres_functions": function_times(),
    }


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-profiled":
        serve_profiled(sys.argv[2], sys.argv[4:])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--drafts", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=300, help="submits before the measurement (pools, caches)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="a last round under cProfile, with statement timings")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--profile-dir", help="keep intake.prof (for pstats, snakeviz) and sql.json here")
    p.add_argument("--precheck", action="store_true", help="run `desk precheck` first (the click-day path)")
    p.add_argument("--database", default=bench.DB, help="the database it creates and drops")
    a = p.parse_args()
    bench.DB = a.database
    rounds = [one_round(a) for _ in range(a.rounds)]
    out: dict[str, Any] = {"rounds": rounds, "full_path": not a.precheck}
    for k in ("intake_cpu_us_per_submit", "postgres_cpu_us_per_submit", "submits_per_s"):
        values = [r[k] for r in rounds]
        if values:
            out[k] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    if a.profile:
        with tempfile.TemporaryDirectory() as scratch:
            profile_dir = a.profile_dir or scratch
            os.makedirs(profile_dir, exist_ok=True)
            for stale in ("intake.prof", "sql.json"):
                Path(profile_dir, stale).unlink(missing_ok=True)
            profiled = one_round(a, profile_dir)
            out["profiled_round"] = {k: profiled[k] for k in ("answers", "checks_passed")}
            report_profile(a, out, profile_dir, profiled["answers"].get("201", 1))
    out["checks_passed"] = all(r["checks_passed"] for r in rounds)
    print(json.dumps(out, indent=1, default=str))
    return 0 if out["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
