"""The Cohere v2 chat backend (``type: cohere``): ``POST {base_url}/v2/chat``, bearer auth.

Cohere's wire format is not OpenAI-shaped, so it has its own two mapping directions here, with the
HTTP exchange in :class:`CohereBackend` and the stream state machine in :class:`CohereStreamDecoder`.

Neutral → wire: messages keep their roles (``system``, ``user``, ``assistant``, ``tool``); user
content is a string or a list of ``text`` / ``image_url`` items; an assistant turn sends its tool
calls (arguments as a JSON string) with its text as ``tool_plan``; each tool result becomes a
``role: tool`` message whose content is a string, or a document list when the result part carries
``provider_details={"documents": [...]}``. Grounding documents for RAG come from
``extra_body={"documents": [...]}`` or, for callers that can only set string metadata,
``metadata={"documents": "<JSON list>"}``; each is a string or an object (an object without a
``data`` key is wrapped as ``{"data": ...}``). Structured output is
``response_format: {"type": "json_object", "json_schema": ...}``; ``top_p`` is ``p``, ``stop`` is
``stop_sequences``; ``reasoning_effort`` becomes ``thinking`` (see :data:`THINKING_BUDGETS`). A
tool forced by name is sent as ``tool_choice: REQUIRED`` with only that tool offered, because
Cohere cannot name one tool. ``parallel_tool_calls`` has no Cohere equivalent and is not sent.

Wire → neutral: ``message.content[]`` ``text`` items become text parts and ``thinking`` items
reasoning parts; ``message.tool_plan`` becomes a :class:`TextPart` (and ``provider_details
["tool_plan"]``): it is the visible sentence a model says before calling tools, which is what
Anthropic and OpenAI models put in plain text at that point, so a conversation stays portable and
the text goes back to Cohere as ``tool_plan`` on the next turn. It is not reasoning: nothing signs
it and every provider may see it. Thinking is not sent back to Cohere (its own clients drop it from
history). Citations, the raw finish reason when unknown and ``billed_units`` go in
``provider_details``. Cohere bills fewer input tokens than it processes: ``usage`` reports the
processed ones (per DESIGN.md), and ``cost_usd`` is priced from ``billed_units``, what the invoice
counts (:func:`billed_cost`), streamed or not. A stream of typed events (``message-start`` …
``message-end``) accumulates into exactly the ``Response`` of the non-streaming call.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig, StreamDecoder, elapsed_ms
from agentadapter.llm.backends.embedding_wire import cohere_batch, cohere_body
from agentadapter.llm.backends.openai_chat_mapping import arguments_json
from agentadapter.llm.embeddings import EmbeddingBatch, EmbeddingLimits, EmbeddingRequest
from agentadapter.llm.errors import (
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
    Role,
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

__all__ = ["DEFAULT_BASE_URL", "CohereBackend", "CohereStreamDecoder"]

DEFAULT_BASE_URL = "https://api.cohere.com"
CHAT_PATH = "/v2/chat"
EMBED_PATH = "/v2/embed"
MODELS_PATH = "/v1/models?endpoint=chat"

WIRE_ROLES: dict[Role, str] = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool"}

FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "TIMEOUT": "error",
    # v1 spellings that Cohere-compatible servers still send.
    "ERROR_TOXIC": "content_filter",
    "ERROR_LIMIT": "length",
    "USER_CANCEL": "error",
}

TOOL_CHOICES: dict[str, str | None] = {"auto": None, "none": "NONE", "required": "REQUIRED"}
"""Neutral ``tool_choice`` → Cohere's (``auto`` is Cohere's default and is not sent)."""

THINKING_BUDGETS: dict[str, int | None] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": None}
"""``reasoning_effort`` → ``thinking.token_budget`` (None: the model's own limit). ``none`` turns
thinking off."""

_PLAN_INDEX = -1
"""Stream index of the tool plan, apart from the content blocks (which count from 0)."""


# ------------------------------------------------------------------------------- neutral → wire


def request_body(request: Request, *, stream: bool) -> dict[str, Any]:
    """The ``/v2/chat`` body for ``request``."""
    body: dict[str, Any] = {"model": request.model, "messages": messages_to_wire(request.messages)}
    if stream:
        body["stream"] = True
    tools = list(request.tools)
    if request.tool_choice is not None:
        tools, choice = _tool_choice(request.tool_choice, tools)
        if choice is not None and tools:
            body["tool_choice"] = choice
    if tools:
        body["tools"] = [tool_to_wire(tool) for tool in tools]
        if any(tool.strict for tool in tools):
            body["strict_tools"] = True
    if request.output is not None:
        body["response_format"] = ({"type": "json_object"} if request.output.json_mode
                                   else {"type": "json_object", "json_schema": request.output.json_schema})
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["p"] = request.top_p
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.seed is not None:
        body["seed"] = request.seed
    if request.frequency_penalty is not None:
        body["frequency_penalty"] = request.frequency_penalty
    if request.presence_penalty is not None:
        body["presence_penalty"] = request.presence_penalty
    if request.reasoning_effort is not None:
        body["thinking"] = thinking(request.reasoning_effort)
    documents = request.extra_body.get("documents")
    if documents is None and "documents" in request.metadata:
        documents = _documents_from_metadata(request.metadata["documents"])
    body.update({k: v for k, v in request.extra_body.items() if k != "documents"})
    if documents is not None:
        body["documents"] = [_document(item) for item in documents]
    return body


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    """Cohere's tool shape: OpenAI's, without the per-tool ``strict`` (Cohere has ``strict_tools``)."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: str, tools: list[Tool]) -> tuple[list[Tool], str | None]:
    if choice in TOOL_CHOICES:
        if choice == "required" and not tools:
            raise InvalidRequestError(
                "tool_choice='required' needs at least one tool; pass tools=[...] or drop tool_choice"
            )
        return tools, TOOL_CHOICES[choice]
    forced = [tool for tool in tools if tool.name == choice]
    if not forced:
        known = ", ".join(tool.name for tool in tools) or "none"
        raise InvalidRequestError(
            f"tool_choice={choice!r} names no tool of this request (tools: {known}); "
            "use auto, none, required or one of the tool names"
        )
    return forced, "REQUIRED"


def thinking(effort: str) -> dict[str, Any]:
    """Cohere's ``thinking`` setting for a ``reasoning_effort``."""
    if effort == "none":
        return {"type": "disabled"}
    if effort not in THINKING_BUDGETS:
        raise InvalidRequestError(
            f"reasoning_effort={effort!r} is not one of none, {', '.join(THINKING_BUDGETS)}"
        )
    budget = THINKING_BUDGETS[effort]
    return {"type": "enabled"} if budget is None else {"type": "enabled", "token_budget": budget}


def _documents_from_metadata(raw: str) -> list[Any]:
    try:
        documents = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(
            f"metadata['documents'] must be a JSON list of documents for Cohere ({exc}); "
            "or pass them as extra_body={'documents': [...]}"
        ) from exc
    if not isinstance(documents, list):
        raise InvalidRequestError("metadata['documents'] must be a JSON list of documents for Cohere")
    return documents


def _document(item: Any) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        return dict(item) if "data" in item else {"data": dict(item)}
    raise InvalidRequestError(
        f"a Cohere document is a string or an object, not {type(item).__name__}"
    )


def messages_to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Neutral messages as Cohere v2 messages (each tool result is its own ``role: tool`` message)."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        parts = message.parts
        if len(parts) == 1 and type(parts[0]) is TextPart and message.role != "tool":
            wire.append({"role": WIRE_ROLES[message.role], "content": parts[0].text})
            continue
        _message_to_wire(message, wire)
    return wire


def _message_to_wire(message: Message, wire: list[dict[str, Any]]) -> None:
    role = message.role
    content: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.data_url}
            if part.detail:
                image["detail"] = part.detail
            content.append({"type": "image_url", "image_url": image})
        elif isinstance(part, FilePart):
            raise InvalidRequestError(
                "Cohere's chat API takes no files; pass the file's text in a message, or as a "
                "grounding document with extra_body={'documents': [{'data': {'text': ...}}]}"
            )
        elif isinstance(part, ToolCallPart):
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": arguments_json(part.arguments)},
                }
            )
        elif isinstance(part, ToolResultPart):
            results.append({"role": "tool", "tool_call_id": part.call_id, "content": _result_content(part)})
        elif isinstance(part, ReasoningPart):
            continue  # thinking is not sent back to Cohere; see the module docstring
        else:
            assert_never(part)

    if role == "tool":
        if content or calls:
            raise InvalidRequestError(
                "a tool message may hold only tool results; put text and images in a user message"
            )
        wire.extend(results)
        return
    if role == "assistant":
        if results:
            raise InvalidRequestError("an assistant message cannot hold tool results; send them in a tool message")
        if any(item["type"] != "text" for item in content):
            raise InvalidRequestError("Cohere takes images only in user messages; move them to a user message")
        _assistant_to_wire(message, content, calls, wire)
        return
    if calls:
        raise InvalidRequestError(f"a {role} message cannot hold tool calls; they belong in an assistant message")
    if role == "system" and any(item["type"] != "text" for item in content):
        raise InvalidRequestError("a system message holds text only; move images to a user message")
    # Tool results must directly follow the assistant's calls, so they go before the rest.
    wire.extend(results)
    if content or not results:
        only_text = all(item["type"] == "text" for item in content)
        text_or_items: Any = "".join(item["text"] for item in content) if only_text else content
        wire.append({"role": WIRE_ROLES[role], "content": text_or_items})


