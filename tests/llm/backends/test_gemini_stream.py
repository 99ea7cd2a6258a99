"""GeminiBackend.stream: events as they arrive, and an accumulated Response equal to generate's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.backends.gemini import GeminiBackend
from agentadapter.llm.errors import (
    APIConnectionError,
    OverloadedError,
    RateLimitError,
    StreamInterruptedError,
)
from agentadapter.llm.messages import Message, Request, StreamEvent, Usage
from agentadapter.llm.tools import Tool
from agentadapter.testing import collect_stream, comparable_response, final_response
from fakes.gemini_server import GeminiFake, gemini_error
from fakes.server import Recorded, send_sse

MODEL = "gemini-2.5-flash"
WEATHER = Tool("get_weather", "Weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture
async def fake() -> AsyncIterator[GeminiFake]:
    async with GeminiFake(chunk_chars=4) as server:
        yield server


@pytest.fixture
async def backend(fake: GeminiFake) -> AsyncIterator[GeminiBackend]:
    gemini = GeminiBackend(BackendConfig(name="gemini", type="gemini", base_url=fake.url, api_key="test-key"))
    yield gemini
    await gemini.aclose()


def ask(text: str = "Hi", **settings: Any) -> Request:
    return Request(model=MODEL, messages=[Message.user(text)], **settings)




async def test_text_streams_in_pieces(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("Hello brave new world", response_id="r-1")

    events = await collect_stream(backend, ask())

    texts = [e.text for e in events if e.kind == "text"]
    assert len(texts) > 1 and "".join(texts) == "Hello brave new world"
    assert [e.kind for e in events[-2:]] == ["usage", "finish"]
    response = final_response(events)
    assert (response.text, response.id, response.finish_reason) == ("Hello brave new world", "r-1", "stop")
    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == "test-key"


async def test_usage_is_reported_once_with_the_last_cumulative_value(fake: GeminiFake,
                                                                     backend: GeminiBackend) -> None:
    fake.reply("one two three four five six")  # the fake's usage grows chunk by chunk
    events = await collect_stream(backend, ask("a b c"))
    usages = [e.usage for e in events if e.kind == "usage"]
    assert usages == [Usage(input_tokens=4, output_tokens=6)]
    assert final_response(events).usage == usages[0]


async def test_a_function_call_arrives_whole(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("Checking.", function_calls=[{"name": "get_weather", "args": {"city": "Paris"}},
                                            {"name": "get_weather", "args": {"city": "Rome"}}])

    events = await collect_stream(backend, ask("Paris and Rome?", tools=[WEATHER]))

    calls = [e for e in events if e.kind in ("tool_call_delta", "tool_call")]
    assert [e.kind for e in calls] == ["tool_call_delta", "tool_call", "tool_call_delta", "tool_call"]
    delta, whole = calls[0], calls[1]
    assert json.loads(delta.arguments_delta) == {"city": "Paris"}
    assert whole.tool_call is not None and delta.call_id == whole.tool_call.id and delta.name == "get_weather"
    response = final_response(events)
    assert response.finish_reason == "tool_calls"
    assert [c.arguments for c in response.tool_calls] == [{"city": "Paris"}, {"city": "Rome"}]


async def test_thoughts_stream_as_reasoning(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("42", thought="Six times seven is forty-two.", thought_signature="c2ln")
    events = await collect_stream(backend, ask("6*7?", reasoning_effort="low"))
    reasoning = [e for e in events if e.kind == "reasoning"]
    assert len(reasoning) == 2 and reasoning[-1].signature == "c2ln"
    response = final_response(events)
    assert response.reasoning == "Six times seven is forty-two."
    assert response.parts[0].signature == "c2ln"  # type: ignore[union-attr]


SCENARIOS: dict[str, dict[str, Any]] = {
    "text": {"text": "A fairly long answer, streamed in many small pieces."},
    "thinking and signed text": {
        "text": "Forty-two.", "thought": "Let me multiply.", "thought_signature": "dGg=", "text_signature": "dHg=",
        "usage": {"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 12},
    },
    "parallel calls with gemini ids": {
        "text": "Let me look.",
        "function_calls": [
            {"name": "get_weather", "args": {"city": "Paris"}, "id": "fc-1", "thought_signature": "Zm4="},
            {"name": "get_weather", "args": {"city": "Rome"}, "id": "fc-2"},
        ],
    },
    "calls without ids": {"function_calls": [{"name": "get_weather", "args": {"city": "Oslo"}},
                                             {"name": "get_weather", "args": {"city": "Bergen"}}]},
    "cached usage": {"text": "ok", "usage": {"promptTokenCount": 2048, "cachedContentTokenCount": 1024,
                                             "candidatesTokenCount": 1, "toolUsePromptTokenCount": 7}},
    "length": {"text": "cut off mid", "finish_reason": "MAX_TOKENS"},
    "safety": {"text": "I was say", "finish_reason": "SAFETY"},
    "blocked prompt": {"block_reason": "PROHIBITED_CONTENT"},
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_the_accumulated_stream_equals_generate(fake: GeminiFake, backend: GeminiBackend,
                                                      scenario: str) -> None:
    script = {**SCENARIOS[scenario], "response_id": "same-response"}
    fake.reply(**script)
    fake.reply(**script)
    request = ask("Weather?", tools=[WEATHER])

    generated = await backend.generate(request)
    streamed = final_response(await collect_stream(backend, request))

    assert comparable_response(streamed) == comparable_response(generated)


async def test_an_error_chunk_mid_stream_is_raised(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("This will be cut short", stream_error=gemini_error(503, "The model is overloaded."), error_after=2)
    seen: list[StreamEvent] = []
    with pytest.raises(OverloadedError, match="overloaded"):
        async for event in backend.stream(ask()):
            seen.append(event)
    assert [e.kind for e in seen] == ["text", "text"]


async def test_a_rate_limit_before_the_stream_starts(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.fail_with(429, "Resource has been exhausted (e.g. check quota).", headers={"retry-after": "3"})
    with pytest.raises(RateLimitError) as caught:
        await collect_stream(backend, ask())
    assert caught.value.retry_after == 3.0


async def test_a_stream_without_a_finish_reason_is_incomplete(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("Half an ans", no_finish=True)
    with pytest.raises(StreamInterruptedError, match="no finishReason"):
        await collect_stream(backend, ask())


async def test_a_dropped_connection_mid_stream_is_an_interrupted_stream(fake: GeminiFake,
                                                                        backend: GeminiBackend) -> None:
    fake.reply("A long answer that never ends properly", drop_after=2)
    with pytest.raises((StreamInterruptedError, APIConnectionError)) as caught:
        await collect_stream(backend, ask())
    assert isinstance(caught.value, StreamInterruptedError)
    assert "incomplete" in str(caught.value)


async def test_a_connection_that_fails_before_any_chunk_stays_a_connection_error(fake: GeminiFake,
                                                                                 backend: GeminiBackend) -> None:
    fake.fail(0, drop=True)
    with pytest.raises(APIConnectionError) as caught:
        await collect_stream(backend, ask())
    assert not isinstance(caught.value, StreamInterruptedError)


async def test_a_blocked_prompt_streams_a_content_filter_finish(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(block_reason="SAFETY")
    events = await collect_stream(backend, ask())
    assert [e.kind for e in events] == ["usage", "finish"]
    assert final_response(events).finish_reason == "content_filter"


async def test_crlf_frames_split_anywhere_and_keep_alives(fake: GeminiFake, backend: GeminiBackend) -> None:
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}], "responseId": "split"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2}, "responseId": "split"},
    ]
    wire = "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode()
    cut = wire.index(b"\r\n\r\n") + 1  # between the CR and the LF of the first separator
    frames = [b": keep-alive\r\n\r\n", wire[:cut], wire[cut:cut + 7], wire[cut + 7:], b"data: \r\n\r\n"]

    async def handler(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await send_sse(request, frames)

    fake.route("POST", "/v1beta/models/split-model:streamGenerateContent", handler)
    events = await collect_stream(backend, Request(model="split-model", messages=[Message.user("x")]))
    response = final_response(events)
    assert (response.text, response.id, response.usage.output_tokens) == ("Hello", "split", 2)


async def test_an_event_that_is_not_json_is_reported(fake: GeminiFake, backend: GeminiBackend) -> None:
    async def handler(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await send_sse(request, ["data: {not json\r\n\r\n"])

    fake.route("POST", "/v1beta/models/broken:streamGenerateContent", handler)
    with pytest.raises(StreamInterruptedError, match="not JSON"):
        await collect_stream(backend, Request(model="broken", messages=[Message.user("x")]))
