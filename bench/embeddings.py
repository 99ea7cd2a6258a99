"""What ``LLM.embed`` costs over the thing it wraps: a local model, and an embeddings endpoint.

1. The local model (all-MiniLM-L6-v2, shipped by the ``embed`` extra; nothing downloaded): the same
   1,000 sentences of mixed length embedded by sentence-transformers called directly
   (``model.encode(sentences, batch_size=64)``) and through ``LLM.embed("local/embed/default", ...)``,
   which runs the same model on its own thread, 64 texts a forward pass. Runs alternate between the
   two, so both see the same machine; the vectors are checked equal. A third row sends the call in
   requests of 64 texts (``max_inputs: 64``) to show what cutting before sentence-transformers sorts
   by length costs. Target: ``LLM.embed`` within 5 % of the direct call.
2. An online fake (bench/_loopback.py's ``/v1/embeddings``, in its own process): one text per call,
   through a bare aiohttp POST + JSON decode (the floor) and through ``LLM.embed`` on an OpenAI-compatible
   backend. Target: at most 100 µs a call over the floor, as for chat.

    .venv/bin/python bench/embeddings.py [--runs 5] [--sentences 1000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))
from _loopback import loopback_server
from agentadapter import LLM

LOCAL_TARGET = 0.05
ONLINE_TARGET_US = 100.0
BATCH = 64

_SUBJECTS = ["The tide", "A small cat", "Quarterly revenue", "The night train", "Our new policy", "The river",
             "A research team", "The city council", "This recipe", "The old lighthouse", "Every sensor",
             "The search index", "A late frost", "The museum", "Her first novel", "The power grid"]
_VERBS = ["rises", "sleeps", "grew", "leaves", "changes", "floods", "found", "voted", "needs", "guides",
          "reports", "ranks", "damaged", "reopened", "describes", "balances"]
_TAILS = ["twice a day", "on the warm windowsill", "by twelve percent over the year", "at nine from platform four",
          "how refunds are handled for customers who cancel within thirty days of purchase",
          "after three days of rain in the hills above the valley", "a faster way to fold proteins",
          "to widen the cycle lanes along the main avenue before the summer festival begins",
          "two eggs, flour, and a pinch of salt", "ships along the rocky coast through fog and storms",
          "temperature and humidity every minute", "documents by how well they match a query",
          "the young vines in the southern slopes", "its east wing after a long renovation",
          "a family that moves across the country in the nineteen fifties and the friendships it leaves behind",
          "supply and demand across the whole region during the evening peak"]


def sentences(count: int, seed: int = 7) -> list[str]:
    """``count`` plausible sentences of mixed length (a few words to a few dozen), the same every run."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)}."
        if rng.random() < 0.3:
            text += f" {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)}."
        made.append(text)
    return made


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------ local model


