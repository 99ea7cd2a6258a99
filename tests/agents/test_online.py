"""Agents over real wire formats: OpenAI-compatible and Anthropic endpoints on loopback fakes.

The "done when" of the agent layer: one agent with two tools answers through an OpenAI-format
endpoint and through the Anthropic format, and the two AgentResults have the same shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.agents import LLMAgent, OnlineAgent, RunConfig, tool
from agentadapter.agents.online import Endpoint
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import ConfigurationError
from fakes.anthropic_server import AnthropicFake
from fakes.openai_server import OpenAIFake

QUESTION = "What is the weather in Paris, in Fahrenheit?"
ANSWER = "It is 21.5 C (70.7 F) in Paris."


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return {"city": city, "celsius": 21.5}


@tool
def to_fahrenheit(celsius: float) -> float:
    """Convert Celsius to Fahrenheit."""
    return round(celsius * 9 / 5 + 32, 1)


TOOLS = [get_weather, to_fahrenheit]
ARGUMENTS = [("get_weather", {"city": "Paris"}), ("to_fahrenheit", {"celsius": 21.5})]


@pytest.fixture
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as server:
        yield server


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[AnthropicFake]:
    async with AnthropicFake() as server:
        yield server


@pytest.fixture
async def llm(openai_fake, anthropic_fake) -> AsyncIterator[LLM]:
    environ = {
        "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1",
        "XAI_API_KEY": "xai-k", "XAI_BASE_URL": openai_fake.url + "/v1",
        "GROQ_API_KEY": "gsk-k", "GROQ_BASE_URL": openai_fake.url + "/openai/v1",
        "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": anthropic_fake.url,
    }
    client = LLM(config={}, environ=environ)
    yield client
    await client.aclose()


def script_openai(fake: OpenAIFake) -> None:
    fake.reply(tool_calls=[{"id": f"call_{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(ARGUMENTS)],
               usage={"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100})
    fake.reply(ANSWER, usage={"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132})


def script_anthropic(fake: AnthropicFake) -> None:
    fake.reply(tool_uses=[{"name": n, "input": a} for n, a in ARGUMENTS],
               usage={"input_tokens": 80, "output_tokens": 20})
    fake.reply(ANSWER, usage={"input_tokens": 120, "output_tokens": 12})


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, not the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def check_answer(result: Any) -> None:
    assert result.status == "completed" and result.output == ANSWER
    assert [(r.name, r.arguments, r.outcome) for r in result.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "ok"), ("to_fahrenheit", {"celsius": 21.5}, "ok"),
    ]
    assert [r.output for r in result.tool_calls] == ['{"city": "Paris", "celsius": 21.5}', "70.7"]
    assert result.usage.input_tokens == 200 and result.usage.output_tokens == 32
    assert result.cost_usd > 0 and result.turns == 2


@pytest.mark.parametrize("streaming", [False, True], ids=["generate", "stream"])
async def test_two_tools_through_openai_and_anthropic_formats_give_identical_result_shapes(
    openai_fake, anthropic_fake, llm, streaming
):
    over_openai = OnlineAgent(name="weather", provider="openai", base_url=openai_fake.url + "/v1", api_key="k",
                              model="gpt-4o-mini", tools=TOOLS, instructions="Answer with the tools.")
    over_anthropic = OnlineAgent(name="weather", provider="anthropic", base_url=anthropic_fake.url,
                                 api_key="sk-ant-test-key", model="claude-sonnet-4-5", tools=TOOLS,
                                 instructions="Answer with the tools.")
    script_openai(openai_fake)
    script_anthropic(anthropic_fake)
    config = RunConfig(llm=llm)
    if streaming:
        first = await over_openai.run_stream(QUESTION, config).collect()
        second = await over_anthropic.run_stream(QUESTION, config).collect()
    else:
        first = await over_openai.run(QUESTION, config)
        second = await over_anthropic.run(QUESTION, config)

    for result in (first, second):
        check_answer(result)
    assert all(bool(r.json.get("stream")) == streaming for r in [*openai_fake.requests, *anthropic_fake.requests])
    assert (first.model, second.model) == ("gpt-4o-mini", "claude-sonnet-4-5")
    assert first.backend == second.backend == "online-weather-0"
    assert shape(first.to_dict()) == shape(second.to_dict())
    assert [m.role for m in first.messages] == [m.role for m in second.messages] == [
        "user", "assistant", "tool", "assistant",
    ]
    # Both endpoints saw the tool results in their own wire format.
    tool_messages = [m for m in openai_fake.last.json["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ['{"city": "Paris", "celsius": 21.5}', "70.7"]
    results = [b for m in anthropic_fake.requests[-1].json["messages"] for b in m["content"]
               if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert len(results) == 2
    assert openai_fake.last.headers["authorization"] == "Bearer k"


async def test_model_ids_from_the_environment_behave_the_same(openai_fake, anthropic_fake, llm):
    script_openai(openai_fake)
    script_anthropic(anthropic_fake)
    config = RunConfig(llm=llm)
    first = await LLMAgent("w", model="openai/gpt-4o-mini", tools=TOOLS).run(QUESTION, config)
    second = await LLMAgent("w", model="anthropic/claude-sonnet-4-5", tools=TOOLS).run(QUESTION, config)
    check_answer(first)
    check_answer(second)
    assert (first.backend, second.backend) == ("openai", "anthropic")
    assert shape(first.to_dict()) == shape(second.to_dict())


@pytest.mark.parametrize(("provider", "key", "path"), [
    ("xai", "xai-k", "/v1/chat/completions"),
    ("groq", "gsk-k", "/openai/v1/chat/completions"),
])
async def test_grok_and_groq_presets_through_the_environment(openai_fake, llm, provider, key, path):
    openai_fake.reply("hi from " + provider)
    agent = OnlineAgent(name="a", provider=provider, model="some-model")
    result = await agent.run("hi", RunConfig(llm=llm))
    assert result.output == "hi from " + provider
    assert openai_fake.last.path == path
    assert openai_fake.last.headers["authorization"] == f"Bearer {key}"


async def test_backup_providers_are_tried_when_the_primary_fails(openai_fake, anthropic_fake, llm):
    openai_fake.fail(500, {"error": {"message": "down"}}, times=5)
    anthropic_fake.reply("answer from the backup")
    agent = OnlineAgent(
        name="resilient", provider="openai", base_url=openai_fake.url + "/v1", api_key="k", model="gpt-4o-mini",
        max_retries=0, headers={"x-team": "blue"},
        backups=[{"provider": "anthropic", "base_url": anthropic_fake.url, "api_key": "sk-ant-test-key",
                  "model": "claude-sonnet-4-5"}],
    )
    result = await agent.run("hi", RunConfig(llm=llm))
    assert result.output == "answer from the backup"
    assert result.backend == "online-resilient-1" and result.model == "claude-sonnet-4-5"
    assert len(openai_fake.requests) == 1  # max_retries=0 on the primary
    assert openai_fake.requests[0].headers["x-team"] == "blue"


async def test_a_backup_given_as_a_model_id_and_no_key_for_a_custom_url(openai_fake, anthropic_fake, llm):
    openai_fake.fail(500, {"error": {"message": "down"}}, times=5)
    anthropic_fake.reply("from the env-configured backup")
    agent = OnlineAgent(name="r", base_url=openai_fake.url + "/v1", model="llama", max_retries=0,
                        backups=["anthropic/claude-sonnet-4-5"])
    result = await agent.run("hi", RunConfig(llm=llm))
    assert result.output == "from the env-configured backup" and result.backend == "anthropic"
    # A custom base URL never receives the OPENAI_API_KEY of the environment.
    assert "authorization" not in openai_fake.requests[0].headers


def test_online_agent_validation():
    with pytest.raises(ConfigurationError, match="unknown provider"):
        OnlineAgent(name="a", provider="nowhere", model="m")
    with pytest.raises(ConfigurationError, match="not a route"):
        OnlineAgent(name="a", base_url="http://x/v1", model=None)
    endpoint = Endpoint.of({"type": "claude", "model": "claude-sonnet-4-5", "api_key": "sk-secret-value"})
    assert endpoint.provider == "claude" and endpoint.spec().type == "anthropic"
    assert "sk-secret-value" not in repr(endpoint)


async def test_an_online_agent_counts_in_its_parents_usage(openai_fake, anthropic_fake, llm):
    agent = OnlineAgent(name="weather", provider="openai", base_url=openai_fake.url + "/v1", api_key="k",
                        model="gpt-4o-mini", tools=TOOLS, instructions="Answer with the tools.")
    script_openai(openai_fake)
    result = await agent.run(QUESTION, RunConfig(llm=llm))
    totals = await llm.usage(group_by=["model"])
    # The agent's own endpoint runs on a derived facade that shares the parent's ledger (and budgets).
    assert sum(t.requests for t in totals) == result.turns == 2
    assert sum(t.input_tokens for t in totals) == result.usage.input_tokens
