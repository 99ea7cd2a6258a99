"""The record writer and the running credit balances, on SQLite and PostgreSQL: nothing dropped when the
database falls behind (the queue spills to the journal), a journal left by a process killed with
SIGKILL replayed exactly once, metrics exported, and the credit rules kept by the running balance."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.llm.errors import InsufficientCreditsError
from agentadapter.llm.ledger import UsageEntry, UsageLedger
from agentadapter.llm.messages import Response, Usage
from agentadapter.orchestrator.events import RunEvent
from agentadapter.store import credits, runs, tenants
from agentadapter.store.balances import RunningBalances
from agentadapter.store.database import Database
from agentadapter.store.errors import DatabaseUnavailable
from agentadapter.store.models import Tenant, UsageRecord
from agentadapter.store.recorder import RunEventSink, StoreRunRecorder
from agentadapter.store.usage import JournaledUsageStore, UsageSink
from agentadapter.store.writer import RecordWriter
from agentadapter.testing import offline_llm
from fakes.priced import PRICE_PER_TOKEN, PRICED_MODEL, priced_backend
from store.accounts import fund, stored
from store.databases import migrated_sqlite

CALL = 1000 * PRICE_PER_TOKEN


def entry(tenant: Tenant, batch: str, number: int = 0) -> UsageEntry:
    return UsageEntry(ts=time.time(), provider="openai", model="openai/gpt-4o-mini",
                      usage=Usage(input_tokens=10 + number, output_tokens=5), cost_usd=0.001,
                      tags={"tenant": str(tenant.id), "source": "gateway", "batch": batch})


async def rows(db: Database, batch: str) -> int:
    async with db.session() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(UsageRecord)
                                     .where(UsageRecord.tags["batch"].as_string() == batch))
    return int(count or 0)


class GatedSink(UsageSink):
    """The usage sink behind a gate: a database that has fallen behind until the test opens it."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    async def write(self, session: AsyncSession, records: Sequence[Mapping[str, Any]]) -> None:
        await asyncio.to_thread(self.gate.wait)
        await super().write(session, records)


@pytest.fixture
def batch() -> str:
    return uuid.uuid4().hex


@pytest.fixture
async def writer(db: Database, tmp_path: Path) -> AsyncIterator[RecordWriter]:
    records = RecordWriter(db.url, tmp_path / "ledger", queue_max=50, batch_max=40)
    yield records
    await records.stop()


async def test_a_writer_that_falls_behind_spills_to_the_journal_and_loses_nothing(
        db: Database, tenant: Tenant, batch: str, writer: RecordWriter) -> None:
    store = JournaledUsageStore(db, writer)
    sink = GatedSink()
    writer.register("usage", sink)
    await writer.start()
    ledger = UsageLedger(store)
    for number in range(1000):
        ledger.record(entry(tenant, batch, number))
    stats = writer.stats
    assert stats.backlog == 1000 and stats.high_water == 1000
    assert stats.spilled >= 1000 - 50 - 40  # the queue (and the batch the gate holds) took the rest
    assert REGISTRY.get_sample_value("agentadapter_ledger_backlog") is not None
    sink.gate.set()
    await ledger.flush()  # every record recorded before it is in the database, spilled ones included
    assert await rows(db, batch) == 1000
    assert (stats.backlog, stats.lost, stats.rejected) == (0, 0, 0)
    totals = await ledger.totals(filters={"batch": batch})
    assert totals[0].input_tokens == sum(10 + n for n in range(1000))


KILLED = """
import os, signal, sys, time, json, asyncio
from pathlib import Path
from agentadapter.store.writer import RecordWriter
writer = RecordWriter(sys.argv[1], Path(sys.argv[2]))
writer.journal.open()  # journaled, never written: the thread is not even started
for number in range(int(sys.argv[3])):
    writer.submit("usage", {"id": os.urandom(16).hex(), "ts": time.time(), "p": "openai", "m": "openai/m",
                            "u": [number, 1, 0, 0, 0], "c": 0.5, "t": {"tenant": sys.argv[4], "batch": sys.argv[5]},
                            "x": False, "l": 1.0})
writer.submit("usage", {"id": "torn"})  # not a UUID: refused by the database, kept aside
os.kill(os.getpid(), signal.SIGKILL)
"""


