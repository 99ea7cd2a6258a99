"""Anthropic Messages API wire format: neutral request → wire body, wire message → neutral response.

The two mapping directions of :class:`~agentadapter.llm.backends.anthropic.AnthropicBackend` live here
so the backend module keeps only HTTP and streaming. Neutral → wire: system messages are hoisted into
the top-level ``system``; tool results become ``user`` messages of ``tool_result`` blocks; consecutive
same-role turns are merged (the API requires strict user/assistant alternation); reasoning is
replayed as ``thinking`` / ``redacted_thinking`` only when Anthropic produced it (under any backend
name: reasoning parts name the vendor, :data:`REASONING_PROVIDER`, so a route over two Anthropic
accounts keeps its signed thinking); structured output becomes a forced tool whose input is the
answer. A history the API would refuse with thinking on (the current tool-use turn began without a
signed thinking block: another provider answered it, or its thinking was cut short) is sent with
thinking off for that request, as the API's rule of one thinking setting per assistant turn asks.
Wire → neutral: content blocks become parts, stop reasons and usage are normalized (Anthropic
reports cache reads and writes outside ``input_tokens``; :func:`usage_from_wire` adds them back,
per DESIGN.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, assert_never

from agentadapter.llm.backends.base import estimate_tokens
from agentadapter.llm.catalog import Capabilities
from agentadapter.llm.errors import CapabilityError, InvalidRequestError
from agentadapter.llm.messages import (
    FilePart,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    Response,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` for a model the catalog does not know (the API requires the field)."""
KNOWN_MODEL_MAX_TOKENS_CAP = 8192
"""Upper bound on the default ``max_tokens`` of a known model: Anthropic reserves output-token rate
limit from ``max_tokens`` up front, and a very long non-streaming call risks idle timeouts. Pass
``max_tokens=`` explicitly for longer answers."""

CACHE_MIN_TOKENS = 1024
"""Below this (the smallest cacheable prefix) cache breakpoints cost a write and never pay back."""

MIN_THINKING_BUDGET = 1024
"""The smallest ``budget_tokens`` the API accepts."""

THINKING_BUDGETS: dict[str, int | None] = {
    "none": None,
    "minimal": MIN_THINKING_BUDGET,
    "low": MIN_THINKING_BUDGET,
    "medium": 4096,
    "high": 16384,
}
"""``reasoning_effort`` → extended-thinking ``budget_tokens`` (None: thinking off)."""

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # A server tool loop paused; the caller may resume by sending the turn back. The raw reason
    # stays in provider_details so that can be told apart from a normal stop.
    "pause_turn": "stop",
}

WIRE_ROLES: dict[Role, str] = {"user": "user", "assistant": "assistant", "tool": "user"}
"""Neutral role → Anthropic role. ``system`` has no entry: it is hoisted to the top-level field."""

TOOL_CHOICES: dict[str, str] = {"auto": "auto", "none": "none", "required": "any"}
"""Neutral ``tool_choice`` → Anthropic ``tool_choice.type``; any other value names a tool."""

COUNT_TOKENS_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
"""The fields ``/v1/messages/count_tokens`` accepts; it rejects generation settings such as
``max_tokens`` or ``temperature``."""

REASONING_PROVIDER = "anthropic"
"""The ``provider`` of every reasoning part Anthropic produced, whatever the backend is named.

Thinking signatures are Anthropic's, not one account's: two named backends of type ``anthropic``
(a failover route over two accounts) must replay each other's thinking, so reasoning parts name the
vendor rather than the backend instance."""

_LEADING_THINKING = frozenset({"thinking", "redacted_thinking"})


@dataclass(slots=True)
class WireRequest:
    """A request body and what is needed to read the answer back."""

    body: dict[str, Any]
    output_tool: str | None = None
    """Name of the synthetic tool carrying structured output, whose call becomes the answer text."""
    output_wrapped: bool = False
    """The output schema is not an object, so the tool input wraps it as ``{"value": ...}``."""


# ------------------------------------------------------------------------------- neutral → wire


