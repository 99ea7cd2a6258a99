"""A server killed with SIGKILL mid-burst loses no usage record and no credit settlement: after a restart
(which replays the journal the dead process left), every call the clients got an answer for is in
``usage_records``, every such call was charged once, and the balance is the grant less the charges -
on SQLite and PostgreSQL, with the running balance in the process and on Redis.

The server is a real ``uvicorn`` process (the service's lifespan, the record writer thread, the
journal in its data dir); the provider is a loopback fake in the test's loop; the load is 16 clients
posting chat completions through the gateway until the test kills the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiohttp import web

from agentadapter.store import api_keys, credits, tenants
from agentadapter.store.database import Database
from agentadapter.store.models import CreditTransaction, UsageRecord
from fakes.server import FakeServer, Recorded
from server.conftest import JWT_SECRET
from services import free_port, log_tail, start_redis, stop_group
from store.databases import DATABASES, new_database_url, unique

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

COMPLETION = {
    "id": "chatcmpl-crash", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello!"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}
CLIENTS = 16
GRANT = 100.0


@pytest.fixture(params=[*DATABASES, "postgres+redis"])
def service(request: pytest.FixtureRequest, tmp_path: Path, template_dir: Path) -> Iterator[tuple[str, str | None]]:
    """The database URL, and the URL of a private Redis when the balances live there (several processes)."""
    database, _, redis = str(request.param).partition("+")
    url = new_database_url(database, tmp_path, template_dir)
    if not redis:
        yield url, None
        return
    server = start_redis(tmp_path)
    try:
        yield url, server.url()
    finally:
        stop_group(server.process)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            stop_group(process)


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    code = ("import uvicorn; uvicorn.run('agentadapter.server.app:create_app', factory=True, host='127.0.0.1', "
            f"port={port}, log_level='warning', access_log=False)")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


async def wait_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(60):
        while True:
            assert process.poll() is None, log_tail(log)
            try:
                if (await client.get(base_url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)


async def test_a_server_killed_mid_burst_loses_no_record_and_no_settlement(
        service: tuple[str, str | None], tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> None:
    database_url, redis_url = service
    async def chat(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response(COMPLETION)

    provider = FakeServer()
    provider.route("POST", "/v1/chat/completions", chat)
    db = Database(database_url)
    async with provider:
        async with db.writer() as session:
            tenant = await tenants.create_tenant(session, unique("crash"))
            _, key = await api_keys.create_api_key(session, tenant.id, role="member")
            await credits.grant(session, tenant.id, GRANT, actor="test")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTADAPTER_", "OPENAI_"))}
        env.update(AGENTADAPTER_DATABASE_URL=database_url, AGENTADAPTER_DATA_DIR=str(tmp_path / "data"),
                   AGENTADAPTER_JWT_SECRET=JWT_SECRET, AGENTADAPTER_ENV="development",
                   OPENAI_BASE_URL=provider.url + "/v1", OPENAI_API_KEY="sk-test", PYTHONUNBUFFERED="1")
        if redis_url is not None:
            # Holds of a killed process are released once its liveness key expires (3 periods).
            env.update(AGENTADAPTER_REDIS_URL=redis_url, AGENTADAPTER_CREDIT_RECONCILE_S="0.3")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log = tmp_path / "server.log"
        server = start_server(env, port, log)
        started.append(server)
        await wait_healthy(server, base_url, log)

        answered = 0
        killed = asyncio.Event()
        body = json.dumps({"model": "openai/gpt-4o-mini", "max_tokens": 16,
                           "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        async def client(http: httpx.AsyncClient) -> None:
            nonlocal answered
            while not killed.is_set():
                try:
                    response = await http.post(base_url + "/v1/chat/completions", content=body, headers=headers)
                except httpx.HTTPError:
                    return  # the server is gone
                assert response.status_code == 200, response.text
                answered += 1
                if answered >= 400 and not killed.is_set():
                    killed.set()
                    os.killpg(server.pid, signal.SIGKILL)  # mid-burst: the other clients' calls are in flight

        async with httpx.AsyncClient(timeout=30) as http, asyncio.timeout(120):
            await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
        server.wait(10)
        assert server.returncode == -signal.SIGKILL
        journals = [p for p in (tmp_path / "data" / "ledger").iterdir() if p.is_dir()]
        assert len(journals) == 1  # the dead process's journal, left for the next start

        restarted = start_server(env, port, log)  # replays the journal before it answers
        started.append(restarted)
        await wait_healthy(restarted, base_url, log)
        if redis_url is not None:
            # The restarted process meters the tenant and sweeps the lease of the dead one from its hash (its
            # own lease stays while it serves, and is given back when it stops).
            before = answered
            async with asyncio.timeout(30):
                while answered == before or len(await leases(redis_url, tenant.id)) > 1:
                    async with httpx.AsyncClient(timeout=30) as http:
                        answer = await http.post(base_url + "/v1/chat/completions", content=body, headers=headers)
                    assert answer.status_code == 200, answer.text
                    answered += 1
                    await asyncio.sleep(0.2)
        restarted.send_signal(signal.SIGTERM)
        # uvicorn ends a clean shutdown by raising the signal it caught again.
        assert restarted.wait(60) in (0, -signal.SIGTERM), log_tail(log)
        assert "refused" not in log.read_text(), log_tail(log)
    assert [p.name for p in (tmp_path / "data" / "ledger").iterdir()] == []

    try:
        async with db.session() as session:
            usage: Any = (await session.execute(
                sa.select(sa.func.count(), sa.func.sum(UsageRecord.cost_usd)).where(UsageRecord.tenant_id == tenant.id)
            )).one()
            charges: Any = (await session.execute(
                sa.select(sa.func.count(), sa.func.sum(CreditTransaction.amount_usd))
                .where(CreditTransaction.tenant_id == tenant.id, CreditTransaction.kind == "charge"))).one()
            account = await credits.account(session, tenant.id)
    finally:
        await db.dispose()
    recorded, cost = usage
    charged, charged_usd = charges
    # Every answered call is recorded; at most the calls in flight when it died (journaled, not yet
    # answered) are recorded beyond them.
    assert answered <= recorded <= answered + CLIENTS, (answered, recorded)
    # A call is settled (its charge journaled) just before it is recorded: one charge per record, or
    # one more for a call killed between the two.
    assert recorded <= charged <= recorded + CLIENTS
    per_call = cost / recorded
    assert -charged_usd == pytest.approx(charged * per_call)
    assert account is not None
    assert account.balance_usd == pytest.approx(GRANT + charged_usd)  # grants - the sum of recorded charges
    if redis_url is not None:  # the running balance on Redis settled the same charges, and holds nothing
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url)
        try:
            balance = await client.hget(f"agentadapter:credits:{tenant.id.hex}", "balance")
        finally:
            await client.aclose()
        assert float(balance) == pytest.approx(account.balance_usd) and await leases(redis_url, tenant.id) == {}


async def leases(redis_url: str, tenant_id: uuid.UUID) -> dict[bytes, float]:
    """The leases every process holds of the tenant's balance on Redis."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        fields = await client.hgetall(f"agentadapter:credits:{tenant_id.hex}")
    finally:
        await client.aclose()
    return {name: float(value) for name, value in fields.items() if name.startswith(b"r:")}
