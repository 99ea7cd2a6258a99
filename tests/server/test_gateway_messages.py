"""Anthropic's Messages API through the gateway, with the official ``anthropic`` package as the client.

The providers behind it are loopback fakes: OpenAI's chat-completions format (so an Anthropic-format
request is answered by an OpenAI-format backend: tools, tool results, images, streams) and
Anthropic's own (thinking passed through as given). Also: ``count_tokens``, ``x-api-key`` and bearer
auth, Anthropic-shaped errors the SDK raises as its own classes, and usage recorded like any call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest

from agentadapter.llm.client import LLM
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.anthropic_server import AnthropicFake
from fakes.openai_server import OpenAIFake
from server.conftest import AppFactory
from server.test_gateway import CLAUDE, Gateway, serve

MINI = "openai/gpt-4o-mini"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
WEATHER: Any = {"name": "weather", "description": "The weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
async def gateway(make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as openai_fake, AnthropicFake() as anthropic_fake:
        llm = LLM(
            config={"models": {"fast": {"strategy": "failover", "targets": [MINI, CLAUDE]}}},
            environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                     "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": anthropic_fake.url},
            retry=RetryPolicy(max_retries=0),
        )
        async with make_api(llm=llm) as api, serve(api.app) as base_url:
            key = await api.key(role="member")
            yield Gateway(api, llm, openai_fake, anthropic_fake, base_url.removesuffix("/v1"), key)


def _client(gateway: Gateway, key: str | None = None) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key or gateway.key, max_retries=0)


async def test_a_message_answered_by_an_openai_format_backend(gateway: Gateway) -> None:
    gateway.openai_fake.reply("Hello from the other side", usage={
        "prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "prompt_tokens_details": {"cached_tokens": 10}})
    raw = await _client(gateway).messages.with_raw_response.create(
        model=MINI, max_tokens=100, system="Be brief.", extra_body={"temperature": 0.3}, stop_sequences=["\n\n"],
        metadata={"user_id": "end-user-1"}, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}])
    message = await raw.parse()
    assert raw.headers["x-agentadapter-model"] == MINI and raw.headers["x-agentadapter-route"] == MINI
    assert message.type == "message" and message.role == "assistant" and message.model == MINI
    assert message.content[0].type == "text" and message.content[0].text == "Hello from the other side"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == \
        (20, 10, 5)  # Anthropic's input_tokens leaves the cache reads out
    sent = gateway.openai_fake.last.json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert sent["max_tokens"] == 100 and sent["temperature"] == 0.3 and sent["stop"] == ["\n\n"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_round_trip_over_an_openai_format_backend(gateway: Gateway, streamed: bool) -> None:
    client = _client(gateway)
    gateway.openai_fake.reply(tool_calls=[{"id": "call_7", "name": "weather", "arguments": {"city": "Oslo"}}])
    question: Any = [{"role": "user", "content": "Weather in Oslo?"}]
    if streamed:
        async with client.messages.stream(model=MINI, max_tokens=200, tools=[WEATHER], messages=question,
                                          tool_choice={"type": "tool", "name": "weather"}) as stream:
            events = [event.type async for event in stream]
            message = await stream.get_final_message()
        assert events[0] == "message_start" and "content_block_start" in events and events[-1] == "message_stop"
    else:
        message = await client.messages.create(model=MINI, max_tokens=200, tools=[WEATHER], messages=question,
                                               tool_choice={"type": "tool", "name": "weather"})
    assert message.stop_reason == "tool_use"
    use = message.content[-1]
    assert use.type == "tool_use" and use.name == "weather" and use.input == {"city": "Oslo"} and use.id == "call_7"
    sent = gateway.openai_fake.last.json
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "weather"}}

    gateway.openai_fake.reply("It is sunny in Oslo")
    follow_up: Any = [*question, {"role": "assistant", "content": [block.model_dump() for block in message.content]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                    "content": [{"type": "text", "text": "sunny, 21 C"}]}]}]
    if streamed:
        async with client.messages.stream(model=MINI, max_tokens=200, tools=[WEATHER], messages=follow_up) as stream:
            text = "".join([chunk async for chunk in stream.text_stream])
            final = await stream.get_final_message()
        assert text == "It is sunny in Oslo" and final.stop_reason == "end_turn"
    else:
        final = await client.messages.create(model=MINI, max_tokens=200, tools=[WEATHER], messages=follow_up)
        assert final.content[0].type == "text" and final.content[0].text == "It is sunny in Oslo"
    wire = gateway.openai_fake.last.json["messages"]
    assert wire[1]["tool_calls"][0]["id"] == "call_7"
    assert wire[2] == {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 21 C"}


async def test_a_stream_is_anthropics_event_sequence(gateway: Gateway) -> None:
    gateway.openai_fake.reply("one two three", usage={"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11})
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/v1/messages", headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01"},
                                   json={"model": MINI, "max_tokens": 50, "stream": True,
                                         "messages": [{"role": "user", "content": "count"}]})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    names = [line[len("event: "):] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[1] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta") == "one two three"
    delta = next(d for d in data if d["type"] == "message_delta")
    assert delta["usage"]["input_tokens"] == 8 and delta["usage"]["output_tokens"] == 3
    assert data[0]["message"]["model"] == MINI


async def test_thinking_reaches_an_anthropic_backend_as_given(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply("42", thinking="Let me think", usage={
        "input_tokens": 5, "output_tokens": 9, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7})
    async with _client(gateway).messages.stream(
            model=CLAUDE, max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 2000},
            messages=[{"role": "user", "content": "The answer?"}]) as stream:
        message = await stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think" and message.content[0].signature
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (5, 100, 7)
    assert gateway.anthropic_fake.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2000}


async def test_count_tokens(gateway: Gateway) -> None:
    client = _client(gateway)
    counted = await client.messages.count_tokens(model=CLAUDE, system="sys", tools=[WEATHER],
                                                 messages=[{"role": "user", "content": "How many tokens?"}])
    assert counted.input_tokens > 0
    assert gateway.anthropic_fake.requests[-1].path.endswith("/v1/messages/count_tokens")
    local = await client.messages.count_tokens(model=MINI, messages=[{"role": "user", "content": "How many?"}])
    assert local.input_tokens > 0 and gateway.openai_fake.request_count() == 0


async def test_errors_are_anthropic_shaped_and_the_sdks_classes(gateway: Gateway) -> None:
    client = _client(gateway)
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        await _client(gateway, "aa_wrong").messages.create(model=MINI, max_tokens=5,
                                                           messages=[{"role": "user", "content": "x"}])
    assert unauthenticated.value.body["type"] == "error"  # type: ignore[index]
    assert unauthenticated.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="nowhere/model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.create(model=MINI, max_tokens=5, messages=[{"role": "system", "content": "x"}])  # type: ignore[typeddict-item]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        await client.messages.create(model=MINI, max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                     tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "server tools" in server_tool.value.message
    with pytest.raises(anthropic.BadRequestError) as top_k:  # top_k: Anthropic only, refused elsewhere
        await client.messages.create(model="fast", max_tokens=5, extra_body={"top_k": 5},
                                     messages=[{"role": "user", "content": "x"}])
    assert top_k.value.body["error"]["param"] == "top_k"  # type: ignore[index]
    gateway.openai_fake.queue_error(401, "bad upstream key")
    with pytest.raises(anthropic.InternalServerError) as upstream:
        await client.messages.create(model=MINI, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert upstream.value.response.headers["x-should-retry"] == "false"
    viewer = await gateway.api.key(role="viewer")
    with pytest.raises(anthropic.PermissionDeniedError):
        await _client(gateway, viewer).messages.create(model=MINI, max_tokens=5,
                                                       messages=[{"role": "user", "content": "x"}])


async def test_a_bearer_token_works_too_and_usage_is_recorded(gateway: Gateway) -> None:
    gateway.openai_fake.reply("counted", usage={"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14})
    client = anthropic.AsyncAnthropic(base_url=gateway.base_url, auth_token=gateway.key, max_retries=0)
    await client.messages.create(model=MINI, max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                 metadata={"user_id": "end-7"})
    await gateway.llm.ledger.flush()
    totals = await gateway.llm.ledger.totals(("source", "end_user"), filters={"source": "gateway"})
    assert [(t.key["end_user"], t.input_tokens, t.output_tokens) for t in totals] == [("end-7", 12, 2)]


async def test_the_anthropic_client_lists_the_models(gateway: Gateway) -> None:
    listed = [model async for model in _client(gateway).models.list()]
    ids = {model.id for model in listed}
    assert {MINI, CLAUDE, "fast"} <= ids
    claude = next(model for model in listed if model.id == CLAUDE)
    assert claude.type == "model" and claude.max_input_tokens and claude.max_input_tokens > 100_000