def build_request(
    request: Request, *, provider: str, capabilities: Capabilities, stream: bool
) -> WireRequest:
    """The ``/v1/messages`` body for ``request``."""
    system = system_blocks(request.messages)
    messages = wire_messages(request.messages, provider)
    if not messages:
        raise InvalidRequestError(
            f"the request to {provider} (model {request.model}) has no user or assistant message; "
            "Anthropic needs at least one user message besides the system prompt"
        )

    thinking, max_tokens = thinking_and_max_tokens(request, capabilities)
    thinking_on = thinking is not None and thinking.get("type") in ("enabled", "adaptive")
    if thinking_on and turn_began_without_thinking(messages):
        # One thinking setting per assistant turn: this tool-use turn started without a signed
        # thinking block (a foreign or cut-short history), and the API refuses to switch thinking
        # on in the middle of it. Thinking resumes with the next turn.
        thinking, thinking_on = None, False
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens, "messages": messages}

    tools = [tool_to_wire(tool.name, tool.description, tool.parameters) for tool in request.tools]
    output_tool: str | None = None
    output_wrapped = False
    answer = output_as_tool(request)
    if answer is not None:
        output_tool, input_schema, output_wrapped = answer
        tools.append(tool_to_wire(output_tool, OUTPUT_TOOL_DESCRIPTION, input_schema))
        if thinking_on:
            # Extended thinking refuses forced tool use, so ask for the call in words instead.
            instruction = f"Give your final answer by calling the {output_tool} tool."
            system.append({"type": "text", "text": instruction})
    if tools:
        body["tools"] = tools
        choice = tool_choice(request, output_tool, thinking_on=thinking_on)
        if choice is not None:
            body["tool_choice"] = choice

    if system:
        body["system"] = system
    if thinking is not None:
        body["thinking"] = thinking
    add_sampling(body, request, thinking_on=thinking_on)
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    user_id = request.metadata.get("user_id")
    if user_id:
        body["metadata"] = {"user_id": user_id}
    if stream:
        body["stream"] = True

    if request.cache.prompt_cache == "auto" and estimate_tokens(request) >= CACHE_MIN_TOKENS:
        apply_cache_control(body)
    if "system" in body and not any("cache_control" in block for block in body["system"]):
        # The plain string form is the common one; blocks are only needed to carry cache_control.
        body["system"] = "\n\n".join(block["text"] for block in body["system"])

    # extra_body goes last, except "thinking": it was read above and may have been adjusted there.
    body.update({key: value for key, value in request.extra_body.items() if key != "thinking"})
    return WireRequest(body, output_tool, output_wrapped)


def turn_began_without_thinking(messages: list[dict[str, Any]]) -> bool:
    """Whether the conversation ends inside a tool-use turn that did not begin with thinking.

    A tool-use loop is one assistant turn: it runs from the first assistant message after the last
    plain user message, through tool results, to the end. With thinking on, the API requires that
    turn's first assistant message to start with a ``thinking`` or ``redacted_thinking`` block
    (later messages of the turn need none unless thinking is interleaved).
    """
    first_of_turn: dict[str, Any] | None = None
    for position in range(len(messages) - 1, 0, -2):
        user, assistant = messages[position], messages[position - 1]
        if user["role"] != "user" or not any(b["type"] == "tool_result" for b in user["content"]):
            break
        if assistant["role"] != "assistant" or not any(b["type"] == "tool_use" for b in assistant["content"]):
            break
        first_of_turn = assistant
    return first_of_turn is not None and first_of_turn["content"][0]["type"] not in _LEADING_THINKING


