"""The neutral message model: what every backend translates to and from.

A conversation is a list of :class:`Message` objects, each a role plus a list of parts. Parts carry a
``kind`` discriminator (``text``, ``image``, ``file``, ``tool_call``, ``tool_result``, ``reasoning``)
and a ``provider_details`` slot for data only one provider understands, so nothing is silently
dropped. :class:`Request` is what the facade hands a backend, :class:`Response` what comes back, and
:class:`StreamEvent` what a stream yields; :class:`StreamAccumulator` turns a stream into exactly the
``Response`` the non-streaming call returns. Plain dataclasses (not pydantic models) keep the request
path cheap; validation happens once, at the edge, in :func:`coerce_messages` and :func:`coerce_part`.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, assert_never, cast

from agentadapter.llm.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.llm.output import OutputSchema
    from agentadapter.llm.tools import Tool

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
FINISH_REASONS: frozenset[str] = frozenset({"stop", "length", "tool_calls", "content_filter", "error"})


# --------------------------------------------------------------------------------------------- parts


@dataclass(slots=True)
class TextPart:
    """Plain text."""

    text: str
    provider_details: dict[str, Any] | None = None
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image, given by URL or by inline bytes with a media type."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    detail: str | None = None
    """OpenAI's ``low`` / ``high`` / ``auto`` hint; other providers ignore it."""
    provider_details: dict[str, Any] | None = None
    kind: Literal["image"] = "image"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise InvalidRequestError("an image part needs exactly one of url= or data= (bytes)")
        if self.data is not None and not self.media_type:
            raise InvalidRequestError("an image given as bytes needs media_type=, e.g. 'image/png'")
        if self.url is not None and self.url.startswith("data:"):
            # A data URL is inline bytes in disguise: keep one representation so every backend
            # can choose between its URL and its base64 form.
            media_type, data = _parse_data_url(self.url)
            self.url, self.data, self.media_type = None, data, media_type

    @classmethod
    def from_path(cls, path: str | Path, media_type: str | None = None) -> ImagePart:
        """Read an image file; the media type is guessed from the extension when not given."""
        file_path = Path(path)
        try:
            data = file_path.read_bytes()
        except OSError as exc:
            raise InvalidRequestError(f"cannot read image {str(file_path)!r}: {exc.strerror}") from exc
        guessed = media_type or mimetypes.guess_type(file_path.name)[0]
        if not guessed or not guessed.startswith("image/"):
            raise InvalidRequestError(
                f"cannot tell the image type of {str(file_path)!r}; pass media_type='image/png' (or jpeg, ...)"
            )
        return cls(data=data, media_type=guessed)

    @property
    def base64(self) -> str:
        """The inline bytes as base64 (only for images given as data)."""
        if self.data is None:
            raise InvalidRequestError("this image is a URL, not inline data")
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_url(self) -> str:
        """A ``data:`` URL for inline images, else the URL itself."""
        if self.data is None:
            assert self.url is not None
            return self.url
        return f"data:{self.media_type};base64,{self.base64}"


@dataclass(slots=True)
class FilePart:
    """A document (PDF, text, ...) given by URL or inline bytes."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    filename: str | None = None
    provider_details: dict[str, Any] | None = None
    kind: Literal["file"] = "file"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise InvalidRequestError("a file part needs exactly one of url= or data= (bytes)")

    @property
    def base64(self) -> str:
        if self.data is None:
            raise InvalidRequestError("this file is a URL, not inline data")
        return base64.b64encode(self.data).decode("ascii")


@dataclass(slots=True)
class ToolCallPart:
    """The model asks for a tool to be called. ``arguments`` is always a parsed dict."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    provider_details: dict[str, Any] | None = None
    kind: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ToolResultPart:
    """The result of a tool call, sent back to the model.

    ``name`` is the tool's name: Gemini's ``functionResponse`` needs it, and carrying it makes a
    conversation portable between providers.
    """

    call_id: str
    name: str
    content: str
    is_error: bool = False
    provider_details: dict[str, Any] | None = None
    kind: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class ReasoningPart:
    """The model's visible thinking.

    ``provider`` names the backend that produced it; reasoning is replayed only to that provider
    (the others cannot verify its ``signature``) and dropped, by design, for the rest.
    """

    text: str = ""
    signature: str | None = None
    provider: str | None = None
    redacted_data: str | None = None
    """Encrypted reasoning some providers return instead of text; replayed as is."""
    provider_details: dict[str, Any] | None = None
    kind: Literal["reasoning"] = "reasoning"


