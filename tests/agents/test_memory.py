"""An agent's long-term memory: facts in its namespace of a shared context, searched by their words."""

from __future__ import annotations

import pytest

from agentadapter.agents import LLMAgent, RunConfig
from agentadapter.agents.memory import AgentMemory
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.protocol.context import InProcessSharedContext

from .conftest import call, reply, scripted


async def test_facts_are_kept_in_the_agents_namespace_and_found_by_their_words():
    context = InProcessSharedContext()
    memory = AgentMemory(context, "support")
    await memory.remember("The customer Ada prefers email over phone calls.", tags=["contact"])
    parcel = await memory.remember("Order 42 was shipped to Lyon by mistake.")
    await memory.remember("Ada's order 42 must be refunded, not resent.", key="refund-42")

    found = await memory.search("where was order 42 shipped")
    assert [i.key for i in found][:1] == [parcel] and found[0].score > 0
    assert {i.key for i in await memory.search("refunded order")} >= {"refund-42"}
    assert await memory.search("weather in Paris") == []
    assert (await memory.recall("refund-42")).text == "Ada's order 42 must be refunded, not resent."
    # Stored under the agent's namespace, where another agent's memory does not see it.
    assert "agents/support/memory/refund-42" in await context.keys("agents/support/")
    assert await AgentMemory(context, "billing").items() == []
    assert await memory.forget("refund-42") and await memory.recall("refund-42") is None
    assert len(await memory.items()) == 2


async def test_bad_memories_are_refused():
    memory = AgentMemory(InProcessSharedContext(), "a")
    for text, key, message in [("  ", None, "needs some text"), ("x" * 4001, None, "at most 4000"),
                               ("fine", "no spaces", "memory key")]:
        with pytest.raises(InvalidRequestError, match=message):
            await memory.remember(text, key=key)


async def test_an_agent_remembers_in_one_run_and_finds_it_in_the_next():
    context = InProcessSharedContext()  # a Redis context with its own namespace would outlive the process
    memory = AgentMemory(context, "assistant")
    script, llm, _ = scripted(
        reply(call("remember", "c1", text="Ada's parcel code is 7781.")), "Noted.",
        reply(call("search_memory", "c2", query="parcel code")), "It is 7781.",
    )
    agent = LLMAgent("assistant", model="script/m", tools=memory.tools())
    await agent.run("My parcel code is 7781.", RunConfig(llm=llm))
    answer = await agent.run("What is my parcel code?", RunConfig(llm=llm))
    assert answer.output == "It is 7781."
    searched = [p for p in script.requests[3].messages[-1].parts]
    assert "Ada's parcel code is 7781." in searched[0].content
