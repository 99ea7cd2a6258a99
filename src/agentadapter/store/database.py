"""The database connection: one async engine, sessions for reading and for writing, pool settings.

:func:`database_url` turns the platform setting ``AGENTADAPTER_DATABASE_URL`` into an async URL:
unset means a SQLite file in the data dir (``sqlite+aiosqlite``), ``postgresql://`` becomes
``postgresql+asyncpg://``. :class:`Database` owns the engine. On SQLite the statements run on the
event loop's thread through :mod:`agentadapter.store.sqlite_driver` (no aiosqlite thread per
connection, and so no round trip between threads per call), and every connection gets WAL (readers
never wait for the writer), foreign keys on (so ``ON DELETE CASCADE`` works), ``synchronous=NORMAL``
and no busy handler; write sessions start with ``BEGIN IMMEDIATE``, waiting for another process's
lock with ``asyncio.sleep`` up to the busy timeout (``AGENTADAPTER_DB_BUSY_TIMEOUT_MS``), and go one
at a time through an ``asyncio.Lock``, because SQLite has one writer and a deferred transaction that
reads and then writes can fail with "database is locked" instead of waiting; read sessions run
each statement in autocommit (no ``BEGIN``). On
PostgreSQL read sessions run in autocommit too (one round trip per query), writes in transactions,
and the pool is sized by :class:`PoolSettings` (``AGENTADAPTER_DB_POOL_SIZE``, ``..._MAX_OVERFLOW``,
``..._POOL_TIMEOUT``, ``..._POOL_RECYCLE``, ``..._POOL_PRE_PING``). A SQLite file is private to
the server's user: the data dir is created (or tightened to) mode 0700, the database file and its
``-wal``/``-shm`` 0600 (:mod:`agentadapter.private_files`). Repositories take the sessions this
hands out; nothing here knows about tenants.

A database that cannot be reached is reported once, at this edge: a session whose work failed
because the connection could not be opened or was lost (or SQLite stayed locked past its busy
timeout) raises :class:`~agentadapter.store.errors.DatabaseUnavailable` from the driver's error
(:func:`database_outage` says which errors are outages), which the API answers with a 503. The
pool recovers by itself: a disconnect invalidates every connection opened before it, so the next
checkout connects afresh once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from agentadapter.llm.errors import ConfigurationError
from agentadapter.private_files import private_directory, private_sqlite_file
from agentadapter.store.errors import DatabaseUnavailable
from agentadapter.store.sqlite_driver import InlineConnection, begin_immediate, connector

if TYPE_CHECKING:
    from agentadapter.config import Settings

__all__ = ["Database", "PoolSettings", "database_outage", "database_url"]


def _json_dumps(value: Any) -> str:
    # JSON columns hold what the API and the orchestrator hand over; anything exotic becomes text.
    return json.dumps(value, ensure_ascii=False, default=str)


class PoolSettings(BaseSettings):
    """Connection pool and SQLite settings (``AGENTADAPTER_DB_*``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_DB_", extra="ignore")

    pool_size: int = Field(default=10, ge=1)
    """Connections kept open (PostgreSQL)."""
    max_overflow: int = Field(default=20, ge=0)
    """Extra connections opened under load, closed when returned (PostgreSQL)."""
    pool_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request waits for a free connection before failing."""
    pool_recycle: float = Field(default=1800.0, gt=0)
    """Seconds after which a connection is replaced (before a server or proxy drops it)."""
    pool_pre_ping: bool = False
    """Test each connection with a round trip before use (PostgreSQL). Off: a connection the server
    dropped fails one request and is replaced; on: no such failure, one more round trip per request."""
    busy_timeout_ms: int = Field(default=5000, ge=0)
    """SQLite: how long a writer waits for another process's write lock (asynchronously: the loop runs on)."""
    sqlite_cache_kib: int = Field(default=256, ge=64)
    """SQLite: each connection's page cache. The pool keeps every connection open, so the server's
    memory holds up to (pool size + overflow) caches; SQLite's default (2 MiB each) let the server's
    memory grow with the database by ~60 MB. Pages not cached here are still in the OS's cache."""
    echo: bool = False
    """Log every SQL statement."""


def database_url(settings: Settings) -> str:
    """The async SQLAlchemy URL for these settings (creating the data dir for the default SQLite file)."""
    raw = settings.database_url
    if not raw:
        path = settings.sqlite_path
        private_directory(settings.data_dir)
        return f"sqlite+aiosqlite:///{path}"
    return normalize_url(raw)


def normalize_url(raw: str) -> str:
    """``postgresql://`` -> ``postgresql+asyncpg://``, ``sqlite://`` -> ``sqlite+aiosqlite://``."""
    try:
        url = make_url(raw)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            f"AGENTADAPTER_DATABASE_URL {raw!r} is not a database URL; write it as "
            "postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
        ) from exc
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "asyncpg"):
            raise ConfigurationError(
                f"AGENTADAPTER_DATABASE_URL uses the driver {driver!r}; the service talks to PostgreSQL through "
                "asyncpg: write postgresql://... or postgresql+asyncpg://... (pip install 'agentadapter[postgres]')"
            )
        url = url.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise ConfigurationError(
                f"AGENTADAPTER_DATABASE_URL uses the SQLite driver {driver!r}; write sqlite:///path/to/file.db"
            )
        url = url.set(drivername="sqlite+aiosqlite")
        if _sqlite_file(url):
            # A directory of its own is created private; an existing one may be shared: left as it is.
            private_directory(Path(url.database or "").expanduser().parent, tighten=False)
    else:
        raise ConfigurationError(
            f"AGENTADAPTER_DATABASE_URL names the database {backend!r}; the service supports PostgreSQL "
            "(postgresql://...) and SQLite (sqlite:///path.db)"
        )
    return url.render_as_string(hide_password=False)


