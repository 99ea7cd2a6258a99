"""Tool definitions: what a model may call, with a JSON schema for its arguments.

A :class:`Tool` is a name, a description and a JSON schema; when built from a Python function
(:meth:`Tool.from_function`) it also keeps the function and a pydantic model that validates the
arguments the model sends. The schema comes from the type hints, the descriptions from the
docstring (Google, NumPy or Sphinx style, parsed by ``docstring_parser``). :func:`coerce_tool`
accepts the three forms users write: a ``Tool``, an OpenAI-style dict, or a plain function.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_type_hints

import pydantic

from agentadapter.llm.errors import InvalidRequestError

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_OK:
        raise InvalidRequestError(
            f"tool name {name!r} is not accepted by providers; use 1-64 letters, digits, '_' or '-'"
        )
    return name


@dataclass(slots=True)
class Tool:
    """A function the model may call."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON schema of the arguments (an object schema)."""
    strict: bool | None = None
    function: Callable[..., Any] | None = None
    """The Python callable behind the tool, when there is one."""
    timeout: float | None = None
    """Seconds an agent lets the tool run before reporting a timeout to the model."""
    arguments_model: type[pydantic.BaseModel] | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.parameters.get("type") != "object":
            raise InvalidRequestError(
                f"tool {self.name!r}: parameters must be a JSON schema of type 'object'"
            )

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """Build a tool from a function's signature, type hints and docstring."""
        tool_name = _check_name(name or str(getattr(function, "__name__", "")))
        doc = _parse_docstring(inspect.getdoc(function) or "")
        try:
            hints = get_type_hints(function)
        except Exception as exc:  # a forward reference that does not resolve, etc.
            raise InvalidRequestError(f"tool {tool_name!r}: cannot read its type hints ({exc})") from exc
        fields: dict[str, Any] = {}
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InvalidRequestError(
                    f"tool {tool_name!r}: *{param.name} / **{param.name} cannot be described to a model; "
                    "give the function named, typed parameters"
                )
            if param.name in ("self", "cls"):
                continue
            if param.name not in hints:
                raise InvalidRequestError(
                    f"tool {tool_name!r}: parameter {param.name!r} has no type hint; annotate it "
                    "(e.g. `city: str`) so a JSON schema can be built"
                )
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (
                hints[param.name],
                pydantic.Field(default, description=doc.params.get(param.name)),
            )
        try:
            model = pydantic.create_model(f"{tool_name}_arguments", **fields)
            schema = model.model_json_schema()
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
            raise InvalidRequestError(
                f"tool {tool_name!r}: its parameter types cannot be expressed as JSON schema ({exc}); "
                "use JSON-friendly types (str, int, float, bool, lists, dicts, pydantic models, enums)"
            ) from exc
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        schema.setdefault("properties", {})
        return cls(
            name=tool_name,
            description=description if description is not None else doc.description,
            parameters=schema,
            strict=strict,
            function=function,
            timeout=timeout,
            arguments_model=model,
        )

    def validate_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked (and coerced) against the function's signature."""
        if self.arguments_model is None:
            return dict(arguments)
        try:
            validated = self.arguments_model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            raise InvalidRequestError(f"invalid arguments for tool {self.name!r}: {exc}") from exc
        return {name: getattr(validated, name) for name in type(validated).model_fields}

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Validate the arguments and call the function (sync functions run in a worker thread)."""
        if self.function is None:
            raise InvalidRequestError(f"tool {self.name!r} has no Python function to call")
        kwargs = self.validate_arguments(arguments)
        if inspect.iscoroutinefunction(self.function):
            return await cast(Callable[..., Awaitable[Any]], self.function)(**kwargs)
        return await asyncio.to_thread(self.function, **kwargs)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions ``tools`` entry."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


@dataclass(slots=True)
class _Docstring:
    description: str
    params: dict[str, str]


def _parse_docstring(text: str) -> _Docstring:
    if not text:
        return _Docstring("", {})
    import docstring_parser

    parsed = docstring_parser.parse(text)
    parts = [parsed.short_description or "", parsed.long_description or ""]
    description = "\n\n".join(p for p in parts if p).strip()
    params = {p.arg_name: p.description or "" for p in parsed.params if p.description}
    return _Docstring(description, params)


def coerce_tool(value: Tool | Mapping[str, Any] | Callable[..., Any]) -> Tool:
    """A :class:`Tool` from a Tool, an OpenAI-style dict, or a plain function."""
    if isinstance(value, Tool):
        return value
    if isinstance(value, Mapping):
        spec = value.get("function", value) if value.get("type", "function") == "function" else None
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise InvalidRequestError(
                "a tool dict needs the OpenAI shape {'type': 'function', 'function': {'name': ..., "
                "'description': ..., 'parameters': {...}}}"
            )
        return Tool(
            name=str(spec["name"]),
            description=str(spec.get("description", "")),
            parameters=dict(spec.get("parameters") or {"type": "object", "properties": {}}),
            strict=spec.get("strict"),
        )
    if callable(value):
        return Tool.from_function(value)
    raise InvalidRequestError(
        f"cannot use a {type(value).__name__} as a tool; pass a Tool, an OpenAI-style dict or a function"
    )
