"""Databases for the store and server tests: a migrated SQLite file per test, and the session's PostgreSQL.

Migrating takes a while, so SQLite tests copy a file migrated once per session (a copy is a fresh,
empty, migrated database in a millisecond). PostgreSQL tests share the session's throw-away
database (``services.postgres_url_or_skip``), migrated on first use; tests keep out of each other's
way by making their own tenants, as tenants keep out of each other's way in production.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from agentadapter.store import api_keys, migrate, tenants
from agentadapter.store.database import Database
from services import _in_thread, postgres_url_or_skip

__all__ = ["DATABASES", "migrated_sqlite", "new_database_url", "unique"]

DATABASES = ("sqlite", "postgres")
_TEMPLATES: dict[str, Path] = {}
_MIGRATED: set[str] = set()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _upgrade(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


def migrated_sqlite(directory: Path, template_dir: Path) -> str:
    """The URL of a fresh migrated SQLite file in ``directory``."""
    template = _TEMPLATES.get("sqlite")
    if template is None or not template.exists():
        template = template_dir / "template.db"
        _in_thread(lambda: _upgrade(f"sqlite:///{template}"))
        _TEMPLATES["sqlite"] = template
    target = directory / "agentadapter.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def new_database_url(kind: str, directory: Path, template_dir: Path) -> str:
    """A migrated database of ``kind`` (``sqlite``: a fresh file; ``postgres``: the session's database)."""
    if kind == "sqlite":
        return migrated_sqlite(directory, template_dir)
    url = postgres_url_or_skip()
    if url not in _MIGRATED:
        _in_thread(lambda: _upgrade(url))
        _MIGRATED.add(url)
    return url


def forget_migrated(url: str) -> None:
    """After a test migrated ``url`` down and up again, or left it down."""
    _MIGRATED.discard(url)


async def admin_key(database_url: str, prefix: str) -> str:
    """A new tenant (named from ``prefix``) in the database at ``database_url`` and an admin API key for it:
    what a test needs to call a server it started as a process on that database."""
    db = Database(database_url)
    try:
        async with db.writer() as session:
            tenant = await tenants.create_tenant(session, unique(prefix))
            return (await api_keys.create_api_key(session, tenant.id, role="admin"))[1]
    finally:
        await db.dispose()
