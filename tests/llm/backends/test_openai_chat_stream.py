"""OpenAIChatBackend streaming: events, accumulation equal to the non-streaming answer, usage in each
place providers put it, and every way a stream can fail after HTTP 200."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
from agentadapter.llm.errors import (
    APIConnectionError,
    APIError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from agentadapter.llm.messages import (
    Message,
    ReasoningPart,
    Request,
    Response,
    StreamEvent,
    TextPart,
    ToolCallPart,
    Usage,
)
from agentadapter.llm.tools import Tool
from agentadapter.llm.transport import AiohttpTransport, HttpxTransport, Transport
from agentadapter.testing import collect_stream, final_response
from fakes.openai_server import OpenAIFake

MakeBackend = Callable[..., OpenAIChatBackend]


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as server:
        yield server


@pytest.fixture
async def make(fake: OpenAIFake) -> AsyncIterator[MakeBackend]:
    made: list[OpenAIChatBackend] = []

    def factory(
        kind: str = "openai", *, path: str = "/v1", name: str | None = None,
        transport: Transport[Any] | None = None, **config: Any,
    ) -> OpenAIChatBackend:
        backend = OpenAIChatBackend(
            BackendConfig(name=name or kind, type=kind, base_url=fake.url + path, api_key="k", **config),
            transport=transport,
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


def ask(text: str = "q", model: str = "gpt-4o-mini", **settings: Any) -> Request:
    return Request(model, [Message.user(text)], **settings)



def without_latency(response: Response) -> Response:
    assert response.latency_ms > 0
    response.latency_ms = 0.0
    return response


async def same_both_ways(fake: OpenAIFake, backend: OpenAIChatBackend, request: Request,
                         **reply: Any) -> tuple[Response, list[StreamEvent]]:
    """Script the same reply twice; the streamed response must equal the non-streamed one."""
    fake.reply(**reply)
    fake.reply(**reply)
    complete = await backend.generate(request)
    events = await collect_stream(backend, request)
    streamed = final_response(events)
    assert without_latency(streamed) == without_latency(complete)
    return complete, events


WEATHER = Tool("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}})


# ---------------------------------------------------------------------------------- the happy path


async def test_text_stream_events_and_wire_flags(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("Hello streaming world", usage={"prompt_tokens": 7, "completion_tokens": 3})
    events = await collect_stream(make(), ask())
    kinds = [e.kind for e in events]
    assert kinds == ["text"] * 5 + ["usage", "finish"]
    assert "".join(e.text for e in events if e.kind == "text") == "Hello streaming world"
    assert events[-2].usage == Usage(input_tokens=7, output_tokens=3)
    response = final_response(events)
    assert (response.text, response.finish_reason, response.id) == ("Hello streaming world", "stop",
                                                                      "chatcmpl-fake123")
    assert response.provider_details is None  # `obfuscation` and `system_fingerprint` are ignored
    body = fake.last.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("kind", "path", "asks_usage"), [
    ("openai", "/v1", True), ("groq", "/openai/v1", True), ("mistral", "/v1", False), ("perplexity", "", False),
])
async def test_stream_options_only_where_the_preset_allows(
    fake: OpenAIFake, make: MakeBackend, kind: str, path: str, asks_usage: bool
) -> None:
    await collect_stream(make(kind, path=path), ask())
    assert ("stream_options" in fake.last.json) is asks_usage


async def test_text_equals_generate(fake: OpenAIFake, make: MakeBackend) -> None:
    await same_both_ways(fake, make(), ask(), text="Four score and seven years ago")


async def test_parallel_tool_calls_stream(fake: OpenAIFake, make: MakeBackend) -> None:
    calls = [
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        {"id": "call_b", "name": "get_weather", "arguments": {"city": "Oslo"}},
    ]
    complete, events = await same_both_ways(fake, make(), ask(tools=[WEATHER]), text="Let me check.",
                                            tool_calls=calls, fragment_size=3)
    deltas = [e for e in events if e.kind == "tool_call_delta"]
    assert {e.index for e in deltas} == {0, 1}
    for index, call in enumerate(calls):
        mine = [e for e in deltas if e.index == index]
        assert len(mine) > 3  # the arguments really arrived in fragments
        assert (mine[0].call_id, mine[0].name) == (call["id"], call["name"])
        assert "".join(e.arguments_delta for e in mine) == json.dumps(call["arguments"])
    whole = [e.tool_call for e in events if e.kind == "tool_call"]
    assert whole == [ToolCallPart("call_a", "get_weather", {"city": "Paris", "unit": "celsius"}),
                     ToolCallPart("call_b", "get_weather", {"city": "Oslo"})]
    kinds = [e.kind for e in events]
    assert kinds.index("tool_call") > max(i for i, k in enumerate(kinds) if k == "tool_call_delta")
    assert complete.finish_reason == "tool_calls"
    assert complete.parts[0] == TextPart("Let me check.")


@pytest.mark.parametrize(("kind", "key", "usage_on"), [
    ("deepseek", "reasoning_content", "finish_chunk"),
    ("groq", "reasoning", "x_groq"),
    ("openrouter", "reasoning", "last_chunk"),
])
async def test_reasoning_stream_equals_generate(
    fake: OpenAIFake, make: MakeBackend, kind: str, key: str, usage_on: str
) -> None:
    usage = {"prompt_tokens": 20, "completion_tokens": 30, "prompt_cache_hit_tokens": 8,
             "completion_tokens_details": {"reasoning_tokens": 12}}
    complete, events = await same_both_ways(
        fake, make(kind, path="/v1"), ask(model="r1"), text="It is 4.", reasoning="2 plus 2 makes 4",
        reasoning_key=key, usage=usage, usage_on=usage_on,
    )
    assert complete.parts == [ReasoningPart("2 plus 2 makes 4", provider=kind), TextPart("It is 4.")]
    assert complete.usage == Usage(input_tokens=20, output_tokens=30, cached_input_tokens=8, reasoning_tokens=12)
    assert [e.kind for e in events].count("usage") == 1
    assert events[0].kind == "reasoning"


async def test_mistral_list_content_stream(fake: OpenAIFake, make: MakeBackend) -> None:
    complete, _ = await same_both_ways(fake, make("mistral"), ask(model="magistral-small"),
                                       text="Paris.", reasoning="capital of France", mistral_list_content=True,
                                       usage_on="finish_chunk")
    assert complete.reasoning == "capital of France" and complete.text == "Paris."


@pytest.mark.parametrize("usage_on", ["auto", "last_chunk", "finish_chunk", "x_groq"])
async def test_usage_wherever_it_arrives(fake: OpenAIFake, make: MakeBackend, usage_on: str) -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 32}}
    _, events = await same_both_ways(fake, make("groq", path="/openai/v1"), ask(), text="ok",
                                     usage=usage, usage_on=usage_on)
    assert [e.usage for e in events if e.kind == "usage"] == [
        Usage(input_tokens=50, output_tokens=5, cached_input_tokens=32)
    ]


async def test_no_usage_in_the_stream_means_no_usage_event(fake: OpenAIFake, make: MakeBackend) -> None:
    # include_usage is not sent to Mistral; a server that then sends no usage leaves it empty
    fake.reply("hi", usage_on="last_chunk")
    events = await collect_stream(make("mistral"), ask())
    assert "usage" not in [e.kind for e in events]
    assert final_response(events).usage == Usage()


async def test_refusal_and_extras_stream_like_generate(fake: OpenAIFake, make: MakeBackend) -> None:
    extra = {"citations": ["https://example.com"], "search_results": [{"url": "https://example.com"}]}
    complete, _ = await same_both_ways(fake, make("perplexity", path=""), ask(model="sonar"),
                                       refusal="I won't.", extra=extra)
    assert complete.provider_details == {**extra, "refusal": "I won't."}


async def test_unknown_finish_reason_streams_like_generate(fake: OpenAIFake, make: MakeBackend) -> None:
    complete, _ = await same_both_ways(fake, make("vllm"), ask(), text="x", finish_reason="abort_weird")
    assert complete.finish_reason == "stop"
    assert complete.provider_details == {"finish_reason": "abort_weird"}


async def test_length_finish(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("truncat", finish_reason="length")
    events = await collect_stream(make(), ask())
    assert events[-1].finish_reason == "length" and final_response(events).finish_reason == "length"


def frame(chunk: Any) -> str:
    return f"data: {json.dumps(chunk)}\n\n"


def delta(**fields: Any) -> dict[str, Any]:
    finish = fields.pop("finish_reason", None)
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


async def test_tool_calls_without_index_and_whole_object_arguments(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(frames=[
        ": keep-alive comment\n\n",
        "data:\n\n",
        frame(delta(tool_calls=[{"id": "a", "function": {"name": "f", "arguments": '{"x"'}}])),
        frame(delta(tool_calls=[{"function": {"arguments": ": 1}"}}])),
        frame(delta(tool_calls=[{"id": "b", "function": {"name": "g", "arguments": {"y": 2}}}])),
        frame(delta(tool_calls=[{"index": 2, "function": {"name": "h"}}], finish_reason="tool_calls")),
        "data: [DONE]\n\n",
    ])
    response = final_response(await collect_stream(make("ollama"), ask()))
    assert response.tool_calls == [
        ToolCallPart("a", "f", {"x": 1}), ToolCallPart("b", "g", {"y": 2}), ToolCallPart("call_2", "h", {}),
    ]


async def test_tool_calls_completed_when_the_stream_ends_without_a_finish_reason(
    fake: OpenAIFake, make: MakeBackend
) -> None:
    fake.reply(frames=[
        frame(delta(tool_calls=[{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}])),
        "data: [DONE]\n\n",
    ])
    events = await collect_stream(make("lmstudio"), ask())
    assert [e.kind for e in events] == ["tool_call_delta", "tool_call", "finish"]
    assert final_response(events).finish_reason == "tool_calls"


async def test_finish_without_done_is_fine(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("complete", omit_done=True)
    assert final_response(await collect_stream(make(), ask())).text == "complete"


async def test_nothing_after_done_is_read_as_content(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(frames=[frame(delta(content="a", finish_reason="stop")), "data: [DONE]\n\n",
                       frame(delta(content="ignored"))])
    assert final_response(await collect_stream(make(), ask())).text == "a"


async def test_the_caller_may_stop_early(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make()
    fake.reply("one two three four five six seven")
    stream = backend.stream(ask())
    async for event in stream:
        assert event.kind == "text"
        break
    await stream.aclose()  # type: ignore[attr-defined]
    fake.reply("again")
    assert final_response(await collect_stream(backend, ask())).text == "again"  # the backend still works


# --------------------------------------------------------------------------------------- failures


async def test_error_event_after_http_200(fake: OpenAIFake, make: MakeBackend) -> None:
    # Groq's shape: `event: error` and no [DONE]
    fake.reply("partial answer", error_after=2)
    seen: list[StreamEvent] = []
    with pytest.raises(ServerError) as caught:
        async for event in make("groq", path="/openai/v1").stream(ask()):
            seen.append(event)
    assert [e.kind for e in seen] == ["text"]
    assert caught.value.provider == "groq"


async def test_error_event_with_a_rate_limit_type(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("x", error_after=1,
               error_body={"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}})
    with pytest.raises(RateLimitError):
        await collect_stream(make(), ask())


async def test_error_event_without_a_known_type(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(frames=["event: error\ndata: something broke\n\n"])
    with pytest.raises(StreamInterruptedError, match="something broke"):
        await collect_stream(make(), ask())


async def test_error_chunk_after_http_200(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("x", error_after=2, error_as="chunk",
               error_body={"error": {"message": "The server is overloaded", "type": "server_error"}})
    with pytest.raises(ServerError, match="overloaded"):
        await collect_stream(make(), ask())


async def test_invalid_json_frame(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("some text here", bad_json_at=2)
    with pytest.raises(StreamInterruptedError, match="not JSON"):
        await collect_stream(make(), ask())


async def test_chunk_that_is_not_an_object(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(frames=["data: [1, 2]\n\n"])
    with pytest.raises(StreamInterruptedError, match="not a JSON object"):
        await collect_stream(make(), ask())


async def test_stream_that_stops_before_the_model_finished(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("cut short", omit_finish=True, omit_done=True)
    with pytest.raises(StreamInterruptedError, match="ended before the model finished"):
        await collect_stream(make(), ask())


@pytest.mark.parametrize("transport_type", [AiohttpTransport, HttpxTransport])
async def test_dropped_connection_mid_stream(
    fake: OpenAIFake, make: MakeBackend, transport_type: type[Transport[Any]]
) -> None:
    fake.reply("a long answer that will not arrive whole", drop_after=3)
    seen: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match="broke in the middle") as caught:
        async for event in make(transport=transport_type()).stream(ask()):
            seen.append(event)
    assert seen and all(e.kind == "text" for e in seen)
    assert isinstance(caught.value.__cause__, APIConnectionError)
    assert caught.value.retryable


@pytest.mark.parametrize("transport_type", [AiohttpTransport, HttpxTransport])
async def test_dropped_connection_before_any_event(
    fake: OpenAIFake, make: MakeBackend, transport_type: type[Transport[Any]]
) -> None:
    fake.fail(drop=True)
    with pytest.raises(APIConnectionError):
        await collect_stream(make(transport=transport_type()), ask())


async def test_status_error_on_a_stream_request(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.fail(429, {"error": {"message": "slow down"}}, headers={"retry-after-ms": "1500"})
    with pytest.raises(RateLimitError) as caught:
        await collect_stream(make(), ask())
    assert caught.value.retry_after == 1.5


async def test_errors_are_ours_never_foreign(fake: OpenAIFake, make: MakeBackend) -> None:
    for reply in ({"drop_after": 2}, {"bad_json_at": 1}, {"error_after": 1}):
        fake.reply("text", **reply)
        with pytest.raises(APIError):
            await collect_stream(make(), ask())
