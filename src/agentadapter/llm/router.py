"""Routes: failover chains and routing strategies over several targets. A router is a Backend.

A :class:`Router` runs one request over the targets of a :class:`~agentadapter.llm.resolve.Route`
in the order its strategy picks: ``failover`` (as written), ``cost`` (the cheapest target whose
capabilities fit the request first), ``latency`` (lowest moving-average latency first),
``least_busy`` (fewest calls in flight first) or ``weighted`` (a weighted shuffle). For each target
it checks the breaker (an open one is skipped without a network call), takes the rate limiter's
capacity, calls the backend under the retry policy, and records the outcome in the target's
statistics. It moves to the next target on retryable errors, an open breaker, a client-side rate
limit, a capability mismatch, and a target's own misconfiguration (authentication and permission
errors, an answer that is not the API's), and optionally (per route) on context-window and content-filter
errors; never once a stream has emitted content. One deadline bounds the whole chain: once the
call's deadline has passed no target and no retry is started (the route ends with an
``APITimeoutError`` naming the deadline: raised as is by a one-target route, the last of
``AllTargetsFailedError.errors`` otherwise), each try's own limits are only shortened to what is left
of it, and a back-off that would cross it is not slept.
``Response.attempts`` tells the story; when every target fails, ``AllTargetsFailedError`` carries
each error. Because a router is itself a :class:`Backend`, routes nest.

Embeddings (:meth:`Router.embed_all`) take the same path per target: the deadline, the breaker, the
rate limiter (its token budget counts the batch's input tokens), retries, statistics and telemetry
per batch. A target embeds the whole call, split into batches within its limits and in input order
(:func:`~agentadapter.llm.embeddings.plan_batches`); an input longer than it reads, or a ``dimensions``
it cannot give, is refused for that target before a request (a ``CapabilityError``, so the route
moves on). Failover restarts the call on the next target: vectors of two models do not share a space.

A router is built by the resolver (:mod:`agentadapter.llm.resolve`) from a :class:`RouterContext` and
never calls back into the resolver or the facade. The call's token estimate
(:class:`~agentadapter.llm.estimate.CallEstimate`, made once by the facade) travels with the request
through the strategy, the capability checks, the rate limiter and nested routers; a router called
directly makes its own.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.catalog import CatalogView
from agentadapter.llm.embeddings import (
    EmbeddingBatch,
    EmbeddingLimits,
    EmbeddingRequest,
    EmbeddingResponse,
    plan_batches,
)
from agentadapter.llm.errors import (
    AgentAdapterError,
    AllTargetsFailedError,
    AuthenticationError,
    CapabilityError,
    CircuitOpenError,
    ContentFilterError,
    ContextWindowExceededError,
    InvalidRequestError,
    InvalidResponseError,
    PermissionDeniedError,
    RateLimitError,
)
from agentadapter.llm.estimate import CallEstimate
from agentadapter.llm.health import ReliabilityStore
from agentadapter.llm.messages import Attempt, ImagePart, Request, Response, StreamEvent, Usage
from agentadapter.llm.policy.retry import MIN_TIME_LEFT, Deadlined, RetryPolicy, deadline_error, deadline_passed
from agentadapter.llm.telemetry import CallRecord, Telemetry
from agentadapter.llm.tokens import check_context_window, count_texts_local

if TYPE_CHECKING:
    from agentadapter.llm.resolve import Route, Target

STRATEGIES = ("failover", "cost", "latency", "least_busy", "weighted")

_FAILOVER_ALWAYS: tuple[type[AgentAdapterError], ...] = (
    CircuitOpenError, CapabilityError, RateLimitError, AuthenticationError, PermissionDeniedError,
    InvalidResponseError,
)
"""Errors that move a route to its next target even though the same call is not retried: the target
cannot serve now (open breaker, client-side limit, a capability it lacks), or it is misconfigured on
the operator's side (a revoked or wrong key, a key without access to the model, a base URL that
answers something else), which the next target, with its own key and URL, does not share.
A caller's malformed request (``BadRequestError``) is not among them: every target would refuse it."""