async def local_rows(texts: list[str], runs: int) -> None:
    import numpy
    from sentence_transformers import SentenceTransformer

    from agentadapter.llm.backends.local_embed import resolve_embedding_model, unload_embedding_models

    path = resolve_embedding_model("default")
    direct = SentenceTransformer(path, device="cpu", local_files_only=True)
    llm = LLM(config={"backends": {"local64": {"type": "local_embed", "device": "cpu", "max_inputs": BATCH}}},
              environ={})

    async def baseline() -> Any:
        # The direct call, on a thread as a server would run it (the event loop stays free).
        return await asyncio.to_thread(direct.encode, texts, batch_size=BATCH, show_progress_bar=False)

    async def via_llm() -> Any:
        return await llm.embed("local/embed/default", texts)

    async def via_llm_64() -> Any:
        return await llm.embed("local64/default", texts)

    # Warm-up: load both models, and check they answer the same vectors.
    reference = await baseline()
    response = await via_llm()
    difference = float(numpy.abs(numpy.asarray(response.vectors) - reference).max())
    assert difference < 1e-4, f"LLM.embed's vectors differ from sentence-transformers' by {difference}"
    await via_llm_64()

    rows: dict[str, list[float]] = {"sentence-transformers encode (floor)": [], "LLM.embed local/embed/default": [],
                                    "LLM.embed in requests of 64": []}
    calls = list(zip(rows, (baseline, via_llm, via_llm_64), strict=True))
    for run in range(runs):
        for name, call in calls if run % 2 == 0 else list(reversed(calls)):
            rows[name].append(await timed(call))
    await llm.aclose()
    unload_embedding_models()

    floor = statistics.median(rows["sentence-transformers encode (floor)"])
    print(f"\nLocal model: {len(texts)} sentences, {BATCH} a forward pass, all-MiniLM-L6-v2 on CPU "
          f"(median of {runs} runs; vectors equal to {difference:.1e})\n")
    print(f"| {'path':<38} | {'median s':>8} | {'sentences/s':>11} | {'overhead':>8} |")
    print(f"|{'-' * 40}|{'-' * 9}:|{'-' * 12}:|{'-' * 9}:|")
    for name, samples in rows.items():
        median = statistics.median(samples)
        print(f"| {name:<38} | {median:8.2f} | {len(texts) / median:11.0f} | {(median / floor - 1) * 100:7.1f}% |")
    overhead = statistics.median(rows["LLM.embed local/embed/default"]) / floor - 1
    verdict = "met" if overhead <= LOCAL_TARGET else "NOT met"
    print(f"\ntarget: LLM.embed within {LOCAL_TARGET:.0%} of the direct call: {verdict} ({overhead:+.1%})")


# ---------------------------------------------------------------------------------------- online


async def online_rows(base_url: str, calls: int) -> None:
    import aiohttp

    url = f"{base_url}/embeddings"
    payload = json.dumps({"model": "bench-embed", "input": ["Hello there"]}).encode()
    headers = {"content-type": "application/json"}
    session = aiohttp.ClientSession()
    llm = LLM(config={"backends": {"bench": {"type": "custom", "base_url": base_url}}}, transport="aiohttp",
              environ={})

    async def bare() -> Any:
        async with session.post(url, data=payload, headers=headers) as response:
            return json.loads(await response.read())

    async def via_llm() -> Any:
        return await llm.embed("bench/bench-embed", ["Hello there"])

    rows: dict[str, list[float]] = {"bare aiohttp POST + JSON (floor)": [], "LLM.embed bench/bench-embed": []}
    for name, call in zip(rows, (bare, via_llm), strict=True):
        for _ in range(100):  # warm the pool and the code paths
            await call()
        for _ in range(calls):
            rows[name].append(await timed(call) * 1e6)
    await session.close()
    await llm.aclose()

    floor = statistics.median(rows["bare aiohttp POST + JSON (floor)"])
    print(f"\nOnline fake: {calls} sequential calls of one text each (a 256-dimension vector back)\n")
    print(f"| {'path':<34} | {'median µs':>9} | {'p99 µs':>8} | {'overhead µs':>11} |")
    print(f"|{'-' * 36}|{'-' * 11}:|{'-' * 9}:|{'-' * 12}:|")
    for name, samples in rows.items():
        median = statistics.median(samples)
        print(f"| {name:<34} | {median:9.0f} | {percentile(samples, 0.99):8.0f} | {median - floor:11.0f} |")
    overhead = statistics.median(rows["LLM.embed bench/bench-embed"]) - floor
    verdict = "met" if overhead <= ONLINE_TARGET_US else "NOT met"
    print(f"\ntarget: at most {ONLINE_TARGET_US:.0f} µs a call over the floor: {verdict} ({overhead:.0f} µs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--skip-local", action="store_true", help="only the online fake")
    args = parser.parse_args()
    if not args.skip_local:
        asyncio.run(local_rows(sentences(args.sentences), args.runs))
    with loopback_server() as base_url:
        asyncio.run(online_rows(base_url, args.calls))


if __name__ == "__main__":
    main()
