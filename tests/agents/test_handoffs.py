"""Handoffs: transfer_to_<agent> tools, the receiver continuing the run, input filters."""

from __future__ import annotations

import pytest

from agentadapter.agents import (
    AgentContext,
    AgentResult,
    BaseAgent,
    LLMAgent,
    handoff,
    keep_last,
    remove_tool_messages,
    tool,
)
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, ToolCallPart, ToolResultPart, Usage

from .conftest import call, reply, scripted


@tool
def lookup_invoice(number: str) -> str:
    """Find an invoice."""
    return f"invoice {number}: 40 EUR, paid"


def make_team() -> tuple[LLMAgent, LLMAgent]:
    billing = LLMAgent("Billing Desk", model="script/m", instructions="You handle invoices.",
                       tools=[lookup_invoice], description="Questions about invoices and payments.")
    triage = LLMAgent("triage", model="script/m", instructions="Route the user.", handoffs=[billing])
    return triage, billing


async def test_a_handoff_is_a_transfer_tool_and_the_receiver_finishes_the_run():
    triage, _ = make_team()
    script, _, config = scripted(
        reply(call("transfer_to_billing_desk"), cost=0.001),
        reply(call("lookup_invoice", number="42"), cost=0.002),
        reply("Invoice 42 is paid.", cost=0.003),
    )
    result = await triage.run("Is invoice 42 paid?", config)

    first = script.requests[0]
    assert first.messages[0].text == "Route the user."
    transfer = next(t for t in first.tools if t.name == "transfer_to_billing_desk")
    assert "Questions about invoices" in transfer.description
    assert transfer.parameters["properties"] == {}

    second = script.requests[1]
    assert second.messages[0].text == "You handle invoices."  # the receiver's own instructions
    assert [t.name for t in second.tools] == ["lookup_invoice"]
    assert second.messages[1].text == "Is invoice 42 paid?"  # it sees the conversation so far

    assert result.agent == "Billing Desk" and result.output == "Invoice 42 is paid."
    assert [(h.from_agent, h.to_agent) for h in result.handoffs] == [("triage", "Billing Desk")]
    assert [(r.name, r.outcome, r.agent) for r in result.tool_calls] == [
        ("transfer_to_billing_desk", "handoff", "triage"),
        ("lookup_invoice", "ok", "Billing Desk"),
    ]
    assert result.cost_usd == pytest.approx(0.006) and result.turns == 3


async def test_an_input_filter_trims_what_the_receiver_sees():
    billing = LLMAgent("billing", model="script/m", instructions="Billing.")
    triage = LLMAgent("triage", model="script/m", tools=[lookup_invoice],
                      handoffs=[handoff(billing, input_filter=remove_tool_messages)])
    script, _, config = scripted(
        reply(call("lookup_invoice", number="7")),
        reply("Let me pass you on.", call("transfer_to_billing")),
        "Billing here.",
    )
    result = await triage.run("invoice 7?", config)
    seen = script.requests[2].messages
    assert [m.role for m in seen] == ["system", "user", "assistant"]
    assert [m.text for m in seen[1:]] == ["invoice 7?", "Let me pass you on."]
    assert not any(isinstance(p, ToolCallPart | ToolResultPart) for m in seen for p in m.parts)
    assert result.output == "Billing here."
    assert [m.text for m in result.new_messages] == ["Billing here."]


def test_filters():
    conversation = [
        Message.user("one"), Message("assistant", [ToolCallPart("c", "f", {})]), Message.tool("c", "f", "r"),
        Message.assistant("two"), Message.user("three"),
    ]
    assert [m.text for m in remove_tool_messages(conversation)] == ["one", "two", "three"]
    assert [m.text for m in keep_last(2)(conversation)] == ["two", "three"]
    with pytest.raises(InvalidRequestError):
        keep_last(0)


async def test_a_handoff_to_a_custom_agent_lets_it_finish():
    class Human(BaseAgent):
        """Escalates to a person."""

        async def execute(self, context: AgentContext) -> AgentResult:
            seen = [m.text for m in context.messages]
            return AgentResult(output=f"escalated: {seen[0]}", usage=Usage(1, 1), cost_usd=0.5)

    human = Human()
    triage = LLMAgent("triage", model="script/m", handoffs=[human])
    _, _, config = scripted(reply(call("transfer_to_human"), cost=0.25))
    result = await triage.run("help!", config)
    assert result.output == "escalated: help!"
    assert result.cost_usd == pytest.approx(0.75)
    assert result.usage == Usage(1, 1) + script_usage()
    assert result.handoffs[0].to_agent == "human"


def script_usage() -> Usage:
    return Usage(10, 5)


async def test_two_handoffs_in_one_turn_take_the_first():
    a = LLMAgent("a", model="script/m")
    b = LLMAgent("b", model="script/m")
    triage = LLMAgent("triage", model="script/m", handoffs=[a, b])
    _, _, config = scripted(reply(call("transfer_to_b"), call("transfer_to_a")), "from b")
    result = await triage.run("x", config)
    assert result.agent == "b"
    assert [r.outcome for r in result.tool_calls] == ["handoff", "skipped"]


def test_agents_that_hand_off_to_each_other_and_find_agent():
    triage, billing = make_team()
    billing.handoffs = [triage]
    assert triage.find_agent("Billing Desk") is billing
    assert billing.find_agent("triage") is triage
    assert triage.find_agent("nobody") is None
    assert "Billing Desk" in repr(triage)  # cycles do not break repr
