"""Benchmark of the budget allocation: ``shared.domain.allocation.allocate`` against one SQL statement.

Not a test (pytest does not collect it: the name does not start with ``test_``). Run it with

    .venv/bin/python -m tests.bench.allocation_bench [--n 100000] [--repeat 5]

It generates ``--n`` candidates with a fixed seed, times ``allocate`` (ranking procedure, no partial
funding, best of ``--repeat``, in ms), then loads the same rows into a temporary table on PostgreSQL
(``BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``) and times the
same allocation as a single statement: a window running sum in ranking order, keeping the rows whose
running sum is within the budget (with positive requests the running sum only grows, so this is the
strict-order rule: everything after the first that does not fit waits). It checks that both give the
same funded set, for the ranking and for the first-come order, and prints one JSON line.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from shared.domain.allocation import Candidate, Procedure, allocate

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_MS = 2000.0
SEED = 20250603

SQL_ORDER: dict[Procedure, str] = {
    "ranking": "score DESC, protocol_number ASC",
    "first_come": "protocol_number ASC",
}


def generate(n: int, seed: int = SEED) -> tuple[list[Candidate], Decimal]:
    """``n`` candidates (scores 0-100 in steps of 0.5: many ties) and a budget of 40 % of the requests."""
    rng = random.Random(seed)
    protocols = rng.sample(range(1, 3 * n + 1), n)
    candidates = [
        Candidate(
            application_id=f"app-{i:06d}",
            protocol_number=protocols[i],
            score=Decimal(rng.randint(0, 200)) / 2,
            requested=Decimal(rng.randint(600_000, 51_000_000)) / 100,
        )
        for i in range(n)
    ]
    total = sum((c.requested for c in candidates), Decimal("0.00"))
    return candidates, (total * Decimal("0.4")).quantize(Decimal("0.01"))


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


async def sql_allocation(
    dsn: str, candidates: Sequence[Candidate], budget: Decimal, repeat: int
) -> tuple[float, float, dict[str, set[str]]]:
    """(load ms, best query ms for the ranking order, funded ids per procedure)."""
    conn = await asyncpg.connect(dsn)
    try:
        start = time.perf_counter()
        await conn.execute(
            "CREATE TEMP TABLE bench_candidates ("
            " application_id text PRIMARY KEY, protocol_number integer NOT NULL,"
            " score numeric(6,2), requested numeric(14,2) NOT NULL)"
        )
        await conn.copy_records_to_table(
            "bench_candidates",
            records=[(c.application_id, c.protocol_number, c.score, c.requested) for c in candidates],
            columns=["application_id", "protocol_number", "score", "requested"],
        )
        await conn.execute("ANALYZE bench_candidates")
        load_ms = (time.perf_counter() - start) * 1000

        funded: dict[str, set[str]] = {}
        best = float("inf")
        for procedure, order in SQL_ORDER.items():
            query = (
                "SELECT application_id FROM ("
                " SELECT application_id,"
                f" sum(requested) OVER (ORDER BY {order} ROWS UNBOUNDED PRECEDING) AS running"
                " FROM bench_candidates) s"
                " WHERE running <= $1"
            )
            rows: list[Any] = []
            for _ in range(repeat if procedure == "ranking" else 1):
                t0 = time.perf_counter()
                rows = await conn.fetch(query, budget)
                if procedure == "ranking":
                    best = min(best, time.perf_counter() - t0)
            funded[procedure] = {r["application_id"] for r in rows}
        return load_ms, best * 1000, funded
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    candidates, budget = generate(args.n)
    results = {
        procedure: allocate(candidates, budget, procedure=procedure, partial_funding_of_last=False)
        for procedure in SQL_ORDER
    }
    python_ms = best_ms(
        lambda: allocate(candidates, budget, procedure="ranking", partial_funding_of_last=False), args.repeat
    )
    report: dict[str, Any] = {
        "candidates": args.n,
        "budget": str(budget),
        "funded": len(results["ranking"].funded),
        "python_ms": round(python_ms, 1),
    }
    dsn = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DSN)
    try:
        load_ms, sql_ms, funded = asyncio.run(sql_allocation(dsn, candidates, budget, args.repeat))
    except (OSError, asyncpg.PostgresError) as exc:
        report.update(sql_ms=None, sql_error=f"{type(exc).__name__}: {exc}", under_2s_goal=python_ms < GOAL_MS)
        print(json.dumps(report))
        return 1
    same = all({f.application_id for f in results[p].funded} == funded[p] for p in SQL_ORDER)
    report.update(
        sql_ms=round(sql_ms, 1),
        sql_load_ms=round(load_ms, 1),
        ratio=round(python_ms / sql_ms, 2),
        under_2s_goal=python_ms < GOAL_MS and sql_ms < GOAL_MS,
        same_funded_set=same,
    )
    print(json.dumps(report))
    return 0 if same else 2


if __name__ == "__main__":
    sys.exit(main())
