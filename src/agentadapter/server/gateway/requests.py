"""A Chat Completions request body -> our neutral :class:`~agentadapter.llm.messages.Request`.

Hand-written checks rather than a pydantic model: this is the gateway's hot path, and a pydantic
model of OpenAI's whole request (messages, parts, tools) costs more per call than the rest of the
gateway. The messages are read by :func:`~agentadapter.llm.messages.coerce_messages` and the tools by
:func:`~agentadapter.llm.tools.coerce_tool`, the same code that reads OpenAI-style dicts passed to
``LLM.generate``. Every refusal is a 400 whose ``param`` names the field; fields we do not carry
(``n > 1``, ``logprobs``, ...) and those a target of the route cannot honour are refused or dropped as
the operator chose (:mod:`.params`), never silently lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request as HTTPRequest

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import CacheHints, Request, coerce_messages
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.schema_safety import UnsafeSchemaError, check_schema
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.gateway.params import PASS_THROUGH, ParamPlan, is_default
from agentadapter.server.middleware import CHECKED_BODY
from agentadapter.server.payloads import CheckedBody, InvalidJSON, PayloadLimits, PayloadRefused, check_json

__all__ = [
    "ChatCall", "ClientValidatedOutput", "bad_request", "call_tags", "check_fields", "parse_body", "parse_chat_request",
    "read_call", "read_chat_request", "required_model",
]

_ACCEPTED = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "temperature", "top_p",
    "max_tokens", "max_completion_tokens", "stop", "seed", "reasoning_effort", "user", "stream", "stream_options",
    "n", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "metadata", "store",
    "service_tier", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
    "functions", "function_call", "modalities", "audio", "prediction", "verbosity", "web_search_options",
    "moderation",
})
T = TypeVar("T")
_REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast"})
_VERBOSITIES = frozenset({"low", "medium", "high"})


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
    params: dict[str, Any] = field(default_factory=dict)
    """The parameters some targets cannot honour (see :mod:`.params`), checked, not yet applied."""
    legacy_functions: bool = False
    """The client used ``functions`` / ``function_call``: the answer speaks of ``function_call`` too."""
    dropped: list[str] = field(default_factory=list)

    def apply(self, plan: ParamPlan) -> None:
        """Put the parameters ``plan`` allows into the request (a 400 for one the route refuses)."""
        request = self.request
        for param, value in self.params.items():
            streamed_logprobs = self.stream and param in ("logprobs", "top_logprobs")
            if not plan.allows(param, "logprobs (not carried back)" if streamed_logprobs else None):
                continue
            if param in PASS_THROUGH:
                request.extra_body[param] = value
            elif param in ("seed", "frequency_penalty", "presence_penalty"):
                setattr(request, param, value)
        if request.reasoning_effort is not None and not plan.allows_reasoning("reasoning_effort"):
            request.reasoning_effort = None
        self.dropped = plan.dropped


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


async def read_call(request: HTTPRequest, parse: Callable[[dict[str, Any]], T], *, offload_bytes: int) -> T:
    """The request's body read by ``parse`` (a client format's reader); a large body in a thread, off the loop."""
    raw = await request.body()
    checked = request.scope.get(CHECKED_BODY)
    if len(raw) < offload_bytes:
        return parse(parse_body(raw, checked))
    return await asyncio.to_thread(lambda: parse(parse_body(raw, checked)))


async def read_chat_request(request: HTTPRequest, tags: Mapping[str, str], *, offload_bytes: int) -> ChatCall:
    """The request's Chat Completions call."""
    return await read_call(request, lambda body: parse_chat_request(body, tags), offload_bytes=offload_bytes)


