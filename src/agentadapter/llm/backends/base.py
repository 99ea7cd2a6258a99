"""The backend interface (the seeds' ``BaseLLMProvider``) and the backend registry.

A :class:`Backend` turns a neutral :class:`~agentadapter.llm.messages.Request` into a provider call
and the provider's answer into a neutral :class:`~agentadapter.llm.messages.Response` or stream of
:class:`~agentadapter.llm.messages.StreamEvent`. Retries, failover, caching and budgets are *not*
here: the facade and the policies compose them around this small surface. A backend instance is
configured by a :class:`BackendConfig` (who to call, with which key) and talks HTTP only through a
:class:`~agentadapter.llm.transport.Transport`.

New backends register with :func:`register_backend` or the ``agentadapter.backends`` entry point
group, and prove themselves with :mod:`agentadapter.testing`'s conformance kit.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from agentadapter.llm import catalog
from agentadapter.llm.errors import (
    APIError,
    CapabilityError,
    ConfigurationError,
    StreamInterruptedError,
    decode_body,
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
from agentadapter.llm.transport import (
    DEFAULT_TIMEOUT,
    HTTPRequest,
    SSEEvent,
    Timeout,
    Transport,
    create_transport,
    iter_sse,
)


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


class Backend(ABC):
    """One provider API. Subclasses implement ``generate`` and ``stream``; the rest has defaults."""

    type_name: ClassVar[str] = ""
    """The registry key of this class (``openai_chat``, ``anthropic``, ...)."""

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        self.config = config
        self.transport: Transport[Any] = transport or create_transport()
        self.header_listeners: list[Callable[[Mapping[str, str]], None]] = []
        """Called with every response's headers (rate-limit learning, request ids)."""

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
        entry = catalog.find(f"{self.config.name}/{model}")
        return entry if entry is not None else catalog.lookup(f"{self.config.type}/{model}")

    async def count_tokens(self, request: Request) -> int:
        """Input tokens of a request. The default is an estimate (about 4 characters a token)."""
        return estimate_tokens(request)

    async def list_models(self) -> list[str]:
        raise CapabilityError(f"backend {self.name!r} cannot list its models")

    async def detect_capabilities(self, model: str) -> catalog.Capabilities:
        return self.capabilities(model)

    async def embed(self, texts: list[str], model: str) -> list[list[float]]:
        raise CapabilityError(f"backend {self.name!r} does not offer embeddings")

    async def aclose(self) -> None:
        await self.transport.aclose()

    # ---------------------------------------------------------------------- helpers for subclasses

    def http_request(
        self, method: str, url: str, request: Request | None, *, body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPRequest:
        """An HTTP request with this backend's timeout, bounded by the request's deadline."""
        time_left = request.time_left() if request is not None else None
        timeout = self.config.timeout
        if request is not None and request.timeout is not None:
            timeout = Timeout(timeout.connect, timeout.read, request.timeout)
        merged = {"content-type": "application/json"} if body is not None else {}
        merged.update(self.config.headers)
        if headers:
            merged.update(headers)
        if request is not None and request.extra_headers:
            merged.update(request.extra_headers)
        return HTTPRequest(
            method, url, merged, json=body, timeout=timeout.capped(time_left),
            provider=self.name, model=request.model if request is not None else None,
        )

    async def send_json(self, http_request: HTTPRequest) -> tuple[Any, dict[str, str]]:
        """Send; return (decoded JSON body, headers); translate an error status."""
        response = await self.transport.send(http_request)
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
            raise APIError(
                f"{self.name} answered HTTP {response.status} with a body that is not JSON "
                f"(model {http_request.model}): {response.content[:200]!r}; check the base URL",
                provider=self.name, model=http_request.model, status=response.status,
                body=response.content[:2000], headers=response.headers,
            ) from exc

    async def send_sse(self, http_request: HTTPRequest) -> AsyncIterator[SSEEvent]:
        """Send; yield server-sent events; translate an error status (even on a stream request)."""
        async with self.transport.stream(http_request) as response:
            for listener in self.header_listeners:
                listener(response.headers)
            if response.status >= 400:
                raw = await response.aread()
                raise error_from_response(
                    response.status, decode_body(raw), response.headers,
                    provider=self.name, model=http_request.model,
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

    def stream_json(self, event: SSEEvent, model: str | None) -> Any:
        """An SSE event's data as JSON, or a clear error when it is not."""
        try:
            return json.loads(event.data)
        except ValueError as exc:
            raise StreamInterruptedError(
                f"{self.name} sent a stream event that is not JSON (model {model}): {event.data[:200]!r}",
                provider=self.name, model=model,
            ) from exc


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
    "openai_responses": "agentadapter.llm.backends.openai_responses:OpenAIResponsesBackend",
    "test": "agentadapter.llm.backends.testing:TestBackend",
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
