"""Run steps for runs executed by Celery workers: enqueue once, claim under a lease, finish once.

Every write here is one conditional statement, so two workers (or a redelivered task and the
original) racing on the same step cannot both win: :func:`enqueue` inserts ``(run_id, key)`` only
if it is new, :func:`claim` takes a step that is queued (or whose lease expired: its worker died),
:func:`complete` ends a step that is still running. The run itself moves ``queued`` -> ``running``
once (:func:`begin_run`) and to its final status once (:func:`end_run`). The reaper's queries
(:func:`expired_steps`, :func:`stale_queued_steps`, :func:`idle_runs`, :func:`overdue_runs`) look
across tenants: they serve the executor, never a request.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.compliance import Anonymizer
from agentadapter.store.compliance import storage_anonymizer
from agentadapter.store.models import Run, RunEventRow, RunStep, utcnow

__all__ = [
    "begin_run",
    "claim",
    "close_queued",
    "complete",
    "end_run",
    "enqueue",
    "expired_steps",
    "idle_runs",
    "load",
    "overdue_runs",
    "record_event_once",
    "renew",
    "requeue",
    "seal_run",
    "stale_queued_steps",
    "touch_run",
]

_ACTIVE = ("queued", "running")


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def load(session: AsyncSession, run_id: uuid.UUID) -> dict[str, RunStep]:
    """The run's steps by key."""
    rows = (await session.scalars(sa.select(RunStep).where(RunStep.run_id == run_id))).all()
    return {row.key: row for row in rows}


async def enqueue(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, key: str,
                  request: Mapping[str, Any]) -> bool:
    """Insert the step as ``queued``; False when it already exists (someone enqueued it before)."""
    now = utcnow()
    statement = _insert(session, RunStep).values(
        run_id=run_id, key=key, tenant_id=tenant_id, status="queued", request=dict(request), claims=0,
        created_at=now, updated_at=now,
    ).on_conflict_do_nothing()
    return _count(await session.execute(statement)) == 1


async def claim(session: AsyncSession, run_id: uuid.UUID, key: str, lease_s: float,
                worker: str | None = None) -> dict[str, Any] | None:
    """Take the step (queued, or running under an expired lease); its request, or None if not ours."""
    now = utcnow()
    statement = (
        sa.update(RunStep)
        .where(RunStep.run_id == run_id, RunStep.key == key,
               sa.or_(RunStep.status == "queued",
                      sa.and_(RunStep.status == "running", RunStep.lease_until < now)))
        .values(status="running", claims=RunStep.claims + 1, lease_until=now + timedelta(seconds=lease_s),
                worker=worker, updated_at=now)
        .returning(RunStep.request)
    )
    request = (await session.execute(statement)).scalar_one_or_none()
    return dict(request) if request is not None else None


async def renew(session: AsyncSession, run_id: uuid.UUID, key: str, lease_s: float) -> bool:
    """Extend the lease of a step this worker runs; False when it is no longer running."""
    now = utcnow()
    result = await session.execute(
        sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.key == key, RunStep.status == "running")
        .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now)
    )
    return _count(result) == 1


async def complete(session: AsyncSession, run_id: uuid.UUID, key: str, result: Mapping[str, Any]) -> bool:
    """Mark a running step done with its result; False when it was done already (a duplicate)."""
    outcome = await session.execute(
        sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.key == key, RunStep.status == "running")
        .values(status="done", result=dict(result), lease_until=None, updated_at=utcnow())
    )
    return _count(outcome) == 1


async def close_queued(session: AsyncSession, run_id: uuid.UUID, result: Mapping[str, Any]) -> int:
    """Mark the run's steps still queued done with ``result`` (the run ended; they will never run)."""
    outcome = await session.execute(
        sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.status == "queued")
        .values(status="done", result=dict(result), updated_at=utcnow())
    )
    return _count(outcome)


async def requeue(session: AsyncSession, run_id: uuid.UUID, key: str, *, expired_before: datetime | None) -> bool:
    """Put a step back to ``queued`` when its lease expired (``expired_before``) or it sat queued too long."""
    now = utcnow()
    condition = (sa.and_(RunStep.status == "running", RunStep.lease_until < expired_before)
                 if expired_before is not None else RunStep.status == "queued")
    result = await session.execute(
        sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.key == key, condition)
        .values(status="queued", lease_until=None, updated_at=now)
    )
    return _count(result) == 1


