"""AnthropicBackend.generate and count_tokens: the wire body it sends and the Response it reads back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest

from agentadapter.llm.backends.anthropic import AnthropicBackend
from agentadapter.llm.backends.base import BackendConfig, backend_class
from agentadapter.llm.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
    RateLimitError,
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
from fakes.anthropic_server import AnthropicFake

MODEL = "claude-sonnet-4-5"
WEATHER = Tool(
    "get_weather",
    "The current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "", {"type": "object", "properties": {"tz": {"type": "string"}}})
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"


class City(pydantic.BaseModel):
    name: str
    population: int


@pytest.fixture
async def fake() -> AsyncIterator[AnthropicFake]:
    async with AnthropicFake() as server:
        yield server


def make_backend(fake: AnthropicFake, **config: Any) -> AnthropicBackend:
    values: dict[str, Any] = {
        "name": "anthropic", "type": "anthropic", "base_url": fake.url, "api_key": fake.api_key, **config
    }
    return AnthropicBackend(BackendConfig(**values))


@pytest.fixture
async def backend(fake: AnthropicFake) -> AsyncIterator[AnthropicBackend]:
    backend = make_backend(fake)
    yield backend
    await backend.aclose()


def req(*messages: Message | str, model: str = MODEL, **kwargs: Any) -> Request:
    return Request(
        model=model,
        messages=[Message.user(m) if isinstance(m, str) else m for m in messages],
        **kwargs,
    )


def sent(fake: AnthropicFake, index: int = -1) -> dict[str, Any]:
    body = fake.requests[index].json
    assert isinstance(body, dict)
    return body


# ------------------------------------------------------------------------------------------ basics


def test_registry_resolves_the_anthropic_type() -> None:
    assert backend_class("anthropic") is AnthropicBackend
    assert AnthropicBackend.type_name == "anthropic"


async def test_text_answer_and_request_basics(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.reply("Hello there!", usage={"input_tokens": 12, "output_tokens": 4})

    response = await backend.generate(req("Say hi"))

    recorded = fake.requests[-1]
    assert recorded.method == "POST"
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == fake.api_key
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.headers["content-type"] == "application/json"
    assert "anthropic-beta" not in recorded.headers
    body = sent(fake)
    assert body == {
        "model": MODEL,
        "max_tokens": 8192,  # a known model: its catalog limit, capped
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
    }
    assert response.text == "Hello there!"
    assert response.provider == "anthropic"
    assert response.model == MODEL
    assert response.id.startswith("msg_fake_")
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=12, output_tokens=4)
    assert response.provider_details == {"stop_reason": "end_turn"}
    assert response.latency_ms > 0


async def test_unknown_model_gets_the_default_max_tokens(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    await backend.generate(req("hi", model="claude-future-9"))
    assert sent(fake)["max_tokens"] == 4096
    await backend.generate(req("hi", max_tokens=321))
    assert sent(fake)["max_tokens"] == 321


async def test_echo_when_nothing_is_scripted(backend: AnthropicBackend) -> None:
    response = await backend.generate(req("echo me"))
    assert response.text == "echo me"


async def test_system_messages_go_to_the_top_level_system_field(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    messages = [Message.system("You are terse."), Message.user("Hi"), Message.system("Answer in French.")]
    await backend.generate(Request(model=MODEL, messages=messages))
    body = sent(fake)
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert [m["role"] for m in body["messages"]] == ["user"]


async def test_settings_are_translated(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    request = req(
        "hi", temperature=0.2, top_p=0.9, stop=["END"], seed=7, metadata={"user_id": "u-42", "other": "x"},
        extra_body={"top_k": 5, "temperature": 0.3},
    )
    await backend.generate(request)
    body = sent(fake)
    assert body["temperature"] == 0.3  # extra_body is merged last
    assert body["top_p"] == 0.9
    assert body["top_k"] == 5
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}
    assert "seed" not in body  # the Messages API has no seed


async def test_beta_header_version_override_and_v1_base_url(fake: AnthropicFake) -> None:
    backend = make_backend(
        fake, base_url=fake.url + "/v1/", api_version="2024-01-01",
        options={"beta": ["files-api-2025-04-14", "context-1m-2025-08-07"]},
    )
    await backend.generate(req("hi", extra_headers={"x-trace": "t1"}))
    recorded = fake.requests[-1]
    assert recorded.path == "/v1/messages"
    assert recorded.headers["anthropic-beta"] == "files-api-2025-04-14,context-1m-2025-08-07"
    assert recorded.headers["anthropic-version"] == "2024-01-01"
    assert recorded.headers["x-trace"] == "t1"
    single = make_backend(fake, options={"beta": "token-efficient-tools-2025-02-19"})
    await single.generate(req("hi"))
    assert fake.requests[-1].headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
    await backend.aclose()


async def test_consecutive_same_role_messages_are_merged(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    messages = [
        Message.user("first"),
        Message.user([TextPart("second"), TextPart("")]),
        Message.assistant("ok"),
        Message.assistant(""),  # nothing to send: dropped instead of breaking alternation
        Message.user("third"),
    ]
    await backend.generate(Request(model=MODEL, messages=messages))
    assert sent(fake)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "third"}]},
    ]


# ------------------------------------------------------------------------------------------- tools


async def test_tool_round_trip_with_error_result(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.reply("Let me check.", tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}])
    first = await backend.generate(req("Weather in Paris?", tools=[WEATHER]))

    assert sent(fake)["tools"] == [{
        "name": "get_weather",
        "description": "The current weather in a city.",
        "input_schema": WEATHER.parameters,
    }]
    assert "tool_choice" not in sent(fake)
    assert first.finish_reason == "tool_calls"
    assert first.text == "Let me check."
    assert first.tool_calls == [ToolCallPart("toolu_1", "get_weather", {"city": "Paris"})]

    fake.reply("It is sunny in Paris.")
    conversation = [
        Message.user("Weather in Paris?"),
        first.message,
        Message.tool("toolu_1", "get_weather", "service unavailable", is_error=True),
    ]
    final = await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER]))

    assert sent(fake)["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "service unavailable", "is_error": True},
        ]},
    ]
    assert final.text == "It is sunny in Paris."
    assert final.finish_reason == "stop"


async def test_parallel_tool_use_results_share_one_user_turn(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    fake.reply(tool_uses=[
        {"id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
        {"id": "toolu_b", "name": "get_time", "input": {"tz": "CET"}},
    ])
    first = await backend.generate(req("Weather and time?", tools=[WEATHER, TIME]))
    assert [c.id for c in first.tool_calls] == ["toolu_a", "toolu_b"]
    assert sent(fake)["tools"][1] == {"name": "get_time", "input_schema": TIME.parameters}  # no empty description

    conversation = [
        Message.user("Weather and time?"),
        first.message,
        Message.tool("toolu_b", "get_time", "12:00"),
        Message("user", [TextPart("Be brief."), ToolResultPart("toolu_a", "get_weather", "rain")]),
    ]
    await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER, TIME]))
    # One user turn, tool results first (the API requires it), then the text.
    assert sent(fake)["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "12:00"},
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "rain"},
        {"type": "text", "text": "Be brief."},
    ]}


async def test_unanswered_tool_use_is_rejected_like_the_real_api(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    conversation = [
        Message.user("hi"),
        Message.assistant([ToolCallPart("toolu_x", "get_weather", {"city": "Rome"})]),
        Message.user("never mind"),
    ]
    with pytest.raises(BadRequestError, match="toolu_x"):
        await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER]))


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ("get_time", None, {"type": "tool", "name": "get_time"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
async def test_tool_choice_mapping(
    fake: AnthropicFake, backend: AnthropicBackend, choice: str | None, parallel: bool | None,
    expected: dict[str, Any],
) -> None:
    await backend.generate(req("hi", tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=parallel))
    assert sent(fake)["tool_choice"] == expected


async def test_tool_choice_naming_an_unknown_tool_is_refused(backend: AnthropicBackend) -> None:
    with pytest.raises(InvalidRequestError, match="get_weather"):
        await backend.generate(req("hi", tools=[WEATHER], tool_choice="lookup"))


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (Message.user([ToolCallPart("t1", "get_weather", {})]), "assistant message"),
        (Message.assistant([ToolResultPart("t1", "get_weather", "x")]), "tool or user message"),
        (Message.user([ReasoningPart("hmm", signature="s", provider="anthropic")]), "reasoning part"),
        (Message("system", [ImagePart(data=PNG, media_type="image/png")]), "system message"),
    ],
)
async def test_misplaced_parts_are_refused(backend: AnthropicBackend, message: Message, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        await backend.generate(Request(model=MODEL, messages=[Message.user("hi"), message]))


async def test_a_prompt_with_only_a_system_message_is_refused(backend: AnthropicBackend) -> None:
    with pytest.raises(InvalidRequestError, match="at least one user message"):
        await backend.generate(Request(model=MODEL, messages=[Message.system("be nice")]))


# ------------------------------------------------------------------------------ images and files


async def test_images_base64_and_url(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    message = Message.user([
        TextPart("Compare these."),
        ImagePart(data=PNG, media_type="image/png"),
        ImagePart(url="https://example.com/cat.jpg"),
    ])
    # Images weigh about 765 tokens each in the estimate: turn caching off to compare plain blocks.
    await backend.generate(Request(model=MODEL, messages=[message], cache=CacheHints(prompt_cache="off")))
    content = sent(fake)["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": ImagePart(data=PNG, media_type="image/png").base64,
    }}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


async def test_documents_pdf_url_and_text(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    pdf = FilePart(data=b"%PDF-1.4 fake", media_type="application/pdf", filename="report.pdf")
    message = Message.user([
        pdf,
        FilePart(url="https://example.com/paper.pdf"),
        FilePart(data=b"plain notes", media_type="text/markdown"),
        TextPart("Summarize."),
    ])
    await backend.generate(Request(model=MODEL, messages=[message], cache=CacheHints(prompt_cache="off")))
    content = sent(fake)["messages"][0]["content"]
    assert content[0] == {
        "type": "document", "title": "report.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf.base64},
    }
    assert content[1] == {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}}
    assert content[2] == {
        "type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
    }


async def test_unsupported_document_types_are_refused(backend: AnthropicBackend) -> None:
    docx = FilePart(data=b"PK..", media_type="application/vnd.ms-word", filename="memo.docx")
    with pytest.raises(CapabilityError, match=r"memo\.docx"):
        await backend.generate(Request(model=MODEL, messages=[Message.user([docx])]))


# ------------------------------------------------------------------------------ structured output


async def test_structured_output_uses_a_forced_tool_and_returns_its_input_as_text(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    fake.reply(tool_uses=[{"name": "City", "input": {"name": "Lyon", "population": 522000}}])
    schema = OutputSchema.of(City)

    response = await backend.generate(req("Biggest city near Geneva?", output=schema))

    body = sent(fake)
    assert body["tool_choice"] == {"type": "tool", "name": "City"}
    assert body["tools"][0]["name"] == "City"
    assert body["tools"][0]["input_schema"] == City.model_json_schema()
    assert response.tool_calls == []
    assert json.loads(response.text) == {"name": "Lyon", "population": 522000}
    assert response.finish_reason == "stop"
    assert schema.parse(response.text) == City(name="Lyon", population=522000)


async def test_structured_output_alongside_tools_lets_the_model_call_them_first(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    fake.reply(tool_uses=[{"id": "toolu_w", "name": "get_weather", "input": {"city": "Lyon"}}])
    response = await backend.generate(req("Weather?", tools=[WEATHER], output=OutputSchema.of(City)))
    assert sent(fake)["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in sent(fake)["tools"]] == ["get_weather", "City"]
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls[0].name == "get_weather"


async def test_structured_output_with_a_non_object_schema_is_wrapped(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    schema = OutputSchema.of({"title": "tags", "type": "array", "items": {"type": "string"}})
    fake.reply(tool_uses=[{"name": "tags", "input": {"value": ["a", "b"]}}])
    response = await backend.generate(req("Tags?", output=schema))
    assert sent(fake)["tools"][0]["input_schema"] == {
        "type": "object", "properties": {"value": {"type": "array", "items": {"type": "string"}}},
        "required": ["value"],
    }
    assert json.loads(response.text) == ["a", "b"]


async def test_output_schema_named_like_a_tool_is_refused(backend: AnthropicBackend) -> None:
    schema = OutputSchema.of({"title": "get_weather", "type": "object", "properties": {}})
    with pytest.raises(InvalidRequestError, match="rename"):
        await backend.generate(req("hi", tools=[WEATHER], output=schema))


# ------------------------------------------------------------------------------------- thinking


async def test_reasoning_effort_enables_thinking_and_the_signature_round_trips(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    fake.reply(
        "I'll look it up.", thinking="The user wants weather; call the tool.", signature="sig-abc123",
        tool_uses=[{"id": "toolu_t", "name": "get_weather", "input": {"city": "Bern"}}],
    )
    first = await backend.generate(
        req("Weather in Bern?", tools=[WEATHER], reasoning_effort="high", max_tokens=2000, temperature=0.5)
    )
    body = sent(fake)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] == 16384 + 2000  # raised above the budget, the answer keeps its room
    assert "temperature" not in body  # thinking accepts no temperature
    assert first.parts[0] == ReasoningPart(
        "The user wants weather; call the tool.", signature="sig-abc123", provider="anthropic"
    )
    assert first.reasoning == "The user wants weather; call the tool."

    fake.reply("Cold and clear.")
    conversation = [
        Message.user("Weather in Bern?"), first.message, Message.tool("toolu_t", "get_weather", "-3C, clear"),
    ]
    await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER], reasoning_effort="high"))
    # The fake only accepts signatures it issued: the thinking block came back intact, first.
    assert sent(fake)["messages"][1]["content"][0] == {
        "type": "thinking", "thinking": "The user wants weather; call the tool.", "signature": "sig-abc123",
    }


async def test_reasoning_from_another_provider_or_unsigned_is_not_replayed(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    assistant = Message.assistant([
        ReasoningPart("openai thoughts", signature="enc-xyz", provider="openai"),
        ReasoningPart("cut-off thoughts", provider="anthropic"),
        TextPart("Answer."),
    ])
    await backend.generate(Request(model=MODEL, messages=[Message.user("q"), assistant, Message.user("more")]))
    assert sent(fake)["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Answer."}]}


async def test_reasoning_under_a_custom_backend_name_is_replayed(fake: AnthropicFake) -> None:
    backend = make_backend(fake, name="work-claude")
    fake.reply("done", thinking="think", signature="sig-1")
    first = await backend.generate(req("q"))
    assert first.provider == "work-claude"
    # The part names the vendor whose signature it carries, not the backend instance.
    assert first.parts[0] == ReasoningPart("think", signature="sig-1", provider="anthropic")
    await backend.generate(Request(model=MODEL, messages=[Message.user("q"), first.message, Message.user("again")]))
    assert sent(fake)["messages"][1]["content"][0]["type"] == "thinking"
    # A history stored when parts named the backend still replays to that backend.
    legacy = Message.assistant([ReasoningPart("think", signature="sig-1", provider="work-claude"), TextPart("done")])
    await backend.generate(Request(model=MODEL, messages=[Message.user("q"), legacy, Message.user("again")]))
    assert sent(fake)["messages"][1]["content"][0]["type"] == "thinking"
    await backend.aclose()


async def test_signed_thinking_from_another_anthropic_account_is_replayed_in_a_tool_turn() -> None:
    """Two named Anthropic backends (a failover route over two accounts): B continues A's tool turn."""
    async with AnthropicFake(api_key=None) as account_a, AnthropicFake(api_key=None) as account_b:
        # Signatures are the vendor's: account B's API verifies what account A's issued.
        account_b.issued_signatures = account_a.issued_signatures
        first_backend, second_backend = make_backend(account_a, name="acct-a"), make_backend(account_b, name="acct-b")
        account_a.reply(thinking="Need the weather tool.", signature="sig-acct-a",
                        tool_uses=[{"id": "toolu_a", "name": "get_weather", "input": {"city": "Bern"}}])
        first = await first_backend.generate(req("Weather in Bern?", tools=[WEATHER], reasoning_effort="low"))
        assert first.provider == "acct-a"
        account_b.reply("Cold.")
        conversation = [Message.user("Weather in Bern?"), first.message,
                        Message.tool("toolu_a", "get_weather", "-3C")]
        answer = await second_backend.generate(
            Request(model=MODEL, messages=conversation, tools=[WEATHER], reasoning_effort="low")
        )
        assert answer.text == "Cold."
        body = sent(account_b)
        assert body["thinking"]["type"] == "enabled"  # the turn began with signed thinking: it stays on
        assert body["messages"][1]["content"][0] == {
            "type": "thinking", "thinking": "Need the weather tool.", "signature": "sig-acct-a",
        }
        await first_backend.aclose()
        await second_backend.aclose()


