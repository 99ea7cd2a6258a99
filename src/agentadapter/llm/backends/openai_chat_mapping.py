"""The chat-completions wire format, both ways: neutral request -> JSON body, JSON answer -> neutral.

This module is pure data mapping with no I/O; :mod:`agentadapter.llm.backends.openai_chat` does the
HTTP and owns the provider quirks, and hands the settings that shape a body in as a small
:class:`WireSettings`. :func:`request_body` builds the body (messages, tools, structured output,
sampling settings), :func:`response_from_body` maps a complete answer, and :class:`ChunkMapper` maps
streamed chunks into :class:`~agentadapter.llm.messages.StreamEvent` objects fed through a
:class:`~agentadapter.llm.messages.StreamAccumulator`, so a stream accumulates to exactly the
``Response`` of the non-streaming call. Every part kind is mapped or refused with an error, with one
documented exception: reasoning parts are never sent back over chat completions (DeepSeek rejects
``reasoning_content`` in input, and no other chat-completions provider can verify reasoning it did
not produce), so they are dropped from outgoing messages by design.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, assert_never

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
    Role,
    StreamAccumulator,
    StreamEvent,
    StreamEventKind,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    parse_tool_arguments,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.strict_schema import is_strict_compatible, to_strict_json_schema

# Neutral role -> wire role. Chat completions happens to use our names; the table keeps the mapping
# explicit (and the place to change, should a provider ever want e.g. ``developer``).
WIRE_ROLES: dict[Role, str] = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool"}

# Wire finish reason -> neutral. The first five are OpenAI's; the rest are spellings that
# OpenAI-compatible servers (vLLM, TGI, Mistral, DeepSeek, llama.cpp) are known to send.
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "eos": "stop",
    "eos_token": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
    "error": "error",
    "insufficient_system_resource": "error",
}

# Neutral finish reason -> OpenAI's, for answering as an OpenAI server (the gateway). OpenAI has no
# ``error`` reason; a stream that ended in an error is reported as an error event, so what remains
# of one is a stop.
WIRE_FINISH_REASONS: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "error": "stop",
}

# Top-level response keys that are bookkeeping, not data worth surfacing in provider_details.
# ``x_groq`` carries only a request id and (in streams) the usage, which is read separately.
_BOOKKEEPING_KEYS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "x_groq", "obfuscation"}
)

_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(slots=True, frozen=True)
class WireSettings:
    """What the backend's preset and the model decide about the body, computed by the backend."""

    reasoning_model: bool = False
    """OpenAI-style reasoning model: ``max_completion_tokens``, no temperature/top_p."""
    mistral_tool_ids: bool = False
    """Rewrite tool-call ids to Mistral's 9 alphanumerics."""
    stream_usage: bool = True
    """Ask for usage in streams with ``stream_options.include_usage``."""
    openai_extras: bool = False
    """Send OpenAI-only fields (``prompt_cache_key``, ``metadata`` with ``store``)."""
    store: bool = False
    """The backend is configured to store completions on OpenAI (required for ``metadata``)."""


# --------------------------------------------------------------------------- neutral -> wire