def _assistant_to_wire(
    message: Message, content: list[dict[str, Any]], calls: list[dict[str, Any]], wire: list[dict[str, Any]]
) -> None:
    text = "".join(item["text"] for item in content)
    item: dict[str, Any] = {"role": "assistant"}
    if calls:
        item["tool_calls"] = calls
        explicit_plan = (message.provider_details or {}).get("tool_plan")
        # The text before a tool call is the plan (that is how a Cohere answer arrives here); an
        # explicit plan in provider_details wins, and then the text is sent as content beside it.
        has_explicit_plan = isinstance(explicit_plan, str) and bool(explicit_plan)
        plan = explicit_plan if has_explicit_plan else text
        if plan:
            item["tool_plan"] = plan
        if has_explicit_plan and text:
            item["content"] = text
    elif text:
        item["content"] = text
    else:
        return  # e.g. a turn that held only another provider's reasoning: nothing to send
    wire.append(item)


def _result_content(part: ToolResultPart) -> str | list[dict[str, Any]]:
    documents = (part.provider_details or {}).get("documents")
    if documents:
        return [{"type": "document", "document": _document(doc)} for doc in documents]
    # Cohere has no error flag on tool results; the model reads the marker.
    return f"Error: {part.content}" if part.is_error else part.content


# ------------------------------------------------------------------------------- wire → neutral


