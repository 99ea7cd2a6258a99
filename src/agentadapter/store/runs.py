"""Runs and what they record - agent runs, messages between agents, events - within one tenant.

The API creates a run as ``queued`` (:func:`create_run`); from then on the orchestrator's records
arrive through :class:`~agentadapter.store.recorder.StoreRunRecorder`, which calls the ``record_*``
functions here: the run at its start and end, each agent step (an upsert by its id), each message,
each event but tokens. Reads (:func:`get_run`, :func:`list_runs`, :func:`list_events`, ...) all take
the tenant.

Runs executed inline hold a lease (:func:`lease_values`, renewed by :func:`renew_leases` while the
run executes). The functions that end a run nobody will finish work across tenants and serve the
executors, never a request: :func:`close_run` ends one in a single transaction - its status and
error, its agent runs still open, its usage totals recomputed from its usage records, and a
``run_finished`` event so that SSE followers end - and :func:`close_expired_leases` (the reapers)
and :func:`fail_interrupted_runs` (start-up without Redis) are built on it. The executor's final
write, :func:`end_run_with_result`, is conditional too: a run ended elsewhere is not written over.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.compliance import Anonymizer
from agentadapter.observability.redact import redact
from agentadapter.store.compliance import storage_anonymizer
from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.models import (
    TERMINAL_RUN_STATUSES,
    AgentMessage,
    AgentRun,
    Run,
    RunEventRow,
    UsageRecord,
    utcnow,
)
from agentadapter.store.pagination import Page, paginate
from agentadapter.store.steps import record_event_once, seal_run
from agentadapter.store.tenants import default_project

if TYPE_CHECKING:
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.result import AgentRunResult, RunResult
    from agentadapter.protocol.envelope import Envelope

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "ClosedRun",
    "close_expired_leases",
    "close_run",
    "create_run",
    "discard_unstarted_run",
    "end_run_with_result",
    "expired_leases",
    "fail_interrupted_runs",
    "finish_run",
    "get_run",
    "lease_values",
    "list_agent_runs",
    "list_events",
    "list_messages",
    "list_runs",
    "lost_run_error",
    "read_agent_runs",
    "read_run",
    "record_agent_run",
    "record_event",
    "record_message",
    "record_run",
    "recorded_usage",
    "renew_leases",
    "update_unfinished_run",
]

ACTIVE_RUN_STATUSES = ("queued", "running")


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


def _by_attribute(model: Any) -> tuple[sa.Label[Any], ...]:
    """A model's columns labelled with their attribute names: rows read as dicts the API reads like objects."""
    table = model.__table__
    return tuple(table.c[attribute.columns[0].name].label(attribute.key)
                 for attribute in sa.inspect(model).column_attrs)


# Built once: a statement made per call costs more to construct and to key for the compiled cache than
# SQLite takes to answer it.
_RUNS = Run.__table__
_READ_RUN = sa.select(*_by_attribute(Run)).where(_RUNS.c.tenant_id == sa.bindparam("tenant_id"),
                                                 _RUNS.c.id == sa.bindparam("run_id"))
_AGENT_RUNS = AgentRun.__table__
_READ_AGENT_RUNS = (sa.select(*_by_attribute(AgentRun))
                    .where(_AGENT_RUNS.c.tenant_id == sa.bindparam("tenant_id"),
                           _AGENT_RUNS.c.run_id == sa.bindparam("run_id"))
                    .order_by(_AGENT_RUNS.c.step, _AGENT_RUNS.c.started_at))


async def read_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
    """The run's columns (by attribute name), for reading only: no ORM object is built."""
    row = (await session.execute(_READ_RUN, {"tenant_id": tenant_id, "run_id": run_id})).mappings().first()
    if row is None:
        raise RecordNotFound("run", run_id)
    return dict(row)


