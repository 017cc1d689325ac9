"""Database plumbing: metadata with a naming convention, the async engine, sessions.

One unit of work per request: the route class in `shared.routing` opens a session,
runs the endpoint, commits, and only then sends the response. Services only `flush()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SCHEMAS = ("desk", "intake", "evaluation", "monitoring")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> str:
    """Turn any PostgreSQL URL (libpq style, as pgserver prints) into an asyncpg one."""
    u = make_url(url)
    if u.drivername in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    if u.password == "":
        u = u.set(password=None)
    return u.render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """The same URL for asyncpg.connect / libpq (no SQLAlchemy driver suffix)."""
    u = make_url(url).set(drivername="postgresql")
    if u.password == "":
        u = u.set(password=None)
    return u.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 5, statement_cache: bool = True,
                  **kw: Any) -> AsyncEngine:
    # Generic plans: the desk's statements are small parameterised lookups whose custom re-planning
    # (milliseconds for a five-table join) cost more than running them; asyncpg keeps them prepared.
    connect_args: dict[str, Any] = {"server_settings": {"application_name": kw.pop("application_name", "desk"),
                                                        "plan_cache_mode": "force_generic_plan"}}
    if not statement_cache:
        # PgBouncer in transaction mode: no server-side prepared statements survive a transaction.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    return create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False,
        connect_args=connect_args, **kw,
    )


def make_sessionmaker(bind: Any, **kw: Any) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False, **kw)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session, opened and committed by `shared.routing.UnitOfWorkRoute`."""
    session: AsyncSession | None = getattr(request.state, "session", None)
    if session is None:  # route not under the unit-of-work route class (should not happen)
        raise RuntimeError("no unit of work on this route")
    yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
