"""The OpenAI-compatible gateway's cost: the same calls made directly to a provider and through the gateway.

One run starts a loopback OpenAI-format provider in its own process (``bench/_loopback.py``: it
answers every chat completion at once, so what is measured is our overhead, not a model), then
``agentadapter serve`` in its own process (a fresh SQLite database in a temp dir, a tenant and an API
key made with the CLI, auth and usage recording on, ``OPENAI_BASE_URL`` pointed at the fake), and
drives both with the same aiohttp load generator (its own processes, so it does not take the
server's CPU time inside one interpreter):

- latency at concurrency 1: median and p99, direct and through the gateway; the added latency is
  gateway median - direct median (target <= 2 ms);
- throughput at concurrency 64: requests/s direct and through the gateway, in three rounds that take
  each target in turn (the mean of each is reported), so that the machine's drifting load weighs on
  all of them alike (target: the gateway keeps >= 35 % of the direct rate);
- the same throughput for a tenant with prepaid credits (every call holds and settles against its
  balance), in the same run (target: >= 80 % of the tenant without credits);
- the gateway process's resident memory after start-up (and a 1,000-request warm-up), after 50k and
  after 100k requests (target: flat within +-10 %).

Two reference proxies put the gateway's numbers in context, measured with the same load generator
against the same provider in the same run (their own rows: latency at c=1, throughput at c=64):

- a pass-through floor (``bench/_passthrough.py``): the cheapest reasonable Python proxy, an aiohttp
  handler that forwards the body with one pooled client session and returns the provider's answer
  (no auth, no parsing, no records), with as many processes as the gateway has: what any Python
  gateway can reach on this machine;
- the LiteLLM proxy, the gateway our users compare with, when ``--litellm PATH`` (or
  ``AGENTADAPTER_BENCH_LITELLM``) names the ``litellm`` executable of a venv of its own (its pins
  conflict with ours): ``python -m venv /tmp/litellm && /tmp/litellm/bin/pip install 'litellm[proxy]'``.
  It routes ``gpt-4o-mini`` to the same provider, with a master key (it refuses to start without
  one), no database, logging at ERROR, and ``--num_workers`` as the gateway's ``--workers``. When it
  is not given or does not answer, the run says why and goes on without it.

    .venv/bin/python bench/gateway.py [--quick] [--duration 8] [--requests 100000] [--workers 2] [--db postgres]
        [--litellm /tmp/litellm/bin/litellm]

``--workers 2`` runs two gateway processes sharing a private ``redis-server`` (credits on Redis), and
two processes of each reference proxy.

``--quick`` is a short run (fewer latency samples, 2 s rates, 10k requests for the memory check).
The markdown table printed at the end is the one in docs/gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _loopback import loopback_server
from _serve import clean_env, cli, database_url, free_port, serve, tenant_key

MODEL = "openai/gpt-4o-mini"
LITELLM_MODEL = "gpt-4o-mini"
"""The name the LiteLLM proxy's config routes to the loopback provider (as ``openai/gpt-4o-mini``)."""
LITELLM_HOWTO = "python -m venv /tmp/litellm && /tmp/litellm/bin/pip install 'litellm[proxy]'"
BODY = {"messages": [{"role": "system", "content": "You are brief."},
                     {"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 32}
TARGET_ADDED_MS = 2.0
TARGET_RATIO = 0.35
TARGET_RSS_DRIFT = 0.10
TARGET_CREDIT_RATIO = 0.80
CREDIT_ROUNDS = 3
THROUGHPUT_ROUNDS = 3
"""Rounds of the c=64 measurements, each target in turn (direct, pass-through, gateway), so that a machine
whose load drifts weighs on all of them alike."""


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    @classmethod
    def mean(cls, rounds: list[Load]) -> Load:
        """Rounds of the same measurement as one: the mean rate, the median of the medians, the worst p99."""
        return cls(rps=statistics.fmean(r.rps for r in rounds), p50_ms=statistics.median(r.p50_ms for r in rounds),
                   p99_ms=max(r.p99_ms for r in rounds), requests=sum(r.requests for r in rounds),
                   errors=sum(r.errors for r in rounds))


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and of its children (``--workers N`` serves from child processes)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
    return total or float("nan")


def start_gateway(workdir: Path, provider_url: str, *, workers: int = 1, redis_url: str | None = None,
                  database: str | None = None) -> tuple[subprocess.Popen[bytes], str, str, str]:
    """The gateway, a key of a tenant without credits and a key of a tenant with a (large) credit balance."""
    extra = {"AGENTADAPTER_REDIS_URL": redis_url} if redis_url else {}
    if database:
        extra["AGENTADAPTER_DATABASE_URL"] = database
    env = clean_env(workdir, drop=("AGENTADAPTER_", "OPENAI_"), OPENAI_BASE_URL=provider_url, OPENAI_API_KEY="sk-bench",
                    **extra)
    key = tenant_key(env, "member")
    cli(env, "tenants", "create", "funded")
    credits_key = cli(env, "keys", "create", "--tenant", "funded", "--role", "member")
    cli(env, "credits", "add", "--tenant", "funded", "--usd", "1000000")
    process, base_url = serve(env, workdir, name="the gateway", workers=workers)
    return process, base_url + "/v1", key, credits_key


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A redis-server of the benchmark's own (several gateway processes share state through it)."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """SIGTERM (a supervisor stops its workers), then SIGKILL after ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@contextmanager
def passthrough_proxy(provider_url: str, processes: int) -> Iterator[str]:
    """The pass-through floor (``bench/_passthrough.py``) in processes of its own; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(BENCH / "_passthrough.py"), "--provider", provider_url,
                                "--port", str(port), "--processes", str(processes)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while True:  # it prints "ready" once every process listens
            if time.monotonic() > deadline:
                raise SystemExit("the pass-through proxy did not get ready within 60 s")
            readable, _, _ = select.select([process.stdout], [], [], 0.5)
            if readable:
                line = process.stdout.readline()
                if line.strip() == b"ready":
                    break
                if not line:
                    raise SystemExit(f"the pass-through proxy exited at start ({process.wait()})")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(process)


@dataclass
class LiteLLMProxy:
    """A running LiteLLM proxy, or why there is none (``skipped``)."""

    url: str = ""
    key: str = ""
    version: str = ""
    skipped: str = ""


@contextmanager
def litellm_proxy(executable: str | None, provider_url: str, workdir: Path, workers: int) -> Iterator[LiteLLMProxy]:
    """The LiteLLM proxy routing ``gpt-4o-mini`` to the provider (with ``--num_workers`` above 1 its uvicorn
    supervisor stops its workers on SIGTERM). It never fails the run: what keeps it from answering ends up in
    ``skipped``."""
    if not executable:
        yield LiteLLMProxy(skipped=f"no --litellm PATH (or AGENTADAPTER_BENCH_LITELLM) given; make one with `{LITELLM_HOWTO}`")
        return
    if not (Path(executable).is_file() and os.access(executable, os.X_OK)):
        yield LiteLLMProxy(skipped=f"{executable} is not an executable; make one with `{LITELLM_HOWTO}`")
        return
    home = workdir / "litellm"
    home.mkdir()
    key = "sk-bench-" + os.urandom(16).hex()
    config = {  # YAML is a superset of JSON
        "model_list": [{"model_name": LITELLM_MODEL,
                        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": provider_url, "api_key": "x"}}],
        # The settings of its own proxy benchmark (docs.litellm.ai/docs/benchmarks): no callbacks, no retries.
        "litellm_settings": {"set_verbose": False, "callbacks": [], "num_retries": 0, "request_timeout": 30},
        # It refuses to start without a master key; with one and no database, auth is a comparison in memory.
        "general_settings": {"master_key": key},
    }
    (home / "config.yaml").write_text(json.dumps(config, indent=2))
    # A bare environment: its CLI also reads PORT, NUM_WORKERS, DATABASE_URL, LITELLM_* and OPENAI_* from it.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    env.update(LITELLM_LOG="ERROR",  # also uvicorn's log level: no access log
               LITELLM_LOCAL_MODEL_COST_MAP="True")  # its bundled prices, not a download at start
    port = free_port()
    log = home / "litellm.log"
    process = subprocess.Popen([executable, "--config", str(home / "config.yaml"), "--host", "127.0.0.1",
                                "--port", str(port), "--num_workers", str(workers)],
                               env=env, cwd=home, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        proxy = LiteLLMProxy(url=base_url + "/v1", key=key)
        deadline = time.monotonic() + 180  # its imports take 10 s on an idle 2-core machine
        while not proxy.version and not proxy.skipped:
            if process.poll() is not None:
                proxy.skipped = f"it exited at start ({process.returncode}): {_log_tail(log)}"
            elif time.monotonic() > deadline:
                proxy.skipped = f"it did not answer within 180 s: {_log_tail(log)}"
            else:
                try:
                    proxy.version = _litellm_answers(base_url, key)
                except (RuntimeError, ValueError) as exc:  # up, but the call through it fails
                    proxy.skipped = str(exc)
                time.sleep(0 if proxy.version else 0.5)
        yield proxy
    finally:
        stop_process(process, timeout=30)


def _litellm_answers(base_url: str, key: str) -> str:
    """Its version (a header of its answers) once it is up and a chat completion through it succeeds, else ""."""
    try:
        if httpx.get(base_url + "/health/liveliness", timeout=2).status_code != 200:
            return ""
        answer = httpx.post(base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": LITELLM_MODEL, **BODY}, timeout=30)
        if answer.status_code != 200 or b'"choices"' not in answer.content:
            raise RuntimeError(f"a chat completion through it answered {answer.status_code}: {answer.text[:300]}")
        return answer.headers.get("x-litellm-version") or "(version unknown)"
    except httpx.HTTPError:
        return ""


def _log_tail(log: Path) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))  # its banner's colours
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-800:] or "(no output)"


# ------------------------------------------------------------------------------------- the load


def run_load(url: str, key: str, model: str, concurrency: int, *, duration: float | None = None,
             requests: int | None = None, path: str = "/chat/completions") -> Load:
    """The same client for both sides: POST .../chat/completions (GET for any other path), from 1 process
    (c=1) or 2 (else)."""
    processes = 1 if concurrency == 1 else 2
    spec = {"url": url + path, "key": key, "model": model, "concurrency": concurrency // processes,
            "duration": duration, "requests": requests // processes if requests else None,
            "get": path != "/chat/completions"}
    children = [subprocess.Popen([sys.executable, __file__, "--client-worker", json.dumps(spec)],
                                 stdout=subprocess.PIPE) for _ in range(processes)]
    samples: list[float] = []
    errors = done = 0
    elapsed = 0.0
    for child in children:
        out, _ = child.communicate()
        data = json.loads(out)
        samples += data["latencies"]
        errors += data["errors"]
        done += data["requests"]
        elapsed = max(elapsed, data["elapsed"])
    samples.sort()

    def pick(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))] if samples else float("nan")

    return Load(done / elapsed if elapsed else 0.0, pick(0.5), pick(0.99), done, errors)


async def _client_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = done = 0
    body = json.dumps({"model": spec["model"], **BODY}).encode()
    headers = {"Authorization": f"Bearer {spec['key']}", "Content-Type": "application/json"}
    budget = spec["requests"]
    deadline = time.perf_counter() + spec["duration"] if spec["duration"] else None
    keep = budget is None or budget <= 20_000  # long memory runs keep no samples
    started_all = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers) as session:

        async def loop() -> None:
            nonlocal errors, done, budget
            while True:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if budget is not None:
                    if budget <= 0:
                        return
                    budget -= 1
                started = time.perf_counter()
                try:
                    if spec["get"]:
                        async with session.get(spec["url"]) as response:
                            await response.read()
                            ok = response.status == 200
                    else:
                        async with session.post(spec["url"], data=body) as response:
                            payload = await response.read()
                            ok = response.status == 200 and b'"choices"' in payload
                except aiohttp.ClientError:
                    ok = False
                if keep:
                    latencies.append((time.perf_counter() - started) * 1000)
                done += 1
                errors += not ok

        await asyncio.gather(*(loop() for _ in range(spec["concurrency"])))
    return {"latencies": latencies, "errors": errors, "requests": done, "elapsed": time.perf_counter() - started_all}


# --------------------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    direct1, gateway1 = results["direct_c1"], results["gateway_c1"]
    direct64, gateway64 = results["direct_c64"], results["gateway_c64"]
    added = gateway1.p50_ms - direct1.p50_ms
    ratio = gateway64.rps / direct64.rps if direct64.rps else 0.0
    rounds: list[tuple[Load, Load]] = results["credit_rounds"]
    plain_rps = sum(plain.rps for plain, _ in rounds) / len(rounds)
    credited_rps = sum(credited.rps for _, credited in rounds) / len(rounds)
    credit_ratio = credited_rps / plain_rps if plain_rps else 0.0
    credit_errors = sum(plain.errors + credited.errors for plain, credited in rounds)
    rss = results["rss"]
    base = rss[0][1]
    drift = max(abs(mb - base) / base for _, mb in rss)

    def ok(passed: bool) -> str:
        return "yes" if passed else "**no**"

    floor1, floor64 = results["pass-through_c1"], results["pass-through_c64"]
    floor_label = f"pass-through proxy (aiohttp, no work, {results['workers']} process{'es' if results['workers'] > 1 else ''})"
    lines = [
        f"Loopback, {os.cpu_count()} CPUs, {results['processes']} ({results['database']}, API key auth, usage recording), "
        "load from 2 client processes at c=64 (1 at c=1).",
        "",
        "| measure | direct | through the gateway | result | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
        f"| latency c=1, median | {direct1.p50_ms:.2f} ms | {gateway1.p50_ms:.2f} ms | +{added:.2f} ms added "
        f"| <= {TARGET_ADDED_MS:.0f} ms | {ok(added <= TARGET_ADDED_MS)} |",
        f"| latency c=1, p99 | {direct1.p99_ms:.2f} ms | {gateway1.p99_ms:.2f} ms | "
        f"+{gateway1.p99_ms - direct1.p99_ms:.2f} ms | - | - |",
        f"| throughput c=64 | {direct64.rps:,.0f} req/s | {gateway64.rps:,.0f} req/s | {ratio:.0%} of direct "
        f"| >= {TARGET_RATIO:.0%} | {ok(ratio >= TARGET_RATIO)} |",
        f"| throughput c=64, a tenant with credits ({len(rounds)} rounds alternating with one without: "
        f"{plain_rps:,.0f} req/s) | - | {credited_rps:,.0f} req/s | {credit_ratio:.0%} of the tenant without "
        f"| >= {TARGET_CREDIT_RATIO:.0%} | {ok(credit_ratio >= TARGET_CREDIT_RATIO)} |",
        f"| same server's GET /healthz, c=64 (ceiling of the HTTP stack) | - | {results['healthz_c64'].rps:,.0f} req/s "
        f"| gateway = {gateway64.rps / results['healthz_c64'].rps:.0%} of it | - | - |",
        "| gateway RSS | - | " + " / ".join(f"{mb:.0f} MB ({label})" for label, mb in rss)
        + f" | {drift:+.1%} max drift | within +-{TARGET_RSS_DRIFT:.0%} | {ok(drift <= TARGET_RSS_DRIFT)} |",
        # The references: what a proxy doing no work of its own reaches here, and the gateway users compare with.
        f"| latency c=1, median, {floor_label} | {direct1.p50_ms:.2f} ms | {floor1.p50_ms:.2f} ms "
        f"| +{floor1.p50_ms - direct1.p50_ms:.2f} ms added | - | - |",
        f"| throughput c=64, {floor_label} | {direct64.rps:,.0f} req/s | {floor64.rps:,.0f} req/s "
        f"| {floor64.rps / direct64.rps:.0%} of direct | - | - |",
        f"| throughput c=64, the gateway against that floor | - | {gateway64.rps:,.0f} req/s "
        f"| gateway = {gateway64.rps / floor64.rps:.0%} of the pass-through | - | - |",
    ]
    litellm: LiteLLMProxy = results["litellm"]
    litellm_errors = ""
    if not litellm.skipped:
        lite1, lite64 = results["litellm_c1"], results["litellm_c64"]
        label = f"LiteLLM proxy {litellm.version} ({results['workers']} worker{'s' if results['workers'] > 1 else ''})"
        lines += [
            f"| latency c=1, median, {label} | {direct1.p50_ms:.2f} ms | {lite1.p50_ms:.2f} ms "
            f"| +{lite1.p50_ms - direct1.p50_ms:.2f} ms added | - | - |",
            f"| throughput c=64, {label} | {direct64.rps:,.0f} req/s | {lite64.rps:,.0f} req/s "
            f"| {lite64.rps / direct64.rps:.0%} of direct (gateway: {ratio:.0%}) | - | - |",
        ]
        litellm_errors = f", LiteLLM {lite1.errors + lite64.errors}"
    lines += [
        "",
        f"Errors: direct {direct1.errors + direct64.errors}, gateway {gateway1.errors + gateway64.errors + results['memory_errors']}"
        f", credit rounds {credit_errors}, pass-through {floor1.errors + floor64.errors}{litellm_errors}.",
    ]
    if litellm.skipped:
        lines.append(f"LiteLLM proxy not measured: {litellm.skipped}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput measurement")
    parser.add_argument("--requests", type=int, default=100_000, help="gateway requests for the memory check")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes (more than 1: a private Redis)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite",
                        help="the gateway's database (postgres: a throw-away database on the local server)")
    parser.add_argument("--litellm", default=os.environ.get("AGENTADAPTER_BENCH_LITELLM"), metavar="PATH",
                        help="the `litellm` executable of a separate venv, to measure the LiteLLM proxy too "
                             f"(default: $AGENTADAPTER_BENCH_LITELLM; make one with `{LITELLM_HOWTO}`)")
    parser.add_argument("--client-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        sys.stdout.write(json.dumps(asyncio.run(_client_worker(json.loads(args.client_worker)))))
        return
    duration = 2.0 if args.quick else args.duration
    latency_samples = 300 if args.quick else 2000
    total = 10_000 if args.quick else args.requests
    workdir = Path(tempfile.mkdtemp(prefix="aa-bench-gateway-"))
    results: dict[str, Any] = {}
    try:
        redis = private_redis(workdir) if args.workers > 1 else nullcontext(None)
        with (loopback_server() as provider_url, redis as redis_url, database_url(args.db) as database,
              passthrough_proxy(provider_url, args.workers) as floor_url):
            process, gateway_url, key, credits_key = start_gateway(workdir, provider_url, workers=args.workers,
                                                                   redis_url=redis_url, database=database)
            results["processes"] = ("one gateway process" if args.workers == 1
                                    else f"{args.workers} gateway processes on a private Redis")
            results["database"] = "SQLite" if args.db == "sqlite" else "PostgreSQL"
            results["workers"] = args.workers

            def measure(name: str, url: str, api_key: str, model: str, *, throughput: bool = True) -> None:
                run_load(url, api_key, model, 8, requests=1000)  # warm-up: connections, caches, imports
                results[f"{name}_c1"] = run_load(url, api_key, model, 1, requests=latency_samples)
                if throughput:
                    results[f"{name}_c64"] = run_load(url, api_key, model, 64, duration=duration)
                    print(f"{name:12} c=64 {results[f'{name}_c64'].rps:,.0f} req/s", file=sys.stderr)
                print(f"{name:12} c=1 p50 {results[f'{name}_c1'].p50_ms:.2f} ms p99 {results[f'{name}_c1'].p99_ms:.2f}"
                      " ms", file=sys.stderr)

            try:
                targets = (("direct", provider_url), ("pass-through", floor_url), ("gateway", gateway_url))
                for name, url in targets:
                    measure(name, url, key, MODEL, throughput=False)
                # Throughput in rounds, each target in turn: their ratios then hold however the machine's load drifts.
                rounds_c64: dict[str, list[Load]] = {name: [] for name, _ in targets}
                for _ in range(THROUGHPUT_ROUNDS):
                    for name, url in targets:
                        rounds_c64[name].append(run_load(url, key, MODEL, 64, duration=duration / 2))
                    print("c=64 " + ", ".join(f"{name} {loads[-1].rps:,.0f}" for name, loads in rounds_c64.items())
                          + " req/s", file=sys.stderr)
                for name, loads in rounds_c64.items():
                    results[f"{name}_c64"] = Load.mean(loads)
                # LiteLLM runs only for its own rows: its start-up (10 s of CPU) and whatever it does while idle
                # stay out of the other measurements.
                with litellm_proxy(args.litellm, provider_url, workdir, args.workers) as litellm:
                    if not litellm.skipped:
                        try:
                            measure("litellm", litellm.url, litellm.key, LITELLM_MODEL)
                        except Exception as exc:  # a reference row never fails the run
                            litellm.skipped = f"its measurement failed: {exc!r}"
                results["litellm"] = litellm
                if litellm.skipped:
                    print(f"LiteLLM proxy not measured: {litellm.skipped}", file=sys.stderr)
                # The same calls for a tenant with a credit balance (holds and charges on every call), in rounds
                # alternating with the tenant without, so that a machine whose load drifts weighs on both alike.
                run_load(gateway_url, credits_key, MODEL, 8, requests=1000)
                rounds: list[tuple[Load, Load]] = []
                for _ in range(CREDIT_ROUNDS):
                    rounds.append((run_load(gateway_url, key, MODEL, 64, duration=duration / 2),
                                   run_load(gateway_url, credits_key, MODEL, 64, duration=duration / 2)))
                    print(f"without credits {rounds[-1][0].rps:,.0f} req/s, with {rounds[-1][1].rps:,.0f} req/s",
                          file=sys.stderr)
                results["credit_rounds"] = rounds
                # The ceiling of the HTTP stack itself: the same server's /healthz (no auth, no provider call).
                results["healthz_c64"] = run_load(gateway_url.removesuffix("/v1"), key, MODEL, 64, duration=duration,
                                                  path="/healthz")
                served = 1000 + latency_samples + results["gateway_c64"].requests
                rss = [("after start-up and warm-up", rss_mb(process.pid))]
                errors = 0
                for checkpoint in (total // 2, total):
                    if checkpoint > served:
                        errors += run_load(gateway_url, key, MODEL, 64, requests=checkpoint - served).errors
                        served = checkpoint
                    time.sleep(1.0)
                    rss.append((f"after {checkpoint // 1000}k", rss_mb(process.pid)))
                    print(f"gateway RSS {rss[-1][1]:.0f} MB after {served:,} requests", file=sys.stderr)
                results["rss"] = rss
                results["memory_errors"] = errors
            finally:
                process.terminate()
                process.wait(20)
        print(report(results))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
