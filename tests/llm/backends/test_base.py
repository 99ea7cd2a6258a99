"""The Backend base class's defaults, the registry, and the test backends' schema examples."""

from __future__ import annotations

import pydantic
import pytest

from agentadapter.llm.backends.base import (
    Backend,
    BackendConfig,
    backend_class,
    builtin_backend_types,
    mask_secret,
    register_backend,
    register_builtin,
)
from agentadapter.llm.backends.testing import FunctionBackend, TestBackend, example_value
from agentadapter.llm.embeddings import EmbeddingRequest
from agentadapter.llm.errors import CapabilityError, ConfigurationError
from agentadapter.llm.messages import ImagePart, Message, ReasoningPart, Request, TextPart, ToolCallPart, ToolResultPart
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool


async def test_optional_methods_have_clear_defaults():
    backend = TestBackend()
    request = Request(model="echo", messages=[Message.user("hello there")])
    assert await backend.count_tokens(request) > 0
    with pytest.raises(CapabilityError, match="cannot list its models"):
        await backend.list_models()
    with pytest.raises(CapabilityError, match="does not offer embeddings"):
        await backend.embed(EmbeddingRequest(model="m", inputs=["x"]))
    assert (await backend.detect_capabilities("echo")).known
    assert "TestBackend" in repr(backend)


def test_estimate_counts_every_part_kind():
    from agentadapter.llm.backends.base import estimate_tokens

    request = Request(model="m", messages=[Message("assistant", [
        TextPart("a" * 40), ToolCallPart("c", "f", {"x": 1}), ToolResultPart("c", "f", "b" * 40),
        ReasoningPart("c" * 40), ImagePart(url="https://x/y.png"),
    ])], tools=[Tool(name="f", description="d")])
    assert estimate_tokens(request) > 765


def test_registry_errors_and_registration():
    with pytest.raises(ConfigurationError, match="no backend type 'nope'"):
        backend_class("nope")
    with pytest.raises(ConfigurationError, match="needs a Backend subclass"):
        register_backend("bad", int)  # type: ignore[arg-type]
    register_builtin("echo2", "agentadapter.llm.backends.testing:TestBackend")
    assert backend_class("echo2") is TestBackend
    assert "openai_chat" in builtin_backend_types()
    assert mask_secret("sk-abcdefghijklmnop") == "sk-...mnop" and mask_secret("short") == "***"
    assert mask_secret(None) is None
    assert BackendConfig(name="n", type="t", api_key="sk-abcdefghijklmnop").redacted()["api_key"] == "sk-...mnop"
    assert issubclass(TestBackend, Backend)


class Inner(pydantic.BaseModel):
    when: str


class Example(pydantic.BaseModel):
    kind: str = "default"
    count: int
    ratio: float
    flag: bool
    tags: list[str]
    inner: Inner
    maybe: int | None
    empty: list[int] = pydantic.Field(default_factory=list)


def test_example_values_validate():
    schema = OutputSchema.of(Example)
    value = example_value(schema.json_schema)
    Example.model_validate(value)
    assert example_value({"const": 3}) == 3
    assert example_value({"type": ["null", "string"]}) == "xxxx"
    assert example_value({"type": "string", "format": "email"}) == "user@example.com"
    assert example_value({"type": "string", "format": "hostname"}) == "example"
    assert example_value({"type": "array"}) == []
    assert example_value({"type": "integer", "minimum": 5}) == 5
    assert example_value({"type": "null"}) is None
    assert example_value({"allOf": [{"type": "boolean"}]}) is True


async def test_test_backend_honours_tool_choice_and_none():
    backend = TestBackend()
    tools = [Tool(name="a"), Tool(name="b")]
    only_b = await backend.generate(Request(model="m", messages=[Message.user("x")], tools=tools, tool_choice="b"))
    assert [c.name for c in only_b.tool_calls] == ["b"]
    no_tools = await backend.generate(Request(model="m", messages=[Message.user("x")], tools=tools,
                                              tool_choice="none"))
    assert no_tools.text == "x"


async def test_function_backend_takes_parts_and_async_functions():
    async def answer(request):
        return [ToolCallPart("c1", "f", {})]

    backend = FunctionBackend(answer)
    response = await backend.generate(Request(model="m", messages=[Message.user("x")]))
    assert response.finish_reason == "tool_calls" and backend.requests
    events = [e async for e in backend.stream(Request(model="m", messages=[Message.user("x")]))]
    assert events[-1].response is not None and events[-1].response.tool_calls[0].name == "f"
