"""CommunicationProtocol and AgentChannel (on both transports), create_protocol, the package surface,
the metrics, and the in-process implementation's thread safety."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

import agentadapter.protocol as protocol_package
from agentadapter.protocol import (
    CommunicationProtocol,
    Envelope,
    InProcessMessageBus,
    InProcessSharedContext,
    MessageType,
    Priority,
    RemoteError,
    RequestTimeoutError,
    VersionConflictError,
    create_protocol,
)
from services import redis_url_or_skip


@pytest.fixture
async def protocol(transport: str) -> AsyncIterator[CommunicationProtocol]:
    url = redis_url_or_skip() if transport == "redis" else None
    proto = create_protocol(redis_url=url)
    await proto.start()
    try:
        yield proto
    finally:
        await proto.close(purge=True)


async def test_agents_talk_through_their_channels(protocol: CommunicationProtocol) -> None:
    boss = await protocol.join("boss", ["plan"])
    researcher = await protocol.join("researcher", ["search", "summarize"], metadata={"model": "m"})
    writer = await protocol.join("writer", ["write"])

    async def research(envelope: Envelope) -> Any:
        if envelope.type == MessageType.REQUEST:
            return {"facts": [f"about {envelope.payload['topic']}"]}
        return None

    await researcher.on_message(research)
    assert await boss.ask("researcher", {"topic": "tides"}, timeout=5) == {"facts": ["about tides"]}

    sent = await boss.send("writer", "draft it", priority=Priority.HIGH)
    assert sent.run_id == protocol.run_id
    await writer.subscribe("results.#")
    await boss.publish("results.final", {"ok": True})
    await boss.broadcast("stand up")
    got = await writer.receive(10)
    assert [(e.type, e.payload) for e in got] == [
        (MessageType.MESSAGE, "draft it"),
        (MessageType.EVENT, {"ok": True}),
        (MessageType.BROADCAST, "stand up"),
    ]
    assert await boss.receive() == []  # a broadcast does not come back to its sender

    await boss.state.set("plan", ["research", "write"])
    await writer.private.set("draft", "v1")
    assert await researcher.state.get("plan") == ["research", "write"]
    assert await protocol.context.get("agents/writer/draft") == "v1"

    history = await protocol.history()
    assert {e.type for e in history} >= {MessageType.REQUEST, MessageType.RESPONSE, MessageType.EVENT}
    assert all(e.run_id == protocol.run_id for e in history)
    assert [i.name for i in await protocol.agents()] == ["boss", "researcher", "writer"]
    async with protocol.registry.lease("summarize") as chosen:
        assert chosen.name == "researcher"
    await researcher.heartbeat(load=0)

    await protocol.leave("writer")
    assert [i.name for i in await protocol.agents()] == ["boss", "researcher"]
    assert await boss.send("writer", "gone") is not None  # a message for a departed agent just waits


async def test_ask_errors(protocol: CommunicationProtocol) -> None:
    boss = protocol.channel("boss")
    worker = await protocol.join("worker")

    async def fail(envelope: Envelope) -> Any:
        raise ValueError("cannot do that")

    with pytest.raises(RequestTimeoutError):
        await boss.ask("worker", "anyone?", timeout=0.05)
    await worker.on_message(fail)
    with pytest.raises(RemoteError, match="cannot do that"):
        await boss.ask("worker", "please", timeout=5)


async def test_manual_receive_ack_and_reply(protocol: CommunicationProtocol) -> None:
    boss = protocol.channel("boss")
    worker = await protocol.join("worker")

    async def serve() -> None:
        [request] = await worker.receive(1, timeout=5, auto_ack=False)
        await worker.reply(request, "done")
        await worker.ack([request])

    server = asyncio.create_task(serve())
    assert await boss.ask("worker", "job", timeout=5) == "done"
    await server


def test_create_protocol_picks_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTADAPTER_REDIS_URL", raising=False)
    local = create_protocol("run-1")
    assert (local.transport, local.run_id) == ("inprocess", "run-1")
    assert isinstance(local.bus, InProcessMessageBus)
    assert len(create_protocol().run_id) == 32
    monkeypatch.setenv("AGENTADAPTER_REDIS_URL", "redis://127.0.0.1:6379/15")
    remote = create_protocol("run-2")
    assert remote.transport == "redis"
    assert "run-2" in repr(remote)
    monkeypatch.setenv("AGENTADAPTER_REDIS_URL", "")
    assert create_protocol().transport == "inprocess"
    assert create_protocol(redis_url="redis://127.0.0.1:6379/15").transport == "redis"


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, agentadapter.protocol; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_surface() -> None:
    assert protocol_package.__all__ == sorted(protocol_package.__all__)
    for name in protocol_package.__all__:
        assert getattr(protocol_package, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = protocol_package.Nope
    assert "RedisMessageBus" in dir(protocol_package)


async def test_metrics_are_exported() -> None:
    bus = InProcessMessageBus()
    suffix = uuid.uuid4().hex[:8]  # the counters are process-wide: names of our own
    sender, receiver = f"metrics-sender-{suffix}", f"metrics-receiver-{suffix}"
    for _ in range(3):
        await bus.send(Envelope(type=MessageType.MESSAGE, sender=sender, recipient=receiver))
    await bus.send(Envelope(type=MessageType.MESSAGE, sender=sender, recipient=receiver, ttl_s=1, created_at=0))
    await bus.get_messages(receiver, 1)

    def value(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert value("agentadapter_bus_messages_sent_total", agent=sender) == 4
    assert value("agentadapter_bus_messages_delivered_total", agent=receiver) == 1
    assert value("agentadapter_bus_messages_dropped_total", agent=receiver, reason="expired") == 1
    assert value("agentadapter_bus_queue_depth", agent=receiver) == 2
    assert (value("agentadapter_bus_delivery_latency_seconds_count", transport="inprocess") or 0) >= 1
    text = generate_latest(REGISTRY).decode()
    assert 'agentadapter_bus_delivery_latency_seconds_bucket{le="+Inf",transport="inprocess"}' in text
    await bus.close()


# -- in-process thread safety -------------------------------------------------------------------


async def test_a_thread_with_its_own_loop_can_send_to_a_waiting_consumer() -> None:
    bus = InProcessMessageBus()
    waiter = asyncio.create_task(bus.get_messages("bob", 10, timeout=5))
    await asyncio.sleep(0)

    def other_thread() -> None:
        asyncio.run(bus.send(Envelope(type=MessageType.MESSAGE, sender="thread", recipient="bob", payload=1)))

    thread = threading.Thread(target=other_thread)
    thread.start()
    got = await waiter
    thread.join()
    assert [e.payload for e in got] == [1]


async def test_a_sync_handler_in_a_worker_thread_can_use_the_bus() -> None:
    bus = InProcessMessageBus()
    loop = asyncio.get_running_loop()

    def relay(envelope: Envelope) -> None:
        # Runs in a worker thread: hands the forward back to the bus's loop.
        forward = Envelope(type=MessageType.MESSAGE, sender="relay", recipient="sink", payload=envelope.payload)
        asyncio.run_coroutine_threadsafe(bus.send(forward), loop).result(5)

    await bus.add_handler("relay", relay)
    await bus.send(Envelope(type=MessageType.MESSAGE, sender="src", recipient="relay", payload="hop"))
    got = await bus.get_messages("sink", 1, timeout=5)
    assert [e.payload for e in got] == ["hop"]
    await bus.close()


async def test_context_cas_from_many_threads_loses_nothing() -> None:
    context = InProcessSharedContext()
    seen: list[int] = []
    watch = await context.watch("counter", lambda change: seen.append(change.value))

    def increment_five_times() -> None:
        async def run() -> None:
            for _ in range(5):
                while True:
                    current = await context.get_versioned("counter")
                    try:
                        await context.compare_and_set("counter", (current.value or 0) + 1, current.version)
                        break
                    except VersionConflictError:
                        continue

        asyncio.run(run())

    threads = [threading.Thread(target=increment_five_times) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert await context.get("counter") == 20
    for _ in range(100):  # the watcher's loop receives the changes made in other threads, in order
        if len(seen) == 20:
            break
        await asyncio.sleep(0.01)
    assert seen == list(range(1, 21))
    await watch.close()
    await context.close()
