"""Shared state going away: the database or Redis down answers typed 503s and recovers without a
restart, and a server that cannot bind its port exits non-zero instead of hanging on its Redis
listeners.

The database outage runs through a TCP proxy this test owns (between the app and the machine's
PostgreSQL), which it cuts and restores; the Redis outage through a redis-server of this test alone.
The shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fakes.private_redis import PrivateRedis
from services import postgres_url_or_skip, redis_url_or_skip


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ private servers


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


class CuttableProxy:
    """A TCP proxy on loopback to ``target``: :meth:`cut` closes every connection and refuses new ones
    (as a database host going away), :meth:`restore` accepts again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.close()
            self._writers.discard(sink)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()  # the same port again

    async def close(self) -> None:
        await self.cut()


@pytest.fixture
async def postgres_proxy() -> AsyncIterator[tuple[CuttableProxy, str]]:
    """A proxy to the session's PostgreSQL database, and the database URL through it."""
    url = make_url(postgres_url_or_skip())
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    finally:
        await proxy.close()


# -------------------------------------------------------------------------------- bind failure


def test_serve_exits_non_zero_promptly_when_its_port_is_taken(tmp_path: Path) -> None:
    """With Redis configured, the cancel relay's listener once swallowed its cancellation and the
    shutdown that followed the bind error waited on it forever (SIGTERM did not help either)."""
    redis_url = redis_url_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
    env.update(AGENTADAPTER_DATA_DIR=str(tmp_path), AGENTADAPTER_ENV="development", AGENTADAPTER_REDIS_URL=redis_url,
               PYTHONUNBUFFERED="1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-m", "agentadapter.cli_service", "serve", "--port", str(port)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = process.communicate(timeout=60)  # a guard against a hang, not a timing assertion
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            pytest.fail(f"serve kept running after failing to bind: {output.decode()[-2000:]}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode != 0, output.decode()
    assert b"address already in use" in output, output.decode()[-2000:]
