"""Tokens per second of a ``LocalAgent`` on the MLX runner, against calling ``mlx_lm.generate`` directly.

One tiny Llama-architecture model (random weights, a tokenizer trained on the spot; built in a
temporary directory, nothing downloaded) is loaded twice in this run: by ``mlx_lm.load`` for the
baseline and by the MLX runner for the agent. Every row generates the same greedy answer to the
same chat prompt (checked), so the difference is what AgentAdapter adds: the agent loop, the facade
and router, the hand-off to the model's own thread, the token sink, tool-call-free response
building, and for the streamed row the per-token hand-over to the event loop.

- baseline: ``mlx_lm.generate(model, tokenizer, prompt, max_tokens=N)`` on the chat-templated prompt.
- ``LocalAgent.run``: the whole agent turn, returning an ``AgentResult``.
- ``LocalAgent.run_stream``: the same, streamed as text-delta events.
- ``LLM.generate``: the facade alone (``local/mlx/<dir>``), without the agent loop.

    .venv/bin/python bench/local_runner.py [--runs 15] [--tokens 256] [--hidden 256] [--layers 4]

Target: the agent's tokens/s within 5 % of the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

from agentadapter.agents import LocalAgent, RunConfig
from agentadapter.llm.runners import unload_runners
from agentadapter.llm.runners.testing import build_tiny_model
from agentadapter.testing import offline_llm

TARGET_OVERHEAD = 0.05
PROMPT = "the quick brown fox jumps over the lazy dog"
INSTRUCTIONS = "You answer briefly."


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    """Seconds one call takes."""
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def run(runs: int, tokens: int, hidden: int, layers: int) -> None:
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    directory = Path(tempfile.mkdtemp(prefix="agentadapter-bench-")) / "tiny-llama"
    build_tiny_model(directory, hidden_size=hidden, layers=layers, intermediate_size=hidden * 2,
                     heads=4, kv_heads=2, vocab_size=320)
    model, tokenizer = mlx_lm.load(str(directory))
    chat = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": PROMPT}]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    greedy = make_sampler(0.0)

    def baseline_text() -> str:
        return str(mlx_lm.generate(model, tokenizer, prompt=prompt, max_tokens=tokens, sampler=greedy))

    async def baseline() -> Any:
        return baseline_text()

    llm = offline_llm()
    config = RunConfig(llm=llm)
    agent = LocalAgent(name="bench", model_id=str(directory), runner="mlx", instructions=INSTRUCTIONS,
                       generation_config={"max_new_tokens": tokens, "temperature": 0})
    model_id = agent.model_id

    async def agent_run() -> Any:
        return await agent.run(PROMPT, config)

    async def agent_stream() -> Any:
        return await agent.run_stream(PROMPT, config).collect()

    async def facade() -> Any:
        return await llm.generate(model_id, chat, max_tokens=tokens, temperature=0)

    # Sanity: every row generates the very same answer.
    result = await agent_run()
    expected = baseline_text()
    assert result.output == expected, (result.output, expected)
    assert (await agent_stream()).output == expected and (await facade()).text == expected
    generated = result.usage.output_tokens

    rows: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("mlx_lm.generate (baseline)", baseline),
        ("LocalAgent.run", agent_run),
        ("LocalAgent.run_stream", agent_stream),
        ("LLM.generate local/mlx/...", facade),
    ]
    # Interleaved rounds, so that drift (CPU frequency, other load) touches every row alike.
    samples: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(runs):
        for name, call in rows:
            samples[name].append(await timed(call))
    print(f"\nmodel: Llama, hidden {hidden}, {layers} layers, vocab 320 (random weights), MLX on "
          f"{'Metal' if _metal() else 'CPU'}; {generated} tokens per call; median of {runs} runs each\n")
    print(f"| {'row':<27} | {'median ms':>9} | {'tokens/s':>8} | {'vs baseline':>11} | {'overhead':>8} | target |")
    print(f"|{'-' * 29}|{'-' * 10}:|{'-' * 9}:|{'-' * 12}:|{'-' * 9}:|:------:|")
    base_rate = generated / statistics.median(samples[rows[0][0]])
    for name, _ in rows:
        median = statistics.median(samples[name])
        rate = generated / median
        overhead = 1 - rate / base_rate
        verdict = "" if name == rows[0][0] else ("ok" if overhead <= TARGET_OVERHEAD else "over")
        print(f"| {name:<27} | {median * 1000:9.1f} | {rate:8.0f} | {rate / base_rate:11.3f} | "
              f"{overhead * 100:7.1f}% | {verdict:^6} |")
    print(f"\ntarget: tokens/s within {TARGET_OVERHEAD:.0%} of the baseline")
    await unload_runners()


def _metal() -> bool:
    import mlx.core as mx

    return bool(mx.metal.is_available())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=256, help="tokens generated per call")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the tiny model")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args.runs, args.tokens, args.hidden, args.layers))


if __name__ == "__main__":
    main()
