"""Budget settlements on Redis are written exactly once, whatever the outage does to them.

A redis-server of this test alone is killed and restarted in the middle of writing the kept
settlements, while many callers flush them at once; the committed spend must equal what was spent
to the cent, and no reservation may stay held. The amounts are binary fractions, so sums are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agentadapter.llm.policy.redis_budget import RedisBudgetStore
from services import PrivateRedis, start_redis, stop_group

KEY = "tenant:t1|total|all"
LIMIT = 1_000_000.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = start_redis(tmp_path, persist=True)
    try:
        yield server
    finally:
        stop_group(server.process)


@pytest.fixture
async def store(private_redis: PrivateRedis) -> AsyncIterator[RedisBudgetStore]:
    budget = RedisBudgetStore(private_redis.url(), prefix="test:budget:")
    try:
        yield budget
    finally:
        await budget.aclose()


async def _state(store: RedisBudgetStore) -> tuple[float, float]:
    values = await store._client.hmget(store.prefix + KEY, "committed", "reserved")
    return float(values[0] or 0), float(values[1] or 0)


async def _reserve_all(store: RedisBudgetStore, amounts: list[float]) -> None:
    for amount in amounts:
        reserved, _ = await store.try_reserve(KEY, amount, LIMIT)
        assert reserved


async def test_concurrent_flushers_after_an_outage_write_each_settlement_once(
    store: RedisBudgetStore, private_redis: PrivateRedis
) -> None:
    spends = [0.25 * (1 + i % 6) for i in range(40)]  # $0.25 .. $1.50
    await _reserve_all(store, [2.0] * len(spends))
    private_redis.kill()
    # Calls the providers answered while Redis was away: every settlement is kept.
    await asyncio.gather(*(store.settle(KEY, 2.0, spend) for spend in spends))
    assert store.unwritten == len(spends)
    private_redis.restart()
    # Many callers at once, each of which writes the kept settlements first.
    results = await asyncio.gather(*(store.spent(KEY) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(result, float) for result in results), results
    assert store.unwritten == 0
    assert await _state(store) == (sum(spends), 0.0)


async def test_a_restart_in_the_middle_of_a_flush_neither_loses_nor_repeats_a_settlement(
    store: RedisBudgetStore, private_redis: PrivateRedis
) -> None:
    spends = [0.5 * (1 + i % 4) for i in range(30)]
    await _reserve_all(store, [3.0] * len(spends))
    private_redis.kill()
    await asyncio.gather(*(store.settle(KEY, 3.0, spend) for spend in spends))
    private_redis.restart()

    # Redis dies during the 10th write of the flush, after applying it, before its reply arrives
    # (the settlement's fate is unknown to the store), and dies again on the 20th, before applying.
    real = store._settle
    calls = 0

    async def dying(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 20:
            private_redis.kill()
        answer = await real(**kwargs)
        if calls == 10:
            private_redis.kill()
            raise RedisConnectionError("Connection closed by server.")
        return answer

    store._settle = dying
    writers = [store.spent(KEY) for _ in range(8)] + [store.settle(KEY, 0.0, 0.0) for _ in range(4)]
    results = await asyncio.gather(*writers, return_exceptions=True)
    assert any(isinstance(result, Exception) for result in results)  # the outage was seen
    assert 0 < store.unwritten < len(spends) + 4

    private_redis.restart()
    results = await asyncio.gather(*(store.spent(KEY) for _ in range(8)), return_exceptions=True)
    assert store.unwritten == 0, results
    committed, reserved = await _state(store)
    assert committed == sum(spends)
    assert reserved == 0.0
    # And the settlements kept during the second outage (the four zero ones) were written too.
    assert await store._client.exists(store.prefix + KEY)


async def test_a_settlement_whose_reply_was_lost_is_not_applied_again(
    store: RedisBudgetStore, private_redis: PrivateRedis
) -> None:
    await _reserve_all(store, [2.0])
    real = store._settle
    lost = True

    async def reply_lost(**kwargs: Any) -> Any:
        nonlocal lost
        answer = await real(**kwargs)
        if lost:
            lost = False
            raise RedisConnectionError("Connection reset by peer")
        return answer

    store._settle = reply_lost
    await store.settle(KEY, 2.0, 1.5)  # applied by Redis, kept by the store all the same
    assert store.unwritten == 1
    assert await store.spent(KEY) == 1.5
    assert store.unwritten == 0
    assert await _state(store) == (1.5, 0.0)
