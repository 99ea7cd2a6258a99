"""``LLM``: the facade over every backend.

``LLM`` turns what users write (a model id, a prompt or OpenAI-style messages, functions as tools,
a pydantic model as ``output=``) into a neutral :class:`~agentadapter.llm.messages.Request`,
resolves the model id to a route (:mod:`agentadapter.llm.resolve`) and runs it through a
:class:`~agentadapter.llm.router.Router`, which applies breakers, rate limits, retries and
failover per target. It then fills in what is the same for every provider: latency and the
validated structured output (cost and attempts come from the router). Streams go through the same
steps; a stream is retried or failed over only until its first event reaches the caller.

One pipeline serves both: a call is prepared once (:class:`PreparedCall`: the facade's tags, the
cache key, the call's one token estimate, the spend holds), run by the router, and finished once
(holds settled, the usage ledger, the log line, the cache). ``generate_request`` and
``stream_request`` take a ready-made :class:`Request`. The facade owns its resolver and hands it
what routers share (:class:`~agentadapter.llm.router.RouterContext`); nothing below calls back up.
A config file's ``catalog:`` entries are this facade's own (:class:`~agentadapter.llm.catalog.CatalogView`),
shared with the facades derived from it and invisible to any other.
``generate_sync`` runs calls on one background event loop per ``LLM`` so its pooled connections
survive between calls. ``embed`` takes the same steps for texts to embed
(:mod:`agentadapter.llm.embedding_calls`): the same cache, holds, router policies and ledger.
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
from typing import TYPE_CHECKING, Any, TypeVar

from agentadapter.config import FileConfig, find_config_file, get_settings, load_config_file, parse_config
from agentadapter.llm import bounds, embedding_calls
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.catalog import Capabilities, CatalogView
from agentadapter.llm.embeddings import EmbeddingResponse, InputType
from agentadapter.llm.errors import CapabilityError, InvalidRequestError
from agentadapter.llm.estimate import CallEstimate
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
from agentadapter.llm.policy.budget import Budget, BudgetGuard, Hold, SpendGuard
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
from agentadapter.llm.resolve import Resolver
from agentadapter.llm.router import Router, RouterContext
from agentadapter.llm.shared import SharedState
from agentadapter.llm.telemetry import Telemetry
from agentadapter.llm.tokens import TokenCount, count_tokens_local, estimate_cost
from agentadapter.llm.tools import Tool, coerce_tool
from agentadapter.llm.transport import Transport, create_transport
from agentadapter.observability.logging import get_logger

if TYPE_CHECKING:
    from agentadapter.llm.batch import BatchInput, BatchJob

_log = get_logger("agentadapter.llm")

T = TypeVar("T")

ModelId = str | Sequence[str]
MessagesInput = str | Message | Mapping[str, Any] | Iterable[Any]
ToolInput = Tool | Mapping[str, Any] | Callable[..., Any]

# The keyword settings generate() and stream() accept, beside model, messages, tools and output.
_SETTINGS = frozenset({
    "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens", "stop", "seed",
    "frequency_penalty", "presence_penalty",
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
        catalog_view: CatalogView | None = None,
    ) -> None:
        self.file_config = _load_file_config(config)
        self.catalog: CatalogView = (
            catalog_view if catalog_view is not None else CatalogView(self.file_config.catalog)
        )
        """The catalog as this facade sees it: its config's ``catalog:`` entries over the process-wide
        catalog (``catalog_view``, when given, is used as is: :meth:`derive` passes its own)."""
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
        self.telemetry = telemetry or Telemetry(known=lambda target: self.catalog.find(target) is not None)
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
        # A redis cache uses the shared state's connections (the process's one Redis owner); without
        # them it builds its own, which this facade then closes (derived facades share, never close).
        self._owns_cache = cache is None
        self.cache: ResponseCache | None = cache if cache is not None else (
            create_cache(cache_spec.backend, data_dir=settings.data_dir, redis_url=settings.redis_url,
                         redis=shared.connections if shared is not None else None)
            if cache_spec is not None else None
        )
        self.cache_ttl_s = cache_spec.ttl_s if cache_spec is not None else 3600.0
        self.budgets = budgets if budgets is not None else BudgetGuard(
            (Budget(**spec.model_dump()) for spec in self.file_config.budgets),
            store=shared.budgets if shared is not None else None,
        )
        self.resolver = Resolver(
            self.file_config,
            transport=self.transport,
            environ=environ,
            backends=backends,
            online_endpoints=settings.agent_online_endpoints,
            context=RouterContext(
                retry=self.retry, store=self.reliability, telemetry=self.telemetry, catalog=self.catalog
            ),
        )
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
        call = self._prepare(model, request)
        cached = await self._cached(call)
        if cached is not None:
            return cached
        router = self.router(model)
        await self._hold(call)
        try:
            response = await router.generate(request, call.estimate)
        except BaseException:
            await call.release()
            raise
        return await self._complete(call, response)

    def stream_request(self, model: ModelId, request: Request) -> LLMStream:
        """``stream`` for a ready-made :class:`Request` (what the gateway and the agents' loop stream)."""
        return LLMStream(self, model, request)

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
        return self.stream_request(model, request)

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

    async def batch(self, model: str, requests: Sequence[BatchInput], **settings: Any) -> BatchJob:
        """Submit ``requests`` to the batch API of ``model``'s provider (OpenAI, Anthropic: half price,
        answers within 24 hours); returns a :class:`~agentadapter.llm.batch.BatchJob` to poll or wait on.
        ``settings`` apply to every request (a dict request's own keys win)."""
        from agentadapter.llm.batch import submit_batch

        return await submit_batch(self, model, requests, **settings)

    async def embed(
        self,
        model: ModelId,
        inputs: str | Sequence[str],
        *,
        dimensions: int | None = None,
        input_type: InputType | None = None,
        timeout: float | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> EmbeddingResponse:
        """A vector per input text, in input order, from ``model`` (an id, an alias, or a list tried in order).

        ``dimensions`` shortens the vectors where the model can; ``input_type`` (``query``, ``document``,
        ``classification``, ``clustering``) tells providers that embed each kind differently (Cohere,
        Gemini) what the texts are for; ``timeout`` bounds the whole call, batches, retries and failover
        included. Empty inputs and texts longer than every target reads are refused with
        :class:`InvalidRequestError` before any request. Calls go through the same policies as
        :meth:`generate`; usage and cost appear in :meth:`usage`.
        """
        request = embedding_calls.embedding_request(inputs, dimensions=dimensions, input_type=input_type,
                                                    timeout=timeout)
        return await embedding_calls.embed(self, model, request, tags=tags)

    # ----------------------------------------------------------------------------- sync callers

    def embed_sync(self, model: ModelId, inputs: str | Sequence[str], **kwargs: Any) -> EmbeddingResponse:
        """``embed`` for code that is not async (runs on this LLM's background loop)."""
        return self.run_sync(self.embed(model, inputs, **kwargs))

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

    def capabilities(self, model: str) -> Capabilities:
        """What ``provider/model`` (or an alias's first target) can do, from the catalog."""
        return self.resolver.route(model).targets[0].capabilities()

    async def aclose(self) -> None:
        """Close the pooled connections of the running loop (and the cache's, if this facade built it)."""
        await self.transport.aclose()
        close_cache = getattr(self.cache, "aclose", None)
        if self._owns_cache and close_cache is not None:
            await close_cache()

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
        return self.resolver.router(model)

    @property
    def _router_context(self) -> RouterContext:
        """What this facade's routers share (tests seed its ``rng`` and replace its ``sleep``)."""
        return self.resolver.context

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
        capabilities = self.catalog.lookup(model_id)
        return estimate_cost(request, model_id, capabilities.pricing, capabilities=capabilities)

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
        model_ids = self._model_ids(model)
        return self._bound(model_ids, request, CallEstimate(request, model_ids))

    def _model_ids(self, model: ModelId) -> list[str]:
        """The ``provider/model`` ids a call to ``model`` may reach (of an inline list, its first's)."""
        return self.resolver.model_ids(model if isinstance(model, str) else model[0])

    def _bound(self, model_ids: Sequence[str], request: Request, estimate: CallEstimate) -> bounds.CallBound:
        if request.max_tokens is None and self.default_max_tokens is not None:
            # Sent to every target, so it must not exceed what any target the catalog knows accepts.
            known = [caps.max_output_tokens for caps in map(self.catalog.lookup, model_ids) if caps.known]
            request.max_tokens = min([self.default_max_tokens, *known])
        per_target = [
            bounds.call_bound(request, model_id, capabilities=self.catalog.lookup(model_id), estimate=estimate)
            for model_id in model_ids
        ]
        return max(per_target, key=lambda bound: (not bound.priced, bound.usd))

    # ------------------------------------------------------------------------- the call pipeline

    def _prepare(self, model: ModelId, request: Request) -> PreparedCall:
        """The steps before the cache and the holds: the facade's tags, the cache key, the one estimate."""
        started = time.perf_counter()
        self._tag(request)
        key = self._cache_key(model, request)
        model_ids = self._model_ids(model)
        return PreparedCall(model, request, started, model_ids, CallEstimate(request, model_ids), key)

    async def _cached(self, call: PreparedCall) -> Response | None:
        """The cached answer, finished as a call's answer is; None on a miss (or without a cache)."""
        if call.cache_key is None or self.cache is None:
            return None
        stored = await self.cache.get(call.cache_key)
        self.telemetry.cache_lookup(stored is not None)
        if stored is None:
            return None
        return self._finish(load_response(stored, started=call.started), call.request, call.started)

    async def _hold(self, call: PreparedCall) -> None:
        """Hold the call's worst case against the budgets and guards (see :meth:`call_bound`)."""
        call.hold = await self.hold_bound(lambda: self._bound(call.model_ids, call.request, call.estimate),
                                          call.request.tags)

    async def hold_bound(self, bound_of: Callable[[], bounds.CallBound], tags: Mapping[str, str]) -> Hold | None:
        """Hold a call's worst case (``bound_of()``, worked out only when something guards) against the
        budgets and guards; None when nothing guards this facade."""
        if not self.budgets.active and not self.guards:
            return None
        bound = bound_of()
        guards: list[SpendGuard] = [self.budgets] if self.budgets.active else []
        guards.extend(self.guards)
        holds: list[Hold] = []
        try:
            for guard in guards:
                # Not isinstance(guard, BoundedSpendGuard): a runtime-checkable protocol's check walks the
                # class's attributes on every call, a measurable part of a metered call.
                reserve_bound = getattr(guard, "reserve_bound", None)
                if reserve_bound is not None:
                    holds.append(await reserve_bound(bound, tags))
                else:
                    holds.append(await guard.reserve(bound.usd, tags))
        except BaseException:
            for hold in holds:  # a later guard refused: release what the earlier ones hold
                await hold.settle(0.0)
            raise
        return holds[0] if len(holds) == 1 else _Holds(holds)

    async def _complete(self, call: PreparedCall, response: Response) -> Response:
        """The steps after an answer: settle the holds, finish it, store it in the cache."""
        await call.settle(response.cost_usd)
        self._finish(response, call.request, call.started)
        if call.cache_key is not None and self.cache is not None:
            await self.cache.set(call.cache_key, dump_response(response), self.cache_ttl_s)
        return response

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
            # This facade's catalog entries carry over; another config's are laid over them, for the
            # derived facade only.
            catalog_view=(self.catalog.with_overrides(config.catalog)
                          if config is not None and config is not self.file_config else self.catalog),
        )


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
        llm = self._llm
        call = llm._prepare(self._model, self.request)
        cached = await llm._cached(call)
        if cached is not None:  # a cached answer replays as a stream
            accumulator = StreamAccumulator(cached.provider, cached.model, cached.id)
            for event in response_events(cached):
                yield accumulator.add(event)
            self.response = cached
            yield StreamEvent("finish", finish_reason=cached.finish_reason, response=cached)
            return
        router = llm.router(self._model)
        await llm._hold(call)
        try:
            async for event in router.stream(self.request, call.estimate):
                if event.kind == "finish" and event.response is not None:
                    self.response = await llm._complete(call, event.response)
                yield event
        finally:
            await call.release()  # nothing to do once the answer settled the holds


@dataclasses.dataclass(slots=True)
class PreparedCall:
    """One call as the facade prepared it, carried from its preparation to its finish."""

    model: ModelId
    request: Request
    started: float
    model_ids: list[str]
    """The ``provider/model`` ids behind ``model`` (what the holds bound)."""
    estimate: CallEstimate
    """The call's one token estimate, read by the holds, the router's strategy, checks and limiter."""
    cache_key: str | None = None
    hold: Hold | None = None

    async def settle(self, actual_usd: float | None) -> None:
        """Settle the holds to what the call cost (once: later calls do nothing)."""
        hold, self.hold = self.hold, None
        if hold is not None:
            await hold.settle(actual_usd)

    async def release(self) -> None:
        """The call sent nothing billable (it failed or was abandoned): release what it holds."""
        await self.settle(0.0)


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


