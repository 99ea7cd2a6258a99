"""Real services the tests use, and how a test gets one or is skipped (or failed, under CI).

Tests run against real servers (Redis, PostgreSQL, and later RabbitMQ), never mocks of them. On a
developer's machine a missing server skips the tests that need it, with the reason; under ``CI=true``
a missing server is a failure, because CI is where we promise those tests ran.

PostgreSQL tests never touch an existing database: :func:`postgres_url_or_skip` creates a throw-away
database (``aa_test_<pid>_<random>``) on first use in a test session, and drops it when the session
ends (``WITH (FORCE)``, so connections a test left open do not keep it alive).

The machine's Redis and RabbitMQ are shared too: tests use their own key prefixes on them, or - when
they need a whole server (an empty broker, pub/sub channels nobody else hears, a server to stop) -
start a private one with :func:`start_redis` (and tests/worker/conftest.py's RabbitMQ node), on a free
loopback port, stopped with :func:`stop_group` in the fixture's finalizer.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = [
    "DEFAULT_TEST_POSTGRES_URL",
    "DEFAULT_TEST_REDIS_URL",
    "PrivateRedis",
    "free_port",
    "log_tail",
    "postgres_url_or_skip",
    "redis_url_or_skip",
    "start_redis",
    "stop_group",
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


# ------------------------------------------------------------------------ private servers


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it; a race with another process is unlikely)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and everything in its group; SIGKILL
    what is left after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # children that outlived the group leader
        os.killpg(process.pid, signal.SIGKILL)


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a server's log, for the message of a test it failed."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class PrivateRedis:
    """A ``redis-server`` of a test's own on a free loopback port: nothing else sees its keys or its
    pub/sub channels (which, unlike keys, no database number separates). With ``persist``, every write
    is on disk before it is answered (``appendfsync always``), so a test may :meth:`kill` it - an abrupt
    crash - and :meth:`restart` it on the same port with its data, as a production Redis with AOF."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    persist: bool = False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crash."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start it again on the same port (and, with ``persist``, the same data)."""
        self.process = _redis_process(self.port, self.directory, self.persist)
        _wait_for_redis(self)


def start_redis(directory: Path, *, persist: bool = False) -> PrivateRedis:
    """Start one (stop it with ``stop_group(server.process)``); skip the test (fail under CI) without the binary."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (this test starts a private one): install redis-server")
    port = free_port()
    server = PrivateRedis(port, _redis_process(port, directory, persist), directory, persist)
    _wait_for_redis(server)
    return server


def _redis_process(port: int, directory: Path, persist: bool) -> subprocess.Popen[bytes]:
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    with (directory / "redis.log").open("ab") as output:
        return subprocess.Popen(
            [str(shutil.which("redis-server")), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             *durability, "--dir", str(directory), "--daemonize", "no", "--logfile", ""],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_redis(server: PrivateRedis) -> None:
    import redis

    client = redis.Redis.from_url(server.url(), socket_connect_timeout=1.0)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if server.process.poll() is not None or time.monotonic() > deadline:
                    stop_group(server.process)
                    unavailable(f"a private redis-server on port {server.port} did not start:\n"
                                f"{log_tail(server.directory / 'redis.log')}")
                time.sleep(0.05)  # polling a server that is starting: nothing to wait on but its port
    finally:
        client.close()
