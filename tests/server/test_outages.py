"""Shared state going away: the database or Redis down answers typed 503s and recovers without a
restart, and a server that cannot bind its port exits non-zero instead of hanging on its Redis
listeners.

The database outage runs through a TCP proxy this test owns (between the app and the machine's
PostgreSQL), which it cuts and restores; the Redis outage through a redis-server of this test alone.
The shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from agentadapter.llm.client import LLM
from agentadapter.server.app import create_app
from agentadapter.testing import offline_llm
from server.conftest import Api, AppFactory, make_settings, server_settings
from services import PrivateRedis, postgres_url_or_skip, redis_url_or_skip, start_redis, stop_group
from store.databases import new_database_url, unique


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ private servers


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = start_redis(tmp_path, persist=True)
    try:
        yield server
    finally:
        stop_group(server.process)


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


@pytest.mark.slow
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
        process = subprocess.Popen([sys.executable, "-m", "agentadapter.cli", "serve", "--port", str(port)],
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


# ------------------------------------------------------------------------------ database outage


async def _reachable(api: Api, path: str = "/v1/agents") -> httpx.Response:
    return await api.request("GET", path)


def _assert_outage(response: httpx.Response, code: str, *hidden: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == code and "retry" in error["message"], error
    assert int(response.headers["Retry-After"]) > 0
    for secret in hidden:  # where the server is goes to the operator's log, not to API clients
        assert secret not in response.text, response.text


@contextlib.asynccontextmanager
async def _api_on(url: str, tmp_path: Path, **kwargs: Any) -> AsyncIterator[Api]:
    llm = kwargs.pop("llm", None) or offline_llm()
    app = create_app(make_settings(url, tmp_path, **kwargs.pop("settings", {})), server_settings=server_settings(),
                     llm=llm, **kwargs)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield Api(app, client)
    finally:
        await llm.aclose()


async def test_postgres_away_is_a_503_database_unavailable_and_back_without_a_restart(
    tmp_path: Path, template_dir: Path, postgres_proxy: tuple[CuttableProxy, str], caplog: pytest.LogCaptureFixture
) -> None:
    new_database_url("postgres", tmp_path, template_dir)  # migrated on the server itself
    proxy, url = postgres_proxy
    async with _api_on(url, tmp_path) as api:
        await api.create_agent()
        assert (await _reachable(api)).status_code == 200
        await proxy.cut()
        with caplog.at_level(logging.WARNING, logger="agentadapter.server"):
            for _ in range(3):  # pooled connections dropped, then new ones refused: the same answer
                _assert_outage(await _reachable(api), "database_unavailable", str(proxy.port), "postgres")
            write = await api.request("POST", "/v1/agents", json={"name": unique("agent"), "model": "test/echo"})
            _assert_outage(write, "database_unavailable", str(proxy.port))
        assert str(proxy.port) in caplog.text  # the operator learns which database
        await proxy.restore()
        answer = await _reachable(api)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"]) == 1


async def test_sqlite_locked_past_its_busy_timeout_is_a_503_then_writes_again(
    make_api: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTADAPTER_DB_BUSY_TIMEOUT_MS", "200")
    async with make_api() as api:
        await api.tenant()
        path = api.state.db.engine.url.database
        assert path
        holder = sqlite3.connect(path, isolation_level=None)  # another process's writer, as it were
        try:
            holder.execute("BEGIN IMMEDIATE")
            created = await api.request("POST", "/v1/agents", json={"name": unique("agent"), "model": "test/echo"})
            _assert_outage(created, "database_unavailable", path)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        created = await api.request("POST", "/v1/agents", json={"name": unique("agent"), "model": "test/echo"})
        assert created.status_code == 201, created.text


# --------------------------------------------------------------------------------- Redis outage


async def test_redis_away_is_a_503_shared_state_unavailable_and_back_without_a_restart(
    tmp_path: Path, template_dir: Path, private_redis: PrivateRedis
) -> None:
    # Budgets are shared through Redis: a gateway call whose spend cannot be checked is not sent.
    llm = LLM(config={"budgets": [{"scope": "global", "limit_usd": 100.0, "allow_unpriced": True}]}, environ={})
    url = new_database_url("sqlite", tmp_path, template_dir)
    async with _api_on(url, tmp_path, llm=llm, settings={"redis_url": private_redis.url()}) as api:
        body = {"model": "test/echo", "messages": [{"role": "user", "content": "hello"}]}
        key = await api.key(role="member")
        headers = {"Authorization": f"Bearer {key}"}
        answered = await api.client.post("/v1/chat/completions", json=body, headers=headers)
        assert answered.status_code == 200, answered.text
        private_redis.kill()
        refused = await api.client.post("/v1/chat/completions", json=body, headers=headers)
        _assert_outage(refused, "shared_state_unavailable", str(private_redis.port), "AGENTADAPTER_REDIS_URL")
        private_redis.restart()
        again = await api.client.post("/v1/chat/completions", json=body, headers=headers)
        assert again.status_code == 200, again.text
