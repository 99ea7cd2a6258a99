"""ScriptBatch: script calls made in one turn of the event loop go to Redis in one pipeline, each still
atomic and in order, each caller getting its own answer or error (real Redis, keys under a prefix of
the test's own)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from agentadapter.redis_connections import ScriptBatch
from services import redis_url_or_skip

# Appends ARGV[1] to a list and answers the list's length: the order the scripts ran in is on record.
_APPEND = "redis.call('RPUSH', KEYS[1], ARGV[1]); return redis.call('LLEN', KEYS[1])"


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    redis = aioredis.Redis.from_url(redis_url_or_skip())
    prefix = f"aa-test-batch-{uuid.uuid4().hex[:8]}:"
    redis.test_prefix = prefix
    try:
        yield redis
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_concurrent_calls_share_a_pipeline_and_each_gets_its_own_answer(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = client.test_prefix + "order"
    # A script body of its own (a comment with a fresh id): Redis has never seen it, so the first
    # pipeline meets NOSCRIPT and each call is loaded and sent again.
    script = client.register_script(f"-- {uuid.uuid4().hex}\n{_APPEND}")
    batch = ScriptBatch(client)
    pipelines = 0
    make_pipeline = client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return make_pipeline(*args, **kwargs)

    monkeypatch.setattr(client, "pipeline", counting_pipeline)
    first = await asyncio.gather(*(batch.call(script, [key], [f"a{i}"]) for i in range(5)))
    assert sorted(first) == [1, 2, 3, 4, 5]  # loaded, then each ran once
    assert pipelines == 1
    second = await asyncio.gather(*(batch.call(script, [key], [f"b{i}"]) for i in range(20)))
    assert second == list(range(6, 26))  # one pipeline, in the order called
    assert pipelines == 2
    assert [item.decode() for item in await client.lrange(key, 5, -1)] == [f"b{i}" for i in range(20)]
    alone = await batch.call(script, [key], ["c"])  # a call with no company is sent as it is
    assert alone == 26 and pipelines == 2


async def test_a_failing_script_fails_its_caller_only(client: Any) -> None:
    key = client.test_prefix + "mixed"
    batch = ScriptBatch(client)
    await client.rpush(key, "x")
    for run in ("unknown to Redis", "loaded"):  # the failure met on the reload path, then in the pipeline
        good = client.register_script(f"-- {key}\n{_APPEND}")
        bad = client.register_script(f"-- {key}\nreturn redis.call('INCR', KEYS[1])")  # on a list: WRONGTYPE
        length = await client.llen(key)
        results = await asyncio.gather(batch.call(good, [key], ["y"]), batch.call(bad, [key], []),
                                       batch.call(good, [key], ["z"]), return_exceptions=True)
        assert results[0] == length + 1 and results[2] == length + 2, (run, results)
        assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1]), (run, results)


async def test_a_connection_that_fails_fails_every_caller_of_its_batch() -> None:
    redis = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens on port 1
    try:
        script = redis.register_script(_APPEND)
        batch = ScriptBatch(redis)
        results = await asyncio.gather(*(batch.call(script, ["k"], [str(i)]) for i in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(result, ConnectionError | OSError) or "Connect" in type(result).__name__
                   for result in results), results
    finally:
        await redis.aclose()


async def test_a_cancelled_caller_does_not_stop_the_others(client: Any) -> None:
    key = client.test_prefix + "cancel"
    script = client.register_script(_APPEND)
    batch = ScriptBatch(client)
    await batch.call(script, [key], ["warm"])  # loaded
    calls = [asyncio.ensure_future(batch.call(script, [key], [str(i)])) for i in range(3)]
    calls[1].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[0] == 2 and results[2] in (3, 4)  # the cancelled one may have run all the same
