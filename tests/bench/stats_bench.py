"""Benchmark of the statistics: `GET /v1/stats` through the monitoring app against the raw SQL aggregate.

Not a test (pytest does not collect it: the name does not start with ``test_``). Run it with

    .venv/bin/python -m tests.bench.stats_bench [--applications 100000] [--lines 1000000] [--requests 50]

It creates a scratch database next to ``BENCH_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it with Alembic, and seeds with COPY one call of
``--applications`` application facts (fixed seed: provinces, ATECO sections and size classes weighted, one to
three target markets drawn from 60 countries with a long tail, submissions peaking at the window's opening),
a project per funded application and ``--lines`` expense lines (claim lines) over those projects. Then, for each
``group_by``, it times ``--requests`` requests of ``GET /v1/stats`` through the app as deployed (httpx +
ASGITransport, an officer's token, the real database, the statistics cache on; intake's call is a stub, as the app
caches it anyway), ``--cold-requests`` through an app without the cache (every request runs the aggregate), and
``--requests`` runs of the statement the service runs, straight on asyncpg (the raw SQL aggregate); for hour, day
and market also a naive all-in-SQL statement for comparison. It prints one JSON line and drops the database
(``--keep`` keeps it; ``--reuse NAME`` measures a kept one again without seeding). Exit status 0 when every p50
through the app is under 100 ms, 2 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_MS = 100.0
SEED = 20250603
GROUP_BYS = (None, "province", "ateco_section", "size_class", "market", "continent", "day", "hour")

PROVINCES = {
    "MI": 32,
    "BS": 12,
    "BG": 11,
    "MB": 9,
    "VA": 9,
    "CO": 6,
    "PV": 5,
    "MN": 4,
    "CR": 4,
    "LC": 3,
    "LO": 2,
    "SO": 2,
}
SECTIONS = {"C": 55, "G": 20, "M": 8, "J": 6, "N": 4, "H": 3, "F": 2, "A": 2}
SIZES = {"micro": 45, "small": 38, "medium": 17}
COUNTRIES = (
    "US CN DE FR AE GB CH JP IN BR CA MX ES SA TR VN KR AU SG ZA PL NL BE AT SE NO DK IL EG MA "
    "NG KE TH MY ID PH CL AR CO PE QA KW OM KZ UZ RS UA RO HU CZ GR PT IE NZ TN GH ET DZ"
).split()

NAIVE = {
    "hour": "SELECT date_trunc('hour', submitted_at AT TIME ZONE 'Europe/Rome') AS key, {aggs} "
    "FROM monitoring.application_facts WHERE call_id = $1 GROUP BY 1",
    "day": "SELECT (submitted_at AT TIME ZONE 'Europe/Rome')::date AS key, {aggs} "
    "FROM monitoring.application_facts WHERE call_id = $1 GROUP BY 1",
    "market": "SELECT m AS key, {aggs} FROM monitoring.application_facts, unnest(markets) AS m "
    "WHERE call_id = $1 GROUP BY 1",
}


def _weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def generate_facts(n: int, call_id: uuid.UUID, opens: datetime, rng: random.Random) -> list[tuple[Any, ...]]:
    weights = [1 / (i + 1) ** 1.1 for i in range(len(COUNTRIES))]
    rows = []
    for _ in range(n):
        k = rng.choices((1, 2, 3), weights=(50, 35, 15))[0]
        markets = sorted(set(rng.choices(COUNTRIES, weights=weights, k=k)))
        # half in the first day's opening hours (click day), the rest over 90 days
        if rng.random() < 0.5:
            at = opens + timedelta(seconds=rng.expovariate(1 / 5400))
        else:
            at = opens + timedelta(seconds=rng.uniform(0, 90 * 86400))
        admitted = rng.random() < 0.6
        funded = admitted and rng.random() < 0.25
        revoked = funded and rng.random() < 0.05
        committed = Decimal(rng.randint(3_000_000, 25_000_000)) / 100 if funded and not revoked else Decimal("0.00")
        paid = (committed * Decimal("0.4")).quantize(Decimal("0.01")) if funded else Decimal("0.00")
        baseline = Decimal(rng.randint(0, 6000)) / 100 if funded else None
        latest = (
            baseline + Decimal(rng.randint(-500, 2000)) / 100 if baseline is not None and rng.random() < 0.7 else None
        )
        rows.append(
            (
                uuid.uuid4(),
                call_id,
                uuid.uuid4(),
                _weighted(rng, PROVINCES),
                _weighted(rng, SECTIONS),
                _weighted(rng, SIZES),
                markets,
                at,
                Decimal("100000.00"),
                "accepted" if funded else "admitted" if admitted else "submitted",
                admitted,
                funded,
                committed,
                paid,
                revoked,
                baseline,
                latest,
            )
        )
    return rows


FACT_COLUMNS = [
    "application_id",
    "call_id",
    "company_id",
    "province",
    "ateco_section",
    "size_class",
    "markets",
    "submitted_at",
    "requested_aid",
    "status",
    "admitted",
    "funded",
    "committed",
    "paid",
    "revoked",
    "foreign_share_baseline",
    "foreign_share_latest",
]


async def seed(dsn: str, n_apps: int, n_lines: int, call_id: uuid.UUID, opens: datetime) -> dict[str, Any]:
    rng = random.Random(SEED)
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        facts = generate_facts(n_apps, call_id, opens, rng)
        await conn.copy_records_to_table(
            "application_facts", schema_name="monitoring", records=facts, columns=FACT_COLUMNS
        )
        funded = [f for f in facts if f[11]]
        decree = date(2025, 12, 1)
        projects: list[tuple[Any, ...]] = []
        claims: list[tuple[Any, ...]] = []
        for f in funded:
            pid = uuid.uuid4()
            projects.append(
                (
                    pid,
                    f[0],
                    uuid.uuid4(),
                    call_id,
                    f[2],
                    None,
                    f"BENCH{len(projects):010d}",
                    "COR",
                    "DDUO 1",
                    decree,
                    "revoked" if f[14] else "active",
                    f[12],
                    Decimal("0.00"),
                    f[12],
                    "[]",
                    '{"milestones": []}',
                    "[]",
                    date(2025, 6, 3),
                    date(2027, 6, 1),
                    False,
                    True,
                    1,
                )
            )
            claims.append((uuid.uuid4(), pid, "intermediate", "submitted", Decimal("0.00"), 1, "bench"))
        await conn.copy_records_to_table(
            "projects",
            schema_name="monitoring",
            records=projects,
            columns=[
                "id",
                "application_id",
                "decision_id",
                "call_id",
                "company_id",
                "partner_id",
                "cup",
                "cor",
                "decree_number",
                "decree_date",
                "status",
                "grant",
                "loan",
                "eligible_total",
                "approved_budget",
                "timeline",
                "kpis",
                "start_date",
                "deadline",
                "extension_granted",
                "lombardy_site_verified",
                "version",
            ],
        )
        await conn.copy_records_to_table(
            "claims",
            schema_name="monitoring",
            records=claims,
            columns=["id", "project_id", "kind", "status", "claimed_total", "version", "created_by"],
        )

        def lines() -> Any:
            for i in range(n_lines):
                claim = claims[i % len(claims)]
                yield (
                    uuid.uuid4(),
                    claim[0],
                    claim[1],
                    "invoice",
                    f"{i % 99_999_999:011d}",
                    f"B-{i}",
                    date(2026, 1, 1) + timedelta(days=i % 400),
                    Decimal(rng.randint(10_000, 2_000_000)) / 100,
                    "abc"[i % 3],
                    COUNTRIES[i % len(COUNTRIES)],
                    "[]",
                    "pending",
                    True,
                )

        await conn.copy_records_to_table(
            "claim_lines",
            schema_name="monitoring",
            records=lines(),
            columns=[
                "id",
                "claim_id",
                "project_id",
                "kind",
                "supplier_vat",
                "document_number",
                "issue_date",
                "taxable_amount",
                "category",
                "market",
                "checks",
                "outcome",
                "cup_quoted",
            ],
        )
        await conn.execute("VACUUM ANALYZE monitoring.application_facts")
        await conn.execute("VACUUM ANALYZE monitoring.projects")
        await conn.execute("VACUUM ANALYZE monitoring.claim_lines")
        return {"seed_s": round(time.perf_counter() - t0, 1), "funded": len(funded), "projects": len(projects)}
    finally:
        await conn.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=10, method="inclusive")
    return round(statistics.median(samples), 2), round(q[8], 2)


class StubIntake:
    """intake's answer for the call (monitoring caches it per version, so a real intake would be asked once)."""

    def __init__(self, detail: Any) -> None:
        self.detail = detail

    async def get_call(self, call_id: uuid.UUID) -> Any:
        return self.detail

    async def aclose(self) -> None:
        return None


