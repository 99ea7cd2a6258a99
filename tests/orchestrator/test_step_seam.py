"""The step-execution seam: one engine runs each step inline, hands it to a queue, or replays it from records.

The same workflows (sequential, parallel, adaptive, loop on ``test/echo``) run three ways and give
the same run: inline; through a queue-backed ``StepExecutor`` whose worker executes each step with
``StepRun`` (requests and outcomes cross the queue as JSON); and driven by ``replay`` over recorded
outcomes, executing the steps each replay says the run waits on. Replays are deterministic, say
explicitly which steps block the run (a parallel group's ``max_concurrency`` included), and build no
agent: agents are built once per executed step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from agentadapter.agents import BaseAgent, LLMAgent
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Message
from agentadapter.orchestrator import (
    END,
    Adaptive,
    Loop,
    Orchestrator,
    Parallel,
    Route,
    RunLimits,
    RunOptions,
    RunResult,
    Sequential,
    StepOutcome,
    StepRequest,
    StepRun,
    Strategy,
    replay,
)
from agentadapter.testing import offline_llm
from orchestrator.conftest import Gate, Models, agent

TASK = "Why do tides turn?"


def team(*names: str) -> Callable[[], dict[str, BaseAgent]]:
    """A builder of fresh echo agents (as a worker builds a run's agents for each step it executes)."""
    def build() -> dict[str, BaseAgent]:
        return {n: LLMAgent(n, model="test/echo", instructions=f"You are {n}.") for n in names}

    return build


CASES: dict[str, tuple[Strategy, tuple[str, ...]]] = {
    "sequential": (Sequential(), ("researcher", "writer", "editor")),
    "parallel concat": (Parallel(aggregate="concat"), ("a", "b", "c")),
    "parallel judge": (Parallel(aggregate="judge", judge="judge"), ("a", "b", "judge")),
    "parallel, two at a time": (Parallel(aggregate="concat", max_concurrency=2), ("a", "b", "c", "d")),
    "adaptive": (Adaptive(routes=(Route("triage", "fixer"), Route("fixer", "reviewer"), Route("reviewer", END))),
                 ("triage", "fixer", "reviewer")),
    "loop": (Loop("drafter", "critic", max_iterations=3, until="iteration >= 2"), ("drafter", "critic")),
}


def shape(result: RunResult) -> dict[str, Any]:
    """What a run decided and recorded, without ids and times."""
    return {
        "status": result.status, "output": result.output, "text": result.text, "error": result.error,
        "details": result.details, "usage": result.usage.to_dict(), "cost_usd": result.cost_usd,
        "steps": [(a.name, a.step, a.phase, a.status, a.output, a.text, a.usage.to_dict(), a.cost_usd, a.model)
                  for a in result.agents],
    }


def over_the_wire(data: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(data)))


class QueuedSteps:
    """A queue-backed step executor: ``run_step`` queues the request and waits for its outcome; a worker
    task takes requests off the queue, builds the run's agents and executes the step with ``StepRun``."""

    def __init__(self, llm: LLM, build: Callable[[], dict[str, BaseAgent]], strategy: Strategy,
                 options: RunOptions) -> None:
        self.llm, self.build, self.strategy, self.options = llm, build, strategy, options
        self.queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = asyncio.Queue()
        self.builds = 0
        self.worker = asyncio.get_running_loop().create_task(self.work())

    async def run_step(self, request: StepRequest) -> StepOutcome:
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self.queue.put((over_the_wire(request.to_dict()), answer))
        return StepOutcome.from_dict(await answer)

    async def work(self) -> None:
        while True:
            data, answer = await self.queue.get()
            self.builds += 1
            step = StepRun(StepRequest.from_dict(data), run_id=str(self.options.run_id), task=TASK,
                           agents=self.build(), strategy=self.strategy, options=self.options, llm=self.llm)
            answer.set_result(over_the_wire((await step.execute()).to_dict()))

    async def stop(self) -> None:
        self.worker.cancel()
        await asyncio.gather(self.worker, return_exceptions=True)


