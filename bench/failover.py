"""Failover under fire: a primary failing 30 % of calls, one healthy backup.

Two loopback servers in their own processes. The primary fails 30 % of requests with a mix of
5xx, 429 (``retry-after-ms: 1``) and hangs longer than the client's timeout, and has a full outage
from the 3,000th to the 6,000th request. N requests (default 10,000) go through the route
``[primary, backup]`` at a fixed concurrency; the same run first measures an all-healthy primary
as the latency baseline. Printed: success rate, latency percentiles and the extra over the
baseline, when the breaker opened and closed against the outage, and how many requests were sent
to the primary while its breaker was open (target 0).

The retry policy's delays are shortened (10 ms initial, 50 ms cap) so the run takes seconds; the
policy's logic is the production one.

    .venv/bin/python bench/failover.py [--requests 10000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _loopback import loopback_server
from agentadapter import LLM
from agentadapter.llm import catalog
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.llm.health import InProcessReliabilityStore
from agentadapter.llm.policy.breaker import BreakerConfig
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.llm.transport import AiohttpTransport, HTTPRequest, HTTPResponse

OUTAGE = (0.3, 0.6)
"""The outage, as fractions of the run's requests."""


class CountingTransport(AiohttpTransport):
    """Counts requests sent to the primary while its breaker is open (there should be none)."""

    def __init__(self, primary_url: str) -> None:
        super().__init__()
        self.primary_url = primary_url
        self.store: InProcessReliabilityStore | None = None
        self.sent_while_open = 0
        self.sent_to_primary = 0

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        if request.url.startswith(self.primary_url):
            self.sent_to_primary += 1
            if self.store is not None and self.store.breaker("primary/bench-model").state == "open":
                self.sent_while_open += 1
        return await super().send(request)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def set_outage(primary: str, on: bool) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await (await session.post(primary.removesuffix("/v1") + "/control", json={"outage": on})).read()


async def run(primary: str, backup: str, requests: int, concurrency: int, *, outage: bool) -> dict[str, Any]:
    transport = CountingTransport(primary)
    transitions: list[tuple[float, str, str]] = []
    started_at: list[float] = []

    def on_change(name: str, old: str, new: str) -> None:
        if name == "primary/bench-model" and started_at:
            transitions.append((time.monotonic() - started_at[0], old, new))

    store = InProcessReliabilityStore(
        breaker_config=BreakerConfig(failure_threshold=10, cooldown_s=0.2), on_breaker_change=on_change
    )
    transport.store = store
    config = {
        "backends": {
            "primary": {"type": "custom", "base_url": primary, "timeout": 0.1},
            "backup": {"type": "custom", "base_url": backup, "timeout": 1.0},
        },
        "models": {"route": {"strategy": "failover", "targets": ["primary/bench-model", "backup/bench-model"]}},
    }
    catalog.override("primary/bench-model", context_window=128_000)
    catalog.override("backup/bench-model", context_window=128_000)
    llm = LLM(config=config, transport=transport, environ={}, reliability=store,
              retry=RetryPolicy(initial_delay=0.01, max_delay=0.05))
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failures = 0
    answered_by_backup = 0
    outage_times: dict[str, float] = {}

    async def one(index: int) -> None:
        nonlocal failures, answered_by_backup
        async with semaphore:
            if outage and index == int(requests * OUTAGE[0]):
                await set_outage(primary, True)
                outage_times["start"] = time.monotonic() - started_at[0]
            if outage and index == int(requests * OUTAGE[1]):
                await set_outage(primary, False)
                outage_times["end"] = time.monotonic() - started_at[0]
            began = time.perf_counter()
            try:
                response = await llm.generate("route", "Hello")
            except AgentAdapterError:
                failures += 1
                return
            latencies.append((time.perf_counter() - began) * 1000)
            answered_by_backup += response.attempts[-1].target.startswith("backup")

    await llm.generate("backup/bench-model", "warm-up")
    started_at.append(time.monotonic())
    await asyncio.gather(*(one(i) for i in range(requests)))
    elapsed = time.monotonic() - started_at[0]
    await llm.aclose()
    return {
        "latencies": latencies, "failures": failures, "backup": answered_by_backup, "elapsed": elapsed,
        "transitions": transitions, "sent_while_open": transport.sent_while_open,
        "sent_to_primary": transport.sent_to_primary, "outage": outage_times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    faults = {"fail_rate": 0.3, "hang_s": 0.3, "seed": 7}
    with loopback_server() as healthy_primary, loopback_server() as backup:
        baseline = asyncio.run(run(healthy_primary, backup, args.requests, args.concurrency, outage=False))
    with loopback_server(faults) as faulty_primary, loopback_server() as backup:
        faulty = asyncio.run(run(faulty_primary, backup, args.requests, args.concurrency, outage=True))

    total = args.requests
    print(f"\n{total} requests, concurrency {args.concurrency}; primary fails 30 % (5xx / 429 / hangs) "
          f"and a full outage from request {int(total * OUTAGE[0])} to {int(total * OUTAGE[1])}; one healthy backup\n")
    print("| run                 | success rate | answered by backup | p50 ms | p95 ms | p99 ms | wall s |")
    print("|---------------------|-------------:|-------------------:|-------:|-------:|-------:|-------:|")
    for name, result in (("all healthy", baseline), ("faulty primary", faulty)):
        lat = result["latencies"]
        rate = (total - result["failures"]) / total * 100
        print(f"| {name:<19} | {rate:11.3f}% | {result['backup']:18d} | {percentile(lat, .5):6.2f} | "
              f"{percentile(lat, .95):6.2f} | {percentile(lat, .99):6.2f} | {result['elapsed']:6.2f} |")
    print("\n| extra latency vs all healthy | p50 ms | p95 ms | p99 ms |")
    print("|------------------------------|-------:|-------:|-------:|")
    extra = [percentile(faulty["latencies"], q) - percentile(baseline["latencies"], q) for q in (.5, .95, .99)]
    print(f"| faulty primary               | {extra[0]:6.2f} | {extra[1]:6.2f} | {extra[2]:6.2f} |")

    print("\nbreaker of the primary (s since the run began):")
    opens = [t for t, _, new in faulty["transitions"] if new == "open"]
    closes = [t for t, _, new in faulty["transitions"] if new == "closed"]
    start, end = faulty["outage"]["start"], faulty["outage"]["end"]
    print(f"- opened {len(opens)} time(s), closed {len(closes)} time(s) over {faulty['elapsed']:.2f} s; "
          f"outage from {start:.3f} s to {end:.3f} s")
    opened_in_outage = [t for t in opens if start <= t]
    closed_after = [t for t in closes if t >= end]
    if opened_in_outage:
        print(f"- opened {(opened_in_outage[0] - start) * 1000:.1f} ms after the outage began")
    if closed_after:
        print(f"- closed {(closed_after[0] - end) * 1000:.1f} ms after the outage ended (cooldown 200 ms)")
    print(f"- requests sent to the primary: {faulty['sent_to_primary']}; "
          f"sent while its breaker was open: {faulty['sent_while_open']} (target 0)")
    print(f"- median latency, all healthy: {statistics.median(baseline['latencies']):.2f} ms")


if __name__ == "__main__":
    main()