def usage_from_wire(raw: Mapping[str, Any] | None) -> Usage:
    """``usage.tokens`` (what the model processed), falling back to ``usage.billed_units``."""
    if not raw:
        return Usage()
    tokens = raw.get("tokens") or {}
    billed = raw.get("billed_units") or {}

    def count(key: str) -> int:
        value = tokens.get(key)
        if value is None:
            value = billed.get(key)
        return int(value or 0)  # Cohere sends counts as floats (37.0)

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cached_input_tokens=int(raw.get("cached_tokens") or 0),
    )


def billed_cost(raw: Mapping[str, Any] | None, pricing: catalog.Pricing | None) -> float | None:
    """The cost of a call from ``usage.billed_units``; None without them (the caller prices ``usage``)."""
    billed = (raw or {}).get("billed_units")
    if not isinstance(billed, Mapping) or not billed:
        return None
    try:
        billed_usage = Usage(
            input_tokens=int(billed.get("input_tokens") or 0), output_tokens=int(billed.get("output_tokens") or 0)
        )
    except (TypeError, ValueError):
        return None  # not numbers: price what was processed instead, as for a server that sends none
    return catalog.cost_usd(billed_usage, pricing)


def finish_reason_from_wire(raw: Any, *, has_tool_calls: bool) -> tuple[FinishReason, str | None]:
    """(neutral reason, the raw reason when it is not one we know)."""
    if raw is None:
        return ("tool_calls" if has_tool_calls else "stop"), None
    reason = FINISH_REASONS.get(str(raw))
    if reason is None:
        return "stop", str(raw)
    return reason, None


