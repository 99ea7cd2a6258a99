"""Message bus throughput and latency, each next to its baseline measured in the same run.

In-process, the baseline is a bare ``asyncio.Queue`` put/get; on Redis it is raw redis-py
``XADD``/``XREADGROUP``/``XACK``. Three patterns: direct (one producer, one consumer), broadcast to 10
subscribers (rate counts deliveries), and request/response (rate with 32 concurrent requesters).
Latencies are measured one message at a time (nothing queued), so they show the path's own cost rather
than queueing. The ratio column is the bus's rate over the baseline's. Redis runs against
``AGENTADAPTER_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) in a throw-away namespace, and
is skipped with a note if that server does not answer.

    .venv/bin/python bench/bus.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentadapter.protocol import (
    BusConfig,
    Envelope,
    FullPolicy,
    InProcessMessageBus,
    MessageBus,
    MessageType,
    QueueConfig,
)
from agentadapter.protocol.bus import cancel_and_wait

REDIS_URL = os.environ.get("AGENTADAPTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SUBSCRIBERS = 10
REQUESTERS = 32


@dataclass
class Result:
    rate: float  # messages (deliveries) per second
    p50_us: float
    p99_us: float


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(rate: float, latencies: list[float]) -> Result:
    return Result(rate, statistics.median(latencies) * 1e6, percentile(latencies, 0.99) * 1e6)


def bus_config() -> BusConfig:
    # A bounded inbox whose producer waits when it is full: the same back-pressure as the bounded
    # baseline queue, so neither side measures an unbounded pile-up.
    return BusConfig(queue=QueueConfig(maxsize=10_000, policy=FullPolicy.WAIT), history_max=100_000)


def direct(sender: str, recipient: str, payload: Any) -> Envelope:
    return Envelope(type=MessageType.MESSAGE, sender=sender, recipient=recipient, payload=payload)


# -- the bus, either transport ---------------------------------------------------------------------


async def bus_direct(bus: MessageBus, count: int, pings: int) -> Result:
    async def produce() -> None:
        for index in range(count):
            await bus.send(direct("producer", "consumer", {"i": index}))

    async def consume() -> None:
        received = 0
        while received < count:
            received += len(await bus.get_messages("consumer", 1000, timeout=None))

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    rate = count / (time.perf_counter() - started)
    return summarize(rate, await bus_ping(bus, pings))


async def bus_ping(bus: MessageBus, pings: int) -> list[float]:
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < pings:
            for envelope in await bus.get_messages("pinged", 10, timeout=None):
                latencies.append(time.perf_counter() - envelope.payload)
                arrived.set()

    arrived = asyncio.Event()
    consumer = asyncio.create_task(consume())
    for _ in range(pings):
        arrived.clear()
        await bus.send(direct("pinger", "pinged", time.perf_counter()))
        await arrived.wait()
    await consumer
    return latencies


async def bus_broadcast(bus: MessageBus, count: int, pings: int) -> Result:
    names = [f"sub{index}" for index in range(SUBSCRIBERS)]
    for name in names:
        await bus.open_inbox(name, QueueConfig(maxsize=10_000, policy=FullPolicy.WAIT))

    async def consume(name: str, expected: int, latencies: list[float] | None, done: asyncio.Event | None) -> None:
        received = 0
        while received < expected:
            batch = await bus.get_messages(name, 1000, timeout=None)
            received += len(batch)
            if latencies is not None:
                now = time.perf_counter()
                latencies.extend(now - envelope.payload for envelope in batch)
            if done is not None:
                done.set()

    started = time.perf_counter()

    async def produce() -> None:
        for index in range(count):
            await bus.send(Envelope(type=MessageType.BROADCAST, sender="announcer", payload={"i": index}))

    await asyncio.gather(produce(), *(consume(name, count, None, None) for name in names))
    rate = count * SUBSCRIBERS / (time.perf_counter() - started)

    latencies: list[float] = []
    for _ in range(pings):
        events = [asyncio.Event() for _ in names]
        consumers = [asyncio.create_task(consume(n, 1, latencies, e)) for n, e in zip(names, events, strict=True)]
        await bus.send(Envelope(type=MessageType.BROADCAST, sender="announcer", payload=time.perf_counter()))
        await asyncio.gather(*consumers)
    return summarize(rate, latencies)


async def bus_request(responder_bus: MessageBus, requester_bus: MessageBus, count: int, pings: int) -> Result:
    async def answer(envelope: Envelope) -> Any:
        return envelope.payload

    registration = await responder_bus.add_handler("server", answer, batch_size=256)

    async def ask(payload: Any) -> None:
        request = Envelope(type=MessageType.REQUEST, sender="client", recipient="server", payload=payload)
        await requester_bus.request(request, timeout=30)

    async def requester(share: int) -> None:
        for index in range(share):
            await ask(index)

    started = time.perf_counter()
    await asyncio.gather(*(requester(count // REQUESTERS) for _ in range(REQUESTERS)))
    rate = (count // REQUESTERS) * REQUESTERS / (time.perf_counter() - started)
    latencies = []
    for index in range(pings):
        sent = time.perf_counter()
        await ask(index)
        latencies.append(time.perf_counter() - sent)
    await registration.stop()
    return summarize(rate, latencies)


# -- baseline: a bare asyncio.Queue ----------------------------------------------------------------


async def queue_direct(count: int, pings: int) -> Result:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=10_000)

    async def produce() -> None:
        for index in range(count):
            await queue.put({"i": index})

    async def consume() -> None:
        for _ in range(count):
            await queue.get()

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    rate = count / (time.perf_counter() - started)

    latencies: list[float] = []
    arrived = asyncio.Event()

    async def consume_pings() -> None:
        for _ in range(pings):
            stamp = await queue.get()
            latencies.append(time.perf_counter() - stamp)
            arrived.set()

    consumer = asyncio.create_task(consume_pings())
    for _ in range(pings):
        arrived.clear()
        await queue.put(time.perf_counter())
        await arrived.wait()
    await consumer
    return summarize(rate, latencies)


async def queue_broadcast(count: int, pings: int) -> Result:
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(maxsize=10_000) for _ in range(SUBSCRIBERS)]

    async def produce() -> None:
        for index in range(count):
            for queue in queues:
                await queue.put({"i": index})

    async def consume(queue: asyncio.Queue[Any], expected: int, latencies: list[float] | None) -> None:
        for _ in range(expected):
            item = await queue.get()
            if latencies is not None:
                latencies.append(time.perf_counter() - item)

    started = time.perf_counter()
    await asyncio.gather(produce(), *(consume(queue, count, None) for queue in queues))
    rate = count * SUBSCRIBERS / (time.perf_counter() - started)
    latencies: list[float] = []
    for _ in range(pings):
        consumers = [asyncio.create_task(consume(queue, 1, latencies)) for queue in queues]
        stamp = time.perf_counter()
        for queue in queues:
            await queue.put(stamp)
        await asyncio.gather(*consumers)
    return summarize(rate, latencies)


async def queue_request(count: int, pings: int) -> Result:
    requests: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue(maxsize=10_000)
    loop = asyncio.get_running_loop()

    async def serve() -> None:
        while True:
            payload, future = await requests.get()
            future.set_result(payload)

    server = asyncio.create_task(serve())

    async def ask(payload: Any) -> None:
        future = loop.create_future()
        await requests.put((payload, future))
        await future

    async def requester(share: int) -> None:
        for index in range(share):
            await ask(index)

    started = time.perf_counter()
    await asyncio.gather(*(requester(count // REQUESTERS) for _ in range(REQUESTERS)))
    rate = (count // REQUESTERS) * REQUESTERS / (time.perf_counter() - started)
    latencies = []
    for index in range(pings):
        sent = time.perf_counter()
        await ask(index)
        latencies.append(time.perf_counter() - sent)
    server.cancel()
    return summarize(rate, latencies)


# -- baseline: raw redis-py XADD / XREADGROUP / XACK -----------------------------------------------


class RawRedis:
    """The least a consumer-group stream needs: XADD in, XREADGROUP out, XACK."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def ensure(self, stream: str) -> str:
        key = f"{self.prefix}:{stream}"
        try:
            await self.client.xgroup_create(key, "g", id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return key

    async def read(self, key: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply = await self.client.xreadgroup("g", "c", {key: ">"}, count=count, block=1000)
        entries = [entry for _stream, stream_entries in reply or () for entry in stream_entries]
        if entries:
            await self.client.xack(key, "g", *(entry_id for entry_id, _ in entries))
        return entries

    async def direct(self, count: int, pings: int) -> Result:
        key = await self.ensure("direct")

        async def produce() -> None:
            for index in range(count):
                await self.client.xadd(key, {"e": f'{{"i":{index}}}'})

        async def consume() -> None:
            received = 0
            while received < count:
                received += len(await self.read(key, 1000))

        started = time.perf_counter()
        await asyncio.gather(produce(), consume())
        rate = count / (time.perf_counter() - started)
        latencies = []
        for _ in range(pings):
            await self.client.xadd(key, {"e": repr(time.perf_counter())})
            for _entry_id, fields in await self.read(key, 10):
                latencies.append(time.perf_counter() - float(fields[b"e"]))
        return summarize(rate, latencies)

    async def broadcast(self, count: int, pings: int) -> Result:
        keys = [await self.ensure(f"sub{index}") for index in range(SUBSCRIBERS)]

        async def publish(value: str) -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.xadd(key, {"e": value})
                await pipe.execute()

        async def produce() -> None:
            for index in range(count):
                await publish(f'{{"i":{index}}}')

        async def consume(key: str) -> None:
            received = 0
            while received < count:
                received += len(await self.read(key, 1000))

        started = time.perf_counter()
        await asyncio.gather(produce(), *(consume(key) for key in keys))
        rate = count * SUBSCRIBERS / (time.perf_counter() - started)
        latencies: list[float] = []

        async def read_one(key: str) -> None:
            for _entry_id, fields in await self.read(key, 10):
                latencies.append(time.perf_counter() - float(fields[b"e"]))

        for _ in range(pings):
            await publish(repr(time.perf_counter()))
            await asyncio.gather(*(read_one(key) for key in keys))
        return summarize(rate, latencies)

    async def request(self, count: int, pings: int) -> Result:
        inbox = await self.ensure("server")
        replies = f"{self.prefix}:replies"
        waiting: dict[str, asyncio.Future[Any]] = {}
        loop = asyncio.get_running_loop()

        async def serve() -> None:
            while True:
                entries = await self.read(inbox, 256)
                if entries:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for _entry_id, fields in entries:
                            pipe.xadd(replies, fields)
                        await pipe.execute()

        async def listen() -> None:
            last: Any = "0-0"
            while True:
                reply = await self.client.xread({replies: last}, count=256, block=1000)
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        future = waiting.pop(fields[b"id"].decode(), None)
                        if future is not None:
                            future.set_result(fields)

        tasks = [asyncio.create_task(serve()), asyncio.create_task(listen())]

        async def ask(index: int) -> None:
            request_id = uuid.uuid4().hex
            future = loop.create_future()
            waiting[request_id] = future
            await self.client.xadd(inbox, {"id": request_id, "e": str(index)})
            await future

        async def requester(share: int) -> None:
            for index in range(share):
                await ask(index)

        started = time.perf_counter()
        await asyncio.gather(*(requester(count // REQUESTERS) for _ in range(REQUESTERS)))
        rate = (count // REQUESTERS) * REQUESTERS / (time.perf_counter() - started)
        latencies = []
        for index in range(pings):
            sent = time.perf_counter()
            await ask(index)
            latencies.append(time.perf_counter() - sent)
        for task in tasks:
            await cancel_and_wait(task)  # re-cancels: redis-py can swallow a cancellation
        return summarize(rate, latencies)


# -- running and reporting -------------------------------------------------------------------------


Row = tuple[str, str, Result, Result]


def print_table(rows: list[Row]) -> None:
    header = (
        f"| {'transport':<10} | {'pattern':<22} | {'bus msg/s':>10} | {'p50 µs':>7} | {'p99 µs':>8} "
        f"| {'baseline msg/s':>14} | {'p50 µs':>7} | {'p99 µs':>8} | {'ratio':>6} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for transport, pattern, bus, base in rows:
        print(
            f"| {transport:<10} | {pattern:<22} | {bus.rate:>10,.0f} | {bus.p50_us:>7.0f} | {bus.p99_us:>8.0f} "
            f"| {base.rate:>14,.0f} | {base.p50_us:>7.0f} | {base.p99_us:>8.0f} | {bus.rate / base.rate:>5.0%} |"
        )


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def best_of(rounds: int, measure: Callable[[], Awaitable[Result]], label: str) -> Result:
    # The best rate of a few rounds (noise only ever slows a run down), latencies from that round.
    results = []
    for round_number in range(rounds):
        progress(f"  {label} (round {round_number + 1}/{rounds})")
        results.append(await measure())
    return max(results, key=lambda result: result.rate)


async def run_inprocess(scale: float, rounds: int) -> list[Row]:
    count, pings = int(200_000 * scale), int(20_000 * scale)
    broadcasts, requests = int(20_000 * scale), int(64_000 * scale)
    rows: list[Row] = []

    async def fresh(run: Callable[[MessageBus], Awaitable[Result]]) -> Result:
        bus = InProcessMessageBus(bus_config())
        try:
            return await run(bus)
        finally:
            await bus.close()

    rows.append((
        "in-process", "direct",
        await best_of(rounds, lambda: fresh(lambda bus: bus_direct(bus, count, pings)), "in-process bus, direct"),
        await best_of(rounds, lambda: queue_direct(count, pings), "asyncio.Queue, direct"),
    ))  # fmt: skip
    rows.append((
        "in-process", f"broadcast to {SUBSCRIBERS}",
        await best_of(rounds, lambda: fresh(lambda bus: bus_broadcast(bus, broadcasts, pings // 10)), "in-process bus, broadcast"),
        await best_of(rounds, lambda: queue_broadcast(broadcasts, pings // 10), "asyncio.Queue, broadcast"),
    ))  # fmt: skip
    rows.append((
        "in-process", f"request/response ×{REQUESTERS}",
        await best_of(rounds, lambda: fresh(lambda bus: bus_request(bus, bus, requests, pings // 4)), "in-process bus, request/response"),
        await best_of(rounds, lambda: queue_request(requests, pings // 4), "asyncio.Queue, request/response"),
    ))  # fmt: skip
    return rows


async def run_redis(scale: float, rounds: int) -> list[Row]:
    import redis.asyncio as aioredis

    from agentadapter.protocol import RedisLink, RedisMessageBus

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        print(f"\nRedis at {REDIS_URL} is not reachable ({exc}); Redis rows skipped.")
        await client.aclose()
        return []
    count, pings = int(20_000 * scale), int(2_000 * scale)
    broadcasts, requests = int(2_000 * scale), int(8_000 * scale)
    rows: list[Row] = []
    namespaces: list[str] = []

    def new_bus(namespace: str) -> RedisMessageBus:
        return RedisMessageBus(RedisLink(REDIS_URL, namespace=namespace), config=bus_config())

    async def with_buses(run: Callable[[MessageBus, MessageBus], Awaitable[Result]]) -> Result:
        namespace = f"bench:{uuid.uuid4().hex}"
        namespaces.append(namespace)
        first, second = new_bus(namespace), new_bus(namespace)
        try:
            return await run(first, second)
        finally:
            await first.close()
            await second.close()

    async def raw(run: Callable[[RawRedis], Awaitable[Result]]) -> Result:
        prefix = f"agentadapter:{{bench-raw:{uuid.uuid4().hex}}}"
        try:
            return await run(RawRedis(client, prefix))
        finally:
            keys = [key async for key in client.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + ":*")]
            if keys:
                await client.delete(*keys)

    try:
        rows.append((
            "redis", "direct",
            await best_of(rounds, lambda: with_buses(lambda bus, _: bus_direct(bus, count, pings)), "Redis bus, direct"),
            await best_of(rounds, lambda: raw(lambda base: base.direct(count, pings)), "raw redis-py, direct"),
        ))  # fmt: skip
        rows.append((
            "redis", f"broadcast to {SUBSCRIBERS}",
            await best_of(rounds, lambda: with_buses(lambda bus, _: bus_broadcast(bus, broadcasts, pings // 10)), "Redis bus, broadcast"),
            await best_of(rounds, lambda: raw(lambda base: base.broadcast(broadcasts, pings // 10)), "raw redis-py, broadcast"),
        ))  # fmt: skip
        rows.append((
            "redis", f"request/response ×{REQUESTERS}",
            await best_of(rounds, lambda: with_buses(lambda a, b: bus_request(a, b, requests, pings // 4)), "Redis bus, request/response"),
            await best_of(rounds, lambda: raw(lambda base: base.request(requests, pings // 4)), "raw redis-py, request/response"),
        ))  # fmt: skip
    finally:
        for namespace in namespaces:
            link = RedisLink(client, namespace=namespace)
            await link.purge()
        await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages, one round (a smoke run)")
    args = parser.parse_args()
    scale, rounds = (0.1, 1) if args.quick else (1.0, 2)
    started = time.perf_counter()
    rows = asyncio.run(run_inprocess(scale, rounds))
    rows += asyncio.run(run_redis(scale, rounds))
    print(f"\nMessage bus vs its baseline, Python {sys.version.split()[0]}, best of {rounds} rounds")
    print("(rates: messages delivered per second; latencies: one message at a time, send to delivery;")
    print(" request/response rate with 32 concurrent requesters, its latency a sequential round trip)\n")
    print_table(rows)
    print(f"\nfinished in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
