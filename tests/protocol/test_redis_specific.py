"""What only the Redis implementation has to prove: crashed consumers lose nothing, processes share
inboxes, connection failures are reported clearly, and inboxes do not grow without bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.protocol import (
    BusConfig,
    Envelope,
    MessageType,
    ProtocolConnectionError,
    RedisAgentRegistry,
    RedisLink,
    RedisMessageBus,
    RedisSharedContext,
    create_protocol,
)
from services import redis_url_or_skip

pytestmark = pytest.mark.redis


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    url = redis_url_or_skip()
    name = f"test:{uuid.uuid4().hex}"
    yield name
    link = RedisLink(url, namespace=name)
    link.retain()
    await link.purge()
    await link.release()


def bus_on(namespace: str, consumer: str, claim_idle_s: float = 0.2) -> RedisMessageBus:
    # Each bus gets its own client, as separate processes would.
    return RedisMessageBus(
        RedisLink(redis_url_or_skip(), namespace=namespace),
        consumer=consumer,
        config=BusConfig(claim_idle_s=claim_idle_s),
    )


async def test_killing_a_consumer_mid_stream_loses_no_message(namespace: str) -> None:
    producer = bus_on(namespace, "producer")
    doomed = bus_on(namespace, "doomed")
    survivor = bus_on(namespace, "survivor")
    try:
        for index in range(50):
            await producer.send(Envelope(type=MessageType.MESSAGE, sender="p", recipient="worker", payload=index))
        taken = await doomed.get_messages("worker", 20, auto_ack=False)
        assert [e.payload for e in taken] == list(range(20))
        # The doomed consumer dies holding 20 unacknowledged messages: its connections drop and it
        # never acknowledges. Nothing tells the survivor; it must reclaim them itself.
        await doomed.link.client.aclose()

        received: list[int] = []
        while len(received) < 50:
            batch = await survivor.get_messages("worker", 100, timeout=5)
            assert batch, f"only {len(received)} of 50 messages arrived"
            received.extend(e.payload for e in batch)
        assert sorted(received) == list(range(50))
        assert await survivor.get_messages("worker", 100, timeout=0.5) == []  # and nothing twice
        assert await survivor.queue_depth("worker") == 0
    finally:
        await producer.close()
        await survivor.close()


async def test_a_handler_killed_mid_message_loses_it_to_no_one(namespace: str) -> None:
    doomed = bus_on(namespace, "doomed")
    survivor = bus_on(namespace, "survivor")
    started = asyncio.Event()

    async def hang(envelope: Envelope) -> None:
        started.set()
        await asyncio.Event().wait()  # stuck forever, like a crashed worker

    handled: list[Any] = []
    all_handled = asyncio.Event()

    async def record(envelope: Envelope) -> None:
        handled.append(envelope.payload)
        if len(handled) == 5:
            all_handled.set()

    try:
        registration = await doomed.add_handler("worker", hang, batch_size=5)
        for index in range(5):
            await survivor.send(Envelope(type=MessageType.MESSAGE, sender="p", recipient="worker", payload=index))
        await asyncio.wait_for(started.wait(), 5)
        await registration.stop()  # the worker dies with its batch unacknowledged
        await doomed.link.client.aclose()
        await survivor.add_handler("worker", record)
        await asyncio.wait_for(all_handled.wait(), 10)
        assert sorted(handled) == [0, 1, 2, 3, 4]
    finally:
        await survivor.close()


async def test_two_processes_share_an_inbox_and_a_request(namespace: str) -> None:
    client_side = bus_on(namespace, "client", claim_idle_s=30)
    server_side = bus_on(namespace, "server", claim_idle_s=30)
    try:
        await server_side.add_handler("calc", lambda envelope: envelope.payload * 2, sync_in_thread=False)
        request = Envelope(type=MessageType.REQUEST, sender="alice", recipient="calc", payload=21)
        response = await client_side.request(request, timeout=5)
        assert response.payload == 42
    finally:
        await client_side.close()
        await server_side.close()


async def test_acknowledged_messages_are_deleted_from_the_stream(namespace: str) -> None:
    bus = bus_on(namespace, "solo")
    try:
        for index in range(10):
            await bus.send(Envelope(type=MessageType.MESSAGE, sender="p", recipient="worker", payload=index))
        await bus.get_messages("worker", 4)
        taken = await bus.get_messages("worker", 6, auto_ack=False)
        await bus.ack("worker", taken)
        lengths = [await bus.link.client.xlen(bus.link.key("bus", "q", "worker", str(level))) for level in range(4)]
        assert lengths == [0, 0, 0, 0]
    finally:
        await bus.close()


async def test_an_unreachable_server_is_reported_clearly() -> None:
    url = "redis://:secret@127.0.0.1:1/0"
    for component in (
        RedisMessageBus(url),
        RedisAgentRegistry(url),
        RedisSharedContext(url),
    ):
        with pytest.raises(
            ProtocolConnectionError, match=r"cannot use Redis at redis://:\*\*\*@127\.0\.0\.1:1/0"
        ) as caught:
            await component.start()
        assert "secret" not in str(caught.value)
        assert "AGENTADAPTER_REDIS_URL" in str(caught.value)
        await component.close()


async def test_runs_are_isolated_from_each_other() -> None:
    url = redis_url_or_skip()
    first = create_protocol("run-a-" + uuid.uuid4().hex, url)
    second = create_protocol("run-b-" + uuid.uuid4().hex, url)
    try:
        a = await first.join("researcher", ["search"])
        b = await second.join("researcher", ["search"])
        await first.channel("boss").send("researcher", "for run a")
        await a.state.set("task", "a")
        assert [e.payload for e in await a.receive()] == ["for run a"]
        assert await b.receive() == []
        assert await b.state.get("task") is None
        assert [i.name for i in await second.agents()] == ["researcher"]
        await first.purge()
        assert await first.agents() == []
        assert [i.name for i in await second.agents()] == ["researcher"]
    finally:
        await first.close(purge=True)
        await second.close(purge=True)


async def test_a_link_over_an_existing_client() -> None:
    import redis.asyncio as aioredis

    from agentadapter.protocol._redis import mask_url

    client = aioredis.Redis.from_url(redis_url_or_skip())
    link = RedisLink(client, namespace=f"test:{uuid.uuid4().hex}")
    bus = RedisMessageBus(link)
    try:
        await bus.start()
        await bus.send(Envelope(type=MessageType.MESSAGE, sender="a", recipient="b", payload=1))
        assert [e.payload for e in await bus.get_messages("b")] == [1]
        assert await link.purge() > 0
    finally:
        await bus.close()
    assert await client.ping()  # the caller's client stays open
    await client.aclose()
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisLink(aioredis.Redis.from_url(redis_url_or_skip(), decode_responses=True))
    assert mask_url("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
