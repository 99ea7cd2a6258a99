"""Retention: delete what is older than the retention period (``AGENTADAPTER_RETENTION_DAYS``).

:func:`purge` deletes finished runs (completed, failed or cancelled) created and finished before the
cutoff, and with them (``ON DELETE CASCADE``, on in SQLite too) their agent runs, bus messages and
persisted events; usage records whose ``ts`` is before the cutoff; and audit entries created before
it. Runs still queued or running are never touched, however old. Rows go in batches of a few
hundred ids, each batch in its own short transaction, so neither SQLite's single writer nor
PostgreSQL's locks are held for long and the API keeps answering while a large backlog is purged.
``agentadapter db purge`` and the server's periodic purge (``server/housekeeping.py``) both use it.
A purge can be limited to one tenant (``tenant_id``) or leave some out (``exclude_tenants``): a tenant's
own retention period (its compliance policy) is purged by
:func:`agentadapter.service.compliance.purge_by_policy` that way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from agentadapter.store.database import Database
from agentadapter.store.models import (
    TERMINAL_RUN_STATUSES,
    AgentMessage,
    AgentRun,
    AuditLog,
    Run,
    RunEventRow,
    UsageRecord,
)
from agentadapter.store.threads_models import Thread

__all__ = ["BATCH_SIZE", "PurgeReport", "cutoff_for", "purge"]

BATCH_SIZE = 500
"""Ids per DELETE: small enough for short transactions, large enough to purge quickly."""

_RUN_CHILDREN: tuple[tuple[str, Any], ...] = (
    ("agent_runs", AgentRun), ("agent_messages", AgentMessage), ("run_events", RunEventRow),
)
TABLES = ("runs", "agent_runs", "agent_messages", "run_events", "threads", "usage_records", "audit_logs")


@dataclass(slots=True)
class PurgeReport:
    """What a purge deleted (or, in a dry run, would delete), per table."""

    cutoff: datetime
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return ", ".join(f"{table} {count}" for table, count in self.counts.items())


def cutoff_for(days: float, *, now: datetime | None = None) -> datetime:
    """The moment ``days`` ago: what was created before it is purged."""
    if days <= 0:
        raise ValueError(f"the retention period must be positive, not {days} days (AGENTADAPTER_RETENTION_DAYS "
                         "or --days)")
    return (now or datetime.now(UTC)) - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class _Tenants:
    """Which tenants a purge covers: one (``only``), or all but ``excluded``."""

    only: uuid.UUID | None = None
    excluded: tuple[uuid.UUID, ...] = ()

    def where(self, column: Any, *, nullable: bool = False) -> Any:
        if self.only is not None:
            return column == self.only
        if self.excluded:
            outside = column.not_in(self.excluded)
            return sa.or_(column.is_(None), outside) if nullable else outside
        return sa.true()


def _old_runs(cutoff: datetime, tenants: _Tenants = _Tenants()) -> sa.Select[Any]:
    return sa.select(Run.id).where(
        Run.status.in_(sorted(TERMINAL_RUN_STATUSES)), Run.created_at < cutoff,
        sa.or_(Run.finished_at.is_(None), Run.finished_at < cutoff), tenants.where(Run.tenant_id),
    )


def _old_threads(cutoff: datetime, tenants: _Tenants) -> Any:
    # A thread lives as long as it is continued: its last change, not its creation, ages it.
    return sa.and_(Thread.updated_at < cutoff, Thread.active_run_id.is_(None), tenants.where(Thread.tenant_id))


async def purge(db: Database, *, older_than: datetime, dry_run: bool = False, batch_size: int = BATCH_SIZE,
                tenant_id: uuid.UUID | None = None, exclude_tenants: Sequence[uuid.UUID] = ()) -> PurgeReport:
    """Delete finished runs (with their children), conversation threads nobody has continued since
    ``older_than`` (and none is continuing now), usage records and audit entries older than it.

    ``dry_run`` counts what would go and deletes nothing; ``tenant_id`` purges that tenant only;
    ``exclude_tenants`` leaves those out.
    """
    if older_than.tzinfo is None:
        raise ValueError(f"older_than must be timezone-aware (datetime.now(UTC) - ...), not {older_than!r}")
    tenants = _Tenants(tenant_id, tuple(exclude_tenants))
    report = PurgeReport(cutoff=older_than, dry_run=dry_run)
    if dry_run:
        await _count(db, report, tenants)
        return report
    while True:
        async with db.writer() as session:
            ids = list(await session.scalars(_old_runs(older_than, tenants).limit(batch_size)))
            if not ids:
                break
            for table, model in _RUN_CHILDREN:
                report.counts[table] += await _count_where(session, model, model.run_id.in_(ids))
            deleted = await session.execute(sa.delete(Run).where(Run.id.in_(ids)))
            report.counts["runs"] += _rowcount(deleted)
        if len(ids) < batch_size:
            break
    report.counts["threads"] = await _delete_batches(db, Thread, _old_threads(older_than, tenants), batch_size)
    report.counts["usage_records"] = await _delete_batches(
        db, UsageRecord, sa.and_(UsageRecord.ts < older_than, tenants.where(UsageRecord.tenant_id, nullable=True)),
        batch_size)
    report.counts["audit_logs"] = await _delete_batches(
        db, AuditLog, sa.and_(AuditLog.created_at < older_than, tenants.where(AuditLog.tenant_id)), batch_size)
    return report


async def _count(db: Database, report: PurgeReport, tenants: _Tenants) -> None:
    runs = _old_runs(report.cutoff, tenants).subquery()
    async with db.session() as session:
        report.counts["runs"] = await _count_where(session, Run, Run.id.in_(sa.select(runs.c.id)))
        for table, model in _RUN_CHILDREN:
            report.counts[table] = await _count_where(session, model, model.run_id.in_(sa.select(runs.c.id)))
        report.counts["threads"] = await _count_where(session, Thread, _old_threads(report.cutoff, tenants))
        report.counts["usage_records"] = await _count_where(
            session, UsageRecord, sa.and_(UsageRecord.ts < report.cutoff,
                                          tenants.where(UsageRecord.tenant_id, nullable=True)))
        report.counts["audit_logs"] = await _count_where(
            session, AuditLog, sa.and_(AuditLog.created_at < report.cutoff, tenants.where(AuditLog.tenant_id)))


async def _count_where(session: Any, model: Any, condition: Any) -> int:
    return int(await session.scalar(sa.select(sa.func.count()).select_from(model).where(condition)) or 0)


async def _delete_batches(db: Database, model: Any, condition: Any, batch_size: int) -> int:
    total = 0
    while True:
        async with db.writer() as session:
            ids: Sequence[uuid.UUID] = list(await session.scalars(sa.select(model.id).where(condition)
                                                                  .limit(batch_size)))
            if not ids:
                return total
            total += _rowcount(await session.execute(sa.delete(model).where(model.id.in_(ids))))
        if len(ids) < batch_size:
            return total


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
