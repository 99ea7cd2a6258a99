"""Tool calls in a local model's text: the chat-template formats, parsed into neutral tool calls.

Local models write their tool calls as text in the format their chat template taught them:

- **Hermes / Qwen**: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, one block per call
  (also what :mod:`agentadapter.llm.runners.chat` asks of models whose template knows no tools);
- **Mistral**: ``[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}]``, or the newer
  ``[TOOL_CALLS]name[ARGS]{...}`` (optionally ``name[CALL_ID]id[ARGS]{...}``), repeated per call;
- **Llama 3**: the whole answer is ``{"name": ..., "parameters": {...}}`` (several separated by ``;``
  or new lines, or a JSON list), optionally after ``<|python_tag|>``. With no marker, such JSON counts
  as a call only when it names one of the offered tools, so a JSON answer stays an answer.

:func:`parse_tool_calls` returns the text outside the calls and the calls. :class:`ToolCallStreamFilter`
decides, while text streams in, what is plainly text (emitted at once) and what may be part of a
call (held until the end, when the whole output is parsed), so a stream accumulates to exactly the
response of the non-streaming call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from agentadapter.llm.messages import ToolCallPart, parse_tool_arguments
from agentadapter.llm.runners.base import held_back

__all__ = ["MARKERS", "ParsedOutput", "ToolCallFormat", "ToolCallStreamFilter", "parse_tool_calls"]

ToolCallFormat = Literal["hermes", "mistral", "llama3"]

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
MISTRAL_MARKER = "[TOOL_CALLS]"
PYTHON_TAG = "<|python_tag|>"
MARKERS: tuple[str, ...] = (HERMES_OPEN, MISTRAL_MARKER, PYTHON_TAG)
"""The text that starts a tool call in some format."""

_HERMES_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_decoder = json.JSONDecoder()


@dataclass(slots=True)
class ParsedOutput:
    """A model's output split into the text outside its tool calls and the calls."""

    text: str
    tool_calls: list[ToolCallPart] = field(default_factory=list)
    format: ToolCallFormat | None = None


