"""Anthropic's Messages API as a client format: a ``/v1/messages`` body -> neutral request, the answer back.

The reverse of the Anthropic backend (:mod:`agentadapter.llm.backends.anthropic_mapping`, whose
finish-reason table this module inverts): here Anthropic is what the *client* speaks, and any backend
answers. :func:`parse_messages_body` reads ``system`` (a string or text blocks), the messages' content
blocks (``text``, ``image``, ``document``, ``tool_use``, ``tool_result``, ``thinking``,
``redacted_thinking``), ``tools`` (custom tools; server tools are refused), ``tool_choice``,
``thinking`` and ``output_config.effort`` (as a reasoning effort for every target; ``thinking``,
``service_tier`` and the top-level ``cache_control`` exactly as given when every target is
Anthropic), ``output_config.format`` (structured output), ``stop_sequences``, ``metadata.user_id``
(the usage's ``end_user``) and the sampling settings older clients send. Fields only Anthropic
defines (``top_k``, ``speed``, ``inference_geo``, ...) go to Anthropic targets and are refused or
dropped for others as the operator chose (:mod:`.params`). ``cache_control`` marks on blocks are
accepted and left to each backend's own prompt caching.
:func:`message_body` writes the ``message`` object, :class:`MessageStreamWriter` the event sequence
Anthropic streams (``message_start``, ``content_block_start`` / ``_delta`` / ``_stop``,
``message_delta``, ``message_stop``; ``error`` mid-stream) and :func:`error_payload` the error shape
``{"type": "error", "error": {"type", "message"}}``. Usage follows Anthropic's meaning:
``input_tokens`` excludes the cache reads and writes, which are reported beside it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentadapter.llm.backends.anthropic_mapping import FINISH_REASONS, REASONING_PROVIDER
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
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.schema_safety import UnsafeSchemaError, check_schema
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.gateway.params import ParamPlan, is_default
from agentadapter.server.gateway.requests import ClientValidatedOutput, bad_request, check_fields, required_model

__all__ = [
    "AnthropicCall", "MessageStreamWriter", "error_payload", "message_body", "parse_count_tokens_body",
    "parse_messages_body", "usage_to_wire",
]

_PASSED_TO_ANTHROPIC = ("top_k", "speed", "inference_geo", "container", "diagnostics", "user_profile_id")
"""Fields only Anthropic defines: sent to Anthropic targets; elsewhere refused or dropped (see :mod:`.params`)."""
_ANTHROPIC_AS_GIVEN = ("thinking", "service_tier", "cache_control")
"""Fields every target honours in its own way (a reasoning effort, capacity, prompt caching), sent as given
when every target is Anthropic."""
_ACCEPTED = frozenset({
    "model", "messages", "system", "max_tokens", "stop_sequences", "stream", "temperature", "top_p", "tools",
    "tool_choice", "thinking", "metadata", "service_tier", "cache_control", "output_config", "workspace_id",
    *_PASSED_TO_ANTHROPIC,
})
_COUNT_ACCEPTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
                             "cache_control"})
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})

# Neutral finish reason -> Anthropic's stop_reason (the inverse of the backend's table).
STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal",
    "error": "end_turn",
}
assert set(STOP_REASONS.values()) <= set(FINISH_REASONS)

# Anthropic's error types by status (what its SDK and tools read).
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
                429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


@dataclass(slots=True)
class AnthropicCall:
    """What one ``POST /v1/messages`` asks for."""

    model: str
    request: Request
    stream: bool
    as_given: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def apply(self, plan: ParamPlan) -> None:
        """The parameters the route allows; ``thinking`` and the like as given when every target is Anthropic."""
        for param, value in self.params.items():
            if plan.allows(param):
                self.request.extra_body[param] = value
        if self.request.reasoning_effort is not None and not plan.allows_reasoning(
                "thinking" if "thinking" in self.as_given else "output_config.effort"):
            self.request.reasoning_effort = None
        if plan.targets and all(kind == "anthropic" for _, kind in plan.targets):
            self.request.extra_body.update(self.as_given)


# ------------------------------------------------------------------------------------- requests


def parse_messages_body(body: Mapping[str, Any], tags: Mapping[str, str]) -> AnthropicCall:
    """Check a Messages body and build the neutral request; a 400 :class:`HTTPProblem` naming the field."""
    check_fields(body, _ACCEPTED, "this gateway's Messages API")
    model = required_model(body, "anthropic/claude-sonnet-4-5")
    messages = _conversation(body)
    settings: dict[str, Any] = {}
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise bad_request("max_tokens", "max_tokens must be a positive integer")
        settings["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad_request(key, f"{key} must be a number")
            settings[key] = float(value)
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise bad_request("stop_sequences", "stop_sequences must be a list of non-empty strings")
        settings["stop"] = stop or None
    thinking, effort = _thinking(body.get("thinking"))
    output, output_effort = _output_config(body.get("output_config"))
    if output_effort is not None or effort is not None:
        settings["reasoning_effort"] = output_effort or effort
    tools = _tools(body.get("tools"))
    tool_choice, parallel = _tool_choice(body.get("tool_choice"), tools)
    if parallel is not None:
        settings["parallel_tool_calls"] = parallel
    request_tags = dict(tags)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping) or set(metadata) - {"user_id"}:
            raise bad_request("metadata", "metadata takes only user_id (a string)")
        user = metadata.get("user_id")
        if user is not None:
            if not isinstance(user, str) or len(user) > 256:
                raise bad_request("metadata.user_id", "metadata.user_id must be a string of at most 256 characters")
            request_tags["end_user"] = user
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream", "stream must be true or false")
    request = Request(model="", messages=messages, tools=tools, tool_choice=tool_choice, tags=request_tags,
                      output=output, **settings)
    as_given = {key: body[key] for key in _ANTHROPIC_AS_GIVEN if body.get(key) is not None}
    if thinking is None:
        as_given.pop("thinking", None)
    return AnthropicCall(model, request, stream, as_given, _anthropic_params(body))


def _anthropic_params(body: Mapping[str, Any]) -> dict[str, Any]:
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise bad_request("top_k", "top_k must be a positive integer")
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise bad_request("service_tier", "service_tier must be auto or standard_only")
    speed = body.get("speed")
    if speed is not None and speed not in ("standard", "fast"):
        raise bad_request("speed", "speed must be standard or fast")
    for key in ("inference_geo", "user_profile_id", "workspace_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad_request(key, f"{key} must be a string")
    return {key: body[key] for key in _PASSED_TO_ANTHROPIC if not is_default(key, body.get(key))}


def _output_config(raw: Any) -> tuple[OutputSchema | None, str | None]:
    """Structured output (``format``) and ``effort`` of ``output_config``."""
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping) or set(raw) - {"effort", "format"}:
        raise bad_request("output_config", "output_config takes effort and format")
    effort = raw.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise bad_request("output_config.effort", f"effort must be one of {', '.join(sorted(_EFFORTS))}")
    spec = raw.get("format")
    if spec is None:
        return None, effort
    if not isinstance(spec, Mapping) or spec.get("type") != "json_schema" or not isinstance(spec.get("schema"),
                                                                                            Mapping):
        raise bad_request("output_config.format", "format is {type: json_schema, schema: {...}}")
    try:
        check_schema(spec["schema"], "output_config.format.schema")
    except UnsafeSchemaError as exc:
        raise HTTPProblem(422, str(exc), code="invalid_schema", param=exc.param) from exc
    return ClientValidatedOutput("output", dict(spec["schema"]), strict=True), effort


def parse_count_tokens_body(body: Mapping[str, Any]) -> tuple[str, Request]:
    """A ``/v1/messages/count_tokens`` body: the model and the request whose input is counted."""
    check_fields(body, _COUNT_ACCEPTED, "this gateway's count_tokens")
    model = required_model(body, "anthropic/claude-sonnet-4-5")
    tools = _tools(body.get("tools"))
    tool_choice, _ = _tool_choice(body.get("tool_choice"), tools)
    _, effort = _thinking(body.get("thinking"))
    output, output_effort = _output_config(body.get("output_config"))
    return model, Request(model="", messages=_conversation(body), tools=tools, tool_choice=tool_choice,
                          reasoning_effort=output_effort or effort, output=output)


def _conversation(body: Mapping[str, Any]) -> list[Message]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages", "messages must be a non-empty list of {role, content} objects",
                          "missing_required")
    messages = _system(body.get("system"))
    names: dict[str, str] = {}  # tool_use id -> tool name: a neutral tool result carries the name
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, Mapping) or item.get("role") not in ("user", "assistant"):
            raise bad_request(f"{where}.role", "each message is {role: user | assistant, content}")
        role = item["role"]
        content = item.get("content")
        if isinstance(content, str):
            parts: list[Part] = [TextPart(content)]
        elif isinstance(content, list):
            parts = [_block(block, role, f"{where}.content[{n}]", names) for n, block in enumerate(content)]
        else:
            raise bad_request(f"{where}.content", "content must be a string or a list of content blocks")
        messages.append(Message(role, parts))
    return messages


def _system(raw: Any) -> list[Message]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [Message.system(raw)] if raw else []
    if isinstance(raw, list) and all(isinstance(b, Mapping) and b.get("type") == "text"
                                     and isinstance(b.get("text"), str) for b in raw):
        return [Message("system", [TextPart(b["text"]) for b in raw])] if raw else []
    raise bad_request("system", "system must be a string or a list of {type: text, text} blocks")


def _block(block: Any, role: str, where: str, names: dict[str, str]) -> Part:
    if not isinstance(block, Mapping):
        raise bad_request(where, "a content block must be an object with a type")
    kind = block.get("type")
    try:
        if kind == "text" and isinstance(block.get("text"), str):
            return TextPart(block["text"])
        if kind == "image" and role == "user":
            return _image(block.get("source"), where)
        if kind == "document" and role == "user":
            return _document(block, where)
        if kind == "tool_use" and role == "assistant":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, Mapping):
                raise bad_request(where, "a tool_use block needs id, name and input (an object)")
            names[call_id] = name
            return ToolCallPart(id=call_id, name=name, arguments=dict(arguments))
        if kind == "tool_result" and role == "user":
            return _tool_result(block, where, names)
        if kind == "thinking" and role == "assistant":
            signature = block.get("signature")
            if signature is not None and not isinstance(signature, str):
                raise bad_request(f"{where}.signature", "a thinking block's signature is a string")
            return ReasoningPart(str(block.get("thinking", "")), signature=signature, provider=REASONING_PROVIDER)
        if kind == "redacted_thinking" and role == "assistant":
            return ReasoningPart(redacted_data=str(block.get("data", "")), provider=REASONING_PROVIDER)
    except InvalidRequestError as exc:
        raise bad_request(where, str(exc)) from exc
    raise bad_request(f"{where}.type", f"a {role} message cannot carry a {kind!r} block here; {role} blocks: "
                      + ("text, image, document, tool_result" if role == "user" else
                         "text, tool_use, thinking, redacted_thinking"), "unsupported_value")


def _image(source: Any, where: str) -> ImagePart:
    if isinstance(source, Mapping) and source.get("type") == "base64":
        return ImagePart(data=_decoded(source.get("data"), where), media_type=str(source.get("media_type") or ""))
    if isinstance(source, Mapping) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return ImagePart(url=source["url"])
    raise bad_request(f"{where}.source", "an image source is {type: base64, media_type, data} or {type: url, url}")


def _document(block: Mapping[str, Any], where: str) -> FilePart:
    source = block.get("source")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if isinstance(source, Mapping) and source.get("type") == "base64":
        return FilePart(data=_decoded(source.get("data"), where), media_type=str(source.get("media_type") or ""),
                        filename=title)
    if isinstance(source, Mapping) and source.get("type") == "text" and isinstance(source.get("data"), str):
        return FilePart(data=source["data"].encode(), media_type="text/plain", filename=title)
    if isinstance(source, Mapping) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return FilePart(url=source["url"], media_type="application/pdf", filename=title)
    raise bad_request(f"{where}.source", "a document source is {type: base64 | text | url, ...}")


def _decoded(data: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(data), validate=True)
    except ValueError as exc:
        raise bad_request(f"{where}.source.data", f"data is not valid base64 ({exc})") from exc


def _tool_result(block: Mapping[str, Any], where: str, names: dict[str, str]) -> ToolResultPart:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise bad_request(where, "a tool_result block needs tool_use_id")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for n, item in enumerate(content):
            if not isinstance(item, Mapping) or item.get("type") != "text":
                raise bad_request(f"{where}.content[{n}]", "tool results are passed on as text: only text blocks "
                                  "are accepted in a tool_result", "unsupported_value")
            texts.append(str(item.get("text", "")))
        content = "\n".join(texts)
    elif not isinstance(content, str):
        raise bad_request(f"{where}.content", "a tool_result's content is a string or text blocks")
    return ToolResultPart(call_id=call_id, name=names.get(call_id, ""), content=content,
                          is_error=bool(block.get("is_error", False)))


def _thinking(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the setting as given, the reasoning effort other targets get)."""
    if raw is None:
        return None, None
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    if kind == "disabled":
        return dict(raw), None
    if kind == "adaptive":
        return dict(raw), "medium"
    if kind == "enabled":
        budget = raw.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            raise bad_request("thinking.budget_tokens", "thinking.budget_tokens must be an integer of at least 1024")
        return dict(raw), "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    raise bad_request("thinking", "thinking is {type: enabled, budget_tokens}, {type: adaptive} or {type: disabled}")


