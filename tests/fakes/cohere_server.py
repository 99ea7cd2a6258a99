"""A loopback Cohere v2 chat server for tests, scripted reply by reply.

:class:`CohereFake` answers ``POST /v2/chat`` and ``GET /v1/models``. Each call consumes the next
:meth:`CohereFake.reply`, streamed or not according to the request's ``stream`` flag, in the shapes
Cohere sends: ``message.content[]`` items, ``tool_plan``, ``tool_calls`` with JSON-string
arguments, citations, ``finish_reason: "COMPLETE"``, ``usage.tokens`` beside ``usage.billed_units``;
and as a stream, typed events (``message-start``, ``content-start`` / ``-delta`` / ``-end``,
``tool-plan-delta``, ``tool-call-start`` / ``-delta`` / ``-end``, ``citation-start`` / ``-end``,
``message-end``). It validates what Cohere rejects (tool results that answer no earlier tool call,
arguments that are not strings, malformed tools) with a 400 in Cohere's error shape. Status faults
come from :meth:`FakeServer.fail`; stream faults (an error event after HTTP 200, a dropped
connection, a missing ``message-end``) are part of a reply. With nothing scripted it echoes the
last user text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .embedding import fake_tokens, fake_vector
from .server import FakeServer, Recorded, send_sse

ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass
class CohereReply:
    """One scripted answer; see :meth:`CohereFake.reply`."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_plan: str | None = None
    thinking: str | None = None
    citations: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: str | None = None
    id: str = "5a50480a-cf52-46f0-af01-53d18539bd31"
    raw_body: Any = None
    error_after: int | None = None
    error_body: dict[str, Any] | None = None
    drop_after: int | None = None
    omit_end: bool = False
    fragment_size: int = 4


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


class CohereFake(FakeServer):
    """The Cohere v2 chat wire format on loopback."""

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.replies: list[CohereReply] = []
        self.models: list[dict[str, Any]] = [
            {"name": "command-a-03-2025", "endpoints": ["chat"]},
            {"name": "command-r7b-12-2024", "endpoints": ["chat"]},
        ]
        self.embedding_dimensions = 8
        self.route("POST", "/v2/chat", self._chat)
        self.route("POST", "/v2/embed", self._embed)
        self.route("GET", "/v1/models", self._models)

    async def __aenter__(self) -> CohereFake:
        await self.start()
        return self

    def reply(self, text: str | None = None, **options: Any) -> CohereReply:
        """Queue the next answer.

        Options: ``tool_calls=[{"id", "name", "arguments": dict | str}]``, ``tool_plan=``,
        ``thinking=``, ``citations=[...]``, ``usage=`` (the whole usage object),
        ``finish_reason=`` (Cohere's spelling), ``error=`` (message-end's error text), ``id=``,
        ``raw_body=`` (answer exactly this JSON), and stream faults: ``error_after=N`` frames with
        ``error_body=``, ``drop_after=N`` frames, ``omit_end=``; ``fragment_size=`` splits deltas.
        """
        scripted = CohereReply(text=text, **options)
        self.replies.append(scripted)
        return scripted

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # ------------------------------------------------------------------------------ handlers

    async def _models(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response({"models": self.models})

    _INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering", "image"})

    async def _embed(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        """``/v2/embed`` as Cohere answers it: embeddings by type, billed input tokens under ``meta``."""
        if self.api_key is not None and recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid api token")
        body = recorded.json or {}
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "invalid request: texts must be a non-empty list of strings")
        if len(texts) > 96:
            return _error(400, f"invalid request: total number of texts must be at most 96 - received {len(texts)}")
        if body.get("input_type") not in self._INPUT_TYPES:
            return _error(400, "invalid request: valid input_type must be provided with the provided model")
        types = body.get("embedding_types")
        if types != ["float"]:
            return _error(400, f"this fake serves embedding_types ['float'] only, not {types!r}")
        model = str(body.get("model"))
        dimensions = body.get("output_dimension") or self.embedding_dimensions
        vectors = [fake_vector(f"{model}:{body['input_type']}", text, dimensions) for text in texts]
        tokens = sum(fake_tokens(t) for t in texts)
        return web.json_response({
            "id": "embed-fake-1", "texts": texts, "embeddings": {"float": vectors},
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        })

    async def _chat(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if self.api_key is not None and recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid api token")
        try:
            body = recorded.json or {}
        except ValueError:
            return _error(400, "invalid request: the body is not JSON")
        problem = _validate(body)
        if problem is not None:
            return _error(400, problem)
        scripted = self.replies.pop(0) if self.replies else CohereReply(text=_echo(body))
        if not body.get("stream"):
            if scripted.raw_body is not None:
                return web.json_response(scripted.raw_body)
            return web.json_response(_response(scripted))
        return await send_sse(request, _frames(scripted), drop_after=scripted.drop_after)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"id": "err-fake", "message": message}, status=status)


