"""OpenAI's Responses API through the gateway: the official ``openai`` package and ``openai-agents`` as clients.

The providers are loopback fakes in Anthropic's format (so a Responses request is answered by a
backend of another format: text, function calls and their outputs, streams) and in OpenAI's chat
format (structured output). Also: ``previous_response_id`` through the per-tenant store (another
tenant cannot continue from it), the typed event stream, and the store on Redis.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest

from agentadapter.config import GatewaySpec
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Message
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.redis_connections import RedisConnections
from agentadapter.service.responses import RedisResponseStore, load_conversation, response_store, save_conversation
from fakes.anthropic_server import AnthropicFake
from fakes.openai_server import OpenAIFake
from server.conftest import AppFactory
from server.test_gateway import CLAUDE, Gateway, serve
from services import start_redis, stop_group

MINI = "openai/gpt-4o-mini"
WEATHER: Any = {"type": "function", "name": "weather", "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                               "additionalProperties": False}, "strict": True}


@pytest.fixture
async def gateway(make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as openai_fake, AnthropicFake() as anthropic_fake:
        llm = LLM(
            config={"models": {"claude": CLAUDE}},
            environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                     "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": anthropic_fake.url},
            retry=RetryPolicy(max_retries=0),
        )
        async with make_api(llm=llm) as api, serve(api.app) as base_url:
            key = await api.key(role="member")
            yield Gateway(api, llm, openai_fake, anthropic_fake, base_url, key)


async def test_a_response_answered_by_an_anthropic_format_backend(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply("Bonjour", usage={"input_tokens": 7, "output_tokens": 2,
                                                   "cache_read_input_tokens": 3})
    raw = await gateway.client().responses.with_raw_response.create(
        model="claude", instructions="Answer in French.", input="Hello", max_output_tokens=50, temperature=0.5,
        metadata={"run": "r1"}, user="u-1")
    response = raw.parse()
    assert raw.headers["x-agentadapter-route"] == "claude" and raw.headers["x-agentadapter-model"] == CLAUDE
    assert response.object == "response" and response.status == "completed" and response.model == CLAUDE
    assert response.output_text == "Bonjour" and response.id.startswith("resp_")
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (10, 2)
    assert response.usage.input_tokens_details.cached_tokens == 3
    sent = gateway.anthropic_fake.requests[-1].json
    assert sent["system"] == "Answer in French."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.5


async def test_function_calls_and_previous_response_id(gateway: Gateway) -> None:
    client = gateway.client()
    gateway.anthropic_fake.reply(tool_uses=[{"id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}])
    first = await client.responses.create(model=CLAUDE, input="Weather in Oslo?", tools=[WEATHER])
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "weather" and call.call_id == "toolu_1"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    gateway.anthropic_fake.reply("Sunny in Oslo")
    second = await client.responses.create(
        model=CLAUDE, previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == "Sunny in Oslo" and second.previous_response_id == first.id
    messages = gateway.anthropic_fake.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": "Weather in Oslo?"}]  # from the store
    assert messages[1]["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                       "input": {"city": "Oslo"}}]
    assert messages[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]

    other_tenant = await gateway.api.key("b", role="member")
    with pytest.raises(openai.NotFoundError) as elsewhere:
        await gateway.client(other_tenant).responses.create(model=CLAUDE, previous_response_id=second.id, input="x")
    assert elsewhere.value.code == "previous_response_not_found"
    gateway.anthropic_fake.reply("ok")
    unstored = await client.responses.create(model=CLAUDE, input="not kept", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=CLAUDE, previous_response_id=unstored.id, input="x")


async def test_a_streamed_response_has_the_typed_events(gateway: Gateway) -> None:
    gateway.anthropic_fake.reply("streamed words here", usage={"input_tokens": 4, "output_tokens": 3})
    client = gateway.client()
    stream = await client.responses.create(model=CLAUDE, input="Stream it", stream=True)
    events = [event async for event in stream]
    names = [event.type for event in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert "response.output_text.delta" in names and names[-1] == "response.completed"
    assert names[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    completed = events[-1].response  # type: ignore[union-attr]
    assert text == completed.output_text == "streamed words here"
    assert completed.output[0].id == events[2].item.id  # type: ignore[union-attr]
    assert completed.usage is not None and completed.usage.total_tokens == 7

    gateway.anthropic_fake.reply(tool_uses=[{"id": "toolu_9", "name": "weather", "input": {"city": "Rome"}}])
    async with client.responses.stream(model=CLAUDE, input="Weather in Rome?", tools=[WEATHER]) as helper:
        final = await helper.get_final_response()
    call = final.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Rome"}


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_structured_output_with_text_format(gateway: Gateway) -> None:
    gateway.openai_fake.reply('{"name": "Paris", "population": 2100000}')
    parsed = await gateway.client().responses.parse(model=MINI, input="A city", text_format=City)
    assert parsed.output_parsed == City(name="Paris", population=2100000)
    sent = gateway.openai_fake.last.json
    assert sent["response_format"]["type"] == "json_schema" and sent["response_format"]["json_schema"]["name"] == "City"
    gateway.openai_fake.reply('{"ok": true}')
    await gateway.client().responses.create(model=MINI, input="JSON please", text={"format": {"type": "json_object"}})
    assert gateway.openai_fake.last.json["response_format"] == {"type": "json_object"}


async def test_refusals(gateway: Gateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as builtin:
        await client.responses.create(model=MINI, input="x", tools=[{"type": "web_search"}])
    assert builtin.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as background:
        await client.responses.create(model=MINI, input="x", background=True)
    assert background.value.param == "background"
    with pytest.raises(openai.BadRequestError) as tier:  # an OpenAI-only field to an Anthropic target
        await client.responses.create(model=CLAUDE, input="x", service_tier="flex")
    assert tier.value.param == "service_tier" and tier.value.code == "unsupported_parameter"
    assert gateway.openai_fake.request_count() == 0 and gateway.anthropic_fake.requests == []


_AGENT_SCRIPT = """
import asyncio, sys
import agents, openai

