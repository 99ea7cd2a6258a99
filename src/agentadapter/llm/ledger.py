"""The usage ledger: tokens and cost of every answer, totalled by provider, model and caller tags.

The facade hands each finished :class:`~agentadapter.llm.messages.Response` to
:meth:`UsageLedger.record_response` with the request's tags (``agent``, ``run``, ``project``, ...).
Recording is synchronous and cheap (a few microseconds: one small object and one append under a
lock), so it sits on the request path without slowing it; it never awaits and never raises for a
store that is down.

Where entries go is a :class:`UsageStore`, the interface the database layer implements later
(``store/`` imports these types, never the other way round). :class:`InMemoryUsageStore` is the
in-process one: the last ``max_entries`` entries, totals computed on demand. A store with a
synchronous ``add(entry)`` is handed each entry at once (the in-process store; the service's
database store, which appends it to a local journal and writes it from a thread of its own, losing
none). For any other store whose writes are I/O, the ledger buffers up to ``max_pending`` entries
and writes them in the background on the running event loop (or at the next :meth:`UsageLedger.flush`
/ :meth:`UsageLedger.totals`), so a slow store never delays an answer; past that it drops the oldest,
counted in :attr:`UsageLedger.lost` and logged.

Totals count tokens and cost of provider calls only: an answer served from our own response cache
(``Response.cached``) costs nothing and is counted under ``cached_responses``. An answer with no
known price counts its tokens and is counted under ``unpriced_requests``; its cost is not guessed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Response, Usage

__all__ = [
    "GROUP_FIELDS",
    "InMemoryUsageStore",
    "UsageEntry",
    "UsageLedger",
    "UsageStore",
    "UsageTotals",
    "aggregate",
]

logger = logging.getLogger("agentadapter.ledger")

GROUP_FIELDS: frozenset[str] = frozenset({"provider", "model", "day", "hour"})
"""Names :meth:`UsageStore.totals` groups and filters by; any other name is a tag key
(``agent``, ``run``, ``project``), also writable as ``tag:<key>``. ``day`` / ``hour`` are UTC."""

TimeBound = float | datetime | None
"""A bound of a time range: a Unix timestamp, a datetime (naive means local time), or None."""

_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True, frozen=True)
class UsageEntry:
    """One answer's usage, as the ledger records it."""

    ts: float
    """When it was recorded, in Unix seconds."""
    provider: str
    model: str
    usage: Usage
    cost_usd: float | None
    """None when the model's price is unknown; 0.0 for an answer served from our cache."""
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY_TAGS)
    cached: bool = False
    """Served from our response cache: no provider call, no cost."""
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "tags": dict(self.tags),
            "cached": self.cached,
            "latency_ms": self.latency_ms,
        }


@dataclass(slots=True)
class UsageTotals:
    """Sums over the entries of one group; ``key`` holds the group's values (None for a missing tag)."""

    key: dict[str, str | None] = field(default_factory=dict)
    requests: int = 0
    """Every recorded answer, cache hits included."""
    cached_responses: int = 0
    unpriced_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    """Summed over provider calls; divide by ``requests - cached_responses`` for the mean."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, entry: UsageEntry) -> None:
        self.requests += 1
        if entry.cached:
            self.cached_responses += 1
            return
        usage = entry.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.latency_ms += entry.latency_ms
        if entry.cost_usd is None:
            self.unpriced_requests += 1
        else:
            self.cost_usd += entry.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": dict(self.key),
            "requests": self.requests,
            "cached_responses": self.cached_responses,
            "unpriced_requests": self.unpriced_requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "latency_ms": round(self.latency_ms, 3),
        }


@runtime_checkable
class UsageStore(Protocol):
    """Where usage entries are kept. The database implements this; so does :class:`InMemoryUsageStore`."""

    async def record(self, entry: UsageEntry) -> None:
        """Keep one entry. (A store may also offer ``async record_many(entries)``, which the ledger
        then uses to write what it buffered in batches.)"""
        ...

    async def totals(
        self,
        group_by: Sequence[str] = (),
        since: TimeBound = None,
        until: TimeBound = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Totals of the entries with ``since <= ts < until`` matching every filter, one per group.

        ``group_by`` and ``filters`` use :data:`GROUP_FIELDS` and tag keys. With no ``group_by``
        the answer is one overall total (also when nothing matched). Groups come sorted by key.
        """
        ...