Part: TypeAlias = TextPart | ImagePart | FilePart | ToolCallPart | ToolResultPart | ReasoningPart


def _parse_data_url(url: str) -> tuple[str, bytes]:
    header, _, payload = url.partition(",")
    if not header.endswith(";base64") or not payload:
        raise InvalidRequestError("a data: URL must be base64 encoded: data:<media type>;base64,<data>")
    media_type = header[len("data:") : -len(";base64")] or "application/octet-stream"
    try:
        return media_type, base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise InvalidRequestError(f"the data: URL holds invalid base64 ({exc})") from exc


# ------------------------------------------------------------------------------------------ messages


@dataclass(slots=True)
class Message:
    """One turn of a conversation: a role and its parts."""

    role: Role
    parts: list[Part] = field(default_factory=list)
    name: str | None = None
    provider_details: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidRequestError(
                f"unknown message role {self.role!r}; use one of system, user, assistant, tool"
            )

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", [TextPart(text)])

    @classmethod
    def user(cls, content: str | Sequence[Part]) -> Message:
        return cls("user", [TextPart(content)] if isinstance(content, str) else list(content))

    @classmethod
    def assistant(cls, content: str | Sequence[Part]) -> Message:
        return cls("assistant", [TextPart(content)] if isinstance(content, str) else list(content))

    @classmethod
    def tool(cls, call_id: str, name: str, content: str, *, is_error: bool = False) -> Message:
        return cls("tool", [ToolResultPart(call_id=call_id, name=name, content=content, is_error=is_error)])

    @property
    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [part for part in self.parts if isinstance(part, ToolCallPart)]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "parts": [part_to_dict(p) for p in self.parts]}
        if self.name is not None:
            data["name"] = self.name
        return data


def part_to_dict(part: Part) -> dict[str, Any]:
    """A JSON-safe dict for a part (bytes as base64); the inverse of :func:`part_from_dict`."""
    data: dict[str, Any] = {"kind": part.kind}
    for name in part.__slots__:
        if name == "kind":
            continue
        value = getattr(part, name)
        if value is None or (name == "is_error" and value is False):
            continue
        data[name] = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
    return data


_PART_TYPES: dict[str, type[Any]] = {
    "text": TextPart,
    "image": ImagePart,
    "file": FilePart,
    "tool_call": ToolCallPart,
    "tool_result": ToolResultPart,
    "reasoning": ReasoningPart,
}


def part_from_dict(data: Mapping[str, Any]) -> Part:
    kind = data.get("kind")
    part_type = _PART_TYPES.get(str(kind))
    if part_type is None:
        raise InvalidRequestError(f"unknown part kind {kind!r}; use one of {', '.join(_PART_TYPES)}")
    values = {k: v for k, v in data.items() if k != "kind"}
    if "data" in values and isinstance(values["data"], str):
        values["data"] = base64.b64decode(values["data"])
    try:
        part: Part = part_type(**values)
    except TypeError as exc:
        raise InvalidRequestError(f"malformed {kind} part: {exc}") from exc
    return part


# ----------------------------------------------------------------- OpenAI-style dicts -> neutral model


def coerce_messages(value: str | Message | Mapping[str, Any] | Iterable[Any]) -> list[Message]:
    """Accept a string (one user message), a ``Message``, an OpenAI-style dict, or a list of those."""
    if isinstance(value, str):
        return [Message.user(value)]
    if isinstance(value, Message):
        return [value]
    if isinstance(value, Mapping):
        return [_message_from_mapping(value, 0)]
    messages: list[Message] = []
    for index, item in enumerate(value):
        if isinstance(item, Message):
            messages.append(item)
        elif isinstance(item, Mapping):
            messages.append(_message_from_mapping(item, index))
        elif isinstance(item, str):
            messages.append(Message.user(item))
        else:
            raise InvalidRequestError(
                f"message {index} is a {type(item).__name__}; pass a Message, an OpenAI-style dict "
                "({'role': 'user', 'content': '...'}) or a string"
            )
    if not messages:
        raise InvalidRequestError("no messages to send; pass a prompt string or at least one message")
    return messages


