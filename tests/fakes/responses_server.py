"""A loopback OpenAI Responses API server for tests, scripted reply by reply.

:class:`ResponsesFake` answers ``POST .../responses`` and ``GET .../models`` under any path prefix
(``/v1``, Azure's ``/openai/v1``). Each call consumes the next :meth:`ResponsesFake.reply`, streamed
or not according to the request's ``stream`` flag: a response object with ``output[]`` items
(``reasoning`` with summary parts and, when the request asked for it with ``include``, encrypted
content; ``message`` with ``output_text`` or ``refusal``; ``function_call``; any extra item), or
the event sequence the API streams (``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, ``response.output_text.delta``,
``response.reasoning_summary_part.added``, ``response.reasoning_summary_text.delta``,
``response.function_call_arguments.delta`` / ``.done``, ``response.output_item.done``,
``response.completed`` / ``.incomplete`` / ``.failed``). It validates what the API rejects: a
``function_call_output`` without a matching ``call_id`` earlier in the input, a chat-completions
shaped tool, content types that do not fit the role, a reasoning item it cannot resolve (no
encrypted content with ``store: false``), a ``strict`` output schema strict mode refuses
(:mod:`.openai_strict`). Status faults come from :meth:`FakeServer.fail`; stream
faults (an ``error`` event, a dropped connection, no terminal event) are part of a reply. With
nothing scripted it echoes the last user text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .openai_strict import strict_schema_problem
from .server import FakeServer, Recorded, send_sse

USER_CONTENT = frozenset({"input_text", "input_image", "input_file"})
ASSISTANT_CONTENT = frozenset({"output_text", "refusal"})


@dataclass
class ResponsesReply:
    """One scripted answer; see :meth:`ResponsesFake.reply`."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning_summary: str | list[str] | None = None
    encrypted_content: str = "gAAAAABfake-encrypted-reasoning=="
    refusal: str | None = None
    annotations: list[dict[str, Any]] | None = None
    extra_items: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    status: str = "completed"
    incomplete_reason: str | None = None
    error: dict[str, Any] | None = None
    model: str | None = None
    id: str = "resp_fake123"
    raw_body: Any = None
    deltas: bool = True
    error_after: int | None = None
    error_body: dict[str, Any] | None = None
    drop_after: int | None = None
    omit_terminal: bool = False
    fragment_size: int = 4
    skip_events: tuple[str, ...] = ()
    """Stream fault: events of these types are left out (the terminal event still has everything)."""
    skip_last_deltas: int = 0
    """Stream fault: the last N ``response.output_text.delta`` events are left out."""


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class ResponsesFake(FakeServer):
    """The OpenAI Responses API wire format on loopback."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[ResponsesReply] = []
        self.models: list[dict[str, Any]] = [{"id": "gpt-5-mini", "object": "model", "owned_by": "openai"}]
        self.route("POST", "/", self._responses, prefix=True)
        self.route("GET", "/", self._models, prefix=True)

    async def __aenter__(self) -> ResponsesFake:
        await self.start()
        return self

    def reply(self, text: str | None = None, **options: Any) -> ResponsesReply:
        """Queue the next answer.

        Options: ``tool_calls=[{"id" (the call_id), "name", "arguments": dict | str}]``,
        ``reasoning_summary=`` (a string or a list of summary parts), ``encrypted_content=``,
        ``refusal=``, ``annotations=``, ``extra_items=`` (output items of other types),
        ``usage=``, ``status=`` (``completed`` | ``incomplete`` | ``failed``),
        ``incomplete_reason=``, ``error=`` (of a failed response), ``model=``, ``id=``,
        ``raw_body=`` (answer exactly this JSON), ``deltas=False`` (stream items whole, without
        deltas), and stream faults: ``error_after=N`` events with ``error_body=``, ``drop_after=N``
        events, ``omit_terminal=``; ``fragment_size=`` splits deltas.
        """
        scripted = ResponsesReply(text=text, **options)
        self.replies.append(scripted)
        return scripted

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # ------------------------------------------------------------------------------ handlers

    async def _models(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not request.path.endswith("/models"):
            return _error(404, f"no route {request.method} {request.path}", "not_found")
        return web.json_response({"object": "list", "data": self.models})

    async def _responses(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not request.path.endswith("/responses"):
            return _error(404, f"no route {request.method} {request.path}", "not_found")
        body = recorded.json or {}
        problem = _validate(body)
        if problem is not None:
            return problem
        scripted = self.replies.pop(0) if self.replies else ResponsesReply(text=_echo(body))
        model = scripted.model or body.get("model") or "fake-model"
        encrypted = "reasoning.encrypted_content" in (body.get("include") or [])
        if not body.get("stream"):
            if scripted.raw_body is not None:
                return web.json_response(scripted.raw_body)
            return web.json_response(_response(scripted, model, encrypted))
        return await send_sse(request, _frames(scripted, model, encrypted), drop_after=scripted.drop_after)


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": None}}, status=status
    )


def _validate(body: dict[str, Any]) -> web.Response | None:
    if not body.get("model"):
        return _error(400, "Missing required parameter: 'model'.", param="model")
    items = body.get("input")
    if not isinstance(items, list):
        return _error(400, "Invalid type for 'input': expected a list of items.", param="input")
    call_ids: set[str] = set()
    for index, item in enumerate(items):
        kind = item.get("type")
        if kind == "message":
            allowed = ASSISTANT_CONTENT if item.get("role") == "assistant" else USER_CONTENT
            for position, content in enumerate(item.get("content") or []):
                if content.get("type") not in allowed:
                    return _error(
                        400, f"Invalid value: '{content.get('type')}'. Supported values are: "
                        f"{', '.join(sorted(allowed))}.", param=f"input[{index}].content[{position}]",
                    )
        elif kind == "function_call":
            if not isinstance(item.get("arguments"), str) or not item.get("call_id"):
                return _error(400, "function_call needs call_id and string arguments", param=f"input[{index}]")
            call_ids.add(item["call_id"])
        elif kind == "function_call_output":
            if item.get("call_id") not in call_ids:
                return _error(
                    400, f"No tool call found for function call output with call_id {item.get('call_id')}.",
                    param="input",
                )
        elif kind == "reasoning":
            if not body.get("store") and not item.get("encrypted_content"):
                return _error(
                    404, f"Item with id '{item.get('id')}' not found. Items are not persisted when `store` "
                    "is set to false. Try again with `store` set to true, or remove this item from your input.",
                )
        else:
            return _error(400, f"Invalid input item type {kind!r}.", param=f"input[{index}]")
    for index, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function" or not tool.get("name"):
            return _error(400, f"Missing required parameter: 'tools[{index}].name'.", param=f"tools[{index}].name")
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema" and text_format.get("strict"):
        problem = strict_schema_problem(str(text_format.get("name")), text_format.get("schema"))
        if problem is not None:
            return _error(400, problem, param="text.format.schema")
    return None


def _echo(body: dict[str, Any]) -> str:
    for item in reversed(body.get("input") or []):
        if item.get("type") == "message" and item.get("role") == "user":
            return "".join(c.get("text", "") for c in item.get("content") or [] if c.get("type") == "input_text")
    return ""


def _usage(scripted: ResponsesReply) -> dict[str, Any]:
    if scripted.usage is not None:
        return scripted.usage
    output = len((scripted.text or "").split()) + 1
    return {
        "input_tokens": 20, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 20 + output,
    }


def _summaries(scripted: ResponsesReply) -> list[str]:
    summary = scripted.reasoning_summary
    if summary is None:
        return []
    return [summary] if isinstance(summary, str) else list(summary)


def _items(scripted: ResponsesReply, encrypted: bool) -> list[dict[str, Any]]:
    """The complete output items, in output order."""
    items: list[dict[str, Any]] = []
    if scripted.reasoning_summary is not None:
        reasoning: dict[str, Any] = {
            "id": "rs_fake0", "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text} for text in _summaries(scripted)],
        }
        if encrypted:
            reasoning["encrypted_content"] = scripted.encrypted_content
        items.append(reasoning)
    content: list[dict[str, Any]] = []
    if scripted.text is not None:
        content.append({"type": "output_text", "text": scripted.text, "annotations": scripted.annotations or [],
                        "logprobs": []})
    if scripted.refusal is not None:
        content.append({"type": "refusal", "refusal": scripted.refusal})
    if content:
        items.append({"id": "msg_fake0", "type": "message", "status": "completed", "role": "assistant",
                      "content": content})
    for index, call in enumerate(scripted.tool_calls or []):
        arguments = call.get("arguments", {})
        items.append({
            "id": f"fc_fake{index}", "type": "function_call", "status": "completed", "call_id": call["id"],
            "name": call["name"], "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        })
    items.extend(scripted.extra_items or [])
    return items


def _response(scripted: ResponsesReply, model: str, encrypted: bool, *, final: bool = True) -> dict[str, Any]:
    status = scripted.status if final else "in_progress"
    body: dict[str, Any] = {
        "id": scripted.id, "object": "response", "created_at": 1_750_000_000, "status": status,
        "error": scripted.error if status == "failed" else None,
        "incomplete_details": {"reason": scripted.incomplete_reason} if status == "incomplete" else None,
        "model": model, "output": _items(scripted, encrypted) if final else [],
        "parallel_tool_calls": True, "store": False, "text": {"format": {"type": "text"}},
        "usage": _usage(scripted) if final else None,
    }
    return body


def _frames(scripted: ResponsesReply, model: str, encrypted: bool) -> list[str]:
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(scripted, model, encrypted, final=False)},
        {"type": "response.in_progress", "response": _response(scripted, model, encrypted, final=False)},
    ]
    size = scripted.fragment_size
    for output_index, item in enumerate(_items(scripted, encrypted)):
        events.extend(_item_events(item, output_index, size, deltas=scripted.deltas))
    if scripted.skip_events:
        events = [event for event in events if event["type"] not in scripted.skip_events]
    if scripted.skip_last_deltas:
        positions = [i for i, event in enumerate(events) if event["type"] == "response.output_text.delta"]
        dropped = set(positions[-scripted.skip_last_deltas:])
        events = [event for i, event in enumerate(events) if i not in dropped]
    terminal = {"completed": "response.completed", "incomplete": "response.incomplete",
                "failed": "response.failed"}[scripted.status]
    if not scripted.omit_terminal:
        events.append({"type": terminal, "response": _response(scripted, model, encrypted)})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    frames = [f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events]
    if scripted.error_after is not None:
        error = scripted.error_body or {"type": "error", "code": "server_error", "message": "The server had an error.",
                                        "param": None, "sequence_number": scripted.error_after}
        frames = [*frames[: scripted.error_after], f"event: error\ndata: {json.dumps(error)}\n\n"]
    return frames


def _item_events(item: dict[str, Any], output_index: int, size: int, *, deltas: bool) -> list[dict[str, Any]]:
    kind = item["type"]
    where = {"item_id": item.get("id"), "output_index": output_index}
    if kind == "message":
        added = {**item, "status": "in_progress", "content": []}
    elif kind == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
    elif kind == "reasoning":
        added = {"id": item["id"], "type": "reasoning", "summary": []}
    else:
        added = dict(item)
    events: list[dict[str, Any]] = [{"type": "response.output_item.added", "output_index": output_index, "item": added}]
    if deltas and kind == "message":
        for content_index, content in enumerate(item["content"]):
            at = {**where, "content_index": content_index}
            if content["type"] == "output_text":
                events.append({"type": "response.content_part.added", **at,
                               "part": {"type": "output_text", "text": "", "annotations": []}})
                for piece in _pieces(content["text"], size):
                    events.append({"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []})
                events.append({"type": "response.output_text.done", **at, "text": content["text"]})
            else:
                events.append({"type": "response.content_part.added", **at, "part": {"type": "refusal", "refusal": ""}})
                for piece in _pieces(content["refusal"], size):
                    events.append({"type": "response.refusal.delta", **at, "delta": piece})
                events.append({"type": "response.refusal.done", **at, "refusal": content["refusal"]})
            events.append({"type": "response.content_part.done", **at, "part": content})
    elif deltas and kind == "function_call":
        for piece in _pieces(item["arguments"], size):
            events.append({"type": "response.function_call_arguments.delta", **where, "delta": piece})
        events.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
    elif deltas and kind == "reasoning":
        for summary_index, summary in enumerate(item["summary"]):
            at = {**where, "summary_index": summary_index}
            events.append({"type": "response.reasoning_summary_part.added", **at,
                           "part": {"type": "summary_text", "text": ""}})
            for piece in _pieces(summary["text"], size):
                events.append({"type": "response.reasoning_summary_text.delta", **at, "delta": piece})
            events.append({"type": "response.reasoning_summary_text.done", **at, "text": summary["text"]})
            events.append({"type": "response.reasoning_summary_part.done", **at, "part": summary})
    events.append({"type": "response.output_item.done", "output_index": output_index, "item": item})
    return events
