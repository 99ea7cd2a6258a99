"""OpenAI's strict-schema form of a JSON schema, for structured output and tools.

OpenAI's strict mode (``"strict": true`` on a ``json_schema`` response format) guarantees the
answer matches the schema, but only accepts schemas where every object forbids additional
properties and lists all its properties as ``required``. A plain pydantic model rarely looks like
that (optional fields are not required; ``additionalProperties`` is left open), yet most can be
made so without changing what they accept, the way the official SDK does before sending a model:
objects get ``additionalProperties: false`` when they say nothing about it, every property becomes
required (an optional field is already nullable in pydantic's schema, so the model answers
``null`` instead of leaving it out), a ``null`` default is dropped, a single-entry ``allOf`` is
unwrapped, and a ``$ref`` with sibling keywords is expanded in place. :func:`to_strict_json_schema`
does that on a copy; :func:`is_strict_compatible` says whether a schema is strict as it stands
(a ``dict[str, X]`` field, whose ``additionalProperties`` is a schema, or a ``oneOf`` union cannot
be made strict: those are sent non-strict). The OpenAI chat and Responses mappings use both.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["is_strict_compatible", "to_strict_json_schema"]


def is_strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts a schema as it is.

    Strict mode needs every object to list all its properties as required and to forbid additional
    properties, and takes neither ``oneOf`` nor keywords beside a ``$ref``.
    """
    if isinstance(schema, list):
        return all(is_strict_compatible(item) for item in schema)
    if not isinstance(schema, Mapping):
        return True
    if "oneOf" in schema or ("$ref" in schema and len(schema) > 1):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != set(properties):
            return False
    for key in ("properties", "$defs", "definitions"):
        nested = schema.get(key)
        if isinstance(nested, Mapping) and not all(is_strict_compatible(v) for v in nested.values()):
            return False
    for key in ("items", "anyOf", "allOf", "prefixItems"):
        nested = schema.get(key)
        if nested is not None and not is_strict_compatible(nested):
            return False
    return True


def to_strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in strict form, as far as it can be made so (check it with :func:`is_strict_compatible`)."""
    root = copy.deepcopy(dict(schema))
    strict: dict[str, Any] = _make_strict(root, root, depth=0)
    return strict


_MAX_DEPTH = 64
"""Nesting beyond this is left as it is (and then fails the strict check): a bound on the recursion."""


def _make_strict(node: Any, root: dict[str, Any], *, depth: int) -> Any:
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return node
    deeper = depth + 1
    for key in ("$defs", "definitions"):
        definitions = node.get(key)
        if isinstance(definitions, dict):
            for name, definition in definitions.items():
                definitions[name] = _make_strict(definition, root, depth=deeper)
    if node.get("type") == "object" or "properties" in node:
        node.setdefault("additionalProperties", False)
        properties = node.get("properties")
        if isinstance(properties, dict):
            node["required"] = list(properties)
            for name, prop in properties.items():
                properties[name] = _make_strict(prop, root, depth=deeper)
    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _make_strict(items, root, depth=deeper)
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        node["anyOf"] = [_make_strict(option, root, depth=deeper) for option in any_of]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1 and isinstance(all_of[0], dict):
            del node["allOf"]
            node.update(_make_strict(all_of[0], root, depth=deeper))
        else:
            node["allOf"] = [_make_strict(entry, root, depth=deeper) for entry in all_of]
    if "default" in node and node["default"] is None:
        del node["default"]  # a null default means "optional", which strict mode says with a required nullable
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        # Strict mode refuses keywords beside a $ref (pydantic puts a description there): inline it.
        target = _resolve_local(root, ref)
        if target is not None:
            del node["$ref"]
            merged = {**copy.deepcopy(target), **node}
            return _make_strict(merged, root, depth=deeper)
    return node


def _resolve_local(root: Mapping[str, Any], ref: str) -> dict[str, Any] | None:
    """The schema a local ``#/...`` JSON pointer names; None for anything else."""
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for token in ref[2:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) else None
