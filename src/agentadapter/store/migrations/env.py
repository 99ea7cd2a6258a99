"""Alembic's environment for the service's database (run through ``agentadapter.store.migrate``).

``agentadapter db upgrade|downgrade|current`` and the server's start-up hand this script an open
connection in ``config.attributes["connection"]``; the ``alembic`` command line (for writing new
revisions) gets one from the configured URL instead. SQLite runs in batch mode (``render_as_batch``):
it cannot ``ALTER`` most things, so Alembic copies the table. Types are compared, and the models'
timestamp type is written into revisions as the plain ``sa.DateTime(timezone=True)`` it stores as.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from agentadapter.store.files_models import include_object
from agentadapter.store.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
        include_object=include_object,  # the per-database search indexes of the knowledge tables
    )


def run_with(connection: Connection) -> None:
    configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        run_with(given)
    else:
        asyncio.run(run_from_url(str(config.get_main_option("sqlalchemy.url"))))