async def drive(llm: LLM, build: Callable[[], dict[str, BaseAgent]], names: tuple[str, ...], strategy: Strategy,
                options: RunOptions) -> tuple[RunResult, list[list[str]], int]:
    """Run by replaying: execute the steps each replay waits on, record their outcomes (as JSON), replay again.

    Returns the final result, the keys each replay waited on, and how many times agents were built."""
    recorded: dict[str, StepOutcome] = {}
    rounds: list[list[str]] = []
    builds = 0
    while True:
        outcome = await replay(run_id=str(options.run_id), task=TASK, agents=names, strategy=strategy,
                               recorded=recorded, options=options)
        if outcome.finished:
            assert not outcome.waiting
            return outcome.result, rounds, builds
        assert outcome.waiting, "a replay that has not finished names the steps it waits on"
        rounds.append([r.key for r in outcome.waiting])
        for request in outcome.waiting:
            builds += 1
            step = StepRun(StepRequest.from_dict(over_the_wire(request.to_dict())), run_id=str(options.run_id),
                           task=TASK, agents=build(), strategy=strategy, options=options, llm=llm)
            recorded[request.key] = StepOutcome.from_dict(over_the_wire((await step.execute()).to_dict()))


@pytest.mark.parametrize("case", list(CASES))
async def test_inline_queued_and_replayed_runs_give_the_same_result(case: str) -> None:
    strategy, names = CASES[case]
    build = team(*names)
    llm = offline_llm()
    try:
        inline = await Orchestrator(llm=llm).run(TASK, build(), strategy, options=RunOptions(run_id="inline"))
        assert inline.status == "completed", inline.error

        options = RunOptions(run_id="queued")
        queued_steps = QueuedSteps(llm, build, strategy, options)
        try:
            queued = await Orchestrator(llm=llm, step_executor=queued_steps).run(TASK, build(), strategy,
                                                                                 options=options)
        finally:
            await queued_steps.stop()

        replayed, rounds, builds = await drive(llm, build, names, strategy, RunOptions(run_id="replayed"))
    finally:
        await llm.aclose()
    assert shape(queued) == shape(inline)
    assert shape(replayed) == shape(inline)
    # Agents are built once per executed step, never to replay.
    assert queued_steps.builds == builds == len(inline.agents)
    assert sum(len(keys) for keys in rounds) == len(inline.agents)


async def test_replays_wait_on_exactly_the_steps_that_can_run_next() -> None:
    llm = offline_llm()
    try:
        sequential = await drive(llm, team("a", "b", "c"), ("a", "b", "c"), Sequential(), RunOptions(run_id="s"))
        parallel = await drive(llm, team("a", "b", "c", "d", "e"), ("a", "b", "c", "d", "e"),
                               Parallel(max_concurrency=2), RunOptions(run_id="p"))
        fan_out = await drive(llm, team(*(f"m{i}" for i in range(50))), tuple(f"m{i}" for i in range(50)),
                              Parallel(), RunOptions(run_id="f"))
    finally:
        await llm.aclose()
    assert sequential[1] == [["1:run:a"], ["2:run:b"], ["3:run:c"]]
    # A step without an outcome keeps its slot, as a running one would: two at a time, in group order.
    assert parallel[1] == [["1:run:a", "2:run:b"], ["3:run:c", "4:run:d"], ["5:run:e"]]
    assert len(fan_out[1]) == 1 and len(fan_out[1][0]) == 50


async def test_a_replay_is_deterministic_and_records_stay_as_recorded() -> None:
    names = ("a", "b", "c")
    llm = offline_llm()
    try:
        outcome = await StepRun(StepRequest("a", 1, input=TASK), run_id="d", task=TASK, agents=team(*names)(),
                                strategy="parallel", llm=llm).execute()
    finally:
        await llm.aclose()
    recorded = {"1:run:a": outcome}
    first = await replay(run_id="d", task=TASK, agents=names, strategy="parallel", recorded=recorded)
    second = await replay(run_id="d", task=TASK, agents=names, strategy="parallel", recorded=recorded)
    assert [r.key for r in first.waiting] == [r.key for r in second.waiting] == ["2:run:b", "3:run:c"]
    assert first.waiting == second.waiting
    assert first.result.to_dict() == second.result.to_dict()
    assert first.result.status == "running" and not first.finished and first.steps == 3
    assert first.result.agents[0] is not outcome.record  # the run gets a copy


def recorded_outcome(name: str, step: int, status: str, **fields: Any) -> StepOutcome:
    record = {"name": name, "step": step, "phase": "run", "status": status, "output": f"{name} said so",
              "text": f"{name} said so", "usage": {"input_tokens": 3, "output_tokens": 2}, "cost_usd": 0.25,
              "attempts": 1}
    return StepOutcome.from_dict({"status": status, "record": record, "text": record["text"] if status ==
                                  "completed" else "", **fields})


