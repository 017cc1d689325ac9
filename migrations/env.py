"""Alembic environment: one history for the whole desk (every service's schema and `desk`)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

# every service's tables and the desk's own, so Alembic sees one metadata
import services.evaluation.models
import services.intake.models
import services.monitoring.models  # noqa: F401
import shared.models  # noqa: F401 - register the desk tables
from shared.app import resolve_database_url
from shared.db import SCHEMAS, Base, create_engine
from shared.settings import DeskSettings

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "schema":
        return name in SCHEMAS
    return True


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_schemas=True,
        include_name=include_name,
        version_table_schema="desk",
        compare_type=True,
    )


def do_run_migrations(connection: Connection) -> None:
    connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS desk")
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = config.attributes.get("database_url") or resolve_database_url(DeskSettings())
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:  # called from a running loop (tests, `desk migrate`) with a sync connection
        do_run_migrations(conn)
        return
    asyncio.run(run_async_migrations())


run_migrations_online()
