"""Runs are never left behind: every run ends, whatever happens to the process executing it.

- A real ``agentadapter serve`` is killed (``kill -9``) while a run waits on a loopback provider
  that never answers; a new server ends the run ``failed`` (``ServerLost``), with a
  ``run_finished`` event its SSE stream ends on, and no run is left ``running`` - with Redis
  configured (the run's lease expires and the reaper fails it) and without (start-up fails it).
- A run whose lease expired is failed by the reaper of any process: its agent runs are closed and
  its usage is the sum of its usage records; it can be cancelled before a reaper gets to it.
- A run whose final database write fails is retried until the write lands.
- A run submitted while the broker or Redis is down is a 503 that says which, and no run is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from agentadapter.store import runs as run_store
from agentadapter.store import tenants
from agentadapter.store.database import Database
from agentadapter.store.models import AgentRun, Run, UsageRecord, utcnow
from fakes.stalling_server import StallingServer
from server.conftest import Api, AppFactory
from server.test_runs import frames
from services import redis_url_or_skip
from store.databases import admin_key, migrated_sqlite

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "agentadapter.cli"]
FAST_LEASES = {"run_lease_s": 1.5, "run_reaper_interval_s": 0.1}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _poll(check: Callable[[], Any], *, timeout: float = 20.0, every: float = 0.05) -> Any:
    """Until ``await check()`` is truthy (its value), or fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(every)
        return value


# ---------------------------------------------------------------------------------- real servers


class Servers:
    """Starts ``agentadapter serve`` processes on one database; every one is killed at the end of the test."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self) -> str:
        port = _port()
        log = open(self.directory / f"server{len(self.processes)}.log", "ab")  # noqa: SIM115 - the process's log
        process = subprocess.Popen([*CLI, "serve", "--port", str(port), "--log-level", "warning"], env=self.env,
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            assert process.poll() is None, self.logs()
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(url + "/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await _poll(ready, timeout=60, every=0.1)
        return url

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        process = self.processes[index]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=20)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.directory.glob("server*.log")))

    def stop_all(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is None:
                self.kill(index, signal.SIGTERM)


@pytest.fixture
async def stalling() -> AsyncIterator[StallingServer]:
    server = StallingServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def servers(tmp_path: Path, template_dir: Path) -> Iterator[Callable[..., Servers]]:
    made: list[Servers] = []

    def make(provider_url: str, **env: str) -> Servers:
        (tmp_path / "agentadapter.yaml").write_text(
            f"backends:\n  stall:\n    type: openai\n    base_url: \"{provider_url}\"\n    api_key: sk-test\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
        base.update(
            AGENTADAPTER_DATA_DIR=str(tmp_path / "data"), AGENTADAPTER_DATABASE_URL=migrated_sqlite(tmp_path, template_dir),
            AGENTADAPTER_CONFIG=str(tmp_path / "agentadapter.yaml"), AGENTADAPTER_RUN_LEASE_S="1.5",
            AGENTADAPTER_RUN_REAPER_INTERVAL_S="0.2", PYTHONUNBUFFERED="1", **env)
        made.append(Servers(tmp_path, base))
        return made[-1]

    yield make
    for group in made:
        group.stop_all()


async def _unfinished(database_url: str) -> tuple[int, int]:
    """Runs still queued or running, and agent runs still running, in the whole database."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            runs = await session.scalar(sa.select(sa.func.count()).where(Run.status.in_(("queued", "running"))))
            agent_runs = await session.scalar(sa.select(sa.func.count()).where(AgentRun.status == "running"))
            return int(runs or 0), int(agent_runs or 0)
    finally:
        await db.dispose()


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "no-redis"])
async def test_a_run_of_a_killed_server_ends_failed_and_nothing_is_left_running(
    with_redis: bool, stalling: StallingServer, servers: Callable[..., Servers]
) -> None:
    env = {"AGENTADAPTER_REDIS_URL": redis_url_or_skip()} if with_redis else {}
    group = servers(stalling.url_for("silent"), **env)
    first = await group.start()
    database_url = group.env["AGENTADAPTER_DATABASE_URL"]
    headers = {"Authorization": f"Bearer {await admin_key(database_url, 'left-behind')}"}
    async with httpx.AsyncClient(base_url=first, headers=headers, timeout=10) as client:
        agent = (await client.post("/v1/agents", json={"name": "waits", "model": "stall/m"})).json()
        created = await client.post("/v1/runs", json={"agent_id": agent["id"], "input": "hello"})
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        async with asyncio.timeout(20):
            await stalling.wait_for("silent")  # the run is mid-step, waiting on the provider

    group.kill(0)  # kill -9: no shutdown, no final write
    assert await _unfinished(database_url) == (1, 1)

    second = await group.start()
    async with httpx.AsyncClient(base_url=second, headers=headers, timeout=30) as client:
        # Followed from the start: the stream ends, on the run_finished event the reaper (or start-up) stored.
        async with asyncio.timeout(30):
            events = frames((await client.get(f"/v1/runs/{run_id}/events")).text)
        run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "ServerLost", run["error"]
    assert "start it again" in run["error"]["message"]
    assert events[0]["event"] == "run_started"
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["data"]["data"]["status"] == "failed"
    assert events[-1]["data"]["data"]["error"]["type"] == "ServerLost"
    assert [a["status"] for a in run["agents"]] == ["failed"]
    assert await _unfinished(database_url) == (0, 0)
    group.stop_all()
    assert "Traceback" not in group.logs()


