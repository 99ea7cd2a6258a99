"""What a run returns (:class:`RunResult`) and what it records of each agent step (:class:`AgentRunResult`).

``RunResult`` is DESIGN.md's shape - ``run_id``, ``status``, ``output``, ``agents``, ``usage``,
``cost_usd``, ``duration_ms`` - plus the error of a failed run and where the run came from (strategy,
workflow, project). ``RunResult.to_dict()`` is what ``agentadapter run --json`` prints and what the
service returns. Each entry of ``agents`` is one agent step: an agent run once (with its retries),
so an agent that answers and then votes appears twice, each with its own usage and cost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from agentadapter.agents.result import to_jsonable
from agentadapter.llm.messages import Usage
from agentadapter.observability.redact import redact_text
from agentadapter.orchestrator.conditions import to_text

__all__ = ["AgentRunResult", "AgentRunStatus", "RunResult", "RunStatus", "error_info", "jsonable"]

RunStatus: TypeAlias = Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
AgentRunStatus: TypeAlias = Literal["running", "completed", "failed", "cancelled"]


def error_info(error: BaseException) -> dict[str, Any]:
    """An error as JSON: its class, its message and, for a run limit, which limit.

    This is where every failure of a run or a step becomes the dict that is stored, returned and
    sent in events, so the message is cleaned of secrets here too (a tool's or an agent's own error
    text can quote a key that no provider error carried).
    """
    message = redact_text(str(error)) or type(error).__name__
    info: dict[str, Any] = {"type": type(error).__name__, "message": message}
    limit = getattr(error, "limit", None)
    if isinstance(limit, str):
        info["limit"] = limit
    return info


def jsonable(value: Any) -> Any:
    """``value`` as JSON data for an event or a record; what has no JSON form becomes its text."""
    try:
        return to_jsonable(value)
    except (TypeError, ValueError):
        return to_text(value)


@dataclass(slots=True, eq=False)
class AgentRunResult:
    """One agent step of a run: who ran, in which step and phase, and how it ended."""

    name: str
    """The agent the step started (a handoff may have let another one answer: ``answered_by``)."""
    step: int
    """1-based position of the step in the run."""
    phase: str = "run"
    """What the step was for: ``run``, ``vote``, ``present``, ``judge``, ``route``, ``generate``, ``evaluate``."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: AgentRunStatus = "running"
    input: str = ""
    """The text the agent was given."""
    output: Any = None
    """The agent's output (text, or a validated object)."""
    text: str = ""
    """The output as text."""
    error: dict[str, Any] | None = None
    """``{type, message}`` of the last failure, for a failed or cancelled step."""
    usage: Usage = field(default_factory=Usage)
    """Tokens of every attempt (a failed attempt's tokens count too)."""
    cost_usd: float = 0.0
    attempts: int = 0
    started_at: float = 0.0
    """Unix time."""
    finished_at: float | None = None
    duration_ms: float = 0.0
    model: str | None = None
    answered_by: str | None = None
    """The agent that gave the answer, when a handoff moved the step to another agent."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "step": self.step,
            "phase": self.phase,
            "status": self.status,
            "input": self.input,
            "output": to_jsonable(self.output),
            "error": self.error,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": round(self.duration_ms, 3),
            "model": self.model,
            "answered_by": self.answered_by,
        }


@dataclass(slots=True, eq=False)
class RunResult:
    """The outcome of a run, whatever its strategy."""

    run_id: str
    status: RunStatus = "queued"
    output: Any = None
    """The run's answer: the last agent's output, the aggregate of a parallel group, the accepted draft."""
    text: str = ""
    """The output as text."""
    agents: list[AgentRunResult] = field(default_factory=list)
    """Every agent step, in the order they started."""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    duration_ms: float = 0.0
    error: dict[str, Any] | None = None
    """``{type, message[, limit]}`` when the run failed or was cancelled."""
    strategy: str = ""
    workflow: str | None = None
    project_id: str | None = None
    input: str = ""
    """The task's text."""
    started_at: float = 0.0
    """Unix time."""
    finished_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """What the strategy decided: votes and the winner, the judge's pick, the route taken, the
    loop's iterations and whether the evaluator accepted."""

    @property
    def steps(self) -> int:
        return len(self.agents)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def agent(self, name: str) -> AgentRunResult | None:
        """The last step of agent ``name``, if it ran."""
        return next((a for a in reversed(self.agents) if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (what ``agentadapter run --json`` prints and the service stores)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "output": to_jsonable(self.output),
            "agents": [a.to_dict() for a in self.agents],
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error,
            "strategy": self.strategy,
            "workflow": self.workflow,
            "project_id": self.project_id,
            "input": self.input,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "details": to_jsonable(self.details),
        }