def _tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("tools", "tools must be a list of {name, description, input_schema} objects")
    tools: list[Tool] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or item.get("type", "custom") != "custom" or not isinstance(
                item.get("input_schema"), Mapping):
            raise bad_request(f"tools[{index}]", "only custom tools ({name, description, input_schema}) are "
                                                 "supported: server tools run at Anthropic only", "unsupported_value")
        try:
            tools.append(coerce_tool({"type": "function", "function": {
                "name": item.get("name"), "description": item.get("description") or "",
                "parameters": item.get("input_schema"), "strict": item.get("strict")}}))
        except InvalidRequestError as exc:
            raise bad_request(f"tools[{index}]", str(exc)) from exc
    return tools


def _tool_choice(raw: Any, tools: list[Tool]) -> tuple[str | None, bool | None]:
    if raw is None:
        return None, None
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    parallel = None
    if isinstance(raw, Mapping) and raw.get("disable_parallel_tool_use") is not None:
        parallel = not bool(raw["disable_parallel_tool_use"])
    if kind in ("auto", "none"):
        return str(kind), parallel
    if kind == "any":
        if not tools:
            raise bad_request("tool_choice", "tool_choice any needs at least one tool in tools")
        return "required", parallel
    if kind == "tool" and isinstance(raw, Mapping):
        name = raw.get("name")
        if not any(tool.name == name for tool in tools):
            raise bad_request("tool_choice.name", f"tool_choice names {name!r}, which is not one of the tools")
        return str(name), parallel
    raise bad_request("tool_choice", "tool_choice is {type: auto | any | none} or {type: tool, name}")


