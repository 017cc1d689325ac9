"""Queries on evaluations (schema `evaluation`, written only by the evaluation service)."""

from __future__ import annotations

import functools
import uuid
from typing import Any, cast

import orjson
from sqlalchemy import Row, Select, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import Evaluation, RankingVersion, ReceivedApplication
from shared.access import company_reachable
from shared.auth import Principal

AWAITING_SIGNATURE = "awaiting_signature"


@functools.cache
def _insert_statement(columns: tuple[str, ...], replace_awaiting: bool) -> Any:
    """The insert for these columns, built once: the same statement object every time, so SQLAlchemy compiles it
    once and asyncpg prepares it once per connection (built anew for each application, with its `excluded`
    alias, it was compiled every time: a fifth of evaluation's CPU on a click day)."""
    table = Evaluation.__table__
    base = insert(Evaluation).values({c: bindparam(c, type_=table.c[c].type) for c in columns})
    if not replace_awaiting:
        return base.on_conflict_do_nothing(index_elements=[Evaluation.application_id]).returning(
            Evaluation.application_id
        )
    return base.on_conflict_do_update(
        index_elements=[Evaluation.application_id],
        set_={
            **{c: base.excluded[c] for c in columns if c not in ("application_id", "version")},
            "version": Evaluation.version + 1,
            "updated_at": func.now(),
        },
        where=Evaluation.stage == AWAITING_SIGNATURE,
    ).returning(Evaluation.application_id)


async def insert_evaluation(session: AsyncSession, values: dict[str, Any], *, replace_awaiting: bool = True) -> bool:
    """Store the evaluation unless the application has one already (a redelivery or a resumed run):
    the primary key is the application's id, so an application is never evaluated twice. The one exception
    is an evaluation still awaiting the signed form: its run replaces it (its version moves on, so an ETag
    read while it waited no longer matches)."""
    stmt = _insert_statement(tuple(sorted(values)), replace_awaiting)
    return (await session.execute(stmt, values)).first() is not None


# Many evaluations in one statement built once: its rows as arrays (a multi-row VALUES was compiled anew for every
# batch, a fifth of evaluation's CPU while a click day's backlog drained).
_INSERT_EVALUATIONS = text("""
INSERT INTO evaluation.evaluations (application_id, call_id, stage, admissibility_verdict, admissibility_checks, cuts,
                                    eligible_total, network, version)
SELECT a, c, s, v, k::jsonb, u::jsonb, e::numeric, n::jsonb, r
  FROM unnest(CAST(:ids AS uuid[]), CAST(:calls AS uuid[]), CAST(:stages AS text[]), CAST(:verdicts AS text[]),
              CAST(:checks AS text[]), CAST(:cuts AS text[]), CAST(:eligible AS text[]), CAST(:networks AS text[]),
              CAST(:versions AS integer[])) AS t(a, c, s, v, k, u, e, n, r)
ON CONFLICT (application_id) DO NOTHING
RETURNING application_id
""")


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


async def insert_evaluations(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Store many evaluations (each with `insert_evaluation`'s columns) in one statement, skipping the
    applications that have one already; the ids stored."""
    params = {
        "ids": [r["application_id"] for r in rows],
        "calls": [r["call_id"] for r in rows],
        "stages": [r["stage"] for r in rows],
        "verdicts": [r["admissibility_verdict"] for r in rows],
        "checks": [_json(r["admissibility_checks"]) for r in rows],
        "cuts": [_json(r["cuts"]) for r in rows],
        "eligible": [None if r["eligible_total"] is None else str(r["eligible_total"]) for r in rows],
        "networks": [_json(r["network"]) for r in rows],
        "versions": [r["version"] for r in rows],
    }
    return set((await session.execute(_INSERT_EVALUATIONS, params)).scalars())


async def get_with_application(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> tuple[Evaluation, ReceivedApplication] | None:
    stmt = (
        select(Evaluation, ReceivedApplication)
        .join(ReceivedApplication, ReceivedApplication.application_id == Evaluation.application_id)
        .where(Evaluation.application_id == application_id)
    )
    if for_update:
        stmt = stmt.with_for_update(of=Evaluation)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


def listing(
    principal: Principal,
    *,
    call_id: uuid.UUID | None,
    stage: str | None,
    admissibility_verdict: str | None = None,
) -> Select[Any]:
    """Evaluations within the principal's reach (shared.access) with their application, paged on
    (received_at, application_id)."""
    stmt = select(
        Evaluation,
        ReceivedApplication,
        ReceivedApplication.received_at.label("created_at"),
        Evaluation.application_id.label("id"),
    ).join(ReceivedApplication, ReceivedApplication.application_id == Evaluation.application_id)
    if call_id is not None:
        stmt = stmt.where(Evaluation.call_id == call_id)
    if stage is not None:
        stmt = stmt.where(Evaluation.stage == stage)
    if admissibility_verdict is not None:
        stmt = stmt.where(Evaluation.admissibility_verdict == admissibility_verdict)
    stmt = stmt.where(company_reachable(principal, ReceivedApplication.company_id))
    return cast("Select[Any]", stmt)


def awaiting_review(principal: Principal, *, call_id: uuid.UUID | None) -> Select[Any]:
    """Evaluations with a check awaiting an officer's review, paged on (received_at, application_id): the
    oldest received first."""
    return listing(principal, call_id=call_id, stage="needs_review")


async def awaiting_signature(session: AsyncSession, call_id: uuid.UUID) -> list[uuid.UUID]:
    """The call's evaluations still awaiting the signed form, in protocol order, locked (SKIP LOCKED: one that
    another request is settling is left to it)."""
    stmt = (
        select(Evaluation.application_id)
        .join(ReceivedApplication, ReceivedApplication.application_id == Evaluation.application_id)
        .where(Evaluation.call_id == call_id, Evaluation.stage == AWAITING_SIGNATURE)
        .order_by(ReceivedApplication.protocol_number)
        .with_for_update(of=Evaluation, skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars().all())


async def ranked_calls(session: AsyncSession, call_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """The calls among `call_ids` whose ranking has been published (at least one version)."""
    if not call_ids:
        return set()
    stmt = select(RankingVersion.call_id).where(RankingVersion.call_id.in_(call_ids)).distinct()
    return set((await session.execute(stmt)).scalars().all())


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Row[Any]]:
    return list((await session.execute(stmt)).all())
