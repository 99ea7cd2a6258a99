"""GeminiBackend.generate, count_tokens and discovery: the wire body it sends and the Response it reads."""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
import pydantic
import pytest

from agentadapter.llm.backends.base import BackendConfig, backend_class
from agentadapter.llm.backends.gemini import GeminiBackend, normalize_usage, request_body
from agentadapter.llm.backends.gemini_schema import to_gemini_schema
from agentadapter.llm.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from agentadapter.llm.messages import (
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
from fakes.gemini_server import GeminiFake, gemini_error

MODEL = "gemini-2.5-flash"


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather in a city.

    Args:
        city: The city's name.
        unit: Celsius or Fahrenheit.
    """
    return f"21 {unit} in {city}"


WEATHER = Tool.from_function(get_weather)


@pytest.fixture
async def fake() -> AsyncIterator[GeminiFake]:
    async with GeminiFake() as server:
        yield server


@pytest.fixture
async def backend(fake: GeminiFake) -> AsyncIterator[GeminiBackend]:
    gemini = GeminiBackend(BackendConfig(name="gemini", type="gemini", base_url=fake.url, api_key="test-key"))
    yield gemini
    await gemini.aclose()


def ask(*messages: Message | str, **settings: Any) -> Request:
    parts = [Message.user(m) if isinstance(m, str) else m for m in messages]
    return Request(model=MODEL, messages=parts, **settings)


# ----------------------------------------------------------------------------------------- text


async def test_text_answer_and_the_request_on_the_wire(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("Hello there", response_id="resp-abc", model_version="gemini-2.5-flash-001")

    response = await backend.generate(ask("Hi"))

    assert response.text == "Hello there"
    assert (response.id, response.provider, response.model) == ("resp-abc", "gemini", "gemini-2.5-flash-001")
    assert response.finish_reason == "stop"
    assert response.latency_ms > 0
    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "test-key"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


async def test_without_a_script_the_fake_echoes_the_last_user_text(backend: GeminiBackend) -> None:
    response = await backend.generate(ask("echo me"))
    assert response.text == "echo me"
    assert response.model == MODEL  # the fake reports the bare model as modelVersion


def test_the_registry_resolves_gemini() -> None:
    assert backend_class("gemini") is GeminiBackend
    assert GeminiBackend.type_name == "gemini"


async def test_system_messages_become_the_system_instruction(fake: GeminiFake, backend: GeminiBackend) -> None:
    request = ask(
        Message.system("Be brief."),
        Message.user("Hi"),
        Message.assistant("Hello!"),
        Message.system("Answer in French."),
        Message.user("Weather?"),
        temperature=0.2, top_p=0.9, max_tokens=64, stop=["END"], seed=7,
    )

    await backend.generate(request)

    body = fake.last_body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 64, "stopSequences": ["END"], "seed": 7,
    }


def test_a_system_message_takes_text_only() -> None:
    request = ask(Message("system", [ImagePart(url="https://x.test/a.png")]), "Hi")
    with pytest.raises(InvalidRequestError, match="system instruction takes text only"):
        request_body(request, "gemini")


def test_a_system_message_alone_is_not_a_prompt() -> None:
    with pytest.raises(InvalidRequestError, match="add a user message"):
        request_body(ask(Message.system("Be brief.")), "gemini")


def test_consecutive_turns_of_one_role_are_merged() -> None:
    body = request_body(ask("one", "two", Message.assistant("three"), Message.assistant("four")), "gemini")
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
    ]


def test_empty_text_parts_are_not_sent() -> None:
    body = request_body(ask(Message.user([TextPart(""), TextPart("x")]), Message.assistant("")), "gemini")
    assert body["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]


async def test_extra_body_is_merged_last_and_deep(fake: GeminiFake, backend: GeminiBackend) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    request = ask("Hi", temperature=0.5, extra_body={"generationConfig": {"topK": 40}, "safetySettings": safety})
    await backend.generate(request)
    assert fake.last_body["generationConfig"] == {"temperature": 0.5, "topK": 40}
    assert fake.last_body["safetySettings"] == safety


async def test_a_full_model_resource_name_is_accepted(fake: GeminiFake, backend: GeminiBackend) -> None:
    await backend.generate(Request(model="models/gemini-2.5-flash", messages=[Message.user("Hi")]))
    assert fake.requests[-1].path == "/v1beta/models/gemini-2.5-flash:generateContent"


# ---------------------------------------------------------------------------------------- tools


async def test_tool_round_trip_with_the_name_taken_from_the_call(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(function_calls=[{"name": "get_weather", "args": {"city": "Paris"}}])
    first = ask("Weather in Paris?", tools=[WEATHER])

    response = await backend.generate(first)

    assert response.finish_reason == "tool_calls"
    (call,) = response.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_") and len(call.id) <= 40
    declaration = fake.last_body["tools"][0]["functionDeclarations"][0]
    assert declaration == {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "OBJECT",
            "properties": {
                "city": {"type": "STRING", "description": "The city's name."},
                "unit": {"type": "STRING", "enum": ["c", "f"], "description": "Celsius or Fahrenheit."},
            },
            "required": ["city"],
        },
    }

    # An OpenAI-style tool message carries no tool name: it is found from the call's id.
    fake.reply("It is 21 C in Paris.")
    follow_up = Request(
        model=MODEL,
        messages=[*first.messages, response.message, Message("tool", [ToolResultPart(call.id, "", '{"temp": 21}')])],
        tools=[WEATHER],
    )
    answer = await backend.generate(follow_up)

    assert answer.text == "It is 21 C in Paris."
    contents = fake.last_body["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                                        "args": {"city": "Paris"}}}]}
    assert contents[2] == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                           "response": {"temp": 21}}}]}


async def test_parallel_function_calls_and_their_results(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(function_calls=[
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_weather", "args": {"city": "Rome"}},
    ])
    request = ask("Paris and Rome?", tools=[WEATHER])
    response = await backend.generate(request)

    first, second = response.tool_calls
    assert first.id != second.id
    assert [c.arguments["city"] for c in response.tool_calls] == ["Paris", "Rome"]

    fake.reply("Both sunny.")
    results = [Message.tool(first.id, "get_weather", "sunny"), Message.tool(second.id, "get_weather", "sunny")]
    await backend.generate(Request(model=MODEL, messages=[*request.messages, response.message, *results]))

    contents = fake.last_body["contents"]
    assert len(contents) == 3
    assert contents[2]["role"] == "user"
    assert [p["functionResponse"]["response"] for p in contents[2]["parts"]] == [{"result": "sunny"}] * 2


async def test_gemini_call_ids_and_thought_signatures_go_back(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "fc-1",
                                "thought_signature": "c2lnLUE="}])
    request = ask("Oslo?", tools=[WEATHER])
    response = await backend.generate(request)

    (call,) = response.tool_calls
    assert call.id == "fc-1"
    assert call.provider_details == {"provider": "gemini", "call_id": "fc-1", "thought_signature": "c2lnLUE="}

    fake.reply("Cold.")
    await backend.generate(Request(
        model=MODEL, messages=[*request.messages, response.message, Message.tool("fc-1", "get_weather", "-3 C")],
    ))
    model_turn, result_turn = fake.last_body["contents"][1:]
    assert model_turn["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}, "id": "fc-1"},
                                    "thoughtSignature": "c2lnLUE="}]
    assert result_turn["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"result": "-3 C"},
                                                          "id": "fc-1"}}]


def test_signatures_and_reasoning_of_other_providers_are_not_replayed() -> None:
    foreign_call = ToolCallPart("t1", "get_weather", {"city": "Lima"},
                                provider_details={"provider": "other", "thought_signature": "x", "call_id": "y"})
    messages = [
        Message.user("Lima?"),
        Message.assistant([ReasoningPart("hmm", signature="anthropic-sig", provider="anthropic"), foreign_call]),
        Message.tool("t1", "get_weather", "warm"),
        Message.assistant([ReasoningPart("mine", signature="g-sig", provider="gemini"), TextPart("Warm.")]),
        Message.assistant([ReasoningPart("other", provider="openai")]),  # nothing left: no turn at all
    ]

    contents = request_body(Request(model=MODEL, messages=messages), "gemini")["contents"]

    assert contents[1]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Lima"}}}]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"result": "warm"}}}]
    assert contents[3]["parts"] == [{"text": "mine", "thought": True, "thoughtSignature": "g-sig"}, {"text": "Warm."}]
    assert len(contents) == 4


@pytest.mark.parametrize(
    ("content", "is_error", "expected"),
    [
        ('{"temp": 21, "unit": "c"}', False, {"temp": 21, "unit": "c"}),
        ("plain words", False, {"result": "plain words"}),
        ("[1, 2]", False, {"result": "[1, 2]"}),
        ("boom: city unknown", True, {"error": "boom: city unknown"}),
    ],
)
def test_function_response_is_always_an_object(content: str, is_error: bool, expected: dict[str, Any]) -> None:
    messages = [Message.user("x"), Message.assistant([ToolCallPart("c1", "get_weather", {})]),
                Message.tool("c1", "", content, is_error=is_error)]
    contents = request_body(Request(model=MODEL, messages=messages), "gemini")["contents"]
    assert contents[2]["parts"][0]["functionResponse"]["response"] == expected


def test_a_tool_result_without_any_name_is_refused_before_sending() -> None:
    messages = [Message.user("x"), Message.tool("unknown-call", "", "42")]
    with pytest.raises(InvalidRequestError, match="needs the name"):
        request_body(Request(model=MODEL, messages=messages), "gemini")


@pytest.mark.parametrize(("content", "refusal"), [
    ({"role": "user", "parts": [{"functionResponse": {"name": "", "response": {}}}]}, "Name cannot be empty"),
    ({"role": "assistant", "parts": [{"text": "hi"}]}, "valid role: user, model"),
])
async def test_the_fake_refuses_what_gemini_refuses(fake: GeminiFake, content: dict[str, Any], refusal: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        f"{fake.url}/v1beta/models/{MODEL}:generateContent", json={"contents": [content]},
        headers={"x-goog-api-key": "test-key"},
    ) as reply:
        assert reply.status == 400
        error = (await reply.json())["error"]
        assert error["status"] == "INVALID_ARGUMENT" and refusal in error["message"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        ("get_weather", {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
    ],
)
async def test_tool_choice(fake: GeminiFake, backend: GeminiBackend, choice: str, expected: dict[str, Any]) -> None:
    await backend.generate(ask("x", tools=[WEATHER], tool_choice=choice))
    assert fake.last_body["toolConfig"] == expected


def test_tool_choice_mistakes_are_caught_before_sending() -> None:
    with pytest.raises(InvalidRequestError, match="not one of the request's tools"):
        request_body(ask("x", tools=[WEATHER], tool_choice="get_time"), "gemini")
    with pytest.raises(InvalidRequestError, match="needs tools"):
        request_body(ask("x", tool_choice="required"), "gemini")
    assert "toolConfig" not in request_body(ask("x", tool_choice="auto"), "gemini")


async def test_a_tool_without_arguments_sends_no_parameters(fake: GeminiFake, backend: GeminiBackend) -> None:
    def now() -> str:
        """The time."""
        return "noon"

    await backend.generate(ask("time?", tools=[Tool.from_function(now)]))
    assert fake.last_body["tools"] == [{"functionDeclarations": [{"name": "now", "description": "The time."}]}]


# ------------------------------------------------------------------------------- images, files


async def test_images_inline_and_by_url(fake: GeminiFake, backend: GeminiBackend) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    message = Message.user([
        TextPart("What is in these?"),
        ImagePart(data=png, media_type="image/png"),
        ImagePart(url="https://example.test/cat.jpg"),
        ImagePart(url="data:image/webp;base64," + base64.b64encode(b"webp").decode()),
        FilePart(data=b"%PDF-1.7", media_type="application/pdf"),
        FilePart(url="https://generativelanguage.googleapis.com/v1beta/files/abc", media_type="application/pdf"),
    ])

    await backend.generate(ask(message))

    parts = fake.last_body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}
    assert parts[2] == {"fileData": {"fileUri": "https://example.test/cat.jpg", "mimeType": "image/jpeg"}}
    assert parts[3] == {"inlineData": {"mimeType": "image/webp", "data": base64.b64encode(b"webp").decode()}}
    assert parts[4] == {"inlineData": {"mimeType": "application/pdf", "data": base64.b64encode(b"%PDF-1.7").decode()}}
    assert parts[5] == {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                                     "mimeType": "application/pdf"}}


def test_file_media_types_are_guessed_or_asked_for() -> None:
    guessed = request_body(ask(Message.user([FilePart(data=b"a,b", filename="t.csv")])), "gemini")
    assert guessed["contents"][0]["parts"][0]["inlineData"]["mimeType"] == "text/csv"
    unnamed_url = request_body(ask(Message.user([FilePart(url="https://x.test/blob")])), "gemini")
    assert unnamed_url["contents"][0]["parts"][0] == {"fileData": {"fileUri": "https://x.test/blob"}}
    with pytest.raises(InvalidRequestError, match="media type"):
        request_body(ask(Message.user([FilePart(data=b"???")])), "gemini")


async def test_media_and_unknown_parts_in_answers_are_kept(fake: GeminiFake, backend: GeminiBackend) -> None:
    picture = base64.b64encode(b"img").decode()
    fake.reply(parts=[
        {"text": "Here:"},
        {"inlineData": {"mimeType": "image/png", "data": picture}},
        {"inlineData": {"mimeType": "audio/wav", "data": picture}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}},
        {"fileData": {"fileUri": "https://x.test/doc"}},
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
    ])

    response = await backend.generate(ask("draw"))

    kinds = [type(p).__name__ for p in response.parts]
    assert kinds == ["TextPart", "ImagePart", "FilePart", "ImagePart", "FilePart"]
    assert response.parts[1] == ImagePart(data=b"img", media_type="image/png")
    assert response.provider_details is not None
    assert response.provider_details["unhandled_parts"] == [{"executableCode": {"language": "PYTHON",
                                                                                "code": "print(1)"}}]


# --------------------------------------------------------------------------- structured output


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(pydantic.BaseModel):
    street: str
    city: str = pydantic.Field(description="City name")


class Person(pydantic.BaseModel):
    """A person."""

    name: str
    age: int | None = None
    color: Color
    priority: Priority = Priority.LOW
    home: Address
    previous: list[Address] = []
    born: str = pydantic.Field(json_schema_extra={"format": "date-time"})
    email: str = pydantic.Field(json_schema_extra={"format": "email"})
    score: float = pydantic.Field(gt=0, le=10)
    counts: dict[str, int] = {}


ADDRESS_SCHEMA = {
    "type": "OBJECT",
    "properties": {"street": {"type": "STRING"}, "city": {"type": "STRING", "description": "City name"}},
    "required": ["street", "city"],
    "propertyOrdering": ["street", "city"],
}


async def test_structured_output_sends_a_converted_response_schema(fake: GeminiFake, backend: GeminiBackend) -> None:
    answer = {"name": "Ada", "age": None, "color": "green", "priority": 2, "home": {"street": "1 Main", "city": "X"},
              "born": "1815-12-10T00:00:00Z", "email": "ada@x.test", "score": 9.5}
    fake.reply(json.dumps(answer))
    output = OutputSchema.of(Person)

    response = await backend.generate(ask("Who?", output=output))

    config = fake.last_body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "description": "A person.",
        "properties": {
            "name": {"type": "STRING"},
            "age": {"type": "INTEGER", "nullable": True},
            "color": {"type": "STRING", "enum": ["red", "green"]},
            "priority": {"type": "INTEGER", "description": "(one of: 1, 2)"},
            "home": ADDRESS_SCHEMA,
            "previous": {"type": "ARRAY", "items": ADDRESS_SCHEMA},
            "born": {"type": "STRING", "format": "date-time"},
            "email": {"type": "STRING", "description": "(format: email)"},
            "score": {"type": "NUMBER", "maximum": 10, "description": "(greater than 0)"},
            "counts": {"type": "OBJECT", "description": "(any keys; values of type integer)"},
        },
        "required": ["name", "color", "home", "born", "email", "score"],
        "propertyOrdering": ["name", "age", "color", "priority", "home", "previous", "born", "email", "score",
                             "counts"],
    }
    person = output.parse(response.text)  # the facade's job; shown here to close the loop
    assert person.priority is Priority.HIGH and person.home.city == "X"


def test_schema_unions_types_lists_and_const() -> None:
    schema = {
        "type": "object",
        "properties": {
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}], "description": "S or I"},
            "listed": {"type": ["string", "null"]},
            "multi": {"type": ["number", "boolean"]},
            "fixed": {"const": "v1"},
            "only_null": {"anyOf": [{"type": "null"}]},
            "one_of": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "integer"}}}]},
            "merged": {"allOf": [{"type": "string"}], "description": "from allOf"},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
            "nums": {"enum": [1.5, 2]},
            "flags": {"enum": [True]},
            "words": {"enum": ["a", 1]},
            "even": {"type": "integer", "multipleOf": 2, "format": "int64"},
            "untyped": {"description": "anything"},
        },
        "additionalProperties": False,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "T",
    }

    converted = to_gemini_schema(schema)

    props = converted["properties"]
    assert props["either"] == {"description": "S or I", "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}],
                               "nullable": True}
    assert props["listed"] == {"type": "STRING", "nullable": True}
    assert props["multi"] == {"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}]}
    assert props["fixed"] == {"type": "STRING", "enum": ["v1"]}
    assert props["only_null"] == {"type": "NULL", "nullable": True}
    assert props["one_of"]["anyOf"][1] == {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}
    assert props["merged"] == {"type": "STRING", "description": "from allOf"}
    assert props["pair"]["items"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert "exactly 2 items" in props["pair"]["description"]
    assert props["nums"] == {"type": "NUMBER", "description": "(one of: 1.5, 2)"}
    assert props["flags"] == {"type": "BOOLEAN", "description": "(one of: true)"}
    assert props["words"] == {"description": '(one of: "a", 1)'}
    assert props["even"] == {"type": "INTEGER", "format": "int64", "description": "(a multiple of 2)"}
    assert props["untyped"] == {"description": "anything"}
    assert set(converted) == {"type", "properties"}


def test_schema_refs_resolve_inline_and_recursion_is_refused() -> None:
    legacy = {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}},
              "definitions": {"A": {"type": "string", "description": "an A"}}}
    assert to_gemini_schema(legacy)["properties"]["a"] == {"type": "STRING", "description": "an A"}

    class Node(pydantic.BaseModel):
        value: int
        children: list[Node] = []

    with pytest.raises(InvalidRequestError, match="recursive"):
        to_gemini_schema(Node.model_json_schema())
    with pytest.raises(InvalidRequestError, match="does not point into"):
        to_gemini_schema({"type": "object", "properties": {"a": {"$ref": "other.json#/A"}}})
    with pytest.raises(InvalidRequestError, match="is not an object"):
        to_gemini_schema({"$ref": "#/$defs/A", "$defs": {"A": True}})
    with pytest.raises(InvalidRequestError, match="unknown JSON schema type"):
        to_gemini_schema({"type": "tuple"})


# --------------------------------------------------------------------------------- reasoning


async def test_thinking_is_asked_for_and_read_back(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("42", thought="Six times seven.", thought_signature="dGhvdWdodA==",
               usage={"promptTokenCount": 10, "candidatesTokenCount": 1, "thoughtsTokenCount": 30})

    response = await backend.generate(ask("6*7?", reasoning_effort="high"))

    assert fake.last_body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}
    thought, text = response.parts
    assert thought == ReasoningPart("Six times seven.", signature="dGhvdWdodA==", provider="gemini")
    assert text == TextPart("42")
    assert response.reasoning == "Six times seven."
    assert response.usage == Usage(input_tokens=10, output_tokens=31, reasoning_tokens=30)

    # The thought goes back to Gemini, signed, when the conversation continues.
    replay = request_body(ask("6*7?", Message("assistant", response.parts), "and 6*8?"), "gemini")
    assert replay["contents"][1]["parts"][0] == {"text": "Six times seven.", "thought": True,
                                                 "thoughtSignature": "dGhvdWdodA=="}


@pytest.mark.parametrize(("effort", "expected"), [
    ("none", {"thinkingBudget": 0}),
    ("minimal", {"thinkingBudget": 512, "includeThoughts": True}),
    ("LOW", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("medium", {"thinkingBudget": 8192, "includeThoughts": True}),
    ("auto", {"thinkingBudget": -1, "includeThoughts": True}),
])
def test_reasoning_effort_budgets(effort: str, expected: dict[str, Any]) -> None:
    assert request_body(ask("x", reasoning_effort=effort), "gemini")["generationConfig"]["thinkingConfig"] == expected


def test_an_unknown_reasoning_effort_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="reasoning_effort='extreme'"):
        request_body(ask("x", reasoning_effort="extreme"), "gemini")


async def test_a_text_signature_is_kept_and_replayed(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("Done.", text_signature="dGV4dA==")
    response = await backend.generate(ask("go"))
    assert response.parts == [TextPart("Done.", provider_details={"provider": "gemini", "thought_signature": "dGV4dA=="})]
    replay = request_body(ask("go", response.message, "again"), "gemini")
    assert replay["contents"][1]["parts"] == [{"text": "Done.", "thoughtSignature": "dGV4dA=="}]


async def test_signatures_are_never_glued_together(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(parts=[
        {"text": "a", "thought": True, "thoughtSignature": "s1"},
        {"text": "b", "thought": True, "thoughtSignature": "s2"},
        {"text": "x", "thoughtSignature": "t1"},
        {"text": "y", "thoughtSignature": "t2"},
        {"functionCall": {"name": "get_weather", "args": {}}},
        {"text": "", "thoughtSignature": "t3"},
        {"text": "", "thought": True},
    ])
    response = await backend.generate(ask("go"))
    signatures = [p.signature if isinstance(p, ReasoningPart) else (p.provider_details or {}).get("thought_signature")
                  for p in response.parts]
    assert signatures == ["s1", "s2", "t1", "t2", None, "t3"]
    assert response.parts[5] == TextPart("", provider_details={"provider": "gemini", "thought_signature": "t3"})


# ------------------------------------------------------------------------- usage and finishing


def test_usage_is_normalized() -> None:
    usage = normalize_usage({
        "promptTokenCount": 100, "cachedContentTokenCount": 40, "candidatesTokenCount": 20,
        "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 5, "totalTokenCount": 155,
    })
    assert usage == Usage(input_tokens=105, output_tokens=50, cached_input_tokens=40, reasoning_tokens=30)
    assert normalize_usage({"promptTokenCount": True}) == Usage()


async def test_usage_with_cached_and_thought_tokens(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply("ok", usage={"promptTokenCount": 1200, "cachedContentTokenCount": 1024, "candidatesTokenCount": 3,
                            "thoughtsTokenCount": 97, "totalTokenCount": 1300})
    response = await backend.generate(ask("x"))
    assert response.usage == Usage(input_tokens=1200, output_tokens=100, cached_input_tokens=1024,
                                   reasoning_tokens=97)
    assert response.usage.total_tokens == 1300


@pytest.mark.parametrize(("raw", "expected"), [
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("BLOCKLIST", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "error"),
    ("OTHER", "stop"),
    ("SOMETHING_NEW", "stop"),
])
async def test_finish_reasons(fake: GeminiFake, backend: GeminiBackend, raw: str, expected: str) -> None:
    fake.reply("partial", finish_reason=raw)
    response = await backend.generate(ask("x"))
    assert response.finish_reason == expected
    assert response.provider_details == {"finish_reason": raw}  # the raw value is kept


async def test_a_blocked_prompt_is_a_content_filter_finish(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(block_reason="SAFETY")
    response = await backend.generate(ask("something unsafe"))
    assert response.finish_reason == "content_filter"
    assert response.parts == []
    assert response.provider_details == {"block_reason": "SAFETY"}


async def test_a_body_without_candidates_or_ids_still_answers(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.reply(parts=[], finish_reason=None)
    response = await backend.generate(ask("x"))
    assert response.finish_reason == "stop" and response.parts == []


# ------------------------------------------------------------------------------------- errors


async def test_resource_exhausted_is_a_rate_limit_with_its_retry_delay(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.fail_with(429, "You exceeded your current quota, please check your plan and billing details.",
                   details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}])
    with pytest.raises(RateLimitError) as caught:
        await backend.generate(ask("x"))
    error = caught.value
    assert error.retryable and error.status == 429 and error.retry_after == 36.0
    assert error.code == "429" and error.provider == "gemini" and error.model == MODEL
    assert "exceeded your current quota" in str(error)


async def test_too_many_input_tokens_is_a_context_window_error(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.fail_with(400, "The input token count (1500000) exceeds the maximum number of tokens allowed (1048576).")
    with pytest.raises(ContextWindowExceededError):
        await backend.generate(ask("x"))


@pytest.mark.parametrize(("status", "message", "expected"), [
    (401, "Request had invalid authentication credentials.", AuthenticationError),
    (403, "Permission denied: Consumer has been suspended.", PermissionDeniedError),
    (404, "models/x is not found for API version v1beta", NotFoundError),
    (400, "Invalid value at 'contents[0].role'", BadRequestError),
    (500, "An internal error has occurred.", ServerError),
    (503, "The model is overloaded. Please try again later.", OverloadedError),
])
async def test_status_errors(fake: GeminiFake, backend: GeminiBackend, status: int, message: str,
                             expected: type[Exception]) -> None:
    fake.fail_with(status, message)
    with pytest.raises(expected) as caught:
        await backend.generate(ask("x"))
    assert message in str(caught.value)


async def test_a_wrong_key_is_an_authentication_error(fake: GeminiFake) -> None:
    wrong = GeminiBackend(BackendConfig(name="gemini", type="gemini", base_url=fake.url, api_key="nope"))
    with pytest.raises(AuthenticationError, match="GEMINI_API_KEY"):
        await wrong.generate(ask("x"))
    await wrong.aclose()


async def test_no_key_at_a_proxy_is_sent_and_refused_there(fake: GeminiFake) -> None:
    keyless = GeminiBackend(BackendConfig(name="gemini", type="gemini", base_url=fake.url))
    with pytest.raises(PermissionDeniedError, match="unregistered callers"):
        await keyless.generate(ask("x"))
    assert "x-goog-api-key" not in fake.requests[-1].headers
    await keyless.aclose()


async def test_no_key_for_googles_host_fails_before_sending() -> None:
    gemini = GeminiBackend(BackendConfig(name="gemini", type="gemini"))
    with pytest.raises(ConfigurationError, match=r"GEMINI_API_KEY \(or GOOGLE_API_KEY\) is not set.*model gemini"):
        await gemini.generate(ask("x"))
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        await gemini.list_models()


async def test_an_unknown_model_is_not_found(backend: GeminiBackend) -> None:
    with pytest.raises(NotFoundError, match="check the model name"):
        await backend.generate(Request(model="gemini-9-ultra", messages=[Message.user("x")]))


async def test_an_error_body_with_http_200_is_raised(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.fail(200, [gemini_error(429, "Resource has been exhausted (e.g. check quota).")])
    with pytest.raises(RateLimitError):
        await backend.generate(ask("x"))


async def test_a_body_that_is_not_a_response_is_reported(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.fail(200, "just a string")
    with pytest.raises(APIError, match="not a GenerateContentResponse"):
        await backend.generate(ask("x"))


# ------------------------------------------------------------------------ base URL and version


async def test_a_base_url_that_names_a_version_is_used_as_is(fake: GeminiFake) -> None:
    gemini = GeminiBackend(BackendConfig(name="gemini", type="gemini", base_url=fake.url + "/v1beta/",
                                         api_key="test-key"))
    assert (await gemini.generate(ask("hi"))).text == "hi"
    assert fake.requests[-1].path == "/v1beta/models/gemini-2.5-flash:generateContent"
    await gemini.aclose()


async def test_api_version_goes_into_the_path(fake: GeminiFake) -> None:
    gemini = GeminiBackend(BackendConfig(name="gemini", type="gemini", base_url=fake.url, api_key="test-key",
                                         api_version="v1alpha"))
    with pytest.raises(NotFoundError):
        await gemini.generate(ask("hi"))  # the fake serves v1beta only
    assert fake.requests[-1].path == "/v1alpha/models/gemini-2.5-flash:generateContent"
    await gemini.aclose()


def test_the_key_may_come_from_a_configured_header() -> None:
    gemini = GeminiBackend(BackendConfig(name="gemini", type="gemini", headers={"Authorization": "Bearer t"}))
    assert gemini.setup_problem is None


# --------------------------------------------------------------------------- tokens and models


async def test_count_tokens(fake: GeminiFake, backend: GeminiBackend) -> None:
    request = ask(Message.system("Be brief."), "one two three", tools=[WEATHER], temperature=0.1)

    total = await backend.count_tokens(request)

    sent = fake.last_body
    assert fake.requests[-1].path == "/v1beta/models/gemini-2.5-flash:countTokens"
    inner = sent["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert set(inner) == {"model", "contents", "systemInstruction", "tools"}
    assert total == 3 + 4 + 5  # the fake's tokenizer: words + one per part, 5 per tool


async def test_count_tokens_without_total_is_reported(fake: GeminiFake, backend: GeminiBackend) -> None:
    fake.fail(200, {"cachedContentTokenCount": 0})
    with pytest.raises(APIError, match="without totalTokens"):
        await backend.count_tokens(ask("x"))


async def test_list_models_reads_every_page(fake: GeminiFake, backend: GeminiBackend) -> None:
    names = await backend.list_models()
    assert names == ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "text-embedding-004"]
    pages = [r for r in fake.requests if r.path == "/v1beta/models"]
    assert [r.query.get("pageToken") for r in pages] == [None, "2"]
    assert pages[0].headers["x-goog-api-key"] == "test-key"


async def test_detect_capabilities_reads_the_model_entry(backend: GeminiBackend) -> None:
    capabilities = await backend.detect_capabilities("gemini-2.0-flash")
    assert (capabilities.context_window, capabilities.max_output_tokens, capabilities.reasoning) == (
        1048576, 65536, False)
    unknown = await backend.detect_capabilities("gemini-9-ultra")
    assert unknown == backend.capabilities("gemini-9-ultra")


async def test_detect_capabilities_with_a_strange_answer_keeps_the_catalog(fake: GeminiFake,
                                                                          backend: GeminiBackend) -> None:
    fake.fail(200, ["not", "an", "entry"])
    assert await backend.detect_capabilities(MODEL) == backend.capabilities(MODEL)
    fake.fail(200, {"name": "models/x"})
    assert await backend.detect_capabilities(MODEL) == backend.capabilities(MODEL)
