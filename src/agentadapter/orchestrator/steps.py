"""The step-execution seam: what a run asks of whoever executes its agent steps, and what it gets back.

Every strategy is built from one operation, "run agent ``name`` once on this input". The run's
engine turns each such call into a :class:`StepRequest` - the agent, the step's number and phase,
its input and history, what the run had spent before it - and either runs it itself (inline, the
default) or hands it to a :class:`StepExecutor`. An executor answers with the step's
:class:`StepOutcome` (completed, failed or cancelled, with the agent's record), which the engine
settles exactly as if it had run the step: the record joins the run, its usage and cost are
charged, a failure raises what an inline failure raises. An executor that has no outcome yet and
will not wait for one raises :class:`StepsPending` naming the steps the run is blocked on: that is
how a run is replayed from recorded steps (:func:`agentadapter.orchestrator.execution.replay`)
without waiting on anything.

Requests and outcomes have a JSON form (:meth:`StepRequest.to_dict`, :meth:`StepOutcome.to_dict`),
so a queue can carry them and a store can keep them. A step's :attr:`StepRequest.key`
(``"<step>:<phase>:<agent>"``) is deterministic: replaying the same outcomes takes the same path
and asks for the same keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from agentadapter.agents.context import AgentInput
from agentadapter.llm.messages import Message, Usage, coerce_messages
from agentadapter.orchestrator.result import AgentRunResult

__all__ = ["StepExecutor", "StepOutcome", "StepOutcomeStatus", "StepRequest", "StepsPending"]

StepOutcomeStatus: TypeAlias = Literal["completed", "failed", "cancelled", "paused"]


@dataclass(frozen=True, slots=True)
class StepRequest:
    """One agent step a run asks for: run ``name`` once on ``input`` after ``history``."""

    name: str
    step: int
    """1-based number of the step in the run (what ``limits.max_steps`` counts)."""
    phase: str = "run"
    input: AgentInput = ""
    history: tuple[Message, ...] = ()
    via: str | None = None
    """Why the strategy chose this agent (``start``, ``after <agent>``, ``route ...``), for its events."""
    cost_usd: float = 0.0
    """What the run had spent when it asked for the step (the agent may spend what is left of the cap)."""

    @property
    def key(self) -> str:
        """``"<step>:<phase>:<agent>"``: unique in a run, and the same when the run is replayed."""
        return f"{self.step}:{self.phase}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON (messages as their dicts)."""
        data = self.input if isinstance(self.input, str) else [m.to_dict() for m in coerce_messages(self.input)]
        return {
            "name": self.name, "step": self.step, "phase": self.phase, "via": self.via, "input": data,
            "history": [m.to_dict() for m in self.history], "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRequest:
        """The request :meth:`to_dict` wrote."""
        raw = data.get("input")
        history = data.get("history") or []
        return cls(
            name=str(data["name"]), step=int(data["step"]), phase=str(data.get("phase") or "run"),
            input=raw if isinstance(raw, str) else coerce_messages(raw or []),
            history=tuple(coerce_messages(history)) if history else (), via=data.get("via"),
            cost_usd=float(data.get("cost_usd") or 0.0),
        )


@dataclass(slots=True)
class StepOutcome:
    """How a step ended: its status, the agent's record and, unless it completed, the error."""

    status: StepOutcomeStatus
    record: AgentRunResult | None = None
    """The agent's record (None when the step never started: its agent could not even be built)."""
    error: dict[str, Any] | None = None
    """``{type, message}`` of a failed or cancelled step (the agent's own error, not a wrapper)."""
    limit: dict[str, Any] | None = None
    """``{limit, value, used}`` when a run limit refused or stopped the step (it fails the run)."""
    text: str = field(default="")
    """The output as text (the record's)."""
    paused: dict[str, Any] | None = None
    """``{agent, pending, state}`` of a step that paused for human approval (status ``paused``)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "record": self.record.to_dict() if self.record else {},
                                "text": self.text}
        if self.error is not None:
            data["error"] = self.error
        if self.limit is not None:
            data["limit"] = self.limit
        if self.paused is not None:
            data["paused"] = self.paused
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOutcome:
        """The outcome :meth:`to_dict` wrote."""
        status = data.get("status")
        if status not in ("completed", "failed", "cancelled", "paused"):
            raise ValueError(f"a step outcome's status is completed, failed, cancelled or paused, not {status!r}")
        record = data.get("record") or None
        return cls(status=status, record=_record(record) if record else None,
                   error=dict(data["error"]) if data.get("error") else None,
                   limit=dict(data["limit"]) if data.get("limit") else None, text=str(data.get("text") or ""),
                   paused=dict(data["paused"]) if data.get("paused") else None)


def _record(data: Mapping[str, Any]) -> AgentRunResult:
    usage = {k: v for k, v in dict(data.get("usage") or {}).items() if k != "total_tokens"}
    record = AgentRunResult(
        str(data.get("name") or ""), int(data.get("step") or 0), str(data.get("phase") or "run"),
        status=data.get("status", "failed"), input=str(data.get("input") or ""), output=data.get("output"),
        text=str(data.get("text") or ""), error=data.get("error"), usage=Usage(**usage),
        cost_usd=float(data.get("cost_usd") or 0.0), attempts=int(data.get("attempts") or 0),
        started_at=float(data.get("started_at") or 0.0), finished_at=data.get("finished_at"),
        duration_ms=float(data.get("duration_ms") or 0.0), model=data.get("model"),
        answered_by=data.get("answered_by"),
    )
    if data.get("id"):
        record.id = str(data["id"])
    return record


class StepsPending(Exception):
    """The run cannot go on until these steps have outcomes (raised by an executor that does not wait).

    Strategies let it through: a parallel group raises it once every branch has either settled or
    is blocked, with the requests of all its blocked branches.
    """

    def __init__(self, requests: Iterable[StepRequest]) -> None:
        self.requests = list(requests)
        keys = ", ".join(r.key for r in self.requests) or "none"
        super().__init__(f"the run waits on steps without an outcome: {keys}")


@runtime_checkable
class StepExecutor(Protocol):
    """Executes a run's agent steps somewhere other than inline (a queue, a recorded history).

    ``run_step`` returns the step's outcome once it exists, or raises :class:`StepsPending` to stop
    the run where it is (a replay). The engine charges and records the outcome; the executor does
    not touch the run.
    """

    async def run_step(self, request: StepRequest) -> StepOutcome: ...
