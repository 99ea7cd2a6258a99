"""AgentContext: messaging and shared state through the communication protocol; custom agents."""

from __future__ import annotations

import asyncio

import pytest

from agentadapter.agents import AgentContext, AgentResult, BaseAgent, LLMAgent, RunConfig
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.protocol import ProtocolClosedError, create_protocol


class Greeter(BaseAgent):
    """Greets whoever asks.

    A longer explanation that is not part of the description.
    """

    CAPABILITIES = ("greeting", "small-talk")

    async def execute(self, context: AgentContext) -> AgentResult:
        return AgentResult(output=f"hello, {context.input_text}")


async def test_a_custom_agent_runs_with_the_conveniences():
    agent = Greeter()
    assert agent.name == "greeter" and agent.agent_type == "custom"
    assert agent.description == "Greets whoever asks."
    assert agent.capabilities == ("greeting", "small-talk")
    meta = Greeter.metadata()
    assert (meta.name, meta.capabilities, meta.description) == ("greeter", ("greeting", "small-talk"),
                                                                 "Greets whoever asks.")
    result = await agent.run("ada")
    assert result.output == "hello, ada" and result.agent == "greeter" and result.run_id
    assert result.latency_ms > 0
    stream_events = [e async for e in agent.run_stream("bob")]
    assert [e.type for e in stream_events] == ["final"] and stream_events[0].result.output == "hello, bob"
    assert Greeter("custom-name").name == "custom-name"


async def test_execute_must_return_an_agent_result():
    class Broken(BaseAgent):
        async def execute(self, context: AgentContext) -> AgentResult:
            return "oops"  # type: ignore[return-value]

    with pytest.raises(InvalidRequestError, match="must return an AgentResult"):
        await Broken().run("x")


class Asker(BaseAgent):
    async def execute(self, context: AgentContext) -> AgentResult:
        answer = await context.ask("oracle", {"question": context.input_text}, timeout=5)
        await context.broadcast({"done": True})
        await context.state.set("last_answer", answer)
        return AgentResult(output=answer)


class Oracle(BaseAgent):
    async def execute(self, context: AgentContext) -> AgentResult:
        (request,) = await context.receive(timeout=5)
        await context.reply(request, request.payload["question"][::-1])
        (note,) = await context.receive(timeout=5)
        return AgentResult(output=note.payload)


async def test_agents_talk_through_the_runs_protocol_and_share_state():
    async with create_protocol(run_id="run-talk", redis_url=None) as protocol:
        config = RunConfig(protocol=protocol, run_id="run-talk")
        oracle, asker = Oracle(), Asker()
        oracle_context = oracle.make_context("", config)
        await oracle_context.channel()  # join first, so it is there to be asked
        oracle_task = asyncio.create_task(oracle.execute(oracle_context))
        asked = await asker.run("stressed", config)
        heard = await asyncio.wait_for(oracle_task, 5)
        assert asked.output == "desserts"
        assert heard.output == {"done": True}
        assert await protocol.context.get("last_answer") == "desserts"
        assert {a.name for a in await protocol.agents()} == {"oracle", "asker"}
        # The run was given a protocol: running an agent does not close it.
        await protocol.context.set("still", "open")


async def test_publish_and_subscribe():
    async with create_protocol(run_id="run-topics", redis_url=None) as protocol:
        config = RunConfig(protocol=protocol)
        listener = LLMAgent("listener").make_context("", config)
        speaker = LLMAgent("speaker").make_context("", config)
        await listener.subscribe("news.*")
        await speaker.publish("news.sports", {"score": 3})
        (message,) = await listener.receive(timeout=5)
        assert message.payload == {"score": 3} and message.sender == "speaker"
        await speaker.send("listener", "direct")
        assert [m.payload for m in await listener.receive(timeout=5)] == ["direct"]


async def test_a_run_without_a_protocol_creates_one_on_demand_and_closes_it():
    class Writer(BaseAgent):
        async def execute(self, context: AgentContext) -> AgentResult:
            await context.private.set("note", "mine")
            protocol = context.protocol
            return AgentResult(output=(await context.private.get("note"), protocol))

    result = await Writer().run("x")
    note, protocol = result.output
    assert note == "mine"
    assert protocol.run_id == result.run_id
    with pytest.raises(ProtocolClosedError):
        await protocol.context.set("after", "the run")