def parse_chat_request(body: Mapping[str, Any], tags: Mapping[str, str]) -> ChatCall:
    """Check a Chat Completions body and build the neutral request; raises a 400 :class:`HTTPProblem`."""
    check_fields(body, _ACCEPTED, "this gateway")
    model = required_model(body, "openai/gpt-4o-mini")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise bad_request("messages", "messages must be a non-empty list of {role, content} objects",
                          "missing_required")
    if any(isinstance(m, Mapping) and (m.get("role") == "function" or "function_call" in m) for m in raw_messages):
        raw_messages = _legacy_messages(raw_messages)
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
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _REASONING_EFFORTS:
            raise bad_request("reasoning_effort",
                              f"reasoning_effort must be one of {', '.join(sorted(_REASONING_EFFORTS))}")
        settings["reasoning_effort"] = effort
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        settings["parallel_tool_calls"] = _flag("parallel_tool_calls", parallel)
    legacy = body.get("functions") is not None or body.get("function_call") is not None
    if legacy:
        tools, tool_choice = _legacy_functions(body)
    else:
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
        if not isinstance(options, Mapping) or set(options) - {"include_usage", "include_obfuscation"}:
            raise bad_request("stream_options", "stream_options takes include_usage and include_obfuscation "
                                                "(booleans)")
        include_usage = _flag("stream_options.include_usage", options.get("include_usage", False))
        # This gateway's chunks carry no obfuscation padding, whatever is asked; the flag is only checked.
        _flag("stream_options.include_obfuscation", options.get("include_obfuscation", True))
    cache = CacheHints()
    cache_key = body.get("prompt_cache_key")
    if cache_key is not None:
        cache.prompt_cache_key = _string("prompt_cache_key", cache_key, 1024)
    request = Request(model="", messages=messages, tools=tools, tool_choice=tool_choice,
                      output=_output(body.get("response_format")), tags=request_tags,
                      metadata=_metadata(body.get("metadata")), cache=cache, **settings)
    return ChatCall(model, request, stream, include_usage, _optional_params(body), legacy)


