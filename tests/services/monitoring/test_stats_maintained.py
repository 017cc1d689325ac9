"""The statistics' groups kept by the triggers of `monitoring.application_facts` equal the from-scratch aggregate
after any sequence of writes: random inserts, updates (every column the statistics read) and deletes, single-row
and set-based, over two calls; and a truncate empties them."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from services.monitoring.stats import repository
from services.monitoring.stats.service import fold

PROVINCES = ["MI", "BG", "BS", None]
SECTIONS = ["C", "G", "J", None]
SIZES = ["micro", "small", "medium", None]
# countries of several continents, one the continent table does not know ("XK": counted under a null continent)
COUNTRIES = ["JP", "VN", "BR", "US", "CA", "DE", "FR", "NG", "AU", "XK"]
START = datetime(2025, 3, 29, 20, 0, tzinfo=UTC)  # across the start of summer time in Rome (30 March 2025)


def _markets(rng: random.Random) -> list[str]:
    return sorted(rng.sample(COUNTRIES, rng.choice([0, 1, 1, 2, 3])))


def _money(rng: random.Random) -> str:
    return str(Decimal(rng.randrange(0, 20_000_000)) / 100)


def _share(rng: random.Random) -> str | None:
    return None if rng.random() < 0.3 else str(Decimal(rng.randrange(0, 10_000)) / 100)


def _values(rng: random.Random, call_id: uuid.UUID) -> dict[str, Any]:
    funded = rng.random() < 0.5
    return {
        "application_id": uuid.uuid4(),
        "call_id": call_id,
        "company_id": uuid.uuid4(),
        "province": rng.choice(PROVINCES),
        "ateco_section": rng.choice(SECTIONS),
        "size_class": rng.choice(SIZES),
        "markets": _markets(rng),
        "submitted_at": START + timedelta(minutes=rng.randrange(0, 60 * 30)),
        "status": "submitted",
        "admitted": funded or rng.random() < 0.5,
        "funded": funded,
        "committed": _money(rng) if funded else "0.00",
        "paid": _money(rng) if funded else "0.00",
        "revoked": funded and rng.random() < 0.2,
        "baseline": _share(rng),
        "latest": _share(rng),
    }


INSERT = text(
    "INSERT INTO monitoring.application_facts (application_id, call_id, company_id, province, ateco_section, "
    "size_class, markets, submitted_at, requested_aid, status, admitted, funded, committed, paid, revoked, "
    "foreign_share_baseline, foreign_share_latest) VALUES (:application_id, :call_id, :company_id, :province, "
    ":ateco_section, :size_class, :markets, :submitted_at, 0, :status, :admitted, :funded, "
    "CAST(:committed AS numeric), CAST(:paid AS numeric), :revoked, CAST(:baseline AS numeric), "
    "CAST(:latest AS numeric))"
)
UPDATES = [
    ("province", lambda rng: rng.choice(PROVINCES)),
    ("ateco_section", lambda rng: rng.choice(SECTIONS)),
    ("size_class", lambda rng: rng.choice(SIZES)),
    ("markets", _markets),
    ("submitted_at", lambda rng: START + timedelta(minutes=rng.randrange(0, 60 * 30))),
    ("admitted", lambda rng: rng.random() < 0.5),
    ("funded", lambda rng: rng.random() < 0.5),
    ("revoked", lambda rng: rng.random() < 0.3),
    ("committed", _money),
    ("paid", _money),
    ("foreign_share_baseline", _share),
    ("foreign_share_latest", _share),
]
CASTS = {
    "committed": "numeric",
    "paid": "numeric",
    "foreign_share_baseline": "numeric",
    "foreign_share_latest": "numeric",
}


async def _assert_equal(session: Any, call_ids: list[uuid.UUID]) -> None:
    for call_id in call_ids:
        for group_by in repository.GROUP_BYS:
            maintained = fold(await repository.aggregate(session, call_id, group_by), group_by)
            scratch = fold(await repository.recompute(session, call_id, group_by), group_by)
            assert maintained == scratch, (call_id, group_by)


async def _ids(session: Any, call_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        (
            await session.execute(
                text(
                    "SELECT application_id FROM monitoring.application_facts WHERE call_id = :c ORDER BY application_id"
                ),
                {"c": call_id},
            )
        ).scalars()
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_maintained_groups_equal_a_recomputation_after_random_writes(session, seed):
    rng = random.Random(seed)
    calls = [uuid.uuid4(), uuid.uuid4()]
    for step in range(60):
        call_id = rng.choice(calls)
        ids = await _ids(session, call_id)
        op = rng.random()
        if op < 0.4 or not ids:
            await session.execute(INSERT, [_values(rng, call_id) for _ in range(rng.choice([1, 1, 3, 8]))])
        elif op < 0.8:
            column, draw = rng.choice(UPDATES)
            chosen = rng.sample(ids, min(len(ids), rng.choice([1, 1, 4])))
            cast = f"CAST(:v AS {CASTS[column]})" if column in CASTS else ":v"
            await session.execute(
                text(f"UPDATE monitoring.application_facts SET {column} = {cast} WHERE application_id = ANY(:ids)"),
                {"v": draw(rng), "ids": chosen},
            )
        elif op < 0.9:
            await session.execute(
                text("DELETE FROM monitoring.application_facts WHERE application_id = ANY(:ids)"),
                {"ids": rng.sample(ids, min(len(ids), rng.choice([1, 2])))},
            )
        else:  # a statement over the whole call: every group of it moves at once
            await session.execute(
                text(
                    "UPDATE monitoring.application_facts SET funded = NOT funded, committed = committed / 2 "
                    "WHERE call_id = :c"
                ),
                {"c": call_id},
            )
        if step % 10 == 9:
            await _assert_equal(session, calls)
    await _assert_equal(session, calls)
    # no empty group is kept
    empty = await session.scalar(
        text("SELECT count(*) FROM monitoring.fact_groups WHERE call_id = ANY(:c) AND applications = 0"), {"c": calls}
    )
    assert empty == 0


async def test_the_groups_of_a_small_call_by_hand(session):
    """Two applications in Milan at 08:10 and 08:40 UTC on 3 June 2025 (10:00 in Rome, summer time), markets
    JP+VN and BR; one funded with 85,000.00 committed. Then the second moves to Bergamo and is deleted."""
    call_id = uuid.uuid4()
    rng = random.Random(0)
    first = {
        **_values(rng, call_id),
        "province": "MI",
        "markets": ["JP", "VN"],
        "funded": True,
        "admitted": True,
        "committed": "85000.00",
        "paid": "0.00",
        "revoked": False,
        "submitted_at": datetime(2025, 6, 3, 8, 10, tzinfo=UTC),
    }
    second = {
        **_values(rng, call_id),
        "province": "MI",
        "markets": ["BR"],
        "funded": False,
        "admitted": False,
        "committed": "0.00",
        "paid": "0.00",
        "revoked": False,
        "submitted_at": datetime(2025, 6, 3, 8, 40, tzinfo=UTC),
    }
    await session.execute(INSERT, [first, second])

    async def groups(dimension: str) -> dict[str | None, tuple[int, int, Decimal]]:
        rows = await repository.aggregate(session, call_id, dimension)
        return {r.key: (r.applications, r.funded, r.committed) for r in rows if not r.is_total}

    assert await groups("province") == {"MI": (2, 1, Decimal("85000.00"))}
    assert await groups("hour") == {"2025-06-03T08:00:00+00:00": (2, 1, Decimal("85000.00"))}
    assert await groups("day") == {"2025-06-03": (2, 1, Decimal("85000.00"))}
    # Japan and Vietnam are both Asia: the first application counts once there
    assert await groups("continent") == {"AS": (1, 1, Decimal("85000.00")), "SA": (1, 0, Decimal("0.00"))}
    await session.execute(
        text("UPDATE monitoring.application_facts SET province = 'BG' WHERE application_id = :a"),
        {"a": second["application_id"]},
    )
    assert await groups("province") == {"MI": (1, 1, Decimal("85000.00")), "BG": (1, 0, Decimal("0.00"))}
    await session.execute(
        text("DELETE FROM monitoring.application_facts WHERE application_id = :a"), {"a": second["application_id"]}
    )
    assert await groups("province") == {"MI": (1, 1, Decimal("85000.00"))}
    assert await groups("market") == {"JP": (1, 1, Decimal("85000.00")), "VN": (1, 1, Decimal("85000.00"))}
