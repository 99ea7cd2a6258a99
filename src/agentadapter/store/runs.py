"""Runs and what they record - agent runs, messages between agents, events - within one tenant.

The API creates a run as ``queued`` (:func:`create_run`); from then on the orchestrator's records
arrive through :class:`~agentadapter.store.recorder.StoreRunRecorder`, which calls the ``record_*``
functions here: the run at its start and end, each agent step (an upsert by its id), each message,
each event but tokens. Reads (:func:`get_run`, :func:`list_runs`, :func:`list_events`, ...) all take
the tenant. :func:`fail_interrupted_runs` is the one function across tenants: at start-up it closes
the runs a stopped server process left ``queued`` or ``running``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.observability.redact import redact
from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.models import (
    TERMINAL_RUN_STATUSES,
    AgentMessage,
    AgentRun,
    Run,
    RunEventRow,
    utcnow,
)
from agentadapter.store.pagination import Page, paginate
from agentadapter.store.tenants import default_project

if TYPE_CHECKING:
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.result import AgentRunResult, RunResult
    from agentadapter.protocol.envelope import Envelope

__all__ = [
    "create_run",
    "fail_interrupted_runs",
    "finish_run",
    "get_run",
    "list_agent_runs",
    "list_events",
    "list_messages",
    "list_runs",
    "record_agent_run",
    "record_event",
    "record_message",
    "record_run",
]


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


async def create_run(
    session: AsyncSession, tenant_id: uuid.UUID, *, input: Any, project_id: uuid.UUID,
    agent_id: uuid.UUID | None = None, agent_version: int | None = None, workflow_id: uuid.UUID | None = None,
    workflow_name: str | None = None, created_by: uuid.UUID | None = None, strategy: str = "",
    options: Mapping[str, Any] | None = None,
) -> Run:
    """A new run in status ``queued``."""
    run = Run(id=uuid.uuid4(), tenant_id=tenant_id, project_id=project_id, agent_id=agent_id,
              agent_version=agent_version, workflow_id=workflow_id, workflow_name=workflow_name,
              created_by=created_by, status="queued", input=input, strategy=strategy, options=dict(options or {}),
              usage={}, details={}, text="", cost_usd=0.0, duration_ms=0.0, last_seq=0)
    session.add(run)
    await session.flush()
    return run


async def get_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run:
    run: Run | None = await session.scalar(sa.select(Run).where(Run.tenant_id == tenant_id, Run.id == run_id))
    if run is None:
        raise RecordNotFound("run", run_id)
    return run


# What a list of runs shows: everything but the strategy's details and the options (GET one run for them).
_LISTED = tuple(c for c in Run.__table__.columns
                if c.name not in ("tenant_id", "details", "options", "updated_at"))


async def list_runs(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
    status: str | None = None, agent_id: uuid.UUID | None = None, workflow_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
) -> Page[dict[str, Any]]:
    """The tenant's runs, newest first, optionally of one status, agent, workflow or project.

    Items are dicts of the run's columns (no ORM objects: lists are the hot path), without
    ``tenant_id``, ``details``, ``options`` and ``updated_at``.
    """
    statement = sa.select(*_LISTED).where(Run.tenant_id == tenant_id)
    if status:
        statement = statement.where(Run.status == status)
    if agent_id:
        statement = statement.where(Run.agent_id == agent_id)
    if workflow_id:
        statement = statement.where(Run.workflow_id == workflow_id)
    if project_id:
        statement = statement.where(Run.project_id == project_id)
    page: Page[dict[str, Any]] = await paginate(session, statement, Run, limit=limit, cursor=cursor, rows=True)
    return page


async def finish_run(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, status: str, error: Mapping[str, Any]
) -> Run:
    """End a run that no process is executing (cancel a queued run, close an orphan)."""
    run = await get_run(session, tenant_id, run_id)
    if run.status in TERMINAL_RUN_STATUSES:
        raise RecordConflict(f"run {run_id} has already ended ({run.status})", param="run_id")
    run.status, run.error, run.finished_at = status, _stored_error(error), utcnow()
    await session.flush()
    return run


async def list_agent_runs(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Sequence[AgentRun]:
    statement = (sa.select(AgentRun).where(AgentRun.tenant_id == tenant_id, AgentRun.run_id == run_id)
                 .order_by(AgentRun.step, AgentRun.started_at))
    return (await session.scalars(statement)).all()


async def list_messages(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, *, limit: int = 100, offset: int = 0
) -> Sequence[AgentMessage]:
    statement = (sa.select(AgentMessage).where(AgentMessage.tenant_id == tenant_id, AgentMessage.run_id == run_id)
                 .order_by(AgentMessage.created_at, AgentMessage.id).offset(offset).limit(limit))
    return (await session.scalars(statement)).all()


async def list_events(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, *, after: int = 0, limit: int = 1000
) -> Sequence[RunEventRow]:
    """The run's persisted events with ``seq > after``, in order."""
    statement = (sa.select(RunEventRow)
                 .where(RunEventRow.tenant_id == tenant_id, RunEventRow.run_id == run_id, RunEventRow.seq > after)
                 .order_by(RunEventRow.seq).limit(limit))
    return (await session.scalars(statement)).all()