def _optional_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters only some targets honour, each checked; those that ask for nothing are left out."""
    params: dict[str, Any] = {}
    for param, value in body.items():  # the body's few keys, not every parameter there is
        check = _PARAM_CHECKS.get(param)
        if check is None or value is None:
            continue
        check(param, value)
        if not is_default(param, value):
            params[param] = value
    if "top_logprobs" in params and not body.get("logprobs"):
        raise bad_request("top_logprobs", "top_logprobs needs logprobs: true")
    return params


def _integer(param: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low) or (
            high is not None and value > high):
        bounds = f" from {low} to {high}" if low is not None and high is not None else (
            f" of at least {low}" if low is not None else "")
        raise bad_request(param, f"{param} must be an integer{bounds}")


def _penalty(param: str, value: Any) -> None:
    if _number(param, value) < -2 or value > 2:
        raise bad_request(param, f"{param} must be a number from -2.0 to 2.0")


def _choice(allowed: frozenset[str]) -> Any:
    def check(param: str, value: Any) -> None:
        if value not in allowed:
            raise bad_request(param, f"{param} must be one of {', '.join(sorted(allowed))}")
    return check


def _object(param: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise bad_request(param, f"{param} must be an object")


def _logit_bias(param: str, value: Any) -> None:
    if not isinstance(value, Mapping) or len(value) > 300 or not all(
            isinstance(k, str) and k.isdigit() and isinstance(v, int | float) and not isinstance(v, bool)
            and -100 <= v <= 100 for k, v in value.items()):
        raise bad_request(param, "logit_bias maps token ids (as strings) to numbers from -100 to 100, at most 300")


def _modalities(param: str, value: Any) -> None:
    if not isinstance(value, list) or not value or not all(m in ("text", "audio") for m in value):
        raise bad_request(param, "modalities must be a list of 'text' and/or 'audio'")


def _prediction(param: str, value: Any) -> None:
    if not isinstance(value, Mapping) or value.get("type") != "content" or not isinstance(
            value.get("content"), str | list):
        raise bad_request(param, "prediction must be {type: content, content: <string or text parts>}")


def _bool_param(param: str, value: Any) -> None:
    _flag(param, value)


def _short_string(param: str, value: Any) -> None:
    _string(param, value, 256)


_PARAM_CHECKS: dict[str, Any] = {
    "seed": lambda param, value: _integer(param, value),
    "frequency_penalty": _penalty,
    "presence_penalty": _penalty,
    "n": lambda param, value: _integer(param, value, 1, 128),
    "logprobs": _bool_param,
    "top_logprobs": lambda param, value: _integer(param, value, 0, 20),
    "logit_bias": _logit_bias,
    "store": _bool_param,
    "service_tier": _choice(_SERVICE_TIERS),
    "safety_identifier": _short_string,
    "prompt_cache_retention": _choice(frozenset({"in_memory", "24h"})),
    "prompt_cache_options": _object,
    "prediction": _prediction,
    "verbosity": _choice(_VERBOSITIES),
    "web_search_options": _object,
    "modalities": _modalities,
    "audio": _object,
    "moderation": _object,
}


def _string(param: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise bad_request(param, f"{param} must be a string of at most {limit} characters")
    return value


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or len(raw) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in raw.items()):
        raise bad_request("metadata", "metadata must be an object of at most 16 string values (keys up to 64 "
                                      "characters, values up to 512)")
    return dict(raw)


def _legacy_messages(raw: list[Any]) -> list[Any]:
    """The older API's history (an assistant's ``function_call``, ``role: function`` results) as tool calls
    and tool results, paired by made-up ids: each result answers the latest call of its function."""
    messages: list[Any] = []
    open_calls: dict[str, str] = {}
    for index, message in enumerate(raw):
        if not isinstance(message, Mapping):
            messages.append(message)
            continue
        call = message.get("function_call")
        if message.get("role") == "assistant" and isinstance(call, Mapping):
            name = str(call.get("name") or "")
            call_id = open_calls[name] = f"call_{index}"
            rewritten = {k: v for k, v in message.items() if k != "function_call"}
            rewritten["tool_calls"] = [{"id": call_id, "type": "function",
                                        "function": {"name": name, "arguments": call.get("arguments") or "{}"}}]
            messages.append(rewritten)
        elif message.get("role") == "function":
            name = str(message.get("name") or "")
            if name not in open_calls:
                raise bad_request(f"messages[{index}]", f"this function result ({name!r}) follows no function_call "
                                                        "of that name")
            messages.append({"role": "tool", "tool_call_id": open_calls[name], "name": name,
                             "content": message.get("content")})
        else:
            messages.append(message)
    return messages


def _legacy_functions(body: Mapping[str, Any]) -> tuple[list[Tool], str | None]:
    """OpenAI's deprecated ``functions`` / ``function_call``, as tools and a tool choice."""
    if body.get("tools") is not None or body.get("tool_choice") is not None:
        raise bad_request("functions", "send either tools / tool_choice or the older functions / function_call, "
                                       "not both")
    raw = body.get("functions")
    if raw is not None and not isinstance(raw, list):
        raise bad_request("functions", "functions must be a list of {name, description, parameters} objects")
    tools = _tools([{"type": "function", "function": item} for item in raw or []], "functions")
    call = body.get("function_call")
    if call is None:
        return tools, None
    if call in ("auto", "none"):
        return tools, str(call)
    if isinstance(call, Mapping) and isinstance(call.get("name"), str):
        return tools, _tool_choice({"type": "function", "function": {"name": call["name"]}}, tools)
    raise bad_request("function_call", "function_call must be auto, none or {name}")


def _number(param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(param, f"{param} must be a number")
    return float(value)


def _flag(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_request(param, f"{param} must be true or false")
    return value


def _tools(raw: Any, param: str = "tools") -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request(param, "tools must be a list of {type: function, function: {...}} objects")
    tools: list[Tool] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or item.get("type") != "function":
            raise bad_request(f"{param}[{index}].type", "only function tools are supported: "
                                                        "{type: function, function: {name, description, parameters}}")
        function = item.get("function")
        if not isinstance(function, Mapping) or (function.get("parameters") is not None
                                                 and not isinstance(function["parameters"], Mapping)):
            raise bad_request(f"{param}[{index}].function", "function must be {name, description, parameters} "
                                                            "with parameters a JSON schema object")
        try:
            tools.append(coerce_tool(item))
        except InvalidRequestError as exc:
            raise bad_request(f"{param}[{index}]", str(exc)) from exc
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
        # JSON mode where the target has one; elsewhere a schema every structured-output mode takes.
        return ClientValidatedOutput("json_object", {"type": "object"}, strict=False, json_mode=True)
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
