"""Human approval: a tool call pauses the run with a JSON-serializable state; resume continues it."""

from __future__ import annotations

import json

import pytest

from agentadapter.agents import LLMAgent, RunConfig, RunState, tool
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import ToolResultPart

from .conftest import call, reply, scripted

refunds: list[int] = []


@tool(needs_approval=True)
def refund(amount: int) -> str:
    """Refund money to the customer."""
    refunds.append(amount)
    return f"refunded {amount}"


@tool
def balance() -> str:
    """The account balance."""
    return "120 EUR"


@tool(needs_approval=lambda args: args["amount"] > 100)
def transfer(amount: int) -> str:
    """Move money; large amounts need approval."""
    return f"moved {amount}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    refunds.clear()


async def test_a_call_that_needs_approval_pauses_and_resumes_from_json():
    script, llm, config = scripted(
        reply(call("balance", "c-balance"), call("refund", "c-refund", amount=30), cost=0.01),
    )
    agent = LLMAgent("support", model="script/m", tools=[balance, refund])
    paused = await agent.run("refund 30", config)

    assert paused.status == "paused" and paused.paused
    assert [(p.call_id, p.tool, p.arguments) for p in paused.pending_approvals] == [("c-refund", "refund", {"amount": 30})]
    assert refunds == []  # not run before approval
    assert [r.name for r in paused.tool_calls] == ["balance"]  # the call without approval ran
    assert paused.state is not None
    stored = paused.state.to_json()
    json.loads(stored)  # plain JSON, for a database

    script.add("Refunded 30 EUR.")
    resumed = await agent.resume(stored, {"c-refund": True}, RunConfig(llm=llm))
    assert resumed.status == "completed" and resumed.output == "Refunded 30 EUR."
    assert refunds == [30]
    assert resumed.run_id == paused.run_id
    assert [(r.name, r.approved) for r in resumed.tool_calls] == [("balance", None), ("refund", True)]
    sent = [p for p in script.requests[1].messages[-1].parts if isinstance(p, ToolResultPart)]
    assert [(p.call_id, p.content) for p in sent] == [("c-balance", "120 EUR"), ("c-refund", "refunded 30")]
    assert resumed.cost_usd == pytest.approx(0.01) and resumed.turns == 2


async def test_a_declined_call_goes_back_to_the_model_as_an_error():
    script, llm, config = scripted(reply(call("refund", "c1", amount=500)))
    agent = LLMAgent("support", model="script/m", tools=[refund])
    paused = await agent.run("refund 500", config)
    script.add("I could not refund that.")
    resumed = await agent.resume(paused.state, {"c1": False}, RunConfig(llm=llm))
    assert refunds == []
    assert resumed.tool_calls[0].outcome == "rejected" and resumed.tool_calls[0].approved is False
    sent = script.requests[1].messages[-1].parts[0]
    assert isinstance(sent, ToolResultPart) and sent.is_error and "declined" in sent.content


async def test_an_approval_rule_on_the_arguments():
    _, _, config = scripted(reply(call("transfer", "small", amount=5), call("transfer", "big", amount=500)))
    agent = LLMAgent("bank", model="script/m", tools=[transfer])
    paused = await agent.run("move", config)
    assert [p.call_id for p in paused.pending_approvals] == ["big"]
    assert paused.tool_calls[0].output == "moved 5"


async def test_resume_needs_a_decision_for_every_pending_call():
    _, llm, config = scripted(reply(call("refund", "c1", amount=1)))
    agent = LLMAgent("support", model="script/m", tools=[refund])
    paused = await agent.run("refund", config)
    with pytest.raises(InvalidRequestError, match="c1"):
        await agent.resume(paused.state, {}, RunConfig(llm=llm))


async def test_a_run_paused_after_a_handoff_resumes_in_the_receiver():
    cashier = LLMAgent("cashier", model="script/m", tools=[refund])
    front = LLMAgent("front", model="script/m", handoffs=[cashier])
    script, llm, config = scripted(reply(call("transfer_to_cashier")), reply(call("refund", "r1", amount=9)))
    paused = await front.run("refund 9", config)
    assert paused.agent == "cashier" and paused.paused
    state = RunState.from_json(paused.state.to_json())
    assert state.agent == "cashier" and state.handoffs[0].to_agent == "cashier"
    script.add("done")
    resumed = await front.resume(state, {"r1": True}, RunConfig(llm=llm))
    assert resumed.agent == "cashier" and resumed.output == "done" and refunds == [9]
    assert [h.to_agent for h in resumed.handoffs] == ["cashier"]


async def test_run_stream_announces_the_pause():
    _, _, config = scripted(reply(call("refund", "c1", amount=1)))
    events = [e async for e in LLMAgent("s", model="script/m", tools=[refund]).run_stream("x", config)]
    assert [e.type for e in events] == ["approval_required", "final"]
    assert events[0].requests[0].call_id == "c1"
    assert events[-1].result.status == "paused"


def test_a_malformed_state_is_refused():
    with pytest.raises(InvalidRequestError, match="version"):
        RunState.from_json('{"version": 99}')
    with pytest.raises(InvalidRequestError, match="JSON"):
        RunState.from_json("not json")
    with pytest.raises(InvalidRequestError, match="malformed"):
        RunState.from_dict({"version": 1})
