"""Alembic migrations, run from code: :func:`upgrade`, :func:`downgrade`, :func:`current`, :func:`revision`.

``agentadapter db upgrade|downgrade|current`` and the server's start-up call these. Each opens one
connection of the :class:`~agentadapter.store.database.Database` and hands it to Alembic's
``env.py`` (``migrations/env.py``), so the same async drivers serve migrations and requests. On
PostgreSQL an advisory lock makes concurrent starts (several server processes) migrate one at a
time; on SQLite the migration's transaction starts with ``BEGIN IMMEDIATE`` for the same reason.
The revisions live in ``migrations/versions``; write a new one with :func:`revision` (autogenerate
compares the models with the database), then read and trim what it wrote.

Alembic is imported only to migrate: :func:`current` reads the ``alembic_version`` table and
:func:`head` the revision files themselves, so a server process that only checks the revision
(``agentadapter serve`` migrates in a separate process) does not carry Alembic's memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from agentadapter.store.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current", "downgrade", "head", "revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x41474E54  # "AGNT": the advisory lock migrations hold on PostgreSQL
_REVISION = re.compile(r'^revision: str = "([^"]+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision: str \| None = (?:None|"([^"]+)")$', re.MULTILINE)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for our migrations (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head() -> str:
    """The newest revision in ``migrations/versions`` (read from the files, without Alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text("utf-8")
        found, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if found is None or down is None:
            raise RuntimeError(f"{path} does not declare revision and down_revision as our template writes them")
        revisions.add(found.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations/versions has {len(heads)} heads ({sorted(heads)}); merge them into one")
    return heads.pop()


async def _with_connection(db: Database, action: Callable[[sa.Connection, Config], Any]) -> Any:
    config = alembic_config(db.url)
    engine = db.engine.execution_options(agentadapter_write=True)
    async with engine.connect() as connection:
        locked = db.dialect == "postgresql"
        if locked:
            await connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
        try:

            def run(sync_connection: sa.Connection) -> Any:
                config.attributes["connection"] = sync_connection
                return action(sync_connection, config)

            result = await connection.run_sync(run)
            await connection.commit()
        finally:
            if locked:
                await connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                await connection.commit()
    return result


def _current_of(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    found: str | None = MigrationContext.configure(connection).get_current_revision()
    return found


async def upgrade(db: Database, target: str = "head") -> str | None:
    """Migrate the database up to ``target`` (default: the newest revision); returns the revision reached."""
    from alembic import command

    def action(connection: sa.Connection, config: Config) -> str | None:
        command.upgrade(config, target)
        return _current_of(connection)

    result: str | None = await _with_connection(db, action)
    return result


async def downgrade(db: Database, target: str = "-1") -> str | None:
    """Migrate the database down to ``target`` (``-1``: one step; ``base``: nothing left)."""
    from alembic import command

    def action(connection: sa.Connection, config: Config) -> str | None:
        command.downgrade(config, target)
        return _current_of(connection)

    result: str | None = await _with_connection(db, action)
    return result


async def current(db: Database) -> str | None:
    """The revision the database is at (None: not migrated yet)."""
    async with db.engine.connect() as connection:
        exists = await connection.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
        if not exists:
            return None
        found = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
    return found[0] if len(found) == 1 else None


async def revision(db: Database, message: str, *, autogenerate: bool = True) -> str:
    """Write a new revision file (autogenerated from the difference between models and ``db``)."""
    from alembic import command

    def action(connection: sa.Connection, config: Config) -> str:
        script = command.revision(config, message=message, autogenerate=autogenerate)
        scripts = script if isinstance(script, list) else [script]
        return ", ".join(s.path for s in scripts if s is not None)

    result: str = await _with_connection(db, action)
    return result