async def read_agent_runs(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The run's agent steps in order, as dicts of their columns (by attribute name)."""
    result = await session.execute(_READ_AGENT_RUNS, {"tenant_id": tenant_id, "run_id": run_id})
    return [dict(row) for row in result.mappings()]


# What a list of runs shows: everything but the strategy's details and the options (GET one run for them).
_LISTED = tuple(c for c in Run.__table__.columns
                if c.name not in ("tenant_id", "details", "options", "updated_at", "lease_owner", "lease_until"))


async def list_runs(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
    status: str | None = None, agent_id: uuid.UUID | None = None, workflow_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
) -> Page[dict[str, Any]]:
    """The tenant's runs, newest first, optionally of one status, agent, workflow or project.

    Items are dicts of the run's columns (no ORM objects: lists are the hot path), without
    ``tenant_id``, ``details``, ``options`` and ``updated_at``.
    """
    # Table columns, not the model's attributes: a statement of plain columns skips the ORM's row loading.
    columns = _RUNS.c
    statement = sa.select(*_LISTED).where(columns.tenant_id == tenant_id)
    if status:
        statement = statement.where(columns.status == status)
    if agent_id:
        statement = statement.where(columns.agent_id == agent_id)
    if workflow_id:
        statement = statement.where(columns.workflow_id == workflow_id)
    if project_id:
        statement = statement.where(columns.project_id == project_id)
    page: Page[dict[str, Any]] = await paginate(session, statement, columns, limit=limit, cursor=cursor, rows=True)
    return page


async def finish_run(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, status: str, error: Mapping[str, Any]
) -> Run:
    """End a run that no process is executing (cancel a queued run, close an orphan), as :func:`close_run` does."""
    run = await get_run(session, tenant_id, run_id)
    if run.status in TERMINAL_RUN_STATUSES or await close_run(session, run_id, status, error,
                                                              tenant_id=tenant_id) is None:
        raise RecordConflict(f"run {run_id} has already ended ({run.status})", param="run_id")
    await session.refresh(run)
    return run


async def discard_unstarted_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    """Delete a run no executor took (it is still ``queued`` and has recorded nothing): the API refused it."""
    result = await session.execute(sa.delete(Run).where(
        Run.tenant_id == tenant_id, Run.id == run_id, Run.status == "queued", Run.last_seq == 0))
    return int(getattr(result, "rowcount", 0) or 0) == 1


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
    """Fail every ``queued`` or ``running`` run (of any tenant) with a ``ServerLost`` error; returns how many.

    Only for start-up with the in-process executor and no Redis, when no other process can be running them.
    """
    run_ids = (await session.scalars(sa.select(Run.id).where(Run.status.in_(ACTIVE_RUN_STATUSES)))).all()
    closed = 0
    for run_id in run_ids:
        if await close_run(session, run_id, "failed", {"type": "ServerLost", "message": reason}) is not None:
            closed += 1
    return closed


# ------------------------------------------------------------------------ leases, and ending lost runs


@dataclass(frozen=True, slots=True)
class ClosedRun:
    """A run :func:`close_run` ended, and the ``run_finished`` event it stored (to publish live)."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    seq: int
    ts: float
    data: dict[str, Any]


def lease_values(owner: str, lease_s: float) -> dict[str, Any]:
    """The columns of a run leased to ``owner`` for ``lease_s`` seconds from now."""
    return {"lease_owner": owner, "lease_until": utcnow() + timedelta(seconds=lease_s)}


async def renew_leases(session: AsyncSession, owner: str, run_ids: Collection[uuid.UUID],
                       lease_s: float) -> set[uuid.UUID]:
    """Extend ``owner``'s leases on ``run_ids``; returns those it still holds (the others ended elsewhere)."""
    held: set[uuid.UUID] = set()
    ids = list(run_ids)
    until = utcnow() + timedelta(seconds=lease_s)
    for start in range(0, len(ids), 500):  # bounded IN lists
        result = await session.execute(
            sa.update(Run).where(Run.id.in_(ids[start:start + 500]), Run.lease_owner == owner,
                                 Run.status.in_(ACTIVE_RUN_STATUSES))
            .values(lease_until=until).returning(Run.id).execution_options(synchronize_session=False)
        )
        held.update(result.scalars().all())
    return held


async def expired_leases(session: AsyncSession, now: datetime,
                         limit: int = 100) -> Sequence[tuple[uuid.UUID, str | None]]:
    """(run, lease owner) of unfinished runs whose lease expired before ``now``: their process is gone."""
    rows = await session.execute(
        sa.select(Run.id, Run.lease_owner)
        .where(Run.status.in_(ACTIVE_RUN_STATUSES), Run.lease_until < now).limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


def lost_run_error(run_id: uuid.UUID, expired: datetime) -> dict[str, Any]:
    """The error of a run whose process was lost (the process is not named: tenants read this)."""
    return {"type": "ServerLost", "message": (
        f"the server process executing run {run_id} stopped (killed, crashed, or cut off from the database) "
        f"and its lease expired at {expired.isoformat(timespec='seconds')} before the run ended, so the run was "
        "failed; start it again")}


async def close_expired_leases(session: AsyncSession, now: datetime | None = None,
                               limit: int = 100) -> list[ClosedRun]:
    """Fail the unfinished runs whose lease expired (see :func:`close_run`); returns those this call ended.

    The update is conditional on the lease still being expired, so several reapers do no harm.
    """
    now = now or utcnow()
    closed: list[ClosedRun] = []
    for run_id, _owner in await expired_leases(session, now, limit):
        ended = await close_run(session, run_id, "failed", lost_run_error(run_id, now),
                                lease_expired_before=now)
        if ended is not None:
            closed.append(ended)
    return closed


async def recorded_usage(session: AsyncSession, tenant_id: uuid.UUID,
                         run_id: uuid.UUID) -> tuple[dict[str, int], float]:
    """The run's usage and cost, summed over its usage records (one per LLM call it made)."""
    total = sa.func.coalesce
    row = (await session.execute(
        sa.select(total(sa.func.sum(UsageRecord.input_tokens), 0), total(sa.func.sum(UsageRecord.output_tokens), 0),
                  total(sa.func.sum(UsageRecord.cache_read_tokens), 0),
                  total(sa.func.sum(UsageRecord.cache_write_tokens), 0),
                  total(sa.func.sum(UsageRecord.reasoning_tokens), 0), total(sa.func.sum(UsageRecord.cost_usd), 0.0))
        .where(UsageRecord.tenant_id == tenant_id, UsageRecord.run_id == str(run_id))
    )).one()
    input_tokens, output_tokens = int(row[0]), int(row[1])
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "cached_input_tokens": int(row[2]),
             "cache_write_tokens": int(row[3]), "reasoning_tokens": int(row[4]),
             "total_tokens": input_tokens + output_tokens}
    return usage, float(row[5] or 0.0)


async def close_run(
    session: AsyncSession, run_id: uuid.UUID, status: str, error: Mapping[str, Any], *,
    tenant_id: uuid.UUID | None = None, lease_expired_before: datetime | None = None,
) -> ClosedRun | None:
    """End an unfinished run that no process will finish; None when it had ended (or, with
    ``lease_expired_before``, its lease was renewed meanwhile).

    In the caller's transaction: the run takes ``status`` and ``error`` and gives up its lease; its
    agent runs still open take ``cancelled`` (a cancelled run) or ``failed`` with the same error;
    its usage and cost become the sum of its usage records (what its calls really cost, whatever
    its process wrote last); and a ``run_finished`` event after its last one is stored, so SSE
    followers of the run end.
    """
    now = utcnow()
    stored = _stored_error(error)
    conditions = [Run.id == run_id, Run.status.in_(ACTIVE_RUN_STATUSES)]
    if tenant_id is not None:
        conditions.append(Run.tenant_id == tenant_id)
    if lease_expired_before is not None:
        conditions.append(Run.lease_until < lease_expired_before)
    ended = (await session.execute(
        sa.update(Run).where(*conditions)
        .values(status=status, error=stored, finished_at=now, lease_until=None, updated_at=now)
        .returning(Run.tenant_id, Run.started_at, Run.output).execution_options(synchronize_session=False)
    )).one_or_none()
    if ended is None:
        return None
    owner_tenant, started_at, output = ended[0], ended[1], ended[2]
    await session.execute(
        sa.update(AgentRun).where(AgentRun.run_id == run_id, AgentRun.status == "running")
        .values(status="cancelled" if status == "cancelled" else "failed", error=stored, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    usage, cost = await recorded_usage(session, owner_tenant, run_id)
    duration_ms = round((now - started_at).total_seconds() * 1000.0, 3) if started_at is not None else 0.0
    await session.execute(
        sa.update(Run).where(Run.id == run_id).values(usage=usage, cost_usd=cost, duration_ms=duration_ms)
        .execution_options(synchronize_session=False)
    )
    last_seq = await session.scalar(sa.select(Run.last_seq).where(Run.id == run_id)) or 0
    # After the run's last event, and after any event numbered without it (the worker's step blocks).
    newest = await session.scalar(sa.select(sa.func.max(RunEventRow.seq)).where(RunEventRow.run_id == run_id)) or 0
    seq = max(int(last_seq), int(newest)) + 1
    data = {"status": status, "output": output, "usage": usage, "cost_usd": cost, "duration_ms": duration_ms,
            "error": stored}
    ts = now.timestamp()
    await record_event_once(session, owner_tenant, run_id, seq, "run_finished", None, ts, data)
    anonymizer = await storage_anonymizer(session, owner_tenant)
    if anonymizer is not None:
        await seal_run(session, run_id, anonymizer)
    return ClosedRun(run_id, owner_tenant, seq, ts, data)


# ------------------------------------------------------------------------------ the recorder's writes


def _stored_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An error as stored: secrets masked (a safety net; errors are cleaned where they are made), since
    a failure message may quote what it failed with (a broker URL's password, a key echoed back)."""
    return redact(dict(error)) if error is not None else None


def _run_values(result: RunResult, anonymizer: Anonymizer | None = None) -> dict[str, Any]:
    data = result.to_dict()
    values = {
        "status": result.status, "output": data["output"], "text": result.text, "error": _stored_error(result.error),
        "usage": data["usage"], "cost_usd": result.cost_usd, "duration_ms": data["duration_ms"],
        "strategy": result.strategy, "details": data["details"], "started_at": _time(result.started_at),
        "finished_at": _time(result.finished_at), "updated_at": utcnow(),
    }
    if anonymizer is not None:
        # The tenant's policy masks or hashes personal data in what is stored (the storage hook). The input
        # is masked once the run has ended: a worker still executing the run reads it from the row.
        for column in ("output", "text", "error", "details"):
            values[column] = anonymizer.value(values[column])
    return values


async def record_run(session: AsyncSession, tenant_id: uuid.UUID, result: RunResult) -> None:
    """Upsert the run from the orchestrator's result (a run started outside the API is inserted)."""
    run_id = uuid.UUID(result.run_id)
    anonymizer = await storage_anonymizer(session, tenant_id)
    values = _run_values(result, anonymizer)
    updated = await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_id).values(**values)
    )
    if int(getattr(updated, "rowcount", 0) or 0):
        if anonymizer is not None and result.status in TERMINAL_RUN_STATUSES:
            await seal_run(session, run_id, anonymizer)
        return
    project_id = _as_uuid(result.project_id)
    if project_id is None:
        project_id = (await default_project(session, tenant_id)).id
    stored_input = anonymizer.value(result.input) if anonymizer is not None else result.input
    session.add(Run(id=run_id, tenant_id=tenant_id, project_id=project_id, input=stored_input,
                    workflow_name=result.workflow, options={}, last_seq=0, **values))
    await session.flush()


async def update_unfinished_run(session: AsyncSession, tenant_id: uuid.UUID, result: RunResult) -> bool:
    """Write the run's progress from the orchestrator's result unless it has ended (a reaper or a cancel
    ended it elsewhere: never write a ``running`` over its end); False then."""
    updated = await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == uuid.UUID(result.run_id),
                             Run.status.in_(ACTIVE_RUN_STATUSES))
        .values(**_run_values(result, await storage_anonymizer(session, tenant_id)))
    )
    return int(getattr(updated, "rowcount", 0) or 0) == 1


