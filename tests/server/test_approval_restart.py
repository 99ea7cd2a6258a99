"""A paused run survives a server restart: a real ``agentadapter serve`` pauses a run for approval and is
stopped; another server on the same database (SQLite, PostgreSQL) takes the decision and completes it.

The operator's ``AGENTADAPTER_APPROVAL_TOOLS`` makes every ``http_fetch`` call wait for approval; the
offline ``test/tools`` model calls it, then answers from its result (the fetch of its made-up address
is refused: no network is used).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import free_port, log_tail, stop_group
from store.databases import admin_key, new_database_url, unique

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """One ``agentadapter serve`` process, ready once its ready file exists."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_file = directory / f"{name}.ready"
        self.log = directory / f"{name}.log"
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agentadapter.cli", "serve", "--port", str(self.port), "--log-level", "info",
                 "--no-access-log", "--ready-file", str(self.ready_file)],
                env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    async def ready(self) -> None:
        async with asyncio.timeout(90):
            while not self.ready_file.exists():
                assert self.process.poll() is None, log_tail(self.log)
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        os.kill(self.process.pid, signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 90)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            stop_group(server.process)


async def _until(client: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            run = (await client.get(f"/v1/runs/{run_id}")).json()
            if run["status"] == status:
                return dict(run)
            assert run["status"] not in {"completed", "failed", "cancelled"} - {status}, run
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_paused_run_survives_a_restart_and_completes_once_approved(
    database: str, tmp_path: Path, template_dir: Path, servers: list[Server]
) -> None:
    url = new_database_url(database, tmp_path, template_dir)
    key = await admin_key(url, "approvals")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
    env.update(AGENTADAPTER_DATA_DIR=str(tmp_path / "data"), AGENTADAPTER_DATABASE_URL=url, PYTHONUNBUFFERED="1",
               AGENTADAPTER_GC_FREEZE="false", AGENTADAPTER_APPROVAL_TOOLS="http_fetch")
    headers = {"Authorization": f"Bearer {key}"}

    first = Server("first", tmp_path, env)
    servers.append(first)
    await first.ready()
    async with httpx.AsyncClient(base_url=first.url, headers=headers, timeout=30) as client:
        agent = await client.post("/v1/agents", json={"name": unique("fetcher"), "model": "test/tools",
                                                       "instructions": "Fetch what is asked.", "tools": ["http_fetch"]})
        assert agent.status_code == 201, agent.text
        started = await client.post("/v1/runs", json={"agent_id": agent.json()["id"], "input": "read the page"})
        assert started.status_code == 202, started.text
        paused = await _until(client, started.json()["id"], "paused")
    [pending] = paused["pending_approvals"]
    assert pending["tool"] == "http_fetch"
    assert await first.stop() == 128 + signal.SIGTERM, log_tail(first.log)  # a drained, orderly exit

    second = Server("second", tmp_path, env)
    servers.append(second)
    await second.ready()
    async with httpx.AsyncClient(base_url=second.url, headers=headers, timeout=30) as client:
        still = (await client.get(f"/v1/runs/{paused['id']}")).json()
        assert still["status"] == "paused" and still["pending_approvals"] == [pending], still
        decided = await client.post(f"/v1/runs/{paused['id']}/approvals", json={
            "decisions": [{"call_id": pending["call_id"], "decision": "approve"}]})
        assert decided.status_code == 202, decided.text
        done = await _until(client, paused["id"], "completed")
        events = (await client.get(f"/v1/runs/{paused['id']}/events")).text
    assert done["error"] is None and done["text"]
    order = [line.split(": ", 1)[1] for line in events.splitlines() if line.startswith("event: ")]
    assert order[0] == "run_started" and order[-1] == "run_finished"
    assert order.index("run_paused") < order.index("run_resumed") < order.index("run_finished")
    assert order.count("tool_result") == 1  # the approved call ran once, after the restart
