"""``LLM``: the facade over every backend.

``LLM`` turns what users write (a model id, a prompt or OpenAI-style messages, functions as tools,
a pydantic model as ``output=``) into a neutral :class:`~agentadapter.llm.messages.Request`,
resolves the model id to one or more targets (:mod:`agentadapter.llm.resolve`), and calls each
backend under the retry policy, failing over along a route. It then fills in what is the same for
every provider: latency, attempts, cost from the catalog, and the validated structured output.
Streams go through the same steps; a stream is retried or failed over only until its first event
reaches the caller. ``generate_sync`` runs calls on one background event loop per ``LLM`` so its
pooled connections survive between calls.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from agentadapter.config import FileConfig, find_config_file, get_settings, load_config_file, parse_config
from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.errors import (
    AgentAdapterError,
    AllTargetsFailedError,
    CapabilityError,
    ContentFilterError,
    ContextWindowExceededError,
    InvalidRequestError,
)
from agentadapter.llm.messages import (
    Attempt,
    CacheHints,
    ImagePart,
    Message,
    Part,
    Request,
    Response,
    StreamEvent,
    TextPart,
    coerce_messages,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.policy.retry import RetryPolicy, call_with_retries
from agentadapter.llm.resolve import Resolver, Route, Target
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.llm.transport import Transport, create_transport

T = TypeVar("T")

ModelId = str | Sequence[str]
MessagesInput = str | Message | Mapping[str, Any] | Iterable[Any]
ToolInput = Tool | Mapping[str, Any] | Callable[..., Any]

# The keyword settings generate() and stream() accept, beside model, messages, tools and output.
_SETTINGS = frozenset({
    "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens", "stop", "seed",
    "reasoning_effort", "metadata", "tags", "timeout", "extra_body", "extra_headers",
})
_FAILOVER_EXTRA: dict[str, type[AgentAdapterError]] = {
    "context_window": ContextWindowExceededError,
    "content_filter": ContentFilterError,
}


class LLM:
    """One API over every backend.

    ``LLM()`` reads provider keys from the environment and ``agentadapter.yaml`` if present;
    ``LLM(config="path.yaml")`` or ``LLM(config={...})`` names the config explicitly.
    """

    def __init__(
        self,
        config: str | Path | Mapping[str, Any] | FileConfig | None = None,
        *,
        transport: Transport[Any] | str | None = None,
        retry: RetryPolicy | None = None,
        backends: Mapping[str, Backend] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.file_config = _load_file_config(config)
        settings = get_settings()
        if isinstance(transport, Transport):
            self.transport: Transport[Any] = transport
        else:
            self.transport = create_transport(transport or settings.transport)
        self.retry = retry or RetryPolicy()
        self.resolver = Resolver(
            self.file_config,
            transport=self.transport,
            environ=environ,
            backends=backends,
            online_endpoints=settings.agent_online_endpoints,
        )
        for model_id, values in self.file_config.catalog.items():
            catalog.override(model_id, **values)
        self._loop_thread: _LoopThread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ the requests

    def request(
        self,
        messages: MessagesInput,
        *,
        model: str = "",
        tools: Sequence[ToolInput] | None = None,
        output: Any = None,
        **settings: Any,
    ) -> Request:
        """Build (and validate) the neutral request for the given inputs."""
        unknown = set(settings) - _SETTINGS - {"cache"}
        if unknown:
            raise InvalidRequestError(
                f"unknown setting(s) {', '.join(sorted(unknown))}; accepted: {', '.join(sorted(_SETTINGS))}, "
                "cache (or provider-specific fields in extra_body={...})"
            )
        cache = settings.pop("cache", None)
        timeout = settings.get("timeout")
        if timeout is not None and timeout <= 0:
            raise InvalidRequestError("timeout= must be a positive number of seconds")
        stop = settings.pop("stop", None)
        request = Request(
            model=model,
            messages=coerce_messages(messages),
            tools=[coerce_tool(t) for t in tools or ()],
            output=OutputSchema.of(output) if output is not None else None,
            stop=[stop] if isinstance(stop, str) else stop,
            cache=cache if isinstance(cache, CacheHints) else CacheHints(**(cache or {})),
            **settings,
        )
        if timeout is not None:
            request.deadline = time.monotonic() + timeout
        if request.tool_choice not in (None, "auto", "none", "required") and request.tool_choice not in {
            t.name for t in request.tools
        }:
            raise InvalidRequestError(
                f"tool_choice={request.tool_choice!r} names no tool of this request; "
                "use auto, none, required or one of the tools' names"
            )
        return request

    async def generate(
        self,
        model: ModelId,
        messages: MessagesInput,
        *,
        tools: Sequence[ToolInput] | None = None,
        output: Any = None,
        **settings: Any,
    ) -> Response:
        """One complete answer from ``model`` (an id, an alias, or a list tried in order)."""
        request = self.request(messages, tools=tools, output=output, **settings)
        return await self.generate_request(model, request)

    async def generate_request(self, model: ModelId, request: Request) -> Response:
        """``generate`` for a ready-made :class:`Request` (its ``model`` is replaced per target)."""
        route = self.resolver.route(model)
        attempts: list[Attempt] = []
        errors: list[BaseException] = []
        started = time.perf_counter()
        for target in route.targets:
            attempt_started = time.perf_counter()
            retries_seen = _RetryCounter()
            try:
                response, retries = await call_with_retries(
                    functools.partial(target.backend.generate, self._for_target(target, request)),
                    self._policy_for(target),
                    deadline=request.deadline,
                    on_retry=retries_seen,
                )
            except AgentAdapterError as error:
                attempts.append(_failed_attempt(target, error, attempt_started, retries_seen.count))
                errors.append(error)
                if not _may_fail_over(error, route):
                    break
                continue
            attempts.append(Attempt(target.label, latency_ms=_ms(attempt_started), retries=retries))
            return self._finish(response, target, request, attempts, started)
        raise _route_error(errors, attempts, route)

    def stream(
        self,
        model: ModelId,
        messages: MessagesInput,
        *,
        tools: Sequence[ToolInput] | None = None,
        output: Any = None,
        **settings: Any,
    ) -> LLMStream:
        """The answer as :class:`StreamEvent`s; ``.response`` holds the whole answer afterwards."""
        request = self.request(messages, tools=tools, output=output, **settings)
        return LLMStream(self, model, request)

    async def tool_use(
        self,
        model: ModelId,
        messages: MessagesInput,
        tools: Sequence[ToolInput],
        *,
        tool_choice: str = "auto",
        **settings: Any,
    ) -> Response:
        """The seeds' convenience: a call that offers tools (``r.tool_calls`` holds what was asked)."""
        if not tools:
            raise InvalidRequestError("tool_use() needs at least one tool")
        return await self.generate(model, messages, tools=tools, tool_choice=tool_choice, **settings)

    async def vision(
        self,
        model: ModelId,
        prompt: str,
        images: Sequence[str | bytes | Path | ImagePart],
        **settings: Any,
    ) -> Response:
        """The seeds' convenience: a prompt about one or more images (URLs, paths, bytes)."""
        if not images:
            raise InvalidRequestError("vision() needs at least one image")
        parts: list[Part] = [TextPart(prompt)]
        parts.extend(to_image_part(image) for image in images)
        return await self.generate(model, [Message("user", parts)], **settings)

    # ----------------------------------------------------------------------------- sync callers

    def generate_sync(self, model: ModelId, messages: MessagesInput, **kwargs: Any) -> Response:
        """``generate`` for code that is not async (runs on this LLM's background loop)."""
        return self.run_sync(self.generate(model, messages, **kwargs))

    def run_sync(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this LLM's background event loop and wait for it."""
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
        return self._loop_thread.run(coroutine)

    # ------------------------------------------------------------------------------- inspection

    def backend(self, name: str) -> Backend:
        """The backend instance for a provider or named backend."""
        return self.resolver.backend(name)

    def capabilities(self, model: str) -> catalog.Capabilities:
        """What ``provider/model`` (or an alias's first target) can do, from the catalog."""
        return self.resolver.route(model).targets[0].capabilities()

    async def aclose(self) -> None:
        """Close the pooled connections of the running loop."""
        await self.transport.aclose()

    def close(self) -> None:
        """Stop the background loop of ``generate_sync`` (if started) and its connections."""
        with self._lock:
            thread, self._loop_thread = self._loop_thread, None
        if thread is not None:
            thread.run(self.transport.aclose())
            thread.stop()

    async def __aenter__(self) -> LLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------------------------- internals

    def _policy_for(self, target: Target) -> RetryPolicy:
        """The LLM's retry policy, with the backend's own ``max_retries`` when its config sets one."""
        max_retries = target.backend.config.max_retries
        if max_retries is None or max_retries == self.retry.max_retries:
            return self.retry
        return replace(self.retry, max_retries=max_retries)

    def _for_target(self, target: Target, request: Request) -> Request:
        check_capabilities(target, request)
        if request.model == target.model:
            return request
        return replace(request, model=target.model)

    def _finish(
        self, response: Response, target: Target, request: Request, attempts: list[Attempt], started: float
    ) -> Response:
        response.latency_ms = _ms(started)
        response.attempts = attempts
        if response.cost_usd is None:
            pricing = target.capabilities().pricing
            response.cost_usd = catalog.cost_usd(response.usage, pricing)
        if request.output is not None and response.output is None and response.finish_reason != "tool_calls":
            response.output = request.output.parse(response.text)
        return response


def _load_file_config(config: str | Path | Mapping[str, Any] | FileConfig | None) -> FileConfig:
    if isinstance(config, FileConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config))
    path = find_config_file(config if config is not None else get_settings().config)
    return load_config_file(path) if path is not None else FileConfig()