@lru_cache(maxsize=4096)
def mistral_tool_call_id(call_id: str) -> str:
    """Mistral accepts only 9-character ``[a-zA-Z0-9]`` ids: keep those, hash the rest.

    The hash is deterministic, so the assistant's call and the tool's result map to the same id
    even in a conversation that started on another provider.
    """
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    number = int.from_bytes(hashlib.blake2b(call_id.encode("utf-8"), digest_size=8).digest(), "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def _same_id(call_id: str) -> str:
    return call_id


def request_body(request: Request, settings: WireSettings, *, stream: bool) -> dict[str, Any]:
    """The JSON body of a chat-completions call."""
    map_id = mistral_tool_call_id if settings.mistral_tool_ids else _same_id
    body: dict[str, Any] = {"model": request.model, "messages": messages_to_wire(request.messages, map_id)}
    if stream:
        body["stream"] = True
        if settings.stream_usage:
            body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [tool.to_openai() for tool in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if request.output is not None:
        body["response_format"] = response_format(request.output)
    if settings.reasoning_model:
        # OpenAI's reasoning models reject max_tokens and any sampling temperature.
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
    else:
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop"] = request.stop
    if request.seed is not None:
        body["seed"] = request.seed
    if request.frequency_penalty is not None:
        body["frequency_penalty"] = request.frequency_penalty
    if request.presence_penalty is not None:
        body["presence_penalty"] = request.presence_penalty
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    if settings.openai_extras:
        if request.cache.prompt_cache_key:
            body["prompt_cache_key"] = request.cache.prompt_cache_key
        # OpenAI refuses `metadata` unless the completion is stored; storing is the user's choice
        # (an option of the backend or `store` in extra_body), never ours.
        if request.metadata and (settings.store or request.extra_body.get("store")):
            body["store"] = True
            body["metadata"] = request.metadata
    if request.extra_body:
        body.update(request.extra_body)
    return body


def _tool_choice(request: Request) -> str | dict[str, Any] | None:
    choice = request.tool_choice
    if choice in ("auto", "none", "required"):
        if not request.tools:
            if choice == "required":
                raise InvalidRequestError(
                    "tool_choice='required' needs at least one tool; pass tools=[...] or drop tool_choice"
                )
            return None  # auto/none without tools: the provider would reject the field itself
        return choice
    if not any(tool.name == choice for tool in request.tools):
        known = ", ".join(tool.name for tool in request.tools) or "none"
        raise InvalidRequestError(
            f"tool_choice={choice!r} names no tool of this request (tools: {known}); "
            "use auto, none, required or one of the tool names"
        )
    return {"type": "function", "function": {"name": choice}}


def response_format(output: OutputSchema) -> dict[str, Any]:
    """OpenAI's ``response_format`` for a schema; strict whenever the schema is, or can be made, strict.
    JSON mode (any object) stays ``json_object``."""
    if output.json_mode:
        return {"type": "json_object"}
    schema, strict = wire_output_schema(output)
    return {
        "type": "json_schema",
        "json_schema": {"name": output.name, "schema": schema, "strict": strict},
    }


def wire_output_schema(output: OutputSchema) -> tuple[dict[str, Any], bool]:
    """The output schema to send to an OpenAI-style API, and whether to ask for strict mode.

    A schema that is strict as it stands is sent strict. A pydantic model's schema that is not is
    sent in its strict form when it has one (:func:`~agentadapter.llm.strict_schema.to_strict_json_schema`,
    as the official SDK does): the model still validates the answer, and a field left optional there
    comes back as ``null``, which the model accepts. A schema given as a dict is the caller's
    contract and is never rewritten: it is sent non-strict when strict mode would refuse it.
    """
    schema = output.json_schema
    if not output.strict:
        return schema, False
    if is_strict_compatible(schema):
        return schema, True
    model = output.model
    if model is not None and not getattr(model, "__agentadapter_from_schema__", False):
        strict_form = to_strict_json_schema(schema)
        if is_strict_compatible(strict_form):
            return strict_form, True
    return schema, False


def messages_to_wire(messages: Sequence[Message], map_id: Callable[[str], str]) -> list[dict[str, Any]]:
    """Neutral messages as chat-completions messages (tool results become ``role: tool`` messages)."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        parts = message.parts
        # The common case, one plain text part, skips the general path.
        if len(parts) == 1 and type(parts[0]) is TextPart and message.role != "tool":
            item: dict[str, Any] = {"role": WIRE_ROLES[message.role], "content": parts[0].text}
            if message.name is not None:
                item["name"] = message.name
            wire.append(item)
        else:
            _message_to_wire(message, map_id, wire)
    return wire


def _message_to_wire(message: Message, map_id: Callable[[str], str], wire: list[dict[str, Any]]) -> None:
    role = message.role
    content: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    only_text = True
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            only_text = False
            image: dict[str, Any] = {"url": part.data_url}
            if part.detail:
                image["detail"] = part.detail
            content.append({"type": "image_url", "image_url": image})
        elif isinstance(part, FilePart):
            only_text = False
            content.append(_file_to_wire(part))
        elif isinstance(part, ToolCallPart):
            tool_calls.append(
                {
                    "id": map_id(part.id),
                    "type": "function",
                    "function": {"name": part.name, "arguments": arguments_json(part.arguments)},
                }
            )
        elif isinstance(part, ToolResultPart):
            # Errors are marked in the text: chat completions has no is_error flag for tool results.
            text = f"Error: {part.content}" if part.is_error else part.content
            results.append({"role": "tool", "tool_call_id": map_id(part.call_id), "content": text})
        elif isinstance(part, ReasoningPart):
            continue  # never replayed over chat completions; see the module docstring
        else:
            assert_never(part)

    if role == "tool":
        if content or tool_calls:
            raise InvalidRequestError(
                "a tool message may hold only tool results; put text, images and files in a user message"
            )
        wire.extend(results)
        return
    if role == "assistant":
        if not only_text:
            raise InvalidRequestError(
                "chat completions cannot send images or files in an assistant message; "
                "move them to a user message"
            )
        if results:
            raise InvalidRequestError(
                "an assistant message cannot hold tool results; send them in a tool message"
            )
        item: dict[str, Any] = {
            "role": "assistant",
            # OpenAI takes null content beside tool calls; plain text keeps local servers happy.
            "content": "".join(c["text"] for c in content) if content or not tool_calls else None,
        }
        if tool_calls:
            item["tool_calls"] = tool_calls
    else:
        if tool_calls:
            raise InvalidRequestError(
                f"a {role} message cannot hold tool calls; they belong in an assistant message"
            )
        # Tool results must directly follow the assistant's calls, so they go before the rest.
        wire.extend(results)
        if results and not content:
            return
        item = {"role": WIRE_ROLES[role]}
        if only_text and len(content) <= 1:
            item["content"] = content[0]["text"] if content else ""
        else:
            item["content"] = content
    if message.name is not None:
        item["name"] = message.name
    wire.append(item)


def _file_to_wire(part: FilePart) -> dict[str, Any]:
    if part.data is None:
        raise InvalidRequestError(
            f"chat completions takes files as inline data, not URLs ({part.url}); "
            "download the file and pass FilePart(data=..., media_type=...)"
        )
    media_type = part.media_type or (
        mimetypes.guess_type(part.filename)[0] if part.filename else None
    ) or "application/octet-stream"
    filename = part.filename or f"file{mimetypes.guess_extension(media_type) or ''}"
    return {
        "type": "file",
        "file": {"filename": filename, "file_data": f"data:{media_type};base64,{part.base64}"},
    }


def arguments_json(arguments: Mapping[str, Any]) -> str:
    """A tool call's arguments as the JSON string the OpenAI and Cohere formats send."""
    raw = arguments.get("_raw_arguments")
    if isinstance(raw, str) and len(arguments) == 1:
        return raw  # the model's own unparseable text, replayed as it was sent
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    """Our :class:`Usage` as OpenAI's chat-completions usage (the inverse of :func:`usage_from_wire`)."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


# --------------------------------------------------------------------------- wire -> neutral


def usage_from_wire(raw: Mapping[str, Any]) -> Usage:
    """Chat-completions usage (OpenAI, DeepSeek, Groq, ... spellings) as our :class:`Usage`.

    ``prompt_tokens`` already includes cached tokens and ``completion_tokens`` reasoning tokens,
    which is exactly what :class:`Usage` means.
    """
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=int(
            prompt_details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0
        ),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or raw.get("reasoning_tokens") or 0),
    )


def finish_reason_from_wire(raw: Any) -> tuple[FinishReason | None, str | None]:
    """(neutral reason, the raw reason when it was not one we know)."""
    if raw is None:
        return None, None
    reason = FINISH_REASONS.get(raw)
    if reason is None:
        return "stop", str(raw)
    return reason, None


def collect_details(body: Mapping[str, Any], details: dict[str, Any] | None) -> dict[str, Any] | None:
    """Unknown top-level keys that carry data (Perplexity's ``citations``, ...), added to ``details``."""
    for key, value in body.items():
        if key not in _BOOKKEEPING_KEYS and value is not None and value != [] and value != {}:
            if details is None:
                details = {}
            details[key] = value
    return details


def _content_items(content: Iterable[Any]) -> Iterable[tuple[bool, str]]:
    """Mistral's list content as (is_reasoning, text) pairs."""
    for item in content:
        if isinstance(item, str):
            yield False, item
        elif isinstance(item, Mapping):
            kind = item.get("type")
            if kind == "text":
                yield False, str(item.get("text") or "")
            elif kind == "thinking":
                thinking = item.get("thinking")
                if isinstance(thinking, str):
                    yield True, thinking
                else:
                    for piece in thinking or ():
                        if isinstance(piece, Mapping) and piece.get("text"):
                            yield True, str(piece["text"])


def _reasoning_text(message: Mapping[str, Any]) -> str | None:
    # DeepSeek (and vLLM, SGLang) say reasoning_content; OpenRouter, Groq and Ollama say reasoning.
    text = message.get("reasoning_content") or message.get("reasoning")
    return text if isinstance(text, str) and text else None


def response_from_body(body: Mapping[str, Any], provider: str, model: str) -> Response:
    """A complete chat-completions answer as a neutral :class:`Response`."""
    parts: list[Part] = []
    details = collect_details(body, None)
    finish_reason: FinishReason | None = None
    choices = body.get("choices") or ()
    if choices:
        choice = choices[0]
        message = choice.get("message") or {}
        reasoning = _reasoning_text(message)
        if reasoning is not None:
            parts.append(ReasoningPart(reasoning, provider=provider))
        content = message.get("content")
        refusal = message.get("refusal")
        if isinstance(content, list):
            _add_list_content(parts, content, provider)
            content = None
        if content or refusal:
            parts.append(TextPart((content or "") + (refusal or "")))
        if refusal:
            details = details or {}
            details["refusal"] = refusal
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            name = function.get("name") or ""
            parts.append(
                ToolCallPart(
                    id=call.get("id") or f"call_{index}",
                    name=name,
                    arguments=parse_tool_arguments(function.get("arguments"), name),
                )
            )
        finish_reason, raw_reason = finish_reason_from_wire(choice.get("finish_reason"))
        if raw_reason is not None:
            details = details or {}
            details["finish_reason"] = raw_reason
        if choice.get("logprobs"):  # asked for with logprobs in extra_body: kept for the caller
            details = details or {}
            details["logprobs"] = choice["logprobs"]
    if finish_reason is None:
        finish_reason = "tool_calls" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
    usage = body.get("usage")
    return Response(
        id=body.get("id") or "",
        provider=provider,
        model=body.get("model") or model,
        parts=parts,
        finish_reason=finish_reason,
        usage=usage_from_wire(usage) if usage else Usage(),
        provider_details=details,
    )


def _add_list_content(parts: list[Part], content: Iterable[Any], provider: str) -> None:
    # Consecutive items of one kind form one part, as they do when the same answer is streamed.
    for is_reasoning, text in _content_items(content):
        if not text:
            continue
        last = parts[-1] if parts else None
        if is_reasoning:
            if isinstance(last, ReasoningPart):
                last.text += text
            else:
                parts.append(ReasoningPart(text, provider=provider))
        elif isinstance(last, TextPart):
            last.text += text
        else:
            parts.append(TextPart(text))


class _ToolCallBuilder:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class ChunkMapper:
    """Maps streamed chat-completions chunks to stream events, feeding each through ``acc``.

    Tool-call fragments are keyed by their ``index``; the complete calls are emitted, in index
    order, when the finish reason arrives (or at the end of the stream). Usage may come on the
    finish chunk, on a last chunk with ``choices: []`` or under ``x_groq.usage``; the last one seen
    is emitted once, by :meth:`end`.
    """

    __slots__ = ("_calls", "_last_index", "acc", "finish_reason", "usage")

    def __init__(self, acc: StreamAccumulator) -> None:
        self.acc = acc
        self._calls: dict[int, _ToolCallBuilder] = {}
        self._last_index = -1
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """The events of one chunk (already added to the accumulator)."""
        acc = self.acc
        events: list[StreamEvent] = []
        if not acc.id and chunk.get("id"):
            acc.id = chunk["id"]
            acc.model = chunk.get("model") or acc.model
        acc.provider_details = collect_details(chunk, acc.provider_details)
        usage = chunk.get("usage")
        if not usage:
            x_groq = chunk.get("x_groq")
            usage = x_groq.get("usage") if isinstance(x_groq, Mapping) else None
        if usage:
            self.usage = usage_from_wire(usage)
        choices = chunk.get("choices")
        if not choices:
            return events
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            reasoning = _reasoning_text(delta)
            if reasoning is not None:
                events.append(acc.add(StreamEvent("reasoning", text=reasoning)))
            content = delta.get("content")
            if isinstance(content, str):
                if content:
                    events.append(acc.add(StreamEvent("text", text=content)))
            elif isinstance(content, list):
                for is_reasoning, text in _content_items(content):
                    if text:
                        kind: StreamEventKind = "reasoning" if is_reasoning else "text"
                        events.append(acc.add(StreamEvent(kind, text=text)))
            refusal = delta.get("refusal")
            if refusal:
                events.append(acc.add(StreamEvent("text", text=refusal)))
                details = acc.provider_details = acc.provider_details or {}
                details["refusal"] = details.get("refusal", "") + refusal
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                for fragment in tool_calls:
                    events.append(acc.add(self._tool_call_delta(fragment)))
        raw_reason = choice.get("finish_reason")
        if raw_reason is not None:
            self.finish_reason, unknown = finish_reason_from_wire(raw_reason)
            if unknown is not None:
                details = acc.provider_details = acc.provider_details or {}
                details["finish_reason"] = unknown
            events.extend(self._complete_tool_calls())
        return events

    def _tool_call_delta(self, fragment: Mapping[str, Any]) -> StreamEvent:
        index = fragment.get("index")
        call_id = fragment.get("id")
        if not isinstance(index, int):
            # Some servers leave out the index: a new id starts a new call, else the last one grows.
            index = self._last_index + 1 if call_id or self._last_index < 0 else self._last_index
        self._last_index = max(self._last_index, index)
        builder = self._calls.get(index)
        if builder is None:
            builder = self._calls[index] = _ToolCallBuilder()
        function = fragment.get("function") or {}
        name = function.get("name")
        arguments = function.get("arguments")
        if call_id:
            builder.id = call_id
        if name:
            builder.name = name
        if arguments:
            if isinstance(arguments, str):
                builder.arguments.append(arguments)
            else:  # a server that sends the arguments as an object, whole
                arguments = json.dumps(arguments, ensure_ascii=False)
                builder.arguments.append(arguments)
        return StreamEvent(
            "tool_call_delta", index=index, call_id=call_id or None, name=name or None,
            arguments_delta=arguments or "",
        )

    def _complete_tool_calls(self) -> list[StreamEvent]:
        if not self._calls:
            return []
        events = []
        for index in sorted(self._calls):
            builder = self._calls[index]
            call = ToolCallPart(
                id=builder.id or f"call_{index}",
                name=builder.name,
                arguments=parse_tool_arguments("".join(builder.arguments), builder.name),
            )
            events.append(self.acc.add(StreamEvent("tool_call", index=index, tool_call=call)))
        self._calls.clear()
        return events

    def end(self) -> list[StreamEvent]:
        """The closing events: calls still open, the usage, and ``finish`` with the response."""
        events = self._complete_tool_calls()
        if self.usage is not None:
            events.append(self.acc.add(StreamEvent("usage", usage=self.usage)))
        events.append(self.acc.finish(self.finish_reason))
        return events