async def test_a_journal_left_by_a_killed_process_is_replayed_once(db: Database, tenant: Tenant, batch: str,
                                                                  tmp_path: Path) -> None:
    root = tmp_path / "ledger"
    done = subprocess.run([sys.executable, "-c", KILLED, db.url, str(root), "300", str(tenant.id), batch],
                          capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    [left] = [p for p in root.iterdir() if p.is_dir()]
    copy = root / "copy-of-the-same-journal"
    shutil.copytree(left, copy)  # as if replayed twice: a second process's start-up, or a crash mid-replay
    writer = RecordWriter(db.url, root)
    writer.register("usage", UsageSink())
    await writer.start()  # replays before it returns
    try:
        assert await rows(db, batch) == 300
        assert writer.stats.replayed == 602 and writer.stats.rejected == 2
        assert not left.exists() and not copy.exists()
        assert "torn" in (root / "rejected.jsonl").read_text()
    finally:
        await writer.stop()
    async with db.session() as session:
        total = await session.scalar(sa.select(sa.func.sum(UsageRecord.input_tokens))
                                     .where(UsageRecord.tags["batch"].as_string() == batch))
    assert total == sum(range(300))
    assert [p.name for p in root.iterdir()] == ["rejected.jsonl"]  # the writer's own journal removed at stop


async def test_a_live_process_journal_is_not_replayed_by_another(db: Database, tenant: Tenant, batch: str,
                                                                 tmp_path: Path) -> None:
    first = RecordWriter(db.url, tmp_path / "ledger")
    store = JournaledUsageStore(db, first)
    gated = GatedSink()
    first.register("usage", gated)
    await first.start()
    store.add(entry(tenant, batch))
    second = RecordWriter(db.url, tmp_path / "ledger")
    second.register("usage", UsageSink())
    await second.start()
    try:
        assert second.stats.replayed == 0 and await rows(db, batch) == 0
    finally:
        await second.stop()
        gated.gate.set()
        await first.stop()
    assert await rows(db, batch) == 1


# ------------------------------------------------------------------------------- running balances


@pytest.fixture
async def balances(db: Database, tmp_path: Path) -> AsyncIterator[RunningBalances]:
    writer = RecordWriter(db.url, tmp_path / "ledger")
    running = RunningBalances(writer, reconcile_s=0.2)
    await writer.start()
    yield running
    await writer.stop()


async def test_a_burst_on_the_running_balance_cannot_overdraw_it_and_is_written_once(
        db: Database, tenant: Tenant, balances: RunningBalances) -> None:
    await fund(db, tenant, 10 * CALL)
    guard = credits.CreditGuard(db, tenant.id, required=False, balances=balances)
    llm = offline_llm(backends={"priced": priced_backend()}, guards=[guard])
    try:
        results = await asyncio.gather(*(llm.generate(PRICED_MODEL, "hi", max_tokens=1000) for _ in range(40)),
                                       return_exceptions=True)
    finally:
        await llm.aclose()
    answered = [r for r in results if isinstance(r, Response)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert len(answered) == 10 and len(refused) == 30
    assert "held by calls in progress" in str(refused[0]) and refused[0].needed_usd == CALL
    assert await balances.available(tenant.id) == (pytest.approx(0.0, abs=1e-12), 0.0)
    await balances.writer.flush()
    balance, charged = await stored(db, tenant)
    assert balance == pytest.approx(0.0, abs=1e-12) and -sum(charged) == pytest.approx(10 * CALL)
    assert len(charged) == 10


async def test_an_overrun_on_the_running_balance_stops_at_minus_its_own_hold(
        db: Database, tenant: Tenant, balances: RunningBalances) -> None:
    await fund(db, tenant, 1.0)
    guard = credits.CreditGuard(db, tenant.id, required=False, balances=balances)
    hold = await guard.reserve(0.5, {})
    await hold.settle(3.0)  # 0.5 available beyond the hold, plus the hold itself: 1.0 of the 2.5 overrun
    with pytest.raises(InsufficientCreditsError, match="available"):
        await guard.reserve(0.0, {})  # a negative balance holds nothing, not even a free call
    await balances.writer.flush()
    balance, charged = await stored(db, tenant)
    assert (balance, charged) == (-0.5, [-1.5])
    async with db.session() as session:
        [charge] = (await credits.transactions(session, tenant.id, kind="charge")).items
    assert (charge.details["overrun_usd"], charge.details["uncollected_usd"], charge.balance_after_usd) == (
        2.5, 1.5, -0.5)


async def test_grants_elsewhere_reach_the_running_balance_by_reconciliation(
        db: Database, tenant: Tenant, balances: RunningBalances) -> None:
    guard = credits.CreditGuard(db, tenant.id, required=True, balances=balances)
    with pytest.raises(InsufficientCreditsError, match="has none"):
        await guard.reserve(0.1, {})
    await fund(db, tenant, 2.0)  # as `agentadapter credits add` does, from another process
    async with asyncio.timeout(10):
        while await balances.available(tenant.id) is None:
            await asyncio.sleep(0.05)
    hold = await guard.reserve(0.5, {})
    await hold.settle(0.25)
    await fund(db, tenant, 1.0)
    await balances.refresh([tenant.id])  # what a grant made in this process does
    assert await balances.available(tenant.id) == (pytest.approx(2.75), 0.0)
    await balances.writer.flush()
    assert await stored(db, tenant) == (pytest.approx(2.75), [-0.25])


async def test_a_charge_replayed_twice_moves_the_balance_once(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    await fund(db, tenant, 1.0)
    root = tmp_path / "ledger"
    writer = RecordWriter(db.url, root)
    running = RunningBalances(writer, reconcile_s=0)
    await writer.start()
    try:
        guard = credits.CreditGuard(db, tenant.id, required=False, balances=running)
        hold = await guard.reserve(0.5, {})
        assert isinstance(hold, credits.CreditHold)
        again = credits.CreditHold(guard, hold.id, hold.amount_usd)  # the same reservation settled twice
        await hold.settle(0.25)
        await again.settle(0.25)
        await writer.flush()
        assert await running.available(tenant.id) == (0.75, 0.0)
    finally:
        await writer.stop()
    assert await stored(db, tenant) == (0.75, [-0.25])
    assert os.listdir(root) == []


async def test_a_journal_is_replayed_only_into_its_own_database(db: Database, tenant: Tenant, batch: str,
                                                                tmp_path: Path, template_dir: Path) -> None:
    root = tmp_path / "ledger"
    done = subprocess.run([sys.executable, "-c", KILLED, db.url, str(root), "5", str(tenant.id), batch],
                          capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (tmp_path / "other").mkdir()
    other = RecordWriter(migrated_sqlite(tmp_path / "other", template_dir), root)  # shares the data dir only
    other.register("usage", UsageSink())
    await other.start()
    await other.stop()
    assert other.stats.replayed == 0 and len([p for p in root.iterdir() if p.is_dir()]) == 1
    mine = RecordWriter(db.url, root)
    mine.register("usage", UsageSink())
    await mine.start()
    await mine.stop()
    assert mine.stats.replayed == 6 and await rows(db, batch) == 5


class Unavailable(Database):
    """The database as the recorder sees it while it is away: every write session fails as an outage."""

    def writer(self) -> Any:
        raise DatabaseUnavailable(self.name, ConnectionRefusedError("the database is away"))


async def test_a_run_event_the_database_cannot_take_now_is_written_later_once(
        db: Database, tenant: Tenant, tmp_path: Path) -> None:
    async with db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        run = await runs.create_run(session, tenant.id, input="x", project_id=project.id)
    writer = RecordWriter(db.url, tmp_path / "ledger")
    writer.register("run_event", RunEventSink())
    await writer.start()
    away = Unavailable(db.url)
    try:
        event = RunEvent(seq=3, type="run_started", run_id=str(run.id), agent=None, ts=time.time(), data={"a": 1})
        await StoreRunRecorder(away, tenant.id).save_event(event)  # deferred, not raised, not lost
        await StoreRunRecorder(away, tenant.id).save_event(event)  # twice: written once
        await writer.flush()
    finally:
        await writer.stop()
        await away.dispose()
    async with db.session() as session:
        events = await runs.list_events(session, tenant.id, run.id)
        stored = await runs.get_run(session, tenant.id, run.id)
    assert [(e.seq, e.type, e.data) for e in events] == [(3, "run_started", {"a": 1})]
    assert stored.last_seq == 3
    with pytest.raises(DatabaseUnavailable):  # without the service's writer, the orchestrator hears of it
        await StoreRunRecorder(Unavailable(db.url), tenant.id).save_event(event)


async def test_a_query_does_not_hang_on_a_writer_that_is_far_behind(
        db: Database, tenant: Tenant, batch: str, writer: RecordWriter) -> None:
    store = JournaledUsageStore(db, writer)
    sink = GatedSink()
    writer.register("usage", sink)
    await writer.start()
    store.flush_timeout_s = 0.2
    store.add(entry(tenant, batch))
    async with asyncio.timeout(10):
        assert (await UsageLedger(store).totals(filters={"batch": batch}))[0].requests == 0  # answered, not hung
    sink.gate.set()
    store.flush_timeout_s = 30.0
    assert (await UsageLedger(store).totals(filters={"batch": batch}))[0].requests == 1
