"""The OpenAI-compatible gateway, called with the official ``openai`` package over real HTTP.

The app runs under uvicorn on loopback, with provider fakes behind it (OpenAI's wire format, and
Anthropic's to show the translation between formats), so what is tested is what an OpenAI client
sees: shapes, streams, tool calls, images, structured output, failover, the model list, errors as
the client's exception classes, and the usage the ledger records.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pydantic
import pytest
import uvicorn

from agentadapter.llm.client import LLM
from agentadapter.llm.errors import (
    AgentAdapterError,
    AllTargetsFailedError,
    APITimeoutError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    InsufficientCreditsError,
    ServerError,
)
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.server.gateway.errors import gateway_error
from fakes.anthropic_server import AnthropicFake
from fakes.openai_server import OpenAIFake
from server.conftest import Api, AppFactory

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
CLAUDE = "anthropic/claude-sonnet-4-5"
FORCE_WEATHER: Any = {"type": "function", "function": {"name": "weather"}}


@dataclass
class Gateway:
    api: Api
    llm: LLM
    openai_fake: OpenAIFake
    anthropic_fake: AnthropicFake
    base_url: str
    key: str

    def client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key or self.key, max_retries=0)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """The app under a real uvicorn on a free loopback port (its lifespan is already running)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def gateway(make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as openai_fake, AnthropicFake() as anthropic_fake:
        llm = LLM(
            config={"models": {
                "fast": {"strategy": "failover", "targets": ["openai/gpt-4o-mini", CLAUDE]},
                "smart": CLAUDE,
            }},
            environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                     "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": anthropic_fake.url},
            retry=RetryPolicy(max_retries=0),
        )
        async with make_api(llm=llm) as api, serve(api.app) as base_url:
            key = await api.key(role="member")
            yield Gateway(api, llm, openai_fake, anthropic_fake, base_url, key)


