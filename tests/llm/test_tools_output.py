"""Tools from functions (type hints + docstrings) and structured output validation."""

from __future__ import annotations

import enum
from typing import Any

import pydantic
import pytest

from agentadapter.llm.errors import InvalidRequestError, OutputValidationError
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool, coerce_tool


class Unit(enum.Enum):
    C = "c"
    F = "f"


def google_style(city: str, days: int = 1, unit: Unit = Unit.C) -> str:
    """Get the forecast.

    Args:
        city: The city to look up.
        days: How many days ahead.
        unit: Temperature unit.
    """
    return f"{city}:{days}:{unit.value}"


def numpy_style(query: str, limit: int) -> list[str]:
    """Search the index.

    Parameters
    ----------
    query : str
        What to look for.
    limit : int
        At most this many hits.
    """
    return [query] * limit


def sphinx_style(path: str) -> str:
    """Read a file.

    :param path: Where the file is.
    """
    return path


@pytest.mark.parametrize(
    ("function", "param", "description"),
    [(google_style, "city", "The city to look up."), (numpy_style, "limit", "At most this many hits."),
     (sphinx_style, "path", "Where the file is.")],
)
def test_schema_from_hints_and_docstrings(function, param, description):
    tool = Tool.from_function(function)
    assert tool.parameters["type"] == "object"
    assert tool.parameters["properties"][param]["description"] == description
    assert tool.description.split("\n")[0].endswith(".")


def test_required_defaults_and_enums():
    tool = Tool.from_function(google_style)
    assert tool.parameters["required"] == ["city"]
    assert tool.parameters["properties"]["days"]["default"] == 1
    assert tool.to_openai()["function"]["name"] == "google_style"


async def test_invoke_validates_and_runs_sync_and_async():
    assert await Tool.from_function(google_style).invoke({"city": "Oslo", "days": "2", "unit": "f"}) == "Oslo:2:f"

    async def shout(text: str) -> str:
        return text.upper()

    assert await Tool.from_function(shout).invoke({"text": "hi"}) == "HI"
    with pytest.raises(InvalidRequestError, match="invalid arguments for tool 'google_style'"):
        await Tool.from_function(google_style).invoke({"days": 1})


@pytest.mark.parametrize(
    ("function", "needle"),
    [
        (lambda *args: None, "cannot be described"),
        (lambda x: None, "has no type hint"),
    ],
)
def test_unschemable_functions_fail_clearly(function, needle):
    function.__name__ = "f"
    with pytest.raises(InvalidRequestError, match=needle):
        Tool.from_function(function)


class Opaque:
    pass


def test_unschemable_type_fails_clearly():
    def use(thing: Opaque) -> None:
        """Use it."""

    with pytest.raises(InvalidRequestError, match="cannot be expressed as JSON schema"):
        Tool.from_function(use)


def test_coerce_tool_forms():
    from_dict = coerce_tool({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})
    assert from_dict.name == "f"
    assert coerce_tool(from_dict) is from_dict
    assert coerce_tool(sphinx_style).name == "sphinx_style"
    with pytest.raises(InvalidRequestError, match="OpenAI shape"):
        coerce_tool({"nope": 1})
    with pytest.raises(InvalidRequestError, match="cannot use a int"):
        coerce_tool(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="tool name"):
        Tool(name="has space")
    with pytest.raises(InvalidRequestError, match="type 'object'"):
        Tool(name="f", parameters={"type": "string"})


class City(pydantic.BaseModel):
    name: str
    population: int


def test_output_from_pydantic_model():
    schema = OutputSchema.of(City)
    assert schema.parse('{"name": "Oslo", "population": 700000}') == City(name="Oslo", population=700000)
    assert schema.parse('```json\n{"name": "Oslo", "population": 1}\n```').name == "Oslo"
    with pytest.raises(OutputValidationError, match="does not match schema 'City'"):
        schema.parse('{"name": "Oslo"}')
    with pytest.raises(OutputValidationError, match="not valid JSON"):
        schema.parse("Oslo has 700k people")


def test_output_from_json_schema_validates_too():
    schema = OutputSchema.of({
        "title": "Answer",
        "type": "object",
        "properties": {
            "verdict": {"enum": ["yes", "no"]},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "detail": {"$ref": "#/$defs/Detail"},
            "note": {"type": ["string", "null"]},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "meta": {"type": "object"},
        },
        "required": ["verdict", "score"],
        "additionalProperties": False,
        "$defs": {"Detail": {"type": "object", "properties": {"why": {"type": "string"}}, "required": ["why"]}},
    })
    assert schema.name == "Answer"
    value: Any = schema.parse('{"verdict": "yes", "score": 0.5, "detail": {"why": "x"}}')
    assert value["verdict"] == "yes" and value["detail"] == {"why": "x"}
    with pytest.raises(OutputValidationError):
        schema.parse('{"verdict": "maybe", "score": 1}')
    with pytest.raises(OutputValidationError):
        schema.parse('{"verdict": "no", "score": 1, "extra": true}')


def test_output_openai_wrapper_and_bad_input():
    schema = OutputSchema.of({"name": "thing", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}})
    assert schema.name == "thing" and schema.parse('{"a": 1}') == {"a": 1}
    assert OutputSchema.of({"type": "string"}).parse('"free"') == "free"
    with pytest.raises(InvalidRequestError, match="output= takes"):
        OutputSchema.of(42)  # type: ignore[arg-type]
