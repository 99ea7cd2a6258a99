"""Sequential runs end to end: outputs chain, context accumulates, handoffs, messaging, records, spans."""

from __future__ import annotations

from typing import Any

import pytest

from agentadapter.agents import AgentContext, AgentResult, BaseAgent, tool, tracing
from agentadapter.llm.messages import ToolCallPart
from agentadapter.orchestrator import InMemoryRunRecorder, Orchestrator, RunResult, Sequential, StrategyError

from .conftest import Models, Spender, agent, agents, reply


async def test_each_output_is_the_next_input_and_the_conversation_accumulates(orchestrator, models: Models):
    models.on("researcher", "facts: the moon pulls the sea")
    models.on("writer", "draft: tides come from the moon")
    result = await orchestrator.run("Why are there tides?", agents("researcher", "writer", "reviewer"))
    assert isinstance(result, RunResult)
    assert result.status == "completed" and result.error is None
    # reviewer echoes its input, which is the writer's output
    assert result.output == "draft: tides come from the moon"
    assert [a.name for a in result.agents] == ["researcher", "writer", "reviewer"]
    assert all(a.status == "completed" and a.attempts == 1 for a in result.agents)
    reviewer_request = models.seen["reviewer"][0]
    texts = [m.text for m in reviewer_request.messages if m.role == "user"]
    assert texts == ["Why are there tides?", "facts: the moon pulls the sea", "draft: tides come from the moon"]
    names = [m.name for m in reviewer_request.messages if m.role == "user"]
    assert names == [None, "researcher", "writer"]
    assert result.usage.total_tokens == sum(a.usage.total_tokens for a in result.agents) > 0
    assert result.duration_ms > 0 and result.finished_at is not None


async def test_an_explicit_order_and_the_result_dict(orchestrator):
    result = await orchestrator.run("go", [Spender("a", 0.25), Spender("b", 0.5)], Sequential(agents=("b", "a")),
                                    project_id="p1")
    assert [a.name for a in result.agents] == ["b", "a"]
    assert result.cost_usd == pytest.approx(0.75)
    data = result.to_dict()
    assert set(data) >= {"run_id", "status", "output", "agents", "usage", "cost_usd", "duration_ms"}
    assert data["project_id"] == "p1" and data["strategy"] == "sequential"
    assert set(data["agents"][0]) >= {"name", "status", "output", "error", "usage", "cost_usd"}
    assert data["agents"][0]["cost_usd"] == 0.5


async def test_a_failing_step_fails_the_run_with_the_partial_output(orchestrator, models: Models):
    models.on("b", lambda request: (_ for _ in ()).throw(RuntimeError("disk full")))
    result = await orchestrator.run("go", agents("a", "b", "c"))
    assert result.status == "failed"
    assert result.error["type"] == "StepFailedError" and "disk full" in result.error["message"]
    assert [a.status for a in result.agents] == ["completed", "failed"]
    assert result.agents[1].error["type"] == "RuntimeError"
    assert result.output == "go"  # a's output: the best answer so far
    assert models.calls["c"] == 0


async def test_handoffs_inside_a_step(orchestrator, models: Models):
    billing = agent("billing")
    triage = agent("triage", handoffs=[billing])
    models.on("triage", reply(ToolCallPart("h1", "transfer_to_billing", {})))
    models.on("billing", "refund issued")
    events = []
    result = await orchestrator.run("refund please", [triage, billing], Sequential(agents=("triage",)),
                                    on_event=events.append)
    assert result.output == "refund issued"
    assert result.agents[0].answered_by == "billing"
    handoffs = [e for e in events if e.type == "handoff"]
    assert handoffs and handoffs[0].data == {"from_agent": "triage", "to_agent": "billing"}
    assert any(e.type == "token" and e.agent == "billing" for e in events)


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    return key.upper()


