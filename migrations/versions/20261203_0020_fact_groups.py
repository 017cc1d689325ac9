"""Statistics maintained as the facts change: `monitoring.fact_groups`, kept by statement-level triggers.

Each row holds the figures of one group of a call's applications (a province, an ATECO section, a size class, a
day or an hour of submission in Europe/Rome, a market, a continent; the dimension `total` the call's totals), so a
statistics view reads a handful of rows instead of scanning the call's facts. The triggers on
`monitoring.application_facts` add, in the transaction that changes the facts, the change of every group the
changed rows fall in (+1 per inserted row, -1 per deleted row, both for an updated one; groups whose figures did
not move are left alone, groups left with no application are deleted). The groups are locked in one order (per
call: its totals first), so two transactions never wait for each other in a cycle. Markets are counted as the
from-scratch aggregate counts them (once per market of the list, null when the list is empty), continents once
per distinct continent of the markets, through `monitoring.country_continents` (seeded from
`shared.domain.continents`). A key of '' stands for null.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_MARKETS = "unnest(CASE WHEN cardinality(c.markets) = 0 THEN ARRAY[NULL]::varchar[] ELSE c.markets END)"
_GROWTH = "c.funded AND c.foreign_share_latest IS NOT NULL AND c.foreign_share_baseline IS NOT NULL"

# {src}: rows (sign, <every column of application_facts>) whose change is applied to the groups.
APPLY = f"""
WITH changed AS ({{src}}),
delta AS (
  SELECT c.call_id, d.dimension, d.key,
         sum(c.sign) AS applications,
         coalesce(sum(c.sign) FILTER (WHERE c.admitted), 0) AS admitted,
         coalesce(sum(c.sign) FILTER (WHERE c.funded), 0) AS funded,
         coalesce(sum(c.sign * c.committed), 0) AS committed,
         coalesce(sum(c.sign * c.paid), 0) AS paid,
         coalesce(sum(c.sign) FILTER (WHERE c.revoked), 0) AS revoked,
         coalesce(sum(c.sign) FILTER (WHERE {_GROWTH}), 0) AS growth_n,
         coalesce(sum(c.sign * (c.foreign_share_latest - c.foreign_share_baseline)) FILTER (WHERE {_GROWTH}), 0)
           AS growth_sum
    FROM changed c
    CROSS JOIN LATERAL (
      SELECT 'total'::text, ''::text
      UNION ALL SELECT 'province', coalesce(c.province, '')
      UNION ALL SELECT 'ateco_section', coalesce(c.ateco_section, '')
      UNION ALL SELECT 'size_class', coalesce(c.size_class, '')
      UNION ALL SELECT 'day', coalesce(((c.submitted_at AT TIME ZONE 'Europe/Rome')::date)::text, '')
      UNION ALL SELECT 'hour', coalesce(to_char(date_trunc('hour', c.submitted_at AT TIME ZONE 'UTC'),
                                                'YYYY-MM-DD"T"HH24":00:00+00:00"'), '')
      UNION ALL SELECT 'market', coalesce(m, '') FROM {_MARKETS} AS m
      UNION ALL (SELECT DISTINCT 'continent', coalesce(cc.continent, '')
                   FROM {_MARKETS} AS m LEFT JOIN monitoring.country_continents cc ON cc.country = m)
    ) AS d(dimension, key)
   GROUP BY c.call_id, d.dimension, d.key
)
INSERT INTO monitoring.fact_groups AS g (call_id, dimension, key, applications, admitted, funded, committed, paid,
                                         revoked, growth_n, growth_sum)
SELECT * FROM delta
 WHERE applications <> 0 OR admitted <> 0 OR funded <> 0 OR committed <> 0 OR paid <> 0 OR revoked <> 0
    OR growth_n <> 0 OR growth_sum <> 0
 ORDER BY call_id, dimension <> 'total', dimension, key
ON CONFLICT (call_id, dimension, key) DO UPDATE SET
  applications = g.applications + excluded.applications, admitted = g.admitted + excluded.admitted,
  funded = g.funded + excluded.funded, committed = g.committed + excluded.committed,
  paid = g.paid + excluded.paid, revoked = g.revoked + excluded.revoked,
  growth_n = g.growth_n + excluded.growth_n, growth_sum = g.growth_sum + excluded.growth_sum
"""
PRUNE = """
WITH changed AS ({src})
DELETE FROM monitoring.fact_groups g
 WHERE g.applications = 0 AND g.call_id IN (SELECT DISTINCT call_id FROM changed)
"""

_FUNCTION = """
CREATE OR REPLACE FUNCTION monitoring.fact_groups_maintain() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  src text := CASE TG_OP
    WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
    WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
    ELSE 'SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1 AS sign, * FROM old_rows' END;
BEGIN
  EXECUTE replace($apply${apply}$apply$, '{src}', src);
  EXECUTE replace($prune${prune}$prune$, '{src}', src);
  RETURN NULL;
END
$fn$
"""

_TRUNCATE_FUNCTION = """
CREATE OR REPLACE FUNCTION monitoring.fact_groups_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  DELETE FROM monitoring.fact_groups;
  RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    from shared.domain.continents import COUNTRY_CONTINENT

    op.create_table(
        "fact_groups",
        sa.Column("call_id", sa.UUID(), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("applications", sa.BigInteger(), nullable=False),
        sa.Column("admitted", sa.BigInteger(), nullable=False),
        sa.Column("funded", sa.BigInteger(), nullable=False),
        sa.Column("committed", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("paid", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("revoked", sa.BigInteger(), nullable=False),
        sa.Column("growth_n", sa.BigInteger(), nullable=False),
        sa.Column("growth_sum", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "dimension", "key", name=op.f("pk_fact_groups")),
        schema="monitoring",
    )
    continents = op.create_table(
        "country_continents",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("continent", sa.String(length=2), nullable=False),
        sa.PrimaryKeyConstraint("country", name=op.f("pk_country_continents")),
        schema="monitoring",
    )
    op.bulk_insert(continents, [{"country": k, "continent": v} for k, v in sorted(COUNTRY_CONTINENT.items())])
    # the facts already there, then the triggers that keep the groups from now on (same transaction)
    op.execute(APPLY.replace("{src}", "SELECT 1 AS sign, * FROM monitoring.application_facts"))
    op.execute(_FUNCTION.replace("{apply}", APPLY).replace("{prune}", PRUNE))
    op.execute(_TRUNCATE_FUNCTION)
    op.execute(
        "CREATE TRIGGER fact_groups_insert AFTER INSERT ON monitoring.application_facts "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION monitoring.fact_groups_maintain()"
    )
    op.execute(
        "CREATE TRIGGER fact_groups_update AFTER UPDATE ON monitoring.application_facts "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION monitoring.fact_groups_maintain()"
    )
    op.execute(
        "CREATE TRIGGER fact_groups_delete AFTER DELETE ON monitoring.application_facts "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION monitoring.fact_groups_maintain()"
    )
    op.execute(
        "CREATE TRIGGER fact_groups_truncate AFTER TRUNCATE ON monitoring.application_facts "
        "FOR EACH STATEMENT EXECUTE FUNCTION monitoring.fact_groups_truncate()"
    )


def downgrade() -> None:
    for t in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS fact_groups_{t} ON monitoring.application_facts")
    op.execute("DROP FUNCTION IF EXISTS monitoring.fact_groups_maintain()")
    op.execute("DROP FUNCTION IF EXISTS monitoring.fact_groups_truncate()")
    op.drop_table("country_continents", schema="monitoring")
    op.drop_table("fact_groups", schema="monitoring")
