"""A Chat Completions request body -> our neutral :class:`~agentadapter.llm.messages.Request`.

Hand-written checks rather than a pydantic model: this is the gateway's hot path, and a pydantic
model of OpenAI's whole request (messages, parts, tools) costs more per call than the rest of the
gateway. The messages are read by :func:`~agentadapter.llm.messages.coerce_messages` and the tools by
:func:`~agentadapter.llm.tools.coerce_tool`, the same code that reads OpenAI-style dicts passed to
``LLM.generate``. Every refusal is a 400 whose ``param`` names the field; fields we do not carry
(``n > 1``, ``logprobs``, penalties, ...) are refused rather than silently dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request as HTTPRequest

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Request, coerce_messages
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.schema_safety import UnsafeSchemaError, check_schema
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.middleware import CHECKED_BODY
from agentadapter.server.payloads import CheckedBody, InvalidJSON, PayloadLimits, PayloadRefused, check_json

__all__ = [
    "ChatCall", "ClientValidatedOutput", "bad_request", "call_tags", "check_fields", "parse_body", "parse_chat_request",
    "read_chat_request", "required_model",
]

_ACCEPTED = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "temperature", "top_p",
    "max_tokens", "max_completion_tokens", "stop", "seed", "reasoning_effort", "user", "stream", "stream_options",
    "n",
})
_REASONING_EFFORTS = frozenset({"minimal", "low", "medium", "high"})


@dataclass(slots=True)
class ClientValidatedOutput(OutputSchema):
    """A ``response_format`` schema: sent to the provider, but the answer is handed back as text.

    An OpenAI server returns the model's JSON as it is and leaves validation to the client (the
    ``openai`` package's ``parse`` does it), so the gateway does not validate it a second time.
    """

    def parse(self, text: str) -> Any:
        return None


@dataclass(slots=True)
class ChatCall:
    """What one ``POST /v1/chat/completions`` asks for."""

    model: str
    request: Request
    stream: bool
    include_usage: bool


def bad_request(param: str | None, message: str, code: str = "invalid_value") -> HTTPProblem:
    return HTTPProblem(400, message, code=code, param=param)


def call_tags(key_id: object | None) -> dict[str, str]:
    """The usage tags of a gateway call: its source, and the API key that made it (when one did)."""
    tags = {"source": "gateway"}
    if key_id is not None:
        tags["api_key"] = str(key_id)
    return tags


def check_fields(body: Mapping[str, Any], accepted: frozenset[str], what: str) -> None:
    """A 400 naming the first field of ``body`` that ``what`` (this gateway's endpoint) does not take."""
    unknown = [key for key in body if key not in accepted]
    if unknown:
        raise bad_request(unknown[0], f"{unknown[0]!r} is not supported by {what}; supported fields: "
                                      f"{', '.join(sorted(accepted))}", "unsupported_parameter")


def required_model(body: Mapping[str, Any], example: str) -> str:
    """The body's ``model``, or a 400 saying what one looks like."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model", f"model is required: a provider/model id ({example}) or an alias of the "
                                   "server's agentadapter.yaml; GET /v1/models lists them", "missing_required")
    return model


def parse_body(raw: bytes, checked: CheckedBody | None = None) -> dict[str, Any]:
    """The body as a JSON object. ``checked``: what the body guard learnt of it (its limits hold); without
    it (a body the guard leaves alone, as a form's) it is checked here."""
    if checked is not None and checked.parsed:
        body = checked.value
    else:
        try:
            body = json.loads(raw) if checked is not None else check_json(raw, PayloadLimits())
        except (ValueError, InvalidJSON) as exc:
            raise bad_request(None, f"the request body is not valid JSON ({exc})", "invalid_json") from exc
        except PayloadRefused as exc:
            raise HTTPProblem(exc.status, exc.message, code=exc.code, param=exc.param, details=exc.details) from exc
    if not isinstance(body, dict):
        raise bad_request(None, "the request body must be a JSON object", "invalid_json")
    return body


async def read_chat_request(request: HTTPRequest, tags: Mapping[str, str], *, offload_bytes: int) -> ChatCall:
    """The request's Chat Completions call; a large body is read in a thread, off the event loop."""
    raw = await request.body()
    checked = request.scope.get(CHECKED_BODY)
    if len(raw) < offload_bytes:
        return parse_chat_request(parse_body(raw, checked), tags)
    return await asyncio.to_thread(lambda: parse_chat_request(parse_body(raw, checked), tags))


def parse_chat_request(body: Mapping[str, Any], tags: Mapping[str, str]) -> ChatCall:
    """Check a Chat Completions body and build the neutral request; raises a 400 :class:`HTTPProblem`."""
    check_fields(body, _ACCEPTED, "this gateway")
    model = required_model(body, "openai/gpt-4o-mini")
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("n", "n must be 1: the gateway returns one choice per request; send several requests "
                               "for several answers", "unsupported_value")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise bad_request("messages", "messages must be a non-empty list of {role, content} objects",
                          "missing_required")
    try:
        messages = coerce_messages(raw_messages)
    except InvalidRequestError as exc:
        raise bad_request("messages", str(exc)) from exc
    settings: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            settings[key] = _number(key, value)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise bad_request(param, f"{param} must be a positive integer")
        settings["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
            raise bad_request("stop", "stop must be a string or a list of up to 4 strings")
        settings["stop"] = stop or None
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise bad_request("seed", "seed must be an integer")
        settings["seed"] = seed
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _REASONING_EFFORTS:
            raise bad_request("reasoning_effort",
                              f"reasoning_effort must be one of {', '.join(sorted(_REASONING_EFFORTS))}")
        settings["reasoning_effort"] = effort
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        settings["parallel_tool_calls"] = _flag("parallel_tool_calls", parallel)
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    request_tags = dict(tags)
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise bad_request("user", "user must be a string (your end user's id)")
        request_tags["end_user"] = user
    stream = _flag("stream", body.get("stream", False))
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad_request("stream_options", "stream_options is only allowed with stream: true")
        if not isinstance(options, Mapping) or set(options) - {"include_usage"}:
            raise bad_request("stream_options", "stream_options takes only include_usage (a boolean)")
        include_usage = _flag("stream_options.include_usage", options.get("include_usage", False))
    request = Request(model="", messages=messages, tools=tools, tool_choice=tool_choice,
                      output=_output(body.get("response_format")), tags=request_tags, **settings)
    return ChatCall(model, request, stream, include_usage)


def _number(param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(param, f"{param} must be a number")
    return float(value)


def _flag(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_request(param, f"{param} must be true or false")
    return value


def _tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("tools", "tools must be a list of {type: function, function: {...}} objects")
    tools: list[Tool] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or item.get("type") != "function":
            raise bad_request(f"tools[{index}].type", "only function tools are supported: "
                                                      "{type: function, function: {name, description, parameters}}")
        try:
            tools.append(coerce_tool(item))
        except InvalidRequestError as exc:
            raise bad_request(f"tools[{index}].function", str(exc)) from exc
    return tools


def _tool_choice(raw: Any, tools: list[Tool]) -> str | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        choice: str = raw
    elif isinstance(raw, Mapping) and raw.get("type") == "function" and isinstance(raw.get("function"), Mapping):
        choice = str(raw["function"].get("name") or "")
        if not any(tool.name == choice for tool in tools):
            raise bad_request("tool_choice", f"tool_choice names {choice!r}, which is not one of the request's tools")
    else:
        raise bad_request("tool_choice", "tool_choice must be auto, none, required or "
                                         "{type: function, function: {name}}")
    if choice == "required" and not tools:
        raise bad_request("tool_choice", "tool_choice 'required' needs at least one tool in tools")
    return choice


def _output(raw: Any) -> OutputSchema | None:
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        # Any JSON object: a schema every provider's structured-output mode can take.
        return ClientValidatedOutput("json_object", {"type": "object"}, strict=False)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise bad_request("response_format.json_schema", "json_schema needs a name and a schema")
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, Mapping):
            raise bad_request("response_format.json_schema.schema", "schema must be a JSON schema object")
        try:
            check_schema(schema, "response_format.json_schema.schema")
        except UnsafeSchemaError as exc:  # 422: the request is well-formed, the schema is one we refuse
            raise HTTPProblem(422, str(exc), code="invalid_schema", param=exc.param) from exc
        strict = spec.get("strict")
        return ClientValidatedOutput(spec["name"], dict(schema), strict=bool(strict))
    raise bad_request("response_format.type", "response_format.type must be text, json_object or json_schema")
