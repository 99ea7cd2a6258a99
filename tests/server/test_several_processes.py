"""Several server processes (they need Redis): a cancel asked of one reaches the one running the run, and
the events of a run executing in another process are followed through the database.

Two apps on one database and one Redis stand in for two ``agentadapter serve --workers 2`` processes.
The Redis is a private server: cancel requests travel on a pub/sub channel, which Redis does not
separate by database number, so on the shared server other sessions' processes would hear them (and
count as subscribers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from agentadapter.llm.messages import Request
from agentadapter.server.app import create_app
from agentadapter.server.executor import CancelRelay
from agentadapter.store import api_keys, tenants
from agentadapter.testing import FunctionBackend, offline_llm
from server.conftest import make_settings, server_settings
from server.test_runs import frames
from services import start_redis, stop_group
from store.databases import migrated_sqlite, unique


@pytest.fixture
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url()
    finally:
        stop_group(server.process)


@contextlib.asynccontextmanager
async def process(url: str, data_dir: Path, redis_url: str, gate: asyncio.Event) -> AsyncIterator[httpx.AsyncClient]:
    async def slow(request: Request) -> str:
        await gate.wait()
        return "done"

    llm = offline_llm(backends={"gate": FunctionBackend(slow, name="gate")})
    app = create_app(make_settings(url, data_dir, redis_url=redis_url), server_settings=server_settings(), llm=llm)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    await llm.aclose()


async def test_a_cancel_reaches_the_process_running_the_run(tmp_path: Path, template_dir: Path,
                                                            redis_url: str) -> None:
    url = migrated_sqlite(tmp_path, template_dir)
    gate = asyncio.Event()
    async with process(url, tmp_path, redis_url, gate) as first, process(url, tmp_path, redis_url, gate) as second:
        async with first.app.state.agentadapter.db.writer() as session:  # type: ignore[attr-defined]
            tenant = await tenants.create_tenant(session, unique("shared"))
            _, key = await api_keys.create_api_key(session, tenant.id, role="admin")
        headers = {"Authorization": f"Bearer {key}"}
        agent = (await first.post("/v1/agents", headers=headers, json={"name": "slow", "model": "gate/x"})).json()
        run = (await first.post("/v1/runs", headers=headers, json={"agent_id": agent["id"], "input": "x"})).json()
        async with asyncio.timeout(10):  # both relays subscribed, the run started in the first process
            while not await relays_listening(redis_url, 2) or (await first.get(
                    f"/v1/runs/{run['id']}", headers=headers)).json()["status"] != "running":
                await asyncio.sleep(0.02)

        followed = asyncio.create_task(second.get(f"/v1/runs/{run['id']}/events", headers=headers))
        cancel = await second.post(f"/v1/runs/{run['id']}/cancel", headers=headers)
        assert cancel.status_code == 202
        async with asyncio.timeout(10):
            while (await second.get(f"/v1/runs/{run['id']}", headers=headers)).json()["status"] != "cancelled":
                await asyncio.sleep(0.05)
        got = frames((await asyncio.wait_for(followed, 10)).text)
        assert got[0]["event"] == "run_started" and got[-1]["event"] == "run_finished"
        assert got[-1]["data"]["data"]["status"] == "cancelled"
        gate.set()


async def relays_listening(redis_url: str, count: int) -> bool:
    """Whether ``count`` cancel relays are subscribed (the test's own Redis: only its processes are there)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        subscribers = dict(await client.pubsub_numsub(CancelRelay.CHANNEL))
    finally:
        await client.aclose()
    return int(subscribers.get(CancelRelay.CHANNEL.encode(), 0)) >= count