def _message_from_mapping(data: Mapping[str, Any], index: int) -> Message:
    if "parts" in data:  # our own to_dict() shape
        role = data.get("role")
        if role not in ROLES:
            raise InvalidRequestError(f"message {index} has role {role!r}; use system, user, assistant or tool")
        return Message(cast(Role, role), [part_from_dict(p) for p in data["parts"]], name=data.get("name"))
    role = data.get("role")
    if role == "developer":  # OpenAI's newer name for the system role
        role = "system"
    if role not in ROLES:
        raise InvalidRequestError(
            f"message {index} has role {role!r}; use one of system, user, assistant, tool"
        )
    content = data.get("content")
    parts: list[Part] = []
    if role == "tool":
        call_id = data.get("tool_call_id")
        if not call_id:
            raise InvalidRequestError(f"message {index} (role tool) needs tool_call_id")
        text = content if isinstance(content, str) else _text_of(content, index)
        # OpenAI's tool messages carry no tool name; the backends that need one (Gemini) look it up
        # from the assistant's call with the same id (see tool_names_by_call_id).
        return Message("tool", [ToolResultPart(call_id=call_id, name=data.get("name") or "", content=text)])
    if isinstance(content, str):
        parts.append(TextPart(content))
    elif isinstance(content, list):
        parts.extend(_content_item_to_part(item, index) for item in content)
    elif content is not None:
        raise InvalidRequestError(f"message {index}: content must be a string or a list of content parts")
    for raw_call in data.get("tool_calls") or []:
        function = raw_call.get("function", {})
        parts.append(
            ToolCallPart(
                id=raw_call.get("id", ""),
                name=function.get("name", ""),
                arguments=parse_tool_arguments(function.get("arguments"), function.get("name", "")),
            )
        )
    return Message(cast(Role, role), parts, name=data.get("name"))


def _content_item_to_part(item: Any, index: int) -> Part:
    if isinstance(item, str):
        return TextPart(item)
    if not isinstance(item, Mapping):
        raise InvalidRequestError(f"message {index}: a content part must be a dict, got {type(item).__name__}")
    kind = item.get("type")
    if kind == "text":
        return TextPart(str(item.get("text", "")))
    if kind == "image_url":
        image = item.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise InvalidRequestError(f"message {index}: image_url needs a url")
        detail = image.get("detail") if isinstance(image, Mapping) else None
        return ImagePart(url=url, detail=detail)
    if kind == "file":
        file = item.get("file", {})
        data_url = file.get("file_data")
        if isinstance(data_url, str) and data_url.startswith("data:"):
            media_type, data = _parse_data_url(data_url)
            return FilePart(data=data, media_type=media_type, filename=file.get("filename"))
        raise InvalidRequestError(f"message {index}: a file part needs file.file_data as a data: URL")
    raise InvalidRequestError(
        f"message {index}: unsupported content part type {kind!r}; use text, image_url or file"
    )


def _text_of(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.text for p in (_content_item_to_part(i, index) for i in content) if isinstance(p, TextPart))
    return json.dumps(content)


def parse_tool_arguments(raw: Any, tool_name: str) -> dict[str, Any]:
    """Tool arguments as a dict, whether the wire gave a JSON string, a dict or nothing."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        # Models occasionally emit broken JSON; keep it visible rather than dropping it.
        return {"_raw_arguments": raw}
    if isinstance(parsed, dict):
        return parsed
    return {"_raw_arguments": raw}


def tool_names_by_call_id(messages: Iterable[Message]) -> dict[str, str]:
    """Map each tool call id in a conversation to its tool name."""
    return {
        part.id: part.name for message in messages for part in message.parts if isinstance(part, ToolCallPart)
    }


# ------------------------------------------------------------------------------------ usage and cost


@dataclass(slots=True)
class Usage:
    """Token counts with one meaning for every provider.

    ``input_tokens`` is all input, cached included; ``cached_input_tokens`` and
    ``cache_write_tokens`` are the parts of it read from / written to the provider's prompt cache.
    ``output_tokens`` is all output, reasoning included; ``reasoning_tokens`` is the thinking part.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
        }


