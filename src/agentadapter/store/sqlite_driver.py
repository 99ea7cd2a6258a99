"""SQLite for the async engine without a thread per connection: statements run on the event loop's thread.

SQLAlchemy's ``sqlite+aiosqlite`` dialect talks to aiosqlite, which gives every connection a thread
and hands each call (cursor, execute, fetch, close, commit, rollback) to it and back: four or more
round trips between threads per query, each one waiting for the event loop to come round again. On a
busy server those waits, not SQLite, were most of a request's time, and a write transaction held
SQLite's one write lock across all of them. SQLite answers an indexed read or a small write in
microseconds from its page cache, less than one such round trip, so here the same dialect is handed
(``async_creator``) connections whose "async" methods call :mod:`sqlite3` directly: a query costs no
thread switch and a transaction runs start to end without yielding.

What must never block the loop is waiting for another process's lock: once set up, connections have
no busy handler (``busy_timeout`` 0), and :func:`begin_immediate` - how write
transactions start - retries a locked database with ``asyncio.sleep`` until the configured busy
timeout has passed. Readers in WAL mode do not wait for writers. What the loop still pays is the
statements themselves, which on the request path are indexed and paged; the WAL checkpoint that a
commit may run every ~4 MB of writes is PASSIVE (it never waits).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.util.concurrency import await_

__all__ = ["InlineConnection", "InlineCursor", "begin_immediate", "connector"]

_BUSY = ("database is locked", "database is busy")


class InlineCursor:
    """An aiosqlite-shaped cursor over a :class:`sqlite3.Cursor`; every method completes at once."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._cursor.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        for row in self._cursor:
            yield row

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, seq_of_parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None


class InlineConnection:
    """An aiosqlite-shaped connection over a :class:`sqlite3.Connection` in autocommit mode (BEGIN is ours)."""

    __slots__ = ("_conn", "_connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        # SQLAlchemy's adapter looks at ``_connection`` to see whether the connection is still open.
        self._connection: sqlite3.Connection | None = connection

    @property
    def raw(self) -> sqlite3.Connection:
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (what SQLAlchemy calls outside the event loop, when a connection is garbage)."""
        self._connection = None
        self._conn.close()


def connector(url: URL, *, connect_timeout_s: float) -> Callable[[], Awaitable[InlineConnection]]:
    """The ``async_creator`` for an engine on ``url``: the file (or URI, or memory) pysqlite would open.

    A new connection waits up to ``connect_timeout_s`` for a lock while its set-up pragmas run (opening
    is rare: the pool keeps its connections); the engine's connect hook then turns the wait off.
    """
    args, options = SQLiteDialect_pysqlite().create_connect_args(url)
    options = {**options, "isolation_level": None, "check_same_thread": False, "timeout": connect_timeout_s}
    open_connection: Callable[..., sqlite3.Connection] = sqlite3.connect

    async def connect() -> InlineConnection:
        return InlineConnection(open_connection(*args, **options))

    return connect


def begin_immediate(connection: sqlite3.Connection, busy_timeout_s: float) -> bool:
    """Try ``BEGIN IMMEDIATE`` (SQLite's write lock, taken now) until it succeeds or ``busy_timeout_s`` has
    passed, waiting for another process's lock with ``asyncio.sleep`` rather than on the loop's thread.

    False when it did not begin (still locked at the deadline, or another error): the caller then
    issues the statement once more through SQLAlchemy, which raises the database's error in its own
    form (a locked database is an outage: a 503). Called inside SQLAlchemy's greenlet.
    """
    deadline = time.monotonic() + busy_timeout_s
    delay = 0.001
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if not any(text in str(exc).lower() for text in _BUSY):
                return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await_(asyncio.sleep(min(delay, remaining)))
        delay = min(delay * 2, 0.05)
