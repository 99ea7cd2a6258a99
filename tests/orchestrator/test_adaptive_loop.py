"""Adaptive runs (routes, a router, cycles under a step limit) and feedback loops, end to end."""

from __future__ import annotations

import pytest

from agentadapter.orchestrator import END, Adaptive, Loop, Route, RunLimits, RunOptions, StrategyError

from .conftest import Models, agents


async def test_a_condition_on_the_output_chooses_the_next_agent(orchestrator, models: Models):
    models.on("triage", "This is about an INVOICE").on("billing", "billing handled it")
    strategy = Adaptive(routes=[Route("triage", "billing", "output contains 'invoice'"),
                                Route("triage", "support", "output contains 'broken'")])
    result = await orchestrator.run("help", agents("triage", "billing", "support"), strategy)
    assert result.status == "completed" and result.output == "billing handled it"
    assert result.details["path"] == ["triage", "billing"]
    assert models.calls["support"] == 0
    # billing saw the triage answer as its input
    assert models.seen["billing"][0].messages[-1].text == "This is about an INVOICE"


async def test_a_router_names_the_next_agent_and_ends_the_run(orchestrator, models: Models):
    models.on("router", "support", "DONE").on("support", "fixed it")
    strategy = Adaptive(router="router", routes=[Route("support", "router")])
    events = []
    result = await orchestrator.run("my app crashes", agents("router", "billing", "support"), strategy,
                                    on_event=events.append)
    assert result.output == "fixed it"  # the router's DONE hands back the last worker's answer
    assert result.details["path"] == ["router", "support", "router"]
    assert [r.phase for r in result.agents] == ["route", "run", "route"]
    started = [e.data.get("via") for e in events if e.type == "agent_started"]
    assert started == ["start", "chosen by router", "route support -> router"]
    # the router's second turn sees the task and the support answer
    assert [m.text for m in models.seen["router"][1].messages if m.role == "user"] == ["my app crashes", "fixed it"]


async def test_a_router_may_answer_itself(orchestrator, models: Models):
    models.on("router", "Paris is the capital of France.")
    result = await orchestrator.run("capital of France?", agents("router", "geo"), Adaptive(router="router"))
    assert result.output == "Paris is the capital of France." and result.details["ended_by"] == "router"


async def test_routes_to_end_and_from_any_agent(orchestrator, models: Models):
    models.on("a", "stop here")
    strategy = Adaptive(routes=[Route(None, END, "text contains 'stop'"), Route(None, "b")])
    result = await orchestrator.run("go", agents("a", "b"), strategy)
    assert result.output == "stop here" and result.details["path"] == ["a"]


async def test_a_cycle_is_cut_by_the_step_limit(orchestrator, models: Models):
    strategy = Adaptive(routes=[Route("a", "b"), Route("b", "a")])
    result = await orchestrator.run("ping", agents("a", "b"), strategy,
                                    options=RunOptions(limits=RunLimits(max_steps=5)))
    assert result.status == "failed" and result.error["limit"] == "max_steps"
    assert len(result.agents) == 5 and result.output == "ping"
    # with no limit set, adaptive runs still stop (default 25 steps)
    result = await orchestrator.run("ping", agents("a", "b"), strategy)
    assert result.error["limit"] == "max_steps" and len(result.agents) == 25


async def test_conditions_see_step_and_outputs(orchestrator, models: Models):
    models.on("a", "one").on("b", "two")
    strategy = Adaptive(routes=[
        Route("a", "b", "step < 3"),
        Route("b", "a", "outputs['a'] == 'one' and step < 3"),
    ])
    result = await orchestrator.run("go", agents("a", "b"), strategy)
    assert result.details["path"] == ["a", "b", "a"] and result.output == "one"


async def test_a_condition_that_fails_fails_the_run(orchestrator, models: Models):
    strategy = Adaptive(routes=[Route("a", "b", "int(output) > 1")])
    result = await orchestrator.run("not a number", agents("a", "b"), strategy)
    assert result.status == "failed" and result.error["type"] == "ConditionError"
    assert "int(output) > 1" in result.error["message"]


def test_adaptive_strategies_are_checked():
    with pytest.raises(StrategyError, match="router agent, routes, or both"):
        Adaptive()
    with pytest.raises(StrategyError, match=r"routes\[0\].to is 'nobody'"):
        Adaptive(routes=[Route("a", "nobody")]).check(["a"])
    Adaptive(routes=[Route("a", END)]).check(["a"])


async def test_the_loop_runs_until_the_evaluator_accepts(orchestrator, models: Models):
    models.on("writer", "draft 1", "draft 2")
    models.on("critic", "Needs a title.", "APPROVED - good now")
    result = await orchestrator.run("Write a poem", agents("writer", "critic"), Loop("writer", "critic"))
    assert result.status == "completed" and result.output == "draft 2"
    assert result.details == {"iterations": 2, "accepted": True}
    assert [(r.name, r.phase) for r in result.agents] == [
        ("writer", "generate"), ("critic", "evaluate"), ("writer", "generate"), ("critic", "evaluate")]
    second = models.seen["writer"][1].messages
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    assert second[-1].text == "Needs a title." and second[-2].text == "draft 1"
    critic_saw = models.seen["critic"][1].messages
    assert critic_saw[-1].text == "draft 2" and critic_saw[-2].text == "Write a poem"


async def test_the_loop_stops_at_max_iterations_with_the_last_draft(orchestrator, models: Models):
    models.on("writer", "d1", "d2", "d3").on("critic", "no")
    result = await orchestrator.run("x", agents("writer", "critic"), Loop("writer", "critic", max_iterations=2))
    assert result.status == "completed" and result.output == "d2"
    assert result.details == {"iterations": 2, "accepted": False}


async def test_the_loop_accepts_with_a_custom_condition(orchestrator, models: Models):
    models.on("writer", "short", "a much longer draft")
    strategy = Loop("writer", "critic", until="len(outputs['writer']) > 10 or iteration >= 5")
    result = await orchestrator.run("x", agents("writer", "critic"), strategy)
    assert result.output == "a much longer draft" and result.details["iterations"] == 2


def test_loops_are_checked():
    with pytest.raises(StrategyError, match="two different agents"):
        Loop("a", "a")
    with pytest.raises(StrategyError, match="at least 1"):
        Loop("a", "b", max_iterations=0)
    with pytest.raises(StrategyError, match="evaluator is 'b'"):
        Loop("a", "b").check(["a"])