def _sqlite_file(url: sa.URL) -> bool:
    """Whether a SQLite URL names a plain file (not memory, nor a ``file:`` URI with its own options)."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return url.query.get("uri") not in ("true", "1")


# The drivers' modules: an OSError raised from their frames is a connection that failed.
_DRIVER_MODULES = ("asyncpg", "aiosqlite", "sqlalchemy", "sqlite3")
# SQLite's answers when another writer holds the database past the busy timeout, or it cannot be opened.
_SQLITE_BUSY = ("database is locked", "database is busy", "unable to open database")


def _raised_by_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


_ASYNCPG_CONNECTION_ERRORS = ("ConnectionDoesNotExistError", "ConnectionFailureError", "CannotConnectNowError",
                              "TooManyConnectionsError", "InterfaceError", "InternalClientError")


def _connection_error(exc: BaseException) -> bool:
    """A socket error from the driver (the connection refused, reset or timed out), or asyncpg's own."""
    if isinstance(exc, OSError | TimeoutError):
        return _raised_by_driver(exc)
    return type(exc).__module__.startswith("asyncpg") and type(exc).__name__ in _ASYNCPG_CONNECTION_ERRORS


def database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) means the database cannot answer now, rather than a bug
    or a refused statement: a connection refused, dropped or timed out, the pool exhausted, an
    invalidated connection, SQLite locked past its busy timeout."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailable | sa.exc.TimeoutError | sa.exc.InterfaceError):
            return True
        if isinstance(current, sa.exc.DBAPIError):
            if current.connection_invalidated:
                return True
            if isinstance(current, sa.exc.OperationalError):
                text = str(current.orig or current).lower()
                # On PostgreSQL an OperationalError is the connection or the server (shutting down,
                # too many connections); on SQLite most are statement errors, except these.
                if "sqlite" not in type(current.orig).__module__ or any(word in text for word in _SQLITE_BUSY):
                    return True
        elif _connection_error(current):
            return True
        current = current.__cause__ or current.__context__
    return False