async def end_run_with_result(session: AsyncSession, tenant_id: uuid.UUID, result: RunResult,
                              finished: RunEvent | None) -> bool:
    """The run's final write: its end from the orchestrator's result and its ``run_finished`` event, in one
    transaction, and its lease given up; False when it had ended already (nothing is written then)."""
    run_id = uuid.UUID(result.run_id)
    anonymizer = await storage_anonymizer(session, tenant_id)
    updated = await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_id, Run.status.in_(ACTIVE_RUN_STATUSES))
        .values(**_run_values(result, anonymizer), lease_until=None)
    )
    if not int(getattr(updated, "rowcount", 0) or 0):
        return False
    if finished is not None:
        await record_event_once(session, tenant_id, run_id, finished.seq, finished.type, finished.agent, finished.ts,
                                dict(finished.data))
    if anonymizer is not None:
        await seal_run(session, run_id, anonymizer)
    return True


def _as_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def record_agent_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: str, record: AgentRunResult) -> None:
    data = record.to_dict()
    values: dict[str, Any] = {
        "name": record.name, "step": record.step, "phase": record.phase, "status": record.status,
        "input": record.input, "output": data["output"], "text": record.text, "error": _stored_error(record.error),
        "usage": data["usage"], "cost_usd": record.cost_usd, "attempts": record.attempts, "model": record.model,
        "answered_by": record.answered_by, "started_at": _time(record.started_at),
        "finished_at": _time(record.finished_at), "duration_ms": data["duration_ms"],
    }
    anonymizer = await storage_anonymizer(session, tenant_id)
    if anonymizer is not None:
        for column in ("input", "output", "text", "error"):
            values[column] = anonymizer.value(values[column])
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
    anonymizer = await storage_anonymizer(session, tenant_id)
    payload = anonymizer.value(data.get("payload")) if anonymizer is not None else data.get("payload")
    session.add(AgentMessage(
        id=uuid.uuid4(), tenant_id=tenant_id, run_id=run_uuid, message_id=message.id, type=str(message.type),
        sender=message.sender, recipient=message.recipient, topic=message.topic, payload=payload,
        correlation_id=message.correlation_id, created_at=_time(message.created_at) or utcnow(),
    ))
    await session.flush()


async def record_event(session: AsyncSession, tenant_id: uuid.UUID, event: RunEvent) -> None:
    run_uuid = uuid.UUID(event.run_id)
    anonymizer = await storage_anonymizer(session, tenant_id)
    data = anonymizer.value(dict(event.data)) if anonymizer is not None else dict(event.data)
    session.add(RunEventRow(run_id=run_uuid, seq=event.seq, tenant_id=tenant_id, type=event.type, agent=event.agent,
                            ts=event.ts, data=data))
    await session.flush()
    await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_uuid, Run.last_seq < event.seq)
        .values(last_seq=event.seq)
    )
