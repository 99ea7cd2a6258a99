"""Where runs execute: the :class:`RunExecutor` interface every executor implements, and :class:`RunJob`.

A service creates a run (``queued``) and hands a :class:`RunJob` to the executor, which starts it in
the background and answers at once. Two implement it: the API server's in-process
``InlineExecutor`` (:mod:`agentadapter.server.executor`) and the ``CeleryExecutor``
(:mod:`agentadapter.service.celery_executor`),
which sends runs to Celery workers. An executor that cannot take a run raises
:class:`ExecutorUnavailable` (an :class:`~agentadapter.service.errors.Unavailable`), and the run is
not kept.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agentadapter.orchestrator import RunEvent, RunOptions
from agentadapter.service.errors import Unavailable

if TYPE_CHECKING:
    from agentadapter.agents.base import BaseAgent
    from agentadapter.agents.context import AgentInput
    from agentadapter.orchestrator.strategies import Strategy

__all__ = ["CancelOutcome", "ExecutorUnavailable", "RunExecutor", "RunJob"]

CancelOutcome = Literal["cancelled", "requested", "unknown"]
"""``cancelled`` here; ``requested`` of the other server processes (the one running it cancels it);
``unknown``: no process can be asked (no Redis) and this one does not run it."""

class ExecutorUnavailable(Unavailable):
    """The executor cannot take a run now; the API answers 503 with ``code`` and stores no run.

    ``code`` is ``shutting_down``, ``broker_unavailable`` (the Celery broker refused the task) or
    ``shared_state_unavailable`` (Redis, which runs on workers need for their events and cancels,
    does not answer).
    """

    def __init__(self, message: str, *, code: str, retry_after_s: int = 5) -> None:
        super().__init__(message, code=code, retry_after_s=retry_after_s)


@dataclass(slots=True)
class RunJob:
    """Everything needed to execute one queued run."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    project_id: uuid.UUID
    task: AgentInput
    agents: Mapping[str, BaseAgent]
    strategy: Strategy | str = "sequential"
    options: RunOptions | None = None
    workflow: str | None = None


class RunExecutor(ABC):
    """Starts queued runs somewhere, cancels them, and hands out the events of those it knows."""

    name: str = "executor"

    @abstractmethod
    async def submit(self, job: RunJob) -> None:
        """Start the run in the background; return at once. Raises :class:`ExecutorUnavailable` when it cannot."""

    def new_run_lease(self) -> dict[str, Any]:
        """Columns to store on a run this executor will execute (its lease); none by default."""
        return {}

    @abstractmethod
    def cancel(self, run_id: uuid.UUID, reason: str) -> bool:
        """Cancel a run this executor is running; False when it is not running here."""

    async def request_cancel(self, run_id: uuid.UUID, reason: str) -> CancelOutcome:
        """Cancel the run here, or ask the other server processes to."""
        return "cancelled" if self.cancel(run_id, reason) else "unknown"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (listeners); called once the server starts."""

    @abstractmethod
    def events(self, run_id: uuid.UUID, after: int = 0) -> AsyncIterator[RunEvent] | None:
        """The run's events with ``seq > after`` (kept ones, then live ones), or None if not known here."""

    @property
    @abstractmethod
    def active(self) -> int:
        """Runs executing now."""

    @abstractmethod
    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Cancel what still runs and wait (up to ``grace_s``) for it to record its end."""
