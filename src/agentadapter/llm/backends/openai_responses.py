"""The OpenAI Responses API backend (``type: openai_responses``): ``POST {base_url}/responses``.

Which models prefer this API is catalog data (``Capabilities.api == "responses"``); the facade
chooses, and this backend speaks it for any preset of the OpenAI family (auth and base URL come from
the preset named by ``config.type``, exactly as for chat completions: ``openai``, ``xai``, ``azure``,
or any compatible server).

Neutral → wire: leading system messages become ``instructions`` (later ones stay in place as
``system`` input items); user content becomes ``input_text`` / ``input_image`` / ``input_file``
items; assistant text is an ``output_text`` message, tool calls are ``function_call`` items and
tool results ``function_call_output`` items. Reasoning is replayed statelessly: calls are sent with
``store: false`` and, for reasoning models, ``include: ["reasoning.encrypted_content"]``, and a
reasoning part this backend produced is sent back as a ``reasoning`` item (id, summary, encrypted
content) when its assistant turn made tool calls, together with those calls' ``fc_`` item ids (the
API pairs the two and refuses an id whose reasoning is missing). That is when the model needs it:
reasoning from before the last user message is discarded by the model anyway, and a reasoning item
without encrypted content cannot be replayed with ``store: false``. Reasoning from other providers
is dropped, by design (DESIGN.md). Tools use the flat function shape, with ``strict`` sent
explicitly (the API's default is strict, which many schemas fail); structured output is
``text.format``; reasoning models get ``reasoning`` and no temperature/top_p. The API has no
``seed`` (it is not sent) and no stop sequences (a request with ``stop`` is refused with
:class:`~agentadapter.llm.errors.CapabilityError` rather than answered without them).

Wire → neutral: ``output[]`` items map to parts (``message`` text and refusals → text, refusals also
in ``provider_details["refusal"]``; ``function_call`` → a tool call whose id is the ``call_id``,
with the item id in ``provider_details``; ``reasoning`` → a reasoning part carrying the joined
summary, the encrypted content as ``redacted_data`` and the item id and summary parts in
``provider_details``). Items of other types (built-in tools) are kept in ``provider_details``.
A ``failed`` response raises, streamed or not, so both paths agree and the retry policy sees it. A
stream's answer is the ``output`` of its ``response.completed`` event whenever that event carries one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from agentadapter.llm.backends import presets
from agentadapter.llm.backends.base import Backend, BackendConfig, StreamDecoder, elapsed_ms
from agentadapter.llm.backends.openai_chat_mapping import arguments_json, wire_output_schema
from agentadapter.llm.backends.openai_common import auth_headers, chat_preset, is_reasoning_model, setup_problem
from agentadapter.llm.errors import (
    APIError,
    CapabilityError,
    InvalidRequestError,
    StreamInterruptedError,
    error_from_event,
)
from agentadapter.llm.messages import (
    FilePart,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    parse_tool_arguments,
)
from agentadapter.llm.tools import Tool
from agentadapter.llm.transport import HTTPRequest, Transport

__all__ = ["OpenAIResponsesBackend", "ResponsesStreamDecoder"]

RESPONSES_PATH = "/responses"
ENCRYPTED_REASONING = "reasoning.encrypted_content"

INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
"""``incomplete_details.reason`` → neutral finish reason (any other reason counts as ``length``)."""

STATUS_FINISH: dict[str, FinishReason] = {
    "completed": "stop",
    "incomplete": "length",
    "cancelled": "error",
    "in_progress": "error",
    "queued": "error",
}
"""Response ``status`` → neutral finish reason (``completed`` with function calls is ``tool_calls``;
``failed`` raises instead)."""

TOOL_CHOICES = frozenset({"auto", "none", "required"})


@dataclass(slots=True, frozen=True)
class WireSettings:
    """What the preset, the backend options and the model decide about a body."""

    reasoning_model: bool = False
    """Send ``reasoning`` / ``include``, and no temperature or top_p."""
    store: bool = False
    """Let the provider store responses (``config.options["store"]``); off by default."""
    openai_extras: bool = False
    """Send OpenAI-only fields (``prompt_cache_key``)."""


# ------------------------------------------------------------------------------- neutral → wire


def request_body(request: Request, settings: WireSettings, provider: str, *, stream: bool) -> dict[str, Any]:
    """The JSON body of a ``/responses`` call."""
    if request.stop:
        raise CapabilityError(
            f"the Responses API has no stop sequences (backend {provider}, model {request.model}); "
            "drop stop=..., or call the model through chat completions (type: openai_chat)"
        )
    instructions, items = input_items(request.messages, provider, store=settings.store)
    body: dict[str, Any] = {"model": request.model, "input": items, "store": settings.store}
    if instructions:
        body["instructions"] = instructions
    if stream:
        body["stream"] = True
    if request.tools:
        body["tools"] = [tool_to_wire(tool) for tool in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if request.output is not None and request.output.json_mode:
        body["text"] = {"format": {"type": "json_object"}}
    elif request.output is not None:
        schema, strict = wire_output_schema(request.output)
        body["text"] = {"format": {
            "type": "json_schema", "name": request.output.name, "schema": schema, "strict": strict,
        }}
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if settings.reasoning_model:
        if request.reasoning_effort is not None:
            body["reasoning"] = {"effort": request.reasoning_effort, "summary": "auto"}
        if not settings.store:
            body["include"] = [ENCRYPTED_REASONING]
    else:
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
    if settings.openai_extras and request.cache.prompt_cache_key:
        body["prompt_cache_key"] = request.cache.prompt_cache_key
    if request.metadata and (settings.store or request.extra_body.get("store")):
        body["metadata"] = request.metadata
    if request.extra_body:
        body.update(request.extra_body)
    return body


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    """The flat function-tool shape of the Responses API."""
    wire: dict[str, Any] = {"type": "function", "name": tool.name, "parameters": tool.parameters}
    if tool.description:
        wire["description"] = tool.description
    # The API treats a missing `strict` as true; chat completions' default (false) is kept.
    wire["strict"] = bool(tool.strict)
    return wire


def _tool_choice(request: Request) -> str | dict[str, Any] | None:
    choice = request.tool_choice
    if choice in TOOL_CHOICES:
        if not request.tools:
            if choice == "required":
                raise InvalidRequestError(
                    "tool_choice='required' needs at least one tool; pass tools=[...] or drop tool_choice"
                )
            return None
        return choice
    if not any(tool.name == choice for tool in request.tools):
        known = ", ".join(tool.name for tool in request.tools) or "none"
        raise InvalidRequestError(
            f"tool_choice={choice!r} names no tool of this request (tools: {known}); "
            "use auto, none, required or one of the tool names"
        )
    return {"type": "function", "name": choice}


def input_items(
    messages: Sequence[Message], provider: str, *, store: bool = False
) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items) for a conversation."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    leading = True
    for message in messages:
        if message.role == "system":
            text = _system_text(message)
            if leading:
                instructions.append(text)
            else:
                items.append({"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]})
            continue
        leading = False
        if message.role == "assistant":
            _assistant_items(message, provider, store, items)
        else:
            _user_or_tool_items(message, items)
    return ("\n\n".join(instructions) if instructions else None), items


def _system_text(message: Message) -> str:
    texts: list[str] = []
    for part in message.parts:
        if not isinstance(part, TextPart):
            raise InvalidRequestError(
                f"a system message holds text only, not a {part.kind} part; move it to a user message"
            )
        texts.append(part.text)
    return "".join(texts)


def _user_or_tool_items(message: Message, items: list[dict[str, Any]]) -> None:
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart):
            content.append({"type": "input_image", "image_url": part.data_url, "detail": part.detail or "auto"})
        elif isinstance(part, FilePart):
            content.append(_file_to_wire(part))
        elif isinstance(part, ToolResultPart):
            # Errors are marked in the text: function_call_output has no error flag.
            output = f"Error: {part.content}" if part.is_error else part.content
            items.append({"type": "function_call_output", "call_id": part.call_id, "output": output})
        elif isinstance(part, ToolCallPart | ReasoningPart):
            raise InvalidRequestError(
                f"a {message.role} message cannot hold a {part.kind} part; it belongs in an assistant message"
            )
        else:
            assert_never(part)
    if message.role == "tool":
        if content:
            raise InvalidRequestError(
                "a tool message may hold only tool results; put text, images and files in a user message"
            )
        return
    if content or not any(isinstance(p, ToolResultPart) for p in message.parts):
        items.append({"type": "message", "role": "user", "content": content})


def _file_to_wire(part: FilePart) -> dict[str, Any]:
    if part.data is None:
        return {"type": "input_file", "file_url": part.url}
    media_type = part.media_type or "application/octet-stream"
    return {
        "type": "input_file",
        "filename": part.filename or "file",
        "file_data": f"data:{media_type};base64,{part.base64}",
    }


def _own_item_id(details: Mapping[str, Any] | None, provider: str) -> str | None:
    """The output item id this backend recorded on a part, or None for parts from elsewhere."""
    if details and details.get("provider") == provider and isinstance(details.get("item_id"), str):
        return str(details["item_id"])
    return None


def _assistant_items(message: Message, provider: str, store: bool, items: list[dict[str, Any]]) -> None:
    has_calls = any(isinstance(p, ToolCallPart) for p in message.parts)
    reasoning = {
        index: item
        for index, part in enumerate(message.parts)
        if has_calls and isinstance(part, ReasoningPart)
        and (item := _reasoning_item(part, provider, store)) is not None
    }
    # A function_call sent with its item id must come with the reasoning item that preceded it
    # (the API refuses it otherwise), so ids go only with replayed reasoning.
    send_ids = bool(reasoning)
    text: list[dict[str, Any]] = []

    def flush_text() -> None:
        if text:
            items.append({"type": "message", "role": "assistant", "content": list(text)})
            text.clear()

    for index, part in enumerate(message.parts):
        if isinstance(part, TextPart):
            text.append({"type": "output_text", "text": part.text, "annotations": []})
            continue
        flush_text()
        if isinstance(part, ToolCallPart):
            call: dict[str, Any] = {
                "type": "function_call", "call_id": part.id, "name": part.name,
                "arguments": arguments_json(part.arguments),
            }
            item_id = _own_item_id(part.provider_details, provider) if send_ids else None
            if item_id is not None:
                call["id"] = item_id
            items.append(call)
        elif isinstance(part, ReasoningPart):
            if index in reasoning:
                items.append(reasoning[index])
        elif isinstance(part, ImagePart | FilePart | ToolResultPart):
            raise InvalidRequestError(
                f"an assistant message cannot hold a {part.kind} part; images and files go in a user "
                "message, tool results in a tool message"
            )
        else:
            assert_never(part)
    flush_text()


def _reasoning_item(part: ReasoningPart, provider: str, store: bool) -> dict[str, Any] | None:
    details = part.provider_details or {}
    item_id = details.get("item_id")
    if part.provider != provider or not isinstance(item_id, str):
        return None  # another provider's thinking cannot be verified here (DESIGN.md)
    if not part.redacted_data and not store:
        return None  # without encrypted content a stateless call cannot resolve the item
    summary = details.get("summary")
    texts = summary if isinstance(summary, list) else ([part.text] if part.text else [])
    item: dict[str, Any] = {
        "type": "reasoning", "id": item_id,
        "summary": [{"type": "summary_text", "text": str(text)} for text in texts],
    }
    if part.redacted_data:
        item["encrypted_content"] = part.redacted_data
    return item


# ------------------------------------------------------------------------------- wire → neutral


def usage_from_wire(raw: Mapping[str, Any] | None) -> Usage:
    """Responses usage already means what :class:`Usage` means: cached input inside
    ``input_tokens``, reasoning inside ``output_tokens``."""
    if not raw:
        return Usage()
    input_details = raw.get("input_tokens_details") or {}
    output_details = raw.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_input_tokens=int(input_details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )


def parts_from_item(item: Mapping[str, Any], provider: str) -> list[Part] | None:
    """The parts of one output item; None for item types that have no part (kept as details)."""
    kind = item.get("type")
    if kind == "message":
        parts: list[Part] = []
        for content in item.get("content") or ():
            content_type = content.get("type")
            if content_type == "output_text":
                parts.append(TextPart(str(content.get("text") or "")))
            elif content_type == "refusal":
                parts.append(TextPart(str(content.get("refusal") or "")))
        return parts
    if kind == "function_call":
        name = str(item.get("name") or "")
        details = {"provider": provider, "item_id": item["id"]} if item.get("id") else None
        return [ToolCallPart(
            id=str(item.get("call_id") or item.get("id") or ""), name=name,
            arguments=parse_tool_arguments(item.get("arguments"), name), provider_details=details,
        )]
    if kind == "reasoning":
        return [reasoning_part(item, provider)]
    return None


def reasoning_part(item: Mapping[str, Any], provider: str) -> ReasoningPart:
    texts = [str(s.get("text") or "") for s in item.get("summary") or () if isinstance(s, Mapping)]
    if not texts:  # open-weight models served over this API return the raw reasoning as content
        texts = [str(c.get("text") or "") for c in item.get("content") or () if isinstance(c, Mapping)]
    details: dict[str, Any] = {"provider": provider, "summary": texts}
    if item.get("id"):
        details["item_id"] = item["id"]
    return ReasoningPart(
        "\n\n".join(texts), provider=provider, redacted_data=item.get("encrypted_content") or None,
        provider_details=details,
    )


def item_details(item: Mapping[str, Any], details: dict[str, Any]) -> None:
    """What an output item carries beyond its parts: refusals, annotations, unsupported items."""
    kind = item.get("type")
    if kind == "message":
        for content in item.get("content") or ():
            if content.get("type") == "refusal":
                details["refusal"] = details.get("refusal", "") + str(content.get("refusal") or "")
            annotations = content.get("annotations")
            if annotations:
                details.setdefault("annotations", []).extend(annotations)
    elif kind not in ("function_call", "reasoning"):
        details.setdefault("unsupported_items", []).append(dict(item))


def finish_reason(body: Mapping[str, Any], details: dict[str, Any], *, has_tool_calls: bool) -> FinishReason:
    """The neutral finish reason of a final response body (``failed`` is raised before this)."""
    status = str(body.get("status") or "completed")
    if status == "incomplete":
        reason = str((body.get("incomplete_details") or {}).get("reason") or "")
        details["incomplete_reason"] = reason
        return INCOMPLETE_REASONS.get(reason, "length")
    if status == "completed":
        return "tool_calls" if has_tool_calls else "stop"
    details["status"] = status
    return STATUS_FINISH.get(status, "error")


def failed_error(body: Mapping[str, Any], provider: str, model: str) -> APIError:
    """The error of a ``failed`` response, of the class its error code says."""
    error = body.get("error") or "the response failed without an error message"
    if not isinstance(error, Mapping):
        error = {"message": str(error)}
    translated = error_from_event({"error": error}, provider=provider, model=model)
    if type(translated) is not StreamInterruptedError:
        return translated
    return APIError(
        f"{provider} reports the response failed (model {model}): {str(error)[:300]}; the call may be retried",
        provider=provider, model=model, body=dict(body), code=str(error.get("code") or "") or None,
        retryable=True,
    )


def response_from_body(body: Mapping[str, Any], provider: str, model: str) -> Response:
    """A complete ``/responses`` answer as a neutral :class:`Response`."""
    if body.get("status") == "failed":
        raise failed_error(body, provider, model)
    parts: list[Part] = []
    details: dict[str, Any] = {}
    for item in body.get("output") or ():
        item_parts = parts_from_item(item, provider)
        if item_parts is not None:
            parts.extend(item_parts)
        item_details(item, details)
    reason = finish_reason(body, details, has_tool_calls=any(isinstance(p, ToolCallPart) for p in parts))
    return Response(
        id=str(body.get("id") or ""),
        provider=provider,
        model=str(body.get("model") or model),
        parts=parts,
        finish_reason=reason,
        usage=usage_from_wire(body.get("usage")),
        provider_details=details or None,
    )


# ------------------------------------------------------------------------------------- streaming


class ResponsesStreamDecoder(StreamDecoder):
    """Turns Responses API stream events (parsed JSON) into neutral :class:`StreamEvent` s.

    Text, refusal and reasoning-summary deltas stream as they come; a function call is emitted whole
    when its item is done. A reasoning item's encrypted content and ids arrive only with
    ``response.output_item.done``: the reasoning part its deltas built is then replaced by the
    complete one, so the stream's response equals the non-streaming one. ``response.completed`` /
    ``response.incomplete`` bring status, usage and the whole output, which is the answer: parts
    the events built that disagree with it are replaced by it. ``response.failed`` and ``error`` raise.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.accumulator = StreamAccumulator(provider, model)
        self.done = False
        self._details: dict[str, Any] = {}
        self._final: Mapping[str, Any] = {}
        self._item_start: dict[int, int] = {}
        self._streamed: set[int] = set()
        self._text_index: dict[tuple[int, int], int] = {}

    def feed(self, data: Any) -> list[StreamEvent]:
        """Events for one server-sent event's JSON data."""
        if not isinstance(data, Mapping):
            raise self._broken(f"sent a stream event that is not an object: {str(data)[:200]!r}")
        kind = data.get("type")
        acc = self.accumulator
        output_index = data.get("output_index")
        output_index = output_index if isinstance(output_index, int) else 0
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            return self._text(output_index, data)
        if kind == "response.reasoning_summary_text.delta":
            delta = str(data.get("delta") or "")
            self._streamed.add(output_index)
            return [acc.add(StreamEvent("reasoning", text=delta, index=output_index))] if delta else []
        if kind == "response.reasoning_summary_part.added":
            if int(data.get("summary_index") or 0) > 0:  # keep the stream's text equal to the joined summary
                self._streamed.add(output_index)
                return [acc.add(StreamEvent("reasoning", text="\n\n", index=output_index))]
            return []
        if kind == "response.function_call_arguments.delta":
            delta = str(data.get("delta") or "")
            return [acc.add(StreamEvent("tool_call_delta", index=output_index, arguments_delta=delta))] if delta else []
        if kind == "response.output_item.added":
            return self._item_added(output_index, data.get("item") or {})
        if kind == "response.output_item.done":
            return self._item_done(output_index, data.get("item") or {})
        if kind in ("response.created", "response.in_progress", "response.queued"):
            self._response_meta(data.get("response") or {})
            return []
        if kind in ("response.completed", "response.incomplete"):
            self._final = data.get("response") or {}
            self._response_meta(self._final)
            self.done = True
            return []
        if kind == "response.failed":
            raise failed_error(data.get("response") or {}, self.provider, self.model)
        if kind == "error":
            raise error_from_event(dict(data), provider=self.provider, model=self.model)
        return []  # *.done duplicates of what deltas built, annotations, built-in tool progress, ...

    def close(self) -> list[StreamEvent]:
        """The closing events (what the final response adds, usage, finish); raises when the stream never finished."""
        if not self.done:
            raise self._broken("ended the stream before response.completed, so the answer is incomplete")
        events = self._agree_with_final()
        acc = self.accumulator
        has_calls = any(isinstance(p, ToolCallPart) for p in acc.parts)
        reason = finish_reason(self._final, self._details, has_tool_calls=has_calls)
        acc.provider_details = self._details or None
        events.append(acc.add(StreamEvent("usage", usage=usage_from_wire(self._final.get("usage")))))
        events.append(acc.finish(reason))
        return events

    def _agree_with_final(self) -> list[StreamEvent]:
        """Make the answer the one ``response.completed`` states, when it states one.

        The terminal event carries the whole response; the deltas and ``output_item.done`` events
        before it are a preview that a proxy or a server bug can leave short (an item whose ``done``
        never came, lost deltas). The final ``output`` wins, so a stream answers exactly what
        generate() would; what the events had not shown yet is emitted now: calls never emitted,
        and the missing end of the text when the streamed text is a prefix of the final one.
        """
        output = self._final.get("output")
        if not isinstance(output, list) or not output:
            return []  # a server that leaves output out of the terminal event: the stream stands
        acc = self.accumulator
        parts: list[Part] = []
        details: dict[str, Any] = {}
        for item in output:
            if not isinstance(item, Mapping):
                continue
            item_parts = parts_from_item(item, self.provider)
            if item_parts is not None:
                parts.extend(item_parts)
            item_details(item, details)
        events: list[StreamEvent] = []
        streamed_text = "".join(p.text for p in acc.parts if isinstance(p, TextPart))
        final_text = "".join(p.text for p in parts if isinstance(p, TextPart))
        if final_text != streamed_text and final_text.startswith(streamed_text):
            events.append(StreamEvent("text", text=final_text[len(streamed_text):], index=len(self._text_index)))
        emitted = {p.id for p in acc.parts if isinstance(p, ToolCallPart)}
        events.extend(
            StreamEvent("tool_call", index=position, tool_call=part)
            for position, part in enumerate(parts)
            if isinstance(part, ToolCallPart) and part.id not in emitted
        )
        acc.parts = parts
        self._details = details
        return events

    # ------------------------------------------------------------------------------ items

    def _response_meta(self, response: Mapping[str, Any]) -> None:
        if response.get("id"):
            self.accumulator.id = str(response["id"])
        if response.get("model"):
            self.accumulator.model = str(response["model"])

    def _text(self, output_index: int, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = str(data.get("delta") or "")
        if not delta:
            return []
        key = (output_index, int(data.get("content_index") or 0))
        # One index per content part, so two parts never merge into one TextPart.
        index = self._text_index.setdefault(key, len(self._text_index))
        self._streamed.add(output_index)
        return [self.accumulator.add(StreamEvent("text", text=delta, index=index))]

    def _item_added(self, output_index: int, item: Mapping[str, Any]) -> list[StreamEvent]:
        self._item_start[output_index] = len(self.accumulator.parts)
        if item.get("type") == "function_call":
            return [self.accumulator.add(StreamEvent(
                "tool_call_delta", index=output_index, call_id=str(item.get("call_id") or "") or None,
                name=str(item.get("name") or "") or None,
            ))]
        return []

    def _item_done(self, output_index: int, item: Mapping[str, Any]) -> list[StreamEvent]:
        acc = self.accumulator
        item_details(item, self._details)
        parts = parts_from_item(item, self.provider)
        if not parts:
            return []
        kind = item.get("type")
        if isinstance(parts[0], ToolCallPart):
            return [acc.add(StreamEvent("tool_call", index=output_index, tool_call=parts[0]))]
        if kind == "reasoning":
            start = self._item_start.get(output_index, len(acc.parts))
            del acc.parts[start:]
            acc.add_part(parts[0])
            return []
        if output_index in self._streamed:
            return []
        # A server that sent the message whole, without deltas: stream it now.
        return [
            self._text(output_index, {"delta": part.text, "content_index": position})[0]
            for position, part in enumerate(parts)
            if isinstance(part, TextPart) and part.text
        ]

    def _broken(self, what: str) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"{self.provider} {what} (model {self.model}); the call may be retried",
            provider=self.provider, model=self.model,
        )


