"""Runs on Celery workers: two real ``agentadapter worker`` processes, PostgreSQL, Redis as broker.

Runs go in through two API apps (``AGENTADAPTER_EXECUTOR=celery``, as two instances behind a load
balancer: same database, same Redis), their steps spread over both workers, and the database shows
each step executed and recorded once; one instance serves the live events of a run submitted to the
other; a worker killed with ``kill -9`` loses no run; a cancelled parallel run stops on both workers.

The Redis (and, for the restart test, the RabbitMQ node) are private to this module (see conftest.py):
nothing here flushes, restarts or registers a Celery node name on the machine's shared servers, and
every worker has a node name of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from agentadapter.llm.client import LLM
from agentadapter.server.app import create_app
from agentadapter.store import api_keys, tenants
from agentadapter.store.models import AgentRun, Run, RunEventRow, RunStep, UsageRecord
from server.conftest import make_settings, server_settings
from services import PrivateRedis, postgres_url_or_skip, stop_group
from worker.conftest import PrivateRabbitMQ, unique_node_name

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

BACKENDS = {"instant": {"type": "test", "latency_ms": 0}, "quick": {"type": "test", "latency_ms": 40}, "slow": {"type": "test", "latency_ms": 300},
            "glacial": {"type": "test", "latency_ms": 8000}}
CONFIG = "backends:\n" + "".join(f"  {name}:\n    type: test\n    latency_ms: {spec['latency_ms']}\n"
                                 for name, spec in BACKENDS.items())


@dataclass
class Cluster:
    database_url: str
    redis_url: str
    data_dir: Path
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, index: int, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"worker{index}.log", "ab")  # noqa: SIM115 - kept open for the process
        process = subprocess.Popen(
            [sys.executable, "-m", "agentadapter.cli", "worker", "--concurrency", "2", "--loglevel", "WARNING",
             "--hostname", unique_node_name()],
            env={**self.env, **env}, cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, private_redis: PrivateRedis) -> Iterator[Cluster]:
    database_url = postgres_url_or_skip()
    redis_url = private_redis.url()  # empty: no other test or process uses this server
    data_dir = tmp_path_factory.mktemp("workers")
    (data_dir / "agentadapter.yaml").write_text(CONFIG)
    env = {
        **os.environ,
        "AGENTADAPTER_DATABASE_URL": database_url, "AGENTADAPTER_REDIS_URL": redis_url,
        "AGENTADAPTER_EXECUTOR": "celery", "AGENTADAPTER_DATA_DIR": str(data_dir),
        "AGENTADAPTER_CONFIG": str(data_dir / "agentadapter.yaml"),
        "AGENTADAPTER_WORKER_QUEUE": f"aa-test-{uuid.uuid4().hex[:8]}", "AGENTADAPTER_STEP_LEASE_S": "3",
        "AGENTADAPTER_STEP_REQUEUE_S": "5", "AGENTADAPTER_REAPER_INTERVAL_S": "0.5",
        "AGENTADAPTER_BROKER_VISIBILITY_TIMEOUT_S": "8", "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
    }
    env.pop("AGENTADAPTER_BROKER_URL", None)
    cluster = Cluster(database_url, redis_url, data_dir, env)
    cluster.start_worker(0)
    cluster.start_worker(1)
    try:
        yield cluster
    finally:
        for process in cluster.workers:
            stop_group(process)


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any
    headers: dict[str, str]

    @property
    def db(self) -> Any:
        return self.app.state.agentadapter.db

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(path, headers=self.headers, json=body)
        assert response.status_code in (200, 201, 202), response.text
        return dict(response.json())

    async def workflow(self, name: str, strategy: dict[str, Any], agents: list[dict[str, Any]]) -> str:
        spec = {"name": name, **strategy, "agents": agents}
        return str((await self.post("/v1/workflows", {"name": name, "spec": spec}))["id"])

    async def wait_all(self, run_ids: list[str], timeout: float = 60.0) -> dict[str, str]:
        """Each run's final status (fails the test if one is still unfinished after ``timeout``)."""
        ids = [uuid.UUID(r) for r in run_ids]
        async with asyncio.timeout(timeout):
            while True:
                async with self.db.session() as session:
                    rows = (await session.execute(sa.select(Run.id, Run.status).where(Run.id.in_(ids)))).all()
                statuses = {str(r[0]): r[1] for r in rows}
                if all(s in ("completed", "failed", "cancelled") for s in statuses.values()):
                    return statuses
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def api(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, queue: str | None = None,
              headers: dict[str, str] | None = None, **settings: Any) -> AsyncIterator[Api]:
    """An API app on the cluster's database and Redis with a new tenant's admin key (or ``headers``'s)."""
    for name in ("AGENTADAPTER_WORKER_QUEUE", "AGENTADAPTER_STEP_LEASE_S", "AGENTADAPTER_STEP_REQUEUE_S",
                 "AGENTADAPTER_REAPER_INTERVAL_S", "AGENTADAPTER_BROKER_VISIBILITY_TIMEOUT_S"):
        monkeypatch.setenv(name, cluster.env[name])
    if queue is not None:
        monkeypatch.setenv("AGENTADAPTER_WORKER_QUEUE", queue)
    llm = LLM(config={"backends": BACKENDS}, environ={})
    app = create_app(make_settings(cluster.database_url, cluster.data_dir, executor="celery",
                                   redis_url=cluster.redis_url, **settings), server_settings=server_settings(), llm=llm)
    async with app.router.lifespan_context(app):
        if headers is None:
            async with app.state.agentadapter.db.writer() as session:
                tenant = await tenants.create_tenant(session, f"w-{uuid.uuid4().hex[:8]}")
                _, key = await api_keys.create_api_key(session, tenant.id, role="admin")
            headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, app, headers)
    await llm.aclose()


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` (its lifespan already started) served over HTTP on a free loopback port; yields its URL."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.get_running_loop().create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "the HTTP server did not start"
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def step_rows(db: Any, run_ids: list[str]) -> list[RunStep]:
    async with db.session() as session:
        return list((await session.scalars(
            sa.select(RunStep).where(RunStep.run_id.in_([uuid.UUID(r) for r in run_ids])))).all())


async def assert_recorded_once(db: Any, run_ids: list[str], steps_per_run: int) -> list[RunStep]:
    """Every step done once, one agent-run row per step, one run_started and one run_finished per run."""
    ids = [uuid.UUID(r) for r in run_ids]
    rows = await step_rows(db, run_ids)
    assert len(rows) == steps_per_run * len(run_ids)
    assert {r.status for r in rows} == {"done"}
    assert {r.result["status"] for r in rows if r.result} == {"completed"}
    async with db.session() as session:
        agent_runs = (await session.execute(
            sa.select(AgentRun.run_id, AgentRun.step, AgentRun.status).where(AgentRun.run_id.in_(ids)))).all()
        events = (await session.execute(
            sa.select(RunEventRow.run_id, RunEventRow.type).where(RunEventRow.run_id.in_(ids)))).all()
    assert Counter((r[0], r[1]) for r in agent_runs) == Counter({(uuid.UUID(str(s.run_id)), int(s.key.split(":")[0])): 1
                                                                  for s in rows})
    assert {r[2] for r in agent_runs} == {"completed"}
    kinds = Counter((r[0], r[1]) for r in events)
    for run_id in ids:
        assert kinds[(run_id, "run_started")] == 1 and kinds[(run_id, "run_finished")] == 1
        assert kinds[(run_id, "agent_started")] >= steps_per_run
        assert kinds[(run_id, "agent_finished")] == steps_per_run
    return rows


def main_process(row: RunStep) -> int:
    return int((row.worker or "::").split(":")[1])


async def test_runs_through_two_api_instances_spread_over_two_workers_and_each_step_runs_once(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    async with api(cluster, monkeypatch) as first, api(cluster, monkeypatch, headers=first.headers) as second:
        instances = (first, second)
        agents = [{"name": n, "model": "instant/m", "instructions": "answer"} for n in ("a", "b")]
        sequential = await first.workflow("seq", {"strategy": "sequential"}, agents)
        parallel = await second.workflow("par", {"strategy": "parallel", "aggregate": "concat"}, agents)
        slow = await first.workflow("slow", {"strategy": "sequential"},
                                    [{"name": n, "model": "slow/m", "instructions": "answer"} for n in ("x", "y")])

        # A run submitted to the first instance, its events read live from the second (over HTTP: the
        # ASGI transport would hand over the whole stream only once it ended).
        watched = (await first.post(f"/v1/workflows/{slow}/run", {"input": "watch me"}))["id"]
        seen: list[tuple[str, str]] = []  # (event type, the run's status when the event arrived)
        async with served(second.app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http, \
                http.stream("GET", f"/v1/runs/{watched}/events", headers=second.headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    async with second.db.session() as session:
                        status = await session.scalar(sa.select(Run.status).where(Run.id == uuid.UUID(watched)))
                    seen.append((line.removeprefix("event: "), str(status)))
        types = [t for t, _ in seen]
        assert types[0] == "run_started" and types[-1] == "run_finished" and types.count("agent_finished") == 2
        assert [t for t, status in seen if t == "agent_started" and status == "running"]  # live, not a replay
        async with first.db.session() as session:
            persisted = set((await session.scalars(sa.select(RunEventRow.type).where(
                RunEventRow.run_id == uuid.UUID(watched)))).all())
        assert "token" not in persisted and "token" in types  # tokens exist only on the Redis stream

        runs: list[str] = []
        for index in range(200):  # alternately to each instance, as a round-robin load balancer does
            workflow = sequential if index % 2 else parallel
            client = instances[(index // 2) % 2]
            runs.append((await client.post(f"/v1/workflows/{workflow}/run", {"input": f"task {index}"}))["id"])
        statuses = await second.wait_all(runs, timeout=90)
        assert set(statuses.values()) == {"completed"}
        rows = await assert_recorded_once(first.db, runs, 2)
        assert {r.claims for r in rows} == {1}  # no step was executed twice
        assert {main_process(r) for r in rows} == {w.pid for w in cluster.workers[:2]}
        async with first.db.session() as session:  # the workers metered every model call
            usage = (await session.execute(sa.select(UsageRecord.run_id, UsageRecord.tenant_id, UsageRecord.source)
                                           .where(UsageRecord.run_id.in_(runs)))).all()
        assert Counter(r[0] for r in usage) == Counter({run_id: 2 for run_id in runs})
        assert len({r[1] for r in usage}) == 1 and {r[2] for r in usage} == {"run"}

        # The answer of a sequential run went through both agents; a parallel one has both.
        run = (await second.client.get(f"/v1/runs/{runs[1]}", headers=second.headers)).json()
        assert run["status"] == "completed" and "task 1" in run["text"]
        run = (await first.client.get(f"/v1/runs/{runs[2]}", headers=first.headers)).json()
        assert all(f"## {n}" in run["text"] for n in ("a", "b"))

        # SSE of a finished run from either instance: the persisted events; run_finished ends it.
        for client, run_id in ((first, runs[3]), (second, runs[0])):
            response = await client.client.get(f"/v1/runs/{run_id}/events", headers=client.headers)
            assert response.status_code == 200 and "event: run_finished" in response.text


async def test_a_cancelled_parallel_run_stops_on_both_workers(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    async with api(cluster, monkeypatch) as client:
        agents = [{"name": f"p{i}", "model": "glacial/m", "instructions": "answer"} for i in range(6)]
        workflow = await client.workflow("wide", {"strategy": "parallel", "aggregate": "concat"}, agents)
        run_id = (await client.post(f"/v1/workflows/{workflow}/run", {"input": "go"}))["id"]
        async with asyncio.timeout(20):  # four agents started (two per worker), two steps queued behind them
            while True:
                async with client.db.session() as session:
                    started = await session.scalar(sa.select(sa.func.count()).where(
                        RunEventRow.run_id == uuid.UUID(run_id), RunEventRow.type == "agent_started"))
                if started == 4:
                    break
                await asyncio.sleep(0.1)
        running = [r for r in await step_rows(client.db, [run_id]) if r.status == "running"]
        assert {main_process(r) for r in running} == {w.pid for w in cluster.workers[:2]}
        cancelled_at = time.time()
        response = await client.client.post(f"/v1/runs/{run_id}/cancel", headers=client.headers)
        assert response.status_code == 202, response.text
        assert (await client.wait_all([run_id], timeout=20))[run_id] == "cancelled"
        async with asyncio.timeout(20):
            while {r.status for r in await step_rows(client.db, [run_id])} != {"done"}:
                await asyncio.sleep(0.1)
        rows = await step_rows(client.db, [run_id])
        assert len(rows) == 6 and {r.result["status"] for r in rows if r.result} == {"cancelled"}
        async with client.db.session() as session:
            events = (await session.execute(sa.select(RunEventRow.type, RunEventRow.ts, RunEventRow.agent)
                                            .where(RunEventRow.run_id == uuid.UUID(run_id)))).all()
        started = [e for e in events if e[0] == "agent_started"]
        assert len(started) == 4 and all(e[1] < cancelled_at for e in started)  # nothing started after the cancel
        assert len([e for e in events if e[0] == "agent_cancelled"]) == 4
        assert not [e for e in events if e[0] == "agent_finished"]


async def test_a_worker_killed_mid_way_loses_no_run(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    async with api(cluster, monkeypatch) as client:
        agents = [{"name": n, "model": "slow/m", "instructions": "answer"} for n in ("x", "y", "z")]
        workflow = await client.workflow("slow-seq", {"strategy": "sequential"}, agents)
        runs = [(await client.post(f"/v1/workflows/{workflow}/run", {"input": f"job {i}"}))["id"]
                for i in range(24)]
        victim = cluster.workers[0]
        async with asyncio.timeout(30):  # the victim is in the middle of steps
            while not any(r.status == "running" and main_process(r) == victim.pid
                          for r in await step_rows(client.db, runs)):
                await asyncio.sleep(0.05)
        cluster.kill(victim)
        statuses = await client.wait_all(runs, timeout=60)
        assert set(statuses.values()) == {"completed"}
        rows = await assert_recorded_once(client.db, runs, 3)
        assert [r for r in rows if r.claims > 1 or main_process(r) == victim.pid]  # the victim had steps
        cluster.workers.remove(victim)
        cluster.start_worker(2)


async def test_the_reaper_fails_a_run_nobody_executes(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentadapter.service.reaper import reap
    from agentadapter.service.worker_settings import WorkerSettings

    nobody = f"aa-test-nobody-{uuid.uuid4().hex[:8]}"  # no worker consumes it
    async with api(cluster, monkeypatch, queue=nobody) as client:
        agent = await client.post("/v1/agents", {"name": "lonely", "model": "quick/m"})
        run_id = (await client.post("/v1/runs", {"agent_id": agent["id"], "input": "hello?"}))["id"]
        sent: list[tuple[str, list[str]]] = []

        async def send(name: str, args: list[str], task_id: str | None) -> None:
            sent.append((name, args))

        executor = client.app.state.agentadapter.executor
        before = REGISTRY.get_sample_value("agentadapter_reaper_actions_total", {"action": "failed"}) or 0.0
        report = await reap(client.db, executor.channel, WorkerSettings(run_max_age_s=0.001), send)
        assert report.failed >= 1
        metrics = (await client.client.get("/metrics")).text
        assert f'agentadapter_reaper_actions_total{{action="failed"}} {before + report.failed}' in metrics
        run = (await client.client.get(f"/v1/runs/{run_id}", headers=client.headers)).json()
        assert run["status"] == "failed" and "AGENTADAPTER_RUN_MAX_AGE_S" in run["error"]["message"]
        response = await client.client.get(f"/v1/runs/{run_id}/events", headers=client.headers)
        assert "event: run_finished" in response.text and "RUN_MAX_AGE_S" in response.text


async def test_runs_survive_a_rabbitmq_restart(cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
                                              private_rabbitmq: PrivateRabbitMQ) -> None:
    queue = f"aa-test-amqp-{uuid.uuid4().hex[:8]}"
    broker = private_rabbitmq.url
    worker = cluster.start_worker(9, AGENTADAPTER_BROKER_URL=broker, AGENTADAPTER_WORKER_QUEUE=queue)
    try:
        async with api(cluster, monkeypatch, queue=queue, broker_url=broker) as client:
            agents = [{"name": n, "model": "slow/m", "instructions": "answer"} for n in ("u", "v")]
            workflow = await client.workflow("amqp-seq", {"strategy": "sequential"}, agents)
            runs = [(await client.post(f"/v1/workflows/{workflow}/run", {"input": f"job {i}"}))["id"]
                    for i in range(10)]
            async with asyncio.timeout(30):  # the worker is in the middle of the runs
                while not [r for r in await step_rows(client.db, runs) if r.status == "done"]:
                    await asyncio.sleep(0.05)
            # This test's own node: every connection (the worker's, the API's) drops and comes back.
            await asyncio.to_thread(private_rabbitmq.restart_app)
            statuses = await client.wait_all(runs, timeout=60)
            assert set(statuses.values()) == {"completed"}
            await assert_recorded_once(client.db, runs, 2)
    finally:
        stop_group(worker)
        cluster.workers.remove(worker)


async def test_a_thread_continues_on_the_workers(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    async with api(cluster, monkeypatch) as client:
        agent = await client.post("/v1/agents", {"name": "chat", "model": "instant/echo", "instructions": "answer"})
        thread = await client.post("/v1/threads", {"title": "on the workers"})
        runs = []
        for text in ("my order is 42", "where is it?"):
            runs.append((await client.post("/v1/runs", {"agent_id": agent["id"], "thread_id": thread["id"],
                                                        "input": text}))["id"])
            assert (await client.wait_all(runs[-1:]))[runs[-1]] == "completed"
        # The workers build a run from its row: the second run's row carries the thread's history.
        second = (await client.client.get(f"/v1/runs/{runs[1]}", headers=client.headers)).json()
        assert [m["role"] for m in second["input"]] == ["user", "assistant", "user"]
        read = (await client.client.get(f"/v1/threads/{thread['id']}", headers=client.headers)).json()
        texts = ["".join(p.get("text", "") for p in m["parts"]) for m in read["messages"]]
        assert texts == ["my order is 42", "my order is 42", "where is it?", "where is it?"]


async def test_a_step_paused_for_approval_resumes_on_a_worker(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = f"aa-test-approvals-{uuid.uuid4().hex[:8]}"
    worker = cluster.start_worker(8, AGENTADAPTER_WORKER_QUEUE=queue, AGENTADAPTER_APPROVAL_TOOLS="http_fetch")
    try:
        async with api(cluster, monkeypatch, queue=queue) as client:
            agents = [{"name": "planner", "model": "instant/echo", "instructions": "plan"},
                      {"name": "fetcher", "model": "instant/tools", "instructions": "fetch", "tools": ["http_fetch"]},
                      {"name": "closer", "model": "instant/echo", "instructions": "close"}]
            workflow = await client.workflow("approve-seq", {"strategy": "sequential"}, agents)
            run_id = (await client.post(f"/v1/workflows/{workflow}/run", {"input": "read the page"}))["id"]
            async with asyncio.timeout(60):
                while (run := (await client.client.get(f"/v1/runs/{run_id}", headers=client.headers)).json())[
                        "status"] != "paused":
                    assert run["status"] not in ("completed", "failed", "cancelled"), run
                    await asyncio.sleep(0.1)
            [pending] = run["pending_approvals"]
            assert pending["tool"] == "http_fetch" and pending["agent"] == "fetcher"
            decided = await client.client.post(f"/v1/runs/{run_id}/approvals", headers=client.headers, json={
                "decisions": [{"call_id": pending["call_id"], "decision": "reject", "reason": "not that page"}]})
            assert decided.status_code == 202, decided.text
            assert (await client.wait_all([run_id]))[run_id] == "completed"
            done = (await client.client.get(f"/v1/runs/{run_id}", headers=client.headers)).json()
            assert [(a["name"], a["status"]) for a in done["agents"]] == [
                ("planner", "completed"), ("fetcher", "completed"), ("closer", "completed")]
            events = (await client.client.get(f"/v1/runs/{run_id}/events", headers=client.headers)).text
            order = [line.split(": ", 1)[1] for line in events.splitlines() if line.startswith("event: ")]
            assert order.count("run_started") == 1 and order[-1] == "run_finished"
            assert order.index("run_paused") < order.index("run_finished")
            assert "not that page" in events  # the declined call's result, reason included
    finally:
        stop_group(worker)
        cluster.workers.remove(worker)
