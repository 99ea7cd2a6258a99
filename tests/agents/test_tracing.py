"""Tracing: typed spans for agents, generations, tools, handoffs and guardrails; off by default."""

from __future__ import annotations

from agentadapter.agents import LLMAgent, RunConfig, tool, tracing
from agentadapter.agents.metrics import AGENT_RUNS, TOOL_CALLS

from .conftest import call, reply, scripted


@tool
def lookup(key: str) -> str:
    """Look up."""
    return key.upper()


def test_no_processor_means_no_spans():
    assert tracing.get_trace_processors() == ()
    span = tracing.tool_span("t", "c", "a", {})
    assert span.recording is False
    with span:
        assert tracing.current_span() is None


async def test_a_run_emits_nested_typed_spans(spans):
    billing = LLMAgent("billing", model="script/m", tools=[lookup],
                       output_guardrails=[lambda context, output: False])
    triage = LLMAgent("triage", model="script/m", handoffs=[billing])
    _, _, config = scripted(
        reply(call("transfer_to_billing"), cost=0.01),
        reply(call("lookup", key="x")),
        "done",
    )
    result = await triage.run("hi", config)
    kinds = [span.data.kind for span in spans.spans]
    assert kinds.count("agent") == 2 and kinds.count("generation") == 3
    assert kinds.count("tool") == 1 and kinds.count("handoff") == 1 and kinds.count("guardrail") == 1
    assert {span.trace_id for span in spans.spans} == {result.run_id}

    agents = {span.data.name: span for span in spans.of_kind("agent")}
    assert agents["triage"].data.status == "handoff" and agents["billing"].data.status == "completed"
    assert agents["triage"].data.handoffs == ["billing"] and agents["billing"].data.tools == ["lookup"]
    tool_span = spans.of_kind("tool")[0]
    assert tool_span.parent_id == agents["billing"].span_id
    assert (tool_span.data.name, tool_span.data.arguments, tool_span.data.output) == ("lookup", {"key": "x"}, "X")
    first_generation = spans.of_kind("generation")[0]
    assert first_generation.parent_id == agents["triage"].span_id
    assert first_generation.data.cost_usd == 0.01 and first_generation.data.usage["input_tokens"] > 0
    assert all(span.duration_ms is not None for span in spans.spans)
    assert spans.of_kind("handoff")[0].data.to_agent == "billing"
    assert spans.spans[-1].to_dict()["data"]["kind"] == "agent"


async def test_a_failed_run_marks_its_span_and_tracing_can_be_turned_off_per_run(spans):
    @tool
    def explode() -> str:
        """Fails."""
        raise ValueError("nope")

    _, llm, _ = scripted(reply(call("explode")), "ok", "again")
    agent = LLMAgent("a", model="script/m", tools=[explode])
    await agent.run("x", RunConfig(llm=llm))
    assert spans.of_kind("tool")[0].error == {"type": "error", "message": "Error: tool 'explode' failed: ValueError: nope"}
    spans.clear()
    await LLMAgent("b", model="script/m").run("x", RunConfig(llm=llm, tracing=False))
    assert spans.spans == []


async def test_metrics_count_runs_and_tools(llm):
    before_runs = AGENT_RUNS.labels("llm", "completed")._value.get()
    before_tools = TOOL_CALLS.labels("lookup", "ok")._value.get()
    await LLMAgent("m", model="test/tools", tools=[lookup]).run("x", RunConfig(llm=llm))
    assert AGENT_RUNS.labels("llm", "completed")._value.get() == before_runs + 1
    assert TOOL_CALLS.labels("lookup", "ok")._value.get() == before_tools + 1


def test_a_broken_processor_never_breaks_a_run(caplog):
    class Broken:
        def on_span_start(self, span):  # type: ignore[no-untyped-def]
            raise RuntimeError("exporter down")

        on_span_end = on_span_start

        def shutdown(self) -> None: ...

        def force_flush(self) -> None: ...

    tracing.set_trace_processors([Broken()])
    try:
        with tracing.handoff_span("a", "b"):
            pass
    finally:
        tracing.set_trace_processors([])
    assert "exporter down" in caplog.text