# ------------------------------------------------------------------- a lost run, in one process


async def _lost_run(api: Api, *, expired: bool = True) -> tuple[uuid.UUID, float]:
    """A run of a server process that died mid-step: running, its lease past, an agent run open, two
    usage records (one with an unknown price); returns its id and the records' total cost."""
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        project = await tenants.resolve_project(session, tenant.id, None)
        run = await run_store.create_run(session, tenant.id, input="x", project_id=project.id, strategy="sequential")
        run.status, run.started_at = "running", utcnow() - timedelta(seconds=5)
        run.lease_owner = "gone-host:1:deadbeef"
        run.lease_until = utcnow() - timedelta(seconds=1 if expired else -3600)
        run.usage, run.cost_usd = {"input_tokens": 1}, 0.5  # what the process wrote last: stale
        session.add(AgentRun(id=uuid.uuid4(), tenant_id=tenant.id, run_id=run.id, name="writer", step=1,
                             status="running", started_at=utcnow()))
        for tokens, cost in ((100, 0.25), (50, None)):
            session.add(UsageRecord(tenant_id=tenant.id, ts=utcnow(), provider="openai", model="m",
                                    input_tokens=tokens, output_tokens=tokens // 10, cache_read_tokens=tokens // 2,
                                    reasoning_tokens=1, cost_usd=cost, run_id=str(run.id), source="run"))
        await session.flush()
        await run_store.record_event(session, tenant.id, _event(run.id, 1, "run_started"))
    return run.id, 0.25


def _event(run_id: uuid.UUID, seq: int, type: str) -> Any:
    from agentadapter.orchestrator.events import RunEvent

    return RunEvent(seq, type, str(run_id), None, time.time(), {})  # type: ignore[arg-type]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_the_reaper_fails_a_lost_run_closes_its_agent_runs_and_sums_its_usage(
    database: str, make_api: AppFactory
) -> None:
    async with make_api(database=database, server=FAST_LEASES) as api:
        run_id, cost = await _lost_run(api)

        async def ended() -> dict[str, Any] | None:
            run = (await api.request("GET", f"/v1/runs/{run_id}")).json()
            return run if run["status"] != "running" else None

        run = await _poll(ended)
        assert run["status"] == "failed" and run["error"]["type"] == "ServerLost"
        assert "gone-host" not in run["error"]["message"]  # tenants are not told the server's host
        assert run["usage"]["input_tokens"] == 150 and run["usage"]["output_tokens"] == 15
        assert run["usage"]["cached_input_tokens"] == 75 and run["usage"]["reasoning_tokens"] == 2
        assert run["cost_usd"] == pytest.approx(cost)
        assert [(a["status"], a["error"]["type"]) for a in run["agents"]] == [("failed", "ServerLost")]
        events = frames((await api.request("GET", f"/v1/runs/{run_id}/events")).text)
        assert [e["event"] for e in events] == ["run_started", "run_finished"]
        assert events[-1]["data"]["data"]["error"]["type"] == "ServerLost"
        assert events[-1]["data"]["data"]["usage"]["input_tokens"] == 150
        async with api.state.db.session() as session:
            stored = await session.get(Run, run_id)
            assert stored is not None and stored.lease_until is None


async def test_a_run_under_a_live_lease_is_not_reaped(make_api: AppFactory) -> None:
    async with make_api(server=FAST_LEASES) as api:
        run_id, _ = await _lost_run(api, expired=False)
        reaper = api.state.executor.leases
        passes = reaper.passes
        await _poll(lambda: _true(reaper.passes >= passes + 2))
        assert (await api.request("GET", f"/v1/runs/{run_id}")).json()["status"] == "running"


