"""A loopback OpenAI chat-completions server for tests, scripted reply by reply.

:class:`OpenAIFake` answers ``POST .../chat/completions`` and ``GET .../models`` under any path
prefix (so one fake serves every preset's base URL: ``/v1``, ``/openai/v1``, ``/api/v1``,
``/inference/v1``, Azure's ``/openai/deployments/{d}``, Perplexity's bare host). Each call consumes
the next :meth:`OpenAIFake.reply`, streamed or not according to the request's ``stream`` flag, in
the shapes the real APIs send (see DESIGN.md's provider facts): argument fragments keyed by
``index``, an ``obfuscation`` key, usage on a final ``choices: []`` chunk, on the finish chunk or
under ``x_groq``, ``[DONE]``. Stream faults (a dropped connection, an invalid JSON frame, an error
event after HTTP 200) are part of a reply; status faults come from :meth:`FakeServer.fail`; a
``strict`` response-format schema that strict mode refuses gets the API's 400 (:mod:`.openai_strict`). With
nothing scripted it echoes the last user message. ``POST .../embeddings`` answers as OpenAI's
embeddings API does (``encoding_format`` float or base64, ``dimensions``, usage in ``prompt_tokens``),
with :func:`.embedding.fake_vector` vectors of :attr:`OpenAIFake.embedding_dimensions` (or the
request's ``dimensions``); it refuses token arrays and empty strings as the API does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from .embedding import base64_vector, fake_tokens, fake_vector
from .openai_strict import strict_schema_problem
from .server import FakeServer, Recorded, send_sse

UsageOn = Literal["auto", "last_chunk", "finish_chunk", "x_groq"]


@dataclass
class Reply:
    """One scripted answer; see :meth:`OpenAIFake.reply`."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str | None = None
    reasoning_key: str = "reasoning_content"
    refusal: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    usage_on: UsageOn = "auto"
    """``auto``: on a last ``choices: []`` chunk when the request asks with ``include_usage`` (OpenAI),
    else on the finish chunk (Mistral, Perplexity send it unasked)."""
    mistral_list_content: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    id: str = "chatcmpl-fake123"
    raw_body: Any = None
    frames: list[str] | None = None
    drop_after: int | None = None
    bad_json_at: int | None = None
    error_after: int | None = None
    error_body: dict[str, Any] | None = None
    error_as: Literal["event", "chunk"] = "event"
    omit_done: bool = False
    omit_finish: bool = False
    fragment_size: int = 4


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class OpenAIFake(FakeServer):
    """The OpenAI chat-completions wire format on loopback."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Reply] = []
        self.models: list[dict[str, Any]] = [
            {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"},
        ]
        self.embedding_dimensions = 8
        self.route("POST", "/", self._chat, prefix=True)
        self.route("GET", "/", self._models, prefix=True)

    async def __aenter__(self) -> OpenAIFake:
        await self.start()
        return self

    def reply(self, text: str | None = None, **options: Any) -> Reply:
        """Queue the next answer.

        Options: ``tool_calls=[{"id", "name", "arguments": dict | str}]``, ``reasoning=``,
        ``reasoning_key=`` (``reasoning_content`` | ``reasoning``), ``refusal=``, ``usage=``,
        ``finish_reason=``, ``usage_on=`` (``auto`` | ``last_chunk`` | ``finish_chunk`` | ``x_groq``;
        ``last_chunk`` sends none unless the request asks with ``include_usage``),
        ``mistral_list_content=``, ``extra=`` (top-level keys on the body / every chunk),
        ``model=``, ``raw_body=`` (answer exactly this JSON), ``frames=`` (stream exactly these
        pre-encoded SSE frames), and stream faults: ``drop_after=N``
        frames, ``bad_json_at=N``, ``error_after=N`` with ``error_body=`` and ``error_as=``
        (``event`` | ``chunk``), ``omit_done=``, ``omit_finish=``.
        """
        scripted = Reply(text=text, **options)
        self.replies.append(scripted)
        return scripted

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # ------------------------------------------------ agentadapter.llm.conformance.ConformanceServer

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.reply(text, usage=_usage_of(input_tokens, output_tokens))

    def queue_tool_calls(
        self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int, output_tokens: int
    ) -> None:
        scripted = [{"id": f"call_{i}", "name": name, "arguments": args} for i, (name, args) in enumerate(calls)]
        self.reply(tool_calls=scripted, usage=_usage_of(input_tokens, output_tokens))

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        error_type, code = _ERROR_TYPES.get(status, ("server_error", None))
        self.fail(status, {"error": {"message": message, "type": error_type, "param": None, "code": code}},
                  headers=headers or {})

    def request_count(self) -> int:
        return len(self.requests)

    def last_request_body(self) -> Any:
        return self.requests[-1].json

    # ------------------------------------------------------------------------------ handlers

    async def _models(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not request.path.endswith("/models"):
            return _not_found(request)
        return web.json_response({"object": "list", "data": self.models})

    async def _embeddings(self, body: dict[str, Any]) -> web.StreamResponse:
        def invalid(message: str, param: str) -> web.Response:
            return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                                "param": param, "code": None}}, status=400)

        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return invalid("'input' must be a string or a non-empty array of strings in this fake", "input")
        if any(not t for t in texts):
            return invalid("'$.input' is invalid. Please check the API reference", "input")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return invalid("you must provide a model parameter", "model")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return invalid(f"invalid encoding_format {encoding!r}", "encoding_format")
        dimensions = body.get("dimensions", self.embedding_dimensions)
        if not isinstance(dimensions, int) or dimensions < 1:
            return invalid("dimensions must be a positive integer", "dimensions")
        data = []
        for index, text in enumerate(texts):
            vector = fake_vector(model, text, dimensions)
            data.append({"object": "embedding", "index": index,
                         "embedding": base64_vector(vector) if encoding == "base64" else vector})
        data.reverse()  # the API sends them in order; a client must still read ``index``
        tokens = sum(fake_tokens(t) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": model,
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _chat(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if request.path.endswith("/embeddings"):
            return await self._embeddings(recorded.json or {})
        if not request.path.endswith("/chat/completions"):
            return _not_found(request)
        body = recorded.json or {}
        json_schema = (body.get("response_format") or {}).get("json_schema") or {}
        if json_schema.get("strict"):
            problem = strict_schema_problem(str(json_schema.get("name")), json_schema.get("schema"))
            if problem is not None:
                return web.json_response({"error": {"message": problem, "type": "invalid_request_error",
                                                    "param": "response_format", "code": None}}, status=400)
        scripted = self.replies.pop(0) if self.replies else Reply(text=_echo(body))
        model = scripted.model or body.get("model") or "fake-model"
        if not body.get("stream"):
            if scripted.raw_body is not None:
                return web.json_response(scripted.raw_body)
            return web.json_response(_completion(scripted, model))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = scripted.frames if scripted.frames is not None else _frames(scripted, model, include_usage)
        return await send_sse(request, frames, drop_after=scripted.drop_after)


# OpenAI's error `type` and `code` by status, as its API sends them.
_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _usage_of(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}


def _not_found(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": {"message": f"no route {request.method} {request.path}", "type": "not_found"}}, status=404
    )


def _echo(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(item.get("text", "") for item in content if item.get("type") == "text")
            return str(content or "")
    return ""


def _usage(scripted: Reply) -> dict[str, Any]:
    if scripted.usage is not None:
        return scripted.usage
    completion = len((scripted.text or "").split()) + 1
    return {"prompt_tokens": 12, "completion_tokens": completion, "total_tokens": 12 + completion}


def _finish_reason(scripted: Reply) -> str:
    return scripted.finish_reason or ("tool_calls" if scripted.tool_calls else "stop")


def _completion(scripted: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": scripted.text, "refusal": scripted.refusal}
    if scripted.mistral_list_content:
        items: list[dict[str, Any]] = []
        if scripted.reasoning:
            items.append({"type": "thinking", "thinking": [{"type": "text", "text": scripted.reasoning}]})
        if scripted.text:
            items.append({"type": "text", "text": scripted.text})
        message["content"] = items
    elif scripted.reasoning is not None:
        message[scripted.reasoning_key] = scripted.reasoning
    if scripted.tool_calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": _arguments_text(call.get("arguments", {}))},
            }
            for call in scripted.tool_calls
        ]
    body: dict[str, Any] = {
        "id": scripted.id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(scripted)}],
        "usage": _usage(scripted),
        "system_fingerprint": "fp_fake",
    }
    if scripted.usage_on == "x_groq":
        body["x_groq"] = {"id": "req_fake"}
    body.update(scripted.extra)
    return body


def _frames(scripted: Reply, model: str, include_usage: bool) -> list[str]:
    usage_on = scripted.usage_on
    if usage_on == "auto":
        usage_on = "last_chunk" if include_usage else "finish_chunk"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **top: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": scripted.id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            "obfuscation": "qZ3x",
        }
        if include_usage and usage_on == "last_chunk":
            data["usage"] = None
        data.update(scripted.extra)
        data.update(top)
        return data

    chunks: list[dict[str, Any]] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if scripted.reasoning:
        for piece in _pieces(scripted.reasoning, 5):
            if scripted.mistral_list_content:
                delta: dict[str, Any] = {
                    "content": [{"type": "thinking", "thinking": [{"type": "text", "text": piece}]}]
                }
            else:
                delta = {scripted.reasoning_key: piece, "content": None}
            chunks.append(chunk(delta))
    if scripted.text:
        for piece in _pieces(scripted.text, 5):
            if scripted.mistral_list_content:
                chunks.append(chunk({"content": [{"type": "text", "text": piece}]}))
            else:
                chunks.append(chunk({"content": piece}))
    if scripted.refusal:
        for piece in _pieces(scripted.refusal, 5):
            chunks.append(chunk({"refusal": piece}))
    for index, call in enumerate(scripted.tool_calls or []):
        chunks.append(
            chunk({"tool_calls": [{
                "index": index, "id": call["id"], "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }]})
        )
        for piece in _pieces(_arguments_text(call.get("arguments", {})), scripted.fragment_size):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    usage = _usage(scripted)
    if not scripted.omit_finish:
        top: dict[str, Any] = {}
        if usage_on == "finish_chunk":
            top["usage"] = usage
        elif usage_on == "x_groq":
            top["x_groq"] = {"id": "req_fake", "usage": usage}
        chunks.append(chunk({}, _finish_reason(scripted), **top))
        if include_usage and usage_on == "last_chunk":
            last = chunk({}, None, usage=usage)
            last["choices"] = []
            chunks.append(last)
    frames = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if scripted.bad_json_at is not None:
        frames[scripted.bad_json_at] = 'data: {"id": "chatcmpl-fake123", "choices": [\n\n'
    if scripted.error_after is not None:
        error = scripted.error_body or {
            "error": {"message": "Service Unavailable", "type": "internal_server_error"}
        }
        frames = frames[: scripted.error_after]
        if scripted.error_as == "event":
            frames.append(f"event: error\ndata: {json.dumps(error)}\n\n")
        else:
            frames.append(f"data: {json.dumps(error)}\n\n")
        return frames
    if not scripted.omit_done:
        frames.append("data: [DONE]\n\n")
    return frames