class _Session(AsyncSession):
    """A session that reports a database outage as :class:`DatabaseUnavailable` when it ends."""

    database = "?"

    async def __aexit__(self, type_: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        except Exception as closing:
            if value is not None:
                raise value from closing  # the body's failure says more than the close's
            if database_outage(closing):
                raise DatabaseUnavailable(self.database, closing) from closing
            raise
        if isinstance(value, Exception) and not isinstance(value, DatabaseUnavailable) and database_outage(value):
            raise DatabaseUnavailable(self.database, value) from value


class Database:
    """An async engine with read sessions (:meth:`session`) and write sessions (:meth:`writer`)."""

    def __init__(self, url: str, *, pool: PoolSettings | None = None) -> None:
        self.url = normalize_url(url)
        self.pool = pool or PoolSettings()
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": self.pool.echo, "json_serializer": _json_dumps}
        if self.dialect == "postgresql":
            kwargs.update(pool_size=self.pool.pool_size, max_overflow=self.pool.max_overflow,
                          pool_timeout=self.pool.pool_timeout, pool_recycle=self.pool.pool_recycle,
                          pool_pre_ping=self.pool.pool_pre_ping)
        elif make_url(self.url).database not in (None, "", ":memory:"):
            # A file database: every connection is a thread of the driver, opened with its pragmas, so
            # keep them all (no overflow connections opened and closed under load).
            kwargs.update(pool_size=self.pool.pool_size + self.pool.max_overflow, max_overflow=0,
                          pool_timeout=self.pool.pool_timeout)
        if self.dialect == "sqlite" and _sqlite_file(make_url(self.url)):
            # Before SQLite opens it: its -wal and -shm files take the database file's mode.
            private_sqlite_file(Path(make_url(self.url).database or "").expanduser())
        if self.dialect == "sqlite":
            # Statements on the loop's thread rather than one aiosqlite thread per connection (sqlite_driver.py).
            kwargs["async_creator"] = connector(make_url(self.url), connect_timeout_s=self.pool.busy_timeout_ms / 1000)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            self._configure_sqlite()
        # Write sessions run on the same pool; the option tells the SQLite begin hook to take the lock.
        self._write_engine = self.engine.execution_options(agentadapter_write=True)
        # Readers run each statement on its own (no BEGIN/ROLLBACK round trips): on SQLite through the
        # begin hook, on PostgreSQL in autocommit.
        reader = self.engine if self.dialect == "sqlite" else self.engine.execution_options(
            isolation_level="AUTOCOMMIT")
        session_class = type("Session", (_Session,), {"database": self.name})
        self._reader: async_sessionmaker[AsyncSession] = async_sessionmaker(
            reader, class_=session_class, expire_on_commit=False, autoflush=False)
        self._writer: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self._write_engine, class_=session_class, expire_on_commit=False, autoflush=False)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    def __repr__(self) -> str:
        return f"Database({self.name!r})"

    @property
    def name(self) -> str:
        """The URL without its password (for logs and errors)."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _configure_sqlite(self) -> None:
        busy_timeout = self.pool.busy_timeout_ms
        cache_kib = self.pool.sqlite_cache_kib

        @sa.event.listens_for(self.engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # The driver's connections are in autocommit mode (no isolation level), so BEGIN is ours (see
            # _on_begin), and have no busy handler: a writer waits for another process's lock in
            # begin_immediate, off the loop's thread.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
                cursor.execute("PRAGMA busy_timeout=0")  # last: the pragmas above may wait for a lock
            finally:
                cursor.close()

        @sa.event.listens_for(self.engine.sync_engine, "begin")
        def _on_begin(connection: sa.Connection) -> None:
            # Writers take the write lock up front (waiting up to the busy timeout for it, off the
            # loop's thread). Readers open no transaction: each SELECT reads its own WAL snapshot.
            if connection.get_execution_options().get("agentadapter_write", False):
                raw = connection.connection.driver_connection
                if not (isinstance(raw, InlineConnection) and begin_immediate(raw.raw, busy_timeout / 1000)):
                    connection.exec_driver_sql("BEGIN IMMEDIATE")  # raises the database's error, as SQLAlchemy's

    def session(self) -> AsyncSession:
        """A session for reading (``async with db.session() as s: ...``)."""
        return self._reader()

    @contextlib.asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncSession]:
        """A session for writing, in a transaction committed on success and rolled back on error."""
        lock = self._write_lock
        if lock is not None:
            await lock.acquire()
        try:
            async with self._writer() as session, session.begin():
                yield session
        finally:
            if lock is not None:
                lock.release()

    @contextlib.asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session for writing that the caller commits itself (what request handlers use)."""
        lock = self._write_lock
        if lock is not None:
            await lock.acquire()
        try:
            async with self._writer() as session:
                yield session
        finally:
            if lock is not None:
                lock.release()

    async def ping(self) -> None:
        """One round trip to the database (raises DatabaseUnavailable when it is unreachable)."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except Exception as exc:
            if database_outage(exc):
                raise DatabaseUnavailable(self.name, exc) from exc
            raise

    async def dispose(self) -> None:
        await self.engine.dispose()
