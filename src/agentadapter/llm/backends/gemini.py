"""The Google Gemini backend: the Gemini API's native ``generateContent`` wire format (v1beta).

:class:`GeminiBackend` calls ``POST {base}/v1beta/models/{model}:generateContent`` and, for streams,
``:streamGenerateContent?alt=sse`` (server-sent events separated by CRLF CRLF, each event a whole
``GenerateContentResponse`` with the next piece of text), with the key in ``x-goog-api-key``. It
also counts tokens (``:countTokens``) and lists models. JSON schemas are converted to Gemini's
``Schema`` subset by :mod:`~agentadapter.llm.backends.gemini_schema`; errors are translated by
:mod:`agentadapter.llm.errors`. Retries, cost and parsing ``Response.output`` are the facade's.

Neutral → wire, in :func:`request_body`: system messages become ``systemInstruction`` (text only);
``assistant`` is ``model``; tool results become ``functionResponse`` parts of a ``user`` turn, named
after their tool (the name comes from the result or, failing that, from the call with the same id);
consecutive turns of one role are merged. Gemini's thought signatures are kept in
``provider_details`` (``thought_signature``, with ``provider`` naming the backend) and replayed only
to the backend that produced them, like reasoning parts; reasoning from other providers is dropped,
by design (DESIGN.md). ``parallel_tool_calls``, ``metadata``/``tags`` and cache hints have no
Gemini field and are not sent (Gemini caches prompts implicitly).

Wire → neutral: non-streaming and streaming answers go through one translator feeding one
:class:`~agentadapter.llm.messages.StreamAccumulator`, so a stream accumulates to exactly the
``Response`` of the non-streaming call. Only the first candidate is read. A prompt blocked before any
candidate (``promptFeedback.blockReason``) is not raised: it is a ``Response`` with no parts and
``finish_reason="content_filter"`` (the block reason in ``provider_details``), the same outcome as a
candidate stopped for ``SAFETY``, so callers handle one signal for both.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import mimetypes
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, assert_never
from urllib.parse import quote, urlencode

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig, StreamDecoder, elapsed_ms
from agentadapter.llm.backends.embedding_wire import gemini_batch, gemini_body
from agentadapter.llm.backends.gemini_schema import to_gemini_schema
from agentadapter.llm.embeddings import EmbeddingBatch, EmbeddingLimits, EmbeddingRequest
from agentadapter.llm.errors import (
    APIError,
    InvalidRequestError,
    InvalidResponseError,
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
    tool_names_by_call_id,
)
from agentadapter.llm.transport import HTTPRequest, Transport

if TYPE_CHECKING:
    from agentadapter.llm.tools import Tool

__all__ = [
    "DEFAULT_API_VERSION",
    "FINISH_REASONS",
    "ROLES",
    "THINKING_BUDGETS",
    "TOOL_CHOICE_MODES",
    "GeminiBackend",
    "normalize_usage",
    "request_body",
]

DEFAULT_API_VERSION = "v1beta"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

# Neutral role -> Gemini role. System messages are not a turn: they go to `systemInstruction`.
ROLES: dict[str, str] = {"user": "user", "assistant": "model", "tool": "user"}

# Gemini finishReason -> neutral finish reason; anything unknown is "stop" with the raw value kept.
FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}

# Neutral tool_choice -> functionCallingConfig.mode (a tool's name means ANY restricted to it).
TOOL_CHOICE_MODES: dict[str, str] = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}

# reasoning_effort -> thinkingBudget (tokens). 512 is the smallest budget every 2.5 model accepts
# (Flash-Lite's floor); -1 asks for dynamic thinking; 0 turns thinking off where a model allows it.
THINKING_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "auto": -1,
}

_VERSION_SUFFIX = re.compile(r"/v\d+(?:alpha|beta)?\d*$")
_AUTH_HEADERS = ("x-goog-api-key", "authorization")
_MAX_MODEL_PAGES = 50


# ----------------------------------------------------------------------------- neutral -> wire


def request_body(request: Request, provider: str) -> dict[str, Any]:
    """The ``GenerateContentRequest`` JSON for a neutral request (``provider`` = the backend's name)."""
    system, contents = _contents(request.messages, provider)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in request.tools]}]
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    if request.extra_body:
        body = _merge(body, request.extra_body)
    return body


