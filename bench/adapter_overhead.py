"""What the adapter costs per call, against a bare HTTP POST to the same loopback server.

Runs N non-streaming calls (default 2,000) through (a) a bare aiohttp POST + JSON decode, the floor,
(b) a bare httpx POST, (c) ``LLM.generate`` on the aiohttp transport, (d) ``LLM.generate`` on the
httpx transport; then the same calls 50 at a time for throughput; then the process cost of
``import agentadapter``. Every row is measured in this run, so the ratios hold on a noisy machine.

    .venv/bin/python bench/adapter_overhead.py [--calls 2000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _loopback import loopback_server
from agentadapter import LLM
from agentadapter.llm import catalog
from agentadapter.llm.policy.cache import MemoryCache

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Hello"}]}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_calls(call: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    for _ in range(50):  # warm the pool and the code paths
        await call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


async def throughput(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await call()

    await asyncio.gather(*(one() for _ in range(concurrency)))  # warm-up: open the connections
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return calls / (time.perf_counter() - started)


def telemetry_stack() -> Callable[[], None]:
    """Logs at INFO as JSON (to a null stream), metrics, and OpenTelemetry spans to an in-memory exporter."""
    import io

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentadapter.observability.logging import configure_logging

    sink = io.StringIO()
    configure_logging("INFO", stream=sink)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def report() -> None:
        print(f"\n(telemetry row: {len(sink.getvalue().splitlines())} log lines, "
              f"{len(exporter.get_finished_spans())} spans recorded)")

    return report


def import_time_ms(statement: str, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def run(base_url: str, calls: int, concurrency: int) -> None:
    import aiohttp
    import httpx

    url = f"{base_url}/chat/completions"
    payload = json.dumps(BODY).encode()
    headers = {"content-type": "application/json"}
    session = aiohttp.ClientSession()
    client = httpx.AsyncClient()

    async def bare_aiohttp() -> object:
        async with session.post(url, data=payload, headers=headers) as response:
            return json.loads(await response.read())

    async def bare_httpx() -> object:
        response = await client.post(url, content=payload, headers=headers)
        return json.loads(response.content)

    config = {
        "backends": {"bench": {"type": "custom", "base_url": base_url},
                     "spare": {"type": "custom", "base_url": base_url}},
        "models": {"pair": {"strategy": "failover", "targets": ["bench/bench-model", "spare/bench-model"]}},
    }
    for model_id in ("bench/bench-model", "spare/bench-model"):
        # Priced, so the budgets row can bound its calls (an unpriced model is refused under a budget).
        catalog.override(model_id, context_window=128_000, pricing={"input": 1.0, "output": 2.0})
    llm_aiohttp = LLM(config=config, transport="aiohttp", environ={})
    llm_httpx = LLM(config=config, transport="httpx", environ={})

    async def via_llm_aiohttp() -> object:
        return await llm_aiohttp.generate("bench/bench-model", "Hello")

    async def via_llm_httpx() -> object:
        return await llm_httpx.generate("bench/bench-model", "Hello")

    async def via_route() -> object:
        return await llm_aiohttp.generate("pair", "Hello")

    llm_cached = LLM(config=config, environ={}, cache=MemoryCache())

    async def cache_hit() -> object:
        return await llm_cached.generate("bench/bench-model", "Hello", temperature=0)

    llm_policed = LLM(config={**config, "budgets": [{"scope": "global", "limit_usd": 1e9, "window": "day"}]},
                      environ={})

    async def with_policies() -> object:
        return await llm_policed.generate("bench/bench-model", "Hello", tags={"agent": "bench"})

    rows = [
        ("bare aiohttp POST (floor)", bare_aiohttp),
        ("bare httpx POST", bare_httpx),
        ("LLM.generate, aiohttp transport", via_llm_aiohttp),
        ("LLM.generate, httpx transport", via_llm_httpx),
        ("LLM.generate, two-target route", via_route),
        ("LLM.generate, cache hit (no call)", cache_hit),
        ("LLM.generate, budgets + telemetry", with_policies),
    ]
    results = {}
    report_telemetry: Callable[[], None] | None = None
    for name, call in rows:
        if call is with_policies:
            # Telemetry is process-global (log handlers, the tracer provider): switch it on for its row
            # only, and keep that row last.
            report_telemetry = telemetry_stack()
        samples = await timed_calls(call, calls)
        rate = await throughput(call, calls, concurrency)
        results[name] = (statistics.median(samples), percentile(samples, 0.99), rate)
    await session.close()
    await client.aclose()
    await llm_aiohttp.aclose()
    await llm_httpx.aclose()
    await llm_policed.aclose()
    await llm_cached.aclose()
    if report_telemetry is not None:
        report_telemetry()

    floor_median = results["bare aiohttp POST (floor)"][0]
    floor_rate = results["bare aiohttp POST (floor)"][2]
    print(f"\n{calls} sequential calls each, then {calls} at concurrency {concurrency} (calls/s)\n")
    print(f"| {'path':<34} | {'median µs':>9} | {'p99 µs':>8} | {'overhead µs':>11} | {'calls/s':>8} | {'× floor rate':>12} |")
    print(f"|{'-' * 36}|{'-' * 11}:|{'-' * 9}:|{'-' * 12}:|{'-' * 9}:|{'-' * 13}:|")
    for name, (median, p99, rate) in results.items():
        print(
            f"| {name:<34} | {median:9.0f} | {p99:8.0f} | {median - floor_median:11.0f} | {rate:8.0f} | "
            f"{rate / floor_rate:12.2f} |"
        )
    aio_rate, httpx_rate = results["LLM.generate, aiohttp transport"][2], results["LLM.generate, httpx transport"][2]
    print(f"\naiohttp transport vs httpx transport under concurrency: {aio_rate / httpx_rate:.2f}× the calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with loopback_server() as base_url:
        asyncio.run(run(base_url, args.calls, args.concurrency))
    bare = import_time_ms("pass")
    light = import_time_ms("import agentadapter")
    used = import_time_ms("import agentadapter; agentadapter.LLM")
    print("\n| process                                  | median ms | over bare python ms |")
    print("|------------------------------------------|----------:|--------------------:|")
    for name, value in [("python -c pass (baseline)", bare), ("import agentadapter", light),
                        ("import agentadapter; agentadapter.LLM", used)]:
        print(f"| {name:<40} | {value:9.0f} | {value - bare:19.0f} |")


if __name__ == "__main__":
    main()
