"""OpenAI's Responses API as a client format: a ``/v1/responses`` body -> neutral request, the answer back.

The reverse of the Responses backend (:mod:`agentadapter.llm.backends.openai_responses`): here the
*client* speaks the Responses API and any backend answers. :func:`parse_responses_body` reads
``input`` (a string, or items: messages with ``input_text`` / ``input_image`` / ``input_file`` /
``output_text`` parts, ``function_call``, ``function_call_output`` and ``reasoning`` items),
``instructions`` (a system message, not carried to a follow-up, as OpenAI does), function ``tools``
and ``tool_choice``, ``reasoning.effort``, structured output in ``text.format`` (``json_schema``,
``json_object``), ``max_output_tokens`` and the sampling settings; OpenAI-only fields are passed on or
refused per target by :mod:`.params`. Built-in tools (web search, file search, code interpreter ...),
``background``, ``conversation`` and stored prompts run at OpenAI only and are refused.
:func:`response_object` writes the ``response`` object (output items ``message``, ``reasoning``,
``function_call``; ``status`` ``incomplete`` when the answer was cut), and
:class:`ResponseStreamWriter` its typed event stream (``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, ``response.output_text.delta`` ...
``response.function_call_arguments.delta`` / ``.done``, ``response.output_item.done``,
``response.completed``; ``error`` and ``response.failed`` for a failure mid-stream), each event
numbered by ``sequence_number``. Item ids are derived from the response id and the item's place, so
the streamed items and the final object agree.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentadapter.llm.backends.openai_chat_mapping import arguments_json
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import (
    CacheHints,
    FilePart,
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
    parse_tool_arguments,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.schema_safety import UnsafeSchemaError, check_schema
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.gateway.params import PASS_THROUGH, ParamPlan, is_default
from agentadapter.server.gateway.requests import ClientValidatedOutput, bad_request, check_fields, required_model

__all__ = ["ResponseStreamWriter", "ResponsesCall", "parse_responses_body", "response_object", "usage_to_wire"]

_PLANNED = ("service_tier", "safety_identifier", "prompt_cache_retention", "prompt_cache_options", "top_logprobs")
_ACCEPTED = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p",
    "max_output_tokens", "reasoning", "text", "metadata", "store", "previous_response_id", "user", "stream",
    "stream_options", "include", "truncation", "max_tool_calls", "prompt_cache_key", "background", *_PLANNED,
})
_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})


@dataclass(slots=True)
class ResponsesCall:
    """What one ``POST /v1/responses`` asks for."""

    model: str
    request: Request
    stream: bool
    store: bool
    previous_response_id: str | None
    instructions: str | None
    conversation: list[Message]
    """This request's input as messages (without the instructions): what a follow-up builds on."""
    echo: dict[str, Any] = field(default_factory=dict)
    """The request's settings as the response object repeats them."""
    params: dict[str, Any] = field(default_factory=dict)

    def apply(self, plan: ParamPlan) -> None:
        for param, value in self.params.items():
            # The response object has no place here for token log-probabilities.
            entry = "logprobs (not carried back)" if param == "top_logprobs" else None
            if plan.allows(param, entry) and param in PASS_THROUGH:
                self.request.extra_body[param] = value
        if self.request.reasoning_effort is not None and not plan.allows_reasoning("reasoning.effort"):
            self.request.reasoning_effort = None

    def continue_from(self, earlier: list[Message]) -> None:
        """Put a stored conversation (the previous response's input and output) before this input."""
        self.conversation = [*earlier, *self.conversation]
        system = [Message.system(self.instructions)] if self.instructions else []
        self.request.messages = [*system, *self.conversation]


# ------------------------------------------------------------------------------------- requests


