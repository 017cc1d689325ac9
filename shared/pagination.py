"""Cursor pagination: opaque keyset cursors over (created_at, id), page size capped."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.errors import ProblemError, ValidationFailed
from shared.schemas import BIGINT_MAX

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null at the end.")


class PageParams(BaseModel):
    limit: int
    after: tuple[datetime, uuid.UUID] | None


def encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at.isoformat(), str(id_)])).decode().rstrip("=")


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        errors=[ProblemError("cursor_invalid", "/cursor", "Cursore non valido.", "Invalid cursor.", location="query")]
    )


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts, id_ = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(ts), uuid.UUID(id_)
    except (ValueError, TypeError):
        raise _bad_cursor() from None


async def page_params(
    request: Request,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size (default 20, at most 100).")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="Opaque cursor from `next_cursor`.")] = None,
) -> PageParams:
    s = request.app.state.settings
    return PageParams(
        limit=min(limit or s.page_size_default, s.page_size_max), after=decode_cursor(cursor) if cursor else None
    )


PageDep = Annotated[PageParams, Depends(page_params)]


def keyset(
    stmt: Select[Any], params: PageParams, created_col: InstrumentedAttribute[Any], id_col: InstrumentedAttribute[Any]
) -> Select[Any]:
    if params.after is not None:
        ts, id_ = params.after
        stmt = stmt.where(or_(created_col > ts, and_(created_col == ts, id_col > id_)))
    return stmt.order_by(created_col, id_col).limit(params.limit + 1)


async def page_rows(session: AsyncSession, stmt: Select[T], params: PageParams, model: Any) -> list[T]:
    """The rows of one page of `stmt` (and the one past it, which tells `page_of` there is more), in the order
    of `model`'s (created_at, id)."""
    return list((await session.execute(keyset(stmt, params, model.created_at, model.id))).scalars())


def page_of(rows: list[Any], params: PageParams, convert: Any) -> dict[str, Any]:
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return {"items": [convert(r) for r in rows], "next_cursor": nxt}


class SeqPageParams(BaseModel):
    """Pagination over an increasing integer key (an append-only log's id) instead of (created_at, id)."""

    limit: int
    after: int | None


def encode_seq_cursor(n: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([n])).decode().rstrip("=")


def decode_seq_cursor(cursor: str) -> int:
    try:
        (n,) = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise _bad_cursor() from None
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= BIGINT_MAX:  # keys are bigint columns
        raise _bad_cursor()
    return n


async def seq_page_params(
    request: Request,
    limit: Annotated[int | None, Query(ge=1, le=100, description="Page size (default 20, at most 100).")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="Opaque cursor from `next_cursor`.")] = None,
) -> SeqPageParams:
    s = request.app.state.settings
    return SeqPageParams(
        limit=min(limit or s.page_size_default, s.page_size_max), after=decode_seq_cursor(cursor) if cursor else None
    )


SeqPageDep = Annotated[SeqPageParams, Depends(seq_page_params)]