# ---------------------------------------------------------------------------------- request/response


@dataclass(slots=True)
class CacheHints:
    """Prompt-caching hints: ``auto`` lets the backend mark cache breakpoints itself."""

    prompt_cache: Literal["auto", "off"] = "auto"
    prompt_cache_key: str | None = None
    response: bool | None = None
    """Our response cache: None caches deterministic requests only (temperature 0 or a seed)."""


@dataclass(slots=True)
class Request:
    """Everything a backend needs for one call, provider-neutral.

    ``model`` is the provider's own model name (the facade strips the ``provider/`` prefix).
    ``deadline`` is an absolute ``time.monotonic()`` instant shared by retries and failover.
    """

    model: str
    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | None = None
    """``auto``, ``none``, ``required``, or the name of one tool to force."""
    parallel_tool_calls: bool | None = None
    output: OutputSchema | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    """-2..2: lowers the odds of tokens by how often they appeared (OpenAI-style APIs, Gemini, Cohere)."""
    presence_penalty: float | None = None
    """-2..2: lowers the odds of tokens that appeared at all (OpenAI-style APIs, Gemini, Cohere)."""
    reasoning_effort: str | None = None
    """``minimal`` / ``low`` / ``medium`` / ``high`` for reasoning models; mapped per provider."""
    api: str | None = None
    """OpenAI-style providers: ``chat`` (chat completions) or ``responses``; None lets the catalog choose."""
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    deadline: float | None = None
    cache: CacheHints = field(default_factory=CacheHints)
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Provider-specific body fields, merged into the wire request last."""
    extra_headers: dict[str, str] = field(default_factory=dict)

    def time_left(self) -> float | None:
        """Seconds until the deadline (never negative), or None when there is no deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


@dataclass(slots=True)
class Attempt:
    """One target tried for a request, and why it was left (``error`` is None for the one that answered)."""

    target: str
    error_type: str | None = None
    error: str | None = None
    status: int | None = None
    latency_ms: float = 0.0
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "error_type": self.error_type,
            "error": self.error,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "retries": self.retries,
        }


@dataclass(slots=True)
class Response:
    """A model's answer, the same shape whichever backend produced it."""

    id: str
    provider: str
    model: str
    parts: list[Part] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    cached: bool = False
    output: Any = None
    """The validated object when the request had an output schema."""
    provider_details: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [part for part in self.parts if isinstance(part, ToolCallPart)]

    @property
    def reasoning(self) -> str:
        return "".join(part.text for part in self.parts if isinstance(part, ReasoningPart))

    @property
    def message(self) -> Message:
        """The answer as an assistant message, ready to append to the conversation."""
        return Message("assistant", list(self.parts))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI prints with ``--json``."""
        output = self.output
        if output is not None and hasattr(output, "model_dump"):
            output = output.model_dump(mode="json")
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "text": self.text,
            "parts": [part_to_dict(p) for p in self.parts],
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "latency_ms": round(self.latency_ms, 3),
            "attempts": [a.to_dict() for a in self.attempts],
            "cached": self.cached,
            "output": output,
            "provider_details": self.provider_details,
        }


# ------------------------------------------------------------------------------------------ streaming

StreamEventKind: TypeAlias = Literal["text", "reasoning", "tool_call_delta", "tool_call", "usage", "finish"]


@dataclass(slots=True)
class StreamEvent:
    """One event of a stream; which fields are set depends on ``kind``.

    - ``text``: ``text`` is the new text; ``index`` separates distinct text blocks.
    - ``reasoning``: ``text`` and/or ``signature`` (a signature delta), ``index`` as for text.
    - ``tool_call_delta``: ``index``, and as they become known ``call_id``, ``name``, ``arguments_delta``.
    - ``tool_call``: ``tool_call``, a complete call once its arguments are whole.
    - ``usage``: ``usage``, the normalized usage so far (it replaces any earlier one).
    - ``finish``: ``finish_reason`` and ``response``, the accumulated :class:`Response`.
    """

    kind: StreamEventKind
    text: str = ""
    index: int = 0
    signature: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments_delta: str = ""
    tool_call: ToolCallPart | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    response: Response | None = None
    source: str | None = None
    """The ``provider/model`` whose stream produced the event (stamped by :class:`StreamAccumulator`), so
    a consumer of a route's stream knows which target answers before the stream ends."""


