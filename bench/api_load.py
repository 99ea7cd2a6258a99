"""Load on a live ``agentadapter serve``, driven from separate processes, on SQLite and on PostgreSQL.

For each database the script makes a fresh data dir (and, for PostgreSQL, a throw-away database it
drops afterwards), creates a tenant and an API key with the CLI, starts the server as a subprocess
(one process, as served without Redis, access log off), seeds an agent and 40 finished runs, and
measures, each at concurrency 64 (throughput) and 4 (latency), with the server's CPU time per request
(all its processes and threads, from ``/proc``: steadier than requests/s on a machine shared with
other work):

- ``GET /healthz``           the same-run baseline: the HTTP stack with no auth and no database;
- ``GET /v1/agents/{id}``    auth (API key), one row, its JSON;
- ``GET /v1/runs?limit=20``  auth, a page of 20 runs;
- ``POST /v1/agents``        auth, validation, three inserts (agent, version, audit) and a commit.

The load comes from ``wrk`` when it is on PATH (it uses little CPU), else from an asyncio client
running in its own processes (which takes CPU from the server on a small machine: the numbers are
then lower bounds). It reports requests/s, p50 and p99 latency, failed requests, the ratio of each
rate to the baseline's, and the server's resident memory when idle (after start-up, and after the
load). Targets on 2 cores: >= 1,000 req/s at concurrency 64, p99 <= 20 ms at concurrency 4 for the
GETs, idle RSS <= 120 MB.

    .venv/bin/python bench/api_load.py [--db sqlite|postgres|both] [--duration 8] [--client auto|wrk|python]
                                       [--workers N]    # N > 1: N server processes sharing Redis

PostgreSQL comes from ``AGENTADAPTER_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop the bench database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import ROOT, clean_env, database_url, serve, tenant_key

DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
TARGET_RPS = 1000.0
TARGET_P99_MS = 20.0
TARGET_RSS_MB = 120.0

console = Console(highlight=False, width=140)


@dataclass
class Result:
    scenario: str
    database: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    ratio: float | None = None
    cpu_us: float | None = None
    """The server's CPU time per request (all its processes and threads): steadier than req/s on a shared machine."""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    key: str
    env: dict[str, str]
    log: Path
    data: dict[str, Any] = field(default_factory=dict)

    def pids(self) -> list[int]:
        """The server's processes: the one worker, or the supervisor and its workers."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        return pids

    def cpu_s(self) -> float:
        """CPU seconds the server's processes have used so far (user + system, every thread)."""
        total = 0.0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def rss_mb(self) -> float:
        """Resident memory of the server: the largest of its processes (one worker, or the supervisor's workers)."""
        sizes = []
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return max(sizes) if sizes else float("nan")