async def _true(value: bool) -> bool:
    return value


async def test_a_lost_run_can_be_cancelled_before_a_reaper_ends_it(make_api: AppFactory) -> None:
    # With Redis, a cancel of a run not executing here would only be published to the other processes:
    # nobody would hear it for a run whose process died. Its expired lease says so, and it is closed here.
    redis_url = redis_url_or_skip()
    async with make_api(settings={"redis_url": redis_url},
                        server={"run_lease_s": 1.5, "run_reaper_interval_s": 3600}) as api:
        await _poll(lambda: _true(api.state.executor.leases.passes >= 1))
        run_id, _ = await _lost_run(api)
        cancelled = await api.request("POST", f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        run = (await api.request("GET", f"/v1/runs/{run_id}")).json()
        assert run["status"] == "cancelled" and run["error"]["type"] == "Cancelled"
        assert [a["status"] for a in run["agents"]] == ["cancelled"]
        events = frames((await api.request("GET", f"/v1/runs/{run_id}/events")).text)
        assert events[-1]["event"] == "run_finished" and events[-1]["data"]["data"]["status"] == "cancelled"


# ---------------------------------------------------------------------------- the final write


async def test_a_final_write_that_fails_is_retried_until_the_run_ends(
    make_api: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = run_store.end_run_with_result
    calls: list[str] = []

    async def flaky(session: Any, tenant_id: uuid.UUID, result: Any, finished: Any) -> bool:
        calls.append(result.status)
        if len(calls) <= 3:
            raise OperationalError("UPDATE runs SET status=...", {}, Exception("database is locked"))
        return await real(session, tenant_id, result, finished)

    monkeypatch.setattr(run_store, "end_run_with_result", flaky)
    async with make_api(server=FAST_LEASES) as api:
        agent = await api.create_agent()
        created = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hello"})
        assert created.status_code == 202, created.text
        run = await api.wait_run(created.json()["id"])
        assert run["status"] == "completed", run
        assert calls == ["completed"] * 4
        events = frames((await api.request("GET", f"/v1/runs/{run['id']}/events")).text)
        assert [e["event"] for e in events].count("run_finished") == 1
        assert events[-1]["event"] == "run_finished" and events[-1]["data"]["data"]["status"] == "completed"
        async with api.state.db.session() as session:
            stored = await session.get(Run, uuid.UUID(run["id"]))
            assert stored is not None and stored.lease_until is None and stored.lease_owner


# ------------------------------------------------------------------------- refused submissions


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test alone (it is stopped mid-test; the shared one never is)."""
    port = _port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)


async def _runs_of(api: Api) -> int:
    tenant = await api.tenant()
    async with api.state.db.session() as session:
        return int(await session.scalar(sa.select(sa.func.count()).where(Run.tenant_id == tenant.id)) or 0)


async def test_a_run_submitted_while_the_broker_is_down_is_a_503_and_no_run(make_api: AppFactory) -> None:
    redis_url = redis_url_or_skip()
    broker = f"amqp://guest:guest@127.0.0.1:{_port()}//"  # nothing listens there
    async with make_api(settings={"redis_url": redis_url, "executor": "celery", "broker_url": broker}) as api:
        agent = await api.create_agent()
        refused = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hello"})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "broker_unavailable" and "broker" in error["message"]
        assert "127.0.0.1" not in error["message"]  # the broker's address is for the operator's log
        assert refused.headers["Retry-After"]
        assert await _runs_of(api) == 0


async def test_a_run_submitted_while_redis_is_down_is_a_503_and_no_run(
    make_api: AppFactory, private_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    redis_url, process = private_redis
    async with make_api(settings={"redis_url": redis_url, "executor": "celery"}) as api:
        agent = await api.create_agent()
        process.terminate()
        process.wait(timeout=10)
        refused = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hello"})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "shared_state_unavailable" and "Redis" in error["message"]
        assert await _runs_of(api) == 0


async def test_an_inline_run_does_not_need_redis_to_execute(
    make_api: AppFactory, private_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    # Redis carries cancels between server processes; a run executing here runs without it.
    redis_url, process = private_redis
    async with make_api(settings={"redis_url": redis_url}, server=FAST_LEASES) as api:
        agent = await api.create_agent()
        process.terminate()
        process.wait(timeout=10)
        created = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hello"})
        assert created.status_code == 202, created.text
        assert (await api.wait_run(created.json()["id"]))["status"] == "completed"
