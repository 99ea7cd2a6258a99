"""The tool loop: tools (parallel, errors, timeouts, bad arguments), turns, usage and cost, streaming."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agentadapter.agents import (
    AgentContext,
    AgentResult,
    BaseAgent,
    LLMAgent,
    ModelSettings,
    RunConfig,
    tool,
)
from agentadapter.agents.errors import MaxTurnsExceeded
from agentadapter.llm.errors import BudgetExceededError, InvalidRequestError
from agentadapter.llm.messages import Message, ToolResultPart, Usage

from .conftest import call, reply, scripted, texts


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
async def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


def tool_results(message: Message) -> list[ToolResultPart]:
    return [p for p in message.parts if isinstance(p, ToolResultPart)]


async def test_two_tools_then_a_final_answer_with_the_test_backend(llm):
    agent = LLMAgent("calc", instructions="Use the tools.", model="test/tools", tools=[add, shout])
    result = await agent.run("go", RunConfig(llm=llm))
    assert result.status == "completed"
    assert [r.name for r in result.tool_calls] == ["add", "shout"]
    assert all(r.outcome == "ok" for r in result.tool_calls)
    assert result.output == "add: 2; shout: XXXX"
    assert result.turns == 2
    assert result.backend == "test" and result.model == "tools"
    assert [m.role for m in result.new_messages] == ["assistant", "tool", "assistant"]
    assert result.messages[0].text == "go"


async def test_parallel_calls_run_concurrently():
    both_started = asyncio.Event()
    started: list[str] = []

    @tool
    async def wait_for_other(name: str) -> str:
        """Waits until both calls are running."""
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 5)
        return f"done {name}"

    script, _, config = scripted(
        reply(call("wait_for_other", name="a"), call("wait_for_other", name="b")),
        "finished",
    )
    agent = LLMAgent("parallel", model="script/m", tools=[wait_for_other])
    result = await agent.run("go", config)
    assert result.output == "finished"
    assert [r.output for r in result.tool_calls] == ["done a", "done b"]
    sent_back = tool_results(script.requests[1].messages[-1])
    assert [p.content for p in sent_back] == ["done a", "done b"]


async def test_a_failing_tool_goes_back_to_the_model_as_an_error():
    @tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(f"boom: {reason}")

    script, _, config = scripted(reply(call("explode", reason="test")), "recovered")
    result = await LLMAgent("a", model="script/m", tools=[explode]).run("go", config)
    assert result.output == "recovered"
    record = result.tool_calls[0]
    assert record.outcome == "error" and record.is_error
    result_part = tool_results(script.requests[1].messages[-1])[0]
    assert result_part.is_error
    assert "RuntimeError: boom: test" in result_part.content


async def test_invalid_arguments_go_back_to_the_model_as_an_error():
    script, _, config = scripted(
        reply(call("add", a="not a number", b=2)),
        reply(call("add", a=1, b=2)),
        "3",
    )
    result = await LLMAgent("a", model="script/m", tools=[add]).run("go", config)
    assert [r.outcome for r in result.tool_calls] == ["invalid_arguments", "ok"]
    first = tool_results(script.requests[1].messages[-1])[0]
    assert first.is_error and "invalid arguments for tool 'add'" in first.content
    assert result.tool_calls[1].output == "3"


async def test_broken_json_arguments_and_unknown_tools_are_reported_not_raised():
    script, _, config = scripted(
        reply(call("add", _raw_arguments="{a: 1"), call("nope", x=1)),
        "ok",
    )
    result = await LLMAgent("a", model="script/m", tools=[add]).run("go", config)
    assert [r.outcome for r in result.tool_calls] == ["invalid_arguments", "unknown_tool"]
    parts = tool_results(script.requests[1].messages[-1])
    assert "not valid JSON" in parts[0].content
    assert "no tool named 'nope'" in parts[1].content and "add" in parts[1].content


async def test_a_tool_that_takes_too_long_times_out():
    release = threading.Event()

    @tool(timeout=0.05)
    async def slow() -> str:
        """Never finishes in time."""
        await asyncio.sleep(30)
        return "late"

    @tool(timeout=0.05)
    def slow_sync() -> str:
        """A blocking function: abandoned after its timeout (its thread is released below)."""
        release.wait(10)
        return "late"

    _script, _, config = scripted(reply(call("slow"), call("slow_sync")), "gave up")
    try:
        result = await LLMAgent("a", model="script/m", tools=[slow, slow_sync]).run("go", config)
    finally:
        release.set()
    assert [r.outcome for r in result.tool_calls] == ["timeout", "timeout"]
    assert "did not finish within 0.05s" in result.tool_calls[0].output
    assert result.output == "gave up"


async def test_run_config_tool_timeout_applies_to_tools_without_their_own():
    @tool
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(30)
        return "late"

    _, llm, _ = scripted(reply(call("slow")), "ok")
    result = await LLMAgent("a", model="script/m", tools=[slow]).run(
        "go", RunConfig(llm=llm, tool_timeout=0.02)
    )
    assert result.tool_calls[0].outcome == "timeout"


async def test_max_turns_stops_the_loop_with_the_run_so_far():
    script, llm, _ = scripted(*[reply(call("add", a=1, b=1)) for _ in range(3)])
    agent = LLMAgent("looper", model="script/m", tools=[add], max_turns=3)
    with pytest.raises(MaxTurnsExceeded) as caught:
        await agent.run("go", RunConfig(llm=llm))
    assert "3 model calls" in str(caught.value)
    partial = caught.value.result
    assert partial.status == "failed" and partial.turns == 3 and len(partial.tool_calls) == 3
    # RunConfig.max_turns overrides the agent's.
    script.add(reply(call("add", a=1, b=1)))
    with pytest.raises(MaxTurnsExceeded):
        await agent.run("go", RunConfig(llm=llm, max_turns=1))


async def test_usage_and_cost_add_up_across_turns():
    _, _, config = scripted(
        reply(call("add", a=1, b=2), cost=0.01, usage=Usage(100, 10)),
        reply("three", cost=0.02, usage=Usage(120, 5, cached_input_tokens=100)),
    )
    result = await LLMAgent("a", model="script/m", tools=[add]).run("go", config)
    assert result.usage == Usage(220, 15, cached_input_tokens=100)
    assert result.cost_usd == pytest.approx(0.03)
    assert result.latency_ms > 0


async def test_the_cost_cap_stops_the_run_before_the_next_call():
    script, llm, _ = scripted(
        reply(call("add", a=1, b=2), cost=0.6),
        reply(call("add", a=1, b=2), cost=0.6),
        "never reached",
    )
    agent = LLMAgent("spender", model="script/m", tools=[add])
    with pytest.raises(BudgetExceededError) as caught:
        await agent.run("go", RunConfig(llm=llm, max_cost_usd=1.0))
    error = caught.value
    assert error.limit_usd == 1.0 and error.spent_usd == pytest.approx(1.2)
    assert len(script.requests) == 2
    assert error.result.cost_usd == pytest.approx(1.2)


async def test_instructions_settings_and_history_reach_the_model():
    script, _, config = scripted("fine")

    async def instructions(context: AgentContext) -> str:
        return f"You serve {context.deps['user']}."

    agent = LLMAgent("a", model="script/m", instructions=instructions,
                     model_settings={"temperature": 0.1, "max_tokens": 50})
    history = [Message.user("earlier"), Message.assistant("noted")]
    result = await agent.run("now", config, deps={"user": "ada"}, history=history)
    request = script.requests[0]
    assert texts(request) == ["You serve ada.", "earlier", "noted", "now"]
    assert (request.temperature, request.max_tokens) == (0.1, 50)
    assert [m.text for m in result.new_messages] == ["fine"]
    assert isinstance(agent.model_settings, ModelSettings)


async def test_a_tool_receives_the_context_when_it_asks_for_it():
    seen = {}

    @tool
    async def remember(context: AgentContext, key: str, value: str) -> str:
        """Store a value in the run's shared state."""
        await context.state.set(key, value)
        seen["deps"] = context.deps
        return "stored"

    assert "context" not in remember.parameters["properties"]
    _, _, config = scripted(reply(call("remember", key="colour", value="blue")), "ok")

    class Reader(BaseAgent):
        async def execute(self, context: AgentContext) -> AgentResult:
            return AgentResult(output=await context.state.get("colour"))

    agent = LLMAgent("a", model="script/m", tools=[remember])
    result = await agent.run("go", config, deps="my deps")
    assert result.output == "ok" and seen["deps"] == "my deps"
    # The state belonged to that run's (now closed) protocol; a new run starts empty.
    assert (await Reader().run("x")).output is None