def check_capabilities(target: Target, request: Request) -> None:
    """Refuse, before any network call, what a known model cannot do."""
    caps = target.capabilities()
    if not caps.known:
        return
    if request.tools and not caps.tools and request.tool_choice != "none":
        raise CapabilityError(
            f"{target.label} does not support tools; pick a model with tool calling or drop tools="
        )
    if not caps.vision and any(
        isinstance(part, ImagePart) for message in request.messages for part in message.parts
    ):
        raise CapabilityError(f"{target.label} does not accept images; pick a vision model (see `agentadapter models`)")


def to_image_part(image: str | bytes | Path | ImagePart) -> ImagePart:
    if isinstance(image, ImagePart):
        return image
    if isinstance(image, bytes):
        return ImagePart(data=image, media_type=_sniff_image_type(image))
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        return ImagePart(url=image)
    return ImagePart.from_path(image)


def _sniff_image_type(data: bytes) -> str:
    signatures = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"RIFF": "image/webp"}
    for magic, media_type in signatures.items():
        if data.startswith(magic):
            return media_type
    raise InvalidRequestError("cannot tell the image type of these bytes; pass ImagePart(data=..., media_type=...)")


class _RetryCounter:
    """Counts the retries of one target, for its :class:`Attempt` record when it finally fails."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _error: BaseException, retry_number: int, _wait: float) -> None:
        self.count = retry_number


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _failed_attempt(target: Target, error: BaseException, started: float, retries: int) -> Attempt:
    return Attempt(
        target.label,
        error_type=type(error).__name__,
        error=str(error),
        status=getattr(error, "status", None),
        latency_ms=_ms(started),
        retries=retries,
    )


def _may_fail_over(error: BaseException, route: Route) -> bool:
    if isinstance(error, AgentAdapterError) and error.retryable:
        return True
    return any(isinstance(error, _FAILOVER_EXTRA[kind]) for kind in route.failover_on if kind in _FAILOVER_EXTRA)


def _route_error(errors: list[BaseException], attempts: list[Attempt], route: Route) -> BaseException:
    if len(errors) == 1 and len(route.targets) == 1:
        return errors[0]
    tried = "; ".join(f"{a.target}: {a.error_type}" for a in attempts)
    error = AllTargetsFailedError(
        f"AllTargetsFailedError: every target failed ({tried}); see .errors for each", errors
    )
    error.__cause__ = errors[-1]
    return error


class LLMStream:
    """An answer arriving as events. Iterate it once; ``response`` is the whole answer afterwards."""

    def __init__(self, llm: LLM, model: ModelId, request: Request) -> None:
        self._llm = llm
        self._model = model
        self.request = request
        self.response: Response | None = None
        self._started = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._started:
            raise InvalidRequestError("a stream can be iterated only once; call llm.stream(...) again")
        self._started = True
        return self._run()

    async def collect(self) -> Response:
        """Consume the stream and return the accumulated response."""
        async for _ in self:
            pass
        assert self.response is not None
        return self.response

    async def _run(self) -> AsyncIterator[StreamEvent]:
        llm, request = self._llm, self.request
        route = llm.resolver.route(self._model)
        attempts: list[Attempt] = []
        errors: list[BaseException] = []
        started = time.perf_counter()
        for target in route.targets:
            target_request = llm._for_target(target, request)
            attempt_started = time.perf_counter()
            retries = 0
            policy = llm._policy_for(target)
            while True:
                emitted = False
                try:
                    async for event in target.backend.stream(target_request):
                        emitted = True
                        if event.kind == "finish":
                            assert event.response is not None
                            attempts.append(Attempt(target.label, latency_ms=_ms(attempt_started), retries=retries))
                            self.response = llm._finish(event.response, target, request, attempts, started)
                        yield event
                    return
                except AgentAdapterError as error:
                    # Once the caller has seen content, a retry would repeat it: never retry then.
                    if emitted:
                        raise
                    if policy.should_retry(error, retries):
                        wait = policy.delay(error, retries)
                        if request.deadline is None or time.monotonic() + wait < request.deadline:
                            await asyncio.sleep(wait)
                            retries += 1
                            continue
                    attempts.append(_failed_attempt(target, error, attempt_started, retries))
                    errors.append(error)
                    break
            if not _may_fail_over(errors[-1], route):
                break
        raise _route_error(errors, attempts, route)


class _LoopThread:
    """An event loop running forever in a daemon thread, for synchronous callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agentadapter-loop", daemon=True)
        self.thread.start()
        atexit.register(self.stop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coroutine.close()
            raise InvalidRequestError("generate_sync() was called from its own event loop; use await generate()")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


