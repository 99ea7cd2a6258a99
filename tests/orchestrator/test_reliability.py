"""Run limits, per-agent timeouts, retries with back-off, and cancellation - each end to end."""

from __future__ import annotations

import asyncio

import pytest

from agentadapter.llm.errors import ServerError
from agentadapter.orchestrator import Orchestrator, Parallel, RunLimits, RunOptions, StepPolicy

from .conftest import Gate, Models, Spender, agents, fails, until


def limits(**values: float) -> RunOptions:
    return RunOptions(limits=RunLimits(**values), step=StepPolicy(initial_delay_s=0.0))


# ---------------------------------------------------------------------------------------- limits


async def test_max_cost_stops_the_run_before_the_next_step(orchestrator):
    team = [Spender("a", 0.4), Spender("b", 0.4), Spender("c", 0.4)]
    result = await orchestrator.run("go", team, options=limits(max_cost_usd=0.5))
    assert result.status == "failed"
    assert result.error["type"] == "RunLimitExceeded" and result.error["limit"] == "max_cost_usd"
    assert "limits.max_cost_usd" in result.error["message"]
    assert [a.name for a in result.agents] == ["a", "b"]  # the step that crosses the cap completes
    assert team[2].runs == 0 and result.cost_usd == pytest.approx(0.8)
    assert result.output == "b: a: go"


async def test_max_steps(orchestrator):
    result = await orchestrator.run("go", agents("a", "b", "c"), options=limits(max_steps=2))
    assert result.status == "failed" and result.error["limit"] == "max_steps"
    assert [a.name for a in result.agents] == ["a", "b"]


async def test_the_deadline_cancels_what_runs_and_fails_the_run(orchestrator, models: Models):
    stuck = Gate()
    models.on("b", stuck)
    result = await orchestrator.run("go", agents("a", "b", "c"), options=limits(timeout_s=0.05))
    assert result.status == "failed" and result.error["limit"] == "timeout_s"
    assert [a.status for a in result.agents] == ["completed", "cancelled"]
    assert "deadline" in result.agents[1].error["message"]
    assert models.cancelled == ["b"] and models.calls["c"] == 0


# ------------------------------------------------------------------------------ timeouts, retries


async def test_an_agent_that_times_out_is_retried(orchestrator, models: Models):
    stuck = Gate()
    models.on("a", stuck, "second try")
    options = RunOptions(step=StepPolicy(timeout_s=0.05, max_retries=1, initial_delay_s=0.0))
    events = []
    result = await orchestrator.run("go", agents("a"), options=options, on_event=events.append)
    assert result.status == "completed" and result.output == "second try"
    assert result.agents[0].attempts == 2 and models.cancelled == ["a"]
    retried = [e for e in events if e.type == "agent_retried"]
    assert len(retried) == 1 and retried[0].data["error"]["type"] == "AgentTimeoutError"
    assert [e.data["attempt"] for e in events if e.type == "agent_started"] == [1, 2]


async def test_retryable_errors_are_retried_with_backoff_others_are_not(orchestrator, models: Models):
    models.on("a", fails(ServerError("upstream 500", provider="fake", status=500)), "recovered")
    result = await orchestrator.run("go", agents("a"))
    assert result.output == "recovered" and result.agents[0].attempts == 2

    models.on("b", fails(ServerError("always 500", provider="fake", status=500)))
    options = RunOptions(step=StepPolicy(max_retries=2, initial_delay_s=0.0))
    result = await orchestrator.run("go", agents("b"), options=options)
    assert result.status == "failed" and result.agents[0].attempts == 3
    assert "always 500" in result.error["message"]


async def test_per_agent_policies_override_the_default(orchestrator, models: Models):
    models.on("a", fails(ServerError("500", provider="fake", status=500)), "ok")
    options = RunOptions(step=StepPolicy(max_retries=3, initial_delay_s=0.0), agents={"a": StepPolicy(max_retries=0)})
    result = await orchestrator.run("go", agents("a"), options=options)
    assert result.status == "failed" and result.agents[0].attempts == 1