# ------------------------------------------------------------------------------- in-process store


class InMemoryUsageStore:
    """The in-process :class:`UsageStore`: the most recent ``max_entries`` entries, in memory.

    Thread- and asyncio-safe: a lock guards the deque, and nothing awaits while holding it. When
    full, the oldest entries are dropped (counted in :attr:`dropped`, warned about once), so totals
    then cover the retained window only; use a database-backed store to keep everything.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries <= 0:
            raise InvalidRequestError(f"max_entries must be positive, got {max_entries}")
        self.max_entries = max_entries
        self.dropped = 0
        self._entries: deque[UsageEntry] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: UsageEntry) -> None:
        """Record synchronously (the ledger's fast path)."""
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) <= self.max_entries:
                return
            self._entries.popleft()
            self.dropped += 1
            first_drop = self.dropped == 1
        if first_drop:
            logger.warning(
                "the in-memory usage store is full (%d entries); the oldest entries are dropped from now on, "
                "so usage totals cover the most recent %d answers only. Raise max_entries or use a "
                "database-backed usage store to keep everything",
                self.max_entries, self.max_entries,
            )

    async def record(self, entry: UsageEntry) -> None:
        self.add(entry)

    def entries(self) -> list[UsageEntry]:
        """A snapshot of the retained entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def totals_now(
        self,
        group_by: Sequence[str] = (),
        since: TimeBound = None,
        until: TimeBound = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """:meth:`totals`, synchronously."""
        return aggregate(self.entries(), group_by, since, until, filters)

    async def totals(
        self,
        group_by: Sequence[str] = (),
        since: TimeBound = None,
        until: TimeBound = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        return self.totals_now(group_by, since, until, filters)


def aggregate(
    entries: Iterable[UsageEntry],
    group_by: Sequence[str] = (),
    since: TimeBound = None,
    until: TimeBound = None,
    filters: Mapping[str, str] | None = None,
) -> list[UsageTotals]:
    """Group and sum entries: the reference semantics of :meth:`UsageStore.totals`."""
    if isinstance(group_by, str):
        group_by = (group_by,)
    keys = [_normalized_field(name) for name in group_by]
    wanted = {_normalized_field(name): value for name, value in (filters or {}).items()}
    start, end = _timestamp(since), _timestamp(until)
    groups: dict[tuple[str | None, ...], UsageTotals] = {}
    for entry in entries:
        if (start is not None and entry.ts < start) or (end is not None and entry.ts >= end):
            continue
        if any(_field(entry, name) != value for name, value in wanted.items()):
            continue
        values = tuple(_field(entry, name) for name in keys)
        totals = groups.get(values)
        if totals is None:
            totals = groups[values] = UsageTotals(key=dict(zip(group_by, values, strict=True)))
        totals.add(entry)
    if not keys:
        return [groups.get((), UsageTotals())]
    return [groups[values] for values in sorted(groups, key=lambda vs: tuple(v or "" for v in vs))]


def _normalized_field(name: str) -> str:
    if not name or name == "tag:":
        raise InvalidRequestError(
            "an empty group/filter name; use provider, model, day, hour or a tag key such as 'agent'"
        )
    return name


def _field(entry: UsageEntry, name: str) -> str | None:
    if name == "provider":
        return entry.provider
    if name == "model":
        return entry.model
    if name == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(entry.ts))
    if name == "hour":
        return time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(entry.ts))
    return entry.tags.get(name[4:] if name.startswith("tag:") else name)


def _timestamp(bound: TimeBound) -> float | None:
    if bound is None:
        return None
    if isinstance(bound, datetime):
        return bound.timestamp()
    return float(bound)


# ---------------------------------------------------------------------------------------- the ledger


class UsageLedger:
    """Records every answer's usage into a :class:`UsageStore` and answers "how much, by what"."""

    def __init__(self, store: UsageStore | None = None, *, max_pending: int = 10_000) -> None:
        self.store: UsageStore = store if store is not None else InMemoryUsageStore()
        add = getattr(self.store, "add", None)
        # A store with a synchronous add() is written directly; any other is written in the background.
        self._direct: Any = add if callable(add) else None
        self._pending: deque[UsageEntry] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._flushing: set[asyncio.Task[None]] = set()
        self.batch_size = 500
        """Most entries written in one call of a store's ``record_many``."""
        self.lost = 0
        """Entries dropped because the pending buffer of a slow or failing store overflowed."""

    # ----------------------------------------------------------------------------------- recording

    def record_response(self, response: Response, tags: Mapping[str, str] | None = None) -> UsageEntry:
        """Record one answer with the caller's tags (``Request.tags``); returns the entry.

        An answer served from our response cache is recorded with ``cost_usd=0.0``: no provider
        was paid for it.
        """
        entry = UsageEntry(
            ts=time.time(),
            provider=response.provider,
            model=response.model,
            usage=response.usage,
            cost_usd=0.0 if response.cached else response.cost_usd,
            tags=MappingProxyType(dict(tags)) if tags else _EMPTY_TAGS,
            cached=response.cached,
            latency_ms=response.latency_ms,
        )
        self.record(entry)
        return entry

    def record(self, entry: UsageEntry) -> None:
        """Record an entry; never blocks on I/O and never raises because a store is unavailable."""
        if self._direct is not None:
            self._direct(entry)
            return
        with self._lock:
            full = len(self._pending) == self._pending.maxlen
            if full:
                self.lost += 1  # deque(maxlen) drops the oldest on append
            self._pending.append(entry)
        if full and (self.lost == 1 or self.lost % 10_000 == 0):
            logger.error(
                "usage entries are being dropped: %s has fallen %d entries behind (%d dropped so far); give the "
                "ledger a store that writes synchronously (add()) or raise max_pending",
                type(self.store).__name__, self._pending.maxlen, self.lost, extra={"event": "ledger.lost"},
            )
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop in this thread: the next flush() or totals() writes the entries
        with self._lock:
            if any(not task.done() and task.get_loop() is loop for task in self._flushing):
                return  # a flush on this loop will pick the entry up
            task = loop.create_task(self._flush_quietly())
            self._flushing.add(task)
        task.add_done_callback(self._forget_flush)

    def _forget_flush(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._flushing.discard(task)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # a background task has nobody to raise to
            logger.warning(
                "could not write usage entries to %s (%s: %s); %d kept to retry at the next flush",
                type(self.store).__name__, type(exc).__name__, exc, len(self._pending),
            )

    async def flush(self) -> None:
        """Write the buffered entries to the store; entries a failing store refused stay buffered.

        A store with ``record_many(entries)`` (the database's) gets them in batches of up to
        :attr:`batch_size`, one round trip each; any other gets them one by one. A store with its own
        ``async flush()`` (one that writes in the background) is then waited for too.
        """
        # A background flush may be writing a batch it already took from the buffer: wait for it, so
        # that after flush() returns every entry recorded before the call is in the store.
        current = asyncio.current_task()
        loop = asyncio.get_running_loop()
        with self._lock:
            writing = [t for t in self._flushing if t is not current and not t.done() and t.get_loop() is loop]
        if writing:
            await asyncio.gather(*writing, return_exceptions=True)
        record_many = getattr(self.store, "record_many", None)
        while True:
            with self._lock:
                if not self._pending:
                    break
                if record_many is None:
                    batch = [self._pending.popleft()]
                else:
                    batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
            try:
                if record_many is None:
                    await self.store.record(batch[0])
                else:
                    await record_many(batch)
            except BaseException:
                with self._lock:
                    self._pending.extendleft(reversed(batch))  # keep them for the next attempt, in order
                raise
        store_flush = getattr(self.store, "flush", None)
        if callable(store_flush):  # a store that writes in the background (the service's journaled one)
            await store_flush()

    @property
    def pending(self) -> int:
        """Entries recorded but not yet written to the store."""
        return len(self._pending)

    # ------------------------------------------------------------------------------------- queries

    async def totals(
        self,
        group_by: Sequence[str] = (),
        since: TimeBound = None,
        until: TimeBound = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Totals from the store, after writing what is buffered (see :meth:`UsageStore.totals`)."""
        await self.flush()
        return await self.store.totals(group_by, since, until, filters)

    def totals_now(
        self,
        group_by: Sequence[str] = (),
        since: TimeBound = None,
        until: TimeBound = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Totals without awaiting: the in-process store's answer (any store with ``totals_now``)."""
        totals_now = getattr(self.store, "totals_now", None)
        if not callable(totals_now):
            raise TypeError(
                f"{type(self.store).__name__} answers totals asynchronously; use `await ledger.totals(...)`"
            )
        result: list[UsageTotals] = totals_now(group_by, since, until, filters)
        return result
