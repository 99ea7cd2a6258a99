"""The usage ledger in the database: one ``usage_records`` row per LLM call, totals computed in SQL.

:class:`DatabaseUsageStore` is the ledger's :class:`~agentadapter.llm.ledger.UsageStore` on a
database: :meth:`DatabaseUsageStore.record_many` writes a batch as multi-row ``INSERT`` statements in
one write transaction. The service uses :class:`JournaledUsageStore`: the ledger hands it each entry
synchronously, it appends the entry to the local journal with a unique id and the
:class:`~agentadapter.store.writer.RecordWriter`'s thread writes it (``UsageSink``: ``INSERT ... ON
CONFLICT (id) DO NOTHING``, so a record replayed after a crash is never written twice); no entry is
buffered on the event loop, and none is dropped when the database falls behind.
:meth:`DatabaseUsageStore.totals` has the semantics of :func:`~agentadapter.llm.ledger.aggregate` (the
in-process reference) and computes them with ``GROUP BY``; :func:`usage_totals` is the same query for
one tenant (what ``GET /v1/usage`` answers).

The tags the service sets are columns, so they can be grouped and filtered without reading JSON:
``tenant`` -> ``tenant_id`` (a UUID; a value that is not one, or a tenant that no longer exists,
stays in ``tags``), ``agent``, ``project``, ``run`` -> ``run_id``, ``api_key`` -> ``api_key_id`` and
``source``. A value longer than its column also stays in ``tags``, and every other tag lives there;
queries read a column and fall back to the JSON, so nothing recorded is invisible to them. ``day``
and ``hour`` are UTC, rendered as the in-process store renders them, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.ledger import GROUP_FIELDS, TimeBound, UsageEntry, UsageLedger, UsageTotals
from agentadapter.llm.messages import Usage
from agentadapter.store.database import Database
from agentadapter.store.models import Tenant, UsageRecord
from agentadapter.store.writer import RecordWriter

__all__ = ["TAG_COLUMNS", "DatabaseUsageStore", "JournaledUsageStore", "UsageSink", "flush_ledger", "usage_record",
           "usage_totals"]

logger = logging.getLogger("agentadapter.store.usage")

TAG_COLUMNS: Mapping[str, str] = {
    "tenant": "tenant_id", "agent": "agent", "project": "project", "run": "run_id", "api_key": "api_key_id",
    "source": "source",
}
"""Tag keys stored in a column of their own (tag -> column)."""

_STRING_TAGS = {tag: column for tag, column in TAG_COLUMNS.items() if tag != "tenant"}
_ROWS_PER_INSERT = 1000
"""Rows per INSERT statement: 20 columns each stays well under SQLite's and asyncpg's bind-parameter limits."""


def _column_length(column: str) -> int:
    length = getattr(UsageRecord.__table__.c[column].type, "length", None)
    return int(length) if length else 1_000_000


_LENGTHS = {column: _column_length(column) for column in (*_STRING_TAGS.values(), "provider", "model")}


def _row(entry: UsageEntry, record_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The ``usage_records`` values of one entry: service tags in their columns, the rest in ``tags``."""
    tags = dict(entry.tags)
    values: dict[str, Any] = {column: None for column in TAG_COLUMNS.values()}
    raw_tenant = tags.get("tenant")
    if raw_tenant is not None:
        try:
            values["tenant_id"] = uuid.UUID(raw_tenant)
        except ValueError:
            pass  # not a tenant id: it stays a plain tag, where queries still find it
        else:
            del tags["tenant"]
    for tag, column in _STRING_TAGS.items():
        value = tags.get(tag)
        if value is not None and len(value) <= _LENGTHS[column]:
            values[column] = tags.pop(tag)
    usage = entry.usage
    values.update(
        id=record_id or uuid.uuid4(),
        ts=datetime.fromtimestamp(entry.ts, UTC),
        # A provider or model name longer than its column is cut rather than failing the whole batch.
        provider=entry.provider[:_LENGTHS["provider"]],
        model=entry.model[:_LENGTHS["model"]],
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=entry.cost_usd if entry.cost_usd is None or math.isfinite(entry.cost_usd) else None,
        latency_ms=entry.latency_ms,
        cached=entry.cached,
        tags=tags,
    )
    return values