def _app(dsn: str, call_id: uuid.UUID, *, cache_seconds: float) -> tuple[Any, dict[str, str], Any]:
    from services.monitoring.app import build_app
    from shared.auth import KeyRing, mint_token
    from shared.db import create_engine, make_sessionmaker
    from shared.settings import MonitoringSettings
    from tests.services.evaluation.builders import call_detail

    settings = MonitoringSettings(
        environment="test", access_log=False, log_level="WARNING", database_url=dsn, stats_cache_seconds=cache_seconds
    )
    app = build_app(settings)
    engine = create_engine(dsn, pool_size=4, max_overflow=0, application_name="stats-bench")
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.keyring = ring = KeyRing.generate()
    app.state.intake_client = StubIntake(call_detail(call_id, budget_total="18978747.97"))
    token = mint_token(
        ring, sub="bench-officer", kind="officer", scopes=["monitoring:read"], issuer=settings.token_issuer, ttl=3600
    )
    return app, {"Authorization": f"Bearer {token}"}, engine


async def _time_app(
    http: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], requests: int
) -> tuple[list[float], Any]:
    samples: list[float] = []
    body: Any = None
    for i in range(requests + 3):
        t0 = time.perf_counter()
        r = await http.get("/v1/stats", params=params, headers=headers)
        if i >= 3:  # warm-up: connections, prepared statements, the call's cache
            samples.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET /v1/stats {params}: {r.status_code} {r.text[:300]}")
        body = r.json()
    return samples, body