async def test_a_plain_completion(gateway: Gateway) -> None:
    gateway.openai_fake.reply("Hello there", usage={
        "prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 1}})
    completion = await gateway.client().chat.completions.create(
        model="openai/gpt-4o-mini", temperature=0.2, max_completion_tokens=50, seed=7, stop=["\n\n"], user="u-1",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 1
    sent = gateway.openai_fake.last.json
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.2 and sent["seed"] == 7
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["stop"] == ["\n\n"]


async def test_a_stream_with_usage(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply("streamed through another format", usage={"input_tokens": 9, "output_tokens": 5})
    stream = await gateway.client().chat.completions.create(
        model="smart", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream please"}])
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed through another format"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 5)
    assert len({c.id for c in chunks}) == 1


async def test_a_stream_without_usage_has_no_usage_chunk(gateway: Gateway) -> None:
    gateway.openai_fake.reply("short")
    stream = await gateway.client().chat.completions.create(
        model="openai/gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "x"}])
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", CLAUDE])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_call_round_trip(gateway: Gateway, model: str, streamed: bool) -> None:
    weather: Any = {"type": "function", "function": {"name": "weather", "description": "The weather in a city.",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                               "required": ["city"]}}}
    if model.startswith("openai/"):
        gateway.openai_fake.reply(tool_calls=[{"id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}])
        gateway.openai_fake.reply("Sunny in Paris")
    else:
        gateway.anthropic_fake.reply(tool_uses=[{"id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}])
        gateway.anthropic_fake.reply("Sunny in Paris")
    client = gateway.client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        stream = await client.chat.completions.create(model=model, messages=messages, tools=[weather],
                                                      tool_choice="auto", stream=True)
        calls: dict[int, dict[str, str]] = {}
        finish = None
        async for chunk in stream:
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
        assert finish == "tool_calls" and list(calls) == [0]
        call_id, name, arguments = calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
    else:
        first = await client.chat.completions.create(model=model, messages=messages, tools=[weather],
                                                     tool_choice=FORCE_WEATHER,
                                                     parallel_tool_calls=False)
        assert first.choices[0].finish_reason == "tool_calls"
        tool_calls = first.choices[0].message.tool_calls
        assert tool_calls is not None
        tool_call = tool_calls[0]
        assert tool_call.type == "function"
        call_id, name, arguments = tool_call.id, tool_call.function.name, tool_call.function.arguments
    assert name == "weather" and json.loads(arguments) == {"city": "Paris"} and call_id
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 24 C"},
    ]
    second = await client.chat.completions.create(model=model, messages=messages, tools=[weather])
    assert second.choices[0].message.content == "Sunny in Paris"
    if model.startswith("openai/"):
        sent = gateway.openai_fake.last.json["messages"]
        assert sent[-1] == {"role": "tool", "tool_call_id": call_id, "content": "sunny, 24 C"}
    else:
        sent = gateway.anthropic_fake.requests[-1].json["messages"]
        assert sent[-1]["content"][0]["type"] == "tool_result" and sent[-1]["content"][0]["tool_use_id"] == call_id


async def test_image_inputs(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply("a tiny image")
    completion = await gateway.client().chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]}])
    assert completion.choices[0].message.content == "a tiny image"
    block = gateway.anthropic_fake.requests[-1].json["messages"][0]["content"][1]
    assert block["type"] == "image" and block["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}

    gateway.openai_fake.reply("a cat")
    await gateway.client().chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg", "detail": "high"}}]}])
    part = gateway.openai_fake.last.json["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg", "detail": "high"}}


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_structured_output(gateway: Gateway) -> None:
    gateway.openai_fake.reply('{"name": "Paris", "population": 2100000}')
    parsed = await gateway.client().chat.completions.parse(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "A city"}], response_format=City)
    assert parsed.choices[0].message.parsed == City(name="Paris", population=2100000)
    format_sent = gateway.openai_fake.last.json["response_format"]
    assert format_sent["type"] == "json_schema" and format_sent["json_schema"]["name"] == "City"
    assert format_sent["json_schema"]["strict"] is True

    gateway.openai_fake.reply('{"ok": true}')
    completion = await gateway.client().chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "JSON"}],
        response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content or "") == {"ok": True}
    assert gateway.openai_fake.last.json["response_format"] == {"type": "json_object"}  # JSON mode stays JSON mode


async def test_a_failover_route_from_the_config(gateway: Gateway) -> None:
    gateway.openai_fake.queue_error(500, "the primary is down")
    gateway.anthropic_fake.reply("the backup answered")
    completion = await gateway.client().chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Anyone there?"}])
    assert completion.choices[0].message.content == "the backup answered"
    assert completion.model.startswith("anthropic/")
    assert gateway.openai_fake.request_count() == 1


async def test_the_models_list(gateway: Gateway) -> None:
    client = gateway.client()
    listed = {model.id: model for model in (await client.models.list()).data}
    mini = listed["openai/gpt-4o-mini"].model_dump()
    assert mini["object"] == "model" and mini["owned_by"] == "openai" and mini["available"] is True
    assert mini["context_window"] > 0 and mini["pricing"]["input"] > 0 and mini["capabilities"]["tools"] is True
    assert listed["gemini/gemini-2.5-flash"].model_dump()["available"] is False  # no GEMINI key here
    fast = listed["fast"].model_dump()
    assert fast["owned_by"] == "agentadapter" and fast["targets"] == ["openai/gpt-4o-mini", CLAUDE]
    assert (await client.models.retrieve("smart")).model_dump()["targets"] == [CLAUDE]
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nowhere/model")


async def test_errors_are_the_clients_exception_classes(gateway: Gateway) -> None:
    client = gateway.client()
    messages: list[Any] = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model="no-such-model", messages=messages)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        await gateway.client("aa_not_a_key").chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    with pytest.raises(openai.BadRequestError) as two:
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, n=2)
    assert two.value.param == "n"
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.chat.completions.create(model="smart", messages=messages, logprobs=True)
    assert unknown.value.param == "logprobs"

    gateway.openai_fake.queue_error(429, "slow down", headers={"retry-after": "3"})
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    assert limited.value.response.headers["retry-after"] == "3"
    gateway.openai_fake.queue_error(401, "bad upstream key")
    with pytest.raises(openai.InternalServerError) as upstream:
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    assert upstream.value.status_code == 502 and upstream.value.code == "upstream_authentication_failed"
    viewer = await gateway.api.key(role="viewer")
    with pytest.raises(openai.PermissionDeniedError):
        await gateway.client(viewer).chat.completions.create(model="openai/gpt-4o-mini", messages=messages)