class DatabaseUsageStore:
    """The ledger's store on the service's database (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inserts = 0
        """INSERT statements written so far (a batch of up to 1000 entries is one)."""

    async def record(self, entry: UsageEntry) -> None:
        await self.record_many([entry])

    async def record_many(self, entries: Sequence[UsageEntry]) -> None:
        """Write entries in one transaction, as multi-row INSERTs of up to 1000 rows each."""
        if not entries:
            return
        rows = [_row(entry) for entry in entries]
        try:
            await self._insert(rows)
        except IntegrityError:
            # The only constraint a row can break is the tenant's foreign key: a call finished
            # after its tenant was deleted, or a caller tagged a tenant that never existed.
            # Keep those rows unattributed (the id stays in their tags) rather than lose the batch.
            orphans = await self._detach_unknown_tenants(rows)
            if not orphans:
                raise
            logger.warning(
                "%d usage record(s) name tenants that do not exist (%s); they are kept without a tenant, "
                "the id in their tags", orphans, ", ".join(sorted({str(r["tags"]["tenant"]) for r in rows
                                                                   if "tenant" in r["tags"]}))[:300],
            )
            await self._insert(rows)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        async with self.db.writer() as session:
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                await session.execute(sa.insert(UsageRecord), rows[start:start + _ROWS_PER_INSERT])
                self.inserts += 1

    async def _detach_unknown_tenants(self, rows: list[dict[str, Any]]) -> int:
        wanted = {row["tenant_id"] for row in rows if row["tenant_id"] is not None}
        if not wanted:
            return 0
        async with self.db.session() as session:
            known = set((await session.scalars(sa.select(Tenant.id).where(Tenant.id.in_(wanted)))).all())
        detached = 0
        for row in rows:
            if row["tenant_id"] is not None and row["tenant_id"] not in known:
                row["tags"] = {**row["tags"], "tenant": str(row["tenant_id"])}
                row["tenant_id"] = None
                detached += 1
        return detached

    async def totals(
        self,
        group_by: Sequence[str] = (),
        since: TimeBound = None,
        until: TimeBound = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Totals of every recorded entry (see :meth:`~agentadapter.llm.ledger.UsageStore.totals`)."""
        async with self.db.session() as session:
            return await _query_totals(session, group_by, since, until, filters, tenant_id=None)


# ------------------------------------------------------------------------------- the journaled store


def usage_record(entry: UsageEntry) -> dict[str, Any]:
    """An entry as the journal keeps it (compact keys), with the unique id its row will carry."""
    usage = entry.usage
    return {"id": os.urandom(16).hex(), "ts": entry.ts, "p": entry.provider, "m": entry.model,
            "u": [usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
                  usage.reasoning_tokens],
            "c": entry.cost_usd, "t": dict(entry.tags), "x": entry.cached, "l": entry.latency_ms}


def _entry(record: Mapping[str, Any]) -> tuple[uuid.UUID, UsageEntry]:
    tokens = record["u"]
    usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1], cached_input_tokens=tokens[2],
                  cache_write_tokens=tokens[3], reasoning_tokens=tokens[4])
    return uuid.UUID(record["id"]), UsageEntry(
        ts=float(record["ts"]), provider=str(record["p"]), model=str(record["m"]), usage=usage,
        cost_usd=None if record["c"] is None else float(record["c"]), tags=dict(record.get("t") or {}),
        cached=bool(record.get("x")), latency_ms=float(record.get("l") or 0.0))


class UsageSink:
    """Writes journaled usage records (the writer's ``usage`` kind): ``INSERT ... ON CONFLICT (id) DO
    NOTHING``, so a record replayed from a journal is never written twice."""

    async def write(self, session: AsyncSession, records: Sequence[Mapping[str, Any]]) -> None:
        rows = [_row(entry, record_id) for record_id, entry in map(_entry, records)]
        await _detach_missing_tenants(session, rows)
        insert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        # The table, not the ORM class: Core's executemany, without the ORM's bulk bookkeeping per row.
        statement = insert(UsageRecord.__table__).on_conflict_do_nothing(index_elements=["id"])
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            await session.execute(statement, rows[start:start + _ROWS_PER_INSERT])

    def committed(self, records: Sequence[Mapping[str, Any]]) -> None:
        return None


