"""Structured output: a JSON schema (or pydantic model) the answer must match, and its validation.

:class:`OutputSchema` is what ``output=`` becomes. Backends read ``json_schema`` to ask the provider
for conforming output (OpenAI's ``response_format``, Anthropic's forced tool, Gemini's
``responseSchema``); :meth:`OutputSchema.parse` validates the text that comes back and returns the
pydantic object (or the plain JSON value for a schema given as a dict). Dict schemas are validated
with a pydantic model built from the schema, so both forms fail the same way: with
:class:`~agentadapter.llm.errors.OutputValidationError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pydantic

from agentadapter.llm.errors import InvalidRequestError, OutputValidationError
from agentadapter.llm.schema_safety import check_schema, resolve_pointer

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(slots=True)
class OutputSchema:
    """The shape an answer must take."""

    name: str
    json_schema: dict[str, Any]
    model: type[pydantic.BaseModel] | None = None
    strict: bool = True
    json_mode: bool = False
    """Any JSON object will do: providers with a JSON mode (OpenAI's ``json_object``, Gemini's JSON MIME
    type) are asked for it instead of a schema; the others get ``json_schema`` (an object)."""

    @classmethod
    def of(cls, value: OutputSchema | type[pydantic.BaseModel] | Mapping[str, Any]) -> OutputSchema:
        """Accept a pydantic model class, a JSON schema dict, or an ``OutputSchema``."""
        if isinstance(value, OutputSchema):
            return value
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
            return cls(value.__name__, value.model_json_schema(), model=value)
        if isinstance(value, Mapping):
            schema = dict(value)
            name = str(schema.pop("title", None) or "output") if "schema" not in schema else str(schema["name"])
            if "schema" in schema:  # OpenAI's {"name": ..., "schema": {...}} wrapper
                schema = dict(schema["schema"])
            check_schema(schema)  # before anything walks it: local, resolvable, acyclic $ref; bounded size
            return cls(_safe_name(name), schema, model=_model_from_schema(schema))
        raise InvalidRequestError(
            f"output= takes a pydantic model class or a JSON schema dict, not {type(value).__name__}"
        )

    def parse(self, text: str) -> Any:
        """Validate the model's answer; returns the pydantic object or the JSON value."""
        candidate = text.strip()
        fenced = _FENCE.match(candidate)
        if fenced:  # some models wrap JSON in a Markdown fence even when asked not to
            candidate = fenced.group(1)
        try:
            data = json.loads(candidate)
        except ValueError as exc:
            raise OutputValidationError(
                f"OutputValidationError: the answer is not valid JSON for schema {self.name!r} ({exc}); "
                "the model may need a clearer instruction or a model that supports JSON schema",
                raw=text,
            ) from exc
        return self.validate(data, raw=text)

    def validate(self, data: Any, *, raw: Any = None) -> Any:
        model = self.model
        if model is None:
            return data
        try:
            validated = model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise OutputValidationError(
                f"OutputValidationError: the answer does not match schema {self.name!r}: "
                f"{exc.error_count()} error(s): {exc.errors(include_url=False)[:3]}",
                raw=raw if raw is not None else data,
                errors=exc.errors(include_url=False),
            ) from exc
        if getattr(model, "__agentadapter_from_schema__", False):
            return validated.model_dump(mode="json", exclude_unset=False)
        return validated


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
    return cleaned or "output"


# ------------------------------------------------------------- JSON schema -> pydantic (for dicts)

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}


def _model_from_schema(schema: Mapping[str, Any]) -> type[pydantic.BaseModel] | None:
    """A validation model for an object schema; None when the schema is not an object schema."""
    if schema.get("type") != "object" or "properties" not in schema:
        return None
    model = _object_model(str(schema.get("title") or "Output"), schema, schema)
    model.__agentadapter_from_schema__ = True  # type: ignore[attr-defined]
    return model


def _object_model(
    name: str, schema: Mapping[str, Any], root: Mapping[str, Any]
) -> type[pydantic.BaseModel]:
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for prop, prop_schema in (schema.get("properties") or {}).items():
        annotation = _annotation(f"{name}_{prop}", prop_schema, root)
        default = ... if prop in required else None
        if prop not in required:
            annotation = annotation | None
        description = prop_schema.get("description") if isinstance(prop_schema, Mapping) else None
        fields[prop] = (annotation, pydantic.Field(default, description=description))
    extra: Literal["allow", "forbid"] = "forbid" if schema.get("additionalProperties") is False else "allow"
    return pydantic.create_model(_safe_name(name), __config__=pydantic.ConfigDict(extra=extra), **fields)


def _annotation(name: str, schema: Mapping[str, Any] | bool, root: Mapping[str, Any]) -> Any:
    if not isinstance(schema, Mapping):  # true / false: any value (false cannot be met; the provider decides)
        return Any
    ref = schema.get("$ref")
    if isinstance(ref, str):
        # Resolved as the JSON pointer it is (check_schema has made sure it resolves, without cycles).
        try:
            target = resolve_pointer(root, ref)
        except KeyError:
            raise InvalidRequestError(f"output schema: unresolved $ref {ref!r}") from None
        return _annotation(name, target, root)
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_annotation(name, option, root) for option in schema[key]]
            union = options[0]
            for option in options[1:]:
                union = union | option
            return union
    kind = schema.get("type")
    if isinstance(kind, list):
        union = _annotation(name, {**schema, "type": kind[0]}, root)
        for other in kind[1:]:
            union = union | _annotation(name, {**schema, "type": other}, root)
        return union
    if kind == "object":
        if "properties" in schema:
            return _object_model(name, schema, root)
        return dict[str, Any]
    if kind == "array":
        items = schema.get("items")
        return list[_annotation(name + "_item", items, root)] if items else list[Any]  # type: ignore[misc]
    return _JSON_TYPES.get(str(kind), Any)