# ------------------------------------------------------------------------------------- answers


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage: input tokens outside the cache, the cache reads and writes beside them."""
    uncached = max(0, usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens)
    return {"input_tokens": uncached, "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cached_input_tokens}


def _stop(response: Response) -> tuple[str, str | None]:
    details = response.provider_details or {}
    sequence = details.get("stop_sequence")
    if response.finish_reason == "stop" and isinstance(sequence, str):
        return "stop_sequence", sequence
    return STOP_REASONS[response.finish_reason], None


def _part_block(part: Part) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolCallPart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
    if isinstance(part, ReasoningPart):
        if part.redacted_data is not None and not part.text:
            return {"type": "redacted_thinking", "data": part.redacted_data}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    return None  # an answer carries no images, files or tool results


def message_id(response_id: str) -> str:
    return response_id if response_id.startswith("msg_") else f"msg_{response_id or uuid.uuid4().hex}"


def message_body(response: Response, model: str) -> dict[str, Any]:
    """A complete answer as Anthropic's ``message`` object; ``model`` the ``provider/model`` that answered."""
    stop_reason, stop_sequence = _stop(response)
    content = [block for block in map(_part_block, response.parts) if block is not None]
    return {"id": message_id(response.id), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": usage_to_wire(response.usage)}


def error_payload(problem: HTTPProblem) -> dict[str, Any]:
    """The error shape Anthropic's clients read (our ``code`` and ``param`` ride along)."""
    error: dict[str, Any] = {"type": _ERROR_TYPES.get(problem.status, "api_error"), "message": problem.message}
    if problem.code:
        error["code"] = problem.code
    if problem.param:
        error["param"] = problem.param
    if problem.details:
        error["details"] = problem.details
    return {"type": "error", "error": error}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps({"type": name, **payload}, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode()


class MessageStreamWriter:
    """Our stream events as Anthropic's: one content block per text, thinking or tool-use run, in order."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"msg_{uuid.uuid4().hex}"
        self._block = -1
        self._open: tuple[str, int] | None = None  # (kind, our event index) of the open block
        self._calls_seen: set[int] = set()

    def start(self) -> list[bytes]:
        return [_event("message_start", {"message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage_to_wire(Usage())}})]

    def _open_block(self, kind: str, index: int, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self._block += 1
        self._open = (kind, index)
        frames.append(_event("content_block_start", {"index": self._block, "content_block": block}))
        return frames

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_event("content_block_stop", {"index": self._block})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self._block, "delta": delta})

    def event(self, event: StreamEvent) -> list[bytes]:
        kind = event.kind
        frames: list[bytes] = []
        if kind == "text":
            if not event.text:
                return []
            if self._open != ("text", event.index):
                frames = self._open_block("text", event.index, {"type": "text", "text": ""})
            frames.append(self._delta({"type": "text_delta", "text": event.text}))
        elif kind == "reasoning":
            if self._open != ("thinking", event.index):
                frames = self._open_block("thinking", event.index,
                                          {"type": "thinking", "thinking": "", "signature": ""})
            if event.text:
                frames.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
            if event.signature:
                frames.append(self._delta({"type": "signature_delta", "signature": event.signature}))
        elif kind == "tool_call_delta":
            if self._open != ("tool_use", event.index):
                if event.index in self._calls_seen:
                    return []  # a late fragment of a call already closed
                self._calls_seen.add(event.index)
                frames = self._open_block("tool_use", event.index, {
                    "type": "tool_use", "id": event.call_id or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": event.name or "", "input": {}})
            if event.arguments_delta:
                frames.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments_delta}))
        elif kind == "tool_call":
            assert event.tool_call is not None
            if event.index in self._calls_seen:
                return self._close() if self._open == ("tool_use", event.index) else []
            self._calls_seen.add(event.index)
            call = event.tool_call
            frames = self._open_block("tool_use", event.index,
                                      {"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
            frames.append(self._delta({"type": "input_json_delta", "partial_json": json.dumps(call.arguments)}))
            frames.extend(self._close())
        return frames  # usage and finish: see finish()

    def finish(self, response: Response) -> list[bytes]:
        frames = self._close()
        stop_reason, stop_sequence = _stop(response)
        frames.append(_event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                               "usage": usage_to_wire(response.usage)}))
        frames.append(_event("message_stop", {}))
        return frames

    def error(self, problem: HTTPProblem) -> bytes:
        return _event("error", {"error": error_payload(problem)["error"]})
