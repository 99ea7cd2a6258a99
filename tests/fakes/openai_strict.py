"""What OpenAI's structured-output strict mode refuses, for the OpenAI fakes.

With ``strict: true`` the real API rejects (HTTP 400, ``invalid_request_error``, before generating
anything) a schema in which some object does not set ``additionalProperties: false`` or does not
list every property in ``required``, or that uses ``oneOf``, or a ``$ref`` with sibling keywords.
:func:`strict_schema_problem` returns the API-style message for the first such place, or None.
Written from the API's documented rules, independently of the adapter's own transform, so a test
against the fakes checks the adapter rather than agreeing with it.
"""

from __future__ import annotations

from typing import Any


def strict_schema_problem(name: str, schema: Any) -> str | None:
    """The 400 message the API gives for ``schema`` under strict mode, or None when it is accepted."""
    problem = _walk(schema, ())
    if problem is None:
        return None
    where, what = problem
    return f"Invalid schema for response_format '{name}': In context={where!r}, {what}."


def _walk(node: Any, where: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    if isinstance(node, list):
        for position, entry in enumerate(node):
            found = _walk(entry, (*where, str(position)))
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if "oneOf" in node:
        return where, "'oneOf' is not permitted"
    if "$ref" in node and len(node) > 1:
        return where, "$ref cannot have keywords {" + ", ".join(repr(k) for k in sorted(node) if k != "$ref") + "}"
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return where, "'additionalProperties' is required to be supplied and to be false"
        properties = node.get("properties") or {}
        missing = [key for key in properties if key not in (node.get("required") or [])]
        if missing:
            return where, ("'required' is required to be supplied and to be an array including every key in "
                           f"properties. Missing '{missing[0]}'")
    for key in ("properties", "$defs", "definitions"):
        children = node.get(key)
        if isinstance(children, dict):
            for child_name, child in children.items():
                found = _walk(child, (*where, key, child_name))
                if found:
                    return found
    for key in ("items", "anyOf", "allOf"):
        if key in node:
            found = _walk(node[key], (*where, key))
            if found:
                return found
    return None