_FAILOVER_OPT_IN: dict[str, type[AgentAdapterError]] = {
    "context_window": ContextWindowExceededError,
    "content_filter": ContentFilterError,
}
"""Per route (``failover_on:``): 400s that another target may well accept (a larger context window,
another provider's content policy)."""


_Answer = TypeVar("_Answer", "Response", "EmbeddingResponse")
"""What a target answers: a chat response or a whole embedding call."""

@dataclass(slots=True)
class RouterContext:
    """What every router of one ``LLM`` shares."""

    retry: RetryPolicy
    store: ReliabilityStore
    rng: random.Random = field(default_factory=random.Random)
    sleep: Any = asyncio.sleep
    variant: Callable[[Backend, str], Backend] | None = None
    """The same backend speaking another API (``chat`` / ``responses``), for ``Request.api``: the
    resolver's backend pool fills it in."""
    telemetry: Telemetry = field(default_factory=Telemetry)
    catalog: CatalogView = field(default_factory=CatalogView)
    """The facade's view of the catalog (its config's ``catalog:`` entries over the process-wide one)."""


class Router(Backend):
    """One route over several targets (see the module docstring)."""

    type_name = "router"

    def __init__(self, name: str, route: Route, context: RouterContext) -> None:
        if route.strategy not in STRATEGIES:
            raise InvalidRequestError(
                f"unknown routing strategy {route.strategy!r}; use one of {', '.join(STRATEGIES)}"
            )
        first = route.targets[0].backend
        super().__init__(BackendConfig(name=name, type="router"), transport=first.transport)
        self.route = route
        self.context = context

    def capabilities(self, model: str) -> catalog.Capabilities:
        return self.route.targets[0].capabilities()

    def embedding_limits(self, model: str) -> EmbeddingLimits:
        first = self.route.targets[0]
        return first.backend.embedding_limits(first.model)

    async def aclose(self) -> None:
        return None  # the targets' backends own the connections

    # ------------------------------------------------------------------------------------ ordering

    def estimate(self, request: Request) -> CallEstimate:
        """A token estimate for a call made on this router directly (the facade hands its own)."""
        return CallEstimate(request, [target.label for target in self.route.targets])

    def ordered_targets(self, request: Request, estimate: CallEstimate | None = None) -> list[Target]:
        """The targets in the order this request tries them."""
        targets = list(self.route.targets)
        if self.route.strategy == "cost":
            counted = estimate if estimate is not None else self.estimate(request)
            fitting = [t for t in targets if fits(t, request, counted)]
            rest = [t for t in targets if t not in fitting]
            fitting.sort(key=lambda t: estimated_cost(t, request, counted))
            return fitting + rest
        return self._by_state(targets)

    def _by_state(self, targets: list[Target]) -> list[Target]:
        """The order of the strategies that look at the targets, not at the request."""
        strategy = self.route.strategy
        store = self.context.store
        if strategy == "latency":
            # An unmeasured target sorts first, so every target gets measured.
            return sorted(targets, key=lambda t: store.stats(t.label).ewma_latency_ms or 0.0)
        if strategy == "least_busy":
            return sorted(targets, key=lambda t: store.stats(t.label).in_flight)
        if strategy == "weighted":
            weights = self.route.weights or [1.0] * len(targets)
            rng = self.context.rng
            # Efraimidis-Spirakis: sorting by u**(1/w) is a weighted shuffle without replacement.
            keys = [rng.random() ** (1.0 / max(w, 1e-9)) for w in weights]
            return [t for _, t in sorted(zip(keys, targets, strict=True), key=lambda pair: -pair[0])]
        return targets

    def may_fail_over(self, error: BaseException) -> bool:
        if isinstance(error, _FAILOVER_ALWAYS):
            return True
        if isinstance(error, AgentAdapterError) and error.retryable:
            return True
        return any(
            isinstance(error, _FAILOVER_OPT_IN[kind]) for kind in self.route.failover_on if kind in _FAILOVER_OPT_IN
        )

    async def _first_answer(
        self, targets: Sequence[Target], request: Deadlined, attempts: list[Attempt],
        answer: Callable[[Target], Awaitable[_Answer]],
    ) -> _Answer:
        """The failover loop of every call kind: the first target's answer, moving on while the
        errors allow it and the deadline has not passed; else the route's error, every failure in it."""
        errors: list[BaseException] = []
        for target in targets:
            if deadline_passed(request):
                errors.append(out_of_time(target, request, attempts))
                break
            try:
                response = await answer(target)
            except AgentAdapterError as error:
                errors.append(error)
                if not self.may_fail_over(error):
                    break
                continue
            response.attempts = attempts
            return response
        raise route_error(errors, attempts, len(self.route.targets), request)

    # ---------------------------------------------------------------------------------- generate

    async def generate(self, request: Request, estimate: CallEstimate | None = None) -> Response:
        """The answer of the first target that gives one (``estimate``: the call's, else one is made)."""
        if estimate is None:
            estimate = self.estimate(request)
        attempts: list[Attempt] = []
        return await self._first_answer(
            self.ordered_targets(request, estimate), request, attempts,
            lambda target: self._generate_on(target, request, attempts, estimate))

    async def _generate_on(
        self, target: Target, request: Request, attempts: list[Attempt], estimate: CallEstimate
    ) -> Response:
        if isinstance(target.backend, Router):
            checked = checked_request(target, request, attempts, estimate)
            return await self._generate_nested(target, checked, attempts, estimate)
        call = _TargetCall.chat(self, target, request, attempts, estimate)
        while True:
            await call.admit()
            try:
                assert isinstance(call.request, Request)
                response = await call.backend.generate(call.request)
            except AgentAdapterError as error:
                if not await call.failed(error, emitted=False):
                    raise
                continue
            except BaseException:
                call.cancelled()
                raise
            call.succeeded(response, ttft_ms=None)
            return response

    async def _generate_nested(
        self, target: Target, request: Request, attempts: list[Attempt], estimate: CallEstimate
    ) -> Response:
        assert isinstance(target.backend, Router)
        try:
            response = await target.backend.generate(request, estimate)
        except AllTargetsFailedError as error:
            attempts.extend(error.attempts)
            raise
        attempts.extend(response.attempts)
        return response

    def _backend_for(self, target: Target, request: Request) -> Backend:
        if request.api is None or self.context.variant is None:
            return target.backend
        return self.context.variant(target.backend, request.api)

    def _policy(self, target: Target) -> RetryPolicy:
        max_retries = target.backend.config.max_retries
        policy = self.context.retry
        if max_retries is None or max_retries == policy.max_retries:
            return policy
        return replace(policy, max_retries=max_retries)

    @staticmethod
    def _retry_delay(policy: RetryPolicy, error: BaseException, retries: int, request: Deadlined) -> float | None:
        """Seconds to wait before trying again, or None when no retry is due (or it would end past
        the deadline: the wait is computed once, so the one checked is the one slept)."""
        if not policy.should_retry(error, retries):
            return None
        delay = policy.delay(error, retries)
        if request.deadline is not None and time.monotonic() + delay >= request.deadline - MIN_TIME_LEFT:
            return None
        return delay

    # -------------------------------------------------------------------------------- embeddings

    async def embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        """The :class:`Backend` contract, for a router nested as another's backend: the whole call."""
        response = await self.embed_all(request)
        return EmbeddingBatch(response.vectors, response.usage.input_tokens, response.model)

    async def embed_all(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Every input's vector from the first target that embeds them all (see the module docstring)."""
        attempts: list[Attempt] = []
        return await self._first_answer(self._embedding_order(), request, attempts,
                                        lambda target: self._embed_on(target, request, attempts))

    def _embedding_order(self) -> list[Target]:
        targets = list(self.route.targets)
        if self.route.strategy == "cost":  # unknown prices last
            return sorted(targets, key=_embedding_price)
        return self._by_state(targets)

    async def _embed_on(self, target: Target, request: EmbeddingRequest, attempts: list[Attempt]) -> EmbeddingResponse:
        backend = target.backend
        if isinstance(backend, Router):
            try:
                nested = await backend.embed_all(request)
            except AllTargetsFailedError as error:
                attempts.extend(error.attempts)
                raise
            attempts.extend(nested.attempts)
            return nested
        started = time.perf_counter()
        counts, _ = count_texts_local(request.inputs, target.label)
        limits = embedding_limits(target)
        problem = embedding_problem(target, counts, request.dimensions, limits)
        if problem is not None:
            refused = CapabilityError(problem)
            attempts.append(failed_attempt(target.label, refused, started, 0))
            raise refused
        entry = embedding_entry(target)
        call = _TargetCall(self, target, request, attempts, backend, lambda: 0)
        vectors: list[list[float]] = []
        tokens = 0
        cost: float | None = 0.0 if entry is not None and entry.price is not None else None
        model = target.model
        for start, end in plan_batches(counts, limits):
            call.request = replace(request, model=target.model, inputs=request.inputs[start:end])
            call.estimate = sum(counts[start:end]) if call.limiter.active else 0
            batch = await self._embed_batch(call, entry)
            vectors.extend(batch.vectors)
            tokens += batch.input_tokens
            model = batch.model
            if cost is not None and entry is not None:
                cost += entry.cost_usd(batch.input_tokens) or 0.0
        call.done()
        return EmbeddingResponse(model=model, provider=target.provider, vectors=vectors,
                                 usage=Usage(input_tokens=tokens), cost_usd=cost)

    async def _embed_batch(self, call: _TargetCall, entry: catalog.EmbeddingModel | None) -> EmbeddingBatch:
        assert isinstance(call.request, EmbeddingRequest)
        while True:
            await call.admit()
            try:
                batch = await call.backend.embed(call.request)
            except AgentAdapterError as error:
                if not await call.failed(error, emitted=False):
                    raise
                continue
            except BaseException:
                call.cancelled()
                raise
            call.embedded(batch, entry.cost_usd(batch.input_tokens) if entry is not None else None)
            return batch

    # ------------------------------------------------------------------------------------ stream

    async def stream(self, request: Request, estimate: CallEstimate | None = None) -> AsyncIterator[StreamEvent]:
        """The answer as events from the first target that starts one (``estimate`` as for :meth:`generate`)."""
        if estimate is None:
            estimate = self.estimate(request)
        attempts: list[Attempt] = []
        errors: list[BaseException] = []
        for target in self.ordered_targets(request, estimate):
            if deadline_passed(request):
                errors.append(out_of_time(target, request, attempts))
                break
            emitted = False
            try:
                async for event in self._stream_on(target, request, attempts, estimate):
                    emitted = True
                    if event.kind == "finish" and event.response is not None:
                        event.response.attempts = attempts
                    yield event
                return
            except AgentAdapterError as error:
                if emitted:
                    raise  # the caller has seen content: a failover would repeat or contradict it
                errors.append(error)
                if not self.may_fail_over(error):
                    break
        raise route_error(errors, attempts, len(self.route.targets), request)

    async def _stream_on(
        self, target: Target, request: Request, attempts: list[Attempt], estimate: CallEstimate
    ) -> AsyncIterator[StreamEvent]:
        if isinstance(target.backend, Router):
            checked = checked_request(target, request, attempts, estimate)
            try:
                async for event in target.backend.stream(checked, estimate):
                    if event.kind == "finish" and event.response is not None:
                        attempts.extend(event.response.attempts)
                    yield event
            except AllTargetsFailedError as error:
                attempts.extend(error.attempts)
                raise
            return
        call = _TargetCall.chat(self, target, request, attempts, estimate)
        assert isinstance(call.request, Request)
        while True:
            await call.admit()
            first_event_ms: float | None = None
            try:
                async for event in call.backend.stream(call.request):
                    if first_event_ms is None:
                        first_event_ms = call.elapsed_ms()
                    if event.kind == "finish" and event.response is not None:
                        call.succeeded(event.response, ttft_ms=first_event_ms)
                    yield event
                return
            except AgentAdapterError as error:
                if not await call.failed(error, emitted=first_event_ms is not None):
                    raise
            except BaseException:
                call.cancelled()
                raise


class _TargetCall:
    """One target's share of a routed call: admission, outcome bookkeeping, and the retry decision."""

    __slots__ = (
        "attempts", "backend", "breaker", "call_started", "estimate", "label", "limiter", "outcome_recorded",
        "policy", "record", "request", "retries", "router", "started", "stats", "target",
    )

    def __init__(
        self, router: Router, target: Target, request: Request | EmbeddingRequest, attempts: list[Attempt],
        backend: Backend, tokens: Callable[[], int],
    ) -> None:
        self.router, self.target, self.attempts = router, target, attempts
        self.label = target.label
        self.started = self.call_started = time.perf_counter()
        self.retries = 0
        # Whether the current try's outcome is booked: a consumer closing a finished stream is not a cancel.
        self.outcome_recorded = False
        self.request = request
        self.policy = router._policy(target)
        self.backend = backend
        store = router.context.store
        self.breaker, self.stats = store.breaker(self.label), store.stats(self.label)
        self.limiter = store.limiter(self.backend.name)
        self.estimate = tokens() if self.limiter.active else 0
        """The tokens this try takes from the rate limiter (input and the output bound; an embedding
        batch's input)."""

    @classmethod
    def chat(
        cls, router: Router, target: Target, request: Request, attempts: list[Attempt], estimate: CallEstimate
    ) -> _TargetCall:
        """A chat call's share: the request checked against the target's capabilities first."""
        checked = checked_request(target, request, attempts, estimate)
        return cls(router, target, checked, attempts, router._backend_for(target, request),
                   lambda: estimate.input_tokens(target.label) + (checked.max_tokens or 0))

    def elapsed_ms(self) -> float:
        return _ms(self.call_started)

    async def admit(self) -> None:
        """The deadline, the breaker and the rate limiter let this try through (or say why not)."""
        try:
            if deadline_passed(self.request):
                what = f"retry {self.retries} of {self.label}" if self.retries else f"{self.label} could be tried"
                raise deadline_error(self.request, before=what, provider=self.backend.name)
            self.breaker.before_call()
            await self.limiter.acquire(self.estimate, deadline=self.request.deadline)
        except AgentAdapterError as error:
            self.attempts.append(failed_attempt(self.label, error, self.started, self.retries))
            raise
        self.stats.started()
        self.outcome_recorded = False
        self.record: CallRecord = self.router.context.telemetry.started(
            self.label, self.request, backend=self.backend
        )
        self.call_started = time.perf_counter()

    async def failed(self, error: AgentAdapterError, *, emitted: bool) -> bool:
        """Record a failed try; True (after the backoff) when it may be tried again."""
        self.outcome_recorded = True
        self.stats.finished(ok=False, latency_ms=self.elapsed_ms(), error=type(error).__name__)
        self.router.context.telemetry.finished(self.record, error=error)
        self.breaker.record_failure(error)
        delay = None if emitted else self.router._retry_delay(self.policy, error, self.retries, self.request)
        if delay is None:
            self.attempts.append(failed_attempt(self.label, error, self.started, self.retries))
            return False
        await self.router.context.sleep(delay)
        self.retries += 1
        return True

    def cancelled(self) -> None:
        if self.outcome_recorded:
            return  # the stream had finished (or failed) before its consumer closed it
        self.outcome_recorded = True
        self.stats.finished(ok=False, latency_ms=self.elapsed_ms(), error="cancelled")
        self.router.context.telemetry.finished(self.record, error=asyncio.CancelledError())
        self.breaker.release()

    def succeeded(self, response: Response, *, ttft_ms: float | None) -> None:
        self.outcome_recorded = True
        self.stats.finished(ok=True, latency_ms=self.elapsed_ms(), ttft_ms=ttft_ms)
        self.breaker.record_success()
        if self.limiter.active:
            self.limiter.settle(self.estimate, response.usage.total_tokens)
        settle_cost(response, self.target)
        self.router.context.telemetry.finished(self.record, response=response, ttft_ms=ttft_ms)
        self.done()

    def embedded(self, batch: EmbeddingBatch, cost_usd: float | None) -> None:
        """One embedding batch answered (the target's attempt is booked by :meth:`done` after the last)."""
        self.outcome_recorded = True
        self.stats.finished(ok=True, latency_ms=self.elapsed_ms())
        self.breaker.record_success()
        if self.limiter.active:
            self.limiter.settle(self.estimate, batch.input_tokens)
        self.router.context.telemetry.embedded(self.record, batch, cost_usd)

    def done(self) -> None:
        """The target answered: its attempt, with the retries it took."""
        self.attempts.append(Attempt(self.label, latency_ms=_ms(self.started), retries=self.retries))


# ------------------------------------------------------------------------------------------ helpers


def fits(target: Target, request: Request, estimate: CallEstimate) -> bool:
    """Whether a target's known capabilities fit what the request needs."""
    caps = target.capabilities()
    if not caps.known:
        return True
    if request.tools and request.tool_choice != "none" and not caps.tools:
        return False
    if request.output is not None and not caps.json_schema and not caps.tools:
        return False
    if not caps.vision and any(isinstance(p, ImagePart) for m in request.messages for p in m.parts):
        return False
    return estimate.input_tokens(target.label) + (request.max_tokens or 0) <= caps.context_window


def estimated_cost(target: Target, request: Request, estimate: CallEstimate) -> float:
    """The request's estimated cost on a target; unknown prices sort last."""
    pricing = target.capabilities().pricing
    if pricing is None:
        return float("inf")
    input_tokens = estimate.input_tokens(target.label)
    price_in, price_out, _, _ = pricing.for_input(input_tokens)
    output_tokens = request.max_tokens or 1000  # a typical answer when the request sets no bound
    return (input_tokens * price_in + output_tokens * price_out) / 1_000_000


def check_capabilities(target: Target, request: Request, estimate: CallEstimate | None = None) -> None:
    """Refuse, before any network call, what a known model cannot do (``estimate``: the call's count)."""
    caps = target.capabilities()
    if not caps.known:
        return
    counted = (estimate if estimate is not None else CallEstimate(request, [target.label])).for_model(target.label)
    check_context_window(request, caps, model_id=target.label, counted=counted)
    if request.tools and not caps.tools and request.tool_choice != "none":
        raise CapabilityError(f"{target.label} does not support tools; pick a model with tool calling or drop tools=")
    if not caps.vision and any(isinstance(p, ImagePart) for m in request.messages for p in m.parts):
        raise CapabilityError(f"{target.label} does not accept images; pick a vision model (see `agentadapter models`)")


def for_target(target: Target, request: Request, estimate: CallEstimate | None = None) -> Request:
    check_capabilities(target, request, estimate)
    if request.model == target.model:
        return request
    return replace(request, model=target.model)


def checked_request(
    target: Target, request: Request, attempts: list[Attempt], estimate: CallEstimate | None = None
) -> Request:
    """The request for this target, or a recorded attempt and the capability error."""
    started = time.perf_counter()
    try:
        return for_target(target, request, estimate)
    except CapabilityError as error:
        attempts.append(failed_attempt(target.label, error, started, 0))
        raise


def out_of_time(target: Target, request: Deadlined, attempts: list[Attempt]) -> BaseException:
    """The call's deadline passed before ``target`` could be tried: recorded, and the route ends."""
    error = deadline_error(request, before=f"{target.label} could be tried", provider=target.backend.name)
    attempts.append(failed_attempt(target.label, error, time.perf_counter(), 0))
    return error


def embedding_limits(target: Target) -> EmbeddingLimits:
    """What one request to ``target`` may carry: the backend's limits, the catalog's for the model within them."""
    limits = target.backend.embedding_limits(target.model)
    entry = embedding_entry(target)
    if entry is not None and entry.max_input_tokens < limits.max_input_tokens:
        limits = replace(limits, max_input_tokens=entry.max_input_tokens)
    return limits


def embedding_problem(
    target: Target, counts: Sequence[int], dimensions: int | None, limits: EmbeddingLimits | None = None
) -> str | None:
    """Why ``target`` cannot embed texts of these token counts (at ``dimensions``), or None when it can."""
    limits = limits if limits is not None else embedding_limits(target)
    longest = max(range(len(counts)), key=counts.__getitem__)
    if counts[longest] > limits.max_input_tokens:
        return (f"input {longest} is about {counts[longest]:,} tokens, more than the {limits.max_input_tokens:,} "
                f"{target.label} embeds in one text; split it into shorter passages")
    entry = embedding_entry(target)
    if dimensions is not None and entry is not None:
        if not entry.shortenable:
            return (f"{target.label} gives {entry.dimensions}-dimension vectors and cannot shorten them; "
                    "drop dimensions= or pick a model that can (e.g. openai/text-embedding-3-small)")
        if dimensions > entry.dimensions:
            return f"{target.label} gives at most {entry.dimensions} dimensions, not {dimensions}"
    return None


IN_PROCESS_EMBEDDING = catalog.EmbeddingModel(
    dimensions=1 << 16, max_input_tokens=1 << 30, price=0.0, shortenable=True,
    note="an in-process model: it costs nothing; its limits and dimensions are the backend's own")


def embedding_entry(target: Target) -> catalog.EmbeddingModel | None:
    """The catalog's entry for ``target``'s embedding model; in-process models are free."""
    if target.backend.in_process:
        return IN_PROCESS_EMBEDDING
    return catalog.embedding_model(target.label)


def _embedding_price(target: Target) -> float:
    entry = embedding_entry(target)
    return entry.price if entry is not None and entry.price is not None else float("inf")


def settle_cost(response: Response, target: Target) -> None:
    if response.cost_usd is None:
        response.cost_usd = catalog.cost_usd(response.usage, target.capabilities().pricing)


def failed_attempt(label: str, error: BaseException, started: float, retries: int) -> Attempt:
    return Attempt(
        label,
        error_type=type(error).__name__,
        error=str(error),
        status=getattr(error, "status", None),
        latency_ms=_ms(started),
        retries=retries,
    )


def route_error(
    errors: Sequence[BaseException], attempts: list[Attempt], target_count: int, request: Deadlined | None = None
) -> BaseException:
    """The single error of a one-target route, else an ``AllTargetsFailedError`` with every error."""
    if len(errors) == 1 and target_count == 1:
        return errors[0]
    tried = "; ".join(f"{a.target}: {a.error_type}" for a in attempts) or "no target could be tried"
    what = "every target failed"
    if request is not None and deadline_passed(request):
        limit = f"timeout={request.timeout:g}s" if request.timeout is not None else "its deadline"
        what = f"the call's deadline ({limit}) passed before a target answered"
    error = AllTargetsFailedError(
        f"AllTargetsFailedError: {what} ({tried}); see .errors for each", errors, attempts=attempts
    )
    if errors:
        error.__cause__ = errors[-1]
    return error


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
