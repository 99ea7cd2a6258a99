"""A loopback fake of the Anthropic Messages API (``/v1/messages`` and ``/v1/messages/count_tokens``).

:class:`AnthropicFake` answers from a script (:meth:`AnthropicFake.reply`), or echoes the last user
message when the script is empty; it answers whole or as the real API's event stream, per the
request's ``stream`` flag (``message_start``, ``ping``, ``content_block_*`` with text, input JSON
split across several deltas, thinking and ``signature_delta``, ``message_delta``, ``message_stop``).
It checks what the real API checks and a mapping bug would break: the ``x-api-key`` and
``anthropic-version`` headers, ``max_tokens``, strict user/assistant alternation, every
``tool_use`` answered by a ``tool_result`` (first in the next user turn) and every ``tool_result``
answering one, thinking signatures it issued itself, the thinking budget, and the fields
``count_tokens`` accepts, and, with thinking on, that a tool-use turn in progress began with a
thinking block (the API's "one thinking setting per assistant turn"). Faults: Anthropic-shaped error statuses (:meth:`error`,
:meth:`overloaded`, :meth:`rate_limited`) and an ``event: error`` mid-stream
(:meth:`error_mid_stream`); a stream whose last content block is never stopped
(``reply(..., unclosed_last_block=True)``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .server import FakeServer, Recorded, send_sse

COUNT_TOKENS_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "cache_control"}
)


@dataclass
class Reply:
    """One scripted answer: the content blocks, and how the message ends."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None = None
    usage: dict[str, int] | None = None
    unclosed_last_block: bool = False
    """Streamed: the last content block gets no ``content_block_stop`` before ``message_stop``."""


