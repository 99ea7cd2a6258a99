"""Amazon Bedrock's Converse API wire format: neutral request → Converse body, Converse answer → neutral.

The two mapping directions of :class:`~agentadapter.llm.backends.bedrock.BedrockBackend`, which keeps
only signing, HTTP and the event stream. Neutral → wire (:func:`build_request`): system messages
become the top-level ``system`` blocks; tool results become ``toolResult`` blocks of a ``user`` turn;
consecutive turns of one role are merged (Converse wants them to alternate); images and documents go
inline as base64 bytes (or as ``s3://`` locations: Bedrock fetches no web URL); reasoning is replayed
as ``reasoningContent`` only when Bedrock produced it (:data:`REASONING_PROVIDER`); structured output
is a forced tool whose input is the answer, as for Anthropic. ``reasoning_effort`` becomes the model
family's own field in ``additionalModelRequestFields`` (:func:`reasoning_fields`); ``extra_body`` is
merged over the body last, so any Converse field (``guardrailConfig``, ``performanceConfig``...) can
be sent. Wire → neutral (:func:`parse_response`): content blocks become parts, stop reasons and usage
are normalized (Converse reports cache reads and writes outside ``inputTokens``: :func:`usage_from_wire`
adds them back, per DESIGN.md).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from agentadapter.llm.backends.anthropic_mapping import OUTPUT_TOOL_DESCRIPTION, output_as_tool
from agentadapter.llm.backends.base import estimate_tokens
from agentadapter.llm.catalog import Capabilities
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import (
    FilePart,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    Response,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

__all__ = [
    "FINISH_REASONS",
    "REASONING_PROVIDER",
    "WIRE_ROLES",
    "WireRequest",
    "build_request",
    "finish_reason",
    "parse_response",
    "usage_from_wire",
]

REASONING_PROVIDER = "bedrock"
"""The ``provider`` of reasoning parts Bedrock produced: its signatures verify on any Bedrock account."""

WIRE_ROLES: dict[str, str] = {"user": "user", "assistant": "assistant", "tool": "user"}
"""Neutral role → Converse role. ``system`` has no entry: it goes to the top-level ``system``."""

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
"""Converse ``stopReason`` → neutral finish reason (an unknown one is ``stop``, kept raw in details)."""

TOOL_CHOICES: dict[str, dict[str, Any]] = {"auto": {"auto": {}}, "required": {"any": {}}, "any": {"any": {}}}
"""Neutral ``tool_choice`` → Converse ``toolChoice``; a tool's name becomes ``{"tool": {"name": ...}}``."""

IMAGE_FORMATS: dict[str, str] = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                                 "image/gif": "gif", "image/webp": "webp"}

DOCUMENT_FORMATS: dict[str, str] = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}

