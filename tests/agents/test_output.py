"""Typed output: pydantic models and JSON schemas, native or through a forced tool, and repair."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from agentadapter.agents import LLMAgent, RunConfig, tool
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import OutputValidationError
from agentadapter.llm.messages import ToolResultPart

from .conftest import call, reply, scripted


class Weather(BaseModel):
    city: str
    celsius: float


WEATHER_SCHEMA = {
    "title": "Weather",
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
}


@tool
def lookup(city: str) -> str:
    """Look up the weather."""
    return f"{city}: 21.5C"


async def test_a_pydantic_output_type_gives_a_validated_object(llm):
    agent = LLMAgent("w", model="test/echo", output_type=Weather)
    result = await agent.run("Paris?", RunConfig(llm=llm))
    assert isinstance(result.output, Weather)
    assert json.loads(result.text) == result.output.model_dump()


async def test_a_json_schema_output_type_is_validated_by_a_model_built_from_it():
    script, _, config = scripted('{"city": "Paris", "celsius": "21.5"}')
    agent = LLMAgent("w", model="script/m", output_type=WEATHER_SCHEMA)
    result = await agent.run("Paris?", config)
    assert result.output == {"city": "Paris", "celsius": 21.5}  # coerced by the validation model
    sent = script.requests[0].output
    assert sent.name == "Weather" and sent.json_schema["properties"] == WEATHER_SCHEMA["properties"]


async def test_an_invalid_answer_goes_back_to_the_model_for_repair():
    script, _, config = scripted('{"city": "Paris"}', "```json\n{\"city\": \"Paris\", \"celsius\": 20}\n```")
    agent = LLMAgent("w", model="script/m", output_type=Weather)
    result = await agent.run("Paris?", config)
    assert result.output == Weather(city="Paris", celsius=20)
    assert result.turns == 2
    repair = script.requests[1].messages[-1]
    assert repair.role == "user" and "does not match the required output schema" in repair.text
    assert "celsius" in repair.text
    assert result.usage.input_tokens > 0  # the failed turn's usage is counted too


async def test_repairs_are_bounded_then_output_validation_error():
    script, llm, _ = scripted("not json", "still not", "nope")
    agent = LLMAgent("w", model="script/m", output_type=Weather)
    with pytest.raises(OutputValidationError) as caught:
        await agent.run("Paris?", RunConfig(llm=llm, max_output_repairs=2))
    assert "after 2 repair(s)" in str(caught.value)
    assert caught.value.raw == "nope"
    assert len(script.requests) == 3
    assert caught.value.result.turns == 3


async def test_the_tool_strategy_forces_an_output_tool():
    script, _, config = scripted(
        reply(call("lookup", city="Paris")),
        reply(call("final_output", city="Paris", celsius="oops")),
        reply(call("final_output", city="Paris", celsius=21.5)),
    )
    agent = LLMAgent("w", model="script/m", tools=[lookup], output_type=Weather, output_strategy="tool")
    result = await agent.run("Paris?", config)
    assert result.output == Weather(city="Paris", celsius=21.5)
    first = script.requests[0]
    assert first.output is None and first.tool_choice == "required"
    assert [t.name for t in first.tools] == ["lookup", "final_output"]
    rejected = next(p for p in script.requests[2].messages[-1].parts if isinstance(p, ToolResultPart))
    assert rejected.is_error and "does not match the output schema" in rejected.content
    assert [r.outcome for r in result.tool_calls] == ["ok", "error", "output"]
    assert json.loads(result.text) == {"city": "Paris", "celsius": 21.5}
    assert result.messages[-1].role == "tool"  # the final call is answered, so the conversation can go on


async def test_the_output_tool_wraps_a_schema_that_is_not_an_object():
    script, _, config = scripted(reply(call("final_output", value=["a", "b"])))
    schema = {"type": "array", "items": {"type": "string"}}
    agent = LLMAgent("w", model="script/m", output_type=schema, output_strategy="tool")
    result = await agent.run("list", config)
    assert result.output == ["a", "b"]
    assert script.requests[0].tools[0].parameters["required"] == ["value"]


async def test_calls_beside_the_final_output_are_answered_but_not_run():
    ran = []

    @tool
    def side_effect() -> str:
        """Records that it ran."""
        ran.append(1)
        return "ran"

    _, _, config = scripted(reply(call("side_effect"), call("final_output", city="Oslo", celsius=3)))
    agent = LLMAgent("w", model="script/m", tools=[side_effect], output_type=Weather, output_strategy="tool")
    result = await agent.run("Oslo?", config)
    assert result.output.city == "Oslo" and ran == []
    assert [r.outcome for r in result.tool_calls] == ["output", "skipped"]


def test_auto_strategy_is_native_where_the_model_has_structured_output():
    llm = LLM(config={}, environ={"OPENAI_API_KEY": "k", "GROQ_API_KEY": "k", "ANTHROPIC_API_KEY": "k"})
    agent = LLMAgent("w", output_type=Weather)
    assert agent.output_mode_for(llm, "openai/gpt-4o-mini") == "native"
    assert agent.output_mode_for(llm, "groq/llama-3.3-70b-versatile") == "tool"  # the catalog says no
    assert agent.output_mode_for(llm, "anthropic/claude-3-5-haiku") == "native"  # the backend forces a tool itself
    assert agent.output_mode_for(llm, "openai/some-new-model") == "native"  # unknown: assume response_format
    assert agent.clone(output_strategy="tool").output_mode_for(llm, "openai/gpt-4o-mini") == "tool"
