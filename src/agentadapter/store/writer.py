"""The record writer: usage records and credit charges, journaled at once and written to the database in
batches by a thread of their own.

The request path hands a record to :meth:`RecordWriter.submit`: one JSON line appended to the local
journal (:mod:`agentadapter.store.journal`), then the record joins a bounded in-memory queue. That is
all the request path pays; it never waits for the database. A thread with its own event loop and its
own database connection takes the queue in batches (one transaction each: multi-row ``INSERT ... ON
CONFLICT DO NOTHING``, so a record already present is skipped) and, once a journal segment's records
are all committed, deletes the segment.

When the database falls behind (or is down), nothing is dropped: the queue stops growing at
``AGENTADAPTER_LEDGER_QUEUE`` records and further records are only in the journal ("spilled"); the
writer reads them back from the segment when it gets there. A failed batch is retried with back-off
until it is written; a record the database refuses for good (none should: the sinks repair what they
can, such as a deleted tenant) is kept in ``rejected.jsonl`` beside the journal, logged and counted,
never silently dropped. At start-up, journals left by processes that died are replayed
(:func:`~agentadapter.store.journal.orphaned_instances`); at shutdown the writer drains what is queued.

Sinks say how a kind of record is written (:class:`RecordSink`): the usage store's ``usage`` and the
credit balances' ``charge``. The backlog, its high-water mark and what was spilled, replayed, written,
rejected or lost are Prometheus metrics (``agentadapter_ledger_*``) and logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import shutil
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.llm.errors import ConfigurationError
from agentadapter.store.database import Database, PoolSettings, database_outage
from agentadapter.store.journal import (
    FsyncPolicy,
    Journal,
    database_id,
    orphaned_instances,
    read_segment,
    segments,
)

__all__ = ["RecordSink", "RecordWriter", "WriterStats", "writer_for"]

logger = logging.getLogger("agentadapter.store.writer")

T = TypeVar("T")
Record = dict[str, Any]
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


class RecordSink(Protocol):
    """How one kind of record reaches the database."""

    async def write(self, session: AsyncSession, records: Sequence[Mapping[str, Any]]) -> None:
        """Write ``records`` in the writer's transaction, skipping any already present (their ids)."""
        ...

    def committed(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Called in the writer's thread once ``records`` are committed."""
        ...


class _Marker:
    """A place in the queue: the end of a journal segment, and/or a flush waiting for what precedes it."""

    __slots__ = ("future", "segment")

    def __init__(self, segment: int | None, future: concurrent.futures.Future[None] | None) -> None:
        self.segment = segment
        self.future = future


class WriterStats:
    """Counts since the writer started (what the metrics export)."""

    __slots__ = ("backlog", "high_water", "lost", "rejected", "replayed", "spilled", "write_failures", "written")

    def __init__(self) -> None:
        self.backlog = 0
        """Records submitted and not yet committed (queued in memory or only in the journal)."""
        self.high_water = 0
        self.written = 0
        self.spilled = 0
        """Records kept only in the journal because the queue was full (read back later, not lost)."""
        self.replayed = 0
        """Records read back from journals left by processes that stopped without writing them."""
        self.rejected = 0
        self.lost = 0
        """Records that could not be journaled (the disk full or gone) and were not written either."""
        self.write_failures = 0

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class RecordWriter:
    """The journal and the writing thread (see the module docstring)."""

    def __init__(self, database_url: str, journal_root: Path, *, fsync: FsyncPolicy = "interval",
                 fsync_interval_s: float = 1.0, queue_max: int = 100_000, batch_max: int = 2000,
                 segment_bytes: int = 16 << 20, segment_s: float = 5.0, batch_interval_s: float = 0.1,
                 pool: PoolSettings | None = None) -> None:
        if queue_max < 1 or batch_max < 1:
            raise ConfigurationError("the ledger's queue and batch sizes must be positive")
        self.database_url = database_url
        self.journal = Journal(journal_root, fsync=fsync, database=database_id(database_url))
        self.fsync_interval_s = fsync_interval_s
        self.queue_max = queue_max
        self.batch_max = batch_max
        self.segment_bytes = segment_bytes
        self.segment_s = segment_s
        self.batch_interval_s = batch_interval_s
        """How long records gather before a batch that is not full is written."""
        self.stats = WriterStats()
        self.sinks: dict[str, RecordSink] = {}
        self._pool = pool or PoolSettings(pool_size=1, max_overflow=0)
        self._queue: deque[tuple[str, Record] | _Marker] = deque()
        self._queued = 0  # records (not markers) in _queue
        self._markers = 0  # markers in _queue
        self._spilled_in: dict[int, int] = {}  # segment -> records only in the journal
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._idle = False
        self._stopping = False
        self._calls: deque[tuple[Callable[[Database], Awaitable[Any]], concurrent.futures.Future[Any]]] = deque()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._last_failure_log = 0.0
        self._periodic: list[tuple[float, Callable[[Database], Awaitable[None]]]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._replay_listeners: list[Callable[[str], None]] = []
        _WRITERS.add(self)
        _BY_DATABASE[database_id(database_url)] = self

    # ------------------------------------------------------------------------------- the request path

    def register(self, kind: str, sink: RecordSink) -> None:
        self.sinks[kind] = sink

    def on_stop(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Await ``closer()`` when the writer stops, before it drains (a task that submits records)."""
        self._closers.append(closer)

    def on_replayed(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(instance)`` (in the writer's thread) once the journal of a process that died,
        ``instance`` being its journal's name (:attr:`instance` of that process), is all in the database."""
        self._replay_listeners.append(listener)

    @property
    def instance(self) -> str:
        """This process's name among the journals (its journal directory's name)."""
        return self.journal.directory.name

    def every(self, interval_s: float, job: Callable[[Database], Awaitable[None]]) -> None:
        """Run ``job`` on the writer's database every ``interval_s``, between batches (never during one)."""
        self._periodic.append((interval_s, job))

    def submit(self, kind: str, record: Record) -> None:
        """Journal ``record`` (a dict of JSON values carrying its own unique id; ``k`` is set to ``kind``)
        and queue it; never blocks on the database, never raises because it is down."""
        record["k"] = kind
        line = (_ENCODER.encode(record) + "\n").encode()
        with self._lock:
            stats = self.stats
            try:
                self.journal.append(line)
            except OSError as exc:
                journaled = False
                error: OSError | None = exc
            else:
                journaled, error = True, None
            full = self._queued >= self.queue_max
            first_spill = False
            if journaled and full:
                segment = self.journal.segment
                self._spilled_in[segment] = self._spilled_in.get(segment, 0) + 1
                stats.spilled += 1
                first_spill = stats.spilled == 1
            elif full:
                stats.lost += 1
            else:
                self._queue.append((kind, record))
                self._queued += 1
            if journaled or not full:
                stats.backlog += 1
                if stats.backlog > stats.high_water:
                    stats.high_water = stats.backlog
            wake = self._idle and self._queued >= self.batch_max
            if wake:
                self._idle = False
        if error is not None:
            logger.error("could not journal a %s record in %s (%s); %s", kind, self.journal.directory, error,
                         "it is LOST: the queue is full too" if full else "it is kept in memory only",
                         extra={"event": "ledger.journal_failed"})
        if first_spill:
            logger.warning("the database writer is %d records behind; further records wait in the journal (%s) "
                           "until it catches up", self.queue_max, self.journal.directory,
                           extra={"event": "ledger.spilling"})
        if wake:
            self._wake_writer()

    def _wake_writer(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just closed (shutdown)
                loop.call_soon_threadsafe(wake.set)

    async def flush(self) -> None:
        """Wait until every record submitted before this call is in the database."""
        if self._thread is None or not self._thread.is_alive():
            return
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            segment = self.journal.rotate() if self._spilled_in.get(self.journal.segment) else None
            self._queue.append(_Marker(segment, future))
            self._markers += 1
            self._idle = False
        self._wake_writer()
        await asyncio.wrap_future(future)

    async def call(self, job: Callable[[Database], Awaitable[T]]) -> T:
        """Run ``job`` in the writer's thread on its database, between batches: it sees exactly the
        records committed so far (what the credit balances reconcile against)."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the record writer is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            self._calls.append((job, future))
            self._idle = False
        self._wake_writer()
        return await asyncio.wrap_future(future)

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the journal, start the thread, and wait until journals left by stopped processes are replayed
        (register every sink first: a record of a kind without one is kept aside as refused)."""
        if self._thread is not None:
            return
        self.journal.open()
        self._thread = threading.Thread(target=self._run, name="agentadapter-ledger-writer", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Write what is queued and stop. Records that cannot be written in ``timeout_s`` (the database is
        down) stay in the journal for the next start to replay; they are not lost."""
        thread = self._thread
        if thread is None:
            return
        for closer in self._closers:
            await closer()
        with self._lock:
            self._stopping = True
        self._wake_writer()
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._done), timeout_s)
        except TimeoutError:
            logger.error("the database writer could not write %d record(s) within %.0f s of shutting down; they stay "
                         "in the journal %s and are written at the next start", self.stats.backlog, timeout_s,
                         self.journal.directory, extra={"event": "ledger.left_in_journal"})
            with self._lock:
                self._stopping = True
                self._abandon = True
            self._wake_writer()
            await asyncio.wait_for(asyncio.wrap_future(self._done), 10.0)
        self._thread = None

    _abandon = False

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # the thread has nobody else to tell
            logger.critical("the database writer stopped: %s: %s; records stay in the journal %s",
                            type(exc).__name__, exc, self.journal.directory, exc_info=True)
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            if not self._done.done():
                self._done.set_result(None)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        db = Database(self.database_url, pool=self._pool)
        try:
            await self._replay_orphans(db)
            if not self._ready.done():
                self._ready.set_result(None)
            await self._loop_until_stopped(db)
        finally:
            await db.dispose()
            self._release_waiters()
            with self._lock:
                empty = self._queued == 0 and not self._spilled_in and not self._abandon
                self.journal.close(empty=empty)

    async def _loop_until_stopped(self, db: Database) -> None:
        assert self._wake is not None
        last_sync = last_orphans = time.monotonic()
        last_periodic = [time.monotonic()] * len(self._periodic)
        while True:
            item = self._take()
            if isinstance(item, list):
                await self._write(db, item)
            elif isinstance(item, _Marker):
                await self._pass_marker(db, item)
            await self._run_calls(db)
            now = time.monotonic()
            with self._lock:
                if self.journal.fsync == "interval" and now - last_sync >= self.fsync_interval_s:
                    last_sync = now
                    self.journal.sync()
                if (self.journal.segment_bytes >= self.segment_bytes
                        or (self.journal.segment_bytes and now - self.journal.segment_opened >= self.segment_s)):
                    self._queue.append(_Marker(self.journal.rotate(), None))
                    self._markers += 1
            for index, (interval, job) in enumerate(self._periodic):
                if now - last_periodic[index] >= interval:
                    last_periodic[index] = now
                    await self._guarded(job, db)
            if now - last_orphans >= 60.0:  # a sibling process that died leaves its journal to us
                last_orphans = now
                await self._replay_orphans(db)
            with self._lock:
                if self._stopping and (self._abandon or (not self._queue and not self._calls)):
                    return
                if item is not None and (self._queued >= self.batch_max or self._markers or self._calls
                                         or self._stopping):
                    continue
                # Let records gather for a batch: a transaction per handful of records would cost this
                # thread CPU time (and the GIL) that the request path needs. A full batch, a flush, a
                # call or the shutdown wakes it sooner.
                self._idle = True
                self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.batch_interval_s)

    def _release_waiters(self) -> None:
        """At the end: flushes waiting on markers return (what they wait for stays in the journal)."""
        with self._lock:
            markers = [item for item in self._queue if isinstance(item, _Marker)]
            calls = list(self._calls)
            self._calls.clear()
        for marker in markers:
            if marker.future is not None and not marker.future.done():
                marker.future.set_result(None)
        for _, future in calls:
            if not future.done():
                future.set_exception(RuntimeError("the record writer has stopped"))

    async def _guarded(self, job: Callable[[Database], Awaitable[None]], db: Database) -> None:
        try:
            await job(db)
        except Exception as exc:
            logger.warning("a periodic job of the database writer failed (%s: %s)", type(exc).__name__, exc)

    def _take(self) -> list[tuple[str, Record]] | _Marker | None:
        """The next batch of records (up to a marker), or the marker at the head, or None when empty."""
        with self._lock:
            if not self._queue:
                return None
            head = self._queue[0]
            if isinstance(head, _Marker):
                self._queue.popleft()
                self._markers -= 1
                return head
            batch: list[tuple[str, Record]] = []
            while self._queue and len(batch) < self.batch_max:
                item = self._queue[0]
                if isinstance(item, _Marker):
                    break
                self._queue.popleft()
                batch.append(item)
            return batch

    async def _run_calls(self, db: Database) -> None:
        while self._calls:
            with self._lock:
                job, future = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(await job(db))
            except BaseException as exc:
                future.set_exception(exc)

    # ------------------------------------------------------------------------------------ writing

    async def _write(self, db: Database, batch: Sequence[tuple[str, Record]], *, queued: bool = True) -> None:
        """Write a batch in one transaction, retrying with back-off until it is in (or shutdown gives up)."""
        unknown = [item for item in batch if item[0] not in self.sinks]
        if unknown:
            for kind, record in unknown:
                self._reject([record], f"no writer for records of kind {kind!r}", kind=kind)
            known = [item for item in batch if item[0] in self.sinks]
        else:
            known = list(batch)
        delay = 0.05
        while True:
            try:
                await self._write_once(db, known)
            except Exception as exc:
                self.stats.write_failures += 1
                if not database_outage(exc):
                    await self._isolate(db, batch, exc)
                    break
                now = time.monotonic()
                if now - self._last_failure_log >= 30.0:
                    self._last_failure_log = now
                    logger.warning("the database writer cannot reach the database (%s: %s); %d record(s) wait in the "
                                   "journal and are retried", type(exc).__name__, exc, self.stats.backlog,
                                   extra={"event": "ledger.write_failed"})
                if self._abandon:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                await self._run_calls_quietly(db)
                continue
            break
        if queued:
            with self._lock:
                self._queued -= len(batch)
                self.stats.backlog -= len(batch)
                self.stats.written += len(batch)

    async def _run_calls_quietly(self, db: Database) -> None:
        with contextlib.suppress(Exception):
            await self._run_calls(db)

    async def _write_once(self, db: Database, batch: Sequence[tuple[str, Record]]) -> None:
        by_kind: dict[str, list[Record]] = {}
        for kind, record in batch:
            by_kind.setdefault(kind, []).append(record)
        async with db.writer() as session:
            for kind, records in by_kind.items():
                await self.sinks[kind].write(session, records)
        for kind, records in by_kind.items():
            self.sinks[kind].committed(records)

    async def _isolate(self, db: Database, batch: Sequence[tuple[str, Record]], error: Exception) -> None:
        """A batch the database refused (not an outage): write its records one by one, keeping the ones it
        refuses in rejected.jsonl, so one bad record never holds up the others."""
        logger.error("the database refused a batch of %d record(s) (%s: %s); writing them one by one",
                     len(batch), type(error).__name__, error)
        for item in batch:
            try:
                await self._write_once(db, [item])
            except Exception as exc:
                if database_outage(exc):
                    await self._write(db, [item], queued=False)
                else:
                    self._reject([item[1]], f"{type(exc).__name__}: {exc}", kind=item[0])

    def _reject(self, records: Sequence[Record], reason: str, *, kind: str | None = None) -> None:
        path = self.journal.root / "rejected.jsonl"
        with path.open("ab") as file:
            for record in records:
                line = {"k": kind, **record} if kind is not None else record
                file.write((json.dumps({"reason": reason[:500], "record": line}, default=str) + "\n").encode())
        path.chmod(0o600)
        self.stats.rejected += len(records)
        logger.error("%d record(s) refused by the database (%s) are kept in %s", len(records), reason[:300], path,
                     extra={"event": "ledger.rejected"})

    async def _pass_marker(self, db: Database, marker: _Marker) -> None:
        if marker.segment is not None:
            with self._lock:
                spilled = self._spilled_in.pop(marker.segment, 0)
            if spilled:
                # Some of the segment's records are only in the file: write it all (present ones are skipped).
                await self._write_file(db, self.journal.path(marker.segment))
                with self._lock:
                    self.stats.backlog -= spilled
                    self.stats.written += spilled
            with self._lock:
                self.journal.remove(marker.segment)
        if marker.future is not None and not marker.future.done():
            marker.future.set_result(None)

    async def _write_file(self, db: Database, path: Path) -> int:
        records, torn = read_segment(path)
        if torn:
            logger.warning("%d unreadable line(s) in %s (torn by a crash mid-write, before their call answered)",
                           torn, path)
        pairs = [(str(record.pop("k", "")), record) for record in records]
        for start in range(0, len(pairs), self.batch_max):
            await self._write(db, pairs[start:start + self.batch_max], queued=False)
        return len(pairs)

    async def _replay_orphans(self, db: Database) -> None:
        for directory, lock_fd in orphaned_instances(self.journal.root, self.journal.database):
            if directory == self.journal.directory:
                os.close(lock_fd)
                continue
            try:
                replayed = 0
                for path in segments(directory):
                    replayed += await self._write_file(db, path)
                    path.unlink()
                if replayed:
                    self.stats.replayed += replayed
                    logger.warning("replayed %d record(s) from the journal of a process that stopped before writing "
                                   "them (%s); records already in the database were skipped", replayed, directory,
                                   extra={"event": "ledger.replayed"})
                for listener in self._replay_listeners:
                    try:
                        listener(directory.name)
                    except Exception:
                        logger.exception("a listener of replayed journals failed on %s", directory.name)
                shutil.rmtree(directory, ignore_errors=True)
            finally:
                os.close(lock_fd)


# ------------------------------------------------------------------------------------------- metrics

_WRITERS: weakref.WeakSet[RecordWriter] = weakref.WeakSet()
_BY_DATABASE: weakref.WeakValueDictionary[str, RecordWriter] = weakref.WeakValueDictionary()


def writer_for(database_url: str) -> RecordWriter | None:
    """This process's running writer for that database, if it has one (the service's); what a repository
    hands a record to when the database cannot take it now (the run recorder's events)."""
    writer = _BY_DATABASE.get(database_id(database_url))
    return writer if writer is not None and writer._thread is not None else None


class _WriterCollector(Collector):
    """The writers' counts as metric families, read at scrape time (nothing is updated per record)."""

    def collect(self) -> Iterator[Metric]:
        totals = WriterStats()
        for writer in list(_WRITERS):
            for name, value in writer.stats.to_dict().items():
                if name == "high_water":
                    totals.high_water = max(totals.high_water, value)
                else:
                    setattr(totals, name, getattr(totals, name) + value)
        yield GaugeMetricFamily("agentadapter_ledger_backlog",
                                "Usage records and credit charges not yet in the database (queued or journaled).",
                                value=totals.backlog)
        yield GaugeMetricFamily("agentadapter_ledger_backlog_high_water",
                                "The largest backlog of the database writer since the process started.",
                                value=totals.high_water)
        for name, help_text in (
            ("written", "Records the database writer committed."),
            ("spilled", "Records kept only in the journal because the writer's queue was full (not lost)."),
            ("replayed", "Records replayed from journals of processes that stopped before writing them."),
            ("rejected", "Records the database refused, kept in rejected.jsonl beside the journal."),
            ("lost", "Records that could be neither journaled nor queued."),
            ("write_failures", "Batches the database writer had to retry."),
        ):
            yield CounterMetricFamily(f"agentadapter_ledger_{name}", help_text, value=getattr(totals, name))


REGISTRY.register(_WriterCollector())