def _own_details(details: Mapping[str, Any] | None, provider: str) -> Mapping[str, Any] | None:
    """``provider_details`` written by this backend, else None (others' signatures cannot be verified)."""
    if details and details.get("provider") == provider:
        return details
    return None


def _contents(messages: list[Message], provider: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tool_names = tool_names_by_call_id(messages)
    gemini_call_ids: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls:
            details = _own_details(call.provider_details, provider)
            if details and details.get("call_id"):
                gemini_call_ids[call.id] = str(details["call_id"])
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            # Gemini has one system instruction: every system message, wherever it stands, joins it.
            for part in message.parts:
                if not isinstance(part, TextPart):
                    raise InvalidRequestError(
                        f"message {index}: Gemini's system instruction takes text only; move the "
                        f"{part.kind} part into a user message"
                    )
                if part.text:
                    system.append({"text": part.text})
            continue
        role = ROLES[message.role]
        parts = [
            wire
            for part in message.parts
            if (wire := _part_to_wire(part, index, provider, tool_names, gemini_call_ids)) is not None
        ]
        if not parts:
            continue  # e.g. an assistant turn that held only another provider's reasoning
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # Gemini wants turns to alternate
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "nothing to send to Gemini: the request has no user or assistant content (a system "
            "message alone is not a prompt); add a user message"
        )
    return system, contents


def _part_to_wire(
    part: Part,
    index: int,
    provider: str,
    tool_names: Mapping[str, str],
    gemini_call_ids: Mapping[str, str],
) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        details = _own_details(part.provider_details, provider)
        signature = details.get("thought_signature") if details else None
        if not part.text and not signature:
            return None  # Gemini rejects empty text parts; an empty one carries nothing
        wire: dict[str, Any] = {"text": part.text}
        if signature:
            wire["thoughtSignature"] = signature
        return wire
    if isinstance(part, ImagePart):
        return _media(part.url, part.data, part.media_type, None, index, "image")
    if isinstance(part, FilePart):
        return _media(part.url, part.data, part.media_type, part.filename, index, "file")
    if isinstance(part, ToolCallPart):
        details = _own_details(part.provider_details, provider)
        call: dict[str, Any] = {"name": part.name, "args": part.arguments}
        if details and details.get("call_id"):
            call["id"] = details["call_id"]
        wire = {"functionCall": call}
        if details and details.get("thought_signature"):
            wire["thoughtSignature"] = details["thought_signature"]
        return wire
    if isinstance(part, ToolResultPart):
        name = part.name or tool_names.get(part.call_id, "")
        if not name:
            raise InvalidRequestError(
                f"message {index}: the tool result for call {part.call_id!r} has no tool name, and no "
                "assistant tool call with that id is in the conversation; Gemini's functionResponse "
                "needs the name: pass name= (Message.tool(call_id, name, content)) or keep the call"
            )
        response: dict[str, Any] = {"name": name, "response": _function_response(part)}
        call_id = gemini_call_ids.get(part.call_id)
        if call_id:
            response["id"] = call_id
        return {"functionResponse": response}
    if isinstance(part, ReasoningPart):
        if part.provider != provider or not (part.text or part.signature):
            return None  # another provider's thinking: Gemini cannot verify it (DESIGN.md)
        wire = {"text": part.text, "thought": True}
        if part.signature:
            wire["thoughtSignature"] = part.signature
        return wire
    assert_never(part)


def _media(
    url: str | None, data: bytes | None, media_type: str | None, filename: str | None, index: int, kind: str
) -> dict[str, Any]:
    if data is not None:
        mime = media_type or (mimetypes.guess_type(filename)[0] if filename else None)
        if not mime:
            raise InvalidRequestError(
                f"message {index}: Gemini needs the media type of an inline {kind}; pass media_type= "
                "(e.g. 'application/pdf')"
            )
        return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}
    assert url is not None
    file_data = {"fileUri": url}
    mime = media_type or mimetypes.guess_type(url)[0]
    if mime:
        file_data["mimeType"] = mime
    return {"fileData": file_data}