def parse_tool_calls(text: str, tool_names: Collection[str] = ()) -> ParsedOutput:
    """Find the tool calls in ``text`` (see the module docstring for the formats).

    ``text`` of the result is the output without the calls, trailing white space removed; when
    there are no calls it is ``text`` unchanged.
    """
    if HERMES_OPEN in text:
        parsed = _parse_hermes(text)
        if parsed.tool_calls:
            return parsed
    if MISTRAL_MARKER in text:
        parsed = _parse_mistral(text)
        if parsed.tool_calls:
            return parsed
    return _parse_llama3(text, tool_names)


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _call_from_object(data: Any) -> ToolCallPart | None:
    """A call from ``{"name", "arguments" | "parameters", "id"?}`` (OpenAI's nested ``function`` too)."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("function"), dict):  # {"type": "function", "function": {...}}
        data = {**data["function"], "id": data.get("id")}
    name = data.get("name")
    if not isinstance(name, str) or not name:
        return None
    raw = data.get("arguments", data.get("parameters"))
    call_id = data.get("id")
    return ToolCallPart(
        id=str(call_id) if call_id else _call_id(), name=name, arguments=parse_tool_arguments(raw, name)
    )


def _outside(segments: list[str]) -> str:
    return "".join(segments).rstrip()


def _parse_hermes(text: str) -> ParsedOutput:
    calls: list[ToolCallPart] = []
    segments: list[str] = []
    position = 0
    for match in _HERMES_BLOCK.finditer(text):
        call = _call_from_object(_loads(match.group(1)))
        if call is None:
            continue  # not a parsable call: it stays in the text
        segments.append(text[position : match.start()])
        position = match.end()
        calls.append(call)
    segments.append(text[position:])
    if not calls:
        return ParsedOutput(text)
    return ParsedOutput(_outside(segments), calls, "hermes")


def _parse_mistral(text: str) -> ParsedOutput:
    head, _, rest = text.partition(MISTRAL_MARKER)
    calls: list[ToolCallPart] = []
    tail = ""
    for chunk in rest.split(MISTRAL_MARKER):
        body = chunk.strip()
        if body.startswith("["):  # v3: a JSON list of calls
            try:
                value, end = _decoder.raw_decode(body)
            except ValueError:
                return ParsedOutput(text)
            items = value if isinstance(value, list) else [value]
            found = [c for c in (_call_from_object(item) for item in items) if c is not None]
            if len(found) != len(items):
                return ParsedOutput(text)
            calls.extend(found)
            tail += body[end:]
            continue
        call, remainder = _mistral_named_call(body)
        if call is None:
            return ParsedOutput(text)
        calls.append(call)
        tail += remainder
    if not calls:
        return ParsedOutput(text)
    return ParsedOutput(_outside([head, tail]), calls, "mistral")


def _mistral_named_call(body: str) -> tuple[ToolCallPart | None, str]:
    """``name[ARGS]{...}`` or ``name[CALL_ID]id[ARGS]{...}``, and what follows it."""
    name, sep, rest = body.partition("[ARGS]")
    if not sep:
        return None, body
    call_id: str | None = None
    if "[CALL_ID]" in name:
        name, _, call_id = name.partition("[CALL_ID]")
    name = name.strip()
    if not name:
        return None, body
    try:
        arguments, end = _decoder.raw_decode(rest.lstrip())
    except ValueError:
        return None, body
    leftover = rest.lstrip()[end:]
    return ToolCallPart(
        id=(call_id or "").strip() or _call_id(), name=name, arguments=parse_tool_arguments(arguments, name)
    ), leftover


def _parse_llama3(text: str, tool_names: Collection[str]) -> ParsedOutput:
    body = text.strip()
    tagged = body.startswith(PYTHON_TAG)
    if tagged:
        body = body[len(PYTHON_TAG) :].strip()
    if not body.startswith(("{", "[")):
        return ParsedOutput(text)
    items = list(_json_values(body))
    if not items:
        return ParsedOutput(text)
    objects: list[Any] = []
    for item in items:
        objects.extend(item if isinstance(item, list) else [item])
    calls: list[ToolCallPart] = []
    for obj in objects:
        if not isinstance(obj, dict) or not ({"parameters", "arguments"} & obj.keys() or "function" in obj):
            return ParsedOutput(text)
        call = _call_from_object(obj)
        if call is None:
            return ParsedOutput(text)
        if not tagged and tool_names and call.name not in tool_names:
            return ParsedOutput(text)  # JSON that names no offered tool is an answer, not a call
        calls.append(call)
    if not tagged and not tool_names:
        return ParsedOutput(text)
    return ParsedOutput("", calls, "llama3")


def _json_values(body: str) -> Iterator[Any]:
    """The JSON values of ``body``, separated by white space or ``;``; nothing if anything else is there."""
    values: list[Any] = []
    position = 0
    while position < len(body):
        try:
            value, end = _decoder.raw_decode(body, position)
        except ValueError:
            return iter(())
        values.append(value)
        position = end
        while position < len(body) and (body[position].isspace() or body[position] == ";"):
            position += 1
    return iter(values)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class ToolCallStreamFilter:
    """Splits streaming text into what can be shown now and what may belong to a tool call.

    Text is released as it arrives, except a tail that could begin a marker (``<tool_call>``...),
    trailing white space (the parsed text ends without it), and, when ``json_calls`` is set,
    everything once the output starts with JSON (a Llama 3 call has no marker). Once a marker is
    seen, the rest is held: the caller parses the whole output at the end, and what it releases then
    is the parsed text minus :attr:`emitted`.
    """

    __slots__ = ("_holding", "_json_calls", "_pending", "emitted")

    def __init__(self, *, json_calls: bool = True) -> None:
        self._json_calls = json_calls
        self._pending = ""
        self._holding = False
        self.emitted = ""

    def feed(self, text: str) -> str:
        """The part of what has arrived so far that is certainly text and not yet released."""
        if self._holding:
            self._pending += text
            return ""
        buffer = self._pending + text
        if self._json_calls and not self.emitted and buffer.lstrip().startswith(("{", "[")):
            self._holding, self._pending = True, buffer
            return ""
        marker_at = min((i for i in (buffer.find(m) for m in MARKERS) if i != -1), default=-1)
        if marker_at != -1:
            release = buffer[:marker_at].rstrip()
            self._holding, self._pending = True, buffer[len(release) :]
            return self._release(release)
        cut = len(buffer) - held_back(buffer, MARKERS)
        release = buffer[:cut].rstrip()
        self._pending = buffer[len(release) :]
        return self._release(release)

    def _release(self, text: str) -> str:
        self.emitted += text
        return text