@dataclass
class StreamFault:
    """A stream that breaks with ``event: error`` after ``after_blocks`` content blocks."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    after_blocks: int = 1


@dataclass
class _Invalid(Exception):
    message: str
    status: int = 400
    error_type: str = "invalid_request_error"


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error body shape."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


class AnthropicFake(FakeServer):
    """The fake API. ``api_key=None`` accepts any key."""

    def __init__(self, *, api_key: str | None = "sk-ant-test-key", chunk_chars: int = 4) -> None:
        super().__init__()
        self.api_key = api_key
        self.chunk_chars = chunk_chars
        self.script: list[Reply] = []
        self.stream_faults: list[StreamFault] = []
        self.token_count: int | None = None
        """What count_tokens answers; None: an estimate from the body's size."""
        self.cumulative_delta_usage = False
        """Send input and cache counts in message_delta too, as newer API versions do."""
        self.issued_signatures: set[str] = set()
        self._ids = itertools.count(1)
        self.route("POST", "/v1/messages", self._messages)
        self.route("POST", "/v1/messages/count_tokens", self._count_tokens)

    async def __aenter__(self) -> AnthropicFake:
        await self.start()
        return self

    # --------------------------------------------------------------------------------- script

    def reply(
        self,
        text: str | None = None,
        *,
        tool_uses: list[dict[str, Any]] | None = None,
        thinking: str | None = None,
        signature: str | None = None,
        redacted_thinking: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
        stop_reason: str | None = None,
        stop_sequence: str | None = None,
        unclosed_last_block: bool = False,
    ) -> Reply:
        """Queue an answer. Blocks come in the API's order: thinking, text, tool uses.

        ``tool_uses`` items are ``{"name", "input", "id"?}``; ``blocks`` (raw content blocks) replaces
        all of that when given. The signature defaults to one derived from the thinking text.
        """
        content: list[dict[str, Any]] = []
        if blocks is not None:
            content = [dict(b) for b in blocks]
        else:
            if thinking is not None:
                signature = signature or "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:24]
                content.append({"type": "thinking", "thinking": thinking, "signature": signature})
            if redacted_thinking is not None:
                content.append({"type": "redacted_thinking", "data": redacted_thinking})
            if text is not None:
                content.append({"type": "text", "text": text})
            for use in tool_uses or []:
                content.append({
                    "type": "tool_use",
                    "id": use.get("id") or f"toolu_fake_{next(self._ids):04d}",
                    "name": use["name"],
                    "input": use.get("input", {}),
                })
        for block in content:
            if block["type"] == "thinking":
                self.issued_signatures.add(block["signature"])
        if stop_reason is None:
            stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        scripted = Reply(content, stop_reason, stop_sequence, usage, unclosed_last_block)
        self.script.append(scripted)
        return scripted

    def error(self, status: int, error_type: str, message: str, *, times: int = 1,
              headers: dict[str, str] | None = None) -> None:
        """Answer the next request(s) with an Anthropic error body (also for stream requests: JSON)."""
        merged = {"request-id": "req_fake_error", **(headers or {})}
        self.fail(status, error_body(error_type, message), times=times, headers=merged)

    def overloaded(self, *, times: int = 1) -> None:
        self.error(529, "overloaded_error", "Overloaded", times=times)

    def rate_limited(self, *, retry_after: float = 7, times: int = 1) -> None:
        self.error(
            429, "rate_limit_error", "This request would exceed your organization's rate limit.",
            times=times, headers={"retry-after": str(retry_after)},
        )

    def error_mid_stream(self, error_type: str = "overloaded_error", message: str = "Overloaded",
                         *, after_blocks: int = 1) -> None:
        self.stream_faults.append(StreamFault(error_type, message, after_blocks))

    # -------------------------------------------------------------------------------- handlers

    async def _messages(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            self._check_headers(recorded)
            body = self._json_body(recorded)
            self._validate(body, count_only=False)
        except _Invalid as invalid:
            return self._error_response(invalid)
        scripted = self.script.pop(0) if self.script else self._echo(body)
        message = self._message(body, scripted)
        if body.get("stream"):
            fault = self.stream_faults.pop(0) if self.stream_faults else None
            return await send_sse(request, self._events(message, fault, unclosed=scripted.unclosed_last_block))
        return web.json_response(message, headers={"request-id": f"req_fake_{next(self._ids):04d}"})

    async def _count_tokens(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            self._check_headers(recorded)
            body = self._json_body(recorded)
            extra = sorted(set(body) - COUNT_TOKENS_FIELDS)
            if extra:
                raise _Invalid(f"{extra[0]}: Extra inputs are not permitted")
            self._validate(body, count_only=True)
        except _Invalid as invalid:
            return self._error_response(invalid)
        count = self.token_count if self.token_count is not None else _estimate(body)
        return web.json_response({"input_tokens": count})

    # ------------------------------------------------------------------------------ validation

    def _check_headers(self, recorded: Recorded) -> None:
        key = recorded.headers.get("x-api-key")
        if self.api_key is not None and key != self.api_key:
            raise _Invalid("invalid x-api-key", 401, "authentication_error")
        if not recorded.headers.get("anthropic-version"):
            raise _Invalid("anthropic-version: header is required")

    @staticmethod
    def _json_body(recorded: Recorded) -> dict[str, Any]:
        try:
            body = recorded.json
        except ValueError as exc:
            raise _Invalid(f"There was an issue with your request body: {exc}") from exc
        if not isinstance(body, dict):
            raise _Invalid("request body must be a JSON object")
        return body

    def _validate(self, body: dict[str, Any], *, count_only: bool) -> None:
        if not isinstance(body.get("model"), str):
            raise _Invalid("model: Field required")
        max_tokens = body.get("max_tokens")
        if not count_only and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _Invalid("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("messages: at least one message is required")
        self._validate_system(body.get("system"))
        tool_names = self._validate_tools(body.get("tools"))
        thinking = body.get("thinking")
        thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
        if thinking_on and isinstance(thinking, dict):
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise _Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if isinstance(max_tokens, int) and budget >= max_tokens:
                raise _Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
            if "temperature" in body and body["temperature"] != 1:
                raise _Invalid("`temperature` may only be set to 1 when thinking is enabled")
        choice = body.get("tool_choice")
        if choice is not None:
            if choice.get("type") not in ("auto", "any", "tool", "none"):
                raise _Invalid(f"tool_choice.type: unknown value {choice.get('type')!r}")
            if choice["type"] == "tool" and choice.get("name") not in tool_names:
                raise _Invalid(f"tool_choice: tool {choice.get('name')!r} is not among the tools")
            if thinking_on and choice["type"] in ("any", "tool"):
                raise _Invalid("Thinking may not be enabled when tool_choice forces tool use.")
        breakpoints = json.dumps(body).count('"cache_control"')
        if breakpoints > 4:
            raise _Invalid(f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}.")
        self._validate_messages(messages)
        if thinking_on and not count_only:
            self._validate_thinking_turn(messages)

    @staticmethod
    def _validate_thinking_turn(messages: list[Any]) -> None:
        """The assistant turn in progress (a tool-use loop) must have begun with thinking."""
        def blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
            content = message["content"]
            return [{"type": "text", "text": content}] if isinstance(content, str) else content

        first: tuple[int, dict[str, Any]] | None = None
        position = len(messages) - 1
        while position >= 1:
            user, assistant = blocks(messages[position]), blocks(messages[position - 1])
            if not any(b.get("type") == "tool_result" for b in user):
                break
            if not any(b.get("type") == "tool_use" for b in assistant):
                break
            first = (position - 1, assistant[0])
            position -= 2
        if first is not None and first[1].get("type") not in ("thinking", "redacted_thinking"):
            raise _Invalid(
                f"messages.{first[0]}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{first[1].get('type')}`. When `thinking` is enabled, a final `assistant` message must start "
                "with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
                "We recommend you include thinking blocks from previous turns. To avoid this requirement, "
                "disable `thinking`."
            )

    @staticmethod
    def _validate_system(system: Any) -> None:
        if system is None or isinstance(system, str):
            return
        if not isinstance(system, list) or any(b.get("type") != "text" or not b.get("text") for b in system):
            raise _Invalid("system: must be a string or a list of non-empty text blocks")

    @staticmethod
    def _validate_tools(tools: Any) -> set[str]:
        if tools is None:
            return set()
        names: set[str] = set()
        for index, tool in enumerate(tools):
            schema = tool.get("input_schema")
            if not tool.get("name") or not isinstance(schema, dict) or schema.get("type") != "object":
                raise _Invalid(f"tools.{index}: needs a name and an input_schema of type object")
            if tool["name"] in names:
                raise _Invalid(f"tools: Tool names must be unique ({tool['name']})")
            names.add(tool["name"])
        return names

    def _validate_messages(self, messages: list[Any]) -> None:
        pending_tool_uses: list[str] = []
        previous_role: str | None = None
        for index, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant"):
                raise _Invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
            if role == previous_role:
                raise _Invalid(
                    f"messages: roles must alternate between \"user\" and \"assistant\", but found multiple "
                    f"\"{role}\" roles in a row"
                )
            previous_role = role
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                raise _Invalid(f"messages.{index}: content must be a non-empty string or list")
            if role == "user":
                answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
                leading = list(itertools.takewhile(lambda b: b.get("type") == "tool_result", blocks))
                if len(leading) != len(answered):
                    raise _Invalid(f"messages.{index}: tool_result blocks must come first in the content")
                for call_id in answered:
                    if call_id not in pending_tool_uses:
                        raise _Invalid(
                            f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{call_id}. Each `tool_result` block must have a corresponding `tool_use` block "
                            "in the previous message."
                        )
                missing = [call_id for call_id in pending_tool_uses if call_id not in answered]
                if missing:
                    raise _Invalid(
                        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
                        f"after: {', '.join(missing)}"
                    )
                pending_tool_uses = []
            for block in blocks:
                self._validate_block(index, role, block)
            if role == "assistant":
                pending_tool_uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]

    def _validate_block(self, index: int, role: str, block: dict[str, Any]) -> None:
        kind = block.get("type")
        where = f"messages.{index}"
        if kind == "text":
            if not block.get("text"):
                raise _Invalid(f"{where}: text content blocks must be non-empty")
        elif kind == "image":
            source = block.get("source") or {}
            ok = (source.get("type") == "base64" and source.get("media_type") and source.get("data")) or (
                source.get("type") == "url" and source.get("url")
            )
            if role != "user" or not ok:
                raise _Invalid(f"{where}: image blocks need a base64 or url source, in a user message")
        elif kind == "document":
            if role != "user" or (block.get("source") or {}).get("type") not in ("base64", "url", "text"):
                raise _Invalid(f"{where}: document blocks need a base64, url or text source, in a user message")
        elif kind == "tool_use":
            if role != "assistant" or not block.get("id") or not isinstance(block.get("input"), dict):
                raise _Invalid(f"{where}: tool_use blocks need an id and an input object, in an assistant message")
        elif kind == "tool_result":
            if role != "user":
                raise _Invalid(f"{where}: tool_result blocks belong in a user message")
        elif kind == "thinking":
            if role != "assistant" or block.get("signature") not in self.issued_signatures:
                raise _Invalid(f"{where}: Invalid `signature` in `thinking` block")
        elif kind == "redacted_thinking":
            if role != "assistant" or not block.get("data"):
                raise _Invalid(f"{where}: redacted_thinking blocks need data, in an assistant message")
        else:
            raise _Invalid(f"{where}: unknown content block type {kind!r}")

    @staticmethod
    def _error_response(invalid: _Invalid) -> web.Response:
        return web.json_response(
            error_body(invalid.error_type, invalid.message), status=invalid.status,
            headers={"request-id": "req_fake_invalid"},
        )

    # -------------------------------------------------------------------------------- answers

    @staticmethod
    def _echo(body: dict[str, Any]) -> Reply:
        text = ""
        for message in reversed(body["messages"]):
            if message["role"] != "user":
                continue
            content = message["content"]
            if isinstance(content, str):
                text = content
            else:
                text = "".join(b.get("text", "") for b in content if b.get("type") == "text") or "".join(
                    str(b.get("content", "")) for b in content if b.get("type") == "tool_result"
                )
            break
        return Reply([{"type": "text", "text": text or "(nothing to echo)"}], "end_turn")

    def _message(self, body: dict[str, Any], scripted: Reply) -> dict[str, Any]:
        usage = {
            "input_tokens": _estimate(body),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": max(1, len(json.dumps(scripted.content)) // 4),
        }
        usage.update(scripted.usage or {})
        return {
            "id": f"msg_fake_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": scripted.content,
            "stop_reason": scripted.stop_reason,
            "stop_sequence": scripted.stop_sequence,
            "usage": usage,
        }

    def _events(
        self, message: dict[str, Any], fault: StreamFault | None, *, unclosed: bool = False
    ) -> list[str | bytes]:
        usage = message["usage"]
        start_usage = {**usage, "output_tokens": 1}
        frames: list[str | bytes] = [
            _frame("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                                 "stop_sequence": None, "usage": start_usage}}),
            _frame("ping", {}),
        ]
        for index, block in enumerate(message["content"]):
            if fault is not None and index >= fault.after_blocks:
                break
            block_frames = self._block_frames(index, block)
            if unclosed and index == len(message["content"]) - 1:
                block_frames = block_frames[:-1]  # no content_block_stop
            frames.extend(block_frames)
        if fault is not None:
            frames.append(_frame("error", {"error": {"type": fault.error_type, "message": fault.message}}))
            return frames
        delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
        if self.cumulative_delta_usage:
            delta_usage = dict(usage)
        frames.append(_frame("message_delta", {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
            "usage": delta_usage,
        }))
        frames.append(_frame("message_stop", {}))
        return frames

    def _block_frames(self, index: int, block: dict[str, Any]) -> list[str]:
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"], self.chunk_chars)]
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = json.dumps(block["input"])
            # Like the real API: an empty first fragment, then the JSON cut anywhere.
            pieces = ["", *_chunks(arguments, max(1, len(arguments) // 3 + 1))]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block["thinking"], self.chunk_chars)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:  # redacted_thinking and anything else arrive whole
            start = block
        frames = [_frame("content_block_start", {"index": index, "content_block": start})]
        frames.extend(_frame("content_block_delta", {"index": index, "delta": d}) for d in deltas)
        frames.append(_frame("content_block_stop", {"index": index}))
        return frames


def _frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n"


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _estimate(body: dict[str, Any]) -> int:
    prompt = {k: body.get(k) for k in ("system", "messages", "tools")}
    return max(1, len(json.dumps(prompt)) // 4)
