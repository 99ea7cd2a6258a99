"""CohereBackend against the loopback Cohere v2 fake: both mapping directions, tool round trips,
streaming (accumulated equal to generate), finish reasons, usage, errors, and the conformance kit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pydantic
import pytest

from agentadapter import LLM
from agentadapter.llm import catalog
from agentadapter.llm.backends.base import BackendConfig, backend_class
from agentadapter.llm.backends.cohere import (
    DEFAULT_BASE_URL,
    FINISH_REASONS,
    CohereBackend,
    CohereStreamDecoder,
    usage_from_wire,
)
from agentadapter.llm.conformance import run_conformance
from agentadapter.llm.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from agentadapter.llm.messages import (
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
from fakes.cohere_server import CohereFake

MODEL = "command-a-03-2025"
WEATHER = Tool(
    "get_weather", "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "The time.")
MakeBackend = Callable[..., CohereBackend]


class City(pydantic.BaseModel):
    name: str
    population: int


@pytest.fixture
async def fake() -> AsyncIterator[CohereFake]:
    async with CohereFake() as server:
        yield server


@pytest.fixture
async def make(fake: CohereFake) -> AsyncIterator[MakeBackend]:
    made: list[CohereBackend] = []

    def factory(*, base_url: str | None = None, api_key: str | None = "co-key", name: str = "cohere") -> CohereBackend:
        backend = CohereBackend(
            BackendConfig(name=name, type="cohere", base_url=base_url or fake.url, api_key=api_key)
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


@pytest.fixture
def backend(make: MakeBackend) -> CohereBackend:
    return make()


def ask(*messages: Message | str, **settings: Any) -> Request:
    return Request(MODEL, [Message.user(m) if isinstance(m, str) else m for m in messages], **settings)




async def stream_equals_generate(fake: CohereFake, backend: CohereBackend, request: Request,
                                 **reply: Any) -> Response:
    fake.reply(**reply)
    generated = await backend.generate(request)
    fake.reply(**reply)
    streamed = final_response(await collect_stream(backend, request))
    assert comparable_response(streamed) == comparable_response(generated)
    return generated


# ------------------------------------------------------------------------------------ basics


def test_registered_as_cohere() -> None:
    assert backend_class("cohere") is CohereBackend
    assert CohereBackend.type_name == "cohere"


async def test_text_round_trip(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply("Hi there!")
    response = await backend.generate(ask("Say hi"))
    assert response.parts == [TextPart("Hi there!")]
    assert response.finish_reason == "stop"
    assert (response.provider, response.model, response.id) == ("cohere", MODEL, "5a50480a-cf52-46f0-af01-53d18539bd31")
    # usage.tokens is what the model processed; billed_units (fewer) stay visible for billing.
    assert response.usage == Usage(input_tokens=215, output_tokens=3)
    assert response.provider_details == {"billed_units": {"input_tokens": 12.0, "output_tokens": 3.0}}
    assert response.latency_ms > 0
    sent = fake.last
    assert (sent.method, sent.path) == ("POST", "/v2/chat")
    assert sent.headers["authorization"] == "Bearer co-key"
    assert sent.json == {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}]}


async def test_echo_when_nothing_is_scripted(backend: CohereBackend) -> None:
    assert (await backend.generate(ask("echo me"))).text == "echo me"


async def test_system_and_multi_turn_keep_roles(fake: CohereFake, backend: CohereBackend) -> None:
    request = ask(
        Message.system("Be terse."), "Hi", Message.assistant("Hello."),
        Message("user", [TextPart("What "), TextPart("now?")]),
    )
    await backend.generate(request)
    assert fake.last.json["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What now?"},
    ]


async def test_settings_map_to_cohere_names(fake: CohereFake, backend: CohereBackend) -> None:
    await backend.generate(ask(
        "q", temperature=0.2, top_p=0.9, max_tokens=50, stop=["END"], seed=7, reasoning_effort="medium",
        extra_body={"k": 5, "safety_mode": "STRICT"}, parallel_tool_calls=True,
    ))
    body = fake.last.json
    assert body["temperature"] == 0.2 and body["p"] == 0.9 and body["max_tokens"] == 50
    assert body["stop_sequences"] == ["END"] and body["seed"] == 7
    assert body["thinking"] == {"type": "enabled", "token_budget": 8192}
    assert body["k"] == 5 and body["safety_mode"] == "STRICT"
    assert "parallel_tool_calls" not in body and "top_p" not in body


@pytest.mark.parametrize(("effort", "thinking"), [
    ("none", {"type": "disabled"}),
    ("minimal", {"type": "enabled", "token_budget": 1024}),
    ("high", {"type": "enabled"}),
])
async def test_reasoning_effort_to_thinking(fake: CohereFake, backend: CohereBackend, effort: str,
                                            thinking: dict[str, Any]) -> None:
    await backend.generate(ask("q", reasoning_effort=effort))
    assert fake.last.json["thinking"] == thinking


async def test_unknown_reasoning_effort_is_refused(backend: CohereBackend) -> None:
    with pytest.raises(InvalidRequestError, match="reasoning_effort='extreme'"):
        await backend.generate(ask("q", reasoning_effort="extreme"))


async def test_structured_output_body(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply('{"name": "Oslo", "population": 700000}')
    response = await backend.generate(ask("A city as JSON", output=OutputSchema.of(City)))
    assert fake.last.json["response_format"] == {"type": "json_object", "json_schema": City.model_json_schema()}
    assert json.loads(response.text) == {"name": "Oslo", "population": 700000}


# ------------------------------------------------------------------------------------- tools


async def test_tools_and_tool_choice(fake: CohereFake, backend: CohereBackend) -> None:
    strict = Tool("get_time", "The time.", strict=True)
    await backend.generate(ask("q", tools=[WEATHER, strict], tool_choice="required"))
    body = fake.last.json
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                          "parameters": WEATHER.parameters}},
        {"type": "function", "function": {"name": "get_time", "description": "The time.",
                                          "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["tool_choice"] == "REQUIRED" and body["strict_tools"] is True

    await backend.generate(ask("q", tools=[WEATHER], tool_choice="none"))
    assert fake.last.json["tool_choice"] == "NONE" and "strict_tools" not in fake.last.json
    await backend.generate(ask("q", tools=[WEATHER], tool_choice="auto"))
    assert "tool_choice" not in fake.last.json
    await backend.generate(ask("q", tool_choice="none"))
    assert "tool_choice" not in fake.last.json and "tools" not in fake.last.json


async def test_tool_forced_by_name_offers_only_that_tool(fake: CohereFake, backend: CohereBackend) -> None:
    await backend.generate(ask("q", tools=[WEATHER, TIME], tool_choice="get_time"))
    body = fake.last.json
    assert body["tool_choice"] == "REQUIRED"
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_time"]


@pytest.mark.parametrize(("choice", "tools", "message"), [
    ("required", [], "needs at least one tool"),
    ("get_nothing", [WEATHER], "names no tool of this request"),
])
async def test_bad_tool_choice(backend: CohereBackend, choice: str, tools: list[Tool], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await backend.generate(ask("q", tools=tools, tool_choice=choice))


async def test_parallel_tool_round_trip(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply(
        tool_plan="I will look up both cities.",
        tool_calls=[
            {"id": "get_weather_a1", "name": "get_weather", "arguments": {"city": "Madrid"}},
            {"id": "get_weather_b2", "name": "get_weather", "arguments": {"city": "Brasilia"}},
        ],
    )
    question = Message.user("Weather in Madrid and Brasilia?")
    first = await backend.generate(ask(question, tools=[WEATHER]))
    assert first.finish_reason == "tool_calls"
    # The plan is the sentence said before the calls: text, and also marked in provider_details.
    assert first.parts == [
        TextPart("I will look up both cities."),
        ToolCallPart("get_weather_a1", "get_weather", {"city": "Madrid"}),
        ToolCallPart("get_weather_b2", "get_weather", {"city": "Brasilia"}),
    ]
    assert first.provider_details is not None
    assert first.provider_details["tool_plan"] == "I will look up both cities."

    fake.reply("Sunny in Madrid, rain in Brasilia.")
    conversation = [
        question, first.message,
        Message.tool("get_weather_a1", "get_weather", "sunny"),
        Message.tool("get_weather_b2", "get_weather", "rain"),
    ]
    second = await backend.generate(ask(*conversation, tools=[WEATHER]))
    assert second.text == "Sunny in Madrid, rain in Brasilia."
    assert fake.last.json["messages"][1:] == [
        {
            "role": "assistant",
            "tool_plan": "I will look up both cities.",
            "tool_calls": [
                {"id": "get_weather_a1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Madrid"}'}},
                {"id": "get_weather_b2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Brasilia"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "get_weather_a1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "get_weather_b2", "content": "rain"},
    ]


async def test_tool_results_documents_errors_and_explicit_plan(fake: CohereFake, backend: CohereBackend) -> None:
    call = ToolCallPart("c1", "get_weather", {"city": "Oslo"})
    conversation = [
        Message.user("Weather?"),
        Message("assistant", [ReasoningPart("thinking...", provider="cohere"), TextPart("Checking."), call],
                provider_details={"tool_plan": "Look up Oslo."}),
        Message("tool", [
            ToolResultPart("c1", "get_weather", "ignored", provider_details={
                "documents": [{"id": "w1", "data": {"sky": "clear"}}, {"sky": "raw object"}, "plain text"],
            }),
        ]),
        Message("assistant", [ToolCallPart("c2", "get_weather", {"_raw_arguments": "{bad json"})]),
        Message("tool", [ToolResultPart("c2", "get_weather", "station offline", is_error=True)]),
        Message("assistant", [ReasoningPart("from another model", provider="anthropic")]),
    ]
    await backend.generate(ask(*conversation))
    messages = fake.last.json["messages"]
    assert messages[1] == {
        "role": "assistant", "tool_plan": "Look up Oslo.", "content": "Checking.",
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}],
    }
    assert messages[2]["content"] == [
        {"type": "document", "document": {"id": "w1", "data": {"sky": "clear"}}},
        {"type": "document", "document": {"data": {"sky": "raw object"}}},
        {"type": "document", "document": "plain text"},
    ]
    assert messages[3]["tool_calls"][0]["function"]["arguments"] == "{bad json"
    assert messages[4] == {"role": "tool", "tool_call_id": "c2", "content": "Error: station offline"}
    assert len(messages) == 5  # the turn with only another provider's reasoning has nothing to send


async def test_tool_results_in_a_user_message_go_first(fake: CohereFake, backend: CohereBackend) -> None:
    conversation = [
        Message.user("q"),
        Message("assistant", [ToolCallPart("c1", "get_time", {})]),
        Message("user", [ToolResultPart("c1", "get_time", "noon"), TextPart("And tomorrow?")]),
        Message("assistant", [ToolCallPart("c2", "get_time", {})]),
        Message("user", [ToolResultPart("c2", "get_time", "noon")]),
    ]
    await backend.generate(ask(*conversation))
    assert fake.last.json["messages"][2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "assistant", "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]


async def test_fake_rejects_a_result_for_an_unknown_call(backend: CohereBackend) -> None:
    from agentadapter.llm.errors import BadRequestError

    with pytest.raises(BadRequestError, match="does not match any tool call"):
        await backend.generate(ask(Message.tool("nope", "get_time", "noon")))


async def test_images(fake: CohereFake, backend: CohereBackend) -> None:
    message = Message.user([
        TextPart("What is this?"),
        ImagePart(url="https://example.com/cat.png", detail="low"),
        ImagePart(data=b"\x89PNG", media_type="image/png"),
    ])
    await backend.generate(ask(message))
    assert fake.last.json["messages"][0] == {"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
    ]}


@pytest.mark.parametrize(("message", "error"), [
    (Message.user([FilePart(data=b"%PDF", media_type="application/pdf")]), "takes no files"),
    (Message("assistant", [ImagePart(url="https://x/y.png")]), "images only in user messages"),
    (Message("system", [ImagePart(url="https://x/y.png")]), "system message holds text only"),
    (Message("tool", [TextPart("loose text")]), "may hold only tool results"),
    (Message("assistant", [ToolResultPart("c", "t", "r")]), "cannot hold tool results"),
    (Message("user", [ToolCallPart("c", "t", {})]), "cannot hold tool calls"),
])
async def test_parts_cohere_cannot_take(backend: CohereBackend, message: Message, error: str) -> None:
    with pytest.raises(InvalidRequestError, match=error):
        await backend.generate(ask(message))


# ---------------------------------------------------------------------------------- documents


async def test_documents_from_extra_body_and_metadata(fake: CohereFake, backend: CohereBackend) -> None:
    await backend.generate(ask("q", extra_body={"documents": ["a fact", {"title": "T", "text": "b"},
                                                             {"id": "d3", "data": {"text": "c"}}]}))
    assert fake.last.json["documents"] == [
        "a fact", {"data": {"title": "T", "text": "b"}}, {"id": "d3", "data": {"text": "c"}},
    ]
    await backend.generate(ask("q", metadata={"documents": json.dumps([{"text": "from metadata"}])}))
    assert fake.last.json["documents"] == [{"data": {"text": "from metadata"}}]


@pytest.mark.parametrize(("settings", "error"), [
    ({"metadata": {"documents": "{not json"}}, "must be a JSON list"),
    ({"metadata": {"documents": '{"a": 1}'}}, "must be a JSON list"),
    ({"extra_body": {"documents": [42]}}, "string or an object, not int"),
])
async def test_bad_documents(backend: CohereBackend, settings: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidRequestError, match=error):
        await backend.generate(ask("q", **settings))


# ----------------------------------------------------------------------- answers, wire → neutral


@pytest.mark.parametrize(("wire", "neutral"), sorted(FINISH_REASONS.items()))
async def test_finish_reasons(fake: CohereFake, backend: CohereBackend, wire: str, neutral: str) -> None:
    fake.reply("x", finish_reason=wire)
    assert (await backend.generate(ask("q"))).finish_reason == neutral


async def test_unknown_finish_reason_is_kept(fake: CohereFake, backend: CohereBackend) -> None:
    response = await stream_equals_generate(fake, backend, ask("q"), text="x", finish_reason="NEW_REASON")
    assert response.finish_reason == "stop"
    assert response.provider_details is not None
    assert response.provider_details["finish_reason"] == "NEW_REASON"


async def test_error_finish_keeps_the_message(fake: CohereFake, backend: CohereBackend) -> None:
    response = await stream_equals_generate(fake, backend, ask("q"), text="partial", finish_reason="ERROR",
                                            error="generation failed")
    assert response.finish_reason == "error"
    assert response.provider_details is not None
    assert response.provider_details["error"] == "generation failed"


@pytest.mark.parametrize(("usage", "expected"), [
    ({"tokens": {"input_tokens": 10.0, "output_tokens": 4.0}, "billed_units": {"input_tokens": 3.0}}, Usage(10, 4)),
    ({"billed_units": {"input_tokens": 3.0, "output_tokens": 2.0}}, Usage(3, 2)),
    ({"tokens": {"input_tokens": 10}, "billed_units": {"output_tokens": 5}, "cached_tokens": 6},
     Usage(10, 5, cached_input_tokens=6)),
    (None, Usage()),
])
def test_usage_normalization(usage: dict[str, Any] | None, expected: Usage) -> None:
    assert usage_from_wire(usage) == expected


async def test_usage_from_billed_units_when_tokens_are_missing(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply("x", usage={"billed_units": {"input_tokens": 8.0, "output_tokens": 2.0}})
    assert (await backend.generate(ask("q"))).usage == Usage(8, 2)


async def test_cost_is_priced_from_billed_units_not_processed_tokens(fake: CohereFake, backend: CohereBackend) -> None:
    # Cohere processes many more input tokens (its own preamble) than it bills.
    usage = {"billed_units": {"input_tokens": 12.0, "output_tokens": 4.0},
             "tokens": {"input_tokens": 2150.0, "output_tokens": 4.0}}
    pricing = backend.capabilities(MODEL).pricing
    assert pricing is not None
    billed = catalog.cost_usd(Usage(12, 4), pricing)
    processed = catalog.cost_usd(Usage(2150, 4), pricing)
    assert billed is not None and processed is not None and billed < processed
    fake.reply("A B C", usage=usage)
    whole = await backend.generate(ask("q"))
    assert whole.usage == Usage(2150, 4)  # usage still means what the model processed
    assert whole.cost_usd == pytest.approx(billed)
    fake.reply("A B C", usage=usage)
    assert final_response(await collect_stream(backend, ask("q"))).cost_usd == pytest.approx(billed)
    # Without billed units the call is priced from usage, by the router, as for any provider.
    fake.reply("A B C", usage={"tokens": {"input_tokens": 2150.0, "output_tokens": 4.0}})
    assert (await backend.generate(ask("q"))).cost_usd is None


async def test_the_facade_keeps_the_billed_cost(fake: CohereFake) -> None:
    llm = LLM(config={}, environ={"COHERE_API_KEY": "co-key", "COHERE_BASE_URL": fake.url})
    fake.reply("A B C", usage={"billed_units": {"input_tokens": 12.0, "output_tokens": 4.0},
                               "tokens": {"input_tokens": 2150.0, "output_tokens": 4.0}})
    response = await llm.generate(f"cohere/{MODEL}", "q")
    pricing = catalog.lookup(f"cohere/{MODEL}").pricing
    assert response.cost_usd == pytest.approx(catalog.cost_usd(Usage(12, 4), pricing))
    await llm.aclose()


async def test_thinking_citations_and_unknown_content(fake: CohereFake, backend: CohereBackend) -> None:
    citation = {"start": 0, "end": 5, "text": "Sunny", "sources": [{"type": "document", "id": "doc:0"}]}
    fake.reply(raw_body={
        "id": "r1", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me see."},
            {"type": "text", "text": "Sunny today."},
            {"type": "audio", "data": "..."},
        ], "citations": [citation]},
    })
    response = await backend.generate(ask("q"))
    assert response.parts == [ReasoningPart("Let me see.", provider="cohere"), TextPart("Sunny today.")]
    assert response.usage == Usage()
    assert response.provider_details == {
        "citations": [citation], "unsupported_content": [{"type": "audio", "data": "..."}],
    }


async def test_tool_call_without_id_gets_one(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply(raw_body={"message": {"tool_calls": [{"function": {"name": "get_time"}}]}})
    response = await backend.generate(ask("q"))
    assert response.parts == [ToolCallPart("call_0", "get_time", {})]
    assert response.finish_reason == "tool_calls"


# ------------------------------------------------------------------------------------ errors


async def test_401(fake: CohereFake, backend: CohereBackend) -> None:
    fake.fail(401, {"message": "invalid api token"})
    with pytest.raises(AuthenticationError, match="invalid api token") as caught:
        await backend.generate(ask("q"))
    assert caught.value.status == 401 and caught.value.provider == "cohere"


async def test_fake_checks_the_key(make: MakeBackend) -> None:
    async with CohereFake(api_key="right") as server:
        backend = make(base_url=server.url, api_key="wrong")
        with pytest.raises(AuthenticationError):
            await backend.generate(ask("q"))
        backend = make(base_url=server.url + "/v2", api_key="right")
        assert (await backend.generate(ask("ok"))).text == "ok"


async def test_429_with_retry_after(fake: CohereFake, backend: CohereBackend) -> None:
    fake.fail(429, {"message": "You are using a Trial key, which is limited to 10 API calls / minute."},
              headers={"retry-after": "12"})
    with pytest.raises(RateLimitError) as caught:
        await backend.generate(ask("q"))
    assert caught.value.retry_after == 12.0 and caught.value.retryable


async def test_400_context_length(fake: CohereFake, backend: CohereBackend) -> None:
    fake.fail(400, {"message": "too many tokens: size limit exceeded by 1200 tokens. Try using shorter inputs."})
    with pytest.raises(ContextWindowExceededError):
        await backend.generate(ask("q"))


async def test_answer_that_is_not_a_chat_response(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply(raw_body=["not", "an", "object"])
    with pytest.raises(APIError, match="not a v2 chat response"):
        await backend.generate(ask("q"))


async def test_missing_key_for_cohere_itself() -> None:
    backend = CohereBackend(BackendConfig(name="cohere", type="cohere"))
    with pytest.raises(ConfigurationError, match=r"COHERE_API_KEY is not set.*model command"):
        await backend.generate(ask("q"))
    with pytest.raises(ConfigurationError, match="COHERE_API_KEY"):
        await backend.list_models()
    assert backend._base_url == DEFAULT_BASE_URL


async def test_list_models(fake: CohereFake, backend: CohereBackend) -> None:
    assert await backend.list_models() == ["command-a-03-2025", "command-r7b-12-2024"]
    assert fake.last.path == "/v1/models" and fake.last.query == {"endpoint": "chat"}
    fake.models = "oops"  # type: ignore[assignment]
    with pytest.raises(APIError, match="unexpected shape"):
        await backend.list_models()


# --------------------------------------------------------------------------------- streaming


async def test_stream_text_events(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply("Hello there world")
    events = await collect_stream(backend, ask("q", max_tokens=5))
    assert fake.last.json["stream"] is True
    texts = [e.text for e in events if e.kind == "text"]
    assert len(texts) > 1 and "".join(texts) == "Hello there world"
    assert [e.kind for e in events[-2:]] == ["usage", "finish"]
    response = final_response(events)
    assert response.text == "Hello there world" and response.finish_reason == "stop"
    assert response.usage == Usage(215, 4) and response.latency_ms > 0


async def test_stream_equals_generate_text(fake: CohereFake, backend: CohereBackend) -> None:
    await stream_equals_generate(fake, backend, ask("q"), text="One two three four.")


async def test_stream_equals_generate_tools(fake: CohereFake, backend: CohereBackend) -> None:
    calls = [
        {"id": "get_weather_a1", "name": "get_weather", "arguments": {"city": "Madrid"}},
        {"id": "get_weather_b2", "name": "get_weather", "arguments": {"city": "Brasilia"}},
    ]
    fake.reply(tool_plan="I will check.", tool_calls=calls, fragment_size=3)
    events = await collect_stream(backend, ask("q", tools=[WEATHER]))
    deltas = [e for e in events if e.kind == "tool_call_delta"]
    assert deltas[0].call_id == "get_weather_a1" and deltas[0].name == "get_weather"
    assert "".join(e.arguments_delta for e in deltas if e.index == 1) == '{"city": "Brasilia"}'
    streamed_calls = [e.tool_call for e in events if e.kind == "tool_call"]
    assert [c.arguments for c in streamed_calls if c] == [{"city": "Madrid"}, {"city": "Brasilia"}]
    response = await stream_equals_generate(fake, backend, ask("q", tools=[WEATHER]), tool_plan="I will check.",
                                            tool_calls=calls)
    assert response.finish_reason == "tool_calls"


async def test_stream_equals_generate_thinking_and_citations(fake: CohereFake, backend: CohereBackend) -> None:
    citations = [{"start": 0, "end": 5, "text": "Sunny", "sources": [{"type": "document", "id": "d0"}]},
                 {"start": 6, "end": 11, "text": "today", "sources": [{"type": "document", "id": "d1"}]}]
    response = await stream_equals_generate(
        fake, backend, ask("q"), text="Sunny today.", thinking="The docs say sunny.", citations=citations,
    )
    assert response.parts == [ReasoningPart("The docs say sunny.", provider="cohere"), TextPart("Sunny today.")]
    assert response.provider_details is not None and response.provider_details["citations"] == citations


@pytest.mark.parametrize("error_body", [
    None,
    {"message": "upstream failed"},
])
async def test_mid_stream_error_event(fake: CohereFake, backend: CohereBackend,
                                      error_body: dict[str, Any] | None) -> None:
    fake.reply("Hello there world", error_after=3, error_body=error_body)
    with pytest.raises((ServerError, StreamInterruptedError)) as caught:
        await collect_stream(backend, ask("q"))
    if error_body is None:
        assert isinstance(caught.value, ServerError)
    else:
        assert "upstream failed" in str(caught.value)


async def test_error_object_in_the_data(backend: CohereBackend) -> None:
    decoder = CohereStreamDecoder("cohere", MODEL)
    with pytest.raises(RateLimitError):
        decoder.feed({"type": "error", "message": "slow down", "code": "rate_limit_exceeded"})
    with pytest.raises(StreamInterruptedError, match="not an object"):
        decoder.feed(["a list"])
    with pytest.raises(StreamInterruptedError, match="never started"):
        decoder.feed({"type": "tool-call-delta", "index": 3, "delta": {"message": {"tool_calls": {}}}})


async def test_stream_status_errors(fake: CohereFake, backend: CohereBackend) -> None:
    fake.fail(429, {"message": "rate limited"}, headers={"retry-after": "3"})
    with pytest.raises(RateLimitError) as caught:
        await collect_stream(backend, ask("q"))
    assert caught.value.retry_after == 3.0


async def test_stream_dropped_connection(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply("Hello there world", drop_after=3)
    with pytest.raises(StreamInterruptedError, match="incomplete"):
        await collect_stream(backend, ask("q"))


@pytest.mark.parametrize("transport_type", [AiohttpTransport, HttpxTransport])
async def test_stream_on_each_transport(fake: CohereFake, transport_type: type[Transport[Any]]) -> None:
    backend = CohereBackend(BackendConfig(name="cohere", type="cohere", base_url=fake.url, api_key="k"),
                            transport=transport_type())
    try:
        fake.reply("Hello there world")
        assert final_response(await collect_stream(backend, ask("q"))).text == "Hello there world"
        fake.reply("Hello there world", drop_after=4)
        with pytest.raises(StreamInterruptedError):
            await collect_stream(backend, ask("q"))
    finally:
        await backend.aclose()


async def test_stream_without_message_end(fake: CohereFake, backend: CohereBackend) -> None:
    fake.reply("Hello", omit_end=True)
    with pytest.raises(StreamInterruptedError, match="before message-end"):
        await collect_stream(backend, ask("q"))


def test_decoder_tolerates_odd_events() -> None:
    decoder = CohereStreamDecoder("cohere", MODEL)
    events = [
        {"type": "message-start", "id": "m1", "delta": "not a dict"},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": "Hi"}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {}}}},
        {"type": "content-start", "index": 1, "delta": {"message": {"content": {"type": "thinking",
                                                                                 "thinking": "hm"}}}},
        {"type": "content-start", "index": 2, "delta": {"message": {"content": {"type": "audio"}}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": ""}}},
        {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            "id": "c1", "function": {"name": "get_time", "arguments": "{}"}}}}},
        {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {}}}}},
        {"type": "tool-call-end", "index": 7},
        {"type": "citation-start", "delta": {"message": {"citations": [{"text": "a"}, {"text": "b"}]}}},
        {"type": "debug", "delta": {}},
        {"type": "message-end", "delta": {"finish_reason": None}},
    ]
    for event in events:
        decoder.feed(event)
    closing = decoder.close()
    response = closing[-1].response
    assert response is not None
    # The call never saw tool-call-end: it is completed at the close.
    assert response.parts == [TextPart("Hi"), ReasoningPart("hm", provider="cohere"),
                              ToolCallPart("c1", "get_time", {})]
    assert response.finish_reason == "tool_calls" and response.id == "m1"
    assert response.provider_details == {
        "citations": [{"text": "a"}, {"text": "b"}], "unsupported_content": [{"type": "audio"}],
    }


# ---------------------------------------------------------------------------- conformance kit


class CohereConformance:
    """The conformance kit's server protocol over :class:`CohereFake`."""

    def __init__(self, fake: CohereFake) -> None:
        self.fake = fake

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {"tokens": {"input_tokens": input_tokens, "output_tokens": output_tokens}}

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.fake.reply(text, usage=self._usage(input_tokens, output_tokens))

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        wire = [{"id": f"{name}_{i}", "name": name, "arguments": arguments} for i, (name, arguments) in enumerate(calls)]
        self.fake.reply(tool_calls=wire, usage=self._usage(input_tokens, output_tokens))

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.fake.fail(status, {"message": message}, headers=headers or {})

    def request_count(self) -> int:
        return len(self.fake.requests)

    def last_request_body(self) -> Any:
        return self.fake.requests[-1].json


async def test_conformance(fake: CohereFake, make: MakeBackend) -> None:
    report = await run_conformance(make, CohereConformance(fake), MODEL)
    assert report.passed, str(report)
