"""The backend interface (the seeds' ``BaseLLMProvider``) and the backend registry.

A :class:`Backend` turns a neutral :class:`~agentadapter.llm.messages.Request` into a provider call
and the provider's answer into a neutral :class:`~agentadapter.llm.messages.Response` or stream of
:class:`~agentadapter.llm.messages.StreamEvent`. Retries, failover, caching and budgets are *not*
here: the facade and the policies compose them around this small surface. A backend instance is
configured by a :class:`BackendConfig` (who to call, with which key) and talks HTTP only through a
:class:`~agentadapter.llm.transport.Transport`. The plumbing every backend needs is here too: the
set-up check (:meth:`Backend.check_setup`), JSON and server-sent-event exchanges with errors
translated, and one streaming loop (:meth:`Backend.stream_with`) that feeds a provider's events to
its :class:`StreamDecoder`, so every streaming backend handles error events, ``[DONE]`` and a
connection that breaks mid-stream the same way.

New backends register with :func:`register_backend` or the ``agentadapter.backends`` entry point
group, and prove themselves with :mod:`agentadapter.testing`'s conformance kit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from agentadapter.llm import catalog
from agentadapter.llm.embeddings import EmbeddingBatch, EmbeddingLimits, EmbeddingRequest
from agentadapter.llm.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    CapabilityError,
    ConfigurationError,
    InvalidResponseError,
    StreamInterruptedError,
    decode_body,
    error_from_event,
    error_from_response,
)
from agentadapter.llm.messages import (
    FilePart,
    ImagePart,
    ReasoningPart,
    Request,
    Response,
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from agentadapter.llm.policy.retry import deadline_error, deadline_passed
from agentadapter.llm.transport import (
    DEFAULT_TIMEOUT,
    HTTPRequest,
    SSEEvent,
    Timeout,
    Transport,
    create_transport,
    iter_sse,
)
from agentadapter.observability.logging import get_logger

_log = get_logger("agentadapter.http")


@dataclass(slots=True)
class BackendConfig:
    """Who a backend calls and how. ``name`` is what model ids use as their provider prefix."""

    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None
    timeout: Timeout = DEFAULT_TIMEOUT
    max_retries: int | None = None
    """Overrides the LLM's retry policy for this backend when set."""
    options: dict[str, Any] = field(default_factory=dict)
    """Type-specific settings (e.g. Azure's ``deployment``)."""

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with the API key masked, safe to log or print."""
        return {
            "name": self.name,
            "type": self.type,
            "base_url": self.base_url,
            "api_key": mask_secret(self.api_key),
            "api_version": self.api_version,
        }


def mask_secret(secret: str | None) -> str | None:
    """``sk-...abcd``: enough to tell keys apart, never enough to use one."""
    if not secret:
        return None
    return f"{secret[:3]}...{secret[-4:]}" if len(secret) > 12 else "***"


class StreamDecoder(ABC):
    """One provider's stream events (their JSON data, in order) → neutral :class:`StreamEvent` s.

    :meth:`Backend.stream_with` feeds it; the events it returns go through its own
    :class:`~agentadapter.llm.messages.StreamAccumulator`, so the closing ``finish`` carries the
    whole response.
    """

    @abstractmethod
    def feed(self, data: Any) -> list[StreamEvent]:
        """Events for one server-sent event's JSON data."""

    @abstractmethod
    def close(self) -> list[StreamEvent]:
        """The closing events, ``finish`` last; raises :class:`StreamInterruptedError` when the
        stream ended before the answer was complete."""

    def done_marker(self) -> None:  # noqa: B027  (a hook: most wire formats have no [DONE])
        """The server sent ``data: [DONE]``, the OpenAI family's end of stream."""