def response_details(
    *,
    tool_plan: str,
    citations: list[Any],
    unknown_finish: str | None,
    error: Any,
    usage: Mapping[str, Any] | None,
    unsupported: list[Any],
) -> dict[str, Any] | None:
    """``provider_details`` of an answer, built the same way for generate and stream."""
    details: dict[str, Any] = {}
    if tool_plan:
        details["tool_plan"] = tool_plan
    if citations:
        details["citations"] = citations
    if unknown_finish is not None:
        details["finish_reason"] = unknown_finish
    if error:
        details["error"] = error
    billed = (usage or {}).get("billed_units")
    if billed:
        details["billed_units"] = billed
    if unsupported:
        details["unsupported_content"] = unsupported
    return details or None


def response_from_body(body: Mapping[str, Any], provider: str, model: str) -> Response:
    """A complete ``/v2/chat`` answer as a neutral :class:`Response`."""
    message = body.get("message") or {}
    parts: list[Part] = []
    unsupported: list[Any] = []
    for item in message.get("content") or ():
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            parts.append(TextPart(str(item.get("text") or "")))
        elif kind == "thinking":
            parts.append(ReasoningPart(str(item.get("thinking") or ""), provider=provider))
        else:
            unsupported.append(item)
    plan = str(message.get("tool_plan") or "")
    if plan:
        parts.append(TextPart(plan))
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        parts.append(
            ToolCallPart(
                id=str(call.get("id") or f"call_{index}"),
                name=name,
                arguments=parse_tool_arguments(function.get("arguments"), name),
            )
        )
    has_calls = any(isinstance(p, ToolCallPart) for p in parts)
    finish_reason, unknown = finish_reason_from_wire(body.get("finish_reason"), has_tool_calls=has_calls)
    usage = body.get("usage")
    return Response(
        id=str(body.get("id") or ""),
        provider=provider,
        model=model,
        parts=parts,
        finish_reason=finish_reason,
        usage=usage_from_wire(usage),
        provider_details=response_details(
            tool_plan=plan,
            citations=list(message.get("citations") or ()),
            unknown_finish=unknown,
            error=body.get("error"),
            usage=usage,
            unsupported=unsupported,
        ),
    )


# ------------------------------------------------------------------------------------- streaming


