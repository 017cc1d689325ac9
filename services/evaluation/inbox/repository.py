"""Queries on evaluation's received applications (schema `evaluation`, written only here)."""

from __future__ import annotations

import uuid
from typing import Any, cast

import orjson
from sqlalchemy import Row, Select, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import Evaluation, ReceivedApplication


async def insert_application(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store a received application unless one with its id is already there."""
    stmt = (
        insert(ReceivedApplication)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ReceivedApplication.application_id])
        .returning(ReceivedApplication.application_id)
    )
    return (await session.execute(stmt)).first() is not None


# Many received applications in one statement built once, their rows as arrays (see insert_evaluations).
_INSERT_APPLICATIONS = text("""
INSERT INTO evaluation.applications (application_id, call_id, company_id, protocol_number, submitted_at, status,
                                     snapshot, version, withdrawal_reason, partner_id)
SELECT a, c, co, n, at, s, j::jsonb, r, w, p
  FROM unnest(CAST(:ids AS uuid[]), CAST(:calls AS uuid[]), CAST(:companies AS uuid[]), CAST(:numbers AS bigint[]),
              CAST(:at AS timestamptz[]), CAST(:statuses AS text[]), CAST(:snapshots AS text[]),
              CAST(:versions AS integer[]), CAST(:reasons AS text[]), CAST(:partners AS uuid[]))
       AS t(a, c, co, n, at, s, j, r, w, p)
ON CONFLICT (application_id) DO NOTHING
RETURNING application_id
""")


async def insert_applications(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Store many received applications (each with `insert_application`'s columns) in one statement, skipping
    those already there; the ids stored."""
    params = {
        "ids": [r["application_id"] for r in rows],
        "calls": [r["call_id"] for r in rows],
        "companies": [r["company_id"] for r in rows],
        "numbers": [r["protocol_number"] for r in rows],
        "at": [r["submitted_at"] for r in rows],
        "statuses": [r["status"] for r in rows],
        "snapshots": [orjson.dumps(r["snapshot"]).decode() for r in rows],
        "versions": [r["version"] for r in rows],
        "reasons": [r["withdrawal_reason"] for r in rows],
        "partners": [r["partner_id"] for r in rows],
    }
    return set((await session.execute(_INSERT_APPLICATIONS, params)).scalars())


async def evaluated(session: AsyncSession, application_id: uuid.UUID) -> bool:
    """Whether the application has its admissibility evaluation."""
    stmt = select(Evaluation.application_id).where(Evaluation.application_id == application_id)
    return (await session.execute(stmt)).first() is not None


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> ReceivedApplication | None:
    stmt = select(ReceivedApplication).where(ReceivedApplication.application_id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def listing(*, call_id: uuid.UUID | None, status: str | None) -> Select[Any]:
    """Received applications, with the (created_at, id) labels the cursor pagination pages on."""
    stmt = select(
        ReceivedApplication,
        ReceivedApplication.received_at.label("created_at"),
        ReceivedApplication.application_id.label("id"),
    )
    if call_id is not None:
        stmt = stmt.where(ReceivedApplication.call_id == call_id)
    if status is not None:
        stmt = stmt.where(ReceivedApplication.status == status)
    return cast("Select[Any]", stmt)  # shared.pagination.keyset takes one-parameter Selects


async def rows(session: AsyncSession, stmt: Select[Any]) -> list[Row[Any]]:
    return list((await session.execute(stmt)).all())


async def applications_of_company(session: AsyncSession, company_id: uuid.UUID) -> list[ReceivedApplication]:
    """The company's received applications, locked for an update."""
    stmt = (
        select(ReceivedApplication)
        .where(ReceivedApplication.company_id == company_id)
        .order_by(ReceivedApplication.application_id)
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars().all())