@pytest.mark.parametrize("foreign", [
    ReasoningPart("openai thoughts", signature="enc-xyz", provider="openai"),
    ReasoningPart("gemini thoughts", signature="c2lnbmF0dXJl", provider="gemini"),
    ReasoningPart("cut-off thoughts", provider="anthropic"),  # unsigned: a stream cut short
    None,  # no reasoning at all (another provider that does not think)
])
async def test_a_foreign_tool_turn_with_thinking_on_gives_a_body_the_api_accepts(
    fake: AnthropicFake, backend: AnthropicBackend, foreign: ReasoningPart | None
) -> None:
    assistant_parts: list[Any] = [foreign] if foreign is not None else []
    assistant_parts += [TextPart("Let me check."), ToolCallPart("call_1", "get_weather", {"city": "Oslo"})]
    conversation = [Message.user("Weather in Oslo?"), Message.assistant(assistant_parts),
                    Message.tool("call_1", "get_weather", "4C, rain")]
    fake.reply("Rainy, 4C.")
    # The fake refuses what the API refuses: thinking on, and a tool turn that began without it.
    answer = await backend.generate(
        Request(model=MODEL, messages=conversation, tools=[WEATHER], reasoning_effort="high", temperature=0.3)
    )
    assert answer.text == "Rainy, 4C."
    body = sent(fake)
    assert "thinking" not in body  # off for this turn only
    assert body["temperature"] == 0.3  # and the sampling settings thinking would have refused are back
    assert [b["type"] for b in body["messages"][1]["content"]] == ["text", "tool_use"]
    # The next turn (a new user message) thinks again.
    conversation += [answer.message, Message.user("And tomorrow?")]
    await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER], reasoning_effort="high"))
    assert sent(fake)["thinking"] == {"type": "enabled", "budget_tokens": 16384}


