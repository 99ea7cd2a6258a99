"""A conversation started on one provider continues on another, for every pair of OpenAI,
Anthropic and Gemini: tool-call ids and tool names carry over, and reasoning is replayed only to
the provider that produced it."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter import LLM, Message
from fakes.anthropic_server import AnthropicFake
from fakes.gemini_server import GeminiFake
from fakes.openai_server import OpenAIFake

PROVIDERS = ["openai", "anthropic", "gemini"]
MODELS = {"openai": "openai/gpt-4o", "anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}


def get_weather(city: str) -> str:
    """Current weather.

    Args:
        city: The city name.
    """
    return "sunny"


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    servers = {"openai": OpenAIFake(), "anthropic": AnthropicFake(), "gemini": GeminiFake()}
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.close()


def llm_for(fakes: dict[str, Any]) -> LLM:
    environ = {
        "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fakes["openai"].url + "/v1",
        "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
        "GEMINI_API_KEY": "test-key", "GEMINI_BASE_URL": fakes["gemini"].url,
    }
    return LLM(config={}, environ=environ)


def script_tool_call(provider: str, fake: Any) -> None:
    if provider == "openai":
        fake.reply(tool_calls=[{"id": "call_abc123", "name": "get_weather", "arguments": {"city": "Oslo"}}])
    elif provider == "anthropic":
        fake.reply(thinking="The user wants weather.", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}}])
    else:
        fake.reply(thought="Weather lookup needed.", function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}])


def script_text(provider: str, fake: Any, text: str) -> None:
    fake.reply(text)


def wire_text(fake: Any) -> str:
    return json.dumps(fake.requests[-1].json)


@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(PROVIDERS, 2)))
async def test_tool_call_continues_on_another_provider(fakes, first, second):
    llm = llm_for(fakes)
    script_tool_call(first, fakes[first])
    started = await llm.generate(MODELS[first], "Weather in Oslo?", tools=[get_weather])
    (call,) = started.tool_calls
    assert call.name == "get_weather" and call.arguments == {"city": "Oslo"}

    conversation = [
        Message.user("Weather in Oslo?"),
        started.message,
        # OpenAI-style tool message without a name: the adapter recovers it from the call's id.
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    script_text(second, fakes[second], "It is sunny in Oslo.")
    finished = await llm.generate(MODELS[second], conversation, tools=[get_weather])
    assert finished.text == "It is sunny in Oslo."

    sent = wire_text(fakes[second])
    assert "get_weather" in sent and "sunny, 21 C" in sent
    # Reasoning from the first provider is not replayed to the second.
    for thought in ("The user wants weather.", "Weather lookup needed."):
        assert thought not in sent
    await llm.aclose()


async def test_reasoning_is_replayed_to_its_own_provider(fakes):
    llm = llm_for(fakes)
    script_tool_call("anthropic", fakes["anthropic"])
    started = await llm.generate(MODELS["anthropic"], "Weather in Oslo?", tools=[get_weather])
    (call,) = started.tool_calls
    conversation = [Message.user("Weather in Oslo?"), started.message,
                    Message.tool(call.id, "get_weather", "sunny")]
    fakes["anthropic"].reply("Sunny.")
    await llm.generate(MODELS["anthropic"], conversation, tools=[get_weather])
    sent = fakes["anthropic"].requests[-1].json
    blocks = [b["type"] for m in sent["messages"] for b in (m["content"] if isinstance(m["content"], list) else [])]
    assert "thinking" in blocks  # the signed thinking block went back to Anthropic
    await llm.aclose()
