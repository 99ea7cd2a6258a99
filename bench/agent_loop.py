"""What the agent loop costs per turn, against bare ``LLM.generate`` calls doing the same turns.

Everything runs on the offline test backend (``test/tools``: with tools it first calls every tool,
then answers from the results), so there is no network and the difference is the loop itself:
building the request from the agent, running the tool calls, recording results, usage and cost,
events and spans. Each row is measured in this run against its own baseline, which does the same
model calls with ``LLM.generate`` and calls the same tool function directly:

- 1 turn: a plain answer (``test/echo``), ``agent.run`` vs one ``generate``.
- 2 turns: an async tool call then the answer, ``agent.run`` vs two ``generate`` calls plus the tool.
- 2 turns, sync tool: the same with a plain ``def`` tool, which the agent runs in a worker thread.
- 2 turns, streamed: ``agent.run_stream`` vs two ``llm.stream`` calls.
- 2 turns, tracing on: ``agent.run`` with a span collector registered.

    .venv/bin/python bench/agent_loop.py [--runs 2000]

Target: at most 200 µs of loop overhead per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentadapter.agents import LLMAgent, RunConfig, tool, tracing
from agentadapter.llm.messages import Message
from agentadapter.testing import offline_llm

TARGET_US = 200.0


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    return key.upper()


@tool
def lookup_sync(key: str) -> str:
    """Look a key up (a plain function: the agent runs it in a worker thread)."""
    return key.upper()


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> float:
    """Median microseconds per call, after a warm-up."""
    for _ in range(min(200, runs)):
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
    instructions = "You answer with the tools."

    echo_agent = LLMAgent("echo", model="test/echo", instructions=instructions)
    tool_agent = LLMAgent("tools", model="test/tools", instructions=instructions, tools=[lookup])
    sync_agent = LLMAgent("tools", model="test/tools", instructions=instructions, tools=[lookup_sync])

    async def bare_one_turn() -> Any:
        return await llm.generate("test/echo", [Message.system(instructions), Message.user("hello")])

    async def bare_two_turns(tool_function: Callable[..., Any] = lookup.function) -> Any:
        messages = [Message.system(instructions), Message.user("hello")]
        first = await llm.generate("test/tools", messages, tools=[lookup])
        messages.append(first.message)
        results = []
        for call in first.tool_calls:
            value = tool_function(**call.arguments)
            if asyncio.iscoroutine(value):
                value = await value
            results.append(Message.tool(call.id, call.name, value))
        messages.extend(results)
        return await llm.generate("test/tools", messages, tools=[lookup])

    async def bare_two_turns_sync() -> Any:
        return await bare_two_turns(lookup_sync.function)

    async def bare_two_turns_streamed() -> Any:
        messages = [Message.system(instructions), Message.user("hello")]
        stream = llm.stream("test/tools", messages, tools=[lookup])
        first = await stream.collect()
        messages.append(first.message)
        for call in first.tool_calls:
            messages.append(Message.tool(call.id, call.name, await lookup.function(**call.arguments)))
        return await llm.stream("test/tools", messages, tools=[lookup]).collect()

    async def agent_one_turn() -> Any:
        return await echo_agent.run("hello", config)

    async def agent_two_turns() -> Any:
        return await tool_agent.run("hello", config)

    async def agent_two_turns_sync() -> Any:
        return await sync_agent.run("hello", config)

    async def agent_two_turns_streamed() -> Any:
        return await tool_agent.run_stream("hello", config).collect()

    collector = tracing.SpanCollector()

    async def agent_two_turns_traced() -> Any:
        tracing.set_trace_processors([collector])
        try:
            return await tool_agent.run("hello", config)
        finally:
            tracing.set_trace_processors([])
            collector.clear()

    # Sanity: the agent and its baseline do the same turns.
    assert (await agent_two_turns()).turns == 2 and (await agent_one_turn()).turns == 1

    rows = [
        ("1 turn, plain answer", 1, bare_one_turn, agent_one_turn),
        ("2 turns, async tool", 2, bare_two_turns, agent_two_turns),
        ("2 turns, sync tool (thread)", 2, bare_two_turns_sync, agent_two_turns_sync),
        ("2 turns, streamed", 2, bare_two_turns_streamed, agent_two_turns_streamed),
        ("2 turns, tracing on", 2, bare_two_turns, agent_two_turns_traced),
    ]
    print(f"\nmedian of {runs} runs each; offline test backend, no network\n")
    print(f"| {'scenario':<28} | {'bare LLM µs':>11} | {'agent µs':>9} | {'ratio':>5} | {'extra µs/turn':>13} | target |")
    print(f"|{'-' * 30}|{'-' * 12}:|{'-' * 10}:|{'-' * 6}:|{'-' * 14}:|:------:|")
    for name, turns, bare, agent in rows:
        bare_us = await timed(bare, runs)
        agent_us = await timed(agent, runs)
        extra = (agent_us - bare_us) / turns
        verdict = "ok" if extra <= TARGET_US else "over"
        print(f"| {name:<28} | {bare_us:11.0f} | {agent_us:9.0f} | {agent_us / bare_us:5.2f} | {extra:13.0f} | {verdict:^6} |")
    print(f"\ntarget: <= {TARGET_US:.0f} µs of loop overhead per turn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.runs))


if __name__ == "__main__":
    main()