def _function_response(part: ToolResultPart) -> dict[str, Any]:
    """``functionResponse.response`` must be a JSON object: use the result when it is one."""
    if part.is_error:
        return {"error": part.content}
    try:
        parsed = json.loads(part.content)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    return {"result": part.content}


def _declaration(tool: Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    parameters = to_gemini_schema(tool.parameters)
    # Gemini rejects an OBJECT with empty properties: a tool without arguments sends none.
    if parameters.get("properties"):
        declaration["parameters"] = parameters
    return declaration


def _tool_config(request: Request) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if not request.tools:
        if choice in ("auto", "none"):
            return None
        raise InvalidRequestError(f"tool_choice={choice!r} needs tools, and the request has none")
    mode = TOOL_CHOICE_MODES.get(choice)
    if mode is not None:
        return {"functionCallingConfig": {"mode": mode}}
    names = [tool.name for tool in request.tools]
    if choice not in names:
        raise InvalidRequestError(
            f"tool_choice={choice!r} is not one of the request's tools ({', '.join(names)}); use "
            "auto, none, required or a tool name"
        )
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


def _generation_config(request: Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.seed is not None:
        config["seed"] = request.seed
    if request.frequency_penalty is not None:
        config["frequencyPenalty"] = request.frequency_penalty
    if request.presence_penalty is not None:
        config["presencePenalty"] = request.presence_penalty
    if request.output is not None:
        config["responseMimeType"] = "application/json"
        if not request.output.json_mode:  # JSON mode: any JSON, no schema
            config["responseSchema"] = to_gemini_schema(request.output.json_schema, property_ordering=True)
    if request.reasoning_effort is not None:
        budget = THINKING_BUDGETS.get(request.reasoning_effort.lower())
        if budget is None:
            raise InvalidRequestError(
                f"reasoning_effort={request.reasoning_effort!r} is not known; use one of "
                f"{', '.join(THINKING_BUDGETS)}, or set generationConfig.thinkingConfig via extra_body"
            )
        thinking: dict[str, Any] = {"thinkingBudget": budget}
        if budget != 0:
            thinking["includeThoughts"] = True
        config["thinkingConfig"] = thinking
    return config


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; nested objects merge so extra_body can add one generationConfig key."""
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


# ----------------------------------------------------------------------------- wire -> neutral


def _count(metadata: Mapping[str, Any], key: str) -> int:
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalize_usage(metadata: Mapping[str, Any]) -> Usage:
    """``usageMetadata`` in DESIGN.md's terms: thoughts and tool-use prompts are added where they belong."""
    thoughts = _count(metadata, "thoughtsTokenCount")
    return Usage(
        input_tokens=_count(metadata, "promptTokenCount") + _count(metadata, "toolUsePromptTokenCount"),
        output_tokens=_count(metadata, "candidatesTokenCount") + thoughts,
        cached_input_tokens=_count(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _signature(part: Part) -> Any:
    details = part.provider_details
    return details.get("thought_signature") if details else None


class _Translator(StreamDecoder):
    """``GenerateContentResponse`` chunks → stream events, all fed through one accumulator.

    A non-streaming answer is one chunk (closed with :meth:`finish`); a stream is many (closed with
    :meth:`close`, which first checks that the model finished). Gemini's signatures are whole
    values, never deltas, so a second signature starts a new part instead of being glued to the first.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.request_model = model
        self.acc = StreamAccumulator(provider, model)
        self.usage: Usage | None = None
        self.raw_finish: str | None = None
        self.block_reason: str | None = None
        self.chunks = 0
        self._details: dict[str, Any] = {}
        self._calls = 0
        self._block = 0
        self._id_token: str | None = None

    def feed(self, chunk: Any) -> list[StreamEvent]:
        first = chunk[0] if isinstance(chunk, list) and chunk else chunk
        if isinstance(first, Mapping) and "error" in first:
            # Gemini sends errors mid-stream as an event of their own (and some proxies with HTTP 200).
            raise error_from_event(chunk, provider=self.provider, model=self.request_model)
        if not isinstance(chunk, Mapping):
            raise InvalidResponseError(
                f"{self.provider} answered with something that is not a GenerateContentResponse "
                f"(model {self.request_model}): {str(chunk)[:200]!r}; check the base URL",
                provider=self.provider, model=self.request_model, body=chunk,
            )
        self.chunks += 1
        response_id = chunk.get("responseId")
        if isinstance(response_id, str) and response_id and not self.acc.id:
            self.acc.id = response_id
        model_version = chunk.get("modelVersion")
        if isinstance(model_version, str) and model_version:
            self.acc.model = model_version
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, Mapping):
            self.usage = normalize_usage(metadata)  # cumulative: the last one is the total
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, Mapping) and feedback.get("blockReason"):
            self.block_reason = str(feedback["blockReason"])
            self._details["block_reason"] = self.block_reason
            if feedback.get("blockReasonMessage"):
                self._details["block_reason_message"] = feedback["blockReasonMessage"]
        events: list[StreamEvent] = []
        candidates = chunk.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
            candidate = candidates[0]
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, Mapping):
                    events.extend(self._part(part))
            finish = candidate.get("finishReason")
            if isinstance(finish, str) and finish:
                self.raw_finish = finish
                self._details["finish_reason"] = finish
            if candidate.get("finishMessage"):
                self._details["finish_message"] = candidate["finishMessage"]
        return events

    def _part(self, part: Mapping[str, Any]) -> list[StreamEvent]:
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        last = self.acc.parts[-1] if self.acc.parts else None
        if part.get("thought"):
            text = str(part.get("text") or "")
            if signature and isinstance(last, ReasoningPart) and last.signature:
                self._block += 1
            if not text and not signature:
                return []
            return [self.acc.add(StreamEvent("reasoning", text=text, signature=signature, index=self._block))]
        if "text" in part:
            return self._text(str(part.get("text") or ""), signature, last)
        if isinstance(part.get("functionCall"), Mapping):
            return self._function_call(part["functionCall"], signature)
        for key in ("inlineData", "fileData"):
            if isinstance(part.get(key), Mapping):
                self.acc.add_part(self._media(key, part[key]))
                return []
        # executableCode, codeExecutionResult, ...: kept, not silently lost.
        self._details.setdefault("unhandled_parts", []).append(dict(part))
        return []

    def _text(self, text: str, signature: str | None, last: Part | None) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if signature and text and isinstance(last, TextPart) and _signature(last):
            self._block += 1
        if text:
            events.append(self.acc.add(StreamEvent("text", text=text, index=self._block)))
        if signature:
            # The signature belongs to this text, or (streams send it last, in an empty part) to the
            # text just streamed; a signature with no text to hold it gets a part of its own.
            target = self.acc.parts[-1] if self.acc.parts else None
            if isinstance(target, TextPart) and (text or not _signature(target)):
                target.provider_details = {**(target.provider_details or {}), **self._signed(signature)}
            else:
                self.acc.add_part(TextPart("", provider_details=self._signed(signature)))
        return events

    def _signed(self, signature: str) -> dict[str, Any]:
        return {"provider": self.provider, "thought_signature": signature}

    def _function_call(self, call: Mapping[str, Any], signature: str | None) -> list[StreamEvent]:
        name = str(call.get("name") or "")
        arguments = parse_tool_arguments(call.get("args"), name)
        gemini_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        details: dict[str, Any] = {"provider": self.provider}
        if gemini_id:
            details["call_id"] = gemini_id
        if signature:
            details["thought_signature"] = signature
        tool_call = ToolCallPart(
            id=gemini_id or self._new_call_id(), name=name, arguments=arguments, provider_details=details
        )
        index = self._calls
        self._calls += 1
        # Gemini sends a call whole: its one delta and the complete call go out together.
        delta = StreamEvent(
            "tool_call_delta", index=index, call_id=tool_call.id, name=name,
            arguments_delta=json.dumps(arguments, ensure_ascii=False),
        )
        return [self.acc.add(delta), self.acc.add(StreamEvent("tool_call", index=index, tool_call=tool_call))]

    def _new_call_id(self) -> str:
        """Gemini often gives no call id: make one, unique across turns, derived from the response id.

        Derived (not random) so that a stream and a non-streaming call of one response agree; short
        (at most 40 characters, OpenAI's limit) so the conversation can fail over to another provider.
        """
        if self._id_token is None:
            seed = self.acc.id or secrets.token_hex(8)
            self._id_token = hashlib.sha256(seed.encode()).hexdigest()[:10]
        return f"call_{self._id_token}_{self._calls}"

    @staticmethod
    def _media(key: str, data: Mapping[str, Any]) -> Part:
        mime = data.get("mimeType")
        mime = str(mime) if mime else None
        if key == "inlineData":
            raw = base64.b64decode(str(data.get("data") or ""))
            if mime and mime.startswith("image/"):
                return ImagePart(data=raw, media_type=mime)
            return FilePart(data=raw, media_type=mime)
        uri = str(data.get("fileUri") or "")
        if mime and mime.startswith("image/"):
            return ImagePart(url=uri, media_type=mime)
        return FilePart(url=uri, media_type=mime)

    def finish_reason(self) -> FinishReason | None:
        if self.raw_finish is None:
            return "content_filter" if self.block_reason else None
        reason = FINISH_REASONS.get(self.raw_finish, "stop")
        if reason == "stop" and self._calls:
            return "tool_calls"
        return reason

    def close(self) -> list[StreamEvent]:
        if self.raw_finish is None and self.block_reason is None:
            raise StreamInterruptedError(
                f"{self.provider}'s stream ended before the model finished ({self.chunks} chunk(s), "
                f"no finishReason; model {self.request_model}); the answer is incomplete, the call may be retried",
                provider=self.provider, model=self.request_model,
            )
        return self.finish()

    def finish(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self.usage is not None:
            events.append(self.acc.add(StreamEvent("usage", usage=self.usage)))
        if not self.acc.id:
            self.acc.id = f"gemini-{secrets.token_hex(12)}"
        if self._details:
            self.acc.provider_details = self._details
        events.append(self.acc.finish(self.finish_reason()))
        return events


# ------------------------------------------------------------------------------------- backend


class GeminiBackend(Backend):
    """Google's Gemini API (``generativelanguage.googleapis.com``), native format."""

    type_name = "gemini"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        # GEMINI_BASE_URL is the bare host, but a URL that already ends in a version is used as is.
        self._root = base if _VERSION_SUFFIX.search(base) else f"{base}/{config.api_version or DEFAULT_API_VERSION}"
        self._headers = {"content-type": "application/json"}
        if config.api_key:
            self._headers["x-goog-api-key"] = config.api_key
        has_auth = bool(config.api_key) or any(h.lower() in _AUTH_HEADERS for h in config.headers)
        # A missing key only stops calls to Google's own host: a proxy may authenticate otherwise.
        if not has_auth and base == DEFAULT_BASE_URL:
            self.setup_problem = "GEMINI_API_KEY (or GOOGLE_API_KEY) is not set; export it or pass api_key=..."

    # -------------------------------------------------------------------------------- requests

    def _url(self, model: str, method: str) -> str:
        self.check_setup(model)
        return f"{self._root}/{quote(_resource_name(model), safe='/')}:{method}"

    def _http(self, request: Request, method: str, body: Any) -> HTTPRequest:
        return self.http_request("POST", self._url(request.model, method), request, body=body, headers=self._headers)

    def request_body(self, request: Request) -> dict[str, Any]:
        """The wire body this backend sends for ``request`` (handy for debugging and tests)."""
        return request_body(request, self.name)

    # ---------------------------------------------------------------------------- the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        http_request = self._http(request, "generateContent", self.request_body(request))
        body, _ = await self.send_json(http_request)
        translator = _Translator(self.name, request.model)
        translator.feed(body)
        finish = translator.finish()[-1]
        assert finish.response is not None
        finish.response.latency_ms = elapsed_ms(started)
        return finish.response

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        http_request = self._http(request, "streamGenerateContent?alt=sse", self.request_body(request))
        decoder = _Translator(self.name, request.model)
        async with contextlib.aclosing(self.stream_with(decoder, http_request, started=started)) as events:
            async for event in events:
                yield event

    async def count_tokens(self, request: Request) -> int:
        """Input tokens as Gemini counts them (``:countTokens``), system instruction and tools included."""
        full = self.request_body(request)
        inner = {"model": _resource_name(request.model)}
        inner.update({k: full[k] for k in ("contents", "systemInstruction", "tools", "toolConfig") if k in full})
        body, _ = await self.send_json(self._http(request, "countTokens", {"generateContentRequest": inner}))
        total = body.get("totalTokens") if isinstance(body, Mapping) else None
        if not isinstance(total, int):
            raise InvalidResponseError(
                f"{self.name} answered countTokens without totalTokens (model {request.model}): "
                f"{str(body)[:200]}; check the base URL",
                provider=self.name, model=request.model, body=body,
            )
        return total

    # ------------------------------------------------------------------------------- embeddings

    def embedding_limits(self, model: str) -> EmbeddingLimits:
        # batchEmbedContents takes at most 100 requests; Gemini's embedding models read 2,048 tokens.
        return EmbeddingLimits(max_inputs=100, max_input_tokens=2048, max_batch_tokens=100 * 2048)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        """``:batchEmbedContents``, one request per text; the task type follows ``input_type``."""
        resource = _resource_name(request.model)
        url = self._url(request.model, "batchEmbedContents")
        http_request = self.http_request("POST", url, request, body=gemini_body(request, resource),
                                         headers=self._headers)
        body, _ = await self.send_json(http_request)
        return gemini_batch(body, request, self.name)

    # ------------------------------------------------------------------------------- discovery

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> HTTPRequest:
        self.check_setup()
        url = f"{self._root}/{path}" + (f"?{urlencode(query)}" if query else "")
        return self.http_request("GET", url, None, headers=self._headers)

    async def _model_entries(self) -> list[Mapping[str, Any]]:
        entries: list[Mapping[str, Any]] = []
        token = ""
        for _ in range(_MAX_MODEL_PAGES):
            query = {"pageSize": "1000", **({"pageToken": token} if token else {})}
            body, _ = await self.send_json(self._get("models", query))
            models = body.get("models") if isinstance(body, Mapping) else None
            entries.extend(m for m in models or () if isinstance(m, Mapping))
            token = str(body.get("nextPageToken") or "") if isinstance(body, Mapping) else ""
            if not token:
                break
        return entries

    async def list_models(self) -> list[str]:
        """Model names (``GET /v1beta/models``, every page), without the ``models/`` prefix."""
        return [_strip_models(str(entry["name"])) for entry in await self._model_entries() if entry.get("name")]

    async def detect_capabilities(self, model: str) -> catalog.Capabilities:
        """The catalog's entry, updated with the token limits and thinking flag Gemini reports."""
        known = self.capabilities(model)
        try:
            entry, _ = await self.send_json(self._get(_resource_name(model)))
        except APIError:
            return known  # detection is best effort; the catalog answer stands
        if not isinstance(entry, Mapping):
            return known
        updates: dict[str, Any] = {}
        for key, field in (("inputTokenLimit", "context_window"), ("outputTokenLimit", "max_output_tokens")):
            value = entry.get(key)
            if isinstance(value, int) and value > 0:
                updates[field] = value
        if isinstance(entry.get("thinking"), bool):
            updates["reasoning"] = entry["thinking"]
        return dataclasses.replace(known, **updates) if updates else known


def _resource_name(model: str) -> str:
    """``models/<model>``; names given as ``models/x`` or tuned models (``tunedModels/x``) stay as they are."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _strip_models(name: str) -> str:
    return name[len("models/") :] if name.startswith("models/") else name
