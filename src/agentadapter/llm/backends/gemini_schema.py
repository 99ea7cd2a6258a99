"""JSON schema → Gemini ``Schema``: the subset of OpenAPI 3.0 that Gemini accepts.

Gemini's function declarations (``parameters``) and structured output (``responseSchema``) take a
``Schema`` object, not full JSON schema. :func:`to_gemini_schema` converts what pydantic and
hand-written tools produce:

- ``$ref`` / ``$defs`` (and the older ``definitions``) are resolved inline; a recursive schema
  cannot be expressed and raises :class:`~agentadapter.llm.errors.InvalidRequestError`.
- ``anyOf`` / ``oneOf`` / a ``type`` list containing ``null`` become ``nullable: true``; what
  remains becomes a single schema or Gemini's ``anyOf``. A one-element ``allOf`` is merged.
- Types are upper-cased (``STRING``, ``OBJECT``, ...). ``enum`` is kept for strings; Gemini's enums
  are string-only, so other enums keep their type and list the allowed values in the description.
- ``format`` is kept only where Gemini supports it (``date-time`` and ``enum`` for strings,
  ``int32``/``int64``, ``float``/``double``); other formats and constraints Gemini lacks
  (``exclusiveMinimum``, ``multipleOf``, ``uniqueItems``, ``const`` on non-strings, ...) are
  written into the description so the model still sees them.
- Keys with no meaning for generation are dropped: ``$schema``, ``$id``, ``title``,
  ``additionalProperties``, ``default`` (Google documents it as ignored), ``examples``,
  ``readOnly``/``writeOnly``, ``deprecated``. An object with no properties is sent without the
  ``properties`` key, which Gemini rejects when empty.

The backend in :mod:`agentadapter.llm.backends.gemini` is the only user; this module has no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentadapter.llm.errors import InvalidRequestError

__all__ = ["to_gemini_schema"]

# JSON schema type -> Gemini Type enum name.
_TYPES: dict[str, str] = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
    "null": "NULL",
}

# The formats the Gemini API accepts, per type; any other format fails the request.
_FORMATS: dict[str, frozenset[str]] = {
    "STRING": frozenset({"date-time", "enum"}),
    "INTEGER": frozenset({"int32", "int64"}),
    "NUMBER": frozenset({"float", "double"}),
}

# Keys copied as they are (Gemini spells them like JSON schema does).
_COPIED = (
    "description",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
    "example",
)

# JSON schema constraints Gemini has no field for: kept as words in the description.
_DESCRIBED: dict[str, str] = {
    "exclusiveMinimum": "greater than {}",
    "exclusiveMaximum": "less than {}",
    "multipleOf": "a multiple of {}",
    "uniqueItems": "unique items: {}",
    "contains": "contains an item matching {}",
    "not": "must not match {}",
}

_Definitions = Mapping[str, Any]


def to_gemini_schema(schema: Mapping[str, Any], *, property_ordering: bool = False) -> dict[str, Any]:
    """Convert a JSON schema (e.g. pydantic's ``model_json_schema()``) to a Gemini ``Schema``.

    ``property_ordering`` adds Gemini's ``propertyOrdering`` to each object, which keeps the keys of
    structured output in the order the schema declares them.
    """
    definitions: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        found = schema.get(key)
        if isinstance(found, Mapping):
            definitions.update(found)
    return _convert(schema, definitions, (), property_ordering)


def _resolve(ref: str, definitions: _Definitions, trail: tuple[str, ...]) -> Mapping[str, Any]:
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith("#/") or name not in definitions:
        raise InvalidRequestError(
            f"schema reference {ref!r} does not point into $defs/definitions; Gemini needs every "
            "$ref resolved inline, so define the referenced schema under $defs"
        )
    if name in trail:
        raise InvalidRequestError(
            f"schema {name!r} refers to itself ({' -> '.join((*trail, name))}); Gemini's Schema cannot "
            "express recursive types: flatten the model or cap its depth"
        )
    target = definitions[name]
    if not isinstance(target, Mapping):
        raise InvalidRequestError(f"schema definition {name!r} is not an object")
    return target


def _convert(
    node: Mapping[str, Any], definitions: _Definitions, trail: tuple[str, ...], ordering: bool
) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, definitions, trail)
        # Sibling keys (pydantic puts a field's description next to its $ref) win over the target's.
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions, (*trail, ref.rsplit("/", 1)[-1]), ordering)

    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
        merged = {**all_of[0], **{k: v for k, v in node.items() if k != "allOf"}}
        return _convert(merged, definitions, trail, ordering)

    for union_key in ("anyOf", "oneOf"):
        options = node.get(union_key)
        if isinstance(options, list):
            return _convert_union(node, union_key, options, definitions, trail, ordering)

    out: dict[str, Any] = {}
    notes: list[str] = []
    nullable = False
    kind = node.get("type")
    if isinstance(kind, list):
        non_null = [t for t in kind if t != "null"]
        nullable = len(non_null) != len(kind)
        if len(non_null) > 1:
            rest = {k: v for k, v in node.items() if k != "type"}
            union = {**rest, "anyOf": [{"type": t} for t in non_null]}
            converted = _convert(union, definitions, trail, ordering)
            if nullable:
                converted["nullable"] = True
            return converted
        kind = non_null[0] if non_null else "null"
    if kind is None:
        kind = _infer_type(node)
    gemini_type = _TYPES.get(kind) if isinstance(kind, str) else None
    if gemini_type is not None:
        out["type"] = gemini_type
    elif kind is not None:
        raise InvalidRequestError(f"unknown JSON schema type {kind!r}; use one of {', '.join(_TYPES)}")
    if nullable or node.get("nullable") is True:
        out["nullable"] = True

    for key in _COPIED:
        if key in node:
            out[key] = node[key]

    _convert_enum(node, out, notes)
    fmt = node.get("format")
    if isinstance(fmt, str):
        if fmt in _FORMATS.get(out.get("type", ""), frozenset()):
            out["format"] = fmt
        else:
            notes.append(f"format: {fmt}")
    for key, words in _DESCRIBED.items():
        if key in node:
            notes.append(words.format(json.dumps(node[key], default=str)))

    if gemini_type == "OBJECT":
        properties = node.get("properties")
        if isinstance(properties, Mapping) and properties:
            out["properties"] = {
                name: _convert(prop, definitions, trail, ordering) for name, prop in properties.items()
            }
            required = [name for name in node.get("required") or () if name in properties]
            if required:
                out["required"] = required
            if ordering:
                out["propertyOrdering"] = list(properties)
        values = node.get("additionalProperties")
        if isinstance(values, Mapping) and isinstance(values.get("type"), str):
            notes.append(f"any keys; values of type {values['type']}")  # a dict[str, X] has no Gemini form
    elif gemini_type == "ARRAY":
        items = node.get("items")
        if isinstance(items, Mapping):
            out["items"] = _convert(items, definitions, trail, ordering)
        prefix = node.get("prefixItems")
        if isinstance(prefix, list) and prefix and "items" not in out:
            # Tuples have no Gemini form: accept any of the positional types, and say the order.
            out["items"] = {"anyOf": [_convert(p, definitions, trail, ordering) for p in prefix]}
            notes.append(f"exactly {len(prefix)} items, in the order of the types listed")

    if notes:
        joined = "; ".join(notes)
        out["description"] = f"{out['description']} ({joined})" if out.get("description") else f"({joined})"
    return out


def _convert_union(
    node: Mapping[str, Any],
    union_key: str,
    options: list[Any],
    definitions: _Definitions,
    trail: tuple[str, ...],
    ordering: bool,
) -> dict[str, Any]:
    rest = {k: v for k, v in node.items() if k != union_key}
    non_null = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
    nullable = len(non_null) != len(options)
    if len(non_null) == 1 and isinstance(non_null[0], Mapping):
        # `X | None` (pydantic's Optional): one schema, nullable; the outer description wins.
        converted = _convert({**non_null[0], **rest}, definitions, trail, ordering)
    elif not non_null:
        converted = _convert({**rest, "type": "null"}, definitions, trail, ordering)
    else:
        converted = _convert(rest, definitions, trail, ordering) if rest else {}
        converted["anyOf"] = [_convert(o, definitions, trail, ordering) for o in non_null]
    if nullable:
        converted["nullable"] = True
    return converted


def _infer_type(node: Mapping[str, Any]) -> str | None:
    if "properties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    values = node.get("enum")
    if values is None and "const" in node:
        values = [node["const"]]
    if isinstance(values, list) and values:
        if all(isinstance(v, str) for v in values):
            return "string"
        if all(isinstance(v, bool) for v in values):
            return "boolean"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "integer"
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return "number"
    return None


def _convert_enum(node: Mapping[str, Any], out: dict[str, Any], notes: list[str]) -> None:
    values = node.get("enum")
    if values is None and "const" in node:
        values = [node["const"]]
    if not isinstance(values, list) or not values:
        return
    if out.get("type") == "STRING" and all(isinstance(v, str) for v in values):
        out["enum"] = list(values)
    else:
        # Gemini's enum is for strings only: keep the real type, name the allowed values in words.
        notes.append("one of: " + ", ".join(json.dumps(v) for v in values))