async def test_tool_calls_become_events(llm, recorder):
    from agentadapter.agents import LLMAgent

    worker = LLMAgent("worker", model="test/tools", tools=[lookup])
    events = []
    result = await Orchestrator(llm=llm, recorder=recorder).run("find it", [worker], on_event=events.append)
    assert result.status == "completed"
    kinds = [e.type for e in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("agent_finished")
    call = next(e for e in events if e.type == "tool_call")
    assert call.data["name"] == "lookup" and call.agent == "worker"
    stored = [e.type for e in recorder.events[result.run_id]]
    assert "tool_call" in stored and "token" not in stored


class Sender(BaseAgent):
    """Sends a note to the listener, then answers."""

    async def execute(self, context: AgentContext) -> AgentResult:
        await context.send("listener", {"note": "hello from sender"})
        await context.state.set("shared", 42)
        return AgentResult(output="sent")


class Listener(BaseAgent):
    """Reads its inbox and the shared state."""

    async def execute(self, context: AgentContext) -> AgentResult:
        messages = await context.receive(timeout=0)
        shared = await context.state.get("shared")
        return AgentResult(output={"got": [m.payload for m in messages], "shared": shared})


async def test_agents_of_a_run_message_each_other_and_the_messages_are_recorded(orchestrator, recorder):
    events = []
    result = await orchestrator.run("go", [Sender("sender"), Listener("listener")], on_event=events.append)
    assert result.status == "completed"
    assert result.output == {"got": [{"note": "hello from sender"}], "shared": 42}
    messages = [e for e in events if e.type == "message"]
    assert len(messages) == 1
    assert messages[0].agent == "sender" and messages[0].data["recipient"] == "listener"
    assert messages[0].data["payload"] == {"note": "hello from sender"}
    assert [m.sender for m in recorder.messages[result.run_id]] == ["sender"]


async def test_the_recorder_gets_the_run_and_each_agent_run(orchestrator, recorder: InMemoryRunRecorder):
    result = await orchestrator.run("go", agents("a", "b"), project_id="proj")
    stored = recorder.get_run(result.run_id)
    assert stored is not None and stored.status == "completed" and stored.output == "go"
    assert [r.run_id for r in recorder.list_runs("proj")] == [result.run_id]
    assert recorder.list_runs("other") == []
    runs = recorder.agent_runs_of(result.run_id)
    assert [(r.name, r.status) for r in runs] == [("a", "completed"), ("b", "completed")]


async def test_spans_per_run_and_step_nest_the_agent_spans(orchestrator):
    collector = tracing.SpanCollector()
    tracing.add_trace_processor(collector)
    try:
        result = await orchestrator.run("go", agents("a", "b"))
    finally:
        tracing.set_trace_processors([p for p in tracing.get_trace_processors() if p is not collector])
    run_span = collector.of_kind("run")[0]
    steps = collector.of_kind("step")
    assert run_span.trace_id == result.run_id and run_span.data.status == "completed"
    assert [s.data.agent for s in steps] == ["a", "b"]
    assert all(s.parent_id == run_span.span_id for s in steps)
    agent_spans = collector.of_kind("agent")
    assert {a.parent_id for a in agent_spans} == {s.span_id for s in steps}


async def test_bad_runs_are_refused_before_anything_runs(orchestrator):
    with pytest.raises(StrategyError, match="not among the run's agents"):
        await orchestrator.run("go", agents("a"), Sequential(agents=("a", "zed")))
    with pytest.raises(ValueError, match="at least one agent"):
        await orchestrator.run("go", [])
    with pytest.raises(ValueError, match="unique"):
        await orchestrator.run("go", [agent("a"), agent("a")])
    with pytest.raises(ValueError, match="needs a task"):
        await orchestrator.run("", agents("a"))
    with pytest.raises(StrategyError, match="unknown strategy"):
        await orchestrator.run("go", agents("a"), "zigzag")
    with pytest.raises(StrategyError, match="needs settings"):
        await orchestrator.run("go", agents("a"), "loop")
    with pytest.raises(ValueError, match="use its name as the key"):
        await orchestrator.run("go", {"x": agent("a")})


async def test_a_mapping_of_agents_and_message_inputs(orchestrator, models: Models):
    seen: list[Any] = []
    models.on("a", lambda request: seen.append([m.role for m in request.messages]) or "ok")
    result = await orchestrator.run([{"role": "user", "content": "first"}, {"role": "assistant", "content": "hm"},
                                     {"role": "user", "content": "second"}], {"a": agent("a")})
    assert result.output == "ok" and result.input == "first\n\nsecond"
    assert seen == [["system", "user", "assistant", "user"]]
