"""What a run returns (:class:`AgentResult`) and what a paused run keeps (:class:`RunState`).

``AgentResult`` carries the same normalized fields whichever agent type or transport produced it:
the output (text or a typed object), the conversation, every tool call, handoff and guardrail check,
usage and cost summed over all turns, wall time, and the backend and model that gave the final
answer. ``RunState`` is the loop's whole state between turns; a run paused for human approval
returns it inside the result, and it round-trips through JSON (:meth:`RunState.to_json`) so a
service can store it and resume the run in another process.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, ToolResultPart, Usage, coerce_messages, part_from_dict, part_to_dict

__all__ = [
    "AgentResult",
    "ApprovalRequest",
    "GuardrailRecord",
    "HandoffRecord",
    "RunState",
    "RunStatus",
    "ToolCallRecord",
    "to_jsonable",
]

RunStatus: TypeAlias = Literal["completed", "paused", "failed"]
ToolOutcome: TypeAlias = Literal[
    "ok", "error", "timeout", "invalid_arguments", "rejected", "unknown_tool", "skipped", "handoff", "output"
]


def to_jsonable(value: Any) -> Any:
    """A JSON-safe rendering of an output or guardrail info (pydantic models, dataclasses, ...)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Message):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def _usage_from_dict(data: Mapping[str, Any] | None) -> Usage:
    names = {f.name for f in dataclasses.fields(Usage)}
    return Usage(**{k: int(v) for k, v in (data or {}).items() if k in names})


# ----------------------------------------------------------------------------------------- records


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of the run and how it ended."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    agent: str
    """The agent whose model asked for the call."""
    output: str = ""
    """What went back to the model (the result, or the error text)."""
    outcome: ToolOutcome = "ok"
    duration_ms: float = 0.0
    approved: bool | None = None
    """True/False when a human decided on the call; None when it needed no approval."""

    @property
    def is_error(self) -> bool:
        return self.outcome not in ("ok", "handoff", "output")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arguments"] = to_jsonable(self.arguments)
        data["is_error"] = self.is_error
        data["duration_ms"] = round(self.duration_ms, 3)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCallRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class HandoffRecord:
    """A transfer of the conversation to another agent."""

    from_agent: str
    to_agent: str
    call_id: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class GuardrailRecord:
    """One guardrail check and its verdict."""

    name: str
    kind: Literal["input", "output"]
    agent: str
    tripwire_triggered: bool
    info: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "agent": self.agent,
            "tripwire_triggered": self.tripwire_triggered,
            "info": to_jsonable(self.info),
        }


