"""Runs paused for human approval: what a paused run keeps, and how it is resumed.

An agent whose tool needs a human's approval pauses (:class:`~agentadapter.agents.result.AgentResult`
with status ``paused``). Inside a run, the engine turns that into :class:`StepPaused`, and the run
ends its current execution with status ``paused``: a ``run_paused`` event names the pending calls,
and ``RunResult.details["paused"]`` keeps everything needed to go on - the paused step's key and
record, the agent's resumable state, the outcomes of the steps completed before it, and the last
event seq - as JSON, so a store can keep it and another process can resume it.

:class:`RunResume` is that record plus a decision per pending call; passed as
``RunOptions(resume=...)`` with the same agents and strategy, the run is executed again: steps
completed before the pause are settled from their recorded outcomes (the strategy takes the same
path, as a replay does), the paused step continues from the agent's state with the decisions, and
later steps run as usual. Its events continue after the paused run's (``run_resumed`` first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentadapter.orchestrator.errors import AgentPausedError
from agentadapter.orchestrator.result import AgentRunResult
from agentadapter.orchestrator.steps import StepOutcome

if TYPE_CHECKING:
    from agentadapter.agents.result import AgentResult
    from agentadapter.orchestrator.result import RunResult

__all__ = ["RunResume", "StepPaused", "pause_details", "pending_calls"]


class StepPaused(AgentPausedError):
    """An agent step paused for approval; the run ends this execution as ``paused`` (it is not a failure)."""

    def __init__(self, message: str, *, agent: str, pending: list[dict[str, Any]], state: dict[str, Any],
                 result: AgentResult | None = None) -> None:
        super().__init__(message)
        self.agent = agent
        """The agent that paused (after handoffs)."""
        self.pending = pending
        """The calls waiting for a decision (``ApprovalRequest.to_dict()`` each)."""
        self.state = state
        """The paused agent's resumable state (``RunState.to_dict()``)."""
        self.result = result
        """The paused agent's result, when it paused here (its usage so far is charged to the step)."""
        self.record: AgentRunResult | None = None
        """The step's record, set by the engine."""

    @classmethod
    def of(cls, result: AgentResult) -> StepPaused:
        """From the result of an agent that paused."""
        assert result.state is not None
        calls = ", ".join(f"{p.tool} ({p.call_id})" for p in result.pending_approvals)
        return cls(f"agent {result.agent!r} paused for human approval of {calls}", agent=result.agent,
                   pending=[p.to_dict() for p in result.pending_approvals], state=result.state.to_dict(),
                   result=result)

    def to_dict(self) -> dict[str, Any]:
        """What a step outcome keeps of the pause (a queue worker's step: the run pauses when it is replayed)."""
        return {"agent": self.agent, "pending": self.pending, "state": self.state}


def pause_details(paused: StepPaused, completed: list[AgentRunResult], last_seq: int) -> dict[str, Any]:
    """What ``RunResult.details["paused"]`` keeps of a paused run (JSON)."""
    record = paused.record
    assert record is not None
    return {
        "step_key": f"{record.step}:{record.phase}:{record.name}",
        "agent": paused.agent,
        "record": record.to_dict(),
        "pending": list(paused.pending),
        "state": dict(paused.state),
        "outcomes": {f"{r.step}:{r.phase}:{r.name}": StepOutcome("completed", r, text=r.text).to_dict()
                     for r in completed if r.status == "completed"},
        "last_seq": last_seq,
    }


def pending_calls(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pending tool calls a paused run's details name (``call_id``, ``tool``, ``arguments``, ``agent``)."""
    paused = details.get("paused") or {}
    return [dict(p) for p in paused.get("pending") or []]


@dataclass(frozen=True, slots=True)
class RunResume:
    """How to continue a paused run: its pause record and a decision (True: run it) per pending call."""

    step_key: str
    record: AgentRunResult
    """The paused step's record: its id (the step is recorded again under it), usage and attempts so far."""
    state: Mapping[str, Any]
    """The paused agent's state (``RunState.to_dict()``)."""
    approvals: Mapping[str, bool]
    outcomes: Mapping[str, StepOutcome] = field(default_factory=dict)
    """The steps completed before the pause, by step key."""
    last_seq: int = 0
    """The paused run's last event seq; the resumed run's events come after it."""
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Why a call was approved or rejected, by call id (shown in the ``run_resumed`` event)."""

    @classmethod
    def from_details(cls, details: Mapping[str, Any], approvals: Mapping[str, bool]) -> RunResume:
        """From a paused run's ``details`` (``RunResult.details`` or the stored run's) and the decisions.

        Raises ValueError naming what is wrong: the run is not paused, or a pending call has no decision.
        """
        paused = details.get("paused")
        if not isinstance(paused, Mapping):
            raise ValueError("the run is not paused for approval (its details have no 'paused' record)")
        pending = [str(p.get("call_id")) for p in paused.get("pending") or []]
        unknown = [c for c in approvals if c not in pending]
        if unknown:
            raise ValueError(f"tool call(s) {', '.join(unknown)} are not pending in this run; pending: "
                             f"{', '.join(pending) or 'none'}")
        missing = [c for c in pending if c not in approvals]
        if missing:
            raise ValueError(f"no decision for pending tool call(s) {', '.join(missing)}; approve or reject each")
        record = StepOutcome.from_dict({"status": "completed", "record": paused["record"]}).record
        assert record is not None
        outcomes = {str(k): StepOutcome.from_dict(v) for k, v in dict(paused.get("outcomes") or {}).items()}
        return cls(str(paused["step_key"]), record, dict(paused["state"]),
                   {str(k): bool(v) for k, v in approvals.items()}, outcomes, int(paused.get("last_seq") or 0))

    @classmethod
    def from_result(cls, result: RunResult, approvals: Mapping[str, bool]) -> RunResume:
        """From a paused ``RunResult`` (a library run) and the decisions."""
        return cls.from_details(result.details, approvals)