@dataclass(slots=True)
class _CallBuilder:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class CohereStreamDecoder(StreamDecoder):
    """Turns Cohere v2 stream events (parsed JSON) into neutral :class:`StreamEvent` s.

    Text and thinking deltas stream as ``text`` / ``reasoning`` events keyed by the content index,
    the tool plan as ``text`` of its own; a tool call is emitted whole at ``tool-call-end``.
    ``message-end`` carries the finish reason and usage, emitted by :meth:`close`.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.accumulator = StreamAccumulator(provider, model)
        self.ended = False
        self._plan: list[str] = []
        self._calls: dict[int, _CallBuilder] = {}
        self._citations: list[Any] = []
        self._unsupported: list[Any] = []
        self._finish_raw: Any = None
        self._usage: Mapping[str, Any] | None = None
        self._error: Any = None

    @property
    def raw_usage(self) -> Mapping[str, Any] | None:
        """``message-end``'s usage as sent (``billed_units`` included), once the stream has ended."""
        return self._usage

    def feed(self, data: Any) -> list[StreamEvent]:
        """Events for one server-sent event's JSON data."""
        if not isinstance(data, Mapping):
            raise self._broken(f"sent a stream event that is not an object: {str(data)[:200]!r}")
        kind = data.get("type")
        delta = data.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        message = delta.get("message")
        message = message if isinstance(message, Mapping) else {}
        index = data.get("index")
        index = index if isinstance(index, int) else 0
        acc = self.accumulator
        if kind == "content-delta":
            content = message.get("content") or {}
            if content.get("thinking"):
                return [acc.add(StreamEvent("reasoning", text=str(content["thinking"]), index=index))]
            if content.get("text"):
                return [acc.add(StreamEvent("text", text=str(content["text"]), index=index))]
            return []
        if kind == "tool-plan-delta":
            piece = str(message.get("tool_plan") or "")
            if not piece:
                return []
            self._plan.append(piece)
            return [acc.add(StreamEvent("text", text=piece, index=_PLAN_INDEX))]
        if kind == "tool-call-start":
            return self._call_start(index, message.get("tool_calls") or {})
        if kind == "tool-call-delta":
            return self._call_delta(index, message.get("tool_calls") or {})
        if kind == "tool-call-end":
            return self._call_end(index)
        if kind == "content-start":
            return self._content_start(index, message.get("content") or {})
        if kind == "message-start":
            acc.id = str(data.get("id") or acc.id)
            return []
        if kind == "citation-start":
            citations = message.get("citations")
            if isinstance(citations, list):
                self._citations.extend(citations)
            elif citations:
                self._citations.append(citations)
            return []
        if kind == "message-end":
            self.ended = True
            self._finish_raw = delta.get("finish_reason")
            self._usage = delta.get("usage")
            self._error = delta.get("error")
            return []
        if kind == "error" or (kind is None and ("message" in data or "error" in data)):
            raise error_from_event(dict(data), provider=self.provider, model=self.model)
        return []  # content-end, citation-end, debug, and event types added after this was written

    def close(self) -> list[StreamEvent]:
        """The closing events: calls left open, the usage, and ``finish``."""
        if not self.ended:
            raise self._broken("ended the stream before message-end, so the answer is incomplete")
        events = [self._complete(index) for index in sorted(self._calls)]
        acc = self.accumulator
        has_calls = any(isinstance(p, ToolCallPart) for p in acc.parts)
        finish_reason, unknown = finish_reason_from_wire(self._finish_raw, has_tool_calls=has_calls)
        acc.provider_details = response_details(
            tool_plan="".join(self._plan),
            citations=self._citations,
            unknown_finish=unknown,
            error=self._error,
            usage=self._usage,
            unsupported=self._unsupported,
        )
        events.append(acc.add(StreamEvent("usage", usage=usage_from_wire(self._usage))))
        events.append(acc.finish(finish_reason))
        return events

    # ------------------------------------------------------------------------------ blocks

    def _content_start(self, index: int, content: Mapping[str, Any]) -> list[StreamEvent]:
        kind = content.get("type")
        if kind == "thinking" and content.get("thinking"):
            return [self.accumulator.add(StreamEvent("reasoning", text=str(content["thinking"]), index=index))]
        if kind == "text" and content.get("text"):
            return [self.accumulator.add(StreamEvent("text", text=str(content["text"]), index=index))]
        if kind not in ("text", "thinking", None):
            self._unsupported.append(dict(content))
        return []

    def _call_start(self, index: int, call: Mapping[str, Any]) -> list[StreamEvent]:
        function = call.get("function") or {}
        builder = _CallBuilder(str(call.get("id") or f"call_{index}"), str(function.get("name") or ""))
        initial = str(function.get("arguments") or "")
        if initial:
            builder.arguments.append(initial)
        self._calls[index] = builder
        return [self.accumulator.add(StreamEvent(
            "tool_call_delta", index=index, call_id=builder.id, name=builder.name, arguments_delta=initial,
        ))]

    def _call_delta(self, index: int, call: Mapping[str, Any]) -> list[StreamEvent]:
        builder = self._calls.get(index)
        if builder is None:
            raise self._broken(f"sent a tool-call-delta for call {index}, which was never started")
        fragment = str((call.get("function") or {}).get("arguments") or "")
        if not fragment:
            return []
        builder.arguments.append(fragment)
        return [self.accumulator.add(StreamEvent("tool_call_delta", index=index, arguments_delta=fragment))]

    def _call_end(self, index: int) -> list[StreamEvent]:
        if index not in self._calls:
            return []
        return [self._complete(index)]

    def _complete(self, index: int) -> StreamEvent:
        builder = self._calls.pop(index)
        call = ToolCallPart(
            id=builder.id, name=builder.name,
            arguments=parse_tool_arguments("".join(builder.arguments), builder.name),
        )
        return self.accumulator.add(StreamEvent("tool_call", index=index, tool_call=call))

    def _broken(self, what: str) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"{self.provider} {what} (model {self.model}); the call may be retried",
            provider=self.provider, model=self.model,
        )


