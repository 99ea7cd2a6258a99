"""The Anthropic Messages API backend (``type: anthropic``): ``POST {base_url}/v1/messages``.

:class:`AnthropicBackend` sends the body built by :mod:`.anthropic_mapping` (which holds both mapping
directions and their tables) and reads the answer back, whole or streamed. A stream is decoded by
:class:`AnthropicStreamDecoder`, a small state machine over Anthropic's server-sent events
(``message_start``, ``content_block_start`` / ``_delta`` / ``_stop``, ``message_delta``,
``message_stop``, ``ping``, ``error``; a block still open at ``message_stop`` is closed there, so a
tool call survives a cut-off stream as it does the non-streaming answer) whose events feed a
:class:`~agentadapter.llm.messages.StreamAccumulator`, so a stream accumulates into exactly the
``Response`` of :meth:`AnthropicBackend.generate`; the loop around it is the one every streaming
backend shares (:meth:`~agentadapter.llm.backends.base.Backend.stream_with`), so a connection that
breaks mid-stream is a :class:`~agentadapter.llm.errors.StreamInterruptedError` here too. Retries,
failover and cost are the facade's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from agentadapter.llm.backends.anthropic_mapping import (
    ANTHROPIC_VERSION,
    COUNT_TOKENS_PATH,
    MESSAGES_PATH,
    REASONING_PROVIDER,
    OpenBlock,
    WireRequest,
    build_request,
    count_tokens_body,
    finish_reason,
    output_text,
    parse_response,
    stop_details,
    usage_from_wire,
)
from agentadapter.llm.backends.base import Backend, StreamDecoder, elapsed_ms
from agentadapter.llm.errors import InvalidResponseError, StreamInterruptedError, error_from_event
from agentadapter.llm.messages import (
    ReasoningPart,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    ToolCallPart,
    parse_tool_arguments,
)
from agentadapter.llm.transport import HTTPRequest

DEFAULT_BASE_URL = "https://api.anthropic.com"

__all__ = ["AnthropicBackend", "AnthropicStreamDecoder"]


class AnthropicBackend(Backend):
    """Claude models through the Anthropic Messages API.

    ``config.options["beta"]`` (a string or a list) is sent as the ``anthropic-beta`` header, for
    features still behind one; ``config.api_version`` overrides ``anthropic-version``.
    """

    type_name = "anthropic"

    # ------------------------------------------------------------------------------- the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        wire = self._wire(request, stream=False)
        body = await self.send_for_object(self._post(MESSAGES_PATH, request, wire.body), "a message object")
        response = parse_response(body, provider=self.name, model=request.model, wire=wire)
        response.latency_ms = elapsed_ms(started)
        return response

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        wire = self._wire(request, stream=True)
        decoder = AnthropicStreamDecoder(self.name, request.model, wire)
        http_request = self._post(MESSAGES_PATH, request, wire.body)
        async with contextlib.aclosing(self.stream_with(decoder, http_request, started=started)) as events:
            async for event in events:
                yield event

    async def count_tokens(self, request: Request) -> int:
        """Input tokens as Anthropic counts them (``/v1/messages/count_tokens``; free, rate limited)."""
        wire = self._wire(request, stream=False)
        body, _ = await self.send_json(self._post(COUNT_TOKENS_PATH, request, count_tokens_body(wire.body)))
        try:
            return int(body["input_tokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidResponseError(
                f"{self.name} answered count_tokens without input_tokens (model {request.model}): "
                f"{str(body)[:200]!r}; check the base URL",
                provider=self.name, model=request.model, body=body,
            ) from exc

    # -------------------------------------------------------------------------------- plumbing

    def _wire(self, request: Request, *, stream: bool) -> WireRequest:
        return build_request(
            request, provider=self.name, capabilities=self.capabilities(request.model), stream=stream
        )

    def _post(self, path: str, request: Request, body: dict[str, Any]) -> HTTPRequest:
        return self.http_request("POST", self._url(path), request, body=body, headers=self._headers())

    def _url(self, path: str) -> str:
        base = (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")
        # ANTHROPIC_BASE_URL is the bare host, but an OpenAI-style ".../v1" is an easy slip to forgive.
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base + path

    def _headers(self) -> dict[str, str]:
        headers = {
            "anthropic-version": self.config.api_version or ANTHROPIC_VERSION,
            "content-type": "application/json",
        }
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        beta = self.config.options.get("beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        return headers


# ------------------------------------------------------------------------------------- streaming


class AnthropicStreamDecoder(StreamDecoder):
    """Turns Anthropic stream events (parsed JSON) into neutral :class:`StreamEvent` s.

    Every emitted event goes through the accumulator; :meth:`close` adds the one ``usage`` event
    (message_start's input usage merged with message_delta's cumulative counts) and the ``finish``.
    """

    def __init__(self, provider: str, model: str, wire: WireRequest) -> None:
        self.provider = provider
        self.model = model
        self.wire = wire
        self.accumulator = StreamAccumulator(provider, model)
        self.raw_usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.stopped = False
        self._blocks: dict[int, OpenBlock] = {}
        self._unsupported: list[Any] = []
        self._real_tool_calls = False

    def feed(self, data: Any) -> list[StreamEvent]:
        """Events for one server-sent event's JSON data."""
        if not isinstance(data, Mapping):
            raise self._broken(f"sent a stream event that is not an object: {str(data)[:200]!r}")
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.accumulator.id = str(message.get("id", ""))
            self.accumulator.model = str(message.get("model") or self.model)
            self._merge_usage(message.get("usage"))
            return []
        if kind == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(data.get("index", 0)))
        if kind == "message_delta":
            delta = data.get("delta") or {}
            self.stop_reason = delta.get("stop_reason", self.stop_reason)
            self.stop_sequence = delta.get("stop_sequence", self.stop_sequence)
            self._merge_usage(data.get("usage"))
            return []
        if kind == "message_stop":
            self.stopped = True
            return []
        if kind == "error":
            raise error_from_event(data, provider=self.provider, model=self.model)
        # ping, and event types added after this was written (the API's versioning policy says
        # clients should ignore those).
        return []

    def close(self) -> list[StreamEvent]:
        """The closing events: blocks left open, ``usage`` and ``finish``; raises when the stream never finished."""
        if not self.stopped:
            raise self._broken("ended the stream before message_stop, so the answer is incomplete")
        # A block the server never stopped (a message cut at max_tokens mid tool_use, say) is still
        # part of the message, as it is in the non-streaming answer: a tool call is kept, with the
        # arguments that arrived.
        events = [event for index in sorted(self._blocks) for event in self._block_stop(index)]
        acc = self.accumulator
        for part in acc.parts:
            if isinstance(part, ReasoningPart):
                part.provider = REASONING_PROVIDER  # the vendor, as in generate(): see REASONING_PROVIDER
        details = stop_details(self.stop_reason, self.stop_sequence)
        if self._unsupported:
            details["unsupported_blocks"] = self._unsupported
        acc.provider_details = details
        events.append(acc.add(StreamEvent("usage", usage=usage_from_wire(self.raw_usage))))
        reason = finish_reason(self.stop_reason, has_tool_calls=self._real_tool_calls)
        events.append(acc.finish(reason))
        return events

    # ------------------------------------------------------------------------------ blocks

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[StreamEvent]:
        kind = str(block.get("type", ""))
        acc = self.accumulator
        if kind == "text":
            self._blocks[index] = OpenBlock(kind)
            text = str(block.get("text") or "")
            return [acc.add(StreamEvent("text", text=text, index=index))] if text else []
        if kind == "tool_use":
            name = str(block.get("name", ""))
            is_output = self.wire.output_tool is not None and name == self.wire.output_tool
            self._blocks[index] = OpenBlock(kind, str(block.get("id", "")), name, is_output=is_output)
            if is_output:
                return []  # its input becomes the answer text, emitted whole at content_block_stop
            return [acc.add(StreamEvent("tool_call_delta", index=index, call_id=self._blocks[index].call_id,
                                        name=name))]
        if kind == "thinking":
            self._blocks[index] = OpenBlock(kind)
            text = str(block.get("thinking") or "")
            signature = block.get("signature") or None
            if text or signature:
                return [acc.add(StreamEvent("reasoning", text=text, signature=signature, index=index))]
            return []
        if kind == "redacted_thinking":
            # Arrives whole, with no deltas: there is nothing to show as it streams.
            self._blocks[index] = OpenBlock(kind)
            acc.add_part(ReasoningPart(redacted_data=str(block.get("data", "")), provider=REASONING_PROVIDER))
            return []
        self._blocks[index] = OpenBlock(kind)
        self._unsupported.append(dict(block))
        return []

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[StreamEvent]:
        block = self._blocks.get(index)
        if block is None:
            raise self._broken(f"sent a content_block_delta for block {index}, which was never started")
        kind = delta.get("type")
        acc = self.accumulator
        if kind == "text_delta":
            return [acc.add(StreamEvent("text", text=str(delta.get("text", "")), index=index))]
        if kind == "input_json_delta":
            fragment = str(delta.get("partial_json", ""))
            block.arguments.append(fragment)
            if block.is_output or not fragment:
                return []
            return [acc.add(StreamEvent("tool_call_delta", index=index, arguments_delta=fragment))]
        if kind == "thinking_delta":
            return [acc.add(StreamEvent("reasoning", text=str(delta.get("thinking", "")), index=index))]
        if kind == "signature_delta":
            return [acc.add(StreamEvent("reasoning", signature=str(delta.get("signature", "")), index=index))]
        return []  # citations and deltas of block types we keep unparsed

    def _block_stop(self, index: int) -> list[StreamEvent]:
        block = self._blocks.pop(index, None)
        if block is None or block.kind != "tool_use":
            return []
        raw = "".join(block.arguments)
        arguments = parse_tool_arguments(raw, block.name)
        if block.is_output:
            answer = output_text(arguments, wrapped=self.wire.output_wrapped)
            return [self.accumulator.add(StreamEvent("text", text=answer, index=index))]
        self._real_tool_calls = True
        call = ToolCallPart(id=block.call_id, name=block.name, arguments=arguments)
        return [self.accumulator.add(StreamEvent("tool_call", index=index, tool_call=call))]

    # ------------------------------------------------------------------------------ helpers

    def _merge_usage(self, usage: Any) -> None:
        # message_delta's counts are cumulative: the latest non-null value of each field wins.
        if isinstance(usage, Mapping):
            self.raw_usage.update({k: v for k, v in usage.items() if v is not None})

    def _broken(self, what: str) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"{self.provider} {what} (model {self.model}); the call may be retried",
            provider=self.provider, model=self.model,
        )
