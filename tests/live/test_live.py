"""Smoke tests against the real providers: text, stream, a tool call.

Marked ``live``: deselected by default, run with ``pytest -m live tests/live``. Each provider runs
only when its key is set, and never under ``CI=true``.
"""

from __future__ import annotations

import os

import pytest

from agentadapter import LLM

pytestmark = pytest.mark.live

CHEAP_MODELS = {
    "OPENAI_API_KEY": "openai/gpt-4o-mini",
    "ANTHROPIC_API_KEY": "anthropic/claude-haiku-4-5",
    "GEMINI_API_KEY": "gemini/gemini-2.5-flash",
    "GROQ_API_KEY": "groq/llama-3.3-70b-versatile",
    "XAI_API_KEY": "xai/grok-3-mini",
    "DEEPSEEK_API_KEY": "deepseek/deepseek-chat",
    "MISTRAL_API_KEY": "mistral/mistral-small-latest",
    "COHERE_API_KEY": "cohere/command-r",
    "OPENROUTER_API_KEY": "openrouter/openai/gpt-4o-mini",
}


def models() -> list[pytest.param]:
    params = []
    for key, model in CHEAP_MODELS.items():
        reason = None
        if os.environ.get("CI") == "true":
            reason = "live tests never run in CI"
        elif not os.environ.get(key):
            reason = f"{key} is not set"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(model, marks=marks, id=model))
    return params


def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: The city name.
    """
    return "sunny"


@pytest.mark.parametrize("model", models())
async def test_text(model: str) -> None:
    async with LLM() as llm:
        response = await llm.generate(model, "Reply with the single word: pong", max_tokens=20)
    assert "pong" in response.text.lower()
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize("model", models())
async def test_stream(model: str) -> None:
    async with LLM() as llm:
        stream = llm.stream(model, "Count from 1 to 5, separated by spaces.", max_tokens=40)
        chunks = [event.text async for event in stream if event.kind == "text"]
    assert len(chunks) >= 1 and stream.response is not None
    assert "".join(chunks) == stream.response.text


@pytest.mark.parametrize("model", models())
async def test_tool_call(model: str) -> None:
    async with LLM() as llm:
        response = await llm.generate(model, "What is the weather in Oslo? Use the tool.", tools=[get_weather],
                                      tool_choice="required", max_tokens=200)
    assert response.tool_calls and response.tool_calls[0].name == "get_weather"
    assert "oslo" in str(response.tool_calls[0].arguments.get("city", "")).lower()