async def fail_interrupted_runs(session: AsyncSession, reason: str) -> int:
    """Mark every ``queued`` or ``running`` run (of any tenant) failed; returns how many.

    Only for start-up with the in-process executor, when no other process can be running them.
    """
    result = await session.execute(
        sa.update(Run).where(Run.status.in_(("queued", "running")))
        .values(status="failed", finished_at=utcnow(), error={"type": "Interrupted", "message": reason})
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------------------ the recorder's writes


def _stored_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An error as stored: secrets masked (a safety net; errors are cleaned where they are made), since
    a failure message may quote what it failed with (a broker URL's password, a key echoed back)."""
    return redact(dict(error)) if error is not None else None


def _run_values(result: RunResult) -> dict[str, Any]:
    data = result.to_dict()
    return {
        "status": result.status, "output": data["output"], "text": result.text, "error": _stored_error(result.error),
        "usage": data["usage"], "cost_usd": result.cost_usd, "duration_ms": data["duration_ms"],
        "strategy": result.strategy, "details": data["details"], "started_at": _time(result.started_at),
        "finished_at": _time(result.finished_at), "updated_at": utcnow(),
    }


async def record_run(session: AsyncSession, tenant_id: uuid.UUID, result: RunResult) -> None:
    """Upsert the run from the orchestrator's result (a run started outside the API is inserted)."""
    run_id = uuid.UUID(result.run_id)
    values = _run_values(result)
    updated = await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_id).values(**values)
    )
    if int(getattr(updated, "rowcount", 0) or 0):
        return
    project_id = _as_uuid(result.project_id)
    if project_id is None:
        project_id = (await default_project(session, tenant_id)).id
    session.add(Run(id=run_id, tenant_id=tenant_id, project_id=project_id, input=result.input,
                    workflow_name=result.workflow, options={}, last_seq=0, **values))
    await session.flush()


def _as_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def record_agent_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: str, record: AgentRunResult) -> None:
    data = record.to_dict()
    values = {
        "name": record.name, "step": record.step, "phase": record.phase, "status": record.status,
        "input": record.input, "output": data["output"], "text": record.text, "error": _stored_error(record.error),
        "usage": data["usage"], "cost_usd": record.cost_usd, "attempts": record.attempts, "model": record.model,
        "answered_by": record.answered_by, "started_at": _time(record.started_at),
        "finished_at": _time(record.finished_at), "duration_ms": data["duration_ms"],
    }
    record_id = uuid.UUID(record.id)
    updated = await session.execute(
        sa.update(AgentRun).where(AgentRun.tenant_id == tenant_id, AgentRun.id == record_id).values(**values)
    )
    if not int(getattr(updated, "rowcount", 0) or 0):
        session.add(AgentRun(id=record_id, tenant_id=tenant_id, run_id=uuid.UUID(run_id), **values))
        await session.flush()


async def record_message(session: AsyncSession, tenant_id: uuid.UUID, run_id: str, message: Envelope) -> None:
    run_uuid = uuid.UUID(run_id)
    exists = await session.scalar(sa.select(AgentMessage.id).where(
        AgentMessage.tenant_id == tenant_id, AgentMessage.run_id == run_uuid, AgentMessage.message_id == message.id))
    if exists is not None:
        return
    data = message.to_dict()
    session.add(AgentMessage(
        id=uuid.uuid4(), tenant_id=tenant_id, run_id=run_uuid, message_id=message.id, type=str(message.type),
        sender=message.sender, recipient=message.recipient, topic=message.topic, payload=data.get("payload"),
        correlation_id=message.correlation_id, created_at=_time(message.created_at) or utcnow(),
    ))
    await session.flush()


async def record_event(session: AsyncSession, tenant_id: uuid.UUID, event: RunEvent) -> None:
    run_uuid = uuid.UUID(event.run_id)
    session.add(RunEventRow(run_id=run_uuid, seq=event.seq, tenant_id=tenant_id, type=event.type, agent=event.agent,
                            ts=event.ts, data=dict(event.data)))
    await session.flush()
    await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_uuid, Run.last_seq < event.seq)
        .values(last_seq=event.seq)
    )
