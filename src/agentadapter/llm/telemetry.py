"""Metrics and traces of model calls: Prometheus counters and histograms, OpenTelemetry spans.

The router reports every try of a target here: :meth:`Telemetry.started` before the call,
:meth:`Telemetry.finished` after it. Metrics (names under ``agentadapter_llm_``) go to
prometheus-client's default registry and show on the server's ``/metrics``: requests by outcome,
errors by type, latency and time-to-first-token histograms, tokens by kind, cost, cache hits and
misses, breaker state and calls in flight. Spans follow the OpenTelemetry GenAI semantic
conventions: kind ``CLIENT``, named ``chat {model}``, with ``gen_ai.operation.name``,
``gen_ai.provider.name`` (the conventions' well-known value for the backend's type: ``openai``,
``anthropic``, ``gcp.gemini``, ``azure.ai.openai``, ``x_ai``, ``mistral_ai``, ...; the type itself for
a provider they do not list), ``gen_ai.request.*``, ``gen_ai.response.*``, ``gen_ai.usage.*``,
``server.address`` / ``server.port`` (from the backend's base URL) and ``error.type``; the configured
backend name is ``agentadapter.backend``. An embedding batch is a try like any other: its span is named
``embeddings {model}`` (``gen_ai.operation.name`` ``embeddings``, ``gen_ai.embeddings.dimension.count``
when shortened), its input tokens and cost go to the same series, and the texts it embedded to
``agentadapter_llm_embedded_texts``. They are made only when the application has installed a
real tracer provider (an exporter is configured); otherwise tracing costs one check per call. No
vendor key is involved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram

from agentadapter.llm.embeddings import EmbeddingRequest

if TYPE_CHECKING:
    from agentadapter.llm.backends.base import Backend
    from agentadapter.llm.embeddings import EmbeddingBatch
    from agentadapter.llm.messages import Request, Response

GENAI_PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "openai_responses": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
}
"""Backend type → the GenAI conventions' well-known ``gen_ai.provider.name``. A type they do not list
(``ollama``, ``vllm``, ``openrouter``, ...) is reported as itself, as the conventions ask for custom
providers."""

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
EMBEDDED = Counter("agentadapter_llm_embedded_texts", "Texts embedded", ["provider", "model"])
CACHE = Counter("agentadapter_llm_cache", "Response cache look-ups", ["result"])
BREAKER = Gauge("agentadapter_llm_breaker_state", "Circuit breaker state (0 closed, 1 half-open, 2 open)",
                ["target"])
IN_FLIGHT = Gauge("agentadapter_llm_in_flight", "Model calls in flight", ["target"])


class _Series:
    """The pre-bound metric children of one provider+model (binding labels per call is the slow part)."""

    __slots__ = ("cached", "cost", "errors", "in_flight", "input", "latency", "model", "ok", "output", "provider",
                 "reasoning", "span_attributes", "ttft")

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
        self.span_attributes: dict[str, Any] | None = None
        """The target's fixed span attributes, worked out on its first traced call."""


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

    def started(
        self, target: str, request: Request | EmbeddingRequest, *, backend: Backend | None = None
    ) -> CallRecord:
        """A try of ``target`` (``provider/model``) begins; ``backend`` (the one called) names the
        provider and server on the span."""
        series = self._series_for(target)
        record = CallRecord(series, time.perf_counter())
        if self.metrics:
            series.in_flight.inc()
        if self.tracing:
            record.span = self._start_span(series, request, backend)
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

    def embedded(self, record: CallRecord, batch: EmbeddingBatch, cost_usd: float | None) -> None:
        """An embedding batch succeeded: its input tokens, cost and texts, and the span's usage."""
        series = record.series
        if self.metrics:
            series.in_flight.dec()
            series.ok.inc()
            series.latency.observe(time.perf_counter() - record.started)
            series.input.inc(batch.input_tokens)
            if cost_usd:
                series.cost.inc(cost_usd)
            EMBEDDED.labels(series.provider, series.model).inc(len(batch.vectors))
        if record.span is not None:
            record.span.set_attribute("gen_ai.response.model", batch.model)
            record.span.set_attribute("gen_ai.usage.input_tokens", batch.input_tokens)
            record.span.end()

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

    def _start_span(self, series: _Series, request: Request | EmbeddingRequest, backend: Backend | None) -> Any:
        tracer = self._tracer_if_configured()
        if tracer is None:
            return None
        if series.span_attributes is None:
            series.span_attributes = target_attributes(series.provider, backend)
        from opentelemetry.trace import SpanKind

        if isinstance(request, EmbeddingRequest):
            model = request.model or series.model
            embedding: dict[str, Any] = {**series.span_attributes, "gen_ai.operation.name": "embeddings",
                                         "gen_ai.request.model": model}
            if request.dimensions is not None:
                embedding["gen_ai.embeddings.dimension.count"] = request.dimensions
            return tracer.start_span(f"embeddings {model}", kind=SpanKind.CLIENT, attributes=embedding)
        attributes: dict[str, Any] = {
            **series.span_attributes,
            "gen_ai.operation.name": "chat",
            # The request's model, not the series': past the series cap, several models share one.
            "gen_ai.request.model": request.model or series.model,
        }
        for name, value in (("max_tokens", request.max_tokens), ("temperature", request.temperature),
                            ("top_p", request.top_p), ("seed", request.seed)):
            if value is not None:
                attributes[f"gen_ai.request.{name}"] = value
        return tracer.start_span(
            f"chat {attributes['gen_ai.request.model']}", kind=SpanKind.CLIENT, attributes=attributes
        )

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


def target_attributes(provider_label: str, backend: Backend | None) -> dict[str, Any]:
    """The span attributes that name a target: provider (the conventions' value), backend, server."""
    from agentadapter.llm.backends import presets

    backend_type = presets.canonical_type(backend.config.type) if backend is not None else provider_label
    provider_name = GENAI_PROVIDER_NAMES.get(backend_type, backend_type)
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": provider_name,
        "gen_ai.system": provider_name,  # the attribute's name before the conventions renamed it
        "agentadapter.backend": backend.name if backend is not None else provider_label,
    }
    base_url = None
    if backend is not None:
        preset = presets.PRESETS.get(backend_type)
        base_url = backend.config.base_url or (preset.base_url if preset is not None else None)
    if base_url:
        try:
            parts = urlsplit(base_url)
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        except ValueError:
            return attributes  # a malformed URL fails the call itself; the span just names no server
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            if port is not None:
                attributes["server.port"] = port
    return attributes