class Backend(ABC):
    """One provider API. Subclasses implement ``generate`` and ``stream``; the rest has defaults."""

    type_name: ClassVar[str] = ""
    """The registry key of this class (``openai_chat``, ``anthropic``, ...)."""

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        self.config = config
        self.transport: Transport[Any] = transport or create_transport()
        self.header_listeners: list[Callable[[Mapping[str, str]], None]] = []
        """Called with every response's headers (rate-limit learning, request ids)."""
        self.setup_problem: str | None = None
        """What the configuration lacks (a key, a base URL), found when the backend is built and
        raised by :meth:`check_setup` when a call is made, so the message can name the model."""

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.config.name!r}, base_url={self.config.base_url!r})"

    # ---------------------------------------------------------------------------- the contract

    @abstractmethod
    async def generate(self, request: Request) -> Response:
        """One complete answer."""

    @abstractmethod
    def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """The answer as events; the last is ``finish`` with the accumulated response."""

    def capabilities(self, model: str) -> catalog.Capabilities:
        """What ``model`` can do, from the catalog (sync, no network)."""
        entry = catalog.find(f"{self.config.name}/{model}") or catalog.find(f"{self.config.type}/{model}")
        # Unknown to the catalog: the warning names the model as the user wrote it (my-vllm/llama-3,
        # not the wire format's openai/llama-3), which is also the id an override must use.
        return entry if entry is not None else catalog.lookup(f"{self.config.name}/{model}")

    async def count_tokens(self, request: Request) -> int:
        """Input tokens of a request. The default is an estimate (about 4 characters a token)."""
        return estimate_tokens(request)

    async def list_models(self) -> list[str]:
        raise CapabilityError(f"backend {self.name!r} cannot list its models")

    async def detect_capabilities(self, model: str) -> catalog.Capabilities:
        return self.capabilities(model)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        """Embed one batch within :meth:`embedding_limits` (the facade splits calls into batches)."""
        raise CapabilityError(f"backend {self.name!r} does not offer embeddings; use a provider that does "
                              "(openai, azure, gemini, cohere, mistral, ollama, vllm, ...) or local/embed/<model>")

    def embedding_limits(self, model: str) -> EmbeddingLimits:
        """How many texts and tokens one embedding request to this backend may carry."""
        return EmbeddingLimits()

    in_process: ClassVar[bool] = False
    """Runs models in this process: its calls cost nothing, and its limits and dimensions are its own."""

    async def aclose(self) -> None:
        await self.transport.aclose()

    # ---------------------------------------------------------------------- helpers for subclasses

    def check_setup(self, model: str | None = None) -> None:
        """Raise :class:`ConfigurationError` for :attr:`setup_problem`, naming the backend and model."""
        if self.setup_problem is not None:
            where = f"backend {self.name}" + (f", model {model}" if model else "")
            raise ConfigurationError(f"{self.setup_problem} ({where})")

    def http_request(
        self, method: str, url: str, request: Request | EmbeddingRequest | None, *, body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPRequest:
        """An HTTP request with this backend's timeout, bounded by the request's deadline.

        The backend's own limits (``timeout:``: connect, first byte, each gap between chunks) hold
        for every try; the call's deadline only shortens them, and a deadline already passed raises
        :class:`APITimeoutError` here, before anything is built or sent.
        """
        if request is not None and deadline_passed(request):
            raise deadline_error(request, before=f"{self.name} could be called", provider=self.name)
        time_left = request.time_left() if request is not None else None
        timeout = self.config.timeout.capped(time_left)
        merged = {"content-type": "application/json"} if body is not None else {}
        merged.update(self.config.headers)
        if headers:
            merged.update(headers)
        if request is not None and request.extra_headers:
            merged.update(request.extra_headers)
        return HTTPRequest(
            method, url, merged, json=body, timeout=timeout,
            provider=self.name, model=request.model if request is not None else None,
        )

    async def send_json(self, http_request: HTTPRequest) -> tuple[Any, dict[str, str]]:
        """Send; return (decoded JSON body, headers); translate an error status."""
        if _log.isEnabledFor(logging.DEBUG):
            _log_request(http_request)
        response = await self.transport.send(http_request)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("http.response", extra={"status": response.status, "provider": self.name,
                                               "headers": response.headers, "bytes": len(response.content)})
        for listener in self.header_listeners:
            listener(response.headers)
        if response.status >= 400:
            raise error_from_response(
                response.status, decode_body(response.content), response.headers,
                provider=self.name, model=http_request.model,
            )
        try:
            return response.json(), response.headers
        except ValueError as exc:
            raise InvalidResponseError(
                f"{self.name} answered HTTP {response.status} with a body that is not JSON "
                f"(model {http_request.model}): {response.content[:200]!r}; check the base URL",
                provider=self.name, model=http_request.model, status=response.status,
                body=response.content[:2000], headers=response.headers,
            ) from exc

    async def send_for_object(
        self, http_request: HTTPRequest, what: str, *, key: str | None = None, hint: str = "check the base URL"
    ) -> Mapping[str, Any]:
        """:meth:`send_json` for an answer that must be a JSON object (holding ``key``, when given).

        Any other JSON raises :class:`InvalidResponseError` saying it is not ``what``, with ``hint``: an
        answer of the wrong shape usually means the base URL points at another API.
        """
        body, _ = await self.send_json(http_request)
        if not isinstance(body, Mapping) or (key is not None and key not in body):
            raise InvalidResponseError(
                f"{self.name} answered with JSON that is not {what} (model {http_request.model}): "
                f"{str(body)[:200]!r}; {hint}",
                provider=self.name, model=http_request.model, body=body,
            )
        return body

    async def list_names(self, http_request: HTTPRequest, *, key: str, field: str, path: str) -> list[str]:
        """The ``field`` of every object in the ``key`` list of a listing (``GET path``, e.g. the models)."""
        body, _ = await self.send_json(http_request)
        entries = body.get(key) if isinstance(body, Mapping) else None
        if not isinstance(entries, list):
            raise InvalidResponseError(
                f"{self.name} answered GET {path} with an unexpected shape: {str(body)[:200]}; "
                "check the base URL", provider=self.name, body=body,
            )
        return [str(entry[field]) for entry in entries if isinstance(entry, Mapping) and field in entry]

    async def send_sse(self, http_request: HTTPRequest) -> AsyncGenerator[SSEEvent, None]:
        """Send; yield server-sent events; translate an error status (even on a stream request)."""
        if _log.isEnabledFor(logging.DEBUG):
            _log_request(http_request)
        async with self.transport.stream(http_request) as response:
            for listener in self.header_listeners:
                listener(response.headers)
            if response.status >= 400:
                raw = await response.aread()
                raise error_from_response(
                    response.status, decode_body(raw), response.headers,
                    provider=self.name, model=http_request.model,
                )
            content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", "")
            if content_type.lower().startswith("text/html"):
                # A web page is never an event stream: a proxy's sign-in page or another site behind
                # the base URL. Said so, rather than read as a stream that ended early (and retried).
                raw = await response.aread()
                raise InvalidResponseError(
                    f"{self.name} answered a stream request with an HTML page (model {http_request.model}): "
                    f"{raw[:200]!r}; check the base URL",
                    provider=self.name, model=http_request.model, status=response.status,
                    body=raw[:2000], headers=response.headers,
                )
            try:
                async for event in iter_sse(response.aiter_bytes()):
                    yield event
            except APIError:
                raise
            except (UnicodeDecodeError, ValueError) as exc:
                raise StreamInterruptedError(
                    f"{self.name} sent a malformed stream (model {http_request.model}): {exc}",
                    provider=self.name, model=http_request.model,
                ) from exc

    def broken_stream(self, exc: APIConnectionError, model: str | None) -> StreamInterruptedError:
        """The error for a connection that broke after part of a stream had arrived (the caller chains
        ``exc``): the answer is incomplete, and a retry may get a whole one."""
        return StreamInterruptedError(
            f"the connection to {self.name} broke in the middle of the stream (model {model}): "
            f"{exc.__cause__ or exc}; the answer is incomplete, the call may be retried",
            provider=self.name, model=model,
        )

    def stream_json(self, event: SSEEvent, model: str | None) -> Any:
        """An SSE event's data as JSON, or a clear error when it is not."""
        try:
            return json.loads(event.data)
        except ValueError as exc:
            raise StreamInterruptedError(
                f"{self.name} sent a stream event that is not JSON (model {model}): {event.data[:200]!r}",
                provider=self.name, model=model,
            ) from exc

    async def stream_with(
        self, decoder: StreamDecoder, http_request: HTTPRequest, *, started: float
    ) -> AsyncGenerator[StreamEvent, None]:
        """Send ``http_request`` and stream its answer through ``decoder``: every SSE backend's loop.

        An ``event: error`` raises the error it carries; blank events are skipped; ``data: [DONE]``
        ends the stream (what follows is read, so the connection goes back to the pool, but not
        decoded); every other event's data is decoded as JSON and fed to the decoder. A connection
        that breaks after events have arrived raises :class:`StreamInterruptedError` (the answer is
        incomplete; a timeout stays a timeout). The decoder's closing events come last, the
        ``finish`` response carrying the latency since ``started`` (a ``time.perf_counter()``).
        """
        model = http_request.model
        received = False
        done = False
        try:
            # Closing send_sse promptly, even when the caller stops early, releases the connection.
            async with contextlib.aclosing(self.send_sse(http_request)) as events:
                async for event in events:
                    received = True
                    if done:
                        continue
                    if event.event == "error":
                        raise error_from_event(decode_body(event.data.encode()), provider=self.name, model=model)
                    data = event.data
                    if not data or data.isspace():
                        continue
                    if data == "[DONE]":
                        done = True
                        decoder.done_marker()
                        continue
                    for stream_event in decoder.feed(self.stream_json(event, model)):
                        yield stream_event
        except APIConnectionError as exc:
            if not received or isinstance(exc, APITimeoutError):
                raise
            raise self.broken_stream(exc, model) from exc
        for stream_event in decoder.close():
            if stream_event.response is not None:
                stream_event.response.latency_ms = elapsed_ms(started)
            yield stream_event


def _log_request(http_request: HTTPRequest) -> None:
    _log.debug("http.request", extra={"method": http_request.method, "url": http_request.url,
                                      "provider": http_request.provider, "model": http_request.model,
                                      "headers": http_request.headers})


def estimate_tokens(request: Request) -> int:
    """A local estimate of a request's input tokens: about 4 characters per token, plus overhead.

    Documented as an estimate; used only where no real tokenizer or counting endpoint is available.
    """
    chars = 0
    images = 0
    for message in request.messages:
        chars += 16  # role and framing
        for part in message.parts:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, ToolCallPart):
                chars += len(part.name) + len(json.dumps(part.arguments))
            elif isinstance(part, ToolResultPart):
                chars += len(part.content) + len(part.name)
            elif isinstance(part, ReasoningPart):
                chars += len(part.text)
            elif isinstance(part, ImagePart | FilePart):
                images += 1
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    return chars // 4 + images * 765 + 3


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# ---------------------------------------------------------------------------------------- registry

