"""The experiment runner's own overhead per case, next to calling the agent directly in the same run.

1,000 cases against an agent on ``test/echo`` with concurrency 32. The baseline runs the agent on every
case itself (32 workers calling ``agent.run`` with the same ``RunConfig``); the runner runs the same
cases through :func:`agentadapter.evals.run_experiment`, with no evaluator and with two (``contains`` and
``exact``, as a dataset usually has). Rounds alternate baseline and runner so drift hits both; the
table shows the median of the rounds, the ratio to the baseline, and the overhead per case
(``(runner - baseline) / cases``; target <= 1 ms).

    .venv/bin/python bench/evaluation.py [--cases 1000] [--concurrency 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.run_config import RunConfig
from agentadapter.evals import AgentSubject, Dataset, run_experiment
from agentadapter.testing import offline_llm


async def direct(agent: LLMAgent, inputs: list[str], concurrency: int, config: RunConfig) -> float:
    """The least a caller can do: ``concurrency`` workers taking the next input from one iterator."""
    pending = iter(inputs)

    async def worker() -> None:
        for text in pending:
            await agent.run(text, config)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def through_runner(subject: AgentSubject, dataset: Dataset, concurrency: int, evaluators: list[str],
                         llm: object) -> float:
    started = time.perf_counter()
    result = await run_experiment(dataset, [subject], evaluators=evaluators, llm=llm, concurrency=concurrency)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert len(result.results) == len(dataset.cases) and not any(r.error for r in result.results)
    return elapsed


async def main(cases: int, concurrency: int, rounds: int) -> None:
    llm = offline_llm()
    agent = LLMAgent("echo", model="test/echo")
    inputs = [f"case number {i}: repeat this sentence back" for i in range(cases)]
    dataset = Dataset.of("bench", [{"input": text, "expected": text} for text in inputs])
    subject = AgentSubject(agent)
    config = RunConfig(llm=llm, tracing=False)
    await direct(agent, inputs[:64], concurrency, config)  # warm up imports and pools
    times: dict[str, list[float]] = {"direct agent.run": [], "runner, no evaluator": [], "runner, 2 evaluators": []}
    for _ in range(rounds):
        times["direct agent.run"].append(await direct(agent, inputs, concurrency, config))
        times["runner, no evaluator"].append(await through_runner(subject, dataset, concurrency, [], llm))
        times["runner, 2 evaluators"].append(
            await through_runner(subject, dataset, concurrency, ["contains", "exact"], llm))
    await llm.aclose()
    base = statistics.median(times["direct agent.run"])
    print(f"{cases} cases on test/echo, concurrency {concurrency}, median of {rounds} rounds")
    print(f"{'path':<24}{'total ms':>10}{'per case ms':>13}{'ratio':>8}{'overhead/case ms':>18}")
    for name, samples in times.items():
        total = statistics.median(samples)
        overhead = (total - base) / cases * 1000
        print(f"{name:<24}{total * 1000:>10.1f}{total / cases * 1000:>13.3f}{total / base:>8.2f}"
              f"{overhead if name != 'direct agent.run' else 0.0:>18.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.concurrency, args.rounds))
