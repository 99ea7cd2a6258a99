"""Metrics and traces of model calls: Prometheus counters and histograms, OpenTelemetry spans.

The router reports every try of a target here: :meth:`Telemetry.started` before the call,
:meth:`Telemetry.finished` after it. Metrics (names under ``agentadapter_llm_``) go to
prometheus-client's default registry and show on the server's ``/metrics``: requests by outcome,
errors by type, latency and time-to-first-token histograms, tokens by kind, cost, cache hits and
misses, breaker state and calls in flight. Spans follow the OpenTelemetry GenAI semantic
conventions (``gen_ai.*`` attributes) and are made only when the application has installed a real
tracer provider (an exporter is configured); otherwise tracing costs one check per call. No vendor
key is involved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from agentadapter.llm.messages import Request, Response

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

REQUESTS = Counter("agentadapter_llm_requests", "Model calls (each try of a target)", ["provider", "model", "outcome"])
ERRORS = Counter("agentadapter_llm_errors", "Failed model calls by error type", ["provider", "model", "error_type"])
LATENCY = Histogram("agentadapter_llm_request_duration_seconds", "Model call latency", ["provider", "model"],
                    buckets=_LATENCY_BUCKETS)
TTFT = Histogram("agentadapter_llm_time_to_first_token_seconds", "Time to the first streamed event",
                 ["provider", "model"], buckets=_TTFT_BUCKETS)
TOKENS = Counter("agentadapter_llm_tokens", "Tokens by kind", ["provider", "model", "kind"])
OTHER_MODEL = "other"
"""The model label shared by calls past :attr:`Telemetry.max_series` distinct models."""
COST = Counter("agentadapter_llm_cost_usd", "Spend in USD at catalog prices", ["provider", "model"])
CACHE = Counter("agentadapter_llm_cache", "Response cache look-ups", ["result"])
BREAKER = Gauge("agentadapter_llm_breaker_state", "Circuit breaker state (0 closed, 1 half-open, 2 open)",
                ["target"])
IN_FLIGHT = Gauge("agentadapter_llm_in_flight", "Model calls in flight", ["target"])


class _Series:
    """The pre-bound metric children of one provider+model (binding labels per call is the slow part)."""

    __slots__ = ("cached", "cost", "errors", "in_flight", "input", "latency", "model", "ok", "output", "provider",
                 "reasoning", "ttft")

    def __init__(self, provider: str, model: str, target: str) -> None:
        self.provider, self.model = provider, model
        self.ok = REQUESTS.labels(provider, model, "ok")
        self.errors = REQUESTS.labels(provider, model, "error")
        self.latency = LATENCY.labels(provider, model)
        self.ttft = TTFT.labels(provider, model)
        self.input = TOKENS.labels(provider, model, "input")
        self.output = TOKENS.labels(provider, model, "output")
        self.cached = TOKENS.labels(provider, model, "cached_input")
        self.reasoning = TOKENS.labels(provider, model, "reasoning")
        self.cost = COST.labels(provider, model)
        self.in_flight = IN_FLIGHT.labels(target)


@dataclass(slots=True)
class CallRecord:
    """One try in progress."""

    series: _Series
    started: float
    span: Any = None


class Telemetry:
    """Where the router reports each try of a target."""

    def __init__(
        self, *, metrics: bool = True, tracing: bool = True, max_series: int = 1000,
        known: Callable[[str], bool] | None = None,
    ) -> None:
        self.metrics = metrics
        self.max_series = max_series
        """Distinct provider/model series kept before other models share ``provider/other``."""
        self.known = known
        """Targets that always get a series of their own (the facade passes the catalog's models)."""
        self.tracing = tracing
        self._series: dict[str, _Series] = {}
        self._tracer: Any = None
        self._tracer_provider: Any = None

    def _series_for(self, target: str) -> _Series:
        series = self._series.get(target)
        if series is None:
            provider, _, model = target.partition("/")
            if len(self._series) >= self.max_series and not (self.known is not None and self.known(target)):
                # Model names come from callers (a gateway's tenants): past the cap, uncatalogued ones share
                # one series per provider, so a flood of made-up names cannot grow the process's metrics.
                model, target = OTHER_MODEL, f"{provider}/{OTHER_MODEL}"
                series = self._series.get(target)
                if series is not None:
                    return series
            series = self._series[target] = _Series(provider, model, target)
        return series

    def started(self, target: str, request: Request) -> CallRecord:
        series = self._series_for(target)
        record = CallRecord(series, time.perf_counter())
        if self.metrics:
            series.in_flight.inc()
        if self.tracing:
            record.span = self._start_span(series, request)
        return record

    def finished(
        self, record: CallRecord, *, response: Response | None = None, error: BaseException | None = None,
        ttft_ms: float | None = None,
    ) -> None:
        series = record.series
        seconds = time.perf_counter() - record.started
        if self.metrics:
            series.in_flight.dec()
            if error is None:
                series.ok.inc()
                series.latency.observe(seconds)
                if ttft_ms is not None:
                    series.ttft.observe(ttft_ms / 1000.0)
                if response is not None:
                    usage = response.usage
                    series.input.inc(usage.input_tokens)
                    series.output.inc(usage.output_tokens)
                    if usage.cached_input_tokens:
                        series.cached.inc(usage.cached_input_tokens)
                    if usage.reasoning_tokens:
                        series.reasoning.inc(usage.reasoning_tokens)
                    if response.cost_usd:
                        series.cost.inc(response.cost_usd)
            else:
                series.errors.inc()
                ERRORS.labels(series.provider, series.model, type(error).__name__).inc()
        if record.span is not None:
            self._end_span(record.span, response, error)

    @staticmethod
    def cache_lookup(hit: bool) -> None:
        CACHE.labels("hit" if hit else "miss").inc()

    @staticmethod
    def breaker_changed(target: str, _old: str, new: str) -> None:
        BREAKER.labels(target).set(BREAKER_STATES.get(new, 0))

    # ------------------------------------------------------------------------------------ tracing

    def _tracer_if_configured(self) -> Any:
        try:
            from opentelemetry import trace
        except ImportError:
            self.tracing = False  # the otel extra is not installed: never look again
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None  # nobody configured an exporter: make no spans
        if provider is not self._tracer_provider:
            self._tracer_provider = provider
            self._tracer = provider.get_tracer("agentadapter")
        return self._tracer

    def _start_span(self, series: _Series, request: Request) -> Any:
        tracer = self._tracer_if_configured()
        if tracer is None:
            return None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": series.provider,
            "gen_ai.provider.name": series.provider,
            "gen_ai.request.model": series.model,
        }
        for name, value in (("max_tokens", request.max_tokens), ("temperature", request.temperature),
                            ("top_p", request.top_p), ("seed", request.seed)):
            if value is not None:
                attributes[f"gen_ai.request.{name}"] = value
        return tracer.start_span(f"chat {series.model}", attributes=attributes)

    @staticmethod
    def _end_span(span: Any, response: Response | None, error: BaseException | None) -> None:
        if response is not None:
            span.set_attribute("gen_ai.response.id", response.id)
            span.set_attribute("gen_ai.response.model", response.model)
            span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
            span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()