async def test_run_stream_yields_typed_events_in_order(llm):
    agent = LLMAgent("calc", model="test/tools", tools=[add])
    stream = agent.run_stream("go", RunConfig(llm=llm))
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["tool_call", "tool_result"]
    assert "text_delta" in kinds and kinds[-1] == "final"
    assert "".join(e.text for e in events if e.type == "text_delta") == "add: 2"
    assert stream.result is not None and stream.result.output == "add: 2"
    assert events[-1].result is stream.result


async def test_run_stream_raises_the_runs_error_to_the_consumer():
    _, _, config = scripted(reply(call("add", a=1, b=1)))
    agent = LLMAgent("a", model="script/m", tools=[add], max_turns=1)
    with pytest.raises(MaxTurnsExceeded):
        async for _ in agent.run_stream("go", config):
            pass


def test_run_sync_for_code_that_is_not_async(llm):
    agent = LLMAgent("echo", model="test/echo")
    result = agent.run_sync("hello there", RunConfig(llm=llm))
    assert result.output == "hello there"
    llm.close()


async def test_an_agent_needs_input_and_a_model(llm):
    with pytest.raises(InvalidRequestError, match="no input"):
        await LLMAgent("a", model="test/echo").run("", RunConfig(llm=llm))
    with pytest.raises(Exception, match="has no model"):
        await LLMAgent("a").run("hi", RunConfig(llm=llm))


def test_agent_construction_refuses_mistakes():
    with pytest.raises(InvalidRequestError, match="two tools named"):
        LLMAgent("a", tools=[add, add])
    with pytest.raises(InvalidRequestError, match="reserved"):
        LLMAgent("a", tools=[tool(name="final_output")(lambda: 1)])
    with pytest.raises(InvalidRequestError, match="max_turns"):
        LLMAgent("a", max_turns=0)
    with pytest.raises(InvalidRequestError, match="unknown model setting"):
        LLMAgent("a", model_settings={"temprature": 1})
    with pytest.raises(InvalidRequestError, match="max_cost_usd"):
        RunConfig(max_cost_usd=0)


async def test_clone_and_an_agent_used_as_a_tool(llm):
    echo = LLMAgent("echoer", model="test/echo", description="Repeats what it is told.")
    boss = LLMAgent("boss", model="test/tools", tools=[echo])
    result = await boss.run("ask it", RunConfig(llm=llm))
    assert result.tool_calls[0].name == "echoer"
    assert result.tool_calls[0].output == "xxxx"  # the test backend's schema-valid argument
    assert boss.clone(name="boss2").name == "boss2"
