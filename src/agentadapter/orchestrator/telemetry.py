"""Spans and Prometheus metrics per run and per step.

Two span kinds join the agent layer's (agent, generation, tool, handoff, guardrail): ``run`` around
a whole run and ``step`` around each agent step, so a trace reads run > step > agent > generation /
tool. They go to the same processors (:mod:`agentadapter.agents.tracing`) and cost nothing when
none is registered. The metrics are labelled by strategy, status and phase - bounded sets - never by
agent name or run id; every name starts with ``agentadapter_orchestrator_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from prometheus_client import Counter, Histogram

from agentadapter.agents import tracing

__all__ = [
    "RUNS",
    "RUN_SECONDS",
    "STEPS",
    "STEP_RETRIES",
    "STEP_SECONDS",
    "RunSpanData",
    "StepSpanData",
    "record_run",
    "record_step",
    "run_span",
    "step_span",
]


@dataclass(slots=True)
class RunSpanData:
    """A whole orchestrated run."""

    strategy: str
    workflow: str | None = None
    agents: int = 0
    status: str | None = None
    steps: int = 0
    cost_usd: float = 0.0
    kind: Literal["run"] = "run"


@dataclass(slots=True)
class StepSpanData:
    """One agent step of a run (its retries included)."""

    agent: str
    step: int
    phase: str
    status: str | None = None
    attempts: int = 0
    kind: Literal["step"] = "step"


def run_span(strategy: str, workflow: str | None, agents: int, *, trace_id: str, enabled: bool) -> tracing.Span[Any]:
    if not (tracing.get_trace_processors() and enabled):
        return tracing.NoOpSpan()
    # The agent layer's Span is generic over its own data classes; ours are shaped the same way.
    return tracing.Span(cast(Any, RunSpanData(strategy, workflow, agents)), trace_id)


def step_span(agent: str, step: int, phase: str, *, trace_id: str, enabled: bool) -> tracing.Span[Any]:
    if not (tracing.get_trace_processors() and enabled):
        return tracing.NoOpSpan()
    return tracing.Span(cast(Any, StepSpanData(agent, step, phase)), trace_id)


RUNS = Counter(
    "agentadapter_orchestrator_runs_total", "Orchestrated runs that ended, by strategy and status.",
    ["strategy", "status"],
)
RUN_SECONDS = Histogram(
    "agentadapter_orchestrator_run_duration_seconds", "Wall time of orchestrated runs, by strategy.", ["strategy"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0),
)
STEPS = Counter(
    "agentadapter_orchestrator_steps_total", "Agent steps that ended, by phase and status.", ["phase", "status"],
)
STEP_SECONDS = Histogram(
    "agentadapter_orchestrator_step_duration_seconds", "Wall time of agent steps (retries included), by phase.",
    ["phase"], buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
STEP_RETRIES = Counter("agentadapter_orchestrator_step_retries_total", "Agent step attempts retried.")


def record_run(strategy: str, status: str, seconds: float) -> None:
    RUNS.labels(strategy, status).inc()
    RUN_SECONDS.labels(strategy).observe(seconds)


def record_step(phase: str, status: str, seconds: float) -> None:
    STEPS.labels(phase, status).inc()
    STEP_SECONDS.labels(phase).observe(seconds)