@dataclass(slots=True)
class ApprovalRequest:
    """A tool call waiting for a human's yes or no."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    agent: str

    def to_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "tool": self.tool, "arguments": to_jsonable(self.arguments),
                "agent": self.agent}


# ----------------------------------------------------------------------------------------- state


@dataclass
class RunState:
    """The loop's state between turns: enough to resume a paused run, in this process or another."""

    run_id: str
    agent: str
    """The agent whose turn it is (after handoffs, not necessarily the one the run started with)."""
    messages: list[Message] = field(default_factory=list)
    """The conversation so far, without system prompts (each agent adds its own instructions)."""
    history_length: int = 0
    """How many of ``messages`` were given as history before this run's input."""
    input_length: int = 0
    """How many of ``messages`` came from the caller (history and input) rather than the run."""
    turn: int = 0
    """Model calls made so far."""
    max_turns: int = 10
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    elapsed_ms: float = 0.0
    """Wall time spent running, summed over the stretches before and after each pause."""
    repairs: int = 0
    """Structured answers that failed validation and went back to the model."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    handoffs: list[HandoffRecord] = field(default_factory=list)
    guardrails: list[GuardrailRecord] = field(default_factory=list)
    pending: list[ApprovalRequest] = field(default_factory=list)
    """Tool calls of the last turn waiting for approval."""
    done_results: list[ToolResultPart] = field(default_factory=list)
    """Results of the last turn's calls that ran before the pause (sent with the approved ones)."""
    input_checked: bool = False
    """Input guardrails have run (they run once per run, not again on resume)."""
    backend: str | None = None
    model: str | None = None

    VERSION = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "run_id": self.run_id,
            "agent": self.agent,
            "messages": [m.to_dict() for m in self.messages],
            "history_length": self.history_length,
            "input_length": self.input_length,
            "turn": self.turn,
            "max_turns": self.max_turns,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "elapsed_ms": self.elapsed_ms,
            "repairs": self.repairs,
            "tool_calls": [r.to_dict() for r in self.tool_calls],
            "handoffs": [h.to_dict() for h in self.handoffs],
            "guardrails": [g.to_dict() for g in self.guardrails],
            "pending": [p.to_dict() for p in self.pending],
            "done_results": [part_to_dict(p) for p in self.done_results],
            "input_checked": self.input_checked,
            "backend": self.backend,
            "model": self.model,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunState:
        version = data.get("version")
        if version != cls.VERSION:
            raise InvalidRequestError(
                f"this run state has version {version!r}; this AgentAdapter reads version {cls.VERSION}. "
                "Resume it with the version that paused it"
            )
        try:
            results = [part_from_dict(p) for p in data.get("done_results", [])]
            return cls(
                run_id=str(data["run_id"]),
                agent=str(data["agent"]),
                messages=coerce_messages(data["messages"]) if data.get("messages") else [],
                history_length=int(data.get("history_length", 0)),
                input_length=int(data.get("input_length", 0)),
                turn=int(data.get("turn", 0)),
                max_turns=int(data.get("max_turns", 10)),
                usage=_usage_from_dict(data.get("usage")),
                cost_usd=float(data.get("cost_usd", 0.0)),
                elapsed_ms=float(data.get("elapsed_ms", 0.0)),
                repairs=int(data.get("repairs", 0)),
                tool_calls=[ToolCallRecord.from_dict(r) for r in data.get("tool_calls", [])],
                handoffs=[HandoffRecord(**h) for h in data.get("handoffs", [])],
                guardrails=[GuardrailRecord(**g) for g in data.get("guardrails", [])],
                pending=[ApprovalRequest(**p) for p in data.get("pending", [])],
                done_results=[p for p in results if isinstance(p, ToolResultPart)],
                input_checked=bool(data.get("input_checked", False)),
                backend=data.get("backend"),
                model=data.get("model"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestError(f"this run state is malformed ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> RunState:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidRequestError(f"a run state must be JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidRequestError("a run state must be a JSON object")
        return cls.from_dict(data)


# ----------------------------------------------------------------------------------------- result


@dataclass
class AgentResult:
    """The outcome of a run, the same shape whichever agent, backend or transport produced it."""

    output: Any = None
    """The final answer: text, or the validated object when the agent has an ``output_type``."""
    text: str = ""
    """The final answer's raw text (the JSON text for a typed answer)."""
    agent: str = ""
    """The agent that gave the final answer (after handoffs, not necessarily the one started)."""
    run_id: str = ""
    status: RunStatus = "completed"
    """``completed``; ``paused`` with ``pending_approvals`` and a resumable ``state``; ``failed`` on the
    partial result an error carries (``error.result``)."""
    messages: list[Message] = field(default_factory=list)
    """The conversation as the last agent saw it, without system prompts."""
    new_messages_start: int = 0
    """Index in ``messages`` of the first message this run produced."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    handoffs: list[HandoffRecord] = field(default_factory=list)
    guardrails: list[GuardrailRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    """Tokens summed over every model call of the run (handoffs and guardrail classifiers included)."""
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    """Wall time of the run (paused time excluded)."""
    backend: str | None = None
    """The backend that gave the final answer (``openai``, ``anthropic``, a named endpoint, ...)."""
    model: str | None = None
    """The model that gave the final answer, as the backend reported it."""
    turns: int = 0
    pending_approvals: list[ApprovalRequest] = field(default_factory=list)
    state: RunState | None = None
    """The resumable state of a paused run (None once completed)."""

    @property
    def new_messages(self) -> list[Message]:
        """The messages this run added to the conversation."""
        return self.messages[self.new_messages_start :]

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (what the CLI prints and the service stores)."""
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "status": self.status,
            "output": to_jsonable(self.output),
            "text": self.text,
            "messages": [m.to_dict() for m in self.messages],
            "tool_calls": [r.to_dict() for r in self.tool_calls],
            "handoffs": [h.to_dict() for h in self.handoffs],
            "guardrails": [g.to_dict() for g in self.guardrails],
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "latency_ms": round(self.latency_ms, 3),
            "backend": self.backend,
            "model": self.model,
            "turns": self.turns,
            "pending_approvals": [p.to_dict() for p in self.pending_approvals],
            "state": self.state.to_dict() if self.state is not None else None,
        }
