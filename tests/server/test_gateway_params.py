"""Every Chat Completions parameter through the gateway: mapped, dropped or refused per target, as configured.

The official ``openai`` package is the client; an OpenAI-format fake and an Anthropic-format fake are
the providers. Also here: the headers that name the route and the model that answered (streamed or
not), ``x-should-retry: false`` on failures a retry cannot fix (counted at the provider: the SDK does
not retry), the legacy ``functions`` API, and ``/v1/models`` listing a named backend's models with
the catalog's capabilities.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from agentadapter.llm.client import LLM
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.anthropic_server import AnthropicFake
from fakes.openai_server import OpenAIFake
from server.conftest import AppFactory
from server.test_gateway import CLAUDE, Gateway, serve

MINI = "openai/gpt-4o-mini"
HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def gateway(make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as openai_fake, AnthropicFake() as anthropic_fake:
        llm = LLM(
            config={
                "backends": {"lab": {"type": "openai", "base_url": openai_fake.url + "/v1", "api_key": "sk-lab",
                                     "model": "gpt-4o"}},
                "models": {
                    "fast": {"strategy": "failover", "targets": [MINI, CLAUDE]},
                    "lenient": {"strategy": "failover", "targets": [MINI, CLAUDE], "drop_params": True},
                    "smart": CLAUDE,
                    "ghost": "openai/gpt-ghost",
                },
            },
            environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                     "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": anthropic_fake.url},
            retry=RetryPolicy(max_retries=0),
        )
        async with make_api(llm=llm) as api, serve(api.app) as base_url:
            key = await api.key(role="member")
            yield Gateway(api, llm, openai_fake, anthropic_fake, base_url, key)


async def test_every_openai_parameter_reaches_an_openai_target(gateway: Gateway) -> None:
    gateway.openai_fake.reply("ok")
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model=MINI, messages=HI, frequency_penalty=0.5, presence_penalty=-0.25, logit_bias={"50256": -100},
        store=True, metadata={"ticket": "T-1"}, service_tier="flex", prompt_cache_key="tenant-a",
        safety_identifier="user-hash", prediction={"type": "content", "content": "ok"}, verbosity="low",
        web_search_options={}, seed=3, user="u-9", parallel_tool_calls=False,
        prompt_cache_retention="24h", n=1, logprobs=False, modalities=["text"])
    assert raw.headers.get("x-agentadapter-dropped-params") is None
    sent = gateway.openai_fake.last.json
    assert (sent["frequency_penalty"], sent["presence_penalty"], sent["seed"]) == (0.5, -0.25, 3)
    assert sent["logit_bias"] == {"50256": -100} and sent["store"] is True and sent["metadata"] == {"ticket": "T-1"}
    assert sent["service_tier"] == "flex" and sent["prompt_cache_key"] == "tenant-a"
    assert sent["safety_identifier"] == "user-hash" and sent["verbosity"] == "low"
    assert sent["prediction"] == {"type": "content", "content": "ok"} and sent["web_search_options"] == {}
    assert sent["prompt_cache_retention"] == "24h"
    for absent in ("n", "logprobs", "modalities", "user"):  # defaults ask for nothing; user is our usage tag
        assert absent not in sent


async def test_defaults_pass_every_target_and_a_stream_may_ask_for_no_obfuscation(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply("fine")
    stream = await gateway.client().chat.completions.create(
        model="smart", messages=HI, frequency_penalty=0, presence_penalty=0, n=1, store=False, logprobs=False,
        service_tier="auto", stream=True, stream_options={"include_usage": True, "include_obfuscation": False})
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fine"
    assert all(c.model == CLAUDE for c in chunks)


async def test_a_parameter_a_target_cannot_honour_is_refused_naming_both(gateway: Gateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="smart", messages=HI, logit_bias={"1": 5})
    assert refused.value.param == "logit_bias" and refused.value.code == "unsupported_parameter"
    assert CLAUDE in refused.value.message and "drop_params" in refused.value.message
    with pytest.raises(openai.BadRequestError) as seeded:  # a route refuses what any of its targets cannot do
        await client.chat.completions.create(model="fast", messages=HI, seed=1)
    assert seeded.value.param == "seed"
    with pytest.raises(openai.BadRequestError) as several:
        await client.chat.completions.create(model=MINI, messages=HI, n=3)
    assert several.value.param == "n"
    assert gateway.openai_fake.request_count() == 0 and gateway.anthropic_fake.requests == []


async def test_a_route_that_drops_says_what_it_dropped(gateway: Gateway) -> None:
    gateway.openai_fake.reply("dropped some")
    raw = await gateway.client().chat.completions.with_raw_response.create(
        model="lenient", messages=HI, seed=4, logit_bias={"1": 1}, frequency_penalty=0.3, temperature=0.1)
    assert set(raw.headers["x-agentadapter-dropped-params"].split(", ")) == {"seed", "frequency_penalty", "logit_bias"}
    assert raw.headers["x-agentadapter-route"] == "lenient" and raw.headers["x-agentadapter-model"] == MINI
    assert raw.parse().choices[0].message.content == "dropped some"
    sent = gateway.openai_fake.last.json
    assert "seed" not in sent and "logit_bias" not in sent and "frequency_penalty" not in sent
    assert sent["temperature"] == 0.1


async def test_json_mode_stays_json_mode_and_becomes_a_schema_where_there_is_none(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply(tool_uses=[{"id": "toolu_1", "name": "json_object", "input": {"ok": True}}])
    completion = await gateway.client().chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "JSON please"}], response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content or "") == {"ok": True}
    sent = gateway.anthropic_fake.requests[-1].json
    assert sent["tools"][0]["input_schema"]["type"] == "object"


async def test_streamed_chunks_name_the_target_that_answered_and_headers_the_route(gateway: Gateway) -> None:
    gateway.openai_fake.queue_error(500, "primary down")
    gateway.anthropic_fake.reply("from the backup")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/chat/completions", headers={"Authorization": f"Bearer {gateway.key}"}, json={
            "model": "fast", "stream": True, "messages": HI})
    assert response.headers["x-agentadapter-route"] == "fast"
    assert response.headers["x-agentadapter-model"] == CLAUDE
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    assert chunks and {chunk["model"] for chunk in chunks} == {CLAUDE}


async def test_the_legacy_functions_api(gateway: Gateway) -> None:
    functions: Any = [{"name": "weather", "description": "Weather in a city",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    client = gateway.client()
    gateway.openai_fake.reply(tool_calls=[{"id": "call_1", "name": "weather", "arguments": {"city": "Oslo"}}])
    completion = await client.chat.completions.create(model=MINI, messages=HI, functions=functions,
                                                      function_call={"name": "weather"})
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    assert choice.message.function_call is not None and choice.message.function_call.name == "weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Oslo"}
    sent = gateway.openai_fake.last.json
    assert sent["tools"][0]["function"]["name"] == "weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "weather"}}

    gateway.anthropic_fake.reply("It is sunny")  # the older history shape, answered by another format
    history: Any = [*HI, {"role": "assistant", "content": None,
                          "function_call": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
                    {"role": "function", "name": "weather", "content": "sunny"}]
    answer = await client.chat.completions.create(model="smart", messages=history, functions=functions)
    assert answer.choices[0].message.content == "It is sunny"
    blocks = gateway.anthropic_fake.requests[-1].json["messages"]
    assert blocks[1]["content"][0]["type"] == "tool_use" and blocks[2]["content"][0]["type"] == "tool_result"

    gateway.openai_fake.reply(tool_calls=[{"id": "call_2", "name": "weather", "arguments": {"city": "Rome"}}])
    stream = await client.chat.completions.create(model=MINI, messages=HI, functions=functions, stream=True)
    chunks = [chunk async for chunk in stream]
    calls = [c.choices[0].delta.function_call for c in chunks if c.choices and c.choices[0].delta.function_call]
    assert calls[0].name == "weather"
    assert json.loads("".join(call.arguments or "" for call in calls)) == {"city": "Rome"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        ["function_call"]
    with pytest.raises(openai.BadRequestError) as both:
        await client.chat.completions.create(model=MINI, messages=HI, functions=functions,
                                             tools=[{"type": "function", "function": functions[0]}])
    assert both.value.param == "functions"


async def test_failures_a_retry_cannot_fix_tell_the_sdk_not_to_retry(gateway: Gateway) -> None:
    retrying = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=2)
    gateway.openai_fake.queue_error(401, "Incorrect API key provided")
    with pytest.raises(openai.InternalServerError) as rejected:
        await retrying.chat.completions.create(model=MINI, messages=HI)
    assert rejected.value.status_code == 502 and rejected.value.code == "upstream_authentication_failed"
    assert rejected.value.response.headers["x-should-retry"] == "false"
    assert gateway.openai_fake.request_count() == 1  # the SDK read the header and did not try again

    gateway.openai_fake.queue_error(404, "The model `gpt-ghost` does not exist")
    with pytest.raises(openai.InternalServerError) as missing:  # the operator's alias: not the client's fault
        await retrying.chat.completions.create(model="ghost", messages=HI)
    assert missing.value.code == "upstream_model_not_found"
    assert missing.value.response.headers["x-should-retry"] == "false"
    assert gateway.openai_fake.request_count() == 2

    gateway.openai_fake.queue_error(503, "busy")  # transient: no header, the SDK's own policy retries
    gateway.openai_fake.reply("after a retry")
    done = await retrying.chat.completions.create(model=MINI, messages=HI)
    assert done.choices[0].message.content == "after a retry" and gateway.openai_fake.request_count() == 4


async def test_parameter_values_are_checked(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        for field, value in [("frequency_penalty", 3), ("logit_bias", {"x": 1}), ("service_tier", "gold"),
                             ("metadata", {"k": 1}), ("top_logprobs", 2), ("verbosity", "loud"),
                             ("functions", "weather"), ("prediction", {"type": "text"})]:
            response = await http.post("/chat/completions", headers={"Authorization": f"Bearer {gateway.key}"},
                                       json={"model": MINI, "messages": HI, field: value})
            assert response.status_code == 400, field
            assert response.json()["error"]["param"] == field


async def test_the_models_list_has_named_backends_and_true_route_capabilities(gateway: Gateway) -> None:
    gateway.openai_fake.models.append({"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "openai"})
    listed = {model.id: model.model_dump() for model in (await gateway.client().models.list()).data}
    lab = listed["lab/gpt-4o-mini"]  # listed by the backend's own GET /models
    assert lab["owned_by"] == "lab" and lab["known"] is True and lab["capabilities"]["vision"] is True
    assert lab["available"] is True and lab["pricing"]["input"] > 0
    assert "lab/gpt-4o" in listed
    fast = listed["fast"]
    claude = listed[CLAUDE]
    assert fast["context_window"] == min(listed[MINI]["context_window"], claude["context_window"])
    assert fast["capabilities"]["prompt_caching"] == (
        listed[MINI]["capabilities"]["prompt_caching"] and claude["capabilities"]["prompt_caching"])


_HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("/chat/completions", {"model": MINI, "messages": HI, "tools": [{"type": "function", "function": {
        "name": "x", "parameters": "not a schema"}}]}),
    ("/chat/completions", {"model": MINI, "messages": HI, "functions": [{"name": "x", "parameters": [1]}]}),
    ("/chat/completions", {"model": MINI, "messages": [{"role": "function", "name": "x", "content": "orphan"}]}),
    ("/chat/completions", {"model": MINI, "messages": HI, "function_call": {"name": 5}}),
    ("/chat/completions", {"model": MINI, "messages": HI, "stream_options": {"include_obfuscation": "yes"},
                           "stream": True}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": None, "data": "aGk="}}]}]}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!"}}]}]}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "x", "input": [1]}]}]}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": HI, "tools": [{"name": "x", "input_schema": "s"}]}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": HI, "thinking": {"type": "enabled"}}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": HI, "output_config": {"format": {
        "type": "json_schema", "schema": {"$ref": "http://elsewhere/schema"}}}}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "x", "signature": 5}]}]}),
    ("/messages", {"model": MINI, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image"}]}]}]}),
    ("/messages/count_tokens", {"model": MINI, "messages": "hi"}),
    ("/responses", {"model": MINI, "input": [{"type": "reasoning", "summary": "x", "encrypted_content": 5}]}),
    ("/responses", {"model": MINI, "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,!!"}]}]}),
    ("/responses", {"model": MINI, "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}),
    ("/responses", {"model": MINI, "input": "x", "tools": [{"type": "function", "name": "f", "parameters": "s"}]}),
    ("/responses", {"model": MINI, "input": "x", "text": {"format": {"type": "json_schema", "name": "n",
                                                                      "schema": {"$ref": "#/nowhere"}}}}),
    ("/responses", {"model": MINI, "input": [{"type": "item_reference", "id": "msg_1"}]}),
    ("/responses", {"model": MINI, "input": [], "previous_response_id": 5}),
    ("/responses", {"model": MINI, "input": "x", "reasoning": {"effort": "enormous"}}),
]


@pytest.mark.parametrize(("path", "body"), _HOSTILE, ids=[f"{p}-{i}" for i, (p, _) in enumerate(_HOSTILE)])
async def test_malformed_bodies_are_4xx_naming_the_field(gateway: Gateway, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post(path, headers={"Authorization": f"Bearer {gateway.key}"}, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert gateway.openai_fake.request_count() == 0


def test_a_route_whose_every_target_failed_lastingly_is_not_retried() -> None:
    from agentadapter.llm.errors import AllTargetsFailedError, AuthenticationError, NotFoundError, ServerError
    from agentadapter.server.gateway.errors import gateway_error

    lasting = AllTargetsFailedError("every target failed", [
        AuthenticationError("bad key", provider="openai"), NotFoundError("no model", provider="anthropic")])
    assert gateway_error(lasting, "fast").headers == {"x-should-retry": "false"}
    transient = AllTargetsFailedError("every target failed", [
        AuthenticationError("bad key", provider="openai"), ServerError("500", provider="anthropic")])
    assert gateway_error(transient, "fast").headers is None
    missing = gateway_error(NotFoundError("no such model", provider="openai", model="gpt-9"), "openai/gpt-9")
    assert (missing.status, missing.code, missing.headers) == (404, "model_not_found", {"x-should-retry": "false"})


async def test_log_probabilities_come_back_from_a_chat_completions_target(gateway: Gateway) -> None:
    logprobs = {"content": [{"token": "ok", "logprob": -0.01, "bytes": [111, 107], "top_logprobs": [
        {"token": "ok", "logprob": -0.01, "bytes": [111, 107]}]}], "refusal": None}
    gateway.openai_fake.reply(raw_body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "logprobs": logprobs,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    completion = await gateway.client().chat.completions.create(model=MINI, messages=HI, logprobs=True,
                                                                top_logprobs=1)
    assert completion.choices[0].logprobs is not None
    assert completion.choices[0].logprobs.model_dump()["content"] == logprobs["content"]
    assert (gateway.openai_fake.last.json["logprobs"], gateway.openai_fake.last.json["top_logprobs"]) == (True, 1)
    with pytest.raises(openai.BadRequestError) as streamed:  # chunks do not carry them here
        await gateway.client().chat.completions.create(model=MINI, messages=HI, logprobs=True, stream=True)
    assert streamed.value.param == "logprobs" and "drop_params" in streamed.value.message


async def test_a_reasoning_effort_is_held_to_the_targets_that_reason(gateway: Gateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as refused:  # the catalog knows gpt-4o-mini does not reason
        await client.chat.completions.create(model=MINI, messages=HI, reasoning_effort="low")
    assert refused.value.param == "reasoning_effort" and MINI in refused.value.message
    gateway.anthropic_fake.reply("thought")
    await client.chat.completions.create(model="smart", messages=HI, reasoning_effort="low", max_tokens=2000)
    assert gateway.anthropic_fake.requests[-1].json["thinking"]["type"] == "enabled"
    gateway.openai_fake.reply("no thinking here")
    raw = await client.chat.completions.with_raw_response.create(model="lenient", messages=HI, reasoning_effort="high")
    assert raw.headers["x-agentadapter-dropped-params"] == "reasoning_effort"
    assert "reasoning_effort" not in gateway.openai_fake.last.json
