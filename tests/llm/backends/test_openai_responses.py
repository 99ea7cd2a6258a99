"""OpenAIResponsesBackend against the loopback Responses fake: input items, instructions, tools,
structured output, stateless reasoning replay, streaming (accumulated equal to generate), finish
reasons, usage, errors, presets' URLs and auth, and the conformance kit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pydantic
import pytest

from agentadapter.llm.backends.base import BackendConfig, backend_class
from agentadapter.llm.backends.openai_responses import (
    OpenAIResponsesBackend,
    ResponsesStreamDecoder,
    usage_from_wire,
)
from agentadapter.llm.conformance import run_conformance
from agentadapter.llm.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from agentadapter.llm.messages import (
    CacheHints,
    FilePart,
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    Response,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool
from agentadapter.llm.transport import AiohttpTransport, HttpxTransport, Transport
from agentadapter.testing import collect_stream, comparable_response, final_response
from fakes.responses_server import ResponsesFake

CHAT_MODEL = "gpt-4o-mini"
REASONING_MODEL = "gpt-5-mini"
WEATHER = Tool(
    "get_weather", "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "The time.", strict=True)
ENCRYPTED = "gAAAAABfake-encrypted-reasoning=="
MakeBackend = Callable[..., OpenAIResponsesBackend]


class City(pydantic.BaseModel):
    name: str
    population: int


@pytest.fixture
async def fake() -> AsyncIterator[ResponsesFake]:
    async with ResponsesFake() as server:
        yield server


@pytest.fixture
async def make(fake: ResponsesFake) -> AsyncIterator[MakeBackend]:
    made: list[OpenAIResponsesBackend] = []

    def factory(kind: str = "openai", *, path: str = "/v1", name: str | None = None, api_key: str | None = "k",
                base_url: str | None = "", **config: Any) -> OpenAIResponsesBackend:
        url = fake.url + path if base_url == "" else base_url
        backend = OpenAIResponsesBackend(
            BackendConfig(name=name or kind, type=kind, base_url=url, api_key=api_key, **config)
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


@pytest.fixture
def backend(make: MakeBackend) -> OpenAIResponsesBackend:
    return make()


def ask(*messages: Message | str, model: str = CHAT_MODEL, **settings: Any) -> Request:
    return Request(model, [Message.user(m) if isinstance(m, str) else m for m in messages], **settings)




async def stream_equals_generate(fake: ResponsesFake, backend: OpenAIResponsesBackend, request: Request,
                                 **reply: Any) -> Response:
    fake.reply(**reply)
    generated = await backend.generate(request)
    fake.reply(**reply)
    streamed = final_response(await collect_stream(backend, request))
    assert comparable_response(streamed) == comparable_response(generated)
    return generated


def user_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


# ------------------------------------------------------------------------------------ basics


def test_registered_as_openai_responses() -> None:
    assert backend_class("openai_responses") is OpenAIResponsesBackend
    assert OpenAIResponsesBackend.type_name == "openai_responses"


async def test_text_round_trip(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.reply("Hi there!", usage={
        "input_tokens": 30, "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 5}, "total_tokens": 38,
    })
    response = await backend.generate(ask("Say hi"))
    assert response.parts == [TextPart("Hi there!")]
    assert (response.id, response.provider, response.model) == ("resp_fake123", "openai", CHAT_MODEL)
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=30, output_tokens=8, cached_input_tokens=10, reasoning_tokens=5)
    assert response.provider_details is None and response.latency_ms > 0
    sent = fake.last
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.json == {"model": CHAT_MODEL, "input": [user_item("Say hi")], "store": False}


async def test_echo_when_nothing_is_scripted(backend: OpenAIResponsesBackend) -> None:
    assert (await backend.generate(ask("echo me"))).text == "echo me"


async def test_instructions_from_leading_system_messages(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    request = ask(
        Message.system("Be terse."), Message.system("Answer in French."), "Hi",
        Message.assistant("Bonjour."), Message.system("Now switch to German."), "Again",
    )
    await backend.generate(request)
    body = fake.last.json
    assert body["instructions"] == "Be terse.\n\nAnswer in French."
    assert body["input"] == [
        user_item("Hi"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Bonjour.",
                                                               "annotations": []}]},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Now switch to German."}]},
        user_item("Again"),
    ]


async def test_settings_for_a_chat_model(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    await backend.generate(ask(
        "q", temperature=0.3, top_p=0.8, max_tokens=64, seed=1, metadata={"run": "r1"},
        cache=CacheHints(prompt_cache_key="tenant-1"), extra_body={"user": "u1"},
    ))
    body = fake.last.json
    assert body["temperature"] == 0.3 and body["top_p"] == 0.8 and body["max_output_tokens"] == 64
    assert body["prompt_cache_key"] == "tenant-1" and body["user"] == "u1"
    # No seed in this API; metadata only with store; no reasoning fields for a chat model.
    assert not {"seed", "metadata", "include", "reasoning"} & set(body)


async def test_settings_for_a_reasoning_model(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    await backend.generate(ask("q", model=REASONING_MODEL, temperature=0.3, top_p=0.8, reasoning_effort="low"))
    body = fake.last.json
    assert "temperature" not in body and "top_p" not in body
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    await backend.generate(ask("q", model="o3"))
    assert "reasoning" not in fake.last.json and fake.last.json["include"] == ["reasoning.encrypted_content"]


async def test_reasoning_effort_marks_an_unknown_model_as_reasoning(
    fake: ResponsesFake, backend: OpenAIResponsesBackend
) -> None:
    await backend.generate(ask("q", model="my-finetune", temperature=0.5))
    assert fake.last.json["temperature"] == 0.5
    await backend.generate(ask("q", model="my-finetune", temperature=0.5, reasoning_effort="high"))
    body = fake.last.json
    assert "temperature" not in body and body["reasoning"] == {"effort": "high", "summary": "auto"}


async def test_options_reasoning_model_and_store(fake: ResponsesFake, make: MakeBackend) -> None:
    backend = make(options={"reasoning_model": False, "store": True})
    await backend.generate(ask("q", model=REASONING_MODEL, temperature=0.1, metadata={"run": "r1"}))
    body = fake.last.json
    assert body["temperature"] == 0.1 and body["store"] is True and body["metadata"] == {"run": "r1"}
    backend = make(options={"reasoning_model": True, "store": True})
    await backend.generate(ask("q", model="custom"))
    assert "include" not in fake.last.json  # stored responses are replayed by id


async def test_stop_sequences_are_refused(backend: OpenAIResponsesBackend) -> None:
    with pytest.raises(CapabilityError, match=r"no stop sequences.*type: openai_chat"):
        await backend.generate(ask("q", stop=["END"]))


async def test_structured_output(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.reply('{"name": "Oslo", "population": 700000}')
    response = await backend.generate(ask("A city", output=OutputSchema.of(City)))
    # A plain model whose schema is strict already (all fields required) goes as pydantic wrote it,
    # apart from the closed object strict mode needs.
    assert fake.last.json["text"] == {"format": {
        "type": "json_schema", "name": "City", "schema": {**City.model_json_schema(), "additionalProperties": False},
        "strict": True,
    }}
    assert json.loads(response.text)["name"] == "Oslo"
    strict_schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                     "additionalProperties": False}
    await backend.generate(ask("q", output=OutputSchema.of({"title": "A", **strict_schema})))
    assert fake.last.json["text"]["format"]["strict"] is True


# ------------------------------------------------------------------------------------- tools


async def test_tools_flat_shape_and_choice(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    await backend.generate(ask("q", tools=[WEATHER, TIME], tool_choice="get_time", parallel_tool_calls=False))
    body = fake.last.json
    assert body["tools"] == [
        {"type": "function", "name": "get_weather", "parameters": WEATHER.parameters,
         "description": "The weather in a city.", "strict": False},
        {"type": "function", "name": "get_time", "parameters": TIME.parameters, "description": "The time.",
         "strict": True},
    ]
    assert body["tool_choice"] == {"type": "function", "name": "get_time"}
    assert body["parallel_tool_calls"] is False
    await backend.generate(ask("q", tools=[WEATHER], tool_choice="required"))
    assert fake.last.json["tool_choice"] == "required"
    await backend.generate(ask("q", tool_choice="auto"))
    assert "tool_choice" not in fake.last.json


@pytest.mark.parametrize(("choice", "tools", "message"), [
    ("required", [], "needs at least one tool"),
    ("get_nothing", [WEATHER], "names no tool of this request"),
])
async def test_bad_tool_choice(backend: OpenAIResponsesBackend, choice: str, tools: list[Tool], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await backend.generate(ask("q", tools=tools, tool_choice=choice))


async def test_parallel_tool_round_trip_replays_reasoning(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.reply(
        reasoning_summary=["Two cities.", "Call twice."],
        tool_calls=[
            {"id": "call_a", "name": "get_weather", "arguments": {"city": "Oslo"}},
            {"id": "call_b", "name": "get_weather", "arguments": {"city": "Lima"}},
        ],
    )
    question = Message.user("Weather in Oslo and Lima?")
    first = await backend.generate(ask(question, model=REASONING_MODEL, tools=[WEATHER]))
    assert first.finish_reason == "tool_calls"
    assert first.parts == [
        ReasoningPart("Two cities.\n\nCall twice.", provider="openai", redacted_data=ENCRYPTED, provider_details={
            "provider": "openai", "summary": ["Two cities.", "Call twice."], "item_id": "rs_fake0"}),
        ToolCallPart("call_a", "get_weather", {"city": "Oslo"},
                     provider_details={"provider": "openai", "item_id": "fc_fake0"}),
        ToolCallPart("call_b", "get_weather", {"city": "Lima"},
                     provider_details={"provider": "openai", "item_id": "fc_fake1"}),
    ]
    assert first.reasoning == "Two cities.\n\nCall twice."

    fake.reply("Cold in Oslo, mild in Lima.")
    conversation = [
        question, first.message,
        Message.tool("call_a", "get_weather", "cold"),
        Message("tool", [ToolResultPart("call_b", "get_weather", "timeout", is_error=True)]),
    ]
    second = await backend.generate(ask(*conversation, model=REASONING_MODEL, tools=[WEATHER]))
    assert second.text == "Cold in Oslo, mild in Lima."
    assert fake.last.json["input"][1:] == [
        {"type": "reasoning", "id": "rs_fake0", "encrypted_content": ENCRYPTED, "summary": [
            {"type": "summary_text", "text": "Two cities."}, {"type": "summary_text", "text": "Call twice."}]},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Oslo"}',
         "id": "fc_fake0"},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Lima"}',
         "id": "fc_fake1"},
        {"type": "function_call_output", "call_id": "call_a", "output": "cold"},
        {"type": "function_call_output", "call_id": "call_b", "output": "Error: timeout"},
    ]


async def test_reasoning_replay_rules(fake: ResponsesFake, make: MakeBackend) -> None:
    call = ToolCallPart("c1", "get_time", {})
    ours = ReasoningPart("mine", provider="openai", redacted_data="enc1",
                         provider_details={"provider": "openai", "item_id": "rs_1"})
    unencrypted = ReasoningPart("no blob", provider="openai", provider_details={"item_id": "rs_2"})
    foreign = ReasoningPart("theirs", provider="anthropic", signature="sig",
                            provider_details={"item_id": "rs_3"})
    unmarked = ReasoningPart("no id", provider="openai")
    conversation = [
        Message.user("q"),
        Message("assistant", [ours, TextPart("Thinking aloud."), call]),
        Message.tool("c1", "get_time", "noon"),
        Message("assistant", [ReasoningPart("final turn", provider="openai", redacted_data="enc4",
                                            provider_details={"item_id": "rs_4"}), TextPart("Noon.")]),
        Message("user", [TextPart("And now?")]),
        Message("assistant", [unencrypted, foreign, unmarked, ToolCallPart(
            "c2", "get_time", {}, provider_details={"provider": "openai", "item_id": "fc_2"})]),
        Message("user", [ToolResultPart("c2", "get_time", "one"), TextPart("thanks")]),
    ]
    backend = make()
    await backend.generate(ask(*conversation))
    items = fake.last.json["input"]
    reasoning = [item for item in items if item["type"] == "reasoning"]
    # Only our own reasoning, with its encrypted content, in a turn that called tools.
    assert reasoning == [{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "mine"}],
                          "encrypted_content": "enc1"}]
    assert items[1:4] == [
        reasoning[0],
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Thinking aloud.",
                                                               "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "get_time", "arguments": "{}"},
    ]
    # No reasoning replayed in that turn, so its call goes without the item id it would pair with.
    assert items[-3:] == [
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c2", "output": "one"}, user_item("thanks"),
    ]

    # With stored responses an item is found by id, encrypted content or not.
    stored = make(options={"store": True})
    await stored.generate(ask(*conversation))
    reasoning = [item for item in fake.last.json["input"] if item["type"] == "reasoning"]
    assert [item["id"] for item in reasoning] == ["rs_1", "rs_2"]
    assert reasoning[1] == {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text",
                                                                             "text": "no blob"}]}
    assert {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}",
            "id": "fc_2"} in fake.last.json["input"]


async def test_fake_rejects_unresolvable_reasoning_and_orphan_outputs(backend: OpenAIResponsesBackend) -> None:
    with pytest.raises(BadRequestError, match="No tool call found"):
        await backend.generate(ask(Message.tool("nope", "get_time", "noon")))


async def test_inputs_images_and_files(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    message = Message.user([
        TextPart("Look:"),
        ImagePart(url="https://example.com/cat.png", detail="high"),
        ImagePart(data=b"\x89PNG", media_type="image/png"),
        FilePart(data=b"%PDF", media_type="application/pdf", filename="a.pdf"),
        FilePart(data=b"raw"),
        FilePart(url="https://example.com/b.pdf"),
    ])
    await backend.generate(ask(message))
    assert fake.last.json["input"][0]["content"] == [
        {"type": "input_text", "text": "Look:"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw==", "detail": "auto"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="},
        {"type": "input_file", "filename": "file", "file_data": "data:application/octet-stream;base64,cmF3"},
        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
    ]


@pytest.mark.parametrize(("message", "error"), [
    (Message("system", [ImagePart(url="https://x/y.png")]), "system message holds text only"),
    (Message("assistant", [ImagePart(url="https://x/y.png")]), "assistant message cannot hold a image"),
    (Message("assistant", [ToolResultPart("c", "t", "r")]), "assistant message cannot hold a tool_result"),
    (Message("user", [ToolCallPart("c", "t", {})]), "user message cannot hold a tool_call"),
    (Message("user", [ReasoningPart("r")]), "user message cannot hold a reasoning"),
    (Message("tool", [TextPart("loose")]), "may hold only tool results"),
])
async def test_parts_in_the_wrong_place(backend: OpenAIResponsesBackend, message: Message, error: str) -> None:
    with pytest.raises(InvalidRequestError, match=error):
        await backend.generate(ask(message))


# ----------------------------------------------------------------------- answers, wire → neutral


async def test_refusal_annotations_and_other_items(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    annotation = {"type": "url_citation", "url": "https://example.com", "start_index": 0, "end_index": 4,
                  "title": "Ex"}
    search = {"id": "ws_1", "type": "web_search_call", "status": "completed"}
    response = await stream_equals_generate(
        fake, backend, ask("q"), text="Partly: ", refusal="I can't help with that.", annotations=[annotation],
        extra_items=[search],
    )
    assert response.parts == [TextPart("Partly: "), TextPart("I can't help with that.")]
    assert response.provider_details == {
        "refusal": "I can't help with that.", "annotations": [annotation], "unsupported_items": [search],
    }


@pytest.mark.parametrize(("status", "reason", "finish", "details"), [
    ("incomplete", "max_output_tokens", "length", {"incomplete_reason": "max_output_tokens"}),
    ("incomplete", "content_filter", "content_filter", {"incomplete_reason": "content_filter"}),
    ("incomplete", "something_new", "length", {"incomplete_reason": "something_new"}),
])
async def test_incomplete_finish_reasons(fake: ResponsesFake, backend: OpenAIResponsesBackend, status: str,
                                         reason: str, finish: str, details: dict[str, Any]) -> None:
    response = await stream_equals_generate(fake, backend, ask("q"), text="cut", status=status,
                                            incomplete_reason=reason)
    assert response.finish_reason == finish
    assert response.provider_details == details


@pytest.mark.parametrize(("status", "finish"), [("cancelled", "error"), ("queued", "error"), ("weird", "error")])
async def test_other_statuses(fake: ResponsesFake, backend: OpenAIResponsesBackend, status: str, finish: str) -> None:
    fake.reply(raw_body={"id": "r", "status": status, "output": []})
    response = await backend.generate(ask("q"))
    assert response.finish_reason == finish and response.provider_details == {"status": status}


@pytest.mark.parametrize(("error", "expected"), [
    ({"code": "server_error", "message": "The server had an error."}, ServerError),
    ({"code": "rate_limit_exceeded", "message": "Slow down."}, RateLimitError),
    ({"code": "vector_store_timeout", "message": "Timed out."}, APIError),
])
async def test_failed_response_raises_streamed_or_not(fake: ResponsesFake, backend: OpenAIResponsesBackend,
                                                      error: dict[str, Any], expected: type[Exception]) -> None:
    fake.reply("x", status="failed", error=error)
    with pytest.raises(expected, match=error["message"]) as generated:
        await backend.generate(ask("q"))
    fake.reply("x", status="failed", error=error)
    with pytest.raises(expected) as streamed:
        await collect_stream(backend, ask("q"))
    assert type(generated.value) is type(streamed.value)
    assert not isinstance(generated.value, StreamInterruptedError)


async def test_failed_without_detail(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.reply(raw_body={"id": "r", "status": "failed", "error": "boom", "output": []})
    with pytest.raises(APIError, match="boom") as caught:
        await backend.generate(ask("q"))
    assert caught.value.retryable


async def test_raw_reasoning_content_and_call_without_item_id(fake: ResponsesFake,
                                                              backend: OpenAIResponsesBackend) -> None:
    fake.reply(raw_body={"id": "r", "status": "completed", "model": "gpt-oss-120b", "output": [
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "raw thoughts"}]},
        {"type": "function_call", "call_id": "c9", "name": "get_time", "arguments": ""},
    ]})
    response = await backend.generate(ask("q"))
    assert response.parts == [
        ReasoningPart("raw thoughts", provider="openai", provider_details={"provider": "openai",
                                                                            "summary": ["raw thoughts"]}),
        ToolCallPart("c9", "get_time", {}),
    ]
    assert response.model == "gpt-oss-120b"


def test_usage_normalization() -> None:
    assert usage_from_wire(None) == Usage()
    assert usage_from_wire({"input_tokens": 5, "output_tokens": 2}) == Usage(5, 2)


# ------------------------------------------------------------------------------------ errors


async def test_401(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.fail(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                              "code": "invalid_api_key"}})
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await backend.generate(ask("q"))


async def test_429_with_retry_after(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.fail(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
              headers={"retry-after": "20"})
    with pytest.raises(RateLimitError) as caught:
        await backend.generate(ask("q"))
    assert caught.value.retry_after == 20.0


async def test_400_context_length(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.fail(400, {"error": {"message": "Your input exceeds the context window of this model.",
                              "type": "invalid_request_error", "code": "context_length_exceeded"}})
    with pytest.raises(ContextWindowExceededError):
        await backend.generate(ask("q"))


async def test_unresolvable_reasoning_item_is_a_404_from_the_fake(make: MakeBackend) -> None:
    backend = make(options={"store": True})  # our side sends the id; the fake answers as store=false would
    conversation = [
        Message.user("q"),
        Message("assistant", [ReasoningPart("r", provider="openai", provider_details={"item_id": "rs_x"}),
                              ToolCallPart("c1", "get_time", {})]),
        Message.tool("c1", "get_time", "noon"),
    ]
    request = ask(*conversation, extra_body={"store": False})
    with pytest.raises(NotFoundError, match="not persisted"):
        await backend.generate(request)


async def test_answer_that_is_not_a_response(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.reply(raw_body={"choices": []})
    with pytest.raises(APIError, match="not a Responses API response"):
        await backend.generate(ask("q"))


# ------------------------------------------------------------------------------ presets, URLs


async def test_presets_urls_and_auth(fake: ResponsesFake, make: MakeBackend) -> None:
    azure = make("azure", path="/openai/deployments/gpt4o", name="azure")
    await azure.generate(ask("q"))
    assert fake.last.path == "/openai/v1/responses" and fake.last.headers["api-key"] == "k"
    assert "authorization" not in fake.last.headers
    xai = make("xai", path="/v1/responses")
    await xai.generate(ask("q", model="grok-4"))
    assert fake.last.path == "/v1/responses" and fake.last.headers["authorization"] == "Bearer k"
    own_type = make("openai_responses", name="openai")
    await own_type.generate(ask("q"))
    assert fake.last.path == "/v1/responses"


async def test_setup_errors() -> None:
    no_key = OpenAIResponsesBackend(BackendConfig(name="openai", type="openai"))
    with pytest.raises(ConfigurationError, match=r"OPENAI_API_KEY is not set.*model gpt-4o-mini"):
        await no_key.generate(ask("q"))
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        await no_key.list_models()
    no_url = OpenAIResponsesBackend(BackendConfig(name="mine", type="custom"))
    with pytest.raises(ConfigurationError, match="has no base_url"):
        await no_url.generate(ask("q"))


async def test_list_models(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    assert await backend.list_models() == ["gpt-5-mini"]
    assert fake.last.path == "/v1/models"
    fake.models = "oops"  # type: ignore[assignment]
    with pytest.raises(APIError, match="unexpected shape"):
        await backend.list_models()


# --------------------------------------------------------------------------------- streaming


async def test_stream_text_events(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.reply("Hello there world")
    events = await collect_stream(backend, ask("q"))
    assert fake.last.json["stream"] is True
    texts = [e.text for e in events if e.kind == "text"]
    assert len(texts) > 1 and "".join(texts) == "Hello there world"
    assert [e.kind for e in events[-2:]] == ["usage", "finish"]
    response = final_response(events)
    assert response.text == "Hello there world" and response.id == "resp_fake123"
    assert response.usage == Usage(20, 4) and response.latency_ms > 0


async def test_stream_equals_generate_text(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    await stream_equals_generate(fake, backend, ask("q"), text="One two three four.")


async def test_stream_equals_generate_reasoning_and_tools(fake: ResponsesFake,
                                                          backend: OpenAIResponsesBackend) -> None:
    calls = [{"id": "call_a", "name": "get_weather", "arguments": {"city": "Oslo"}},
             {"id": "call_b", "name": "get_weather", "arguments": {"city": "Lima"}}]
    request = ask("q", model=REASONING_MODEL, tools=[WEATHER])
    fake.reply(reasoning_summary=["First.", "Second."], tool_calls=calls, fragment_size=3)
    events = await collect_stream(backend, request)
    assert "".join(e.text for e in events if e.kind == "reasoning") == "First.\n\nSecond."
    deltas = [e for e in events if e.kind == "tool_call_delta"]
    assert deltas[0].call_id == "call_a" and deltas[0].name == "get_weather"
    assert "".join(e.arguments_delta for e in deltas if e.index == 2) == '{"city": "Lima"}'
    assert [e.tool_call.id for e in events if e.kind == "tool_call" and e.tool_call] == ["call_a", "call_b"]
    response = await stream_equals_generate(fake, backend, request, reasoning_summary=["First.", "Second."],
                                            tool_calls=calls)
    assert response.finish_reason == "tool_calls"
    assert isinstance(response.parts[0], ReasoningPart) and response.parts[0].redacted_data == ENCRYPTED


async def test_stream_equals_generate_without_deltas(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    request = ask("q", model=REASONING_MODEL)
    fake.reply("Whole answer.", reasoning_summary=[], deltas=False)
    events = await collect_stream(backend, request)
    assert [e.text for e in events if e.kind == "text"] == ["Whole answer."]
    response = await stream_equals_generate(fake, backend, request, text="Whole answer.", reasoning_summary=[],
                                            deltas=False)
    assert response.parts == [
        ReasoningPart(provider="openai", redacted_data=ENCRYPTED,
                      provider_details={"provider": "openai", "summary": [], "item_id": "rs_fake0"}),
        TextPart("Whole answer."),
    ]


@pytest.mark.parametrize("fault", [
    {"skip_events": ("response.output_item.done",)},  # calls, reasoning ids and encrypted content never done
    {"skip_events": ("response.function_call_arguments.delta", "response.output_item.done")},
    {"skip_last_deltas": 2},  # the end of the text lost on the way
    {"skip_events": ("response.output_text.delta", "response.reasoning_summary_text.delta")},
])
async def test_a_stream_whose_events_fall_short_answers_what_response_completed_says(
    fake: ResponsesFake, backend: OpenAIResponsesBackend, fault: dict[str, Any]
) -> None:
    calls = [{"id": "call_a", "name": "get_weather", "arguments": {"city": "Oslo"}}]
    request = ask("q", model=REASONING_MODEL, tools=[WEATHER])
    script: dict[str, Any] = {"text": "Checking the weather now.", "reasoning_summary": ["Look it up."],
                              "tool_calls": calls, "fragment_size": 3}
    fake.reply(**script)
    generated = await backend.generate(request)
    fake.reply(**script, **fault)
    events = await collect_stream(backend, request)
    streamed = final_response(events)
    assert comparable_response(streamed) == comparable_response(generated)
    # What the events had not shown is emitted before the finish: every call, the text's missing end.
    assert [e.tool_call.id for e in events if e.kind == "tool_call" and e.tool_call] == ["call_a"]
    if "skip_last_deltas" in fault:
        assert "".join(e.text for e in events if e.kind == "text") == "Checking the weather now."


def test_a_terminal_event_without_output_leaves_the_streamed_answer() -> None:
    # Some compatible servers send response.completed with an empty output: the events are the answer.
    decoder = ResponsesStreamDecoder("openai", CHAT_MODEL)
    decoder.feed({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hi"})
    decoder.feed({"type": "response.completed", "response": {"id": "r", "status": "completed", "output": []}})
    closing = decoder.close()
    assert closing[-1].response is not None and closing[-1].response.text == "Hi"


@pytest.mark.parametrize(("error_body", "expected"), [
    (None, ServerError),
    ({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down.", "param": None}, RateLimitError),
    ({"type": "error", "code": None, "message": "Something odd."}, StreamInterruptedError),
])
async def test_mid_stream_error_event(fake: ResponsesFake, backend: OpenAIResponsesBackend,
                                      error_body: dict[str, Any] | None, expected: type[Exception]) -> None:
    fake.reply("Hello there world", error_after=5, error_body=error_body)
    with pytest.raises(expected):
        await collect_stream(backend, ask("q"))


async def test_stream_status_errors_and_breaks(fake: ResponsesFake, backend: OpenAIResponsesBackend) -> None:
    fake.fail(429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
              headers={"retry-after": "2"})
    with pytest.raises(RateLimitError):
        await collect_stream(backend, ask("q"))
    fake.reply("Hello there world", drop_after=4)
    with pytest.raises(StreamInterruptedError, match="broke in the middle"):
        await collect_stream(backend, ask("q"))
    fake.reply("Hello", omit_terminal=True)
    with pytest.raises(StreamInterruptedError, match=r"before response\.completed"):
        await collect_stream(backend, ask("q"))


@pytest.mark.parametrize("transport_type", [AiohttpTransport, HttpxTransport])
async def test_stream_on_each_transport(fake: ResponsesFake, transport_type: type[Transport[Any]]) -> None:
    backend = OpenAIResponsesBackend(
        BackendConfig(name="openai", type="openai", base_url=fake.url + "/v1", api_key="k"),
        transport=transport_type(),
    )
    try:
        fake.reply("Hello there world")
        assert final_response(await collect_stream(backend, ask("q"))).text == "Hello there world"
        fake.reply("Hello there world", drop_after=4)
        with pytest.raises(StreamInterruptedError):
            await collect_stream(backend, ask("q"))
    finally:
        await backend.aclose()


def test_decoder_edges() -> None:
    decoder = ResponsesStreamDecoder("openai", CHAT_MODEL)
    with pytest.raises(StreamInterruptedError, match="not an object"):
        decoder.feed("text")
    assert decoder.feed({"type": "response.output_text.delta", "delta": ""}) == []
    assert decoder.feed({"type": "response.reasoning_summary_text.delta", "delta": ""}) == []
    assert decoder.feed({"type": "response.function_call_arguments.delta", "delta": ""}) == []
    assert decoder.feed({"type": "response.output_item.done", "output_index": 0,
                         "item": {"type": "message", "content": []}}) == []
    assert decoder.feed({"type": "response.output_text.annotation.added"}) == []


# ---------------------------------------------------------------------------- conformance kit


class ResponsesConformance:
    """The conformance kit's server protocol over :class:`ResponsesFake`."""

    def __init__(self, fake: ResponsesFake) -> None:
        self.fake = fake

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {"input_tokens": input_tokens, "output_tokens": output_tokens}

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.fake.reply(text, usage=self._usage(input_tokens, output_tokens))

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        wire = [{"id": f"call_{i}", "name": name, "arguments": arguments} for i, (name, arguments) in enumerate(calls)]
        self.fake.reply(tool_calls=wire, usage=self._usage(input_tokens, output_tokens))

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.fake.fail(status, {"error": {"message": message, "type": "invalid_request_error"}}, headers=headers or {})

    def request_count(self) -> int:
        return len(self.fake.requests)

    def last_request_body(self) -> Any:
        return self.fake.requests[-1].json


@pytest.mark.parametrize("model", [CHAT_MODEL, REASONING_MODEL])
async def test_conformance(fake: ResponsesFake, make: MakeBackend, model: str) -> None:
    report = await run_conformance(make, ResponsesConformance(fake), model)
    assert report.passed, str(report)
