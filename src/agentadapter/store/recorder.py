"""``StoreRunRecorder``: the orchestrator's ``RunRecorder``, persisting into the database.

One recorder serves one tenant (the run's), so every write is scoped like every read. Each record
is its own short write transaction: the run at its start and end, each agent step as it starts and
ends, each message, each event but tokens (token deltas stream to live subscribers and are never
stored). A write that fails is logged by the orchestrator and the run goes on.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from agentadapter.orchestrator.recorder import RunRecorder
from agentadapter.store import runs
from agentadapter.store.database import Database

if TYPE_CHECKING:
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.result import AgentRunResult, RunResult
    from agentadapter.protocol.envelope import Envelope

__all__ = ["StoreRunRecorder"]


class StoreRunRecorder(RunRecorder):
    """Writes one tenant's runs, agent runs, messages and events to the database."""

    def __init__(self, db: Database, tenant_id: uuid.UUID) -> None:
        self.db = db
        self.tenant_id = tenant_id

    async def save_run(self, run: RunResult) -> None:
        async with self.db.writer() as session:
            await runs.record_run(session, self.tenant_id, run)

    async def save_agent_run(self, run_id: str, agent_run: AgentRunResult) -> None:
        async with self.db.writer() as session:
            await runs.record_agent_run(session, self.tenant_id, run_id, agent_run)

    async def save_message(self, run_id: str, message: Envelope) -> None:
        async with self.db.writer() as session:
            await runs.record_message(session, self.tenant_id, run_id, message)

    async def save_event(self, event: RunEvent) -> None:
        async with self.db.writer() as session:
            await runs.record_event(session, self.tenant_id, event)