# --------------------------------------------------------------------------------------- backend


def _responses_preset(config_type: str) -> presets.Preset:
    # Registered by its own type name, the backend talks to OpenAI itself.
    if config_type == OpenAIResponsesBackend.type_name:
        return presets.PRESETS["openai"]
    return chat_preset(config_type)


class OpenAIResponsesBackend(Backend):
    """The Responses API (``POST {base_url}/responses``) of OpenAI, xAI, Azure OpenAI and compatibles.

    Options (``config.options``): ``store`` (let the provider keep responses; then reasoning is
    replayed by id), ``reasoning_model`` (force the reasoning-model settings on or off for a model
    the catalog does not know).
    """

    type_name = "openai_responses"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        preset = self.preset = _responses_preset(config.type)
        base_url = (config.base_url or preset.base_url or "").rstrip("/")
        if base_url.endswith(RESPONSES_PATH):  # a full endpoint URL given as the base
            base_url = base_url[: -len(RESPONSES_PATH)]
        if preset.name == "azure" and base_url and not base_url.endswith("/v1"):
            # Azure serves the Responses API on its v1 surface, without api-version.
            base_url = base_url.split("/openai", 1)[0] + "/openai/v1"
        self._base_url = base_url
        self._headers = auth_headers(preset, config.api_key)
        self.setup_problem = setup_problem(preset, config, base_url)
        self._store = bool(config.options.get("store"))
        self._settings: dict[str, WireSettings] = {}

    # ------------------------------------------------------------------------------ the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await self.send_for_object(
            self._post(request, stream=False), "a Responses API response", key="output",
            hint="check the base URL (it ends in /v1)",
        )
        response = response_from_body(body, self.name, request.model)
        response.latency_ms = elapsed_ms(started)
        return response

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        http_request = self._post(request, stream=True)
        decoder = ResponsesStreamDecoder(self.name, request.model)
        async with contextlib.aclosing(self.stream_with(decoder, http_request, started=started)) as events:
            async for event in events:
                yield event

    async def list_models(self) -> list[str]:
        """The model ids the server offers (``GET {base_url}/models``)."""
        self.check_setup()
        http_request = self.http_request("GET", f"{self._base_url}/models", None, headers=self._headers)
        return await self.list_names(http_request, key="data", field="id", path="/models")

    # -------------------------------------------------------------------------------- plumbing

    def _wire_settings(self, request: Request) -> WireSettings:
        model = request.model
        settings = self._settings.get(model)
        if settings is None:
            settings = WireSettings(
                reasoning_model=is_reasoning_model(self, model), store=self._store,
                openai_extras=self.preset.name == "openai",
            )
            if len(self._settings) < 1024:  # bounded: model names come from callers
                self._settings[model] = settings
        if request.reasoning_effort is not None and not settings.reasoning_model:
            # Asking for an effort says the model reasons, whatever the catalog knows.
            return WireSettings(reasoning_model=True, store=settings.store, openai_extras=settings.openai_extras)
        return settings

    def _post(self, request: Request, *, stream: bool) -> HTTPRequest:
        self.check_setup(request.model)
        body = request_body(request, self._wire_settings(request), self.name, stream=stream)
        return self.http_request(
            "POST", self._base_url + RESPONSES_PATH, request, body=body, headers=self._headers
        )
