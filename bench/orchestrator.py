"""What the orchestrator costs per agent step, against calling the same agents directly.

Everything runs on the offline test backend (``test/echo``), so the difference is the orchestrator
itself: the run's protocol, limits checks, the step span and metrics, streaming each agent to turn
its tokens into run events, the event log, records, and collecting the run's bus messages. Each row
is measured in this run against its own baseline, which runs the same agents on the same inputs
with ``agent.run`` (no streaming, no events, no records):

- sequential, 10 agents: ``Orchestrator.run`` vs a loop of ``agent.run`` passing each output on
  with the conversation so far;
- the same with an in-memory recorder and an event listener attached;
- the same with a span collector registered (tracing on);
- parallel (concat), 10 agents: vs ``asyncio.gather`` of ``agent.run``;
- a fan-out of 1,000 agents (parallel, concat): vs ``asyncio.gather`` of 1,000 ``agent.run``.

    .venv/bin/python bench/orchestrator.py [--runs 200]

Target: at most 500 µs of orchestration per agent step (the seeds budget 10-50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentadapter.agents import LLMAgent, RunConfig, tracing
from agentadapter.llm.messages import Message, TextPart
from agentadapter.orchestrator import InMemoryRunRecorder, Orchestrator, Parallel
from agentadapter.testing import offline_llm

TARGET_US = 500.0
SEED_BUDGET_US = 10_000.0


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> float:
    """Median microseconds per call, after a warm-up."""
    for _ in range(max(3, runs // 10)):
        await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


async def run(runs: int) -> None:
    llm = offline_llm()
    config = RunConfig(llm=llm)
    team = [LLMAgent(f"agent{i}", model="test/echo", instructions="Pass it on.") for i in range(10)]
    crowd = [LLMAgent(f"member{i}", model="test/echo", instructions="Answer.") for i in range(1000)]
    plain = Orchestrator(llm=llm)
    recorded = Orchestrator(llm=llm, recorder=InMemoryRunRecorder())
    task = "What is the tide doing?"

    async def direct_sequential() -> Any:
        transcript = [Message.user(task)]
        for agent in team:
            result = await agent.run(transcript[-1], config, history=transcript[:-1])
            transcript.append(Message("user", [TextPart(result.text)], name=agent.name))
        return transcript[-1]

    async def orchestrated_sequential() -> Any:
        return await plain.run(task, team)

    async def orchestrated_recorded() -> Any:
        seen: list[Any] = []
        return await recorded.run(task, team, on_event=seen.append)

    collector = tracing.SpanCollector()

    async def orchestrated_traced() -> Any:
        tracing.set_trace_processors([collector])
        try:
            return await plain.run(task, team)
        finally:
            tracing.set_trace_processors([])
            collector.clear()

    async def direct_parallel() -> Any:
        return await asyncio.gather(*(agent.run(task, config) for agent in team))

    async def orchestrated_parallel() -> Any:
        return await plain.run(task, team, Parallel())

    async def direct_fan_out() -> Any:
        return await asyncio.gather(*(agent.run(task, config) for agent in crowd))

    async def orchestrated_fan_out() -> Any:
        return await plain.run(task, crowd, Parallel())

    # Sanity: both sides do the same steps and the runs complete.
    check = await orchestrated_sequential()
    assert check.status == "completed" and check.steps == 10 and check.output == (await direct_sequential()).text
    assert (await orchestrated_fan_out()).steps == 1000

    rows = [
        ("sequential, 10 agents", 10, runs, direct_sequential, orchestrated_sequential),
        ("  + recorder and listener", 10, runs, direct_sequential, orchestrated_recorded),
        ("  + tracing on", 10, runs, direct_sequential, orchestrated_traced),
        ("parallel concat, 10 agents", 10, runs, direct_parallel, orchestrated_parallel),
        ("fan-out, 1,000 agents", 1000, max(5, runs // 40), direct_fan_out, orchestrated_fan_out),
    ]
    print(f"\nmedians; offline test backend (test/echo), no network; {runs} runs per row (fan-out: fewer)\n")
    print(f"| {'scenario':<27} | {'steps':>5} | {'direct ms':>9} | {'orchestrated ms':>15} | {'ratio':>5} "
          f"| {'extra µs/step':>13} | target |")
    print(f"|{'-' * 29}|{'-' * 6}:|{'-' * 10}:|{'-' * 16}:|{'-' * 6}:|{'-' * 14}:|:------:|")
    for name, steps, count, direct, orchestrated in rows:
        direct_us = await timed(direct, count)
        orchestrated_us = await timed(orchestrated, count)
        extra = (orchestrated_us - direct_us) / steps
        verdict = "ok" if extra <= TARGET_US else "over"
        print(f"| {name:<27} | {steps:5d} | {direct_us / 1000:9.2f} | {orchestrated_us / 1000:15.2f} "
              f"| {orchestrated_us / direct_us:5.2f} | {extra:13.0f} | {verdict:^6} |")
    print(f"\ntarget: <= {TARGET_US:.0f} µs of orchestration per agent step "
          f"(the seeds budget {SEED_BUDGET_US / 1000:.0f}-50 ms per agent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.runs))


if __name__ == "__main__":
    main()
