"""Live SSE followers of runs on the Celery executor, on one API process: N = 100 and N = 1,000.

The script starts a private ``redis-server`` and ``agentadapter serve`` (one process, SQLite, the
Celery executor on that Redis; no worker runs: the script plays the workers' part and appends the
runs' events to their Redis streams, as workers do). It creates N/10 runs, opens N concurrent
``GET /v1/runs/{id}/events`` streams (10 per run), waits until every follower got a first event,
then publishes ``--events`` token events per run (``--interval`` apart) and a ``run_finished``.
Each event carries the time it was published; each follower records when it arrived.

It prints a markdown table per N: time until all followers were live, events delivered of those
expected, errors, delivery latency p50/p99, and the p99's ratio to N=100's (the baseline). Target:
1,000 followers on one process, all events delivered, no errors.

    .venv/bin/python bench/sse_followers.py [--sizes 100,1000] [--events 20] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import clean_env, free_port, serve, tenant_key
from agentadapter.orchestrator import RunEvent
from agentadapter.service.channel import RunChannel
from agentadapter.service.worker_settings import WorkerSettings

FOLLOWERS_PER_RUN = 10
FIRST_SEQ = 1_000  # past anything the API persisted for the run


@dataclass
class Follower:
    run_id: str
    latencies: list[float] = field(default_factory=list)
    live: asyncio.Event = field(default_factory=asyncio.Event)
    events: int = 0
    error: str | None = None


async def follow(client: httpx.AsyncClient, follower: Follower, headers: dict[str, str]) -> None:
    try:
        async with client.stream("GET", f"/v1/runs/{follower.run_id}/events", headers=headers) as response:
            if response.status_code != 200:
                follower.error = f"HTTP {response.status_code}"
                return
            event_type = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event_type = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event_type == "error":
                        follower.error = data["error"]["message"]
                        return
                    arrived = time.time()
                    sent = float(data["data"].get("sent", 0.0))
                    if data["seq"] == FIRST_SEQ:
                        follower.live.set()
                        continue
                    follower.events += 1
                    follower.latencies.append(arrived - sent)
                    if event_type == "run_finished":
                        return
    except Exception as exc:
        follower.error = f"{type(exc).__name__}: {exc}"
    finally:
        follower.live.set()


def event(run_id: str, seq: int, type_: str = "token") -> RunEvent:
    return RunEvent(seq, type_, run_id, "agent", time.time(), {"sent": time.time()})  # type: ignore[arg-type]


async def one_size(base_url: str, key: str, redis_url: str, agent_id: str, followers_n: int, events: int,
                   interval: float) -> dict[str, float | int | str]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=followers_n + 20, max_keepalive_connections=followers_n + 20)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(120.0)) as client:
        runs = []
        for _ in range(max(1, followers_n // FOLLOWERS_PER_RUN)):
            created = await client.post("/v1/runs", headers=headers, json={"agent_id": agent_id, "input": "hi"})
            created.raise_for_status()
            runs.append(created.json()["id"])
        channel = RunChannel(redis_url, WorkerSettings())
        followers = [Follower(runs[i % len(runs)]) for i in range(followers_n)]
        started = time.perf_counter()
        tasks = [asyncio.create_task(follow(client, f, headers)) for f in followers]
        for run in runs:  # every follower is live once it got this one
            await channel.publish(event(run, FIRST_SEQ, "agent_started"))
        await asyncio.gather(*(f.live.wait() for f in followers))
        live_s = time.perf_counter() - started
        for seq in range(1, events):
            for run in runs:
                await channel.publish(event(run, FIRST_SEQ + seq))
            await asyncio.sleep(interval)
        for run in runs:
            await channel.publish(event(run, FIRST_SEQ + events, "run_finished"))
        try:
            async with asyncio.timeout(120):
                await asyncio.gather(*tasks)
        except TimeoutError:
            for task in tasks:
                task.cancel()
        await channel.aclose()
    latencies = sorted(x for f in followers for x in f.latencies)
    errors = [f.error for f in followers if f.error]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"followers": followers_n, "runs": len(runs), "live_s": live_s,
            "delivered": sum(f.events for f in followers), "expected": followers_n * events,
            "errors": len(errors), "first_error": errors[0] if errors else "",
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan")}


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return process, f"redis://127.0.0.1:{port}/0"


async def main_async(args: argparse.Namespace, base_url: str, key: str, redis_url: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        agent = await client.post("/v1/agents", headers={"Authorization": f"Bearer {key}"},
                                  json={"name": f"bench-{uuid.uuid4().hex[:6]}", "model": "test/echo"})
        agent.raise_for_status()
        agent_id = agent.json()["id"]
    rows: list[dict[str, object]] = []
    for size in args.sizes:
        rows.append(dict(await one_size(base_url, key, redis_url, agent_id, size, args.events, args.interval)))
        print(f"N={size}: done", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda text: [int(x) for x in text.split(",")], default=[100, 1000])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    redis_process, redis_url = start_redis(workdir)
    server = None
    try:
        env = clean_env(workdir, AGENTADAPTER_EXECUTOR="celery", AGENTADAPTER_REDIS_URL=redis_url)
        key = tenant_key(env, role="member")
        server, base_url = serve(env, workdir)
        rows = asyncio.run(main_async(args, base_url, key, redis_url))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        redis_process.terminate()
        redis_process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    baseline = next((float(str(r["p99_ms"])) for r in rows if r["followers"] == 100), None)
    print("| followers | runs | all live (s) | delivered / expected | errors | p50 (ms) | p99 (ms) | p99 vs N=100 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p99 = float(str(r["p99_ms"]))
        ratio = f"{p99 / baseline:.2f}x" if baseline else "-"
        print(f"| {r['followers']} | {r['runs']} | {float(str(r['live_s'])):.2f} | {r['delivered']} / {r['expected']} | "
              f"{r['errors']} | {float(str(r['p50_ms'])):.1f} | {p99:.1f} | {ratio} |")
    for r in rows:
        if r["first_error"]:
            print(f"N={r['followers']}: first error: {r['first_error']}")


if __name__ == "__main__":
    main()