_BACKENDS: dict[str, type[Backend]] = {}
_ENTRY_POINTS_LOADED = False

# Built-in backend classes, imported on first use so `import agentadapter` stays light.
_BUILTIN: dict[str, str] = {
    "openai_chat": "agentadapter.llm.backends.openai_chat:OpenAIChatBackend",
    "anthropic": "agentadapter.llm.backends.anthropic:AnthropicBackend",
    "gemini": "agentadapter.llm.backends.gemini:GeminiBackend",
    "cohere": "agentadapter.llm.backends.cohere:CohereBackend",
    "bedrock": "agentadapter.llm.backends.bedrock:BedrockBackend",
    "vertex": "agentadapter.llm.backends.vertex:VertexBackend",
    "openai_responses": "agentadapter.llm.backends.openai_responses:OpenAIResponsesBackend",
    "test": "agentadapter.llm.backends.testing:TestBackend",
    "local": "agentadapter.llm.backends.local:LocalBackend",
}


def register_backend(name: str, cls: type[Backend]) -> None:
    """Make a backend class available under ``name`` (as ``type:`` in config and as a provider)."""
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigurationError(f"register_backend({name!r}, ...) needs a Backend subclass, got {cls!r}")
    _BACKENDS[name] = cls


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name`` (built-ins, ours, then entry points)."""
    global _ENTRY_POINTS_LOADED
    if name in _BACKENDS:
        return _BACKENDS[name]
    if name in _BUILTIN:
        import importlib

        module_name, _, attr = _BUILTIN[name].partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        _BACKENDS[name] = cls
        return cls  # type: ignore[no-any-return]
    if not _ENTRY_POINTS_LOADED:
        _ENTRY_POINTS_LOADED = True
        for entry_point in entry_points(group="agentadapter.backends"):
            _BACKENDS.setdefault(entry_point.name, entry_point.load())
        if name in _BACKENDS:
            return _BACKENDS[name]
    raise ConfigurationError(
        f"no backend type {name!r}; known types: {', '.join(sorted({*_BUILTIN, *_BACKENDS}))}. "
        "Register a new one with register_backend(name, cls) or the 'agentadapter.backends' entry point"
    )


def builtin_backend_types() -> dict[str, str]:
    return dict(_BUILTIN)


def register_builtin(name: str, target: str) -> None:
    """Declare a built-in backend by import path (``module:Class``) without importing it."""
    _BUILTIN[name] = target