async def _detach_missing_tenants(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Rows naming a tenant that does not exist (deleted while its call ran) keep the id in their tags."""
    wanted = {row["tenant_id"] for row in rows if row["tenant_id"] is not None}
    if not wanted:
        return
    known = set((await session.scalars(sa.select(Tenant.id).where(Tenant.id.in_(wanted)))).all())
    if len(known) == len(wanted):
        return
    for row in rows:
        if row["tenant_id"] is not None and row["tenant_id"] not in known:
            row["tags"] = {**row["tags"], "tenant": str(row["tenant_id"])}
            row["tenant_id"] = None
    logger.warning("usage records name tenants that no longer exist (%s); they are kept without a tenant, the id "
                   "in their tags", ", ".join(sorted(str(t) for t in wanted - known))[:300])


class JournaledUsageStore(DatabaseUsageStore):
    """The service's usage store: :meth:`add` journals the entry and queues it for the
    :class:`~agentadapter.store.writer.RecordWriter`'s thread, which writes it in a batch (see the module
    docstrings of :mod:`agentadapter.store.writer` and :mod:`agentadapter.store.journal`). The ledger
    calls :meth:`add` synchronously, so nothing is buffered on the event loop and nothing is dropped."""

    def __init__(self, db: Database, writer: RecordWriter) -> None:
        super().__init__(db)
        self.writer = writer
        writer.register("usage", UsageSink())

    def add(self, entry: UsageEntry) -> None:
        self.writer.submit("usage", usage_record(entry))

    async def record(self, entry: UsageEntry) -> None:
        self.add(entry)

    async def record_many(self, entries: Sequence[UsageEntry]) -> None:
        for entry in entries:
            self.add(entry)

    flush_timeout_s = 5.0
    """The longest :meth:`flush` waits: a query answers with what is written by then rather than hang on
    a writer that is far behind (or retrying a database that is away)."""

    async def flush(self) -> None:
        """Wait until every entry added before this call is in the database (at most ``flush_timeout_s``)."""
        try:
            await asyncio.wait_for(self.writer.flush(), self.flush_timeout_s)
        except TimeoutError:
            logger.info("the record writer is %d record(s) behind; answering with what is written so far",
                        self.writer.stats.backlog)


async def usage_totals(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    group_by: Sequence[str] = (),
    since: TimeBound = None,
    until: TimeBound = None,
    filters: Mapping[str, str] | None = None,
) -> list[UsageTotals]:
    """One tenant's totals: :meth:`DatabaseUsageStore.totals` over the rows of ``tenant_id`` only."""
    return await _query_totals(session, group_by, since, until, filters, tenant_id=tenant_id)


async def flush_ledger(ledger: UsageLedger) -> None:
    """Write what the ledger holds before the database closes (the server's shutdown), and stop the
    record writer of a journaled store.

    A failure is logged with the number of entries it leaves unwritten, and does not stop the
    shutdown: the process is ending and has nowhere else to keep them.
    """
    try:
        await ledger.flush()
    except Exception as exc:
        logger.error("could not write %d usage entries before shutting down (%s: %s); they are lost",
                     ledger.pending, type(exc).__name__, exc)
    if isinstance(ledger.store, JournaledUsageStore):
        # What the database cannot take now stays in the journal, replayed at the next start.
        await ledger.store.writer.stop()


# ------------------------------------------------------------------------------------------- queries


@dataclass(slots=True, frozen=True)
class _Group:
    """How one group_by / filter name is read from a row."""

    name: str
    expressions: tuple[sa.SQLColumnExpression[Any], ...]

    def value(self, raw: Sequence[Any]) -> str | None:
        if self.name == "tenant":  # the column (a UUID), or the tag of a value that is not one
            tenant_id, tag = raw
            return str(tenant_id) if tenant_id is not None else tag
        value = raw[0]
        return None if value is None else str(value)


def _tag(key: str) -> sa.SQLColumnExpression[Any]:
    value: sa.SQLColumnExpression[Any] = UsageRecord.tags[key].as_string()
    return value


def _group(name: str, dialect: str) -> _Group:
    if not name or name == "tag:":
        raise InvalidRequestError(
            "an empty group/filter name; use provider, model, day, hour or a tag key such as 'agent'"
        )
    if name in GROUP_FIELDS:
        if name in ("provider", "model"):
            return _Group(name, (getattr(UsageRecord, name),))
        return _Group(name, (_time_bucket(name, dialect),))
    key = name[4:] if name.startswith("tag:") else name
    column = TAG_COLUMNS.get(key)
    if column is None:
        return _Group(key, (_tag(key),))
    if key == "tenant":
        return _Group("tenant", (UsageRecord.tenant_id, _tag("tenant")))
    return _Group(key, (sa.func.coalesce(getattr(UsageRecord, column), _tag(key)),))


def _time_bucket(name: str, dialect: str) -> sa.SQLColumnExpression[Any]:
    """``YYYY-MM-DD`` (day) or ``YYYY-MM-DDTHH:00Z`` (hour) of ``ts`` in UTC, as the ledger writes them."""
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", UsageRecord.ts)
        return sa.func.to_char(utc, "YYYY-MM-DD" if name == "day" else 'YYYY-MM-DD"T"HH24:00"Z"')
    # SQLite keeps the UTC timestamp as text ("2026-11-21 02:17:00.123456"), which strftime reads.
    return sa.func.strftime("%Y-%m-%d" if name == "day" else "%Y-%m-%dT%H:00Z", UsageRecord.ts)


