"""Prometheus metrics of the agent layer, in prometheus-client's default registry.

Counters and histograms for runs, turns, tool calls, handoffs, guardrail trips and cost. Labels
are bounded on purpose: agents are labelled by ``agent_type`` (``llm``, ``online``, ``local`` or a
custom class's type), never by name, because a service creates agents from user data and an
unbounded label would grow the registry without limit; tools are labelled by name, which the tool
registry bounds. Every name starts with ``agentadapter_agent_``. The bus's metrics live in
:mod:`agentadapter.observability.metrics`; these are updated a few times per turn, where
prometheus-client's per-update lock costs well under a microsecond against a model call.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "AGENT_COST_USD",
    "AGENT_RUNS",
    "AGENT_RUN_SECONDS",
    "AGENT_TURNS",
    "GUARDRAIL_TRIPS",
    "HANDOFFS",
    "TOOL_CALLS",
    "TOOL_SECONDS",
    "record_run",
    "record_tool_call",
    "record_turn",
]

AGENT_RUNS = Counter(
    "agentadapter_agent_runs_total",
    "Agent runs that ended, by agent type and status (completed, paused, failed).",
    ["agent_type", "status"],
)
AGENT_RUN_SECONDS = Histogram(
    "agentadapter_agent_run_duration_seconds",
    "Wall time of agent runs, by agent type.",
    ["agent_type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)
AGENT_TURNS = Counter("agentadapter_agent_turns_total", "Model calls made by agents, by agent type.", ["agent_type"])
AGENT_COST_USD = Counter(
    "agentadapter_agent_cost_usd_total", "Model cost spent by agents (USD), by agent type.", ["agent_type"]
)
TOOL_CALLS = Counter(
    "agentadapter_agent_tool_calls_total",
    "Tool calls made by agents, by tool and outcome (ok, error, timeout, invalid_arguments, rejected, "
    "unknown_tool, skipped).",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    "agentadapter_agent_tool_duration_seconds",
    "Time spent in tool calls, by tool.",
    ["tool"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
HANDOFFS = Counter("agentadapter_agent_handoffs_total", "Handoffs from one agent to another.")
GUARDRAIL_TRIPS = Counter(
    "agentadapter_agent_guardrail_trips_total", "Guardrails whose tripwire stopped a run, by kind.", ["kind"]
)


def record_turn(agent_type: str, cost_usd: float | None) -> None:
    AGENT_TURNS.labels(agent_type).inc()
    if cost_usd:
        AGENT_COST_USD.labels(agent_type).inc(cost_usd)


def record_tool_call(tool: str, outcome: str, seconds: float) -> None:
    TOOL_CALLS.labels(tool, outcome).inc()
    TOOL_SECONDS.labels(tool).observe(seconds)


def record_run(agent_type: str, status: str, seconds: float) -> None:
    AGENT_RUNS.labels(agent_type, status).inc()
    AGENT_RUN_SECONDS.labels(agent_type).observe(seconds)
