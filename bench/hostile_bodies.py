"""/healthz latency while hostile request bodies are being refused, against the same server at rest.

The script starts ``agentadapter serve`` (one process, SQLite, a fresh data dir) with a tenant and an
API key, then measures ``GET /healthz`` from one sequential client (p50 and p99): first at rest (the
same-run baseline), then while client processes post hostile bodies to ``/v1/agents`` and
``/v1/workflows`` as fast as they are answered: 900k-deep brackets, 300k-value arrays, strings of
NUL escapes, NaN at depth 60, a YAML alias bomb. It does this for the body checks in worker
processes (the default) and in threads of the server process (``AGENTADAPTER_BODY_CHECK_PROCESSES=0``),
and prints a markdown table with the ratio of each p99 to the baseline's. Target: /healthz p99
under attack <= 100 ms.

    .venv/bin/python bench/hostile_bodies.py [--duration 6] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import clean_env, serve, tenant_key

TARGET_P99_MS = 100.0
BOMB = "a: &a [" + ", ".join(["lol"] * 9) + "]\n" + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [" + ", ".join([f"*{chr(97 + level)}"] * 9) + "]\n" for level in range(8))
HOSTILE: list[tuple[str, bytes]] = [
    ("/v1/agents", b"[" * 900_000),
    ("/v1/agents", b'{"name": "w", "metadata": {"a": [' + b"0," * 300_000 + b"0]}}"),
    ("/v1/agents", b'{"name": "n", "instructions": "' + b"\\u0000" * 150_000 + b'"}'),
    ("/v1/agents", b'{"name": "f", "metadata": ' + b"[" * 60 + b"NaN" + b"]" * 60 + b"}"),
    ("/v1/workflows", json.dumps({"name": "bomb", "yaml": BOMB + "#" * 60_000}).encode()),
]


def start_server(workdir: Path, extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, str]:
    env = clean_env(workdir, **extra)
    key = tenant_key(env)
    process, base_url = serve(env, workdir)
    return process, base_url, key


def probe(base_url: str, duration: float) -> list[float]:
    """Sequential GET /healthz for ``duration`` seconds: each latency in ms."""
    latencies: list[float] = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        client.get("/healthz")
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = client.get("/healthz")
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"/healthz answered {response.status_code}: {response.text[:200]}")
    return latencies


async def _hostile_worker(spec: dict[str, Any]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {spec['key']}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + spec["duration"]
    async with httpx.AsyncClient(base_url=spec["url"], headers=headers, timeout=60.0) as client:

        async def loop(offset: int) -> None:
            index = offset
            while time.perf_counter() < deadline:
                path, body = HOSTILE[index % len(HOSTILE)]
                index += 1
                try:
                    status = str((await client.post(path, content=body)).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(loop(offset) for offset in range(spec["concurrency"])))
    return statuses


def attack(base_url: str, key: str, duration: float, concurrency: int) -> list[subprocess.Popen[str]]:
    """Client processes posting hostile bodies for ``duration`` seconds (2 processes sharing ``concurrency``)."""
    spec = {"url": base_url, "key": key, "duration": duration, "concurrency": max(1, concurrency // 2)}
    return [subprocess.Popen([sys.executable, __file__, "--hostile-worker", json.dumps(spec)], stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(label: str, extra: dict[str, str], duration: float, concurrency: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="aa-bench-hostile-"))
    try:
        process, base_url, key = start_server(workdir, extra)
        try:
            rest = probe(base_url, duration)
            workers = attack(base_url, key, duration + 1.0, concurrency)
            time.sleep(0.5)  # let the attack reach its pace
            loaded = probe(base_url, duration)
            statuses: dict[str, int] = {}
            for worker in workers:
                out, _ = worker.communicate(timeout=120)
                for status, count in json.loads(out).items():
                    statuses[status] = statuses.get(status, 0) + count
            rss = _rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(20)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {"label": label, "rest": rest, "loaded": loaded, "statuses": statuses, "rss": rss,
              "attack_s": duration + 1.0}
    print(f"{label}: healthz p99 {percentile(rest, 0.99):.2f} ms at rest, {percentile(loaded, 0.99):.2f} ms under "
          f"attack; answers {statuses}", file=sys.stderr)
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(results: list[dict[str, Any]], concurrency: int) -> str:
    lines = [
        f"Loopback, {os.cpu_count()} CPUs, one server process (SQLite); /healthz from one sequential client; the "
        f"attack: {concurrency} concurrent hostile bodies (up to 1 MB each) from 2 client processes.",
        "",
        "| body checks | /healthz p50 at rest | p99 at rest | p50 under attack | p99 under attack "
        "| p99 ratio | hostile bodies answered | of them 4xx | p99 <= 100 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for result in results:
        rest, loaded = result["rest"], result["loaded"]
        total = sum(result["statuses"].values())
        refused = sum(count for status, count in result["statuses"].items() if status.startswith("4"))
        p99 = percentile(loaded, 0.99)
        lines.append(
            f"| {result['label']} | {statistics.median(rest):.2f} ms | {percentile(rest, 0.99):.2f} ms "
            f"| {statistics.median(loaded):.2f} ms | {p99:.2f} ms | {p99 / percentile(rest, 0.99):.1f}x "
            f"| {total} ({total / result['attack_s']:.0f}/s) | {refused} | {'yes' if p99 <= TARGET_P99_MS else '**no**'} |")
    lines += ["", "Answers by status: " + "; ".join(f"{r['label']}: {r['statuses']}" for r in results)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of /healthz probing per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="hostile bodies in flight at once")
    parser.add_argument("--hostile-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hostile_worker:
        sys.stdout.write(json.dumps(asyncio.run(_hostile_worker(json.loads(args.hostile_worker)))))
        return
    results = [
        measure("worker processes (default)", {}, args.duration, args.concurrency),
        measure("threads (BODY_CHECK_PROCESSES=0)", {"AGENTADAPTER_BODY_CHECK_PROCESSES": "0"}, args.duration,
                args.concurrency),
    ]
    print(report(results, args.concurrency))


if __name__ == "__main__":
    main()
