"""``RunRecorder``: where runs, their agent steps, messages and events are persisted.

The orchestrator calls a recorder as a run goes: :meth:`RunRecorder.save_run` when the run starts
and when it ends, :meth:`RunRecorder.save_agent_run` when a step starts and when it ends (the same
``id`` both times: an upsert), :meth:`RunRecorder.save_message` for each message agents sent each
other on the run's bus, and :meth:`RunRecorder.save_event` for each event but tokens (token deltas
are streamed, never stored). :class:`InMemoryRunRecorder` keeps them in memory (the CLI, tests);
the service's database implements the same interface in ``agentadapter.store``. A recorder that
raises is logged and the run goes on: losing a record must not lose the run.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.result import AgentRunResult, RunResult
    from agentadapter.protocol.envelope import Envelope

__all__ = ["InMemoryRunRecorder", "RunRecorder"]


class RunRecorder(ABC):
    """Receives a run's records as they happen. Every method is an upsert or an append."""

    @abstractmethod
    async def save_run(self, run: RunResult) -> None:
        """The run at its start (status ``running``) and at its end (its final status and totals)."""

    @abstractmethod
    async def save_agent_run(self, run_id: str, agent_run: AgentRunResult) -> None:
        """An agent step when it starts and when it ends (same ``agent_run.id``)."""

    @abstractmethod
    async def save_message(self, run_id: str, message: Envelope) -> None:
        """A message an agent of the run sent on the run's bus."""

    async def save_event(self, event: RunEvent) -> None:  # noqa: B027 - optional hook
        """An event of the run (never a token). The default keeps nothing."""


class InMemoryRunRecorder(RunRecorder):
    """Keeps snapshots of everything in dicts: for the CLI, tests, and a single process."""

    def __init__(self) -> None:
        self.runs: dict[str, RunResult] = {}
        self.agent_runs: dict[str, dict[str, AgentRunResult]] = {}
        self.messages: dict[str, list[Envelope]] = {}
        self.events: dict[str, list[RunEvent]] = {}

    async def save_run(self, run: RunResult) -> None:
        snapshot = copy.copy(run)
        snapshot.agents = [copy.copy(a) for a in run.agents]
        self.runs[run.run_id] = snapshot

    async def save_agent_run(self, run_id: str, agent_run: AgentRunResult) -> None:
        self.agent_runs.setdefault(run_id, {})[agent_run.id] = copy.copy(agent_run)

    async def save_message(self, run_id: str, message: Envelope) -> None:
        self.messages.setdefault(run_id, []).append(message)

    async def save_event(self, event: RunEvent) -> None:
        self.events.setdefault(event.run_id, []).append(event)

    def get_run(self, run_id: str) -> RunResult | None:
        return self.runs.get(run_id)

    def list_runs(self, project_id: str | None = None) -> list[RunResult]:
        """Runs in the order they started, optionally only one project's."""
        runs = sorted(self.runs.values(), key=lambda r: r.started_at)
        return [r for r in runs if project_id is None or r.project_id == project_id]

    def agent_runs_of(self, run_id: str) -> list[AgentRunResult]:
        """A run's agent steps in the order they started."""
        return sorted(self.agent_runs.get(run_id, {}).values(), key=lambda a: a.step)