def start_server(database: str, workdir: Path, database_url: str | None, workers: int) -> Server:
    extra = {"AGENTADAPTER_DATABASE_URL": database_url} if database_url else {}
    if workers > 1:
        extra["AGENTADAPTER_REDIS_URL"] = os.environ.get("AGENTADAPTER_BENCH_REDIS_URL", DEFAULT_REDIS)
    env = clean_env(workdir, **extra)
    key = tenant_key(env)
    process, base_url = serve(env, workdir, workers=workers, name=f"the server ({database})", cwd=ROOT)
    return Server(process, base_url, key, env, workdir / "server.log")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def seed(server: Server, runs: int = 40) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        agent = client.post("/v1/agents", json={"name": "bench-agent", "model": "test/echo",
                                                "instructions": "Answer briefly."})
        agent.raise_for_status()
        server.data["agent_id"] = agent.json()["id"]
        ids = []
        for index in range(runs):
            run = client.post("/v1/runs", json={"agent_id": server.data["agent_id"], "input": f"question {index}"})
            run.raise_for_status()
            ids.append(run.json()["id"])
        for run_id in ids:
            for _ in range(200):
                if client.get(f"/v1/runs/{run_id}").json()["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.05)


# ------------------------------------------------------------------------------------------ clients

_WRK_SCRIPT = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prefix = ""
function init(args)
  prefix = args[1] .. "-" .. tid
end
function request()
  counter = counter + 1
  local body = string.format('{"name":"a-%s-%d","model":"test/echo","instructions":"bench"}', prefix, counter)
  return wrk.format("POST", "/v1/agents", {["Content-Type"] = "application/json",
                                          ["Authorization"] = "Bearer KEY"}, body)
end
"""


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, key: str | None, concurrency: int, duration: float, post: bool, workdir: Path) -> dict[str, Any]:
    threads = min(2, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    if post:
        script = workdir / "create_agent.lua"
        script.write_text(_WRK_SCRIPT.replace("KEY", key or ""))
        command += ["-s", str(script)]
    elif key:
        command += ["-H", f"Authorization: Bearer {key}"]
    command.append(url)
    if post:
        command += ["--", uuid.uuid4().hex[:8]]  # a name prefix unique to this run of wrk
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _wrk_ms(re.search(r"\n\s+50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"\n\s+99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in socket_errors.groups()) if socket_errors else 0)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors, "requests": requests}


def run_python(url: str, key: str | None, concurrency: int, duration: float, post: bool) -> dict[str, Any]:
    """The asyncio client, in its own processes (two, or one at low concurrency)."""
    processes = 2 if concurrency >= 8 else 1
    spec = json.dumps({"url": url, "key": key, "concurrency": concurrency // processes, "duration": duration,
                       "post": post})
    children = [subprocess.Popen([sys.executable, __file__, "--client-worker", spec], stdout=subprocess.PIPE)
                for _ in range(processes)]
    samples: list[float] = []
    errors = requests = 0
    for child in children:
        out, _ = child.communicate()
        data = json.loads(out)
        samples += data["latencies"]
        errors += data["errors"]
        requests += data["requests"]
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] if samples else float("nan")  # noqa: E731
    return {"rps": requests / duration, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "errors": errors,
            "requests": requests}


async def _client_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = requests = 0
    headers = {"Authorization": f"Bearer {spec['key']}"} if spec["key"] else {}
    deadline = time.perf_counter() + spec["duration"]
    prefix = uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def loop(worker: int) -> None:
            nonlocal errors, requests
            count = 0
            while time.perf_counter() < deadline:
                count += 1
                started = time.perf_counter()
                try:
                    if spec["post"]:
                        body = {"name": f"p-{prefix}-{worker}-{count}", "model": "test/echo", "instructions": "bench"}
                        async with session.post(spec["url"], json=body) as response:
                            await response.read()
                            ok = response.status < 300
                    else:
                        async with session.get(spec["url"]) as response:
                            await response.read()
                            ok = response.status < 300
                except aiohttp.ClientError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                requests += 1
                errors += not ok

        await asyncio.gather(*(loop(i) for i in range(spec["concurrency"])))
    return {"latencies": latencies, "errors": errors, "requests": requests}


# ------------------------------------------------------------------------------------------ scenarios


def measure(server: Server, database: str, client: str, duration: float, workdir: Path) -> tuple[list[Result], dict]:
    agent_id = server.data["agent_id"]
    scenarios = [
        ("GET /healthz (baseline)", "/healthz", False, False),
        ("GET /v1/agents/{id}", f"/v1/agents/{agent_id}", True, False),
        ("GET /v1/runs?limit=20", "/v1/runs?limit=20", True, False),
        ("POST /v1/agents", "/v1/agents", True, True),
    ]
    results: list[Result] = []
    memory = {"idle_after_start_mb": server.rss_mb()}
    for name, path, auth, post in scenarios:
        for concurrency in (64, 4):
            url = server.base_url + path
            key = server.key if auth else None
            # A short warm-up so that caches (auth, compiled statements) are what is measured.
            if client == "wrk":
                run_wrk(url, key, concurrency, 1.0, post, workdir)
                cpu_before = server.cpu_s()
                data = run_wrk(url, key, concurrency, duration, post, workdir)
            else:
                run_python(url, key, concurrency, 1.0, post)
                cpu_before = server.cpu_s()
                data = run_python(url, key, concurrency, duration, post)
            cpu_us = (server.cpu_s() - cpu_before) * 1e6 / data["requests"] if data["requests"] else None
            results.append(Result(name, database, concurrency, **data, cpu_us=cpu_us))
            console.print(f"  {database:<10} {name:<26} c={concurrency:<3} {data['rps']:>8.0f} req/s  "
                          f"p50 {data['p50_ms']:.2f} ms  p99 {data['p99_ms']:.2f} ms  errors {data['errors']}")
    time.sleep(2)
    memory["idle_after_load_mb"] = server.rss_mb()
    baseline = {r.concurrency: r.rps for r in results if r.scenario.startswith("GET /healthz")}
    for result in results:
        result.ratio = result.rps / baseline[result.concurrency] if baseline.get(result.concurrency) else None
    return results, memory


def bench_database(database: str, client: str, duration: float, workers: int) -> tuple[list[Result], dict]:
    workdir = Path(tempfile.mkdtemp(prefix=f"aa-bench-{database}-"))
    server = None
    try:
        with database_url(database) as url:
            try:
                server = start_server(database, workdir, url, workers)
                seed(server)
                return measure(server, database, client, duration, workdir)
            finally:
                if server is not None:
                    stop_server(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(results: list[Result], memory: dict[str, dict], client: str, workers: int) -> None:
    processes = "1 process" if workers == 1 else f"{workers} processes + Redis"
    table = Table(title=f"API load (client: {client}; server: {processes}; {os.cpu_count()} CPUs)",
                  title_justify="left")
    for column in ("database", "scenario", "conc", "req/s", "p50 ms", "p99 ms", "errors", "ratio", "server CPU/req"):
        table.add_column(column, justify="left" if column in ("database", "scenario") else "right")
    for r in results:
        table.add_row(r.database, r.scenario, str(r.concurrency), f"{r.rps:,.0f}", f"{r.p50_ms:.2f}",
                      f"{r.p99_ms:.2f}", str(r.errors), f"{r.ratio:.2f}" if r.ratio is not None else "-",
                      f"{r.cpu_us:,.0f} us" if r.cpu_us is not None else "-")
    console.print(table)
    for database, values in memory.items():
        console.print(f"idle RSS ({database}): {values['idle_after_start_mb']:.0f} MB after start, "
                      f"{values['idle_after_load_mb']:.0f} MB after the load (target <= {TARGET_RSS_MB:.0f} MB)")
    gets = [r for r in results if r.scenario.startswith("GET /v1")]
    rps_ok = all(r.rps >= TARGET_RPS for r in gets if r.concurrency == 64)
    p99_ok = all(r.p99_ms <= TARGET_P99_MS for r in gets if r.concurrency == 4)
    console.print(f"GETs: >= {TARGET_RPS:,.0f} req/s at c=64: {'yes' if rps_ok else 'NO'}; "
                  f"p99 <= {TARGET_P99_MS:.0f} ms at c=4: {'yes' if p99_ok else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (more than 1 uses Redis: AGENTADAPTER_BENCH_REDIS_URL)")
    parser.add_argument("--client-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        sys.stdout.write(json.dumps(asyncio.run(_client_worker(json.loads(args.client_worker)))))
        return
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[Result] = []
    memory: dict[str, dict] = {}
    for database in databases:
        console.print(f"[bold]{database}[/]")
        found, memory[database] = bench_database(database, client, args.duration, args.workers)
        results += found
    report(results, memory, client, args.workers)


if __name__ == "__main__":
    main()
