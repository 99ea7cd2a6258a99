"""Typed spans for agent runs: agent, generation, tool, handoff and guardrail.

A span is a timed record with a typed payload (:class:`AgentSpanData`, :class:`GenerationSpanData`,
:class:`ToolSpanData`, :class:`HandoffSpanData`, :class:`GuardrailSpanData`), a trace id (the run
id) and a parent, found through a context variable so that concurrent tool calls nest correctly.
Finished spans go to the registered :class:`TracingProcessor` s; with none registered (the default)
every ``*_span()`` helper returns one shared no-op span, so tracing costs a function call and a
truthiness check. :class:`SpanCollector` keeps spans in memory (tests, debugging); an OpenTelemetry
exporter can be added later as just another processor. The LLM adapter below knows nothing about
these spans; the agent loop opens a generation span around each model call it makes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeAlias, TypeVar

__all__ = [
    "AgentSpanData",
    "GenerationSpanData",
    "GuardrailSpanData",
    "HandoffSpanData",
    "NoOpSpan",
    "Span",
    "SpanCollector",
    "SpanData",
    "ToolSpanData",
    "TracingProcessor",
    "add_trace_processor",
    "agent_span",
    "current_span",
    "generation_span",
    "get_trace_processors",
    "guardrail_span",
    "handoff_span",
    "set_trace_processors",
    "tool_span",
]

logger = logging.getLogger("agentadapter.agents.tracing")


# ------------------------------------------------------------------------------------- span data


@dataclass(slots=True)
class AgentSpanData:
    """One agent's turn at the run (a handoff ends it and opens the receiver's)."""

    name: str
    agent_type: str
    tools: list[str] = field(default_factory=list)
    handoffs: list[str] = field(default_factory=list)
    output_type: str | None = None
    status: str | None = None
    kind: Literal["agent"] = "agent"


@dataclass(slots=True)
class GenerationSpanData:
    """One model call made by an agent."""

    agent: str
    model: str
    """The model id the agent asked for (an id, an alias, or a route)."""
    backend: str | None = None
    """The backend that answered."""
    response_model: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    kind: Literal["generation"] = "generation"


@dataclass(slots=True)
class ToolSpanData:
    """One tool call."""

    name: str
    call_id: str
    agent: str
    arguments: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    is_error: bool = False
    kind: Literal["tool"] = "tool"


@dataclass(slots=True)
class HandoffSpanData:
    """A transfer of the conversation from one agent to another."""

    from_agent: str
    to_agent: str
    kind: Literal["handoff"] = "handoff"


@dataclass(slots=True)
class GuardrailSpanData:
    """One guardrail check."""

    name: str
    guardrail_kind: Literal["input", "output"]
    agent: str
    triggered: bool = False
    kind: Literal["guardrail"] = "guardrail"


SpanData: TypeAlias = AgentSpanData | GenerationSpanData | ToolSpanData | HandoffSpanData | GuardrailSpanData
D = TypeVar("D", AgentSpanData, GenerationSpanData, ToolSpanData, HandoffSpanData, GuardrailSpanData)


# ------------------------------------------------------------------------------------------ spans

_CURRENT: ContextVar[Span[Any] | None] = ContextVar("agentadapter_current_span", default=None)


class Span(Generic[D]):
    """A timed, typed record. Use it as a context manager; an exception marks it as failed."""

    __slots__ = ("_token", "data", "ended_at", "error", "parent_id", "span_id", "started_at", "trace_id")

    recording = True
    """False for :class:`NoOpSpan`: callers skip filling in data nobody will read."""

    def __init__(self, data: D, trace_id: str | None) -> None:
        parent = _CURRENT.get()
        self.data: D = data
        self.span_id: str = uuid.uuid4().hex[:16]
        self.parent_id: str | None = parent.span_id if parent is not None else None
        inherited = parent.trace_id if parent is not None and trace_id is None else None
        self.trace_id: str = inherited or trace_id or uuid.uuid4().hex
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.error: dict[str, str] | None = None
        self._token: Token[Span[Any] | None] | None = None

    def start(self) -> Span[D]:
        """Start timing, make this the current span, and tell the processors."""
        self.started_at = time.time()
        self._token = _CURRENT.set(self)
        for processor in _PROCESSORS:
            _safely(processor.on_span_start, self)
        return self

    def end(self) -> None:
        """Stop timing, restore the previous current span, and hand the span to the processors."""
        if self.ended_at is not None:
            return
        self.ended_at = time.time()
        if self._token is not None:
            try:
                _CURRENT.reset(self._token)
            except ValueError:
                # Ended in another context than it started in (a task finished it): just drop it.
                pass
            self._token = None
        for processor in _PROCESSORS:
            _safely(processor.on_span_end, self)

    def set_error(self, error: BaseException | str) -> None:
        """Mark the span as failed."""
        if isinstance(error, BaseException):
            self.error = {"type": type(error).__name__, "message": str(error)}
        else:
            self.error = {"type": "error", "message": error}

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at) * 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "error": self.error,
            "data": asdict(self.data),
        }

    def __enter__(self) -> Span[D]:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and self.error is None:
            self.set_error(exc)
        self.end()

    def __repr__(self) -> str:
        return f"Span({self.data.kind}, span_id={self.span_id!r}, parent_id={self.parent_id!r})"


class NoOpSpan(Span[Any]):
    """What the helpers return when no processor is registered: records nothing."""

    __slots__ = ()
    recording = False

    def __init__(self) -> None:  # no super().__init__: nothing to record
        self.data = None
        self.span_id = ""
        self.parent_id = None
        self.trace_id = ""
        self.started_at = None
        self.ended_at = None
        self.error = None
        self._token = None

    def start(self) -> NoOpSpan:
        return self

    def end(self) -> None:
        return None

    def set_error(self, error: BaseException | str) -> None:
        return None

    def __enter__(self) -> NoOpSpan:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        return None


_NOOP = NoOpSpan()


def current_span() -> Span[Any] | None:
    """The span open in this task, if any."""
    return _CURRENT.get()


# ------------------------------------------------------------------------------------ processors


class TracingProcessor(Protocol):
    """Receives spans as they start and end (an exporter, a collector, a logger)."""

    def on_span_start(self, span: Span[Any]) -> None: ...

    def on_span_end(self, span: Span[Any]) -> None: ...

    def shutdown(self) -> None: ...

    def force_flush(self) -> None: ...


class SpanCollector:
    """A processor that keeps finished spans in memory, in the order they ended."""

    def __init__(self) -> None:
        self.spans: list[Span[Any]] = []

    def on_span_start(self, span: Span[Any]) -> None:
        return None

    def on_span_end(self, span: Span[Any]) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self) -> None:
        return None

    def of_kind(self, kind: str) -> list[Span[Any]]:
        """The finished spans whose data has this ``kind`` (``agent``, ``tool``, ...)."""
        return [span for span in self.spans if span.data.kind == kind]

    def clear(self) -> None:
        self.spans.clear()


# A tuple, replaced whole on change: readers iterate it without a lock.
_PROCESSORS: tuple[TracingProcessor, ...] = ()


def add_trace_processor(processor: TracingProcessor) -> None:
    """Add a processor; every span from now on reaches it."""
    global _PROCESSORS
    _PROCESSORS = (*_PROCESSORS, processor)


def set_trace_processors(processors: Iterable[TracingProcessor]) -> None:
    """Replace the processors (an empty list turns tracing off)."""
    global _PROCESSORS
    _PROCESSORS = tuple(processors)


def get_trace_processors() -> tuple[TracingProcessor, ...]:
    return _PROCESSORS


def _safely(hook: Any, span: Span[Any]) -> None:
    # A broken exporter must never break an agent run: log it and carry on.
    try:
        hook(span)
    except Exception:
        logger.exception("trace processor %r failed on %r", hook, span)


# --------------------------------------------------------------------------------------- helpers
# Each helper returns the shared no-op span when nothing listens (or the run turned tracing off),
# so the span data is never even built.


def agent_span(
    name: str, agent_type: str, *, trace_id: str | None = None, enabled: bool = True,
    tools: list[str] | None = None, handoffs: list[str] | None = None, output_type: str | None = None,
) -> Span[Any]:
    if not (_PROCESSORS and enabled):
        return _NOOP
    data = AgentSpanData(name, agent_type, list(tools or ()), list(handoffs or ()), output_type)
    return Span(data, trace_id)


def generation_span(agent: str, model: str, *, trace_id: str | None = None, enabled: bool = True) -> Span[Any]:
    if not (_PROCESSORS and enabled):
        return _NOOP
    return Span(GenerationSpanData(agent, model), trace_id)


def tool_span(
    name: str, call_id: str, agent: str, arguments: dict[str, Any], *, trace_id: str | None = None,
    enabled: bool = True,
) -> Span[Any]:
    if not (_PROCESSORS and enabled):
        return _NOOP
    return Span(ToolSpanData(name, call_id, agent, dict(arguments)), trace_id)


def handoff_span(from_agent: str, to_agent: str, *, trace_id: str | None = None, enabled: bool = True) -> Span[Any]:
    if not (_PROCESSORS and enabled):
        return _NOOP
    return Span(HandoffSpanData(from_agent, to_agent), trace_id)


def guardrail_span(
    name: str, kind: Literal["input", "output"], agent: str, *, trace_id: str | None = None, enabled: bool = True,
) -> Span[Any]:
    if not (_PROCESSORS and enabled):
        return _NOOP
    return Span(GuardrailSpanData(name, kind, agent), trace_id)