async def expired_steps(session: AsyncSession, now: datetime, limit: int = 500) -> Sequence[tuple[uuid.UUID, str]]:
    """Running steps of unfinished runs whose lease expired: their worker died or lost the database."""
    rows = await session.execute(
        sa.select(RunStep.run_id, RunStep.key).join(Run, Run.id == RunStep.run_id)
        .where(RunStep.status == "running", RunStep.lease_until < now, Run.status.in_(_ACTIVE)).limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def stale_queued_steps(session: AsyncSession, before: datetime,
                             limit: int = 500) -> Sequence[tuple[uuid.UUID, str]]:
    """Steps of unfinished runs queued since before ``before`` and never claimed: their message was lost."""
    rows = await session.execute(
        sa.select(RunStep.run_id, RunStep.key).join(Run, Run.id == RunStep.run_id)
        .where(RunStep.status == "queued", RunStep.updated_at < before, Run.status.in_(_ACTIVE)).limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def idle_runs(session: AsyncSession, before: datetime, limit: int = 500) -> Sequence[uuid.UUID]:
    """Unfinished runs untouched since ``before`` with no step queued or running: their drive was lost."""
    busy = sa.select(RunStep.run_id).where(RunStep.run_id == Run.id, RunStep.status.in_(_ACTIVE)).exists()
    rows = await session.execute(
        sa.select(Run.id).where(Run.status.in_(_ACTIVE), Run.updated_at < before, ~busy).limit(limit)
    )
    return [r[0] for r in rows]


async def overdue_runs(session: AsyncSession, created_before: datetime,
                       limit: int = 500) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
    """(run, tenant) of unfinished runs created before ``created_before``."""
    rows = await session.execute(
        sa.select(Run.id, Run.tenant_id).where(Run.status.in_(_ACTIVE), Run.created_at < created_before)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def touch_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    await session.execute(sa.update(Run).where(Run.id == run_id).values(updated_at=utcnow()))


async def begin_run(session: AsyncSession, run_id: uuid.UUID, values: Mapping[str, Any]) -> bool:
    """``queued`` -> ``running`` with ``values``; False when it had started (or ended) already."""
    result = await session.execute(
        sa.update(Run).where(Run.id == run_id, Run.status == "queued").values(status="running", **values)
    )
    return _count(result) == 1


async def end_run(session: AsyncSession, run_id: uuid.UUID, values: Mapping[str, Any]) -> bool:
    """Write the run's final ``values`` (status included) unless it has ended already.

    Under a tenant policy that masks personal data, the values are masked, and so are the run's input and
    its steps' requests and results (:func:`seal_run`).
    """
    tenant_id = await session.scalar(sa.select(Run.tenant_id).where(Run.id == run_id))
    anonymizer = await storage_anonymizer(session, tenant_id) if tenant_id is not None else None
    if anonymizer is not None:
        values = {k: anonymizer.value(v) if k in ("output", "text", "error", "details") else v
                  for k, v in values.items()}
    result = await session.execute(
        sa.update(Run).where(Run.id == run_id, Run.status.in_(_ACTIVE)).values(**values)
    )
    ended = _count(result) == 1
    if ended and anonymizer is not None:
        await seal_run(session, run_id, anonymizer)
    return ended


async def seal_run(session: AsyncSession, run_id: uuid.UUID, anonymizer: Anonymizer) -> None:
    """Mask what an ended run kept for executing it: its input, and its steps' requests and results.

    Until the run ends these are read to execute it (a worker reads the input; a replay reads the steps),
    so they are masked at its end rather than at their write.
    """
    stored = await session.scalar(sa.select(Run.input).where(Run.id == run_id))
    await session.execute(sa.update(Run).where(Run.id == run_id).values(input=anonymizer.value(stored))
                          .execution_options(synchronize_session=False))
    rows = (await session.execute(sa.select(RunStep.key, RunStep.request, RunStep.result)
                                  .where(RunStep.run_id == run_id))).all()
    for key, request, outcome in rows:
        await session.execute(sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.key == key).values(
            request=anonymizer.value(request), result=anonymizer.value(outcome) if outcome is not None else None)
            .execution_options(synchronize_session=False))


async def record_event_once(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, seq: int, type: str,
                            agent: str | None, ts: float, data: Mapping[str, Any]) -> None:
    """Persist an event unless one with its seq is stored (a step executed again writes the same seqs)."""
    anonymizer = await storage_anonymizer(session, tenant_id)
    stored = anonymizer.value(dict(data)) if anonymizer is not None else dict(data)
    statement = _insert(session, RunEventRow).values(
        run_id=run_id, seq=seq, tenant_id=tenant_id, type=type, agent=agent, ts=ts, data=stored,
    ).on_conflict_do_nothing()
    await session.execute(statement)
    await session.execute(
        sa.update(Run).where(Run.id == run_id, Run.last_seq < seq).values(last_seq=seq)
    )