def _filter(name: str, value: str, dialect: str) -> sa.ColumnElement[bool]:
    group = _group(name, dialect)
    if group.name != "tenant":
        return group.expressions[0] == value
    try:
        tenant_id = uuid.UUID(value)
    except ValueError:
        return _tag("tenant") == value
    return sa.or_(UsageRecord.tenant_id == tenant_id, _tag("tenant") == str(tenant_id))


def _bound(bound: TimeBound) -> datetime | None:
    if bound is None:
        return None
    if isinstance(bound, datetime):
        return bound.astimezone(UTC)  # a naive datetime is local time, as in the ledger
    return datetime.fromtimestamp(float(bound), UTC)


def _provider_calls(value: sa.SQLColumnExpression[Any]) -> sa.SQLColumnExpression[Any]:
    """``value`` for a provider call, 0 for an answer from our cache (which used and cost nothing)."""
    return sa.func.coalesce(sa.func.sum(sa.case((UsageRecord.cached, 0), else_=value)), 0)


_SUMS: tuple[tuple[str, sa.SQLColumnExpression[Any]], ...] = (
    ("requests", sa.func.count()),
    ("cached_responses", sa.func.coalesce(sa.func.sum(sa.case((UsageRecord.cached, 1), else_=0)), 0)),
    ("unpriced_requests", _provider_calls(sa.case((UsageRecord.cost_usd.is_(None), 1), else_=0))),
    ("input_tokens", _provider_calls(UsageRecord.input_tokens)),
    ("output_tokens", _provider_calls(UsageRecord.output_tokens)),
    ("cached_input_tokens", _provider_calls(UsageRecord.cache_read_tokens)),
    ("cache_write_tokens", _provider_calls(UsageRecord.cache_write_tokens)),
    ("reasoning_tokens", _provider_calls(UsageRecord.reasoning_tokens)),
    ("cost_usd", _provider_calls(sa.func.coalesce(UsageRecord.cost_usd, 0.0))),
    ("latency_ms", _provider_calls(UsageRecord.latency_ms)),
)
_FLOAT_SUMS = frozenset({"cost_usd", "latency_ms"})


async def _query_totals(
    session: AsyncSession,
    group_by: Sequence[str] | str,
    since: TimeBound,
    until: TimeBound,
    filters: Mapping[str, str] | None,
    *,
    tenant_id: uuid.UUID | None,
) -> list[UsageTotals]:
    names = [group_by] if isinstance(group_by, str) else list(group_by)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    groups = [_group(name, dialect) for name in names]
    conditions: list[sa.ColumnElement[bool]] = []
    if tenant_id is not None:
        conditions.append(UsageRecord.tenant_id == tenant_id)
    start, end = _bound(since), _bound(until)
    if start is not None:
        conditions.append(UsageRecord.ts >= start)
    if end is not None:
        conditions.append(UsageRecord.ts < end)
    conditions.extend(_filter(name, value, dialect) for name, value in (filters or {}).items())
    keys = [expression for group in groups for expression in group.expressions]
    statement = sa.select(*keys, *(sum_.label(label) for label, sum_ in _SUMS)).where(*conditions)
    if keys:
        # By position: PostgreSQL would not match an expression with bound parameters (a JSON key,
        # a time format) against its twin in the select list, whose parameters are numbered apart.
        statement = statement.group_by(*(sa.literal_column(str(n)) for n in range(1, len(keys) + 1)))
    started = time.perf_counter()
    rows = (await session.execute(statement)).all()
    logger.debug("usage totals: %d group(s) in %.1f ms", len(rows), (time.perf_counter() - started) * 1000)
    return _merge(names, groups, rows)


def _merge(names: list[str], groups: list[_Group], rows: Iterable[sa.Row[Any]]) -> list[UsageTotals]:
    """Rows -> UsageTotals, merging rows whose keys read the same (a tenant as a column or as a tag)."""
    merged: dict[tuple[str | None, ...], UsageTotals] = {}
    for row in rows:
        position = 0
        values: list[str | None] = []
        for group in groups:
            width = len(group.expressions)
            values.append(group.value(row[position:position + width]))
            position += width
        sums = row[position:]
        key = tuple(values)
        totals = merged.get(key)
        if totals is None:
            totals = merged[key] = UsageTotals(key=dict(zip(names, key, strict=True)))
        for (label, _), value in zip(_SUMS, sums, strict=True):
            number = float(value or 0.0) if label in _FLOAT_SUMS else int(value or 0)
            setattr(totals, label, getattr(totals, label) + number)
    if not names:
        return [merged.get((), UsageTotals())]
    return [merged[values] for values in sorted(merged, key=lambda vs: tuple(v or "" for v in vs))]