THINKING_BUDGETS: dict[str, int | None] = {"none": None, "minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
"""``reasoning_effort`` → Claude's ``thinking.budget_tokens`` on Bedrock (None: thinking off)."""

CACHE_MIN_TOKENS = 1024
"""Below this (the smallest cacheable prefix) a cache point costs a write and never pays back."""

_DOCUMENT_NAME = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")
_GEO_PREFIX = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")


@dataclass(slots=True)
class WireRequest:
    """A Converse body and what is needed to read the answer back."""

    body: dict[str, Any]
    output_tool: str | None = None
    """The synthetic tool carrying structured output, whose call becomes the answer text."""
    output_wrapped: bool = False
    """The output schema is not an object, so the tool input wraps it as ``{"value": ...}``."""


def model_family(model: str) -> str:
    """The vendor part of a Bedrock model id: ``us.anthropic.claude-...`` → ``anthropic``; an ARN → ``""``."""
    if model.startswith("arn:"):
        # An inference-profile or provisioned-model ARN: the family shows only in its last segment.
        model = model.rsplit("/", 1)[-1]
    return _GEO_PREFIX.sub("", model).split(".", 1)[0].lower()


# ------------------------------------------------------------------------------- neutral → wire


def build_request(request: Request, *, capabilities: Capabilities, provider: str) -> WireRequest:
    """The Converse / ConverseStream body for ``request`` (the model id goes in the URL, not here)."""
    system = _system_blocks(request.messages)
    messages = wire_messages(request.messages)
    if not messages:
        raise InvalidRequestError(
            f"the request to {provider} (model {request.model}) has no user or assistant message; "
            "Converse needs at least one user message besides the system prompt"
        )
    body: dict[str, Any] = {"messages": messages}
    additional = reasoning_fields(request, provider)
    thinking_on = "thinking" in additional

    tools = [_tool_spec(tool.name, tool.description, tool.parameters) for tool in request.tools]
    output_tool: str | None = None
    output_wrapped = False
    answer = output_as_tool(request)
    if answer is not None:
        output_tool, schema, output_wrapped = answer
        tools.append(_tool_spec(output_tool, OUTPUT_TOOL_DESCRIPTION, schema))
        if thinking_on:
            # Claude refuses forced tool use while thinking: ask for the call in words instead.
            system.append({"text": f"Give your final answer by calling the {output_tool} tool."})
    tool_config = _tool_config(request, tools, output_tool, messages, thinking_on=thinking_on)
    if tool_config is not None:
        body["toolConfig"] = tool_config

    if system:
        if request.cache.prompt_cache == "auto" and capabilities.prompt_caching \
                and estimate_tokens(request) >= CACHE_MIN_TOKENS:
            system.append({"cachePoint": {"type": "default"}})  # the prefix up to here is cached
        body["system"] = system
    inference = _inference_config(request, capabilities, additional)
    if inference:
        body["inferenceConfig"] = inference
    if additional:
        body["additionalModelRequestFields"] = additional
    if request.metadata:
        body["requestMetadata"] = dict(request.metadata)  # Bedrock keeps it for invocation logs
    for key, value in request.extra_body.items():
        current = body.get(key)
        body[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, Mapping) else value
    return WireRequest(body, output_tool, output_wrapped)


def _system_blocks(messages: list[Message]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role != "system":
            continue
        for part in message.parts:
            if not isinstance(part, TextPart):
                raise InvalidRequestError(
                    f"message {index}: Bedrock's system prompt takes text only; move the {part.kind} part "
                    "into a user message"
                )
            if part.text:
                blocks.append({"text": part.text})
    return blocks


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Converse ``messages``: alternating user/assistant turns of content blocks."""
    wire: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        role = WIRE_ROLES[message.role]
        blocks = [block for part in message.parts if (block := part_to_wire(part, index)) is not None]
        if not blocks:
            continue
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def part_to_wire(part: Part, index: int) -> dict[str, Any] | None:
    """One neutral part as a Converse content block; None for a part this provider must not see."""
    if isinstance(part, TextPart):
        return {"text": part.text} if part.text else None  # Converse rejects empty text blocks
    if isinstance(part, ImagePart):
        return {"image": {"format": _image_format(part, index), "source": _source(part.url, part.data, index)}}
    if isinstance(part, FilePart):
        return {"document": {"format": _document_format(part, index), "name": _document_name(part, index),
                             "source": _source(part.url, part.data, index)}}
    if isinstance(part, ToolCallPart):
        return {"toolUse": {"toolUseId": part.id, "name": part.name, "input": part.arguments}}
    if isinstance(part, ToolResultPart):
        result: dict[str, Any] = {"toolUseId": part.call_id, "content": [{"text": part.content or " "}]}
        result["status"] = "error" if part.is_error else "success"
        return {"toolResult": result}
    if isinstance(part, ReasoningPart):
        if part.provider != REASONING_PROVIDER:
            return None  # another provider's thinking: Bedrock cannot verify it (DESIGN.md)
        if part.redacted_data is not None:
            return {"reasoningContent": {"redactedContent": part.redacted_data}}
        text: dict[str, Any] = {"text": part.text}
        if part.signature:
            text["signature"] = part.signature
        return {"reasoningContent": {"reasoningText": text}}
    assert_never(part)


def _image_format(part: ImagePart, index: int) -> str:
    mime = (part.media_type or (mimetypes.guess_type(part.url)[0] if part.url else None) or "").lower()
    found = IMAGE_FORMATS.get(mime)
    if found is None:
        raise InvalidRequestError(
            f"message {index}: Bedrock takes png, jpeg, gif or webp images, not {mime or 'an unknown type'}; "
            "pass media_type= or convert the image"
        )
    return found


def _document_format(part: FilePart, index: int) -> str:
    mime = part.media_type or (mimetypes.guess_type(part.filename or part.url or "")[0])
    found = DOCUMENT_FORMATS.get((mime or "").lower())
    if found is None:
        raise InvalidRequestError(
            f"message {index}: Bedrock documents are {', '.join(sorted(set(DOCUMENT_FORMATS.values())))}; "
            f"this file is {mime or 'of an unknown type'} (pass media_type=)"
        )
    return found


def _document_name(part: FilePart, index: int) -> str:
    # Converse allows letters, digits, spaces, hyphens, parentheses and brackets in a document's name.
    stem = (part.filename or "").rsplit(".", 1)[0]
    name = " ".join(_DOCUMENT_NAME.sub(" ", stem).split())
    return name[:200] or f"document {index}"


def _source(url: str | None, data: bytes | None, index: int) -> dict[str, Any]:
    if data is not None:
        return {"bytes": base64.b64encode(data).decode("ascii")}
    assert url is not None
    if url.startswith("s3://"):
        return {"s3Location": {"uri": url}}
    raise InvalidRequestError(
        f"message {index}: Bedrock does not fetch web URLs ({url[:80]}); pass the bytes (data=...) or an s3:// URI"
    )


def _tool_spec(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": dict(parameters)}}
    if description:
        spec["description"] = description
    return {"toolSpec": spec}


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any("toolUse" in block or "toolResult" in block for m in messages for block in m["content"])


def _tool_config(
    request: Request, tools: list[dict[str, Any]], output_tool: str | None, messages: list[dict[str, Any]],
    *, thinking_on: bool,
) -> dict[str, Any] | None:
    choice = request.tool_choice
    if not tools:
        if choice not in (None, "auto", "none"):
            raise InvalidRequestError(f"tool_choice={choice!r} needs tools, and the request has none")
        return None
    if choice == "none" and output_tool is None:
        # Converse has no "none": leave the tools out, unless the history holds tool blocks, which
        # Bedrock accepts only beside a toolConfig (then the model may still call one).
        return {"tools": tools} if _has_tool_blocks(messages) else None
    config: dict[str, Any] = {"tools": tools}
    if output_tool is not None and not request.tools:
        if not thinking_on:
            config["toolChoice"] = {"tool": {"name": output_tool}}
        return config
    if choice is None or choice == "none":
        return config
    if choice in TOOL_CHOICES:
        if not (thinking_on and choice != "auto"):
            config["toolChoice"] = TOOL_CHOICES[choice]
        return config
    names = [tool.name for tool in request.tools]
    if choice not in names:
        raise InvalidRequestError(
            f"tool_choice={choice!r} is not one of the request's tools ({', '.join(names)}); use "
            "auto, none, required or a tool name"
        )
    if not thinking_on:
        config["toolChoice"] = {"tool": {"name": choice}}
    return config


def reasoning_fields(request: Request, provider: str) -> dict[str, Any]:
    """``additionalModelRequestFields`` for ``reasoning_effort``, in the model family's own shape."""
    effort = request.reasoning_effort
    if effort is None:
        return {}
    effort = effort.lower()
    family = model_family(request.model)
    if family == "anthropic":
        if effort not in THINKING_BUDGETS:
            raise InvalidRequestError(
                f"reasoning_effort={effort!r} is not known; use one of {', '.join(THINKING_BUDGETS)}"
            )
        budget = THINKING_BUDGETS[effort]
        return {} if budget is None else {"thinking": {"type": "enabled", "budget_tokens": budget}}
    if family == "amazon":  # Nova 2: reasoningConfig with a maximum effort
        if effort == "none":
            return {"reasoningConfig": {"type": "disabled"}}
        return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": _effort_level(effort)}}
    if family == "openai":  # gpt-oss takes OpenAI's own field
        return {"reasoning_effort": _effort_level(effort)}
    raise InvalidRequestError(
        f"{provider} knows no reasoning setting for {request.model!r}; set the model's own field through "
        "extra_body={'additionalModelRequestFields': {...}}, or leave reasoning_effort unset"
    )


def _effort_level(effort: str) -> str:
    levels = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
    if effort not in levels:
        raise InvalidRequestError(f"reasoning_effort={effort!r} is not known; use low, medium or high")
    return levels[effort]


def _inference_config(request: Request, capabilities: Capabilities, additional: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    thinking = additional.get("thinking")
    max_tokens = request.max_tokens
    if isinstance(thinking, dict):
        budget = int(thinking["budget_tokens"])
        answer = max_tokens or (min(capabilities.max_output_tokens, 8192) if capabilities.known else 4096)
        if (max_tokens or 0) <= budget:
            # budget_tokens must stay below maxTokens: the answer gets its own room on top.
            max_tokens = budget + answer
            if capabilities.known:
                max_tokens = min(max_tokens, capabilities.max_output_tokens)
    else:
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.top_p is not None:
            config["topP"] = request.top_p
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    return config


# ------------------------------------------------------------------------------- wire → neutral


def usage_from_wire(raw: Mapping[str, Any] | None) -> Usage:
    """DESIGN.md's usage: cache reads and writes are part of ``input_tokens``."""
    if not raw:
        return Usage()
    read = int(raw.get("cacheReadInputTokens") or 0)
    write = int(raw.get("cacheWriteInputTokens") or 0)
    return Usage(
        input_tokens=int(raw.get("inputTokens") or 0) + read + write,
        output_tokens=int(raw.get("outputTokens") or 0),
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


def finish_reason(raw: str | None, *, has_tool_calls: bool) -> FinishReason:
    """Neutral finish reason; a ``tool_use`` stop whose only call was the output tool is a plain stop."""
    reason = FINISH_REASONS.get(raw or "end_turn", "stop")
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


def output_text(arguments: Mapping[str, Any], *, wrapped: bool) -> str:
    return json.dumps(arguments.get("value") if wrapped else arguments, ensure_ascii=False)


def block_to_part(block: Mapping[str, Any], wire: WireRequest) -> Part | None:
    """One answer content block as a part; None for a block type with no neutral part."""
    if "text" in block:
        return TextPart(str(block["text"]))
    if "toolUse" in block:
        use = block["toolUse"]
        arguments = dict(use.get("input") or {})
        if wire.output_tool is not None and use.get("name") == wire.output_tool:
            return TextPart(output_text(arguments, wrapped=wire.output_wrapped))
        return ToolCallPart(id=str(use.get("toolUseId", "")), name=str(use.get("name", "")), arguments=arguments)
    if "reasoningContent" in block:
        content = block["reasoningContent"]
        if "redactedContent" in content:
            return ReasoningPart(redacted_data=str(content["redactedContent"]), provider=REASONING_PROVIDER)
        text = content.get("reasoningText") or {}
        return ReasoningPart(str(text.get("text", "")), signature=text.get("signature") or None,
                             provider=REASONING_PROVIDER)
    return None


def parse_response(body: Mapping[str, Any], *, provider: str, model: str, wire: WireRequest,
                   response_id: str) -> Response:
    """A Converse answer as a neutral :class:`Response`."""
    message = (body.get("output") or {}).get("message") or {}
    parts: list[Part] = []
    unsupported: list[Any] = []
    for block in message.get("content") or ():
        part = block_to_part(block, wire) if isinstance(block, Mapping) else None
        if part is None:
            unsupported.append(block)
        else:
            parts.append(part)
    raw_reason = body.get("stopReason")
    has_calls = any(isinstance(p, ToolCallPart) for p in parts)
    details = response_details(raw_reason, body.get("additionalModelResponseFields"), body.get("metrics"))
    if unsupported:
        details["unsupported_blocks"] = unsupported
    return Response(
        id=response_id, provider=provider, model=model, parts=parts,
        finish_reason=finish_reason(raw_reason, has_tool_calls=has_calls),
        usage=usage_from_wire(body.get("usage")), provider_details=details,
    )


def response_details(raw_reason: Any, additional: Any, metrics: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"stop_reason": raw_reason}
    if additional:
        details["additional_model_response_fields"] = additional
    if isinstance(metrics, Mapping) and "latencyMs" in metrics:
        details["bedrock_latency_ms"] = metrics["latencyMs"]
    return details