def parse_responses_body(body: Mapping[str, Any], tags: Mapping[str, str]) -> ResponsesCall:
    """Check a Responses body and build the neutral request; a 400 :class:`HTTPProblem` naming the field."""
    check_fields(body, _ACCEPTED, "this gateway's Responses API")
    model = required_model(body, "openai/gpt-4o-mini")
    if body.get("background"):
        raise bad_request("background", "background responses are not supported here; send the request without it "
                                        "(stream it for long answers)", "unsupported_value")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("instructions", "instructions must be a string")
    conversation = _input(body.get("input"))
    settings: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad_request(key, f"{key} must be a number")
            settings[key] = float(value)
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise bad_request("max_output_tokens", "max_output_tokens must be a positive integer")
        settings["max_tokens"] = max_tokens
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, Mapping):
            raise bad_request("reasoning", "reasoning must be an object: {effort, summary}")
        effort = reasoning.get("effort")
        if effort is not None:
            if effort not in _EFFORTS:
                raise bad_request("reasoning.effort", f"reasoning.effort must be one of {', '.join(sorted(_EFFORTS))}")
            settings["reasoning_effort"] = effort
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise bad_request("parallel_tool_calls", "parallel_tool_calls must be true or false")
        settings["parallel_tool_calls"] = parallel
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    output, params = _text(body.get("text"))
    request_tags = dict(tags)
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise bad_request("user", "user must be a string (your end user's id)")
        request_tags["end_user"] = user
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, Mapping) or len(metadata) > 16 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())):
        raise bad_request("metadata", "metadata must be an object of at most 16 string values")
    cache = CacheHints()
    if body.get("prompt_cache_key") is not None:
        if not isinstance(body["prompt_cache_key"], str):
            raise bad_request("prompt_cache_key", "prompt_cache_key must be a string")
        cache.prompt_cache_key = body["prompt_cache_key"]
    for key in ("stream", "store"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise bad_request(key, f"{key} must be true or false")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, Mapping) or set(options) - {"include_obfuscation"}):
        raise bad_request("stream_options", "stream_options takes include_obfuscation (a boolean)")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous or len(previous) > 200):
        raise bad_request("previous_response_id", "previous_response_id must be the id of an earlier response")
    for key in ("include",):
        if body.get(key) is not None and not (isinstance(body[key], list) and all(isinstance(i, str)
                                                                                    for i in body[key])):
            raise bad_request(key, f"{key} must be a list of strings")
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise bad_request("truncation", "truncation must be auto or disabled")
    for key in _PLANNED:
        value = body.get(key)
        if not is_default(key, value):
            params[key] = value
    system = [Message.system(instructions)] if instructions else []
    request = Request(model="", messages=[*system, *conversation], tools=tools, tool_choice=tool_choice,
                      output=output, tags=request_tags, metadata=dict(metadata or {}), cache=cache, **settings)
    echo = {
        "instructions": instructions, "max_output_tokens": max_tokens, "metadata": dict(metadata or {}),
        "parallel_tool_calls": parallel if parallel is not None else True,
        "reasoning": {"effort": settings.get("reasoning_effort"), "summary": None},
        "temperature": settings.get("temperature"), "top_p": settings.get("top_p"),
        "text": body.get("text") or {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(body.get("tools") or []), "truncation": body.get("truncation") or "disabled", "user": user,
    }
    return ResponsesCall(model, request, bool(body.get("stream", False)), bool(body.get("store", True)), previous,
                         instructions, conversation, echo, params)


def _input(raw: Any) -> list[Message]:
    if isinstance(raw, str):
        return [Message.user(raw)]
    if not isinstance(raw, list) or not raw:
        raise bad_request("input", "input must be a string or a non-empty list of items", "missing_required")
    messages: list[Message] = []
    names: dict[str, str] = {}

    def add(role: str, part: Part) -> None:
        # Calls, reasoning and the assistant's text of one turn share one message; so do tool outputs.
        if messages and messages[-1].role == role and role in ("assistant", "tool"):
            messages[-1].parts.append(part)
        else:
            messages.append(Message(role, [part]))  # type: ignore[arg-type]

    for index, item in enumerate(raw):
        where = f"input[{index}]"
        if not isinstance(item, Mapping):
            raise bad_request(where, "an input item must be an object")
        kind = item.get("type", "message")
        try:
            if kind == "message":
                role = item.get("role")
                if role not in ("user", "assistant", "system", "developer"):
                    raise bad_request(f"{where}.role", "a message's role is user, assistant, system or developer")
                parts = _content(item.get("content"), where)
                if role == "assistant":
                    for part in parts:
                        add("assistant", part)
                else:
                    messages.append(Message("system" if role == "developer" else role, parts))
            elif kind == "function_call":
                call_id, name = item.get("call_id"), item.get("name")
                if not isinstance(call_id, str) or not isinstance(name, str):
                    raise bad_request(where, "a function_call item needs call_id, name and arguments")
                names[call_id] = name
                add("assistant", ToolCallPart(id=call_id, name=name,
                                              arguments=parse_tool_arguments(item.get("arguments"), name)))
            elif kind == "function_call_output":
                call_id = item.get("call_id")
                if not isinstance(call_id, str):
                    raise bad_request(where, "a function_call_output item needs call_id and output")
                add("tool", ToolResultPart(call_id=call_id, name=names.get(call_id, ""),
                                           content=_output_text(item.get("output"), where)))
            elif kind == "reasoning":
                summary = item.get("summary") or []
                encrypted = item.get("encrypted_content")
                if not isinstance(summary, list) or (encrypted is not None and not isinstance(encrypted, str)):
                    raise bad_request(where, "a reasoning item has summary (a list of summary_text parts) and "
                                             "encrypted_content (a string)")
                text = "\n\n".join(str(s.get("text", "")) for s in summary if isinstance(s, Mapping))
                details = {"item_id": item["id"]} if isinstance(item.get("id"), str) else None
                add("assistant", ReasoningPart(text, provider="openai", provider_details=details,
                                               redacted_data=item.get("encrypted_content") or None))
            elif kind == "item_reference":
                raise bad_request(where, "item references are not supported here: send the item itself, or "
                                         "previous_response_id", "unsupported_value")
            else:
                raise bad_request(f"{where}.type", f"input items of type {kind!r} are not supported here; use "
                                  "message, function_call, function_call_output or reasoning", "unsupported_value")
        except InvalidRequestError as exc:
            raise bad_request(where, str(exc)) from exc
    return messages


def _content(raw: Any, where: str) -> list[Part]:
    if isinstance(raw, str):
        return [TextPart(raw)]
    if not isinstance(raw, list):
        raise bad_request(f"{where}.content", "content must be a string or a list of content parts")
    parts: list[Part] = []
    for n, item in enumerate(raw):
        at = f"{where}.content[{n}]"
        if not isinstance(item, Mapping):
            raise bad_request(at, "a content part must be an object with a type")
        kind = item.get("type")
        if kind in ("input_text", "output_text") and isinstance(item.get("text"), str):
            parts.append(TextPart(item["text"]))
        elif kind == "refusal":
            parts.append(TextPart(str(item.get("refusal", ""))))
        elif kind == "input_image" and isinstance(item.get("image_url"), str):
            parts.append(ImagePart(url=item["image_url"], detail=item.get("detail")))
        elif kind == "input_file" and isinstance(item.get("file_data"), str):
            data = item["file_data"]
            if not data.startswith("data:"):
                data = f"data:application/pdf;base64,{data}"
            image = ImagePart(url=data)  # decodes the data URL once, checked
            assert image.data is not None
            parts.append(FilePart(data=image.data, media_type=image.media_type, filename=item.get("filename")))
        else:
            raise bad_request(at, "content parts are input_text, input_image (image_url), input_file (file_data) "
                                  "or output_text; file ids need OpenAI's Files API and are not supported here",
                              "unsupported_value")
    return parts


def _output_text(raw: Any, where: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(isinstance(i, Mapping) and i.get("type") in ("input_text", "output_text")
                                     for i in raw):
        return "".join(str(i.get("text", "")) for i in raw)
    raise bad_request(f"{where}.output", "a function_call_output's output is a string or input_text parts")


def _tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("tools", "tools must be a list of {type: function, name, parameters} objects")
    tools: list[Tool] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or item.get("type") != "function":
            kind = item.get("type") if isinstance(item, Mapping) else None
            raise bad_request(f"tools[{index}].type", f"only function tools are supported here, not {kind!r}: "
                                                      "built-in tools run at OpenAI only", "unsupported_value")
        if item.get("parameters") is not None and not isinstance(item["parameters"], Mapping):
            raise bad_request(f"tools[{index}].parameters", "parameters must be a JSON schema object")
        try:
            tools.append(coerce_tool({"type": "function", "function": {
                "name": item.get("name"), "description": item.get("description") or "",
                "parameters": item.get("parameters") or {"type": "object", "properties": {}},
                "strict": item.get("strict")}}))
        except InvalidRequestError as exc:
            raise bad_request(f"tools[{index}]", str(exc)) from exc
    return tools


def _tool_choice(raw: Any, tools: list[Tool]) -> str | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        if raw == "required" and not tools:
            raise bad_request("tool_choice", "tool_choice 'required' needs at least one tool in tools")
        return str(raw)
    if isinstance(raw, Mapping) and raw.get("type") == "function":
        name = raw.get("name")
        if not any(tool.name == name for tool in tools):
            raise bad_request("tool_choice", f"tool_choice names {name!r}, which is not one of the tools")
        return str(name)
    raise bad_request("tool_choice", "tool_choice is auto, none, required or {type: function, name}")


def _text(raw: Any) -> tuple[OutputSchema | None, dict[str, Any]]:
    """Structured output from ``text.format``; ``text.verbosity`` as a planned parameter."""
    if raw is None:
        return None, {}
    if not isinstance(raw, Mapping) or set(raw) - {"format", "verbosity"}:
        raise bad_request("text", "text takes format and verbosity")
    params: dict[str, Any] = {}
    verbosity = raw.get("verbosity")
    if verbosity is not None:
        if verbosity not in ("low", "medium", "high"):
            raise bad_request("text.verbosity", "text.verbosity must be low, medium or high")
        params["verbosity"] = verbosity
    spec = raw.get("format")
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if spec is None or kind == "text":
        return None, params
    if kind == "json_object":
        return ClientValidatedOutput("json_object", {"type": "object"}, strict=False, json_mode=True), params
    if kind == "json_schema" and isinstance(spec, Mapping):
        schema = spec.get("schema")
        if not isinstance(schema, Mapping) or not isinstance(spec.get("name"), str):
            raise bad_request("text.format", "a json_schema format needs name and schema")
        try:
            check_schema(schema, "text.format.schema")
        except UnsafeSchemaError as exc:
            raise HTTPProblem(422, str(exc), code="invalid_schema", param=exc.param) from exc
        return ClientValidatedOutput(spec["name"], dict(schema), strict=bool(spec.get("strict", True))), params
    raise bad_request("text.format.type", "text.format.type is text, json_object or json_schema")


# ------------------------------------------------------------------------------------- answers


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    return {"input_tokens": usage.input_tokens, "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens}


def _item_id(prefix: str, response_id: str, position: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}{position:03d}"


def _text_content(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, part: ReasoningPart, status: str = "completed") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": item_id, "status": status,
                            "summary": [{"type": "summary_text", "text": part.text}] if part.text else []}
    if part.redacted_data:
        item["encrypted_content"] = part.redacted_data
    return item


def _call_item(item_id: str, part: ToolCallPart, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": part.id, "name": part.name,
            "arguments": arguments_json(part.arguments), "status": status}


def output_items(response: Response, response_id: str) -> list[dict[str, Any]]:
    """The answer's parts as output items: consecutive text is one message; reasoning and calls their own."""
    items: list[dict[str, Any]] = []
    for part in response.parts:
        position = len(items)
        if isinstance(part, TextPart):
            if items and items[-1]["type"] == "message":
                items[-1]["content"].append(_text_content(part.text))
            else:
                items.append({"type": "message", "id": _item_id("msg", response_id, position), "status": "completed",
                              "role": "assistant", "content": [_text_content(part.text)]})
        elif isinstance(part, ReasoningPart):
            items.append(_reasoning_item(_item_id("rs", response_id, position), part))
        elif isinstance(part, ToolCallPart):
            items.append(_call_item(_item_id("fc", response_id, position), part))
    return items


def response_object(response: Response | None, response_id: str, model: str, echo: Mapping[str, Any], *,
                    previous_response_id: str | None, store: bool, status: str | None = None,
                    created_at: int | None = None) -> dict[str, Any]:
    """The ``response`` object; ``response`` None for the opening events of a stream (``in_progress``)."""
    incomplete = None
    if response is not None and status is None:
        status = "completed"
        if response.finish_reason in ("length", "content_filter"):
            status = "incomplete"
            incomplete = {"reason": "max_output_tokens" if response.finish_reason == "length" else "content_filter"}
    return {
        "id": response_id, "object": "response", "created_at": created_at or int(time.time()),
        "status": status or "in_progress", "error": None, "incomplete_details": incomplete, "model": model,
        "output": output_items(response, response_id) if response is not None else [],
        "previous_response_id": previous_response_id, "store": store,
        "usage": usage_to_wire(response.usage) if response is not None else None, **echo,
    }


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


class ResponseStreamWriter:
    """Our stream events as the Responses API's typed events, numbered by ``sequence_number``."""

    def __init__(self, response_id: str, model: str, echo: Mapping[str, Any], *, previous_response_id: str | None,
                 store: bool) -> None:
        self.id = response_id
        self.model = model
        self.echo = echo
        self.previous = previous_response_id
        self.store = store
        self.created_at = int(time.time())
        self._sequence = 0
        self._position = -1  # the output index of the open (or last) item
        self._open: dict[str, Any] | None = None  # the open item, as output_item.done will send it
        self._open_key: tuple[str, int] | None = None
        self._calls_seen: set[int] = set()

    def _event(self, name: str, payload: dict[str, Any]) -> bytes:
        data = json.dumps({"type": name, "sequence_number": self._sequence, **payload}, ensure_ascii=False,
                          separators=(",", ":"))
        self._sequence += 1
        return f"event: {name}\ndata: {data}\n\n".encode()

    def _object(self, response: Response | None, status: str | None = None) -> dict[str, Any]:
        return response_object(response, self.id, self.model, self.echo, previous_response_id=self.previous,
                               store=self.store, status=status, created_at=self.created_at)

    def start(self) -> list[bytes]:
        return [self._event("response.created", {"response": self._object(None)}),
                self._event("response.in_progress", {"response": self._object(None)})]

    def _add(self, key: tuple[str, int], item: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self._position += 1
        self._open, self._open_key = item, key
        frames.append(self._event("response.output_item.added", {
            "output_index": self._position, "item": {**item, "status": "in_progress"}}))
        return frames

    def _close(self) -> list[bytes]:
        item, self._open, self._open_key = self._open, None, None
        if item is None:
            return []
        at = {"item_id": item["id"], "output_index": self._position}
        frames: list[bytes] = []
        if item["type"] == "message":
            text = item["content"][0]["text"]
            frames.append(self._event("response.output_text.done", {**at, "content_index": 0, "text": text,
                                                                     "logprobs": []}))
            frames.append(self._event("response.content_part.done", {**at, "content_index": 0,
                                                                      "part": _text_content(text)}))
        elif item["type"] == "reasoning" and item["summary"]:
            text = item["summary"][0]["text"]
            frames.append(self._event("response.reasoning_summary_text.done", {**at, "summary_index": 0,
                                                                                "text": text}))
            frames.append(self._event("response.reasoning_summary_part.done", {
                **at, "summary_index": 0, "part": {"type": "summary_text", "text": text}}))
        elif item["type"] == "function_call":
            frames.append(self._event("response.function_call_arguments.done", {
                **at, "name": item["name"], "arguments": item["arguments"]}))
        frames.append(self._event("response.output_item.done", {"output_index": self._position,
                                                                "item": {**item, "status": "completed"}}))
        return frames

    def event(self, event: StreamEvent) -> list[bytes]:
        kind = event.kind
        frames: list[bytes] = []
        if kind == "text":
            if not event.text:
                return []
            if self._open is None or self._open["type"] != "message":
                item_id = _item_id("msg", self.id, self._position + 1)
                frames = self._add(("text", event.index), {"type": "message", "id": item_id, "role": "assistant",
                                                           "content": [_text_content("")]})
                frames.append(self._event("response.content_part.added", {
                    "item_id": item_id, "output_index": self._position, "content_index": 0,
                    "part": _text_content("")}))
            assert self._open is not None
            self._open["content"][0]["text"] += event.text
            frames.append(self._event("response.output_text.delta", {
                "item_id": self._open["id"], "output_index": self._position, "content_index": 0,
                "delta": event.text, "logprobs": []}))
        elif kind == "reasoning":
            if self._open_key != ("reasoning", event.index):
                item_id = _item_id("rs", self.id, self._position + 1)
                frames = self._add(("reasoning", event.index), {"type": "reasoning", "id": item_id, "summary": []})
            assert self._open is not None
            if event.text:
                at = {"item_id": self._open["id"], "output_index": self._position, "summary_index": 0}
                if not self._open["summary"]:
                    self._open["summary"].append({"type": "summary_text", "text": ""})
                    frames.append(self._event("response.reasoning_summary_part.added", {
                        **at, "part": {"type": "summary_text", "text": ""}}))
                self._open["summary"][0]["text"] += event.text
                frames.append(self._event("response.reasoning_summary_text.delta", {**at, "delta": event.text}))
        elif kind == "tool_call_delta":
            if self._open_key != ("call", event.index):
                if event.index in self._calls_seen:
                    return []
                self._calls_seen.add(event.index)
                frames = self._add(("call", event.index), {
                    "type": "function_call", "id": _item_id("fc", self.id, self._position + 1),
                    "call_id": event.call_id or f"call_{uuid.uuid4().hex[:24]}", "name": event.name or "",
                    "arguments": ""})
            assert self._open is not None
            if event.arguments_delta:
                self._open["arguments"] += event.arguments_delta
                frames.append(self._event("response.function_call_arguments.delta", {
                    "item_id": self._open["id"], "output_index": self._position, "delta": event.arguments_delta}))
        elif kind == "tool_call":
            assert event.tool_call is not None
            whole = _call_item("", event.tool_call)
            if self._open_key == ("call", event.index) and self._open is not None:
                self._open.update(call_id=whole["call_id"], name=whole["name"], arguments=whole["arguments"])
                return self._close()
            if event.index in self._calls_seen:
                return []
            self._calls_seen.add(event.index)
            whole["id"] = _item_id("fc", self.id, self._position + 1)
            frames = self._add(("call", event.index), {**whole, "arguments": ""})
            frames.append(self._event("response.function_call_arguments.delta", {
                "item_id": whole["id"], "output_index": self._position, "delta": whole["arguments"]}))
            assert self._open is not None
            self._open["arguments"] = whole["arguments"]
            frames.extend(self._close())
        return frames

    def finish(self, response: Response) -> list[bytes]:
        frames = self._close()
        completed = self._object(response)
        name = "response.completed" if completed["status"] == "completed" else "response.incomplete"
        frames.append(self._event(name, {"response": completed}))
        return frames

    def error(self, problem: HTTPProblem) -> bytes:
        error = {"code": problem.code or "server_error", "message": problem.message, "param": problem.param}
        failed = self._object(None, status="failed")
        failed["error"] = {"code": problem.code or "server_error", "message": problem.message}
        return self._event("error", error) + self._event("response.failed", {"response": failed})
