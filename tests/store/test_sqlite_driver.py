"""SQLite statements run on the event loop's thread (store/sqlite_driver.py): what that must not cost.

A writer that finds another process holding SQLite's write lock waits without blocking the loop, and
gets it once it is released; one that waits past the busy timeout is an outage (DatabaseUnavailable,
a 503 through the API), not a hang. Reads and writes keep working on the same pooled connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentadapter.store import agents, migrate, tenants
from agentadapter.store.database import Database, PoolSettings
from agentadapter.store.errors import DatabaseUnavailable
from agentadapter.store.sqlite_driver import InlineConnection


def _hold_write_lock(path: Path, release: threading.Event, held: threading.Event) -> None:
    """Another process, as SQLite sees it: a connection of its own holding the write lock until ``release``."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def _migrated(path: Path, busy_timeout_ms: int) -> Database:
    db = Database(f"sqlite:///{path}", pool=PoolSettings(busy_timeout_ms=busy_timeout_ms))
    await migrate.upgrade(db)
    async with db.writer() as session:
        await tenants.ensure_tenant(session)
    return db


async def test_connections_are_the_inline_driver(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'inline.db'}")
    try:
        async with db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert isinstance(raw.driver_connection, InlineConnection)
            assert (await connection.execute(sa.text("SELECT 1 + 1"))).scalar() == 2
    finally:
        await db.dispose()


async def test_a_writer_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = await _migrated(path, busy_timeout_ms=30_000)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, release, held), daemon=True)
    holder.start()
    try:
        await asyncio.to_thread(held.wait, 10)
        async with db.session() as session:  # WAL: readers do not wait for the writer
            tenant = await tenants.get_tenant_by_name(session, "default")
        assert tenant is not None

        async def write() -> str:
            async with db.writer() as session:
                agent = await agents.create_agent(session, tenant.id, name="after-the-lock", model="test/echo")
                return agent.name

        writing = asyncio.create_task(write())
        # The loop keeps running other work while the writer waits: these turns happen before the lock
        # is released, which they could not if the writer waited inside SQLite on the loop's thread.
        turns = 0
        while turns < 20:
            await asyncio.sleep(0.001)
            turns += 1
            assert not writing.done()
        release.set()
        assert await writing == "after-the-lock"
    finally:
        release.set()
        holder.join(10)
        await db.dispose()


async def test_a_lock_held_past_the_busy_timeout_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "stuck.db"
    db = await _migrated(path, busy_timeout_ms=50)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, release, held), daemon=True)
    holder.start()
    try:
        await asyncio.to_thread(held.wait, 10)
        with pytest.raises(DatabaseUnavailable):
            async with db.writer() as session:
                await session.execute(sa.text("DELETE FROM agent_definitions WHERE 0"))
    finally:
        release.set()
        holder.join(10)
    try:
        async with db.writer() as session:  # the lock released: the same pool writes again
            await session.execute(sa.text("DELETE FROM agent_definitions WHERE 0"))
    finally:
        await db.dispose()
