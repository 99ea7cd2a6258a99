"""Live followers of runs on workers share one Redis reader per process.

Hundreds of followers of many runs, some joining mid-run, each get every event of their run, in
order, and end at ``run_finished`` - more followers than the connection pool the old per-follower
``XREAD BLOCK`` needed. When Redis goes away, every follower ends with the error, logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from agentadapter.orchestrator import RunEvent
from agentadapter.service.channel import RunChannel
from agentadapter.service.worker_settings import WorkerSettings
from services import PrivateRedis, start_redis, stop_group

RUNS = 30
FOLLOWERS_PER_RUN = 10
EVENTS = 20


def _event(run_id: uuid.UUID, seq: int, type_: str = "token") -> RunEvent:
    return RunEvent(seq, type_, str(run_id), "agent", time.time(), {"n": seq})  # type: ignore[arg-type]


async def _never_ended() -> bool:
    return False


async def _follow(channel: RunChannel, run_id: uuid.UUID, started: asyncio.Event | None = None) -> list[int]:
    seqs = []
    async for event in channel.read(run_id, 0, _never_ended):
        seqs.append(event.seq)
        if started is not None:
            started.set()
    return seqs


async def test_300_followers_of_30_runs_each_get_every_event_through_one_connection(
    private_redis: PrivateRedis,
) -> None:
    channel = RunChannel(private_redis.url(), WorkerSettings())
    # A small pool: the old reader needed one connection per follower, the shared one needs none.
    channel._redis = aioredis.Redis.from_url(private_redis.url(), max_connections=4)
    runs = [uuid.uuid4() for _ in range(RUNS)]
    try:
        early = [asyncio.create_task(_follow(channel, run)) for run in runs for _ in range(FOLLOWERS_PER_RUN // 2)]
        for seq in range(1, EVENTS // 2 + 1):
            for run in runs:
                await channel.publish(_event(run, seq))
        # Followers that join mid-run read the stream from its start too.
        late = [asyncio.create_task(_follow(channel, run)) for run in runs for _ in range(FOLLOWERS_PER_RUN // 2)]
        for seq in range(EVENTS // 2 + 1, EVENTS):
            for run in runs:
                await channel.publish(_event(run, seq))
        for run in runs:
            await channel.publish(_event(run, EVENTS, "run_finished"))
        async with asyncio.timeout(60):  # a guard against a hang
            results = await asyncio.gather(*early, *late)
        assert len(results) == RUNS * FOLLOWERS_PER_RUN
        wrong = [seqs for seqs in results if seqs != list(range(1, EVENTS + 1))]
        assert not wrong, (len(wrong), wrong[:3])
        assert channel._fanout is not None and channel._fanout.followers == 0
    finally:
        await channel.aclose()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = start_redis(tmp_path, persist=True)
    try:
        yield server
    finally:
        stop_group(server.process)


async def test_when_redis_goes_away_every_follower_ends_with_the_error_logged(
    restartable_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    channel = RunChannel(restartable_redis.url(), WorkerSettings())
    run = uuid.uuid4()
    try:
        started = [asyncio.Event() for _ in range(5)]
        followers = [asyncio.create_task(_follow(channel, run, event)) for event in started]
        await channel.publish(_event(run, 1))
        async with asyncio.timeout(30):
            for event in started:
                await event.wait()
        with caplog.at_level(logging.WARNING, logger="agentadapter.server"):
            restartable_redis.kill()
            async with asyncio.timeout(30):
                results = await asyncio.gather(*followers, return_exceptions=True)
        assert all(isinstance(result, Exception) for result in results), results
        assert caplog.text.count(f"a live follower of run {run} failed") == len(followers)
        # Redis back: a new follower (a client reconnecting) reads the run again.
        restartable_redis.restart()
        with contextlib.suppress(RedisConnectionError):  # the publisher's pooled connection died with it
            await channel.ping()
        again = asyncio.create_task(_follow(channel, run))
        await channel.publish(_event(run, 2, "run_finished"))
        async with asyncio.timeout(30):
            assert await again == [1, 2]
    finally:
        await channel.aclose()
