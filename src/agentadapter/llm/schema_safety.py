"""Safety checks on a JSON schema given by someone else, before anything walks it or sends it on.

A schema that comes in a request (an agent's ``output_schema``, a gateway call's ``response_format``)
is walked by code that recurses (the validator's meta-schema check, :mod:`agentadapter.llm.output`
building a pydantic model) and sent to providers. :func:`check_schema` refuses, with
:class:`UnsafeSchemaError` naming where in the schema:

- ``$ref`` that is not a local JSON pointer (``#`` or ``#/...``): ``http:``, ``https:``, ``file:``,
  relative file names, anchors. Nothing is ever fetched; such a reference could only be resolved by
  fetching, so it is refused rather than left to a library that might;
- ``$ref`` to a location the schema does not have;
- ``$ref`` cycles (a definition that refers to itself, directly or through others; ``"$ref": "#"``),
  which recursive walkers never finish, and ``$dynamicRef`` / ``$recursiveRef``, which only exist
  for recursion;
- nesting deeper than ``max_depth`` or more than ``max_nodes`` values in all.

The walk is iterative: a schema nested 100,000 levels deep is refused, not a ``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from agentadapter.llm.errors import InvalidRequestError

__all__ = [
    "MAX_SCHEMA_DEPTH", "MAX_SCHEMA_NODES", "MAX_SCHEMA_REFS", "UnsafeSchemaError", "check_schema", "resolve_pointer",
]

MAX_SCHEMA_DEPTH = 32
"""Nested objects and lists; real output schemas stay under ten."""
MAX_SCHEMA_NODES = 10_000
"""Values in the whole schema (objects, lists, strings, numbers); a large real schema has a few hundred."""
MAX_SCHEMA_REFS = 500
"""``$ref`` in the whole schema (the cycle check compares each with the others)."""


class UnsafeSchemaError(InvalidRequestError):
    """A schema refused by :func:`check_schema`; ``param`` is where: ``output_schema.properties.a.$ref``."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.reason = message


Path = tuple[str | int, ...]


def _where(root: str, path: Path) -> str:
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _pointer(ref: str) -> list[str]:
    """The tokens of a local reference ``#/a/b~1c`` (RFC 6901 escapes, percent-encoding as in a URI fragment)."""
    fragment = unquote(ref[1:])
    if not fragment:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in fragment[1:].split("/")]


def resolve_pointer(schema: Any, ref: str) -> Any:
    """The value a local ``$ref`` (``#`` or ``#/...``) points at in ``schema``; ``KeyError`` if there is none."""
    if ref != "#" and not ref.startswith("#/"):
        raise KeyError(ref)
    value = schema
    for token in _pointer(ref):
        if isinstance(value, Mapping) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isascii() and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise KeyError(ref)
    return value


def _target_path(schema: Any, ref: str) -> Path:
    path: list[str | int] = []
    value = schema
    for token in _pointer(ref):
        if isinstance(value, Mapping):
            value = value[token]
            path.append(token)
        else:
            value = value[int(token)]
            path.append(int(token))
    return tuple(path)


def check_schema(schema: Any, where: str = "schema", *, max_depth: int = MAX_SCHEMA_DEPTH,
                 max_nodes: int = MAX_SCHEMA_NODES) -> None:
    """Refuse (:class:`UnsafeSchemaError`) a schema that is too large or deep, or whose ``$ref`` are not all
    local, resolvable and free of cycles. ``where`` is the field the schema came in, for messages."""
    refs: list[tuple[Path, str]] = []
    stack: list[tuple[Any, Path]] = [(schema, ())]
    nodes = 0
    while stack:
        value, path = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise UnsafeSchemaError(f"the schema has more than {max_nodes} values; send a smaller one",
                                    param=where)
        if len(path) > max_depth:
            raise UnsafeSchemaError(f"the schema nests deeper than {max_depth} levels; flatten it with $defs",
                                    param=_where(where, path))
        if isinstance(value, Mapping):
            for key in ("$dynamicRef", "$recursiveRef"):
                if key in value:
                    raise UnsafeSchemaError(f"{key} is not supported (it exists for recursive schemas, which "
                                            "are refused); describe the output without recursion",
                                            param=_where(where, (*path, key)))
            ref = value.get("$ref")
            if "$ref" in value:
                if not isinstance(ref, str):
                    raise UnsafeSchemaError("$ref must be a string", param=_where(where, (*path, "$ref")))
                refs.append((path, ref))
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    if len(refs) > MAX_SCHEMA_REFS:
        raise UnsafeSchemaError(f"the schema has {len(refs)} $ref, more than {MAX_SCHEMA_REFS}; send a smaller one",
                                param=where)
    if refs:
        _check_refs(schema, where, refs)


def _check_refs(schema: Any, where: str, refs: list[tuple[Path, str]]) -> None:
    targets: list[Path] = []
    for path, ref in refs:
        param = _where(where, (*path, "$ref"))
        if ref != "#" and not ref.startswith("#/"):
            raise UnsafeSchemaError(
                f"{ref!r} is not a reference inside this schema: only local references (#/$defs/Name) are "
                "allowed, nothing is fetched; put the definition under $defs", param=param)
        try:
            resolve_pointer(schema, ref)
        except KeyError:
            raise UnsafeSchemaError(f"{ref!r} refers to a location the schema does not have; define it (under "
                                    "$defs) or fix the reference", param=param) from None
        targets.append(_target_path(schema, ref))
    # A reference leads to every reference inside the subschema it points at; a cycle among these is a
    # schema that never ends when expanded.
    leads_to = [[other for other, (inner, _) in enumerate(refs) if inner[:len(target)] == target]
                for target in targets]
    state = [0] * len(refs)  # 0 unseen, 1 on the current path, 2 done
    for start in range(len(refs)):
        if state[start]:
            continue
        state[start] = 1
        walk: list[tuple[int, int]] = [(start, 0)]
        while walk:
            node, edge = walk[-1]
            if edge < len(leads_to[node]):
                walk[-1] = (node, edge + 1)
                nxt = leads_to[node][edge]
                if state[nxt] == 1:
                    path, ref = refs[nxt]
                    raise UnsafeSchemaError(f"{ref!r} makes a cycle (the schema refers to itself, directly or "
                                            "through other definitions); recursive schemas are not supported",
                                            param=_where(where, (*path, "$ref")))
                if state[nxt] == 0:
                    state[nxt] = 1
                    walk.append((nxt, 0))
            else:
                state[node] = 2
                walk.pop()
