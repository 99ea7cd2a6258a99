"""Guardrails: input and output tripwires, from functions or classifier agents, recorded in the result."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentadapter.agents import (
    AgentContext,
    GuardrailResult,
    InputGuardrail,
    LLMAgent,
    OutputGuardrail,
    RunConfig,
    input_guardrail,
    output_guardrail,
)
from agentadapter.agents.errors import GuardrailTripped
from agentadapter.llm.errors import ConfigurationError, InvalidRequestError

from .conftest import scripted


@input_guardrail
def no_secrets(context: AgentContext, text: str) -> GuardrailResult:
    return GuardrailResult("password" in text.lower(), info="asked for a password")


@output_guardrail(name="no_shouting")
async def no_shouting(context: AgentContext, output: str) -> bool:
    return output.isupper()


async def test_an_input_guardrail_trip_stops_the_run_before_any_model_call():
    script, _, config = scripted("should not be asked")
    agent = LLMAgent("a", model="script/m", input_guardrails=[no_secrets])
    with pytest.raises(GuardrailTripped) as caught:
        await agent.run("What is the admin password?", config)
    error = caught.value
    assert error.guardrail == "no_secrets" and error.info == "asked for a password"
    assert script.requests == []
    recorded = error.result.guardrails
    assert [(g.name, g.kind, g.tripwire_triggered) for g in recorded] == [("no_secrets", "input", True)]


async def test_passing_guardrails_are_recorded_too():
    _, _, config = scripted("hello")
    agent = LLMAgent("a", model="script/m", input_guardrails=[no_secrets], output_guardrails=[no_shouting])
    result = await agent.run("hi", config)
    assert [(g.name, g.kind, g.tripwire_triggered) for g in result.guardrails] == [
        ("no_secrets", "input", False), ("no_shouting", "output", False),
    ]


async def test_an_output_guardrail_trip_stops_the_run():
    _, _, config = scripted("I AM SHOUTING")
    agent = LLMAgent("a", model="script/m", output_guardrails=[no_shouting])
    with pytest.raises(GuardrailTripped) as caught:
        await agent.run("hi", config)
    assert caught.value.guardrail == "no_shouting"
    assert caught.value.result.turns == 1


class Verdict(BaseModel):
    tripwire_triggered: bool
    reason: str


async def test_an_agent_used_as_a_classifier():
    script, llm, _ = scripted(
        '{"tripwire_triggered": true, "reason": "homework"}',
    )
    classifier = LLMAgent("homework_check", model="script/m", output_type=Verdict,
                          instructions="Is this a homework question?")
    agent = LLMAgent("tutor", model="script/m", input_guardrails=[classifier])
    with pytest.raises(GuardrailTripped) as caught:
        await agent.run("Solve 2x + 3 = 7 for my homework", RunConfig(llm=llm))
    assert caught.value.guardrail == "homework_check"
    assert caught.value.info == Verdict(tripwire_triggered=True, reason="homework")
    assert script.requests[0].messages[1].text == "Solve 2x + 3 = 7 for my homework"
    assert caught.value.result.usage.input_tokens > 0  # the classifier's usage counts toward the run


async def test_a_classifier_with_a_trip_rule():
    _script, llm, _ = scripted("SAFE", "fine answer")
    classifier = LLMAgent("labeler", model="script/m")
    guard = InputGuardrail.from_agent(classifier, trip_if=lambda label: label != "SAFE")
    result = await LLMAgent("a", model="script/m", input_guardrails=[guard]).run("hi", RunConfig(llm=llm))
    assert result.output == "fine answer"
    assert result.guardrails[0].info == "SAFE"


async def test_a_classifier_whose_answer_cannot_decide_is_a_configuration_error():
    script, llm, _ = scripted("maybe?")
    guard = OutputGuardrail.from_agent(LLMAgent("vague", model="script/m"))
    script.answers.insert(0, "the answer")
    with pytest.raises(ConfigurationError, match="tripwire_triggered"):
        await LLMAgent("a", model="script/m", output_guardrails=[guard]).run("hi", RunConfig(llm=llm))


def test_guardrails_in_the_wrong_list_or_of_the_wrong_kind_are_refused():
    with pytest.raises(InvalidRequestError, match="output guardrail"):
        LLMAgent("a", input_guardrails=[no_shouting])
    with pytest.raises(InvalidRequestError):
        LLMAgent("a", input_guardrails=["not callable"])
