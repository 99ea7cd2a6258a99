"""One owner of Redis connections per process: the server's lifespan builds it once, hands it to every
part that uses Redis, and closes it; ``/readyz`` and runs make no client of their own.

Pools and clients are counted by wrapping redis-py's constructors for the length of an app's life
(real Redis, real HTTP through the ASGI transport).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import ConnectionPool

from agentadapter.redis_connections import RedisConnections
from agentadapter.server.app import create_app
from agentadapter.server.state import AppState
from agentadapter.store import api_keys, tenants
from agentadapter.testing import offline_llm
from server.conftest import make_settings, server_settings
from services import redis_url_or_skip
from store.databases import migrated_sqlite, unique


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How many connection pools and Redis clients are made, and by ``Redis.from_url``."""
    made: Counter[str] = Counter()
    pool_init, client_init, from_url = ConnectionPool.__init__, aioredis.Redis.__init__, aioredis.Redis.from_url

    def count_pool(self: Any, *args: Any, **kwargs: Any) -> None:
        made["pool"] += 1
        pool_init(self, *args, **kwargs)

    def count_client(self: Any, *args: Any, **kwargs: Any) -> None:
        made["client"] += 1
        client_init(self, *args, **kwargs)

    def count_from_url(cls: Any, *args: Any, **kwargs: Any) -> Any:
        made["from_url"] += 1
        return from_url(*args, **kwargs)

    monkeypatch.setattr(ConnectionPool, "__init__", count_pool)
    monkeypatch.setattr(aioredis.Redis, "__init__", count_client)
    monkeypatch.setattr(aioredis.Redis, "from_url", classmethod(count_from_url))
    yield made


async def test_the_lifespan_builds_one_pool_per_purpose_and_readyz_builds_none(
        tmp_path: Path, counted: Counter[str], monkeypatch: pytest.MonkeyPatch) -> None:
    redis_url = redis_url_or_skip()
    # Runs' protocols go on Redis too (the variable the protocol reads): they must use the same owner.
    monkeypatch.setenv("AGENTADAPTER_REDIS_URL", redis_url)
    url = migrated_sqlite(tmp_path, tmp_path)
    llm = offline_llm()
    app = create_app(make_settings(url, tmp_path, redis_url=redis_url), llm=llm, server_settings=server_settings(
        rate_limit_key_rpm=600, rate_limit_tenant_rpm=600, auth_failures_per_minute=60))
    async with app.router.lifespan_context(app):
        state: AppState = app.state.agentadapter
        assert isinstance(state.redis, RedisConnections)
        async with state.db.writer() as session:
            tenant = await tenants.create_tenant(session, unique("redis-owner"))
            _, key = await api_keys.create_api_key(session, tenant.id, role="admin")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            headers = {"Authorization": f"Bearer {key}"}
            # Every Redis user at work: rate limits and the auth throttle on each request, the cancel
            # relay's subscription, the shared breakers' listener, a run (its protocol on Redis).
            agent = (await client.post("/v1/agents", headers=headers, json={"name": "a", "model": "test/echo"})).json()
            run = (await client.post("/v1/runs", headers=headers, json={"agent_id": agent["id"], "input": "hi"})).json()
            async with asyncio.timeout(10):
                while (await client.get(f"/v1/runs/{run['id']}", headers=headers)).json()["status"] not in (
                        "completed", "failed", "cancelled"):
                    await asyncio.sleep(0.02)
            assert (await client.get(f"/v1/runs/{run['id']}", headers=headers)).json()["status"] == "completed"
            assert (await client.get("/v1/agents", headers={"Authorization": "Bearer aa_wrong"})).status_code == 401
            assert (await client.get("/readyz")).json()["checks"]["redis"]["status"] == "ok"

            during = counted.copy()
            assert during["from_url"] == 0, "a part built a Redis client from the URL instead of using the owner"
            assert during["pool"] <= 2, f"{during['pool']} pools: one for commands and one for blocking reads at most"

            for _ in range(5):
                ready = await client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["checks"]["redis"]["status"] == "ok"
            assert counted == during, "/readyz made a Redis client or pool"
    await llm.aclose()
    assert state.redis._closed


async def test_readyz_reports_redis_away_through_the_owner(tmp_path: Path, counted: Counter[str]) -> None:
    url = migrated_sqlite(tmp_path, tmp_path)
    llm = offline_llm()
    app = create_app(make_settings(url, tmp_path, redis_url="redis://:secret@127.0.0.1:1/0"), llm=llm,
                     server_settings=server_settings(rate_limit_key_rpm=0, rate_limit_tenant_rpm=0))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport,
                                                                   base_url="http://testserver") as client:
        assert app.state.agentadapter.redis.blocking is not None  # the relay's pool, built as it subscribes
        built = counted.copy()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["status"] == "error"
        assert "secret" not in ready.text
        assert counted == built
    await llm.aclose()


async def test_a_library_llm_with_a_redis_cache_builds_its_owner_and_closes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentadapter.llm.client import LLM
    from agentadapter.llm.policy.cache import RedisCache
    from agentadapter.llm.shared import SharedState

    redis_url = redis_url_or_skip()
    config = tmp_path / "agentadapter.yaml"
    config.write_text("cache: {backend: redis, ttl_s: 60}\n")
    monkeypatch.setenv("AGENTADAPTER_REDIS_URL", redis_url)
    from agentadapter.config import get_settings

    get_settings.cache_clear()
    try:
        alone = LLM(config=config)
        assert isinstance(alone.cache, RedisCache) and alone.cache._owns_connections
        await alone.cache.set("k", b"v", 1.0)
        derived = alone.derive(tags={"x": "y"})
        await derived.aclose()
        assert not alone.cache.connections._closed  # a derived facade does not close its parent's cache
        await alone.aclose()
        assert alone.cache.connections._closed

        shared = SharedState(RedisConnections(redis_url))
        on_shared = LLM(config=config, shared=shared)
        assert isinstance(on_shared.cache, RedisCache)
        assert on_shared.cache.connections is shared.connections and not on_shared.cache._owns_connections
        await on_shared.aclose()
        assert not shared.connections._closed  # the owner's builder closes it, not the facade
        await shared.aclose()
        await shared.connections.aclose()
    finally:
        get_settings.cache_clear()
