"""Audit records for tools that act on the world: who ran what, how it ended, what it printed.

Every command the ``shell`` tool is asked to run leaves one :class:`ToolAuditRecord` (refused
ones too), and ``http_fetch`` records the URLs it fetched or refused. Records go to a
:class:`ToolAudit` sink: an object with one async method, ``record``. :class:`InMemoryToolAudit`
keeps the latest records in memory (the default, and what tests read); the service's database
implements the same interface to keep them for good. Each record is also logged at INFO on the
``agentadapter.tools.audit`` logger.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

from agentadapter.observability.logging import get_logger

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext

__all__ = [
    "AuditOutcome",
    "InMemoryToolAudit",
    "ToolAudit",
    "ToolAuditRecord",
    "caller_of",
    "default_tool_audit",
]

logger = get_logger("agentadapter.tools.audit")

AuditOutcome: TypeAlias = Literal["ok", "refused", "killed", "error"]


@dataclass(slots=True)
class ToolAuditRecord:
    """One use of a tool: who asked, what for, and how it ended."""

    tool: str
    """The tool's name (``shell``, ``http_fetch``, ...)."""
    action: str
    """What was asked, as given: the command line, the URL."""
    outcome: AuditOutcome
    """``ok`` (it ran; a command may still have exited non-zero), ``refused`` (never started),
    ``killed`` (stopped by a limit), ``error`` (it could not run)."""
    agent: str = ""
    """The agent whose model made the call (empty outside an agent run)."""
    run_id: str = ""
    exit_code: int | None = None
    """A command's exit status; negative when a signal ended it; None when it never ran."""
    duration_ms: float = 0.0
    output: str = ""
    """What it printed or returned, truncated (the cap is stated in the text)."""
    reason: str = ""
    """Why it was refused or killed (``not_allowed``, ``path_escape``, ``wall_time``, ...)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Tool-specific facts: the argv, the sandbox's isolation, the final URL, ..."""
    started_at: float = field(default_factory=time.time)
    """Unix time when the call started."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ToolAudit(Protocol):
    """Where audit records go. Implementations must not raise for a record they cannot keep."""

    async def record(self, entry: ToolAuditRecord) -> None: ...


class InMemoryToolAudit:
    """The latest ``max_records`` records, in order, in memory (thread-safe)."""

    def __init__(self, max_records: int = 10_000) -> None:
        self._records: collections.deque[ToolAuditRecord] = collections.deque(maxlen=max_records)
        self._lock = threading.Lock()

    async def record(self, entry: ToolAuditRecord) -> None:
        with self._lock:
            self._records.append(entry)

    @property
    def records(self) -> list[ToolAuditRecord]:
        with self._lock:
            return list(self._records)

    def find(self, *, tool: str | None = None, run_id: str | None = None,
             outcome: AuditOutcome | None = None) -> list[ToolAuditRecord]:
        """The records matching every filter given."""
        return [r for r in self.records
                if (tool is None or r.tool == tool) and (run_id is None or r.run_id == run_id)
                and (outcome is None or r.outcome == outcome)]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __iter__(self) -> Iterator[ToolAuditRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


_DEFAULT: InMemoryToolAudit | None = None
_DEFAULT_LOCK = threading.Lock()


def default_tool_audit() -> InMemoryToolAudit:
    """The process-wide in-memory audit the built-in tools use unless given another sink."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = InMemoryToolAudit()
        return _DEFAULT


def caller_of(context: AgentContext | None) -> tuple[str, str]:
    """``(agent name, run id)`` of a tool call's context; empty strings outside a run."""
    if context is None:
        return "", ""
    try:
        return context.agent_name, context.run_id
    except Exception:  # a stand-in context without an agent
        return "", str(getattr(context, "run_id", "") or "")


async def write_audit(sink: ToolAudit | None, entry: ToolAuditRecord) -> None:
    """Log the record and hand it to ``sink``; a failing sink is logged, never raised to the model."""
    logger.info(
        "tool audit: %s %s -> %s", entry.tool, entry.outcome, entry.reason or entry.exit_code,
        extra={"tool": entry.tool, "agent": entry.agent, "run_id": entry.run_id, "outcome": entry.outcome,
               "exit_code": entry.exit_code, "duration_ms": round(entry.duration_ms, 3), "reason": entry.reason},
    )
    if sink is None:
        return
    try:
        await sink.record(entry)
    except Exception:
        logger.exception("the tool audit sink %s failed to keep a record of %s", type(sink).__name__, entry.tool)
