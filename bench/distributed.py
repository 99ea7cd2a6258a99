"""Runs per minute: in process, and on one and two Celery workers, through a live API.

Every configuration gets a fresh PostgreSQL database and a scratch Redis database, an API server
(``agentadapter serve``) and, for the Celery rows, ``agentadapter worker`` processes with
``--concurrency`` task slots each. The agent answers from the test backend with a fixed simulated
latency of 200 ms per call (``latency_ms: 200``): latency-bound, as real LLM runs are. The script
submits ``--runs`` runs of a ``--steps``-agent sequential workflow through ``POST /v1/runs`` and
waits until every one has finished; runs/minute is runs / (last finish - first created), from the
runs' own ``created_at`` / ``finished_at``, so the client polls rarely (every half second, the
oldest unfinished runs only) and takes little of the CPU the API and the workers share.

The in-process row is the same-run baseline (the API's inline executor: every run is a task of the
API process, so it is bounded by the API, not by worker slots). Targets: >= 100 runs/minute with
one worker (the seeds' "> 100 jobs/minute") and about 2x with two.

    .venv/bin/python bench/distributed.py [--runs 300] [--steps 2] [--concurrency 4] [--quick]

PostgreSQL comes from ``AGENTADAPTER_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop the bench databases);
Redis from ``AGENTADAPTER_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/13, flushed first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _serve import CLI, DEFAULT_PG, ROOT, cli, free_port, pg_database

DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
LATENCY_MS = 200
TARGET_ONE_WORKER = 100.0
TERMINAL = {"completed", "failed", "cancelled"}

console = Console(highlight=False, width=140)


@dataclass
class Row:
    name: str
    runs: int
    completed: int
    seconds: float
    p50_s: float
    p95_s: float

    @property
    def per_minute(self) -> float:
        return self.runs / self.seconds * 60.0 if self.seconds else 0.0


def _config(workdir: Path) -> Path:
    path = workdir / "agentadapter.yaml"
    path.write_text(f"backends:\n  slow: {{type: test, latency_ms: {LATENCY_MS}}}\n", "utf-8")
    return path


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _submit_and_wait(base_url: str, key: str, runs: int, steps: int) -> tuple[float, int, list[float]]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60, limits=limits) as client:
        agents = [{"name": f"step{i}", "model": "slow/echo", "instructions": "Answer briefly."}
                  for i in range(1, steps + 1)]
        workflow = await client.post("/v1/workflows", json={
            "name": "bench", "spec": {"name": "bench", "strategy": "sequential", "agents": agents}})
        workflow.raise_for_status()
        workflow_id = workflow.json()["id"]
        submitted: list[str] = []
        gate = asyncio.Semaphore(16)

        async def submit(index: int) -> None:
            async with gate:
                response = await client.post("/v1/runs", json={"workflow_id": workflow_id,
                                                               "input": f"question {index}"})
                response.raise_for_status()
                submitted.append(response.json()["id"])

        await asyncio.gather(*(submit(i) for i in range(runs)))
        finished: dict[str, dict[str, Any]] = {}
        pending = list(submitted)  # in submission order: the oldest finish first
        deadline = time.perf_counter() + max(120.0, runs * steps * LATENCY_MS / 1000.0)
        while pending and time.perf_counter() < deadline:
            found = await asyncio.gather(*(client.get(f"/v1/runs/{run_id}") for run_id in pending[:16]))
            for response in found:
                run = response.json()
                if run["status"] in TERMINAL:
                    finished[run["id"]] = run
            pending = [run_id for run_id in pending if run_id not in finished]
            if pending:
                await asyncio.sleep(0.5)
        if pending:
            raise SystemExit(f"{len(pending)} run(s) did not finish in time; see the logs in the work dir")
        created = [datetime.fromisoformat(run["created_at"]) for run in finished.values()]
        ended = [datetime.fromisoformat(run["finished_at"]) for run in finished.values()]
        durations = sorted((e - c).total_seconds() for c, e in zip(created, ended, strict=True))
        completed = sum(run["status"] == "completed" for run in finished.values())
        return (max(ended) - min(created)).total_seconds(), completed, durations


def bench(name: str, workers: int, runs: int, steps: int, concurrency: int, admin_url: str, redis_url: str) -> Row:
    database = f"aa_bench_dist_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_database(admin_url, database, create=True))
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="aa-dist-") as tmp:
        workdir = Path(tmp)
        try:
            import redis

            redis.Redis.from_url(redis_url).flushdb()
            db_url = admin_url.rsplit("/", 1)[0] + f"/{database}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
            env.update(AGENTADAPTER_DATA_DIR=str(workdir), AGENTADAPTER_ENV="development", PYTHONUNBUFFERED="1",
                       AGENTADAPTER_DATABASE_URL=db_url, AGENTADAPTER_REDIS_URL=redis_url,
                       AGENTADAPTER_CONFIG=str(_config(workdir)), AGENTADAPTER_LOG_LEVEL="WARNING",
                       AGENTADAPTER_EXECUTOR="celery" if workers else "inline")
            cli(env, "tenants", "create", "bench")
            key = cli(env, "keys", "create", "--tenant", "bench", "--role", "admin")
            port = free_port()
            processes.append(_start([*CLI, "serve", "--port", str(port), "--no-access-log", "--log-level",
                                     "warning", "--no-migrate"], env, workdir / "api.log"))
            for index in range(workers):
                processes.append(_start([sys.executable, "-m", "agentadapter.cli", "worker", "--concurrency",
                                         str(concurrency)], env, workdir / f"worker{index}.log"))
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base_url + "/readyz", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or processes[0].poll() is not None:
                    raise SystemExit(f"the API did not start: {(workdir / 'api.log').read_text()[-2000:]}")
                time.sleep(0.2)
            time.sleep(2.0 if workers else 0.0)  # let the workers connect to the broker
            seconds, completed, durations = asyncio.run(_submit_and_wait(base_url, key, runs, steps))
            return Row(name, runs, completed, seconds, durations[len(durations) // 2],
                       durations[int(len(durations) * 0.95) - 1])
        finally:
            for process in reversed(processes):
                _stop(process)
            asyncio.run(pg_database(admin_url, database, create=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=2, help="agents per run (sequential), one call of 200 ms each")
    parser.add_argument("--concurrency", type=int, default=4, help="task slots per worker")
    parser.add_argument("--quick", action="store_true", help="60 runs")
    parser.add_argument("--only", default="", help="comma list of worker counts to run (0 = in process)")
    args = parser.parse_args()
    runs = 60 if args.quick else args.runs
    admin_url = os.environ.get("AGENTADAPTER_BENCH_POSTGRES_URL", DEFAULT_PG)
    redis_url = os.environ.get("AGENTADAPTER_BENCH_REDIS_URL", DEFAULT_REDIS)
    only = {int(w) for w in args.only.split(",")} if args.only else {0, 1, 2}
    names = {0: "in process (inline executor)", 1: f"1 Celery worker x {args.concurrency}",
             2: f"2 Celery workers x {args.concurrency}"}
    rows = [bench(names[w], w, runs, args.steps, args.concurrency, admin_url, redis_url) for w in sorted(only)]
    one = next((r.per_minute for r in rows if r.name.startswith("1 ")), 0.0)
    table = Table(title=f"{runs} runs of {args.steps} sequential agents, {LATENCY_MS} ms per call")
    for column in ("executor", "completed", "seconds", "runs/min", "vs 1 worker", "run p50 s", "run p95 s"):
        table.add_column(column, justify="left" if column == "executor" else "right")
    for row in rows:
        table.add_row(row.name, f"{row.completed}/{row.runs}", f"{row.seconds:.1f}", f"{row.per_minute:,.0f}",
                      f"{row.per_minute / one:.2f}x" if one else "-", f"{row.p50_s:.2f}", f"{row.p95_s:.2f}")
    console.print(table)
    two = next((r.per_minute for r in rows if r.name.startswith("2 ")), 0.0)
    if one:
        verdict = "met" if one >= TARGET_ONE_WORKER else "NOT met"
        console.print(f"one worker: {one:,.0f} runs/min (target >= {TARGET_ONE_WORKER:.0f}: {verdict})"
                      + (f"; two workers: {two / one:.2f}x one worker (target ~2x)" if two else ""))


if __name__ == "__main__":
    main()