def count_tokens_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a messages body that ``/v1/messages/count_tokens`` accepts."""
    return {key: value for key, value in body.items() if key in COUNT_TOKENS_FIELDS}


def default_max_tokens(capabilities: Capabilities) -> int:
    if not capabilities.known:
        return DEFAULT_MAX_TOKENS
    return min(capabilities.max_output_tokens, KNOWN_MODEL_MAX_TOKENS_CAP)


def thinking_and_max_tokens(request: Request, capabilities: Capabilities) -> tuple[dict[str, Any] | None, int]:
    """The ``thinking`` setting and a ``max_tokens`` that leaves the answer room above its budget."""
    answer_tokens = request.max_tokens or default_max_tokens(capabilities)
    max_tokens = answer_tokens
    thinking = thinking_config(request)
    if thinking is None or thinking.get("type") != "enabled":
        return thinking, max_tokens
    budget = int(thinking.get("budget_tokens") or MIN_THINKING_BUDGET)
    if max_tokens <= budget:
        # budget_tokens must stay below max_tokens: the answer gets its own room on top.
        max_tokens = budget + answer_tokens
        if capabilities.known and max_tokens > capabilities.max_output_tokens:
            # Past the model's output limit: keep the limit, and a little room for the answer.
            max_tokens = capabilities.max_output_tokens
            budget = max(MIN_THINKING_BUDGET, min(budget, max_tokens - MIN_THINKING_BUDGET))
    return {**thinking, "budget_tokens": budget}, max_tokens


def add_sampling(body: dict[str, Any], request: Request, *, thinking_on: bool) -> None:
    if not thinking_on:
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
    elif request.top_p is not None and request.top_p >= 0.95:
        # With thinking on, the API accepts only temperature 1 and top_p >= 0.95: other values are
        # left out rather than failing the call (as OpenAI reasoning models drop temperature).
        body["top_p"] = request.top_p


def thinking_config(request: Request) -> dict[str, Any] | None:
    """Extended thinking from ``extra_body["thinking"]`` (as given) or ``reasoning_effort``."""
    explicit = request.extra_body.get("thinking")
    if isinstance(explicit, Mapping):
        return dict(explicit)
    if request.reasoning_effort is None:
        return None
    effort = request.reasoning_effort.lower()
    if effort not in THINKING_BUDGETS:
        raise InvalidRequestError(
            f"reasoning_effort={request.reasoning_effort!r} is not understood for Anthropic; "
            f"use one of {', '.join(THINKING_BUDGETS)}, or pass extra_body={{'thinking': {{...}}}}"
        )
    budget = THINKING_BUDGETS[effort]
    return None if budget is None else {"type": "enabled", "budget_tokens": budget}


def tool_to_wire(name: str, description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "input_schema": dict(schema)}
    if description:
        tool["description"] = description
    return tool


def tool_choice(request: Request, output_tool: str | None, *, thinking_on: bool) -> dict[str, Any] | None:
    """The wire ``tool_choice``, or None to leave the API's default (auto)."""
    choice: dict[str, Any] | None
    requested = request.tool_choice
    if output_tool is not None and (requested is None or requested in TOOL_CHOICES):
        if thinking_on:
            choice = {"type": "auto"}
        elif request.tools:
            # The model may still call the caller's tools first; it must end with some tool call.
            choice = {"type": "any"}
        else:
            choice = {"type": "tool", "name": output_tool}
    elif requested is None:
        choice = None
    elif requested in TOOL_CHOICES:
        choice = {"type": TOOL_CHOICES[requested]}
    else:
        if not any(tool.name == requested for tool in request.tools):
            raise InvalidRequestError(
                f"tool_choice={requested!r} names no tool of this request; use auto, none, required, "
                f"or one of: {', '.join(t.name for t in request.tools) or '(no tools given)'}"
            )
        choice = {"type": "tool", "name": requested}
    if request.parallel_tool_calls is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def system_blocks(messages: list[Message]) -> list[dict[str, Any]]:
    """Every system message's text as ``system`` blocks (Anthropic has no system role in turns)."""
    blocks: list[dict[str, Any]] = []
    for message in messages:
        if message.role != "system":
            continue
        for part in message.parts:
            if not isinstance(part, TextPart):
                raise InvalidRequestError(
                    f"a system message may only hold text for Anthropic, not a {part.kind} part; "
                    "put images and files in a user message"
                )
            if part.text:
                blocks.append({"type": "text", "text": part.text})
    return blocks


