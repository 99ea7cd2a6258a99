"""``agentadapter cluster up --workers 1`` as a user starts it: a fresh database, a run, Ctrl-C.

The command creates and migrates its database, starts the API and a worker; a tenant key made
with the CLI (same environment) submits a run that a worker completes; SIGINT stops the cluster
and every process it started (the API, the worker and the worker's pool) is gone afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import PrivateRedis, free_port, postgres_url_or_skip

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

CLI = [sys.executable, "-m", "agentadapter.cli"]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children of children included)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:  # it ended while we looked
                continue
            pending.extend(children - found)
            found |= children
    return found


def alive(pid: int) -> bool:
    """Running (a zombie has ended: only its exit status is left for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database name nobody uses yet on the test server: ``cluster up`` creates it; dropped afterwards."""
    session_url = postgres_url_or_skip()
    url = f"{session_url}_cluster_{uuid.uuid4().hex[:6]}"
    yield url
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(session_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def test_cluster_up_runs_a_run_and_stops_every_process_on_ctrl_c(database_url: str, tmp_path: Path,
                                                                 private_redis: PrivateRedis) -> None:
    redis_url = private_redis.url()  # its own server: the workers' node names meet no other worker there
    (tmp_path / "agentadapter.yaml").write_text("backends:\n  instant:\n    type: test\n    latency_ms: 0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
    env.update(AGENTADAPTER_DATA_DIR=str(tmp_path), AGENTADAPTER_CONFIG=str(tmp_path / "agentadapter.yaml"),
               AGENTADAPTER_ENV="development", AGENTADAPTER_DATABASE_URL=database_url,
               AGENTADAPTER_REDIS_URL=redis_url, AGENTADAPTER_WORKER_QUEUE=f"aa-test-cluster-{uuid.uuid4().hex[:8]}",
               PYTHONPATH=str(Path(__file__).parents[2] / "src"), PYTHONUNBUFFERED="1")
    port = free_port()
    node_prefix = f"aa-test-{uuid.uuid4().hex[:8]}-"  # a Celery node name no other worker on any broker has
    log_path = tmp_path / "cluster.log"
    with log_path.open("wb") as log:
        cluster = subprocess.Popen([*CLI, "cluster", "up", "--workers", "1", "--concurrency", "2", "--port", str(port),
                                    "--worker-name", node_prefix],
                                   env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert cluster.poll() is None, f"cluster up exited early:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"/readyz never answered 200:\n{log_path.read_text()[-3000:]}"
            try:
                if httpx.get(base_url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

        def cli(*args: str) -> str:
            done = subprocess.run([*CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        cli("tenants", "create", "trial")
        headers = {"Authorization": f"Bearer {cli('keys', 'create', '--tenant', 'trial', '--role', 'admin')}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
            agent = client.post("/v1/agents", json={"name": "hello", "model": "instant/echo",
                                                    "instructions": "answer"})
            assert agent.status_code == 201, agent.text
            created = client.post("/v1/runs", json={"agent_id": agent.json()["id"], "input": "ping"})
            assert created.status_code in (201, 202), created.text
            run_url = f"/v1/runs/{created.json()['id']}"
            # The run's event stream ends with run_finished: wait on it rather than polling the run.
            with client.stream("GET", f"{run_url}/events", timeout=httpx.Timeout(10, read=60)) as events:
                assert events.status_code == 200
                kinds = [line.removeprefix("event: ") for line in events.iter_lines() if line.startswith("event: ")]
            assert kinds and kinds[-1] == "run_finished", f"{kinds}\n{log_path.read_text()[-3000:]}"
            run = client.get(run_url).json()
            assert run["status"] == "completed", run
            assert "ping" in run["text"]

        children = descendants(cluster.pid)
        assert len(children) >= 3, children  # the API, the worker and its pool at least
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children if alive(pid)]
        assert [c for c in commands if f"{node_prefix}1@%h".encode() in c]  # the worker has the node name asked for
        cluster.send_signal(signal.SIGINT)
        assert cluster.wait(timeout=60) == 0, log_path.read_text()[-3000:]
        deadline = time.monotonic() + 10  # the pool's processes may be reaped a moment after their parent
        while (left := {pid for pid in children if alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"still running after the cluster stopped: {left}\n{log_path.read_text()[-3000:]}"
        output = log_path.read_text()
        assert "api" in output and "worker-1" in output  # each child's output, prefixed with its name
    finally:  # a failed test leaves nothing running
        children |= descendants(cluster.pid)
        if cluster.poll() is None:
            cluster.kill()
            cluster.wait()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
