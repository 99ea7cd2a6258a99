"""Deadlines under stalls: how long a call takes to give up over N stalling targets, against its deadline.

A loopback server whose targets never answer: half of them accept the request and send nothing,
the other half send ``200`` and stream headers, then nothing. A failover route over N of them is
called with ``timeout=T`` (the call's deadline), for ``generate`` and ``stream``, on both
transports, in two set-ups: the backends' default per-try limit (600 s, so the first target uses the
whole deadline and the others must not be called), and a per-try ``timeout:`` of ``1.5 * T / N``
(so several targets are tried, the last with what is left of the deadline). Printed per row: the
worst time to give up over the repetitions, its ratio to the deadline (1.00 is ideal), and how many
targets were tried. A call still waiting at ``--cap`` times its deadline is abandoned and shown as
``> cap``: that is a deadline that did not hold.

    .venv/bin/python bench/deadlines.py [--targets 1 2 4] [--timeouts 1 2 4] [--repeat 3] [--cap 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiohttp import web

from agentadapter import LLM
from agentadapter.llm.errors import AgentAdapterError, AllTargetsFailedError


async def start_stalling_server() -> tuple[web.AppRunner, str, asyncio.Event]:
    """``/silent/..`` never answers; ``/headers/..`` answers 200 with stream headers, then nothing."""
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        await request.read()
        await release.wait()
        return web.Response(status=503)

    async def headers(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await release.wait()
        return response

    app = web.Application()
    app.router.add_post("/silent/{tail:.*}", silent)
    app.router.add_post("/headers/{tail:.*}", headers)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}", release


def route_llm(base: str, transport: str, targets: int, per_try: float | None) -> LLM:
    backends: dict[str, Any] = {}
    for index in range(targets):
        kind = "silent" if index % 2 == 0 else "headers"
        spec: dict[str, Any] = {"type": "custom", "base_url": f"{base}/{kind}/v1"}
        if per_try is not None:
            spec.update(timeout=per_try, max_retries=0)
        backends[f"t{index}"] = spec
    config = {"backends": backends,
              "models": {"route": {"strategy": "failover", "targets": [f"{name}/m" for name in backends]}}}
    return LLM(config=config, environ={}, transport=transport)


async def give_up_time(llm: LLM, mode: str, deadline: float, cap: float) -> tuple[float | None, int]:
    """Seconds until the call raised (None when still waiting at ``cap``), and the targets tried."""

    async def call() -> None:
        if mode == "generate":
            await llm.generate("route", "hi", timeout=deadline)
        else:
            await llm.stream("route", "hi", timeout=deadline).collect()

    began = time.monotonic()
    try:
        await asyncio.wait_for(call(), cap)
    except TimeoutError:
        return None, 0
    except AgentAdapterError as error:
        attempts = error.attempts if isinstance(error, AllTargetsFailedError) else [None]
        tried = sum(1 for a in attempts if a is None or "could be tried" not in (a.error or ""))
        return time.monotonic() - began, tried
    raise SystemExit("a stalling route answered: the server is not stalling")


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    runner, base, release = await start_stalling_server()
    rows: list[dict[str, Any]] = []
    try:
        for transport in ("aiohttp", "httpx"):
            scenarios = [(mode, setup, n, t) for mode in ("generate", "stream") for setup in ("default", "per-try")
                         for n in args.targets for t in args.timeouts]
            llms = {key: route_llm(base, transport, key[2], 1.5 * key[3] / key[2] if key[1] == "per-try" else None)
                    for key in scenarios}
            for llm in llms.values():
                # The first use of a transport builds its pooled client (and TLS context), blocking the
                # loop for a few ms per LLM: done before timing, as a long-running process has done it.
                llm.transport.client()
            # Every scenario runs at once (stalls cost no CPU), each repeated in turn.
            results: dict[tuple[str, str, int, float], list[tuple[float | None, int]]] = {k: [] for k in scenarios}
            for _ in range(args.repeat):
                outcomes = await asyncio.gather(
                    *(give_up_time(llms[key], key[0], key[3], key[3] * args.cap) for key in scenarios)
                )
                for key, outcome in zip(scenarios, outcomes, strict=True):
                    results[key].append(outcome)
            for llm in llms.values():
                await llm.aclose()
            for (mode, setup, n, t), samples in results.items():
                times = [s[0] for s in samples]
                worst = None if any(x is None for x in times) else max(x for x in times if x is not None)
                rows.append({"transport": transport, "mode": mode, "setup": setup, "targets": n, "deadline": t,
                             "worst": worst, "tried": max(s[1] for s in samples)})
    finally:
        release.set()
        await runner.cleanup()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--timeouts", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cap", type=float, default=3.0, help="abandon a call at this many times its deadline")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    print(f"\nGiving up over N stalling targets (worst of {args.repeat}); per-try = a backend timeout: of 1.5*T/N\n")
    print("| transport | mode     | per-try limit | N targets | deadline T s | gave up after s | elapsed / T | tried |")
    print("|-----------|----------|---------------|----------:|-------------:|----------------:|------------:|------:|")
    for row in rows:
        worst = row["worst"]
        elapsed = f"> {row['deadline'] * args.cap:.0f}" if worst is None else f"{worst:.3f}"
        ratio = f"> {args.cap:.2f}" if worst is None else f"{worst / row['deadline']:.3f}"
        print(f"| {row['transport']:<9} | {row['mode']:<8} | {row['setup']:<13} | {row['targets']:9d} | "
              f"{row['deadline']:12g} | {elapsed:>15} | {ratio:>11} | {row['tried']:5d} |")
    held = [r for r in rows if r["worst"] is not None]
    if held:
        worst = max(held, key=lambda r: r["worst"] / r["deadline"])
        print(f"\nworst ratio: {worst['worst'] / worst['deadline']:.3f} ({worst['transport']}, {worst['mode']}, "
              f"{worst['setup']}, N={worst['targets']}, T={worst['deadline']:g} s); "
              f"{len(rows) - len(held)} of {len(rows)} rows never gave up within {args.cap:g} x T")


if __name__ == "__main__":
    main()