def wire_messages(messages: list[Message], provider: str) -> list[dict[str, Any]]:
    """Conversation turns in Anthropic's shape, merged so that user and assistant alternate."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = WIRE_ROLES[message.role]
        blocks = (part_to_block(part, message.role, provider) for part in message.parts)
        content = [block for block in blocks if block is not None]
        if not content:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(content)
        else:
            merged.append({"role": role, "content": content})
    for wire in merged:
        if wire["role"] == "user":
            # The API wants a turn's tool results before anything else in it.
            content = wire["content"]
            wire["content"] = [b for b in content if b["type"] == "tool_result"] + [
                b for b in content if b["type"] != "tool_result"
            ]
    return merged


def part_to_block(part: Part, role: Role, provider: str) -> dict[str, Any] | None:
    """One neutral part as a content block; None for a part deliberately not sent."""
    if isinstance(part, TextPart):
        # The API rejects empty text blocks; an empty text part carries nothing.
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ImagePart):
        if part.data is not None:
            source: dict[str, Any] = {"type": "base64", "media_type": part.media_type, "data": part.base64}
        else:
            source = {"type": "url", "url": part.url}
        return {"type": "image", "source": source}
    if isinstance(part, FilePart):
        return document_block(part)
    if isinstance(part, ToolCallPart):
        if role != "assistant":
            raise InvalidRequestError(
                f"a tool call (id {part.id!r}) can only appear in an assistant message, "
                f"not in a {role} message"
            )
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
    if isinstance(part, ToolResultPart):
        if role == "assistant":
            raise InvalidRequestError(
                f"a tool result (call id {part.call_id!r}) belongs in a tool or user message, "
                "not in an assistant message"
            )
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id, "content": part.content}
        if part.is_error:
            block["is_error"] = True
        return block
    if isinstance(part, ReasoningPart):
        if role != "assistant":
            raise InvalidRequestError(
                f"a reasoning part can only appear in an assistant message, not in a {role} message"
            )
        if part.provider not in (REASONING_PROVIDER, provider):
            # By design (DESIGN.md): another vendor's reasoning cannot be verified here. (The
            # backend's own name is still accepted for histories stored before parts named the vendor.)
            return None
        if part.redacted_data is not None:
            return {"type": "redacted_thinking", "data": part.redacted_data}
        if not part.signature:
            # Anthropic rejects unsigned thinking (e.g. from a stream cut short); it cannot be replayed.
            return None
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    assert_never(part)


def document_block(part: FilePart) -> dict[str, Any]:
    """PDFs (inline or by URL) and plain-text files, the documents the Messages API reads."""
    media_type = part.media_type or ("application/pdf" if part.url else None)
    source: dict[str, Any]
    if part.url is not None:
        source = {"type": "url", "url": part.url}
    elif media_type == "application/pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": part.base64}
    elif media_type is not None and media_type.startswith("text/"):
        assert part.data is not None
        source = {"type": "text", "media_type": "text/plain", "data": part.data.decode("utf-8", "replace")}
    else:
        named = f" ({part.filename})" if part.filename else ""
        raise CapabilityError(
            f"Anthropic reads PDF and plain-text documents, not {media_type or 'files of unknown type'}"
            f"{named}; convert the file, or give its media_type (e.g. 'application/pdf')"
        )
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def apply_cache_control(body: dict[str, Any]) -> None:
    """Mark cache breakpoints: the end of the system prompt, of the tools, and of the last user turn.

    Anthropic caches the prefix up to each marked block; these three cover the parts that repeat
    from one call to the next in an agent loop (three of the four breakpoints the API allows).
    """
    marker = {"type": "ephemeral"}
    if body.get("system"):
        body["system"][-1]["cache_control"] = dict(marker)
    if body.get("tools"):
        body["tools"][-1]["cache_control"] = dict(marker)
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            message["content"][-1]["cache_control"] = dict(marker)
            break


# ------------------------------------------------------------------------------- wire → neutral


def output_text(arguments: Mapping[str, Any], *, wrapped: bool = False) -> str:
    """The structured answer as text, serialized the same way for streamed and whole responses."""
    return json.dumps(arguments.get("value") if wrapped else arguments, ensure_ascii=False)


def usage_from_wire(raw: Mapping[str, Any] | None) -> Usage:
    """DESIGN.md's usage: cache reads and writes are part of ``input_tokens``."""
    if not raw:
        return Usage()
    fresh = int(raw.get("input_tokens") or 0)
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=fresh + cache_read + cache_write,
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def finish_reason(raw: str | None, *, has_tool_calls: bool) -> FinishReason:
    """Neutral finish reason; a ``tool_use`` stop whose only call was the output tool is a plain stop."""
    reason = FINISH_REASONS.get(raw or "end_turn", "stop")
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