class StreamAccumulator:
    """Builds the :class:`Response` of a stream from its events.

    Backends feed every event they emit through :meth:`add`; :meth:`finish` returns the ``finish``
    event whose ``response`` equals what the non-streaming call would have returned. Consecutive
    text (or reasoning) events with the same ``index`` extend one part.
    """

    __slots__ = ("_open_kind", "finish_reason", "id", "model", "parts", "provider", "provider_details", "source",
                 "usage")

    def __init__(self, provider: str, model: str, response_id: str = "") -> None:
        self.provider = provider
        self.model = model
        self.id = response_id
        self.parts: list[Part] = []
        self.usage = Usage()
        self.finish_reason: FinishReason | None = None
        self.provider_details: dict[str, Any] | None = None
        self._open_kind: tuple[str, int] | None = None
        self.source = f"{provider}/{model}" if provider else model

    def add(self, event: StreamEvent) -> StreamEvent:
        event.source = self.source
        kind = event.kind
        if kind == "text":
            if self._open_kind == ("text", event.index):
                last = self.parts[-1]
                assert isinstance(last, TextPart)
                last.text += event.text
            else:
                self.parts.append(TextPart(event.text))
                self._open_kind = ("text", event.index)
        elif kind == "reasoning":
            if self._open_kind == ("reasoning", event.index):
                last = self.parts[-1]
                assert isinstance(last, ReasoningPart)
                last.text += event.text
                if event.signature:
                    last.signature = (last.signature or "") + event.signature
            else:
                self.parts.append(ReasoningPart(event.text, signature=event.signature, provider=self.provider))
                self._open_kind = ("reasoning", event.index)
        elif kind == "tool_call":
            assert event.tool_call is not None
            self.parts.append(event.tool_call)
            self._open_kind = None
        elif kind == "usage":
            assert event.usage is not None
            self.usage = event.usage
        elif kind == "finish":
            self.finish_reason = event.finish_reason
        elif kind == "tool_call_delta":
            pass  # informational: the backend emits the complete call as a tool_call event
        else:
            assert_never(kind)
        return event

    def add_part(self, part: Part) -> None:
        """Append a part that arrived whole (e.g. redacted reasoning)."""
        self.parts.append(part)
        self._open_kind = None

    def response(self, latency_ms: float = 0.0) -> Response:
        finish_reason = self.finish_reason or ("tool_calls" if any(
            isinstance(p, ToolCallPart) for p in self.parts
        ) else "stop")
        return Response(
            id=self.id,
            provider=self.provider,
            model=self.model,
            parts=self.parts,
            finish_reason=finish_reason,
            usage=self.usage,
            latency_ms=latency_ms,
            provider_details=self.provider_details,
        )

    def finish(self, finish_reason: FinishReason | None = None) -> StreamEvent:
        """The closing event, carrying the accumulated response."""
        if finish_reason is not None:
            self.finish_reason = finish_reason
        response = self.response()
        return StreamEvent("finish", finish_reason=response.finish_reason, response=response)


def response_events(response: Response, *, chunk_words: int = 1) -> list[StreamEvent]:
    """A complete response replayed as the stream events that accumulate back into it.

    Used by the test backends and to replay a cached answer as a stream. Text is split into chunks
    of ``chunk_words`` words so consumers see real deltas.
    """
    events: list[StreamEvent] = []
    for index, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            words = part.text.split(" ")
            for start in range(0, len(words), chunk_words):
                chunk = " ".join(words[start : start + chunk_words])
                events.append(StreamEvent("text", text=chunk if start == 0 else " " + chunk, index=index))
        elif isinstance(part, ReasoningPart):
            events.append(StreamEvent("reasoning", text=part.text, signature=part.signature, index=index))
        elif isinstance(part, ToolCallPart):
            arguments = json.dumps(part.arguments)
            events.append(
                StreamEvent("tool_call_delta", index=index, call_id=part.id, name=part.name, arguments_delta=arguments)
            )
            events.append(StreamEvent("tool_call", index=index, tool_call=part))
        else:
            raise InvalidRequestError(f"a response cannot carry a {part.kind} part")
    events.append(StreamEvent("usage", usage=response.usage))
    return events
