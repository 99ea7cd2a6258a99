"""LocalAgent end to end: a real tiny model through the MLX and transformers runners, tool calling in
every chat-template format through a scripted runner, and one agent definition that runs local or
online depending on a setting.
"""

from __future__ import annotations

import pydantic
import pytest

from agentadapter.agents import LocalAgent, OnlineAgent, RunConfig, create_agent, tool
from agentadapter.llm.client import LLM
from agentadapter.llm.runners.testing import ScriptedRunner
from agentadapter.testing import offline_llm

from .conftest import MLX, TRANSFORMERS, require

ENGINES = {"mlx": MLX, "transformers": TRANSFORMERS}


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("runner", list(ENGINES))
async def test_a_local_agent_runs_a_tiny_model_end_to_end(runner, tiny_model):
    require(*ENGINES[runner])
    agent = LocalAgent(model_id=str(tiny_model), runner=runner,
                       generation_config={"max_new_tokens": 8, "temperature": 0})
    assert agent.name == "tiny-llama" and agent.model_id == f"local/{runner}/{tiny_model}"
    llm = offline_llm()
    result = await agent.run("the quick brown fox", RunConfig(llm=llm))
    assert result.status == "completed" and isinstance(result.output, str) and result.output == result.text
    assert result.backend == "local" and result.model == f"{runner}/{tiny_model}"
    assert result.usage.input_tokens > 0 and 1 <= result.usage.output_tokens <= 8
    assert result.cost_usd == 0.0 and result.turns == 1
    # Streamed: the text deltas add up to the same (greedy) answer.
    stream = agent.run_stream("the quick brown fox", RunConfig(llm=llm))
    deltas = [event.text async for event in stream if event.type == "text_delta"]
    assert stream.result is not None and "".join(deltas) == stream.result.output == result.output
    assert stream.result.usage == result.usage


FORMATS = {
    "hermes": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "mistral": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]',
    "llama3": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("streamed", [False, True])
async def test_the_tool_loop_runs_on_each_tool_call_format(fmt, streamed):
    agent = LocalAgent(name="weather", model_id="any", runner=ScriptedRunner, tools=[get_weather],
                       runner_kwargs={"script": [FORMATS[fmt], "It is sunny in Paris."]})
    config = RunConfig(llm=offline_llm())
    if streamed:
        stream = agent.run_stream("Weather in Paris?", config)
        types = [event.type async for event in stream]
        assert "tool_call" in types and "tool_result" in types
        result = stream.result
    else:
        result = await agent.run("Weather in Paris?", config)
    assert result is not None and result.output == "It is sunny in Paris."
    assert [(c.name, c.arguments, c.output) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "sunny in Paris")]
    assert result.turns == 2 and result.cost_usd == 0.0


class Forecast(pydantic.BaseModel):
    city: str
    sunny: bool


async def test_a_local_agent_gives_typed_output_and_repairs_a_bad_answer():
    agent = LocalAgent(name="typed", model_id="any", runner=ScriptedRunner, output_type=Forecast,
                       runner_kwargs={"script": ['{"city": "Paris"}', '{"city": "Paris", "sunny": true}']})
    result = await agent.run("Forecast for Paris?", RunConfig(llm=offline_llm()))
    assert result.output == Forecast(city="Paris", sunny=True) and result.turns == 2


async def test_one_agent_definition_runs_local_or_online_by_setting(tiny_model, settings_env):
    require(*MLX)
    spec = {"name": "assistant", "model": "tiny-llama", "instructions": "Answer briefly.",
            "generation_config": {"max_new_tokens": 6, "temperature": 0}}
    settings_env(AGENT_DEFAULT_TRANSPORT="local", LOCAL_MODEL_PATHS=str(tiny_model.parent))
    local = create_agent(spec)
    assert isinstance(local, LocalAgent) and local.model_id == f"local/mlx/{tiny_model}"
    result = await local.run("the quick brown fox", RunConfig(llm=offline_llm()))
    assert result.backend == "local" and result.usage.output_tokens >= 1 and result.cost_usd == 0.0
    settings_env(AGENT_DEFAULT_TRANSPORT="online")
    online = create_agent(spec)
    assert isinstance(online, OnlineAgent)
    # Online, the same name is an alias to whatever serves it (here the offline test backend).
    llm = LLM(config={"models": {"tiny-llama": "test/echo"}}, environ={})
    echoed = await online.run("the quick brown fox", RunConfig(llm=llm))
    assert echoed.backend == "test" and echoed.output == "the quick brown fox"
    assert type(echoed) is type(result)