async def test_no_retry_whose_backoff_would_cross_the_deadline(orchestrator, models: Models):
    models.on("a", fails(ServerError("500", provider="fake", status=500)), "ok")
    options = RunOptions(limits=RunLimits(timeout_s=30), step=StepPolicy(max_retries=3, initial_delay_s=60, max_delay_s=60))
    result = await orchestrator.run("go", agents("a"), options=options)
    assert result.status == "failed" and result.agents[0].attempts == 1


def test_backoff_doubles_up_to_the_cap():
    policy = StepPolicy(initial_delay_s=0.5, max_delay_s=3.0, jitter=0.25)
    assert [policy.delay(n, rand=lambda: 0.0) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(0, rand=lambda: 1.0) == 0.375
    assert policy.retryable(TimeoutError()) and not policy.retryable(ValueError())


# ---------------------------------------------------------------------------------- cancellation


async def test_cancelling_a_run_cancels_its_agents(orchestrator: Orchestrator, models: Models, recorder):
    gates = {name: Gate() for name in ("a", "b", "c")}
    for name, gate in gates.items():
        models.on(name, gate)
    handle = orchestrator.start("go", agents("a", "b", "c"), "parallel")
    await until(lambda: all(g.entered.is_set() for g in gates.values()))
    assert orchestrator.active == [handle.run_id] and handle.status == "running"
    assert orchestrator.cancel(handle.run_id, "the user changed their mind")
    result = await handle
    assert result.status == "cancelled" and result.error["message"] == "the user changed their mind"
    assert [a.status for a in result.agents] == ["cancelled"] * 3
    assert sorted(models.cancelled) == ["a", "b", "c"]
    for gate in gates.values():
        gate.open()
    await asyncio.sleep(0)
    assert sum(models.calls.values()) == 3  # nothing after the cancel
    assert recorder.get_run(result.run_id).status == "cancelled"
    assert orchestrator.active == [] and not handle.cancel() and not orchestrator.cancel(handle.run_id)


async def test_cancelling_the_caller_cancels_the_run(orchestrator: Orchestrator, models: Models):
    gate = Gate()
    models.on("a", gate)
    caller = asyncio.create_task(orchestrator.run("go", agents("a")))
    await until(gate.entered.is_set)
    run_id = orchestrator.active[0]
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert models.cancelled == ["a"] and orchestrator.get(run_id) is None


async def test_a_handle_waits_without_owning_the_run(orchestrator: Orchestrator, models: Models):
    gate = Gate("done")
    models.on("a", gate)
    handle = orchestrator.start("go", agents("a"))
    waiter = asyncio.create_task(handle.wait())
    await until(gate.entered.is_set)
    waiter.cancel()  # a client that goes away does not stop the run
    gate.open()
    result = await handle.wait()
    assert result.status == "completed" and result.output == "done" and handle.result is result


async def test_a_run_id_can_be_given_and_is_unique_while_running(orchestrator: Orchestrator, models: Models):
    gate = Gate()
    models.on("a", gate)
    handle = orchestrator.start("go", agents("a"), options=RunOptions(run_id="run-1"))
    with pytest.raises(ValueError, match="already running"):
        orchestrator.start("go", agents("a"), options=RunOptions(run_id="run-1"))
    gate.open()
    assert (await handle).run_id == "run-1"


async def test_decided_parallel_agents_are_cancelled_under_concurrency_limits(orchestrator, models: Models):
    models.on("a", "fast")
    for name in ("b", "c", "d"):
        models.on(name, Gate())
    result = await orchestrator.run("go", agents("a", "b", "c", "d"), Parallel("first", max_concurrency=2))
    assert result.output == "fast"
    # Whoever got a slot was cancelled in its model call; whoever waited for one never started.
    started = [name for name in ("b", "c", "d") if models.calls[name]]
    assert "b" in started and sorted(models.cancelled) == started and "d" not in started
    assert all(models.calls[name] == 1 for name in started)
    assert [r.status for r in result.agents if r.name != "a"] == ["cancelled"] * len(started)


async def test_a_run_cancelled_before_it_starts_ends_cancelled(orchestrator: Orchestrator, models: Models, recorder):
    handle = orchestrator.start("go", agents("a"))
    assert handle.status == "queued" and handle.cancel("never mind")
    result = await handle
    assert result.status == "cancelled" and result.agents == [] and sum(models.calls.values()) == 0
    assert recorder.get_run(result.run_id).status == "cancelled"
