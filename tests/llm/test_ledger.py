"""The usage ledger: recording answers, totals by provider, model, tag and time, the in-process
store's bounds, thread and asyncio safety, and a slow or failing store behind a buffer."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.ledger import (
    InMemoryUsageStore,
    TimeBound,
    UsageEntry,
    UsageLedger,
    UsageStore,
    UsageTotals,
    aggregate,
)
from agentadapter.llm.messages import Response, Usage


def _response(provider: str = "openai", model: str = "gpt-4o-mini", *, cost: float | None = 0.01,
              cached: bool = False, input_tokens: int = 100, output_tokens: int = 20) -> Response:
    return Response(
        id="r", provider=provider, model=model, cost_usd=cost, cached=cached, latency_ms=5.0,
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=10,
                    reasoning_tokens=3),
    )


def _entry(ts: float, provider: str = "openai", model: str = "m", cost: float | None = 1.0,
           **tags: str) -> UsageEntry:
    return UsageEntry(ts=ts, provider=provider, model=model, usage=Usage(input_tokens=10, output_tokens=1),
                      cost_usd=cost, tags=tags)


async def test_record_response_and_overall_totals() -> None:
    ledger = UsageLedger()
    entry = ledger.record_response(_response(), {"agent": "researcher", "run": "r1"})
    assert entry.provider == "openai" and entry.model == "gpt-4o-mini" and entry.cost_usd == 0.01
    assert dict(entry.tags) == {"agent": "researcher", "run": "r1"} and entry.latency_ms == 5.0
    ledger.record_response(_response(cost=0.02))
    [total] = await ledger.totals()
    assert total.key == {}
    assert (total.requests, total.input_tokens, total.output_tokens) == (2, 200, 40)
    assert (total.cached_input_tokens, total.reasoning_tokens, total.total_tokens) == (20, 6, 240)
    assert total.cost_usd == pytest.approx(0.03)
    assert total.to_dict()["cost_usd"] == pytest.approx(0.03)
    assert ledger.totals_now()[0].requests == 2


async def test_tags_are_copied_not_shared() -> None:
    ledger = UsageLedger()
    tags = {"agent": "a"}
    entry = ledger.record_response(_response(), tags)
    tags["agent"] = "changed"
    assert entry.tags["agent"] == "a"
    with pytest.raises(TypeError):
        entry.tags["agent"] = "x"  # type: ignore[index]


async def test_totals_group_by_provider_model_and_tags() -> None:
    ledger = UsageLedger()
    ledger.record_response(_response("openai", "gpt-4o-mini", cost=0.01), {"agent": "researcher", "project": "p"})
    ledger.record_response(_response("openai", "gpt-4o-mini", cost=0.02), {"agent": "writer", "project": "p"})
    ledger.record_response(_response("anthropic", "claude-haiku-4-5", cost=0.05), {"agent": "writer"})
    by_provider = await ledger.totals(group_by=["provider"])
    assert [(t.key["provider"], t.requests, round(t.cost_usd, 6)) for t in by_provider] == [
        ("anthropic", 1, 0.05), ("openai", 2, 0.03)]
    by_agent_model = await ledger.totals(group_by=["agent", "model"])
    assert [(t.key["agent"], t.key["model"], t.requests) for t in by_agent_model] == [
        ("researcher", "gpt-4o-mini", 1), ("writer", "claude-haiku-4-5", 1), ("writer", "gpt-4o-mini", 1)]
    by_project = await ledger.totals(group_by=["tag:project"])
    assert [(t.key["tag:project"], t.requests) for t in by_project] == [(None, 1), ("p", 2)]


async def test_filters_and_time_ranges() -> None:
    store = InMemoryUsageStore()
    day1 = datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()
    day2 = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()
    for entry in (_entry(day1, agent="a"), _entry(day1 + 60, agent="b"), _entry(day2, provider="gemini", agent="a")):
        await store.record(entry)
    only_a = await store.totals(filters={"agent": "a"})
    assert only_a[0].requests == 2
    assert (await store.totals(filters={"agent": "a", "provider": "gemini"}))[0].requests == 1
    assert (await store.totals(filters={"tag:agent": "zzz"}))[0].requests == 0  # an empty overall total
    since_day2 = await store.totals(since=datetime(2026, 11, 2, tzinfo=UTC))
    assert since_day2[0].requests == 1
    until_day2 = await store.totals(until=day2)  # until is exclusive
    assert until_day2[0].requests == 2
    per_day = await store.totals(group_by=["day"])
    assert [(t.key["day"], t.requests) for t in per_day] == [("2026-11-01", 2), ("2026-11-02", 1)]
    per_hour = await store.totals(group_by=("hour",), filters={"provider": "openai"})
    assert [t.key["hour"] for t in per_hour] == ["2026-11-01T12:00Z"]


async def test_cached_and_unpriced_answers() -> None:
    ledger = UsageLedger()
    ledger.record_response(_response(cost=0.5, cached=True))
    ledger.record_response(_response(cost=None))
    ledger.record_response(_response(cost=0.25))
    [total] = await ledger.totals()
    assert total.requests == 3 and total.cached_responses == 1 and total.unpriced_requests == 1
    assert total.cost_usd == pytest.approx(0.25)  # a cache hit paid no provider; an unknown price is not guessed
    assert total.input_tokens == 200  # tokens of the two provider calls only


def test_empty_group_names_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="empty group/filter name"):
        aggregate([], group_by=[""])


def test_the_in_memory_store_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryUsageStore(max_entries=3)
    with caplog.at_level(logging.WARNING, logger="agentadapter.ledger"):
        for index in range(5):
            store.add(_entry(float(index)))
    assert len(store) == 3 and store.dropped == 2
    assert [e.ts for e in store.entries()] == [2.0, 3.0, 4.0]
    assert len([r for r in caplog.records if "is full" in r.getMessage()]) == 1
    with pytest.raises(InvalidRequestError):
        InMemoryUsageStore(max_entries=0)


def test_recording_from_many_threads_loses_nothing() -> None:
    ledger = UsageLedger()

    def work() -> None:
        for _ in range(2000):
            ledger.record_response(_response(cost=0.001), {"agent": threading.current_thread().name})

    threads = [threading.Thread(target=work, name=f"t{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals = ledger.totals_now(group_by=["agent"])
    assert len(totals) == 8 and all(t.requests == 2000 for t in totals)
    assert sum(t.cost_usd for t in totals) == pytest.approx(16.0)


async def test_recording_from_many_tasks_loses_nothing() -> None:
    ledger = UsageLedger()

    async def work(name: str) -> None:
        for _ in range(200):
            ledger.record_response(_response(), {"run": name})
            await asyncio.sleep(0)

    await asyncio.gather(*(work(f"run{i}") for i in range(10)))
    assert [t.requests for t in await ledger.totals(group_by=["run"])] == [200] * 10


class SlowStore:
    """A store whose writes await (like a database), optionally failing."""

    def __init__(self) -> None:
        self.entries: list[UsageEntry] = []
        self.fail = False

    async def record(self, entry: UsageEntry) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("database is down")
        self.entries.append(entry)

    async def totals(self, group_by: Sequence[str] = (), since: TimeBound = None, until: TimeBound = None,
                     filters: Mapping[str, str] | None = None) -> list[UsageTotals]:
        return aggregate(self.entries, group_by, since, until, filters)


async def test_an_async_store_is_written_in_the_background() -> None:
    store = SlowStore()
    assert isinstance(store, UsageStore)
    ledger = UsageLedger(store)
    for _ in range(5):
        ledger.record_response(_response())
    assert ledger.pending == 5 and store.entries == []  # recording never waited for the store
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(store.entries) == 5 and ledger.pending == 0
    with pytest.raises(TypeError, match=r"await ledger\.totals"):
        ledger.totals_now()


async def test_a_failing_store_keeps_entries_for_the_next_flush(caplog: pytest.LogCaptureFixture) -> None:
    store = SlowStore()
    store.fail = True
    ledger = UsageLedger(store)
    with caplog.at_level(logging.WARNING, logger="agentadapter.ledger"):
        ledger.record_response(_response())
        ledger.record_response(_response())
        for _ in range(20):
            await asyncio.sleep(0)
    assert ledger.pending == 2
    assert any("database is down" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConnectionError):
        await ledger.flush()
    store.fail = False
    [total] = await ledger.totals()
    assert total.requests == 2 and ledger.pending == 0


def test_without_a_loop_entries_wait_for_flush() -> None:
    store = SlowStore()
    ledger = UsageLedger(store, max_pending=2)
    for _ in range(3):
        ledger.record_response(_response())
    assert ledger.pending == 2 and ledger.lost == 1  # bounded: the oldest is dropped and counted
    asyncio.run(ledger.flush())
    assert len(store.entries) == 2
