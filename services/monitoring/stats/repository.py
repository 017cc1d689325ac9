"""The statistics' queries on `monitoring.application_facts` and the open data's on `monitoring.projects`.

One statement answers a whole statistics view: the groups and the call's totals together, already folded by the
database, so only a handful of rows (at most one per hour of the window) come back:

* province, ATECO section, size class, day and hour (Europe/Rome): `GROUP BY GROUPING SETS ((key), ())`;
* market and continent: the facts are first grouped by their (sorted, distinct) list of markets, then each list
  is counted in every market it names, or in each distinct continent of those markets once (an application
  targeting Vietnam and Japan is one application for Asia); an application with no market is counted under null.
  The continents come from `shared.domain.continents`, passed as a JSON object.

That from-scratch statement (`recompute`) costs one scan of the call's facts. What the views read instead
(`aggregate`) are the groups `monitoring.fact_groups` keeps up to date as the facts change (triggers of migration
0020, in the writing transaction): the same figures, a handful of rows. The maintained groups are proved equal
to the from-scratch ones after random writes (tests/services/monitoring/test_stats_maintained.py); the benchmark
(tests/bench/stats_bench.py) times both.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import Project
from shared.domain.continents import COUNTRY_CONTINENT

CONTINENTS_JSON = orjson.dumps(COUNTRY_CONTINENT).decode()

_GROWTH = "funded AND foreign_share_latest IS NOT NULL AND foreign_share_baseline IS NOT NULL"
_FACT_AGGREGATES = f"""count(*) AS applications, count(*) FILTER (WHERE admitted) AS admitted,
  count(*) FILTER (WHERE funded) AS funded, coalesce(sum(committed), 0) AS committed,
  coalesce(sum(paid), 0) AS paid, count(*) FILTER (WHERE revoked) AS revoked,
  count(*) FILTER (WHERE {_GROWTH}) AS growth_n,
  coalesce(sum(foreign_share_latest - foreign_share_baseline) FILTER (WHERE {_GROWTH}), 0) AS growth_sum"""
_SUMS = """sum(applications) AS applications, sum(admitted) AS admitted, sum(funded) AS funded,
  coalesce(sum(committed), 0) AS committed, coalesce(sum(paid), 0) AS paid, sum(revoked) AS revoked,
  sum(growth_n) AS growth_n, coalesce(sum(growth_sum), 0) AS growth_sum"""
_FACTS = "FROM monitoring.application_facts WHERE call_id = :call_id"

_KEYS = {
    "province": "province",
    "ateco_section": "ateco_section",
    "size_class": "size_class",
    "day": "(submitted_at AT TIME ZONE 'Europe/Rome')::date",
    # an instant (timestamptz), truncated in the session's zone: for any zone whose offset is whole hours (UTC,
    # Europe/Rome) that is the same instant as in Rome, and the two 02:00 hours of the end of summer time stay apart
    "hour": "date_trunc('hour', submitted_at)",
}
_LIST_MEMBERS = "unnest(CASE WHEN cardinality(markets) = 0 THEN ARRAY[NULL]::varchar[] ELSE markets END)"
_LIST_KEYS = {
    "market": f"CROSS JOIN LATERAL {_LIST_MEMBERS} AS k(key)",
    "continent": f"CROSS JOIN LATERAL (SELECT DISTINCT CAST(:continents AS jsonb) ->> m AS key "
    f"FROM {_LIST_MEMBERS} AS m) AS k",
}


def aggregate_sql(group_by: str | None) -> str:
    """The statement of one view: rows with `is_total` 0 are the groups (`key`), the row with 1 the call's totals.
    Public so the benchmark times exactly what the service runs."""
    if group_by is None:
        return f"SELECT NULL AS key, 1 AS is_total, {_FACT_AGGREGATES} {_FACTS}"
    if group_by in _KEYS:
        key = _KEYS[group_by]
        return (
            f"SELECT {key} AS key, GROUPING({key}) AS is_total, {_FACT_AGGREGATES} {_FACTS} "
            f"GROUP BY GROUPING SETS (({key}), ())"
        )
    return (
        f"WITH lists AS MATERIALIZED (SELECT markets, {_FACT_AGGREGATES} {_FACTS} GROUP BY markets) "
        f"SELECT k.key, 0 AS is_total, {_SUMS} FROM lists {_LIST_KEYS[group_by]} GROUP BY k.key "
        f"UNION ALL SELECT NULL, 1, {_SUMS} FROM lists"
    )


GROUP_BYS: tuple[str | None, ...] = (None, *_KEYS, *_LIST_KEYS)
_STATEMENTS = {g: text(aggregate_sql(g)) for g in GROUP_BYS}


_MAINTAINED = text(
    "SELECT NULLIF(key, '') AS key, (dimension = 'total')::int AS is_total, applications, admitted, funded, "
    "committed, paid, revoked, growth_n, growth_sum FROM monitoring.fact_groups "
    "WHERE call_id = :call_id AND dimension IN (:dimension, 'total')"
)


async def aggregate(session: AsyncSession, call_id: uuid.UUID, group_by: str | None) -> Sequence[Any]:
    """The view's rows from the maintained groups: keys as text (an hour as its UTC instant in ISO 8601, a day
    as its ISO date), the totals' row with `is_total` 1 (none when the call has no facts yet)."""
    return (await session.execute(_MAINTAINED, {"call_id": call_id, "dimension": group_by or "total"})).all()


async def recompute(session: AsyncSession, call_id: uuid.UUID, group_by: str | None) -> Sequence[Any]:
    """The view's rows computed from scratch over the call's facts (what the maintained groups must equal)."""
    params: dict[str, Any] = {"call_id": call_id}
    if group_by == "continent":
        params["continents"] = CONTINENTS_JSON
    return (await session.execute(_STATEMENTS[group_by], params)).all()


async def facts_changes(session: AsyncSession) -> int | None:
    """How many rows of the facts table were ever inserted, updated or deleted, from PostgreSQL's cumulative
    statistics (one catalog read): it grows with every write of any replica, about a second after the commit.
    None when the statistics are not collected."""
    row = (
        await session.execute(
            text(
                "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                "WHERE relid = 'monitoring.application_facts'::regclass"
            )
        )
    ).first()
    return int(row[0]) if row is not None and row[0] is not None else None


async def funded_projects(session: AsyncSession, call_id: uuid.UUID | None) -> list[Project]:
    """Projects of funded applications still holding aid (revoked ones are not published), oldest first."""
    stmt = select(Project).where(Project.status != "revoked")
    if call_id is not None:
        stmt = stmt.where(Project.call_id == call_id)
    return list(
        (await session.execute(stmt.order_by(Project.decree_date, Project.created_at, Project.id))).scalars().all()
    )