async def test_a_later_tool_step_of_a_turn_that_began_with_thinking_keeps_thinking_on(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    fake.reply(thinking="Two lookups.", tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "A"}}])
    first = await backend.generate(req("Weather in A and B?", tools=[WEATHER], reasoning_effort="low"))
    fake.reply(tool_uses=[{"id": "toolu_2", "name": "get_weather", "input": {"city": "B"}}])  # no new thinking
    conversation = [Message.user("Weather in A and B?"), first.message, Message.tool("toolu_1", "get_weather", "1C")]
    second = await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER], reasoning_effort="low"))
    fake.reply("Both cold.")
    conversation += [second.message, Message.tool("toolu_2", "get_weather", "2C")]
    await backend.generate(Request(model=MODEL, messages=conversation, tools=[WEATHER], reasoning_effort="low"))
    assert sent(fake)["thinking"]["type"] == "enabled"


async def test_redacted_thinking_round_trips(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.reply("ok", redacted_thinking="EncryptedBlob==")
    first = await backend.generate(req("q", reasoning_effort="low"))
    assert first.parts[0] == ReasoningPart(redacted_data="EncryptedBlob==", provider="anthropic")
    await backend.generate(Request(model=MODEL, messages=[Message.user("q"), first.message, Message.user("and?")]))
    assert sent(fake)["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": "EncryptedBlob=="}


async def test_thinking_settings_from_extra_body_and_effort_names(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    await backend.generate(req("q", extra_body={"thinking": {"type": "enabled", "budget_tokens": 9000}}))
    assert sent(fake)["thinking"] == {"type": "enabled", "budget_tokens": 9000}
    assert sent(fake)["max_tokens"] == 9000 + 8192

    await backend.generate(req("q", reasoning_effort="medium", max_tokens=20000, top_p=0.97))
    assert sent(fake)["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent(fake)["max_tokens"] == 20000  # already above the budget
    assert sent(fake)["top_p"] == 0.97

    await backend.generate(req("q", reasoning_effort="none", temperature=0.1))
    assert "thinking" not in sent(fake)
    assert sent(fake)["temperature"] == 0.1

    with pytest.raises(InvalidRequestError, match="reasoning_effort='extreme'"):
        await backend.generate(req("q", reasoning_effort="extreme"))


async def test_thinking_budget_is_clamped_to_the_model_output_limit(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    await backend.generate(req("q", extra_body={"thinking": {"type": "enabled", "budget_tokens": 70000}}))
    body = sent(fake)
    assert body["max_tokens"] == 64000  # claude-sonnet-4-5's output limit
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 64000 - 1024}


async def test_thinking_disabled_explicitly_keeps_sampling_settings(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    await backend.generate(req("q", temperature=0.4, extra_body={"thinking": {"type": "disabled"}}))
    assert sent(fake)["thinking"] == {"type": "disabled"}
    assert sent(fake)["temperature"] == 0.4


async def test_structured_output_with_thinking_asks_for_the_tool_in_words(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    fake.reply(thinking="hmm", tool_uses=[{"name": "City", "input": {"name": "Bern", "population": 1}}])
    request = Request(
        model=MODEL, messages=[Message.system("Be exact."), Message.user("q")],
        output=OutputSchema.of(City), reasoning_effort="low",
    )
    response = await backend.generate(request)
    body = sent(fake)
    assert body["tool_choice"] == {"type": "auto"}  # forced tool use is refused with thinking
    assert body["system"] == "Be exact.\n\nGive your final answer by calling the City tool."
    assert json.loads(response.text) == {"name": "Bern", "population": 1}


# -------------------------------------------------------------------------------- prompt caching


def long_request(**kwargs: Any) -> Request:
    padding = "Background fact. " * 400  # about 1,700 estimated tokens
    return Request(
        model=MODEL,
        messages=[Message.system("You are an analyst. " + padding), Message.user("Question?")],
        tools=[WEATHER, TIME],
        **kwargs,
    )


async def test_cache_breakpoints_on_a_long_prompt(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.reply("Answer.", usage={
        "input_tokens": 100, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 500, "output_tokens": 9,
    })
    response = await backend.generate(long_request())
    body = sent(fake)
    ephemeral = {"type": "ephemeral"}
    assert isinstance(body["system"], list)
    assert body["system"][-1]["cache_control"] == ephemeral
    assert body["tools"][-1]["cache_control"] == ephemeral
    assert "cache_control" not in body["tools"][0]
    assert body["messages"][-1]["content"][-1]["cache_control"] == ephemeral
    # DESIGN.md's usage: cache reads and writes are part of input_tokens.
    assert response.usage == Usage(
        input_tokens=2600, output_tokens=9, cached_input_tokens=2000, cache_write_tokens=500
    )


async def test_no_cache_breakpoints_when_short_or_off(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    await backend.generate(req("short question", tools=[WEATHER]))
    assert "cache_control" not in json.dumps(sent(fake))
    await backend.generate(long_request(cache=CacheHints(prompt_cache="off")))
    assert "cache_control" not in json.dumps(sent(fake))
    assert isinstance(sent(fake)["system"], str)


# ---------------------------------------------------------------------------------- stop reasons


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ],
)
async def test_stop_reason_mapping(
    fake: AnthropicFake, backend: AnthropicBackend, stop_reason: str, finish_reason: str
) -> None:
    stop_sequence = "END" if stop_reason == "stop_sequence" else None
    fake.reply("partial", stop_reason=stop_reason, stop_sequence=stop_sequence)
    response = await backend.generate(req("q"))
    assert response.finish_reason == finish_reason
    assert response.provider_details is not None
    assert response.provider_details["stop_reason"] == stop_reason  # the raw reason is kept
    if stop_sequence:
        assert response.provider_details["stop_sequence"] == "END"


async def test_unknown_content_blocks_are_kept_in_provider_details(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    search = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}
    fake.reply(blocks=[search, {"type": "text", "text": "Found it."}])
    response = await backend.generate(req("q"))
    assert response.text == "Found it."
    assert response.provider_details == {"stop_reason": "end_turn", "unsupported_blocks": [search]}


# ---------------------------------------------------------------------------------------- errors


async def test_wrong_key_is_an_authentication_error(fake: AnthropicFake) -> None:
    backend = make_backend(fake, api_key="sk-ant-wrong")
    with pytest.raises(AuthenticationError) as caught:
        await backend.generate(req("hi"))
    assert caught.value.status == 401
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert "x-api-key" not in make_backend(fake, api_key=None)._headers()
    await backend.aclose()


async def test_prompt_too_long_is_a_context_window_error(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    with pytest.raises(ContextWindowExceededError) as caught:
        await backend.generate(req("hi"))
    assert caught.value.provider == "anthropic"
    assert caught.value.model == MODEL
    assert caught.value.request_id == "req_fake_error"
    assert not caught.value.retryable


async def test_529_is_overloaded(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.overloaded()
    with pytest.raises(OverloadedError) as caught:
        await backend.generate(req("hi"))
    assert caught.value.status == 529
    assert caught.value.retryable
    assert caught.value.code == "overloaded_error"


async def test_429_is_a_rate_limit_with_retry_after(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.rate_limited(retry_after=7)
    with pytest.raises(RateLimitError) as caught:
        await backend.generate(req("hi"))
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


async def test_a_body_that_is_not_a_message_is_an_api_error(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.fail(200, ["not", "a", "message"])
    with pytest.raises(APIError, match="not a message object"):
        await backend.generate(req("hi"))
    fake.fail(200, raw=b"<html>proxy</html>")
    with pytest.raises(APIError, match="not JSON"):
        await backend.generate(req("hi"))


# ---------------------------------------------------------------------------------- count_tokens


async def test_count_tokens(fake: AnthropicFake, backend: AnthropicBackend) -> None:
    fake.token_count = 1234
    request = Request(
        model=MODEL, messages=[Message.system("sys"), Message.user("How many?")], tools=[WEATHER],
        tool_choice="auto", max_tokens=99, temperature=0.5, stop=["X"], metadata={"user_id": "u"},
        reasoning_effort="low",
    )
    assert await backend.count_tokens(request) == 1234
    recorded = fake.requests[-1]
    assert recorded.path == "/v1/messages/count_tokens"
    assert recorded.headers["x-api-key"] == fake.api_key
    body = sent(fake)
    assert set(body) == {"model", "messages", "system", "tools", "tool_choice", "thinking"}


async def test_count_tokens_estimate_from_the_fake_and_a_bad_answer(
    fake: AnthropicFake, backend: AnthropicBackend
) -> None:
    assert await backend.count_tokens(req("a fairly short question")) > 0
    fake.fail(200, {"tokens": 3})
    with pytest.raises(APIError, match="without input_tokens"):
        await backend.count_tokens(req("q"))