def _validate(body: dict[str, Any]) -> str | None:
    if not body.get("model"):
        return "invalid request: model must be specified"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "invalid request: messages must be a non-empty list"
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            return f"invalid request: messages[{index}].role must be one of system, user, assistant, tool"
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                if not isinstance(call.get("function", {}).get("arguments"), str):
                    return f"invalid request: messages[{index}].tool_calls arguments must be a string"
                call_ids.add(call.get("id"))
            if not message.get("content") and not message.get("tool_calls"):
                return f"invalid request: messages[{index}] (assistant) needs content or tool_calls"
        if role == "tool" and message.get("tool_call_id") not in call_ids:
            return (
                f"invalid request: messages[{index}].tool_call_id {message.get('tool_call_id')!r} "
                "does not match any tool call"
            )
    for index, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            return f"invalid request: tools[{index}] must be {{type: function, function: {{name, ...}}}}"
    return None


def _echo(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(item.get("text", "") for item in content if item.get("type") == "text")
            return str(content or "")
    return ""


def _usage(scripted: CohereReply) -> dict[str, Any]:
    if scripted.usage is not None:
        return scripted.usage
    output = float(len((scripted.text or "").split()) + 1)
    return {
        "billed_units": {"input_tokens": 12.0, "output_tokens": output},
        "tokens": {"input_tokens": 215.0, "output_tokens": output},
    }


def _finish_reason(scripted: CohereReply) -> str:
    return scripted.finish_reason or ("TOOL_CALL" if scripted.tool_calls else "COMPLETE")


def _wire_calls(scripted: CohereReply) -> list[dict[str, Any]]:
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": _arguments_text(call.get("arguments", {}))},
        }
        for call in scripted.tool_calls or []
    ]


def _response(scripted: CohereReply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if scripted.thinking:
        content.append({"type": "thinking", "thinking": scripted.thinking})
    if scripted.text:
        content.append({"type": "text", "text": scripted.text})
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if scripted.tool_plan:
        message["tool_plan"] = scripted.tool_plan
    if scripted.tool_calls:
        message["tool_calls"] = _wire_calls(scripted)
    if scripted.citations:
        message["citations"] = scripted.citations
    body: dict[str, Any] = {
        "id": scripted.id,
        "message": message,
        "finish_reason": _finish_reason(scripted),
        "usage": _usage(scripted),
    }
    if scripted.error:
        body["error"] = scripted.error
    return body


def _frames(scripted: CohereReply) -> list[str]:
    events: list[dict[str, Any]] = [{
        "type": "message-start", "id": scripted.id,
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
                              "citations": []}},
    }]
    size = scripted.fragment_size
    index = 0
    for kind, text in (("thinking", scripted.thinking), ("text", scripted.text)):
        if not text:
            continue
        events.append({"type": "content-start", "index": index,
                       "delta": {"message": {"content": {"type": kind, kind: ""}}}})
        for piece in _pieces(text, size):
            events.append({"type": "content-delta", "index": index,
                           "delta": {"message": {"content": {kind: piece}}}, "logprobs": None})
        if kind == "text":
            for citation in scripted.citations or []:
                events.append({"type": "citation-start", "index": 0, "delta": {"message": {"citations": citation}}})
                events.append({"type": "citation-end", "index": 0})
        events.append({"type": "content-end", "index": index})
        index += 1
    if scripted.tool_plan:
        for piece in _pieces(scripted.tool_plan, size):
            events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for call_index, call in enumerate(_wire_calls(scripted)):
        start = {"id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append({"type": "tool-call-start", "index": call_index, "delta": {"message": {"tool_calls": start}}})
        for piece in _pieces(call["function"]["arguments"], size):
            events.append({"type": "tool-call-delta", "index": call_index,
                           "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}})
        events.append({"type": "tool-call-end", "index": call_index})
    end: dict[str, Any] = {"finish_reason": _finish_reason(scripted), "usage": _usage(scripted)}
    if scripted.error:
        end["error"] = scripted.error
    if not scripted.omit_end:
        events.append({"type": "message-end", "id": None, "delta": end})
    frames = [f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events]
    if scripted.error_after is not None:
        error = scripted.error_body or {"type": "error", "message": "internal server error", "code": "server_error"}
        frames = [*frames[: scripted.error_after], f"event: error\ndata: {json.dumps(error)}\n\n"]
    return frames
