"""AnthropicBackend.stream: events as they arrive, and an accumulated Response equal to generate's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest
from aiohttp import web

from agentadapter.llm.backends.anthropic import AnthropicBackend, AnthropicStreamDecoder
from agentadapter.llm.backends.anthropic_mapping import WireRequest
from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.errors import (
    APIConnectionError,
    BadRequestError,
    OverloadedError,
    RateLimitError,
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
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool
from agentadapter.llm.transport import AiohttpTransport, HttpxTransport, Transport
from agentadapter.testing import collect_stream, final_response
from fakes.anthropic_server import AnthropicFake
from fakes.server import Recorded, send_sse

MODEL = "claude-sonnet-4-5"
WEATHER = Tool(
    "get_weather", "The weather.", {"type": "object", "properties": {"city": {"type": "string"}}}
)


class City(pydantic.BaseModel):
    name: str
    population: int


@pytest.fixture
async def fake() -> AsyncIterator[AnthropicFake]:
    async with AnthropicFake() as server:
        yield server


@pytest.fixture
async def backend(fake: AnthropicFake) -> AsyncIterator[AnthropicBackend]:
    backend = AnthropicBackend(
        BackendConfig(name="anthropic", type="anthropic", base_url=fake.url, api_key=fake.api_key)
    )
    yield backend
    await backend.aclose()


def req(prompt: str = "q", **kwargs: Any) -> Request:
    return Request(model=MODEL, messages=[Message.user(prompt)], **kwargs)



def same_answer(streamed: Response, whole: Response) -> None:
    """Everything but the per-call id and latency."""
    assert streamed.parts == whole.parts
    assert streamed.usage == whole.usage
    assert streamed.finish_reason == whole.finish_reason
    assert streamed.provider == whole.provider
    assert streamed.model == whole.model
    assert streamed.provider_details == whole.provider_details


async def generate_and_stream(
    fake: AnthropicFake, backend: AnthropicBackend, request: Request, **script: Any
) -> tuple[Response, list[StreamEvent]]:
    fake.reply(**script)
    whole = await backend.generate(request)
    fake.reply(**script)
    events = await collect_stream(backend, request)
    return whole, events


# ------------------------------------------------------------------------------------------- text


async def test_text_streams_in_deltas_and_accumulates_to_the_generate_response(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    whole, events = await generate_and_stream(
        fake, backend, req("Say hello"), text="Hello from a streamed Claude!",
        usage={"input_tokens": 11, "output_tokens": 7},
    )
    assert fake.requests[-1].json["stream"] is True
    assert "stream" not in fake.requests[-2].json

    texts = [e for e in events if e.kind == "text"]
    assert len(texts) > 3  # really streamed, not one lump
    assert "".join(e.text for e in texts) == "Hello from a streamed Claude!"
    assert [e.kind for e in events[-2:]] == ["usage", "finish"]
    assert sum(e.kind == "usage" for e in events) == 1

    streamed = final_response(events)
    same_answer(streamed, whole)
    assert streamed.id.startswith("msg_fake_")
    assert streamed.usage == Usage(input_tokens=11, output_tokens=7)
    assert streamed.latency_ms > 0


async def test_two_text_blocks_stay_two_parts(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    blocks = [{"type": "text", "text": "First block."}, {"type": "text", "text": "Second block."}]
    whole, events = await generate_and_stream(fake, backend, req(), blocks=blocks)
    assert final_response(events).parts == [TextPart("First block."), TextPart("Second block.")]
    same_answer(final_response(events), whole)


async def test_echo_stream(backend: AnthropicBackend) -> None:
    events = await collect_stream(backend, req("stream me back"))
    assert final_response(events).text == "stream me back"


# ------------------------------------------------------------------------------------------ tools


async def test_tool_use_streams_argument_fragments_then_the_whole_call(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    uses = [
        {"id": "toolu_s1", "name": "get_weather", "input": {"city": "Reykjavik", "units": "metric"}},
        {"id": "toolu_s2", "name": "get_weather", "input": {"city": "Nuuk"}},
    ]
    whole, events = await generate_and_stream(fake, backend, req(tools=[WEATHER]), text="Checking.", tool_uses=uses)

    first_call = [e for e in events if e.kind == "tool_call_delta" and e.index == 1]
    assert first_call[0].call_id == "toolu_s1"
    assert first_call[0].name == "get_weather"
    fragments = [e.arguments_delta for e in first_call[1:]]
    assert len(fragments) > 1  # split across several deltas, like the real API
    assert json.loads("".join(fragments)) == {"city": "Reykjavik", "units": "metric"}

    calls = [e.tool_call for e in events if e.kind == "tool_call"]
    assert calls == [
        ToolCallPart("toolu_s1", "get_weather", {"city": "Reykjavik", "units": "metric"}),
        ToolCallPart("toolu_s2", "get_weather", {"city": "Nuuk"}),
    ]
    streamed = final_response(events)
    assert streamed.finish_reason == "tool_calls"
    same_answer(streamed, whole)


@pytest.mark.parametrize("stop_reason", ["tool_use", "max_tokens"])
async def test_a_stream_ending_with_an_open_tool_use_block_keeps_the_call(
    fake: AnthropicFake, backend: AnthropicBackend, stop_reason: str
) -> None:
    use = {"id": "toolu_open", "name": "get_weather", "input": {"city": "Tromso"}}
    script: dict[str, Any] = {"text": "Checking.", "tool_uses": [use], "stop_reason": stop_reason}
    fake.reply(**script)
    whole = await backend.generate(req(tools=[WEATHER]))
    fake.reply(**script, unclosed_last_block=True)  # message_stop arrives with the tool_use block still open
    events = await collect_stream(backend, req(tools=[WEATHER]))
    assert [e.tool_call for e in events if e.kind == "tool_call"] == [
        ToolCallPart("toolu_open", "get_weather", {"city": "Tromso"})
    ]
    streamed = final_response(events)
    assert streamed.tool_calls == whole.tool_calls
    same_answer(streamed, whole)


async def test_a_stream_ending_with_an_open_output_block_keeps_the_answer(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    schema = OutputSchema.of(City)
    script: dict[str, Any] = {"tool_uses": [{"name": "City", "input": {"name": "Graz", "population": 3}}]}
    fake.reply(**script)
    whole = await backend.generate(req(output=schema))
    fake.reply(**script, unclosed_last_block=True)
    streamed = final_response(await collect_stream(backend, req(output=schema)))
    assert schema.parse(streamed.text) == City(name="Graz", population=3)
    same_answer(streamed, whole)


async def test_structured_output_streams_as_the_answer_text(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    schema = OutputSchema.of(City)
    whole, events = await generate_and_stream(
        fake, backend, req(output=schema), tool_uses=[{"name": "City", "input": {"name": "Graz", "population": 3}}]
    )
    assert not any(e.kind in ("tool_call", "tool_call_delta") for e in events)
    streamed = final_response(events)
    assert streamed.finish_reason == "stop"
    assert schema.parse(streamed.text) == City(name="Graz", population=3)
    same_answer(streamed, whole)


# --------------------------------------------------------------------------------------- thinking


async def test_thinking_and_signature_stream_and_round_trip(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    request = req("Think first.", reasoning_effort="medium")
    whole, events = await generate_and_stream(
        fake, backend, request, thinking="Step one, then step two.", signature="sig-stream-1", text="Done.",
    )
    reasoning = [e for e in events if e.kind == "reasoning"]
    assert "".join(e.text for e in reasoning) == "Step one, then step two."
    assert [e.signature for e in reasoning if e.signature] == ["sig-stream-1"]

    streamed = final_response(events)
    assert streamed.parts == [
        ReasoningPart("Step one, then step two.", signature="sig-stream-1", provider="anthropic"),
        TextPart("Done."),
    ]
    same_answer(streamed, whole)

    # The streamed answer goes back as history; the fake rejects signatures it did not issue.
    follow_up = Request(model=MODEL, messages=[*request.messages, streamed.message, Message.user("And?")],
                        reasoning_effort="medium")
    events = await collect_stream(backend, follow_up)
    assert fake.requests[-1].json["messages"][1]["content"][0] == {
        "type": "thinking", "thinking": "Step one, then step two.", "signature": "sig-stream-1",
    }


async def test_redacted_thinking_streams_whole(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    whole, events = await generate_and_stream(fake, backend, req(), redacted_thinking="Opaque==", text="Hi.")
    assert final_response(events).parts[0] == ReasoningPart(redacted_data="Opaque==", provider="anthropic")
    same_answer(final_response(events), whole)


async def test_a_forged_signature_is_refused_by_the_fake(backend: AnthropicBackend) -> None:
    assistant = Message.assistant([ReasoningPart("made up", signature="forged", provider="anthropic"), TextPart("x")])
    with pytest.raises(BadRequestError, match="signature"):
        await collect_stream(backend, Request(model=MODEL, messages=[Message.user("q"), assistant, Message.user("r")]))


async def test_streamed_thinking_names_the_vendor_under_any_backend_name(fake: AnthropicFake) -> None:
    named = AnthropicBackend(BackendConfig(name="acct-b", type="anthropic", base_url=fake.url, api_key=fake.api_key))
    fake.reply(thinking="hm", signature="sig-b", text="ok")
    fake.reply(redacted_thinking="Opaque==", text="ok")
    first = final_response(await collect_stream(named, req(reasoning_effort="low")))
    second = final_response(await collect_stream(named, req(reasoning_effort="low")))
    assert first.provider == "acct-b"
    assert first.parts[0] == ReasoningPart("hm", signature="sig-b", provider="anthropic")
    assert second.parts[0] == ReasoningPart(redacted_data="Opaque==", provider="anthropic")
    await named.aclose()


# ------------------------------------------------------------------------------------------ usage


async def test_usage_merges_message_start_and_message_delta(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    usage = {"input_tokens": 50, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200,
             "output_tokens": 42}
    whole, events = await generate_and_stream(fake, backend, req(), text="cached answer", usage=usage)
    expected = Usage(input_tokens=1250, output_tokens=42, cached_input_tokens=1000, cache_write_tokens=200)
    usage_events = [e for e in events if e.kind == "usage"]
    assert [e.usage for e in usage_events] == [expected]
    assert whole.usage == expected
    same_answer(final_response(events), whole)


async def test_cumulative_message_delta_usage(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.cumulative_delta_usage = True
    fake.reply("x", usage={"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": 3})
    events = await collect_stream(backend, req())
    assert final_response(events).usage == Usage(input_tokens=12, output_tokens=3, cached_input_tokens=7)


async def test_stop_sequence_and_unknown_blocks_in_a_stream(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    blocks = [{"type": "text", "text": "Up to"}]
    whole, events = await generate_and_stream(
        fake, backend, req(stop=["HALT"]), blocks=blocks, stop_reason="stop_sequence", stop_sequence="HALT"
    )
    assert final_response(events).provider_details == {"stop_reason": "stop_sequence", "stop_sequence": "HALT"}
    same_answer(final_response(events), whole)

    search = {"type": "server_tool_use", "id": "srvtoolu_9", "name": "web_search", "input": {}}
    fake.reply(blocks=[search, {"type": "text", "text": "ok"}])
    streamed = final_response(await collect_stream(backend, req()))
    assert streamed.provider_details == {"stop_reason": "end_turn", "unsupported_blocks": [search]}


# ----------------------------------------------------------------------------------------- errors


async def test_overloaded_error_mid_stream(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.reply("Thinking out loud", tool_uses=[{"name": "get_weather", "input": {"city": "Lima"}}])
    fake.error_mid_stream("overloaded_error", after_blocks=1)
    seen: list[StreamEvent] = []
    with pytest.raises(OverloadedError) as caught:
        async for event in backend.stream(req(tools=[WEATHER])):
            seen.append(event)
    assert "".join(e.text for e in seen if e.kind == "text") == "Thinking out loud"  # content came first
    assert caught.value.retryable
    assert caught.value.provider == "anthropic"


async def test_rate_limit_on_a_stream_request_is_plain_json(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.rate_limited(retry_after=3)
    with pytest.raises(RateLimitError) as caught:
        await collect_stream(backend, req())
    assert caught.value.retry_after == 3.0
    assert caught.value.status == 429


async def test_529_on_a_stream_request(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.overloaded()
    with pytest.raises(OverloadedError):
        await collect_stream(backend, req())


async def test_a_dropped_connection(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.fail(drop=True)
    with pytest.raises(APIConnectionError):
        await collect_stream(backend, req())


@pytest.mark.parametrize("transport_type", [AiohttpTransport, HttpxTransport])
async def test_a_connection_dropped_mid_stream_is_an_interrupted_stream(
    fake: AnthropicFake, transport_type: type[Transport[Any]]
) -> None:
    def frame(kind: str, data: dict[str, Any]) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    frames = [
        frame("message_start", {"message": {"id": "msg_drop", "type": "message", "role": "assistant",
                                            "model": MODEL, "content": [], "usage": {"input_tokens": 3}}}),
        frame("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        frame("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "a long "}}),
        frame("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "answer"}}),
    ]

    async def handler(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await send_sse(request, frames, drop_after=3)

    fake.route("POST", "/v1/messages", handler)
    backend = AnthropicBackend(
        BackendConfig(name="anthropic", type="anthropic", base_url=fake.url, api_key=fake.api_key),
        transport=transport_type(),
    )
    seen: list[StreamEvent] = []
    try:
        with pytest.raises(StreamInterruptedError, match="broke in the middle") as caught:
            async for event in backend.stream(req()):
                seen.append(event)
    finally:
        await backend.aclose()
    assert [(e.kind, e.text) for e in seen] == [("text", "a long ")]
    assert isinstance(caught.value.__cause__, APIConnectionError)
    assert caught.value.retryable
    assert caught.value.provider == "anthropic"


# --------------------------------------------------------------------- the decoder on its own


def decoder(output_tool: str | None = None) -> AnthropicStreamDecoder:
    return AnthropicStreamDecoder("anthropic", MODEL, WireRequest({}, output_tool))


def test_a_stream_without_message_stop_is_interrupted() -> None:
    stream = decoder()
    stream.feed({"type": "message_start", "message": {"id": "msg_1", "model": MODEL, "usage": {}}})
    stream.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    with pytest.raises(StreamInterruptedError, match="before message_stop"):
        stream.close()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (["not", "an", "object"], "not an object"),
        ({"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}}, "never started"),
    ],
)
def test_malformed_events_are_interrupted_streams(data: Any, match: str) -> None:
    with pytest.raises(StreamInterruptedError, match=match):
        decoder().feed(data)


def test_an_error_event_of_unknown_type_is_an_interrupted_stream() -> None:
    with pytest.raises(StreamInterruptedError):
        decoder().feed({"type": "error", "error": {"type": "mystery_error", "message": "?"}})


def test_initial_block_content_unknown_events_and_deltas_are_handled() -> None:
    stream = decoder()
    stream.feed({"type": "message_start", "message": {"id": "msg_2", "model": MODEL,
                                                       "usage": {"input_tokens": 3, "output_tokens": 1}}})
    events = stream.feed({"type": "content_block_start", "index": 0,
                          "content_block": {"type": "thinking", "thinking": "pre", "signature": "sig-pre"}})
    assert events[0].kind == "reasoning"
    assert events[0].signature == "sig-pre"
    stream.feed({"type": "content_block_stop", "index": 0})
    events = stream.feed({"type": "content_block_start", "index": 1,
                          "content_block": {"type": "text", "text": "Hi"}})
    assert events[0].text == "Hi"
    assert stream.feed({"type": "content_block_delta", "index": 1,
                        "delta": {"type": "citations_delta", "citation": {}}}) == []
    assert stream.feed({"type": "brand_new_event"}) == []
    assert stream.feed({"type": "ping"}) == []
    stream.feed({"type": "content_block_stop", "index": 1})
    stream.feed({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
    stream.feed({"type": "message_stop"})
    usage, finish = stream.close()
    assert usage.usage == Usage(input_tokens=3, output_tokens=9)
    assert finish.response is not None
    assert finish.response.parts == [
        ReasoningPart("pre", signature="sig-pre", provider="anthropic"), TextPart("Hi"),
    ]
    assert finish.response.id == "msg_2"


def test_a_tool_call_without_arguments() -> None:
    stream = decoder()
    stream.feed({"type": "content_block_start", "index": 0,
                 "content_block": {"type": "tool_use", "id": "toolu_0", "name": "ping", "input": {}}})
    stream.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}})
    events = stream.feed({"type": "content_block_stop", "index": 0})
    assert events[0].tool_call == ToolCallPart("toolu_0", "ping", {})
    stream.feed({"type": "message_stop"})  # no message_start and no usage at all: zeros, not a crash
    usage, finish = stream.close()
    assert usage.usage == Usage()
    assert finish.finish_reason == "stop"  # no stop_reason sent: treated as end_turn
