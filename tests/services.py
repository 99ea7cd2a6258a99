"""Real services the tests use, and how a test gets one or is skipped (or failed, under CI).

Tests run against real servers (Redis, PostgreSQL, and later RabbitMQ), never mocks of them. On a
developer's machine a missing server skips the tests that need it, with the reason; under ``CI=true``
a missing server is a failure, because CI is where we promise those tests ran.

PostgreSQL tests never touch an existing database: :func:`postgres_url_or_skip` creates a throw-away
database (``aa_test_<pid>_<random>``) on first use in a test session, and drops it when the session
ends (``WITH (FORCE)``, so connections a test left open do not keep it alive).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import pytest

__all__ = [
    "DEFAULT_TEST_POSTGRES_URL",
    "DEFAULT_TEST_REDIS_URL",
    "postgres_url_or_skip",
    "redis_url_or_skip",
    "unavailable",
]

#: The Redis the tests use unless AGENTADAPTER_TEST_REDIS_URL says otherwise (db 15: scratch space).
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
#: The PostgreSQL server the tests create their throw-away database on (AGENTADAPTER_TEST_POSTGRES_URL
#: overrides it; the database named in it is only used to connect and create or drop ours).
DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> NoReturn:
    """Skip the test because a service it needs is missing (fail it under CI=true, where it must run)."""
    if _in_ci():
        pytest.fail(f"{message} - under CI a missing service is a failure", pytrace=False)
    pytest.skip(message)


@functools.lru_cache(maxsize=8)
def _redis_problem(url: str) -> str | None:
    """Why the Redis server at ``url`` cannot be used, or None if it answers PING."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -e '.[dev,redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def redis_url_or_skip() -> str:
    """The test Redis URL if its server answers; otherwise skip the test (fail it under CI=true)."""
    url = os.environ.get("AGENTADAPTER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    problem = _redis_problem(url)
    if problem is not None:
        message = (
            f"Redis at {url} is not reachable ({problem}); start it (e.g. `redis-server` or .ci/run) "
            "or point AGENTADAPTER_TEST_REDIS_URL at one"
        )
        unavailable(message)
    return url


def _in_thread(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine on a fresh loop in a thread (callers may be inside a running loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _admin_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)


@functools.lru_cache(maxsize=4)
def _postgres_database(admin_url: str) -> tuple[str | None, str | None]:
    """``(url of a new throw-away database, None)``, or ``(None, why PostgreSQL cannot be used)``."""
    try:
        import asyncpg
    except ImportError:
        return None, "the asyncpg package is not installed (pip install -e '.[dev,server,postgres]')"
    name = f"aa_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    dsn = _admin_dsn(admin_url)

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(dsn, timeout=3)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    try:
        _in_thread(lambda: run(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"

    def drop() -> None:
        try:
            _in_thread(lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # pragma: no cover - reported, never raised at exit
            print(f"could not drop the test database {name}: {exc}")

    atexit.register(drop)
    return dsn.rsplit("/", 1)[0] + "/" + name, None


def postgres_url_or_skip() -> str:
    """The URL of this test session's throw-away PostgreSQL database; skip the test (fail under CI=true)
    if the server is not reachable."""
    admin_url = os.environ.get("AGENTADAPTER_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    url, problem = _postgres_database(admin_url)
    if url is None:
        message = (
            f"PostgreSQL at {admin_url} is not usable ({problem}); start it (e.g. `pg_ctlcluster 15 main start` "
            "or .ci/run) or point AGENTADAPTER_TEST_POSTGRES_URL at one where the user may create databases"
        )
        unavailable(message)
    return url
