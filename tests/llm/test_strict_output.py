"""Structured output is sent strict to OpenAI-style APIs whenever the schema can be made strict.

The fakes refuse a strict schema the way the API does (tests/fakes/openai_strict.py), so a schema
sent strict without really being strict fails here as it would in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import pydantic
import pytest

from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
from agentadapter.llm.backends.openai_responses import OpenAIResponsesBackend
from agentadapter.llm.errors import BadRequestError
from agentadapter.llm.messages import Message, Request
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.strict_schema import is_strict_compatible, to_strict_json_schema
from fakes.openai_server import OpenAIFake
from fakes.responses_server import ResponsesFake


class Address(pydantic.BaseModel):
    street: str
    postcode: str | None = None


class Person(pydantic.BaseModel):
    """A plain model: optional fields, a nested model with a description beside its $ref, a list."""

    name: str
    age: int | None = None
    nickname: str = "none"
    home: Address = pydantic.Field(description="Where they live.")
    previous: list[Address] = []


class Tagged(pydantic.BaseModel):
    name: str
    scores: dict[str, int]  # additionalProperties is a schema: cannot be made strict


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(pydantic.BaseModel):
    pet: Cat | Dog = pydantic.Field(discriminator="kind")  # pydantic writes oneOf: strict mode refuses it


PERSON_ANSWER = ('{"name": "Ada", "age": null, "nickname": "none", "home": {"street": "Main 1", "postcode": null},'
                 ' "previous": []}')


@pytest.fixture
async def chat() -> AsyncIterator[tuple[OpenAIFake, OpenAIChatBackend]]:
    async with OpenAIFake() as fake:
        backend = OpenAIChatBackend(BackendConfig(name="openai", type="openai", base_url=fake.url + "/v1",
                                                  api_key="k"))
        yield fake, backend
        await backend.aclose()


@pytest.fixture
async def responses() -> AsyncIterator[tuple[ResponsesFake, OpenAIResponsesBackend]]:
    async with ResponsesFake() as fake:
        backend = OpenAIResponsesBackend(BackendConfig(name="openai", type="openai", base_url=fake.url + "/v1",
                                                       api_key="k"))
        yield fake, backend
        await backend.aclose()


def ask(output: Any) -> Request:
    return Request("gpt-4o-mini", [Message.user("Who?")], output=OutputSchema.of(output))


async def test_a_plain_pydantic_model_is_sent_strict_to_chat_completions(chat: Any) -> None:
    fake, backend = chat
    assert not is_strict_compatible(Person.model_json_schema())  # as pydantic writes it, strict mode refuses it
    fake.reply(PERSON_ANSWER)
    response = await backend.generate(ask(Person))
    sent = fake.last.json["response_format"]["json_schema"]
    assert sent["strict"] is True
    schema = sent["schema"]
    assert schema["required"] == ["name", "age", "nickname", "home", "previous"]
    assert schema["properties"]["home"]["description"] == "Where they live."  # the $ref was inlined around it
    assert "$ref" not in schema["properties"]["home"]
    assert "default" not in schema["properties"]["age"]
    assert schema["$defs"]["Address"]["required"] == ["street", "postcode"]
    # The model still validates the answer: an optional field comes back as null.
    person = OutputSchema.of(Person).parse(response.text)
    assert person == Person(name="Ada", home=Address(street="Main 1"))


async def test_a_plain_pydantic_model_is_sent_strict_to_the_responses_api(responses: Any) -> None:
    fake, backend = responses
    fake.reply(PERSON_ANSWER)
    response = await backend.generate(ask(Person))
    text_format = fake.last.json["text"]["format"]
    assert (text_format["name"], text_format["strict"]) == ("Person", True)
    assert OutputSchema.of(Person).parse(response.text).name == "Ada"


@pytest.mark.parametrize("model", [Tagged, Pet])
async def test_a_model_that_cannot_be_strict_is_sent_as_written_without_strict(chat: Any, model: Any) -> None:
    fake, backend = chat
    await backend.generate(ask(model))
    sent = fake.last.json["response_format"]["json_schema"]
    assert sent["strict"] is False
    assert sent["schema"] == model.model_json_schema()


async def test_a_dict_schema_is_the_callers_contract_and_is_not_rewritten(chat: Any) -> None:
    fake, backend = chat
    schema = {"title": "Loose", "type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    await backend.generate(ask(schema))
    sent = fake.last.json["response_format"]["json_schema"]
    assert sent["strict"] is False
    assert sent["schema"] == {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}


async def test_the_fake_refuses_a_non_strict_schema_sent_strict(chat: Any) -> None:
    """The fault the transform prevents: what strict mode answers to pydantic's own schema."""
    _, backend = chat
    forced = OutputSchema("Person", Person.model_json_schema())
    from agentadapter.llm.backends import openai_chat_mapping

    original = openai_chat_mapping.wire_output_schema
    openai_chat_mapping.wire_output_schema = lambda output: (output.json_schema, True)  # type: ignore[assignment]
    try:
        with pytest.raises(BadRequestError, match="Invalid schema for response_format 'Person'"):
            await backend.generate(Request("gpt-4o-mini", [Message.user("Who?")], output=forced))
    finally:
        openai_chat_mapping.wire_output_schema = original


def test_the_transform_leaves_the_input_alone_and_is_idempotent() -> None:
    schema = Person.model_json_schema()
    before = repr(schema)
    strict = to_strict_json_schema(schema)
    assert repr(schema) == before
    assert is_strict_compatible(strict)
    assert to_strict_json_schema(strict) == strict
    # A single-entry allOf (older pydantic's way of describing a nested model) is unwrapped.
    wrapped = {"type": "object", "properties": {"a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "d"}},
               "$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
    made = to_strict_json_schema(wrapped)
    assert is_strict_compatible(made)
    assert made["properties"]["a"]["properties"] == {"x": {"type": "integer"}}
    # A remote or dangling $ref is left as it is, and the schema is then sent non-strict.
    dangling = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing", "description": "d"}}}
    assert not is_strict_compatible(to_strict_json_schema(dangling))
