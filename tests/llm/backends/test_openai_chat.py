"""OpenAIChatBackend, non-streaming: the neutral -> wire mapping, the wire -> neutral mapping, URLs,
auth, the presets' quirks, discovery and error translation, all against the loopback fake."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pydantic
import pytest

from agentadapter.llm.backends.base import BackendConfig, backend_class
from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
from agentadapter.llm.backends.openai_chat_mapping import (
    FINISH_REASONS,
    is_strict_compatible,
    mistral_tool_call_id,
)
from agentadapter.llm.conformance import run_conformance
from agentadapter.llm.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from agentadapter.llm.messages import (
    CacheHints,
    FilePart,
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool
from agentadapter.llm.transport import AiohttpTransport
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
        kind: str = "openai", *, path: str = "/v1", api_key: str | None = "k", name: str | None = None,
        base_url: str | None = "", **config: Any,
    ) -> OpenAIChatBackend:
        url = fake.url + path if base_url == "" else base_url
        backend = OpenAIChatBackend(
            BackendConfig(name=name or kind, type=kind, base_url=url, api_key=api_key, **config)
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


def ask(*messages: Message | str, model: str = "gpt-4o-mini", **settings: Any) -> Request:
    return Request(model, [Message.user(m) if isinstance(m, str) else m for m in messages], **settings)


WEATHER = Tool(
    "get_weather", "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "The time.")


# ------------------------------------------------------------------------------------- basics


@pytest.mark.parametrize("kind", ["openai", "mistral", "ollama"])
async def test_conformance_kit(fake: OpenAIFake, kind: str) -> None:
    transport = AiohttpTransport()
    config = BackendConfig(name=kind, type=kind, base_url=fake.url + "/v1", api_key="k")
    try:
        report = await run_conformance(lambda: OpenAIChatBackend(config, transport=transport), fake, "m")
    finally:
        await transport.aclose()
    assert report.passed, str(report)


def test_registered_as_openai_chat() -> None:
    assert backend_class("openai_chat") is OpenAIChatBackend
    assert OpenAIChatBackend.type_name == "openai_chat"


async def test_text_round_trip(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make()
    fake.reply("Hi there!", usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    response = await backend.generate(ask("Say hi"))
    assert response.text == "Hi there!"
    assert response.parts == [TextPart("Hi there!")]
    assert response.finish_reason == "stop"
    assert response.provider == "openai"
    assert response.model == "gpt-4o-mini"
    assert response.id == "chatcmpl-fake123"
    assert response.usage == Usage(input_tokens=9, output_tokens=3)
    assert response.provider_details is None  # system_fingerprint and friends are bookkeeping
    assert response.latency_ms > 0
    sent = fake.last
    assert sent.method == "POST" and sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]}


async def test_echo_when_nothing_is_scripted(make: MakeBackend) -> None:
    response = await make().generate(ask("echo me"))
    assert response.text == "echo me"


async def test_model_reported_by_server_wins_and_request_model_is_the_fallback(
    fake: OpenAIFake, make: MakeBackend
) -> None:
    backend = make()
    fake.reply("x", model="gpt-4o-mini-2024-07-18")
    assert (await backend.generate(ask("q"))).model == "gpt-4o-mini-2024-07-18"
    fake.reply(raw_body={"choices": [{"message": {"role": "assistant", "content": "y"}, "finish_reason": "stop"}]})
    response = await backend.generate(ask("q"))
    assert (response.model, response.id, response.text) == ("gpt-4o-mini", "", "y")
    assert response.usage == Usage()


# ------------------------------------------------------------------------------ neutral -> wire


async def test_conversation_with_tool_calls_and_results(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make()
    messages = [
        Message.system("be brief"),
        Message.user("weather and time?"),
        Message(
            "assistant",
            [
                ReasoningPart("let me think", provider="deepseek"),
                TextPart("Checking."),
                ToolCallPart("call_1", "get_weather", {"city": "Paris"}),
                ToolCallPart("call_2", "get_time", {}),
            ],
        ),
        Message(
            "tool",
            [
                ToolResultPart("call_1", "get_weather", "sunny"),
                ToolResultPart("call_2", "get_time", "clock broke", is_error=True),
            ],
        ),
        Message("user", [TextPart("thanks")], name="bob"),
    ]
    await backend.generate(Request("gpt-4o-mini", messages, tools=[WEATHER, TIME]))
    assert fake.last.json["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather and time?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: clock broke"},
        {"role": "user", "content": "thanks", "name": "bob"},
    ]
    assert fake.last.json["tools"] == [WEATHER.to_openai(), TIME.to_openai()]


async def test_assistant_tool_calls_without_text_send_null_content(fake: OpenAIFake, make: MakeBackend) -> None:
    messages = [
        Message.user("q"),
        Message("assistant", [ToolCallPart("c1", "get_time", {"_raw_arguments": "{broken"})]),
        Message.tool("c1", "get_time", "noon"),
        Message("assistant", []),
    ]
    await make().generate(Request("gpt-4o-mini", messages, tools=[TIME]))
    wire = fake.last.json["messages"]
    assert wire[1] == {
        "role": "assistant", "content": None,
        # the model's unparseable arguments are replayed exactly as it sent them
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{broken"}}],
    }
    assert wire[3] == {"role": "assistant", "content": ""}


async def test_tool_results_in_a_user_message_go_first(fake: OpenAIFake, make: MakeBackend) -> None:
    messages = [
        Message("assistant", [ToolCallPart("c1", "get_time", {})]),
        Message("user", [ToolResultPart("c1", "get_time", "noon"), TextPart("and now?")]),
        Message("assistant", [ToolCallPart("c2", "get_time", {})]),
        Message("user", [ToolResultPart("c2", "get_time", "one")]),
    ]
    await make().generate(Request("gpt-4o-mini", messages))
    wire = fake.last.json["messages"]
    assert wire[1:3] == [
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        {"role": "user", "content": "and now?"},
    ]
    assert wire[4:] == [{"role": "tool", "tool_call_id": "c2", "content": "one"}]


async def test_images_by_url_and_inline(fake: OpenAIFake, make: MakeBackend) -> None:
    png = b"\x89PNG\r\n\x1a\n"
    message = Message.user(
        [
            TextPart("What is in these?"),
            ImagePart(url="https://example.com/cat.png", detail="low"),
            ImagePart(data=png, media_type="image/png"),
        ]
    )
    await make().generate(Request("gpt-4o-mini", [message]))
    assert fake.last.json["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url",
                 "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
            ],
        }
    ]


async def test_files_and_multi_text_messages(fake: OpenAIFake, make: MakeBackend) -> None:
    pdf = b"%PDF-1.4 tiny"
    message = Message.user(
        [
            TextPart("Summarize"),
            TextPart(" both."),
            FilePart(data=pdf, media_type="application/pdf", filename="report.pdf"),
            FilePart(data=b"plain", filename="notes.txt"),
        ]
    )
    named = Message("user", [TextPart("a"), TextPart("b")], name="ann")
    await make().generate(Request("gpt-4o-mini", [message, named]))
    first, second = fake.last.json["messages"]
    assert first["content"][:3] == [
        {"type": "text", "text": "Summarize"},
        {"type": "text", "text": " both."},
        {"type": "file", "file": {"filename": "report.pdf",
                                  "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode()}},
    ]
    assert first["content"][3]["file"]["file_data"].startswith("data:text/plain;base64,")
    # several text parts stay separate parts rather than being glued together
    assert second == {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                      "name": "ann"}


async def test_file_without_name_or_type_gets_defaults(fake: OpenAIFake, make: MakeBackend) -> None:
    await make().generate(ask(Message.user([FilePart(data=b"\x00\x01")])))
    file = fake.last.json["messages"][0]["content"][0]["file"]
    assert file["filename"].startswith("file")
    assert file["file_data"].startswith("data:application/octet-stream;base64,")


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        (Message.user([FilePart(url="https://example.com/a.pdf")]), "inline data"),
        (Message("assistant", [ImagePart(url="https://example.com/a.png")]), "assistant"),
        (Message("assistant", [ToolResultPart("c", "t", "x")]), "tool results"),
        (Message("tool", [TextPart("loose text")]), "only tool results"),
        (Message("user", [ToolCallPart("c", "t", {})]), "tool calls"),
    ],
)
async def test_parts_that_cannot_be_sent_raise(
    fake: OpenAIFake, make: MakeBackend, message: Message, complaint: str
) -> None:
    with pytest.raises(InvalidRequestError, match=complaint):
        await make().generate(ask(message))
    assert fake.requests == []  # refused before anything was sent


async def test_tool_choice_and_parallel_tool_calls(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make()
    for choice in ("auto", "none", "required"):
        await backend.generate(ask("q", tools=[WEATHER], tool_choice=choice, parallel_tool_calls=False))
        assert fake.last.json["tool_choice"] == choice
        assert fake.last.json["parallel_tool_calls"] is False
    await backend.generate(ask("q", tools=[WEATHER, TIME], tool_choice="get_time"))
    assert fake.last.json["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert "parallel_tool_calls" not in fake.last.json
    await backend.generate(ask("q", tool_choice="auto", parallel_tool_calls=True))
    assert "tool_choice" not in fake.last.json and "tools" not in fake.last.json
    assert "parallel_tool_calls" not in fake.last.json


@pytest.mark.parametrize(("tools", "choice"), [([WEATHER], "get_time"), ([], "required"), ([], "get_time")])
async def test_tool_choice_that_cannot_work_is_refused(make: MakeBackend, tools: list[Tool], choice: str) -> None:
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        await make().generate(ask("q", tools=tools, tool_choice=choice))


class City(pydantic.BaseModel):
    name: str
    country: str | None = None


STRICT_SCHEMA = {
    "title": "Place",
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "tags"],
    "additionalProperties": False,
}


async def test_structured_output_response_format(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make()
    await backend.generate(ask("q", output=OutputSchema.of(STRICT_SCHEMA)))
    assert fake.last.json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Place", "schema": {k: v for k, v in STRICT_SCHEMA.items() if k != "title"},
                        "strict": True},
    }
    # a pydantic model with an optional field is sent in its strict form: all required, the optional nullable
    await backend.generate(ask("q", output=OutputSchema.of(City)))
    format_ = fake.last.json["response_format"]["json_schema"]
    assert (format_["name"], format_["strict"]) == ("City", True)
    assert format_["schema"]["required"] == ["name", "country"]
    assert format_["schema"]["additionalProperties"] is False
    # a strict-compatible schema whose owner turned strict off stays off
    await backend.generate(ask("q", output=OutputSchema("Place", dict(STRICT_SCHEMA), strict=False)))
    assert fake.last.json["response_format"]["json_schema"]["strict"] is False


@pytest.mark.parametrize(
    ("schema", "compatible"),
    [
        ({"type": "string"}, True),
        ({"type": "object", "properties": {}, "additionalProperties": False}, True),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, False),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}, False),
        ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}, "required": ["a"],
          "additionalProperties": False}, False),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"],
          "additionalProperties": False,
          "$defs": {"A": {"type": "object", "properties": {"b": {"type": "integer"}}}}}, False),
        ({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, True),
        ({"type": "array", "items": {"type": "object", "properties": {"x": {}}}}, False),
        ({"anyOf": [{"type": "object", "properties": {}}]}, False),
    ],
)
def test_strict_compatibility(schema: dict[str, Any], compatible: bool) -> None:
    assert is_strict_compatible(schema) is compatible


async def test_sampling_settings(fake: OpenAIFake, make: MakeBackend) -> None:
    await make().generate(
        ask("q", temperature=0.2, top_p=0.9, max_tokens=64, stop=["END"], seed=7, reasoning_effort="low")
    )
    body = fake.last.json
    assert {k: body[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed", "reasoning_effort")} == {
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": ["END"], "seed": 7, "reasoning_effort": "low",
    }
    assert "max_completion_tokens" not in body


@pytest.mark.parametrize(
    ("kind", "model", "options", "reasoning"),
    [
        ("openai", "o3-mini", {}, True),  # the catalog says so
        ("openai", "gpt-5-nano-2030-01-01", {}, True),  # by name
        ("openai", "o1", {}, True),
        ("openai", "gpt-4o-mini", {}, False),
        ("azure", "my-deployment", {"reasoning_model": True}, True),  # a deployment name tells nothing
        ("azure", "o4-mini", {"reasoning_model": False}, False),
        ("groq", "o3-mini", {}, False),  # the preset has no reasoning-model settings
    ],
)
async def test_reasoning_model_settings(
    fake: OpenAIFake, make: MakeBackend, kind: str, model: str, options: dict[str, Any], reasoning: bool
) -> None:
    backend = make(kind, path="" if kind == "azure" else "/v1", options=options)
    for _ in range(2):  # the second call uses the cached decision
        await backend.generate(ask("q", model=model, temperature=0.5, top_p=0.5, max_tokens=100))
        body = fake.last.json
        if reasoning:
            assert body["max_completion_tokens"] == 100
            assert not {"max_tokens", "temperature", "top_p"} & body.keys()
        else:
            assert (body["max_tokens"], body["temperature"], body["top_p"]) == (100, 0.5, 0.5)
            assert "max_completion_tokens" not in body


async def test_openai_only_fields(fake: OpenAIFake, make: MakeBackend) -> None:
    settings: dict[str, Any] = {"cache": CacheHints(prompt_cache_key="tenant-42"), "metadata": {"run": "r1"}}
    await make("openai").generate(ask("q", **settings))
    assert fake.last.json["prompt_cache_key"] == "tenant-42"
    # OpenAI refuses metadata unless the completion is stored, and storing is the user's call
    assert "metadata" not in fake.last.json and "store" not in fake.last.json
    await make("openai", options={"store": True}).generate(ask("q", **settings))
    assert (fake.last.json["store"], fake.last.json["metadata"]) == (True, {"run": "r1"})
    await make("openai").generate(ask("q", extra_body={"store": True}, **settings))
    assert fake.last.json["metadata"] == {"run": "r1"}
    await make("groq", options={"store": True}).generate(ask("q", **settings))
    assert not {"prompt_cache_key", "metadata", "store"} & fake.last.json.keys()


async def test_extra_body_is_merged_last(fake: OpenAIFake, make: MakeBackend) -> None:
    await make().generate(ask("q", temperature=0.1, extra_body={"temperature": 1.0, "top_k": 5}))
    assert (fake.last.json["temperature"], fake.last.json["top_k"]) == (1.0, 5)


async def test_extra_headers_and_config_headers(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make(headers={"x-team": "a"})
    await backend.generate(ask("q", extra_headers={"x-trace": "t1"}))
    assert (fake.last.headers["x-team"], fake.last.headers["x-trace"]) == ("a", "t1")


# ------------------------------------------------------------------------------------- Mistral


def test_mistral_tool_call_ids() -> None:
    assert mistral_tool_call_id("abcDEF123") == "abcDEF123"  # already valid: kept
    mapped = mistral_tool_call_id("call_9f8e7d6c5b4a")
    assert len(mapped) == 9 and mapped.isalnum() and mapped.isascii()
    assert mistral_tool_call_id("call_9f8e7d6c5b4a") == mapped  # deterministic
    assert mistral_tool_call_id("toolu_01") != mapped
    assert mistral_tool_call_id("abcdéf123") != "abcdéf123"  # non-ASCII letters are not accepted


async def test_mistral_ids_stay_consistent_between_calls_and_results(fake: OpenAIFake, make: MakeBackend) -> None:
    messages = [
        Message.user("q"),
        Message("assistant", [ToolCallPart("toolu_01ABC", "get_time", {}), ToolCallPart("Ab3dE6gH9", "get_time", {})]),
        Message("tool", [ToolResultPart("toolu_01ABC", "get_time", "noon"),
                         ToolResultPart("Ab3dE6gH9", "get_time", "one")]),
    ]
    await make("mistral").generate(Request("mistral-large-latest", messages))
    wire = fake.last.json["messages"]
    mapped = mistral_tool_call_id("toolu_01ABC")
    assert [c["id"] for c in wire[1]["tool_calls"]] == [mapped, "Ab3dE6gH9"]
    assert [m["tool_call_id"] for m in wire[2:]] == [mapped, "Ab3dE6gH9"]
    # other presets keep ids as given
    await make("openai").generate(Request("gpt-4o", messages))
    assert fake.last.json["messages"][1]["tool_calls"][0]["id"] == "toolu_01ABC"


async def test_mistral_list_content_with_thinking(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply("The answer is 4.", reasoning="2+2 is 4", mistral_list_content=True)
    response = await make("mistral").generate(ask("2+2?", model="magistral-medium-latest"))
    assert response.parts == [ReasoningPart("2+2 is 4", provider="mistral"), TextPart("The answer is 4.")]
    assert response.reasoning == "2+2 is 4"


async def test_list_content_variants_are_merged_by_kind(fake: OpenAIFake, make: MakeBackend) -> None:
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"type": "thinking", "thinking": "c"},
        {"type": "text", "text": "x"},
        "y",
        {"type": "text", "text": ""},
        {"type": "image_url", "image_url": "ignored"},
        {"type": "thinking", "thinking": [{"type": "text", "text": "d"}, "junk"]},
    ]
    fake.reply(raw_body={"id": "m1", "model": "magistral", "choices": [
        {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
    response = await make("mistral").generate(ask("q"))
    assert response.parts == [
        ReasoningPart("abc", provider="mistral"), TextPart("xy"), ReasoningPart("d", provider="mistral"),
    ]


# ------------------------------------------------------------------------------ wire -> neutral


async def test_parallel_tool_calls_come_back_parsed(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(
        tool_calls=[
            {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"id": "call_b", "name": "get_weather", "arguments": {"city": "Oslo"}},
            {"id": "call_c", "name": "get_time", "arguments": "{not json"},
        ]
    )
    response = await make().generate(ask("q", tools=[WEATHER, TIME]))
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        ToolCallPart("call_a", "get_weather", {"city": "Paris"}),
        ToolCallPart("call_b", "get_weather", {"city": "Oslo"}),
        ToolCallPart("call_c", "get_time", {"_raw_arguments": "{not json"}),
    ]
    assert response.text == ""


async def test_tool_call_without_id_gets_a_positional_one(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(raw_body={"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "get_time", "arguments": ""}}]}, "finish_reason": None}]})
    response = await make("ollama").generate(ask("q"))
    assert response.tool_calls == [ToolCallPart("call_0", "get_time", {})]
    assert response.finish_reason == "tool_calls"  # inferred when the server gives none


@pytest.mark.parametrize(
    ("kind", "key"), [("deepseek", "reasoning_content"), ("groq", "reasoning"), ("openrouter", "reasoning")]
)
async def test_reasoning_fields_become_reasoning_parts_first(
    fake: OpenAIFake, make: MakeBackend, kind: str, key: str
) -> None:
    fake.reply("42", reasoning="thinking hard", reasoning_key=key)
    response = await make(kind, name=f"my-{kind}").generate(ask("q", model="some-reasoner"))
    assert response.parts == [ReasoningPart("thinking hard", provider=f"my-{kind}"), TextPart("42")]


async def test_reasoning_parts_are_not_sent_back(fake: OpenAIFake, make: MakeBackend) -> None:
    messages = [Message.user("q"), Message("assistant", [ReasoningPart("t", provider="deepseek"), TextPart("a")])]
    await make("deepseek").generate(Request("deepseek-reasoner", messages))
    assert fake.last.json["messages"][1] == {"role": "assistant", "content": "a"}
    assert "reasoning_content" not in json.dumps(fake.last.json)


async def test_refusal(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(None, refusal="I can't help with that.")
    response = await make().generate(ask("q"))
    assert response.text == "I can't help with that."
    assert response.provider_details == {"refusal": "I can't help with that."}


@pytest.mark.parametrize(
    ("raw", "expected", "details"),
    [
        ("stop", "stop", None),
        ("length", "length", None),
        ("content_filter", "content_filter", None),
        ("function_call", "tool_calls", None),
        ("model_length", "length", None),
        ("eos", "stop", None),
        ("something_new", "stop", {"finish_reason": "something_new"}),
    ],
)
async def test_finish_reasons(
    fake: OpenAIFake, make: MakeBackend, raw: str, expected: str, details: dict[str, str] | None
) -> None:
    fake.reply("x", finish_reason=raw)
    response = await make().generate(ask("q"))
    assert response.finish_reason == expected
    assert response.provider_details == details


def test_finish_reason_table_covers_openai() -> None:
    assert {"stop", "length", "tool_calls", "function_call", "content_filter"} <= FINISH_REASONS.keys()


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (  # OpenAI: cached tokens are part of prompt_tokens, reasoning part of completion_tokens
            {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
             "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 30, "accepted_prediction_tokens": 0}},
            Usage(input_tokens=100, output_tokens=50, cached_input_tokens=40, reasoning_tokens=30),
        ),
        (  # DeepSeek
            {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_cache_hit_tokens": 60,
             "prompt_cache_miss_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 10}},
            Usage(input_tokens=100, output_tokens=20, cached_input_tokens=60, reasoning_tokens=10),
        ),
        (  # nulls where details would be
            {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": None,
             "completion_tokens_details": None},
            Usage(input_tokens=5, output_tokens=1),
        ),
        (  # Perplexity reports reasoning tokens at the top level
            {"prompt_tokens": 5, "completion_tokens": 9, "reasoning_tokens": 4, "citation_tokens": 3},
            Usage(input_tokens=5, output_tokens=9, reasoning_tokens=4),
        ),
    ],
)
async def test_usage_normalization(
    fake: OpenAIFake, make: MakeBackend, usage: dict[str, Any], expected: Usage
) -> None:
    fake.reply("x", usage=usage)
    assert (await make().generate(ask("q"))).usage == expected


async def test_unknown_top_level_data_goes_to_provider_details(fake: OpenAIFake, make: MakeBackend) -> None:
    citations = ["https://example.com/a"]
    search_results = [{"title": "A", "url": "https://example.com/a"}]
    fake.reply("x", extra={"citations": citations, "search_results": search_results, "images": [],
                           "service_tier": "default", "prompt_logprobs": None})
    response = await make("perplexity", path="").generate(ask("q", model="sonar"))
    assert response.provider_details == {
        "citations": citations, "search_results": search_results, "service_tier": "default",
    }
    assert fake.last.path == "/chat/completions"


# ------------------------------------------------------------------------------------- errors


async def test_401_is_an_authentication_error(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.fail(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                              "code": "invalid_api_key"}}, headers={"x-request-id": "req_1"})
    with pytest.raises(AuthenticationError) as caught:
        await make("groq", path="/openai/v1").generate(ask("q", model="llama-3.3-70b-versatile"))
    error = caught.value
    assert (error.status, error.provider, error.model, error.request_id) == (
        401, "groq", "llama-3.3-70b-versatile", "req_1")
    assert "GROQ_API_KEY" in str(error)
    assert not error.retryable


async def test_context_window_exceeded(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.fail(400, {"error": {"message": "This model's maximum context length is 128000 tokens.",
                              "type": "invalid_request_error", "code": "context_length_exceeded"}})
    with pytest.raises(ContextWindowExceededError):
        await make().generate(ask("q"))


async def test_rate_limit_with_retry_after(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.fail(429, {"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}},
              headers={"retry-after": "2"})
    with pytest.raises(RateLimitError) as caught:
        await make().generate(ask("q"))
    assert caught.value.retry_after == 2.0
    assert caught.value.retryable


@pytest.mark.parametrize(("status", "error_type"), [(500, ServerError), (404, NotFoundError),
                                                    (422, BadRequestError)])
async def test_other_statuses(fake: OpenAIFake, make: MakeBackend, status: int, error_type: type[Exception]) -> None:
    fake.fail(status, {"error": {"message": "nope"}})
    with pytest.raises(error_type):
        await make().generate(ask("q"))


async def test_http_200_that_is_not_json(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.fail(200, raw=b"<html>gateway</html>")
    with pytest.raises(APIError, match="not JSON"):
        await make().generate(ask("q"))


async def test_http_200_with_an_error_body(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make("openrouter", path="/api/v1")
    fake.reply(raw_body={"error": {"message": "upstream failed", "code": 502}})
    with pytest.raises(ServerError, match="upstream failed"):
        await backend.generate(ask("q"))
    fake.reply(raw_body={"error": {"message": "something odd"}})
    with pytest.raises(APIError, match="something odd") as caught:
        await backend.generate(ask("q"))
    assert caught.value.retryable
    fake.reply(raw_body=["not", "a", "completion"])
    with pytest.raises(APIError, match="not a chat completion"):
        await backend.generate(ask("q"))


async def test_empty_choices(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.reply(raw_body={"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}})
    response = await make().generate(ask("q"))
    assert (response.parts, response.finish_reason, response.usage.input_tokens) == ([], "stop", 3)


# ---------------------------------------------------------------------------- URLs and set-up


async def test_azure_url_and_api_key_header(fake: OpenAIFake, make: MakeBackend) -> None:
    await make("azure", path="/").generate(ask("q", model="gpt-4o"))
    sent = fake.last
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "k" and "authorization" not in sent.headers


async def test_azure_deployment_option_and_api_version(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make("azure", path="", api_version="2025-01-01-preview", options={"deployment": "prod 4o"})
    await backend.generate(ask("q", model="gpt-4o"))
    assert fake.last.path == "/openai/deployments/prod 4o/chat/completions"
    assert fake.last.query == {"api-version": "2025-01-01-preview"}
    assert fake.last.json["model"] == "gpt-4o"


async def test_azure_base_url_that_names_the_deployment(fake: OpenAIFake, make: MakeBackend) -> None:
    await make("azure", path="/openai/deployments/mydep/").generate(ask("q", model="gpt-4o"))
    assert fake.last.path == "/openai/deployments/mydep/chat/completions"
    assert fake.last.query == {"api-version": "2024-10-21"}


async def test_azure_v1_api(fake: OpenAIFake, make: MakeBackend) -> None:
    await make("azure_openai", path="/openai/v1").generate(ask("q", model="gpt-4o"))
    assert (fake.last.path, fake.last.query) == ("/openai/v1/chat/completions", {})
    assert fake.last.headers["api-key"] == "k"


async def test_full_endpoint_url_as_base(fake: OpenAIFake, make: MakeBackend) -> None:
    await make("custom", path="/v1/chat/completions").generate(ask("q"))
    assert fake.last.path == "/v1/chat/completions"


@pytest.mark.parametrize(("kind", "named"), [("azure", "AZURE_OPENAI_ENDPOINT"), ("custom", "base_url")])
async def test_missing_base_url(make: MakeBackend, kind: str, named: str) -> None:
    backend = make(kind, base_url=None)
    with pytest.raises(ConfigurationError, match=named):
        await backend.generate(ask("q"))
    with pytest.raises(ConfigurationError, match=named):
        await backend.list_models()


async def test_missing_key_for_the_vendor_host(make: MakeBackend) -> None:
    backend = make("groq", base_url=None, api_key=None)
    assert backend._base_url == "https://api.groq.com/openai/v1"  # the preset's default
    with pytest.raises(ConfigurationError, match="GROQ_API_KEY is not set") as caught:
        await backend.generate(ask("q", model="llama-3.3-70b-versatile"))
    assert "llama-3.3-70b-versatile" in str(caught.value)


async def test_no_key_needed_for_another_host(fake: OpenAIFake, make: MakeBackend) -> None:
    await make("openai", api_key=None).generate(ask("q"))  # e.g. a proxy in front of OpenAI
    assert "authorization" not in fake.last.headers


@pytest.mark.parametrize("kind", ["something-unknown", "anthropic", "openai_chat"])
async def test_types_without_a_chat_preset_behave_like_custom(
    fake: OpenAIFake, make: MakeBackend, kind: str
) -> None:
    backend = make(kind)
    assert backend.preset.name == "custom"
    await backend.generate(ask("q"))
    assert fake.last.headers["authorization"] == "Bearer k"


# ------------------------------------------------------------------------------------- discovery


async def test_list_models(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.models = [{"id": "llama-3", "object": "model"}, {"id": "qwen", "object": "model"}, {"object": "x"}, "junk"]
    assert await make("vllm", api_key=None).list_models() == ["llama-3", "qwen"]
    assert (fake.last.method, fake.last.path) == ("GET", "/v1/models")


async def test_list_models_on_azure(fake: OpenAIFake, make: MakeBackend) -> None:
    await make("azure", path="/openai/deployments/dep").list_models()
    assert (fake.last.path, fake.last.query) == ("/openai/models", {"api-version": "2024-10-21"})


async def test_list_models_with_an_unexpected_shape(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.route("GET", "/weird/models", _weird_models)
    with pytest.raises(APIError, match="unexpected shape"):
        await make(path="/weird").list_models()


async def _weird_models(request: Any, recorded: Any) -> Any:
    from aiohttp import web

    return web.json_response({"models": "none"})


async def test_detect_capabilities_from_vllm_metadata(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.models = [{"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model", "max_model_len": 32768}]
    backend = make("vllm", api_key=None)
    capabilities = await backend.detect_capabilities("meta-llama/Llama-3.1-8B-Instruct")
    assert capabilities.context_window == 32768
    assert capabilities.max_output_tokens == backend.capabilities("x").max_output_tokens


async def test_detect_capabilities_from_openrouter_metadata(fake: OpenAIFake, make: MakeBackend) -> None:
    fake.models = [{"id": "a/b", "context_length": 200000, "top_provider": {"max_completion_tokens": 8192}},
                   {"id": "c/d", "context_window": 131072, "max_completion_tokens": 32768}]
    backend = make("openrouter", path="/api/v1")
    first = await backend.detect_capabilities("a/b")
    assert (first.context_window, first.max_output_tokens) == (200000, 8192)
    second = await backend.detect_capabilities("c/d")
    assert (second.context_window, second.max_output_tokens) == (131072, 32768)


async def test_detect_capabilities_falls_back_to_the_catalog(fake: OpenAIFake, make: MakeBackend) -> None:
    backend = make()
    expected = backend.capabilities("gpt-4o")
    assert expected.known
    fake.models = [{"id": "gpt-4o", "object": "model", "max_model_len": True}]  # no usable number
    assert await backend.detect_capabilities("gpt-4o") == expected
    assert await backend.detect_capabilities("not-listed") == backend.capabilities("not-listed")
    fake.fail(500)
    assert await backend.detect_capabilities("gpt-4o") == expected