def stop_details(raw_reason: str | None, stop_sequence: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"stop_reason": raw_reason}
    if stop_sequence is not None:
        details["stop_sequence"] = stop_sequence
    return details


def block_to_part(block: Mapping[str, Any], provider: str, wire: WireRequest) -> Part | None:
    """One response content block as a part; None for a block type this model has no part for."""
    kind = block.get("type")
    if kind == "text":
        return TextPart(str(block.get("text", "")))
    if kind == "tool_use":
        arguments = dict(block.get("input") or {})
        if wire.output_tool is not None and block.get("name") == wire.output_tool:
            return TextPart(output_text(arguments, wrapped=wire.output_wrapped))
        return ToolCallPart(id=str(block["id"]), name=str(block["name"]), arguments=arguments)
    if kind == "thinking":
        return ReasoningPart(
            str(block.get("thinking", "")), signature=block.get("signature") or None, provider=REASONING_PROVIDER
        )
    if kind == "redacted_thinking":
        return ReasoningPart(redacted_data=str(block.get("data", "")), provider=REASONING_PROVIDER)
    return None


def parse_response(body: Mapping[str, Any], *, provider: str, model: str, wire: WireRequest) -> Response:
    """A ``/v1/messages`` answer as a neutral :class:`Response`."""
    parts: list[Part] = []
    unsupported: list[Any] = []
    for block in body.get("content") or []:
        part = block_to_part(block, provider, wire)
        if part is None:
            unsupported.append(block)  # server-tool blocks and the like: kept, not dropped
        else:
            parts.append(part)
    raw_reason = body.get("stop_reason")
    has_tool_calls = any(isinstance(p, ToolCallPart) for p in parts)
    details = stop_details(raw_reason, body.get("stop_sequence"))
    if unsupported:
        details["unsupported_blocks"] = unsupported
    return Response(
        id=str(body.get("id", "")),
        provider=provider,
        model=str(body.get("model") or model),
        parts=parts,
        finish_reason=finish_reason(raw_reason, has_tool_calls=has_tool_calls),
        usage=usage_from_wire(body.get("usage")),
        provider_details=details,
    )


@dataclass(slots=True)
class OpenBlock:
    """A streamed content block between its start and its stop (Anthropic's ``content_block_*`` events,
    Bedrock's ``contentBlock*``): what kind it is and the tool call arguments gathered so far."""

    kind: str
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    is_output: bool = False


OUTPUT_TOOL_DESCRIPTION = "Give your final answer by calling this tool; its input is the answer."


def output_as_tool(request: Request) -> tuple[str, dict[str, Any], bool] | None:
    """The request's structured output as a tool the model is made to call (Anthropic's Messages and
    Bedrock's Converse have no schema-constrained answer of their own): its name, its input schema and
    whether the answer was wrapped in a ``value`` property; None without an output schema."""
    if request.output is None:
        return None
    name = request.output.name
    if any(tool.name == name for tool in request.tools):
        raise InvalidRequestError(
            f"the output schema is named {name!r} like one of the tools; rename the schema "
            "(its title or pydantic class name) or the tool"
        )
    schema = request.output.json_schema
    if schema.get("type") == "object":
        return name, schema, False
    # A tool's input must be an object: carry any other answer shape in one property.
    return name, {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True
