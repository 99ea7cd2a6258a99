"""``StoreRunRecorder``: the orchestrator's ``RunRecorder``, persisting into the database.

One recorder serves one tenant (the run's), so every write is scoped like every read. Each record
is its own short write transaction: the run at its start and end, each agent step as it starts and
ends, each message, each event but tokens (token deltas stream to live subscribers and are never
stored). A write that fails is logged by the orchestrator and the run goes on - except an event the
database cannot take because it is away or locked: in the service, the record writer
(:mod:`agentadapter.store.writer`) journals it and writes it when it can (:class:`RunEventSink`, which
skips an event already present), so no event is lost to a database that is briefly unavailable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.orchestrator.recorder import RunRecorder
from agentadapter.store import runs
from agentadapter.store.compliance import storage_anonymizer
from agentadapter.store.database import Database, database_outage
from agentadapter.store.models import Run, RunEventRow
from agentadapter.store.writer import writer_for

if TYPE_CHECKING:
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.result import AgentRunResult, RunResult
    from agentadapter.protocol.envelope import Envelope

__all__ = ["RunEventSink", "StoreRunRecorder"]

logger = logging.getLogger("agentadapter.store.recorder")


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
        try:
            async with self.db.writer() as session:
                await runs.record_event(session, self.tenant_id, event)
        except Exception as exc:
            # The database cannot take it now (down, or SQLite locked past its busy timeout): the service's
            # record writer journals the event and writes it when it can, rather than lose it.
            writer = writer_for(self.db.url) if database_outage(exc) else None
            if writer is None:
                raise
            writer.submit("run_event", {"id": f"{event.run_id}:{event.seq}", "tn": self.tenant_id.hex,
                                        "run": event.run_id, "seq": event.seq, "type": event.type,
                                        "agent": event.agent, "ts": event.ts, "data": dict(event.data)})
            logger.warning("run %s: event %d could not be written now (%s); the record writer keeps it and writes it "
                           "when the database is back", event.run_id, event.seq, type(exc).__name__,
                           extra={"event": "runs.event_deferred", "run_id": event.run_id})


class RunEventSink:
    """Writes run events the recorder could not (the writer's ``run_event`` kind): ``INSERT ... ON
    CONFLICT (run_id, seq) DO NOTHING`` and the run's ``last_seq`` moved up to them."""

    async def write(self, session: AsyncSession, records: Sequence[Mapping[str, Any]]) -> None:
        rows = [{"run_id": uuid.UUID(str(r["run"])), "seq": int(r["seq"]), "tenant_id": uuid.UUID(str(r["tn"])),
                 "type": str(r["type"]), "agent": r.get("agent"), "ts": float(r["ts"]),
                 "data": dict(r.get("data") or {})} for r in records]
        for row in rows:  # the tenant's storage policy, as the recorder's own writes apply it
            anonymizer = await storage_anonymizer(session, uuid.UUID(str(row["tenant_id"])))
            if anonymizer is not None:
                row["data"] = anonymizer.value(row["data"])
        insert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(insert(RunEventRow.__table__).on_conflict_do_nothing(index_elements=["run_id", "seq"]),
                              rows)
        for row in rows:
            await session.execute(sa.update(Run).where(Run.id == row["run_id"], Run.last_seq < row["seq"])
                                  .values(last_seq=row["seq"]))

    def committed(self, records: Sequence[Mapping[str, Any]]) -> None:
        return None