# --------------------------------------------------------------------------------------- backend


class CohereBackend(Backend):
    """Cohere's Command models through the v2 chat API.

    ``base_url`` is the bare host, as Cohere's SDK takes it (``https://api.cohere.com``); a trailing
    ``/v1`` or ``/v2`` is forgiven.
    """

    type_name = "cohere"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        for suffix in ("/v2", "/v1"):
            if base_url.endswith(suffix):
                base_url = base_url[: -len(suffix)]
        self._base_url = base_url
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if config.api_key:
            self._headers["authorization"] = f"Bearer {config.api_key}"
        if not config.api_key and base_url == DEFAULT_BASE_URL:
            self.setup_problem = "COHERE_API_KEY is not set; export it or pass api_key=..."

    # ------------------------------------------------------------------------------ the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await self.send_for_object(
            self._post(request, stream=False), "a v2 chat response", key="message",
            hint=f"check the base URL (the bare host, e.g. {DEFAULT_BASE_URL})",
        )
        response = response_from_body(body, self.name, request.model)
        response.cost_usd = billed_cost(body.get("usage"), self.capabilities(request.model).pricing)
        response.latency_ms = elapsed_ms(started)
        return response

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        http_request = self._post(request, stream=True)
        decoder = CohereStreamDecoder(self.name, request.model)
        async with contextlib.aclosing(self.stream_with(decoder, http_request, started=started)) as events:
            async for event in events:
                if event.kind == "finish" and event.response is not None:
                    event.response.cost_usd = billed_cost(decoder.raw_usage, self.capabilities(request.model).pricing)
                yield event

    def embedding_limits(self, model: str) -> EmbeddingLimits:
        # 96 texts a request; embed-v4.0 reads 128K tokens a text, the v3 models 512.
        per_text = 128_000 if model.startswith("embed-v4") else 512
        return EmbeddingLimits(max_inputs=96, max_input_tokens=per_text, max_batch_tokens=96 * per_text)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        """``POST /v2/embed`` with float embeddings; the tokens are the billed units Cohere reports."""
        self.check_setup(request.model)
        http_request = self.http_request("POST", self._base_url + EMBED_PATH, request, body=cohere_body(request),
                                         headers=self._headers)
        body, _ = await self.send_json(http_request)
        return cohere_batch(body, request, self.name)

    async def list_models(self) -> list[str]:
        """The chat models this key may use (``GET /v1/models?endpoint=chat``)."""
        self.check_setup()
        http_request = self.http_request("GET", self._base_url + MODELS_PATH, None, headers=self._headers)
        return await self.list_names(http_request, key="models", field="name", path="/v1/models")

    # -------------------------------------------------------------------------------- plumbing

    def _post(self, request: Request, *, stream: bool) -> HTTPRequest:
        self.check_setup(request.model)
        body = request_body(request, stream=stream)
        return self.http_request("POST", self._base_url + CHAT_PATH, request, body=body, headers=self._headers)