async def test_an_error_mid_stream_is_an_error_event(gateway: Gateway) -> None:
    gateway.openai_fake.reply("partial answer that breaks", error_after=2,
                              error_body={"error": {"message": "upstream broke", "type": "server_error"}})
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/chat/completions", headers={"Authorization": f"Bearer {gateway.key}"}, json={
            "model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    frames = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    last = json.loads(frames[-1])
    assert "error" in last and last["error"]["code"] and "[DONE]" not in frames


async def test_usage_is_recorded_with_source_gateway(gateway: Gateway) -> None:
    gateway.openai_fake.reply("counted", usage={"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26})
    await gateway.client().chat.completions.create(model="openai/gpt-4o-mini",
                                                   messages=[{"role": "user", "content": "count me"}])
    await gateway.llm.ledger.flush()
    tenant = await gateway.api.tenant()
    totals = await gateway.llm.ledger.totals(("source", "tenant", "api_key"), filters={"source": "gateway"})
    assert len(totals) == 1
    assert totals[0].key["tenant"] == str(tenant.id) and totals[0].key["api_key"]
    assert (totals[0].requests, totals[0].input_tokens, totals[0].output_tokens) == (1, 20, 6)


async def test_a_stream_that_fails_before_its_first_token_gets_an_error_status(gateway: Gateway) -> None:
    gateway.openai_fake.queue_error(404, "The model `gpt-9` does not exist")
    with pytest.raises(openai.NotFoundError) as missing:
        await gateway.client().chat.completions.create(
            model="openai/gpt-9", stream=True, messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"


@pytest.mark.parametrize(("error", "status", "code", "retry_after"), [
    (InsufficientCreditsError("no credits left", balance_usd=0.0, needed_usd=0.01), 402, "insufficient_credits", None),
    (BudgetExceededError("daily budget spent", scope="global", limit_usd=5.0, spent_usd=5.0), 429, "budget_exceeded",
     None),
    (CircuitOpenError("openai is failing", target="openai/gpt-4o-mini", retry_in=4.2), 503, "circuit_open", "5"),
    (APITimeoutError("no answer in 60 s", provider="openai", model="gpt-4o-mini"), 504, "upstream_timeout", None),
    (AllTargetsFailedError("every target failed", [ServerError("500", provider="openai")]), 502,
     "all_targets_failed", None),
    (ConfigurationError("OPENAI_API_KEY is not set"), 400, "model_not_available", None),
])
def test_library_errors_map_to_openai_statuses(error: AgentAdapterError, status: int, code: str,
                                               retry_after: str | None) -> None:
    mapped = gateway_error(error, "openai/gpt-4o-mini")
    assert (mapped.status, mapped.code) == (status, code)
    assert (mapped.headers or {}).get("Retry-After") == retry_after
    assert mapped.message == str(error)


class _NoCredits:
    """A tenant's credit guard with nothing left."""

    async def reserve(self, estimate_usd: float, tags: Any) -> Any:
        raise InsufficientCreditsError("the tenant's credit balance (0.00 USD) cannot cover this call; top it up",
                                       balance_usd=0.0, needed_usd=estimate_usd)


async def test_insufficient_credits_is_a_402(gateway: Gateway) -> None:
    async def guards(tenant_id: Any) -> list[Any]:
        return [_NoCredits()]

    gateway.api.state.tenant_llms.guards = guards
    gateway.api.state.tenant_llms.invalidate()
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as refused:
            await gateway.client().chat.completions.create(
                model="openai/gpt-4o-mini", stream=stream, messages=[{"role": "user", "content": "x"}])
        assert refused.value.status_code == 402 and refused.value.code == "insufficient_credits"
    assert gateway.openai_fake.request_count() == 0
