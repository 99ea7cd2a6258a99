"""Run events: the typed, numbered record of what happens in a run, and the log that hands them out.

A :class:`RunEvent` has a ``seq`` (monotonic per run, from 1), a ``type``, the ``run_id``, the
``agent`` it concerns (None for run-level events), a Unix timestamp ``ts`` and a JSON ``data`` dict.
The types, in the order a run produces them:

=================  =========================================================================
``run_started``    ``strategy``, ``agents``, ``input``, ``workflow``, ``project_id``
``agent_started``  ``step``, ``phase``, ``attempt``, ``via`` (why this agent: a route, a vote)
``token``          ``text``: a piece of an answer as it streams (never stored)
``tool_call``      ``call_id``, ``name``, ``arguments``
``tool_result``    ``call_id``, ``name``, ``content``, ``is_error``
``handoff``        ``from_agent``, ``to_agent``
``guardrail``      ``name``, ``kind``, ``tripwire_triggered``
``nested``         an event of a workflow run as this agent's step (or tool): ``workflow``, ``run_id``
                   and ``event`` (that run's event: ``seq``, ``type``, ``agent``, ``data``)
``message``        a message between agents on the run's bus: ``id``, ``type``, ``sender``,
                   ``recipient``, ``topic``, ``payload``
``agent_retried``  ``step``, ``attempt`` (the one that failed), ``error``, ``delay_s``
``agent_finished`` ``step``, ``status``, ``output``, ``usage``, ``cost_usd``, ``duration_ms``
``agent_failed``   ``step``, ``error``, ``attempts``
``agent_cancelled````step``, ``reason``: the outcome was decided, the run was cancelled or timed out
``run_finished``   ``status``, ``output``, ``usage``, ``cost_usd``, ``duration_ms``, ``error``
=================  =========================================================================

:class:`EventLog` numbers the events of one run and fans them out: to synchronous listeners (the
CLI's live view), to async subscribers (:meth:`EventLog.subscribe`, what SSE and ``--events`` read),
and it keeps every event but tokens so that a late subscriber gets the run replayed from any ``seq``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = ["EVENT_TYPES", "EventListener", "EventLog", "EventType", "RunEvent"]

logger = logging.getLogger("agentadapter.orchestrator")

EventType: TypeAlias = Literal[
    "run_started",
    "agent_started",
    "token",
    "tool_call",
    "tool_result",
    "handoff",
    "guardrail",
    "message",
    "nested",
    "agent_retried",
    "agent_finished",
    "agent_failed",
    "agent_cancelled",
    "run_paused",
    "run_resumed",
    "run_finished",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


@dataclass(slots=True, frozen=True)
class RunEvent:
    """One thing that happened in a run."""

    seq: int
    """Position in the run's event sequence (1, 2, 3, ...); what SSE's ``Last-Event-ID`` refers to."""
    type: EventType
    run_id: str
    agent: str | None
    """The agent concerned; None for ``run_started`` and ``run_finished``."""
    ts: float
    """Unix time."""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "run_id": self.run_id, "agent": self.agent, "ts": self.ts,
                "data": self.data}


EventListener: TypeAlias = Callable[[RunEvent], None]

_END = object()


class EventLog:
    """The events of one run: numbered here, kept (tokens excepted), and handed to every listener."""

    def __init__(self, run_id: str, *, keep: bool = True, first_seq: int = 0) -> None:
        self.run_id = run_id
        self.keep = keep
        self.events: list[RunEvent] = []
        """Every event but tokens, in order (empty when ``keep`` is false)."""
        self.closed = False
        self._seq = first_seq
        """The last seq handed out (a resumed run goes on after the events it had before it paused)."""
        self._listeners: list[EventListener] = []
        self._queues: list[asyncio.Queue[Any]] = []

    @property
    def last_seq(self) -> int:
        return self._seq

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event from now on (it must not block)."""
        self._listeners.append(listener)

    def emit(self, type: EventType, agent: str | None, data: dict[str, Any]) -> RunEvent:
        """Number a new event and hand it out."""
        self._seq += 1
        event = RunEvent(self._seq, type, self.run_id, agent, time.time(), data)
        if self.keep and type != "token":
            self.events.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # A broken progress display must not break the run.
                logger.exception("event listener %r failed on event %s of run %s", listener, event.seq, self.run_id)
        for queue in self._queues:
            queue.put_nowait(event)
        return event

    def close(self) -> None:
        """No more events: subscribers finish once they have read what is queued."""
        if self.closed:
            return
        self.closed = True
        for queue in self._queues:
            queue.put_nowait(_END)

    async def subscribe(self, after: int = 0) -> AsyncIterator[RunEvent]:
        """The events with ``seq > after``: those kept so far, then the live ones until the run ends.

        Tokens are live only: a subscriber that joins late does not get earlier tokens.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue()
        # No await between the snapshot and the registration, so no event falls in between.
        replay = [e for e in self.events if e.seq > after]
        if not self.closed:
            self._queues.append(queue)
        try:
            for event in replay:
                yield event
            if not self.closed or queue.qsize():
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    yield item
        finally:
            if queue in self._queues:
                self._queues.remove(queue)
