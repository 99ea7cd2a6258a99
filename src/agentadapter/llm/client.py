"""``LLM``: the facade over every backend.

``LLM`` turns what users write (a model id, a prompt or OpenAI-style messages, functions as tools,
a pydantic model as ``output=``) into a neutral :class:`~agentadapter.llm.messages.Request`,
resolves the model id to a route (:mod:`agentadapter.llm.resolve`) and runs it through a
:class:`~agentadapter.llm.router.Router`, which applies breakers, rate limits, retries and
failover per target. It then fills in what is the same for every provider: latency and the
validated structured output (cost and attempts come from the router). Streams go through the same
steps; a stream is retried or failed over only until its first event reaches the caller.
``generate_sync`` runs calls on one background event loop per ``LLM`` so its pooled connections
survive between calls.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agentadapter.config import FileConfig, find_config_file, get_settings, load_config_file, parse_config
from agentadapter.llm import bounds, catalog
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.errors import CapabilityError, InvalidRequestError
from agentadapter.llm.health import InProcessReliabilityStore, ReliabilityStore, TargetHealth
from agentadapter.llm.ledger import UsageLedger, UsageTotals
from agentadapter.llm.messages import (
    CacheHints,
    ImagePart,
    Message,
    Part,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    TextPart,
    coerce_messages,
    response_events,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.policy.breaker import BreakerConfig
from agentadapter.llm.policy.budget import BoundedSpendGuard, Budget, BudgetGuard, Hold, SpendGuard
from agentadapter.llm.policy.cache import (
    ResponseCache,
    cache_key,
    cacheable,
    create_cache,
    dump_response,
    load_response,
)
from agentadapter.llm.policy.ratelimit import RateLimitConfig
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.llm.resolve import Resolver, Route
from agentadapter.llm.router import Router, RouterContext
from agentadapter.llm.shared import SharedState
from agentadapter.llm.tokens import TokenCount, count_tokens_local, estimate_cost
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.llm.transport import Transport, create_transport
from agentadapter.observability.logging import get_logger
from agentadapter.observability.telemetry import Telemetry

_log = get_logger("agentadapter.llm")

T = TypeVar("T")

ModelId = str | Sequence[str]
MessagesInput = str | Message | Mapping[str, Any] | Iterable[Any]
ToolInput = Tool | Mapping[str, Any] | Callable[..., Any]

# The keyword settings generate() and stream() accept, beside model, messages, tools and output.
_SETTINGS = frozenset({
    "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens", "stop", "seed",
    "reasoning_effort", "metadata", "tags", "timeout", "extra_body", "extra_headers", "api",
})


class LLM:
    """One API over every backend.

    ``LLM()`` reads provider keys from the environment and ``agentadapter.yaml`` if present;
    ``LLM(config="path.yaml")`` or ``LLM(config={...})`` names the config explicitly.
    ``LLM(shared=shared_state_from_settings(settings))`` shares breakers, learned rate limits and
    budget spend with the other instances on the same Redis (:mod:`agentadapter.llm.shared`).
    """

    def __init__(
        self,
        config: str | Path | Mapping[str, Any] | FileConfig | None = None,
        *,
        transport: Transport[Any] | str | None = None,
        retry: RetryPolicy | None = None,
        backends: Mapping[str, Backend] | None = None,
        environ: Mapping[str, str] | None = None,
        reliability: ReliabilityStore | None = None,
        ledger: UsageLedger | None = None,
        cache: ResponseCache | None = None,
        budgets: BudgetGuard | None = None,
        telemetry: Telemetry | None = None,
        guards: Sequence[SpendGuard] = (),
        tags: Mapping[str, str] | None = None,
        shared: SharedState | None = None,
        default_max_tokens: int | None = None,
    ) -> None:
        self.file_config = _load_file_config(config)
        self.guards: tuple[SpendGuard, ...] = tuple(guards)
        """Asked after the budgets before every call (the service's credit balance is one)."""
        if default_max_tokens is not None and default_max_tokens < 1:
            raise InvalidRequestError(
                f"default_max_tokens must be a positive number of tokens, not {default_max_tokens}")
        self.default_max_tokens = default_max_tokens
        """Sent as ``max_tokens`` (capped at each target's maximum output) when a guarded call sets none,
        so that the output the guards hold for is the most the provider may write and bill."""
        self.tags: dict[str, str] = dict(tags or {})
        """Tags every request of this facade carries; they win over a request's own tags, so a caller cannot
        re-attribute its usage (``tenant`` in the service is the facade's, whatever a request says)."""
        settings = get_settings()
        if isinstance(transport, Transport):
            self.transport: Transport[Any] = transport
        else:
            self.transport = create_transport(transport or settings.transport)
        self.retry = retry or RetryPolicy()
        self.telemetry = telemetry or Telemetry(known=lambda target: catalog.find(target) is not None)
        # With ``shared`` (several instances on one Redis) breakers and learned limits are shared.
        self.reliability: ReliabilityStore = reliability or (
            shared.reliability_store if shared is not None else InProcessReliabilityStore
        )(
            on_breaker_change=self.telemetry.breaker_changed,
            breaker_config=BreakerConfig(**self.file_config.breaker.model_dump()),
            rate_limits={
                name: RateLimitConfig(**spec.rate_limit.model_dump())
                for name, spec in self.file_config.backends.items()
                if spec.rate_limit is not None
            },
        )
        self.ledger = ledger if ledger is not None else UsageLedger()
        cache_spec = self.file_config.cache
        self.cache: ResponseCache | None = cache if cache is not None else (
            create_cache(cache_spec.backend, data_dir=settings.data_dir, redis_url=settings.redis_url)
            if cache_spec is not None else None
        )
        self.cache_ttl_s = cache_spec.ttl_s if cache_spec is not None else 3600.0
        self.budgets = budgets if budgets is not None else BudgetGuard(
            (Budget(**spec.model_dump()) for spec in self.file_config.budgets),
            store=shared.budgets if shared is not None else None,
        )
        self._router_context = RouterContext(
            retry=self.retry, store=self.reliability, variant=self._api_variant, telemetry=self.telemetry
        )
        self._routers: dict[str | tuple[str, ...], Router] = {}
        self.resolver = Resolver(
            self.file_config,
            transport=self.transport,
            environ=environ,
            backends=backends,
            online_endpoints=settings.agent_online_endpoints,
            nested_route=self._new_router,
            on_new_backend=self._watch_backend,
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
        started = time.perf_counter()
        self._tag(request)
        key = self._cache_key(model, request)
        if key is not None and self.cache is not None:
            stored = await self.cache.get(key)
            self.telemetry.cache_lookup(stored is not None)
            if stored is not None:
                return self._finish(load_response(stored, started=started), request, started)
        reservation = await self._reserve(model, request)
        try:
            response = await self.router(model).generate(request)
        except BaseException:
            if reservation is not None:
                await reservation.settle(0.0)
            raise
        if reservation is not None:
            await reservation.settle(response.cost_usd)
        self._finish(response, request, started)
        if key is not None and self.cache is not None:
            await self.cache.set(key, dump_response(response), self.cache_ttl_s)
        return response

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

    def router(self, model: ModelId) -> Router:
        """The router that runs ``model`` (an id, an alias, or a list tried in order)."""
        key = model if isinstance(model, str) else tuple(model)
        router = self._routers.get(key)
        if router is None:
            name = key if isinstance(key, str) else " | ".join(key)
            router = self._routers[key] = self._new_router(name, self.resolver.route(model))
        return router

    def health(self) -> dict[str, TargetHealth]:
        """Success rate, latency percentiles, breaker state and calls in flight, per target used so far."""
        return self.reliability.health()

    async def usage(
        self,
        group_by: Sequence[str] = ("provider", "model"),
        *,
        since: float | None = None,
        until: float | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Tokens and cost so far, grouped by ``provider``, ``model``, ``day``, ``hour`` or any tag."""
        return await self.ledger.totals(group_by, since, until, filters)

    def estimate_cost(self, model: ModelId, messages: MessagesInput | Request, **settings: Any) -> float | None:
        """USD a call may cost before it is sent: the counted input plus ``max_tokens`` of output.

        No network call is made and no key is needed. For a route, the estimate is for its first target.
        None when the model has no known price (its cost is unknown, not zero).
        """
        request = messages if isinstance(messages, Request) else self.request(messages, **settings)
        first = model if isinstance(model, str) else model[0]
        model_id = self.resolver.model_ids(first)[0]
        return estimate_cost(request, model_id, catalog.lookup(model_id).pricing)

    async def count_tokens(
        self, model: ModelId, messages: MessagesInput | Request, *, exact: bool = False, **settings: Any
    ) -> TokenCount:
        """Input tokens of a call to ``model`` (of a route, its first target), without making the call.

        By default the count is local and offline (:func:`agentadapter.llm.tokens.count_tokens_local`):
        OpenAI's tokenizer for OpenAI models (with the ``tokens`` extra), else an estimate; ``exact``
        on the result says which. With ``exact=True`` the provider counts where it has a counting
        endpoint (Anthropic's ``/v1/messages/count_tokens``, Gemini's ``:countTokens``; a local
        model's own tokenizer): a request to the provider, free but rate limited, made with its key.
        OpenAI models are counted locally with tiktoken. A model with neither raises
        :class:`CapabilityError` rather than pass an estimate off as exact.
        """
        request = messages if isinstance(messages, Request) else self.request(messages, **settings)
        first = model if isinstance(model, str) else model[0]
        model_id = self.resolver.model_ids(first)[0]
        local = count_tokens_local(request, model_id)
        if not exact or local.method.startswith("tiktoken:"):
            return local
        target = self.resolver.route(first).targets[0]
        backend = target.backend
        if type(backend).count_tokens is Backend.count_tokens:  # the base class only estimates
            raise CapabilityError(
                f"no exact token count for {model_id}: its provider ({backend.name}) has no counting endpoint "
                "here and its tokenizer is not available offline; call count_tokens(..., exact=False) for "
                f"the estimate ({local.tokens} tokens, {local.method}), or install agentadapter[tokens] for "
                "OpenAI models"
            )
        tokens = await backend.count_tokens(dataclasses.replace(request, model=target.model))
        return TokenCount(tokens, exact=True, method=f"provider:{backend.name}")

    def _cache_key(self, model: ModelId, request: Request) -> str | None:
        if self.cache is None or not cacheable(request):
            return None
        return cache_key(model if isinstance(model, str) else "|".join(model), request)

    def _tag(self, request: Request) -> None:
        if self.tags:
            request.tags = {**request.tags, **self.tags}

    def call_bound(self, model: ModelId, request: Request) -> bounds.CallBound:
        """The worst case ``request`` may cost on ``model``: of a route, its dearest target (an unpriced
        target wins, since nothing bounds it). With :attr:`default_max_tokens` set and no ``max_tokens``
        on the request, sets ``request.max_tokens`` to the bound that is then sent."""
        first = model if isinstance(model, str) else model[0]
        model_ids = self.resolver.model_ids(first)
        if request.max_tokens is None and self.default_max_tokens is not None:
            # Sent to every target, so it must not exceed what any target the catalog knows accepts.
            known = [caps.max_output_tokens for caps in map(catalog.lookup, model_ids) if caps.known]
            request.max_tokens = min([self.default_max_tokens, *known])
        per_target = [bounds.call_bound(request, model_id) for model_id in model_ids]
        return max(per_target, key=lambda bound: (not bound.priced, bound.usd))

    async def _reserve(self, model: ModelId, request: Request) -> Hold | None:
        """Hold the call's worst case against the budgets and guards (see :meth:`call_bound`)."""
        if not self.budgets.active and not self.guards:
            return None
        bound = self.call_bound(model, request)
        guards: list[SpendGuard] = [self.budgets] if self.budgets.active else []
        guards.extend(self.guards)
        holds: list[Hold] = []
        try:
            for guard in guards:
                if isinstance(guard, BoundedSpendGuard):
                    holds.append(await guard.reserve_bound(bound, request.tags))
                else:
                    holds.append(await guard.reserve(bound.usd, request.tags))
        except BaseException:
            for hold in holds:  # a later guard refused: release what the earlier ones hold
                await hold.settle(0.0)
            raise
        return holds[0] if len(holds) == 1 else _Holds(holds)

    def _finish(self, response: Response, request: Request, started: float) -> Response:
        """What is the same for every provider: latency, structured output, the usage ledger, the log."""
        response.latency_ms = (time.perf_counter() - started) * 1000.0
        self.ledger.record_response(response, request.tags)
        if _log.isEnabledFor(logging.INFO):
            usage = response.usage
            _log.info("llm.call", extra={
                "request_id": response.id, "provider": response.provider, "model": response.model,
                "latency_ms": round(response.latency_ms, 3), "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens, "cost_usd": response.cost_usd, "cached": response.cached,
                "attempts": len(response.attempts), "tags": dict(request.tags),
            })
        if request.output is not None and response.output is None and response.finish_reason != "tool_calls":
            response.output = request.output.parse(response.text)
        return response

    def derive(
        self,
        *,
        config: FileConfig | None = None,
        backends: Mapping[str, Backend] | None = None,
        environ: Mapping[str, str] | None = None,
        guards: Sequence[SpendGuard] | None = None,
        tags: Mapping[str, str] | None = None,
        default_max_tokens: int | None = None,
    ) -> LLM:
        """A facade with another config, extra backend instances, other provider keys (``environ``, laid
        over this one's), more guards or more default tags, that shares everything else with this one:
        connections, retry policy, breakers and limits, the usage ledger, cache, budgets and telemetry.

        Agents bound to their own endpoints use it, so their calls still count against the same budgets
        and show in the same ``usage()``; the service derives one per tenant with the tenant's stored
        keys, its credit balance as a guard (with ``default_max_tokens``, the output bound its holds
        assume and its calls send) and its id as a tag. With ``environ`` given, backends built from keys
        are built anew (only instances passed as ``backends`` carry over).
        """
        inherited = dict(self.resolver.given_backends()) if environ is not None else dict(self.resolver.backends())
        return LLM(
            config if config is not None else self.file_config,
            transport=self.transport,
            retry=self.retry,
            backends={**inherited, **(backends or {})},
            environ={**self.resolver.environ, **environ} if environ is not None else self.resolver.environ,
            reliability=self.reliability,
            ledger=self.ledger,
            cache=self.cache,
            budgets=self.budgets,
            telemetry=self.telemetry,
            guards=(*self.guards, *(guards or ())),
            tags={**self.tags, **(tags or {})},
            default_max_tokens=default_max_tokens if default_max_tokens is not None else self.default_max_tokens,
        )

    def _api_variant(self, backend: Backend, api: str) -> Backend:
        return self.resolver.variant(backend, api)

    def _new_router(self, name: str, route: Route) -> Router:
        return Router(name, route, self._router_context)

    def _watch_backend(self, backend: Backend) -> None:
        # Providers' rate-limit headers teach the backend's client-side limiter. A backend shared by
        # derived facades (one per tenant, rebuilt as their keys change) is watched once per limiter.
        observe = self.reliability.limiter(backend.name).observe
        if observe not in backend.header_listeners:
            backend.header_listeners.append(observe)


def _load_file_config(config: str | Path | Mapping[str, Any] | FileConfig | None) -> FileConfig:
    if isinstance(config, FileConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config))
    path = find_config_file(config if config is not None else get_settings().config)
    return load_config_file(path) if path is not None else FileConfig()


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
        started = time.perf_counter()
        llm._tag(request)
        key = llm._cache_key(self._model, request)
        if key is not None and llm.cache is not None:
            stored = await llm.cache.get(key)
            llm.telemetry.cache_lookup(stored is not None)
            if stored is not None:  # a cached answer replays as a stream
                response = load_response(stored, started=started)
                accumulator = StreamAccumulator(response.provider, response.model, response.id)
                for event in response_events(response):
                    yield accumulator.add(event)
                self.response = llm._finish(response, request, started)
                yield StreamEvent("finish", finish_reason=response.finish_reason, response=self.response)
                return
        reservation = await llm._reserve(self._model, request)
        settled = False
        try:
            async for event in llm.router(self._model).stream(request):
                if event.kind == "finish" and event.response is not None:
                    if reservation is not None:
                        await reservation.settle(event.response.cost_usd)
                        settled = True
                    self.response = llm._finish(event.response, request, started)
                    if key is not None and llm.cache is not None:
                        await llm.cache.set(key, dump_response(self.response), llm.cache_ttl_s)
                yield event
        finally:
            if reservation is not None and not settled:
                await reservation.settle(0.0)


class _Holds:
    """The holds of several guards, settled together."""

    __slots__ = ("holds",)

    def __init__(self, holds: list[Hold]) -> None:
        self.holds = holds

    async def settle(self, actual_usd: float | None) -> None:
        for hold in self.holds:
            await hold.settle(actual_usd)


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