async def measure(dsn: str, call_id: uuid.UUID, requests: int, cold_requests: int) -> dict[str, Any]:
    from services.monitoring.stats.repository import CONTINENTS_JSON, aggregate_sql

    warm_app, headers, warm_engine = _app(dsn, call_id, cache_seconds=60.0)
    cold_app, cold_headers, cold_engine = _app(dsn, call_id, cache_seconds=0.0)
    aggs = aggregate_sql(None).split("SELECT NULL AS key, 1 AS is_total,")[1].split("FROM")[0]
    results: dict[str, Any] = {}
    conn = await asyncpg.connect(dsn)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=warm_app), base_url="http://bench") as warm,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=cold_app), base_url="http://bench") as cold,
        ):
            for group_by in GROUP_BYS:
                params = {"call_id": str(call_id), **({"group_by": group_by} if group_by else {})}
                app_ms, body = await _time_app(warm, params, headers, requests)
                cold_ms, cold_body = await _time_app(cold, params, cold_headers, cold_requests)
                if cold_body["totals"] != body["totals"] or cold_body["groups"] != body["groups"]:
                    raise RuntimeError(f"cached and computed views differ for {group_by}")
                statement = aggregate_sql(group_by).replace(":call_id", "$1").replace(":continents", "$2")
                args = [CONTINENTS_JSON] if group_by == "continent" else []
                sql_ms = await _time_sql(conn, statement, call_id, requests, *args)
                name = group_by or "totals"
                a50, a90 = percentiles(app_ms)
                c50, c90 = percentiles(cold_ms)
                s50, s90 = percentiles(sql_ms)
                results[name] = {
                    "groups": len(body["groups"]),
                    "app_p50_ms": a50,
                    "app_p90_ms": a90,
                    "app_uncached_p50_ms": c50,
                    "app_uncached_p90_ms": c90,
                    "sql_p50_ms": s50,
                    "sql_p90_ms": s90,
                    "ratio": round(a50 / s50, 3),
                    "ratio_uncached": round(c50 / s50, 2),
                }
                if group_by in NAIVE:
                    n50, n90 = percentiles(await _time_sql(conn, NAIVE[group_by].format(aggs=aggs), call_id, requests))
                    results[name].update(naive_sql_p50_ms=n50, naive_sql_p90_ms=n90)
    finally:
        await conn.close()
        await warm_engine.dispose()
        await cold_engine.dispose()
    return results


async def _time_sql(conn: asyncpg.Connection, statement: str, call_id: uuid.UUID, runs: int, *args: Any) -> list[float]:
    stmt = await conn.prepare(statement)
    for _ in range(3):
        await stmt.fetch(call_id, *args)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await stmt.fetch(call_id, *args)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _existing(dsn: str) -> tuple[uuid.UUID, dict[str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        call_id = await conn.fetchval("SELECT call_id FROM monitoring.application_facts LIMIT 1")
        apps = await conn.fetchval("SELECT count(*) FROM monitoring.application_facts")
        lines = await conn.fetchval("SELECT count(*) FROM monitoring.claim_lines")
        return uuid.UUID(str(call_id)), {"applications": apps, "expense_lines": lines}
    finally:
        await conn.close()


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from shared.settings import REPO_ROOT

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--cold-requests",
        type=int,
        default=10,
        help="Requests per group_by to an app without the cache (every one runs the aggregate).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--reuse", help="Name of a database kept by an earlier run: measure it, seed nothing.")
    args = parser.parse_args(argv)

    server = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DSN)
    name = args.reuse or f"desk_stats_bench_{os.getpid()}"
    dsn = make_url(server).set(database=name).render_as_string(hide_password=False)
    report: dict[str, Any] = {
        "applications": args.applications,
        "expense_lines": args.lines,
        "requests_per_group_by": args.requests,
    }
    if args.reuse:
        call_id, counts = asyncio.run(_existing(dsn))
        report.update(counts)
        results = asyncio.run(measure(dsn, call_id, args.requests, args.cold_requests))
    else:
        try:
            asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
        except (OSError, asyncpg.PostgresError) as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(report))
            return 1
        try:
            migrate(dsn)
            call_id = uuid.uuid4()
            opens = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
            report.update(asyncio.run(seed(dsn, args.applications, args.lines, call_id, opens)))
            results = asyncio.run(measure(dsn, call_id, args.requests, args.cold_requests))
        finally:
            if not args.keep:
                asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                report["kept_database"] = name
    worst = max(r["app_p50_ms"] for r in results.values())
    worst_uncached = max(r["app_uncached_p50_ms"] for r in results.values())
    report.update(
        results=results,
        worst_app_p50_ms=worst,
        worst_app_uncached_p50_ms=worst_uncached,
        under_100ms_p50=worst < GOAL_MS,
        load_average=os.getloadavg()[0],
        cpus=os.cpu_count(),
    )
    print(json.dumps(report))
    return 0 if worst < GOAL_MS else 2


if __name__ == "__main__":
    sys.exit(main())
