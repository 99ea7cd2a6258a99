"""The database usage store: totals computed in SQL agree with the in-process reference, on SQLite and
PostgreSQL; batches are written as a few multi-row INSERTs; odd tags are kept, never lost."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.ledger import UsageEntry, UsageLedger, aggregate
from agentadapter.llm.messages import Usage
from agentadapter.store.database import Database
from agentadapter.store.models import Tenant, UsageRecord
from agentadapter.store.usage import DatabaseUsageStore, flush_ledger, usage_totals

DAY1 = dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC).timestamp()
DAY2 = dt.datetime(2026, 11, 20, 0, 15, tzinfo=dt.UTC).timestamp()
DAY2_LATER = dt.datetime(2026, 11, 20, 9, 5, 30, 123456, tzinfo=dt.UTC).timestamp()


def entry(ts: float, model: str = "openai/gpt-4o", cost: float | None = 0.01, cached: bool = False,
          input_tokens: int = 100, output_tokens: int = 10, **tags: str) -> UsageEntry:
    return UsageEntry(ts=ts, provider=model.split("/")[0], model=model,
                      usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=5,
                                  reasoning_tokens=2),
                      cost_usd=0.0 if cached else cost, tags=tags, cached=cached, latency_ms=12.5)


def comparable(totals: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for item in totals:
        row = item.to_dict()
        row["cost_usd"] = round(row["cost_usd"], 9)
        row["latency_ms"] = round(row["latency_ms"], 3)
        rows.append(row)
    return rows


@pytest.fixture
def batch() -> str:
    return uuid.uuid4().hex  # every test's rows carry their own tag: the PostgreSQL database is shared


def entries(tenant: Tenant, batch: str) -> list[UsageEntry]:
    t = str(tenant.id)
    return [
        entry(DAY1, tenant=t, agent="researcher", project="p1", run="r1", source="run", batch=batch, team="ml"),
        entry(DAY2, tenant=t, agent="researcher", project="p1", run="r1", source="run", batch=batch),
        entry(DAY2, "anthropic/claude-3-5-haiku", cost=None, tenant=t, agent="writer", project="p2", batch=batch),
        entry(DAY2_LATER, tenant=t, agent="writer", project="p2", source="gateway", batch=batch, cached=True),
        entry(DAY2_LATER, "openai/gpt-4o-mini", cost=0.002, tenant=t, batch=batch, api_key="k1", team="web"),
        entry(DAY2_LATER, tenant="not-a-uuid", agent="x" * 300, batch=batch),
    ]


GROUPINGS = [
    (),
    ("day",),
    ("hour",),
    ("model",),
    ("provider", "day"),
    ("agent",),
    ("project", "model"),
    ("run", "source"),
    ("api_key",),
    ("team",),
    ("tag:team", "day"),
    ("tenant",),
]


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: ",".join(g) or "overall")
async def test_totals_match_the_in_process_reference(db: Database, tenant: Tenant, batch: str,
                                                     group_by: tuple[str, ...]) -> None:
    recorded = entries(tenant, batch)
    store = DatabaseUsageStore(db)
    await store.record_many(recorded)
    filters = {"batch": batch}
    got = await store.totals(group_by, filters=filters)
    assert comparable(got) == comparable(aggregate(recorded, group_by, filters=filters))


@pytest.mark.parametrize(("since", "until", "filters"), [
    (DAY2, None, {}),
    (None, DAY2, {}),
    (dt.datetime(2026, 11, 20, tzinfo=dt.UTC), dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC), {}),
    (None, None, {"model": "openai/gpt-4o"}),
    (None, None, {"agent": "writer", "day": "2026-11-20"}),
    (None, None, {"hour": "2026-11-20T09:00Z"}),
    (None, None, {"team": "ml"}),
    (None, None, {"tenant": "not-a-uuid"}),
    (None, None, {"agent": "x" * 300}),
])
async def test_time_ranges_and_filters_match_the_reference(db: Database, tenant: Tenant, batch: str, since: Any,
                                                           until: Any, filters: dict[str, str]) -> None:
    recorded = entries(tenant, batch)
    store = DatabaseUsageStore(db)
    await store.record_many(recorded)
    wanted = {**filters, "batch": batch}
    for group_by in ((), ("day", "agent")):
        got = await store.totals(group_by, since, until, wanted)
        assert comparable(got) == comparable(aggregate(recorded, group_by, since, until, wanted))


async def test_service_tags_are_columns_and_the_rest_stays_in_tags(db: Database, tenant: Tenant, batch: str) -> None:
    await DatabaseUsageStore(db).record_many(entries(tenant, batch))
    async with db.session() as session:
        rows = (await session.scalars(sa.select(UsageRecord).where(UsageRecord.tags["batch"].as_string() == batch)
                                      .order_by(UsageRecord.ts, UsageRecord.model))).all()
    first = rows[0]
    assert (first.tenant_id, first.agent, first.project, first.run_id, first.source) == (
        tenant.id, "researcher", "p1", "r1", "run")
    assert first.tags == {"batch": batch, "team": "ml"}
    assert (first.cache_read_tokens, first.reasoning_tokens, first.latency_ms) == (5, 2, 12.5)
    odd = next(r for r in rows if r.tenant_id is None)
    assert odd.agent is None and odd.tags["tenant"] == "not-a-uuid" and odd.tags["agent"] == "x" * 300
    assert first.ts == dt.datetime.fromtimestamp(DAY1, dt.UTC)


async def test_the_tenant_query_sees_only_that_tenant(db: Database, tenant: Tenant, other_tenant: Tenant,
                                                      batch: str) -> None:
    store = DatabaseUsageStore(db)
    await store.record_many(entries(tenant, batch))
    await store.record_many([entry(DAY2, tenant=str(other_tenant.id), agent="researcher", batch=batch)])
    async with db.session() as session:
        mine = await usage_totals(session, tenant.id, ["agent"], since=DAY2)
        theirs = await usage_totals(session, other_tenant.id, ["agent"])
    assert [(t.key["agent"], t.requests) for t in mine] == [(None, 1), ("researcher", 1), ("writer", 2)]
    assert [(t.key["agent"], t.requests, t.input_tokens) for t in theirs] == [("researcher", 1, 100)]


async def test_a_batch_is_a_few_multi_row_inserts_in_one_transaction(db: Database, tenant: Tenant,
                                                                      batch: str) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS"):
            statements.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        store = DatabaseUsageStore(db)
        ledger = UsageLedger(store)
        for i in range(1200):  # nothing awaits meanwhile, so all of them wait in the ledger's buffer
            ledger.record(entry(DAY2 + i, tenant=str(tenant.id), batch=batch, agent=f"a{i % 3}"))
        await ledger.flush()  # also waits for the batch a background flush is writing
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert ledger.pending == 0
    # The ledger hands over batches of 500; each is one INSERT (of 500 rows).
    assert len(statements) == 3 and store.inserts == 3
    totals = await store.totals(["agent"], filters={"batch": batch})
    assert [(t.key["agent"], t.requests) for t in totals] == [("a0", 400), ("a1", 400), ("a2", 400)]


async def test_entries_of_a_deleted_tenant_are_kept_without_it(db: Database, batch: str) -> None:
    ghost = uuid.uuid4()
    store = DatabaseUsageStore(db)
    await store.record_many([entry(DAY2, tenant=str(ghost), batch=batch)])
    totals = await store.totals(["tenant"], filters={"batch": batch})
    assert [(t.key["tenant"], t.requests) for t in totals] == [(str(ghost), 1)]
    async with db.session() as session:
        row = await session.scalar(sa.select(UsageRecord).where(UsageRecord.tags["batch"].as_string() == batch))
    assert row is not None and row.tenant_id is None and row.tags["tenant"] == str(ghost)


async def test_the_ledger_flushes_on_shutdown_and_bad_names_are_refused(db: Database, tenant: Tenant,
                                                                         batch: str) -> None:
    store = DatabaseUsageStore(db)
    ledger = UsageLedger(store)
    ledger.record(entry(DAY2, tenant=str(tenant.id), batch=batch))
    await flush_ledger(ledger)
    assert ledger.pending == 0
    assert (await store.totals(filters={"batch": batch}))[0].requests == 1
    with pytest.raises(InvalidRequestError, match="empty group"):
        await store.totals(["tag:"])


async def test_totals_wait_for_a_batch_being_written(db: Database, tenant: Tenant, batch: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = DatabaseUsageStore(db)
    ledger = UsageLedger(store)
    gate = asyncio.Event()
    insert = store._insert

    async def held_insert(rows: list[dict[str, Any]]) -> None:
        await gate.wait()
        await insert(rows)

    monkeypatch.setattr(store, "_insert", held_insert)
    # The ledger's background flush takes the batch from its buffer and is writing it when a query comes.
    for _ in range(3):
        ledger.record(entry(DAY2, tenant=str(tenant.id), batch=batch))
    for _ in range(5):
        await asyncio.sleep(0)
    assert ledger.pending == 0  # taken by the background flush, not yet in the database
    counting = asyncio.get_running_loop().create_task(ledger.totals(filters={"batch": batch}))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not counting.done()  # it waits for the write rather than miss its rows
    gate.set()
    assert (await counting)[0].requests == 3
