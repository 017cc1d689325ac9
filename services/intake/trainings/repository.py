"""Queries on the training catalogue and its enrolments (tables `intake.trainings`, `intake.enrolments`).

Places are counted in `trainings.enrolled` and only ever moved by single conditional UPDATEs, so the
capacity holds whatever the concurrency: the row lock taken by the UPDATE serialises enrolments to one
session, and the `enrolled < capacity` condition is re-checked against the committed value.

The waiting list is written only under the session's row lock (`get_training(for_update=True)`), taken
before any enrolment row: joining it, leaving it and promoting from it are serialised per session, always
in the same lock order (session, then enrolment), so promotions happen in order and once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Attendance, Company, Enrolment, Training
from shared.access import company_reachable
from shared.auth import Principal
from shared.db import one_or_none
from shared.pagination import PageParams, page_rows


async def get_training(session: AsyncSession, training_id: uuid.UUID, *, for_update: bool = False) -> Training | None:
    stmt = select(Training).where(Training.id == training_id)
    return await one_or_none(session, stmt, for_update=for_update)


async def list_trainings(
    session: AsyncSession, page: PageParams, *, topic: str | None, starting_after: datetime | None
) -> list[Training]:
    stmt = select(Training)
    if topic is not None:
        stmt = stmt.where(Training.topic == topic)
    if starting_after is not None:
        stmt = stmt.where(Training.starts_at > starting_after)
    return await page_rows(session, stmt, page, Training)


async def take_place(session: AsyncSession, training_id: uuid.UUID, *, now: datetime) -> Training | None:
    """Take one place in one statement; None when the session is full or has started."""
    stmt = (
        update(Training)
        .where(Training.id == training_id, Training.enrolled < Training.capacity, Training.starts_at > now)
        .values(enrolled=Training.enrolled + 1)
        .returning(Training)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def free_place(session: AsyncSession, training_id: uuid.UUID) -> Training:
    stmt = (
        update(Training)
        .where(Training.id == training_id, Training.enrolled > 0)
        .values(enrolled=Training.enrolled - 1)
        .returning(Training)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one()


async def company_exists(session: AsyncSession, company_id: uuid.UUID) -> bool:
    return bool((await session.execute(select(exists().where(Company.id == company_id)))).scalar())


async def live_enrolment_exists(session: AsyncSession, training_id: uuid.UUID, email: str) -> bool:
    stmt = select(
        exists().where(
            Enrolment.training_id == training_id,
            Enrolment.participant_email == email,
            Enrolment.status.in_(("enrolled", "waiting")),
        )
    )
    return bool((await session.execute(stmt)).scalar())


async def insert_enrolment(session: AsyncSession, values: dict[str, Any]) -> Enrolment | None:
    """Insert a live enrolment (enrolled or waiting); None when the same address is already enrolled or
    waiting (partial unique index)."""
    stmt = (
        insert(Enrolment)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[Enrolment.training_id, Enrolment.participant_email],
            index_where=text("status IN ('enrolled', 'waiting')"),
        )
        .returning(Enrolment)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_enrolment(
    session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, for_update: bool = False
) -> Enrolment | None:
    """The enrolment if its company is within the principal's reach."""
    stmt = select(Enrolment).where(Enrolment.id == enrolment_id, company_reachable(principal, Enrolment.company_id))
    return await one_or_none(session, stmt, for_update=for_update, of=Enrolment)


async def list_enrolments(
    session: AsyncSession, principal: Principal, training_id: uuid.UUID, page: PageParams, *, status: str | None
) -> list[Enrolment]:
    stmt = select(Enrolment).where(
        Enrolment.training_id == training_id, company_reachable(principal, Enrolment.company_id)
    )
    if status is not None:
        stmt = stmt.where(Enrolment.status == status)
    return await page_rows(session, stmt, page, Enrolment)


async def next_queue_number(session: AsyncSession, training_id: uuid.UUID) -> int:
    """The next arrival number on the session's waiting list; the caller holds the session's row lock."""
    stmt = select(func.coalesce(func.max(Enrolment.queue_number), 0) + 1).where(Enrolment.training_id == training_id)
    return int((await session.execute(stmt)).scalar_one() or 1)


async def first_waiting(session: AsyncSession, training_id: uuid.UUID) -> Enrolment | None:
    """The waiting enrolment that arrived first, locked; the caller holds the session's row lock."""
    stmt = (
        select(Enrolment)
        .where(Enrolment.training_id == training_id, Enrolment.status == "waiting")
        .order_by(Enrolment.queue_number)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_attendance(session: AsyncSession, enrolment_id: uuid.UUID) -> Attendance | None:
    return await session.get(Attendance, enrolment_id, populate_existing=True)