agents.set_tracing_disabled(True)

@agents.function_tool
def weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"sunny in {city}"

async def main() -> None:
    client = openai.AsyncOpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
    model = agents.OpenAIResponsesModel(model=sys.argv[3], openai_client=client)
    agent = agents.Agent(name="forecaster", instructions="Use the tool.", model=model, tools=[weather])
    result = await agents.Runner.run(agent, "Weather in Oslo?")
    print(result.final_output)
    streamed = agents.Runner.run_streamed(agent, "Weather in Oslo, streamed?")
    kinds = {event.type async for event in streamed.stream_events()}
    print(streamed.final_output, "raw_response_event" in kinds)

asyncio.run(main())
"""


async def test_openai_agents_on_its_default_responses_path(gateway: Gateway, tmp_path: Path) -> None:
    # openai-agents' package is named `agents`, as is a test package here: it runs in a process of its own.
    for answer in ("It is sunny in Oslo.", "Still sunny."):
        gateway.anthropic_fake.reply(tool_uses=[{"id": "toolu_a", "name": "weather", "input": {"city": "Oslo"}}])
        gateway.anthropic_fake.reply(answer)
    script = tmp_path / "agent_run.py"
    script.write_text(_AGENT_SCRIPT)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), gateway.base_url, gateway.key, CLAUDE, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(120):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-3000:]
    assert out.decode().splitlines() == ["It is sunny in Oslo.", "Still sunny. True"]
    second = gateway.anthropic_fake.requests[-1].json["messages"]
    assert second[-1]["content"][0]["type"] == "tool_result" and "sunny in Oslo" in json.dumps(second[-1])


async def test_the_store_on_redis_is_per_tenant_and_expires(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    redis = RedisConnections(server.url())
    try:
        store = response_store(GatewaySpec(responses_ttl_s=60), db=None, redis=redis)  # type: ignore[arg-type]
        assert isinstance(store, RedisResponseStore)
        tenant, other = uuid.uuid4(), uuid.uuid4()
        await save_conversation(store, tenant, "resp_1", [Message.user("hi"), Message.assistant("hello")], "m")
        assert [m.text for m in await load_conversation(store, tenant, "resp_1")] == ["hi", "hello"]
        assert await store.get(other, "resp_1") is None
        assert 0 < await redis.commands.pttl(f"agentadapter:responses:{tenant}:resp_1") <= 60_000
    finally:
        await redis.aclose()
        stop_group(server.process)


async def test_thinking_streams_as_reasoning_items_and_is_replayed_from_the_store(gateway: Gateway) -> None:
    client = gateway.client()
    gateway.anthropic_fake.reply("Four.", thinking="2 + 2 is 4")
    stream = await client.responses.create(model=CLAUDE, input="2 + 2?", reasoning={"effort": "medium"}, stream=True)
    events = [event async for event in stream]
    names = [event.type for event in events]
    assert "response.reasoning_summary_text.delta" in names and names[-1] == "response.completed"
    completed = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in completed.output] == ["reasoning", "message"]
    assert completed.output[0].summary[0].text == "2 + 2 is 4" and completed.output_text == "Four."
    assert gateway.anthropic_fake.requests[-1].json["thinking"]["type"] == "enabled"

    gateway.anthropic_fake.reply("Eight.")  # the fake refuses thinking it did not sign: the store kept the signature
    follow_up = await client.responses.create(model=CLAUDE, input="And 4 + 4?", previous_response_id=completed.id,
                                              reasoning={"effort": "medium"})
    assert follow_up.output_text == "Eight."
    replayed = gateway.anthropic_fake.requests[-1].json["messages"][1]["content"]
    assert replayed[0]["type"] == "thinking" and replayed[0]["thinking"] == "2 + 2 is 4"


async def test_the_database_store_reads_nothing_expired(gateway: Gateway) -> None:
    from agentadapter.service.responses import DatabaseResponseStore

    tenant = (await gateway.api.tenant()).id
    expired = DatabaseResponseStore(gateway.api.state.db, ttl_s=-1)
    await save_conversation(expired, tenant, "resp_old", [Message.user("old")], "m")
    assert await expired.get(tenant, "resp_old") is None
    live = DatabaseResponseStore(gateway.api.state.db, ttl_s=60)
    await save_conversation(live, tenant, "resp_new", [Message.user("new")], "m")  # deletes the expired row
    assert [m.text for m in await load_conversation(live, tenant, "resp_new")] == ["new"]
    assert await live.get(uuid.uuid4(), "resp_new") is None