async def test_recorded_failures_cancels_and_limits_end_a_replayed_run_as_inline() -> None:
    names = ("a", "b", "c")
    done = recorded_outcome("a", 1, "completed")
    failed = recorded_outcome("b", 2, "failed", error={"type": "ValueError", "message": "no tide tables"})
    run = await replay(run_id="f", task=TASK, agents=names, strategy="sequential",
                       recorded={"1:run:a": done, "2:run:b": failed})
    assert run.finished and run.result.status == "failed" and not run.waiting
    assert run.result.error is not None and run.result.error["type"] == "StepFailedError"
    assert "ValueError: no tide tables" in run.result.error["message"]
    assert run.result.output == "a said so"  # the best answer so far, as an inline failed run gives
    assert run.result.cost_usd == 0.5 and run.result.usage.input_tokens == 6

    cancelled = recorded_outcome("b", 2, "cancelled", error={"type": "Cancelled", "message": "stop now"})
    run = await replay(run_id="c", task=TASK, agents=names, strategy="sequential",
                       recorded={"1:run:a": done, "2:run:b": cancelled})
    assert run.result.status == "cancelled" and run.result.error == {"type": "Cancelled", "message": "stop now"}

    limited = StepOutcome.from_dict({"status": "failed", "record": {}, "error": {
        "type": "RunLimitExceeded", "message": "over the cap"}, "limit": {"limit": "max_cost_usd", "value": 0.1,
                                                                          "used": 0.25}})
    run = await replay(run_id="l", task=TASK, agents=names, strategy="sequential",
                       recorded={"1:run:a": done, "2:run:b": limited})
    assert run.result.status == "failed" and run.result.error is not None
    assert run.result.error["type"] == "RunLimitExceeded" and run.result.error["limit"] == "max_cost_usd"

    # The run's own limits hold in a replay too: no third step for a run of two.
    run = await replay(run_id="m", task=TASK, agents=names, strategy="sequential",
                       options=RunOptions(limits=RunLimits(max_steps=2)),
                       recorded={"1:run:a": done, "2:run:b": recorded_outcome("b", 2, "completed")})
    assert run.result.status == "failed" and run.result.error is not None
    assert run.result.error.get("limit") == "max_steps"


async def test_requests_and_outcomes_survive_json() -> None:
    request = StepRequest("b", 2, "vote", [Message.user("hello")], (Message.assistant("hi"),), "voting", 0.5)
    again = StepRequest.from_dict(over_the_wire(request.to_dict()))
    assert again.to_dict() == request.to_dict() and again.key == "2:vote:b"
    with pytest.raises(ValueError, match="completed, failed, cancelled or paused"):
        StepOutcome.from_dict({"status": "maybe"})


async def test_a_step_run_cancelled_mid_way_reports_a_cancelled_outcome(llm: LLM, models: Models) -> None:
    gate = Gate()
    models.on("a", gate)
    step = StepRun(StepRequest("a", 1, input=TASK), run_id="x", task=TASK, agents={"a": agent("a")},
                   strategy="sequential", llm=llm)
    running = asyncio.get_running_loop().create_task(step.execute())
    await gate.entered.wait()
    step.cancel("the run was cancelled by its owner")
    outcome = await running
    assert outcome.status == "cancelled"
    assert outcome.error == {"type": "Cancelled", "message": "the run was cancelled by its owner"}
    assert outcome.record is not None and outcome.record.status == "cancelled"
    assert models.cancelled == ["a"]

    # Cancelled before it starts: the agent never runs.
    late = StepRun(StepRequest("a", 1, input=TASK), run_id="y", task=TASK, agents={"a": agent("a")},
                   strategy="sequential", llm=llm)
    late.cancel("too late")
    assert (await late.execute()).error == {"type": "Cancelled", "message": "too late"}
    assert models.calls["a"] == 1


def test_nothing_outside_the_orchestrator_imports_its_private_parts() -> None:
    import ast
    from pathlib import Path

    import agentadapter
    import agentadapter.orchestrator

    package = Path(agentadapter.orchestrator.__file__).parent
    offenders = []
    for path in Path(agentadapter.__file__).parent.rglob("*.py"):
        if package in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("agentadapter.orchestrator"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if "._" in (node.module or "") or private:
                    offenders.append(f"{path.name}: from {node.module} import {', '.join(a.name for a in node.names)}")
    assert not offenders
