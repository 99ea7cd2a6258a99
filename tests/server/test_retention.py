"""Retention: the purge (SQLite and PostgreSQL), the server's periodic purge and ``agentadapter db purge``."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from agentadapter.config import get_settings
from agentadapter.server.housekeeping import RetentionTask
from agentadapter.store import tenants
from agentadapter.store.database import Database, database_url
from agentadapter.store.models import AgentMessage, AgentRun, AuditLog, Run, RunEventRow, UsageRecord
from agentadapter.store.retention import cutoff_for, purge
from agentadapter.store.threads_models import Thread
from server.conftest import Api, AppFactory
from store.databases import unique

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)


@dataclass
class Seeded:
    """What :func:`seed` wrote: the ids that must go and those that must stay."""

    gone_runs: list[uuid.UUID] = field(default_factory=list)
    kept_runs: list[uuid.UUID] = field(default_factory=list)
    gone_usage: list[uuid.UUID] = field(default_factory=list)
    kept_usage: list[uuid.UUID] = field(default_factory=list)
    gone_audit: list[uuid.UUID] = field(default_factory=list)
    kept_audit: list[uuid.UUID] = field(default_factory=list)
    gone_threads: list[uuid.UUID] = field(default_factory=list)
    kept_threads: list[uuid.UUID] = field(default_factory=list)


async def seed(db: Database, tenant_id: uuid.UUID | None = None) -> Seeded:
    """Old and recent finished runs (with children), old running and queued runs, old and new usage and audit,
    threads last continued long ago or lately, and an old one a run is continuing now."""
    seeded = Seeded()
    async with db.writer() as session:
        if tenant_id is None:
            tenant_id = (await tenants.create_tenant(session, unique("retention"))).id
        project = await tenants.default_project(session, tenant_id)
        cases = [("completed", OLD, True), ("failed", OLD, True), ("cancelled", OLD, True),
                 ("completed", RECENT, False), ("running", OLD, False), ("queued", OLD, False)]
        for status, when, goes in cases:
            run = Run(id=uuid.uuid4(), tenant_id=tenant_id, project_id=project.id, status=status, input="task",
                      created_at=when, updated_at=when,
                      finished_at=when + timedelta(minutes=1) if status in ("completed", "failed", "cancelled")
                      else None)
            session.add(run)
            await session.flush()
            session.add(AgentRun(id=uuid.uuid4(), tenant_id=tenant_id, run_id=run.id, name="a", step=1,
                                 status="completed" if goes else "running", started_at=when))
            session.add(AgentMessage(id=uuid.uuid4(), tenant_id=tenant_id, run_id=run.id, message_id=uuid.uuid4().hex,
                                     type="chat", sender="a", created_at=when))
            session.add(RunEventRow(run_id=run.id, seq=1, tenant_id=tenant_id, type="run_started",
                                    ts=when.timestamp()))
            (seeded.gone_runs if goes else seeded.kept_runs).append(run.id)
        for when, ids in ((OLD, seeded.gone_usage), (RECENT, seeded.kept_usage)):
            usage = UsageRecord(id=uuid.uuid4(), tenant_id=tenant_id, ts=when, provider="test", model="test/echo")
            session.add(usage)
            ids.append(usage.id)
        for when, ids in ((OLD, seeded.gone_audit), (RECENT, seeded.kept_audit)):
            entry = AuditLog(id=uuid.uuid4(), tenant_id=tenant_id, actor_type="system", action="agent.create",
                             resource_type="agent", created_at=when)
            session.add(entry)
            ids.append(entry.id)
        running = next(run_id for run_id in seeded.kept_runs)  # any run: what matters is that one is set
        for created, touched, active, ids in ((OLD, OLD, None, seeded.gone_threads),
                                               (OLD, RECENT, None, seeded.kept_threads),
                                               (OLD, OLD, running, seeded.kept_threads)):
            thread = Thread(id=uuid.uuid4(), tenant_id=tenant_id, messages=[{"role": "user", "parts": []}],
                            created_at=created, updated_at=touched, active_run_id=active)
            session.add(thread)
            ids.append(thread.id)
    return seeded


async def present(db: Database, model: type[object], column: str, ids: list[uuid.UUID]) -> int:
    table = model.__table__  # type: ignore[attr-defined]
    async with db.session() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(table)
                                         .where(table.c[column].in_(ids))) or 0)


async def assert_purged(db: Database, seeded: Seeded) -> None:
    for model in (AgentRun, AgentMessage, RunEventRow):
        assert await present(db, model, "run_id", seeded.gone_runs) == 0
        assert await present(db, model, "run_id", seeded.kept_runs) == len(seeded.kept_runs)
    assert await present(db, Run, "id", seeded.gone_runs) == 0
    assert await present(db, Run, "id", seeded.kept_runs) == len(seeded.kept_runs)
    assert await present(db, UsageRecord, "id", seeded.gone_usage) == 0
    assert await present(db, UsageRecord, "id", seeded.kept_usage) == 1
    assert await present(db, AuditLog, "id", seeded.gone_audit) == 0
    assert await present(db, AuditLog, "id", seeded.kept_audit) == 1
    assert await present(db, Thread, "id", seeded.gone_threads) == 0
    assert await present(db, Thread, "id", seeded.kept_threads) == len(seeded.kept_threads)


async def test_purge_deletes_old_finished_runs_with_their_children_and_old_usage_and_audit(any_api: Api) -> None:
    db = any_api.state.db
    seeded = await seed(db)
    cutoff = cutoff_for(30)
    counted = await purge(db, older_than=cutoff, dry_run=True)
    assert counted.dry_run and counted.counts["runs"] >= 3
    assert await present(db, Run, "id", seeded.gone_runs) == 3  # a dry run deletes nothing

    report = await purge(db, older_than=cutoff, batch_size=2)  # several batches
    # The database may hold other tests' rows (PostgreSQL is shared): ours are among those counted.
    for table in ("runs", "agent_runs", "agent_messages", "run_events"):
        assert report.counts[table] >= 3, report.counts
    assert report.counts["usage_records"] >= 1 and report.counts["audit_logs"] >= 1
    assert report.counts["threads"] >= 1
    await assert_purged(db, seeded)
    again = await purge(db, older_than=cutoff)
    assert again.counts["runs"] == 0 and again.counts["run_events"] == 0


async def test_purge_refuses_a_naive_cutoff_and_a_period_that_is_not_positive(api: Api) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await purge(api.state.db, older_than=datetime.now())  # naive: the point of the test
    with pytest.raises(ValueError, match="must be positive"):
        cutoff_for(0)


async def test_the_server_purges_periodically(make_api: AppFactory) -> None:
    async with make_api(server={"retention_interval_s": 0.05}) as api:
        task = api.state.retention
        assert task is not None
        seeded = await seed(api.state.db)
        async with asyncio.timeout(10):
            start = task.runs
            while task.runs < start + 2:  # a purge that began after the seeding has finished
                await asyncio.sleep(0.02)
        await assert_purged(api.state.db, seeded)
        assert task.last_report is not None
    assert task._task is None  # cancelled on shutdown


async def test_the_periodic_purge_is_off_with_an_interval_of_zero(make_api: AppFactory) -> None:
    async with make_api(server={"retention_interval_s": 0}) as api:
        assert api.state.retention is None


async def test_a_failed_purge_is_logged_and_tried_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A database in a directory that does not exist: every purge fails.
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    task = RetentionTask(db, retention_days=30, interval_s=0.01)
    try:
        with caplog.at_level("ERROR", logger="agentadapter.server.retention"):
            task.start()
            async with asyncio.timeout(10):
                while task.runs < 2:
                    await asyncio.sleep(0.01)
        assert task._task is not None and not task._task.done()  # still scheduled after failures
        assert "the retention purge failed" in caplog.text
    finally:
        await task.stop()
        await db.dispose()




def _with_db(work: object) -> object:
    async def main() -> object:
        db = Database(database_url(get_settings()))
        try:
            return await work(db)  # type: ignore[operator]
        finally:
            await db.dispose()

    return asyncio.run(main())


def test_db_purge_dry_run_changes_nothing_and_purge_deletes(cli: tuple[CliRunner, typer.Typer]) -> None:
    runner, app = cli
    created = runner.invoke(app, ["tenants", "create", "acme", "--json"])
    assert created.exit_code == 0, created.output
    seeded = _with_db(lambda db: seed(db, uuid.UUID(json.loads(created.stdout)["id"])))
    assert isinstance(seeded, Seeded)

    dry = runner.invoke(app, ["db", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.stdout and "nothing was deleted" in dry.stdout
    assert _with_db(lambda db: present(db, Run, "id", seeded.gone_runs)) == 3
    assert _with_db(lambda db: present(db, AuditLog, "id", seeded.gone_audit)) == 1

    done = runner.invoke(app, ["db", "purge", "--days", "30"])
    assert done.exit_code == 0, done.output
    # Through a pipe the table is plain aligned columns: "runs   3".
    rows = dict(line.split() for line in done.stdout.splitlines()[2:])
    assert rows["runs"] == "3" and rows["run_events"] == "3" and rows["usage_records"] == "1", done.stdout
    _with_db(lambda db: assert_purged(db, seeded))

    refused = runner.invoke(app, ["db", "purge", "--days", "0"])
    assert refused.exit_code == 2 and "must be positive" in refused.output
