"""The shared-context contract: every test runs against the in-process and the Redis context."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agentadapter.protocol import (
    Change,
    InvalidValueError,
    ProtocolClosedError,
    SharedContext,
    VersionConflictError,
    WatchOverflowError,
)

ContextFactory = Callable[..., Awaitable[SharedContext]]


async def test_set_get_and_versions(context: SharedContext) -> None:
    assert await context.get("task") is None
    assert await context.get("task", "default") == "default"
    missing = await context.get_versioned("task")
    assert (missing.value, missing.version, missing.exists) == (None, 0, False)
    first = await context.set("task", {"goal": "analyze", "steps": [1, 2]})
    second = await context.set("status", "running")
    assert 0 < first < second
    assert await context.get("task") == {"goal": "analyze", "steps": [1, 2]}
    current = await context.get_versioned("status")
    assert (current.value, current.version, current.exists) == ("running", second, True)


async def test_values_are_copies(context: SharedContext) -> None:
    value = {"items": [1]}
    await context.set("list", value)
    value["items"].append(2)  # mutating the caller's object does not change the stored value
    read = await context.get("list")
    assert read == {"items": [1]}
    read["items"].append(3)
    assert await context.get("list") == {"items": [1]}


async def test_compare_and_set(context: SharedContext) -> None:
    created = await context.compare_and_set("plan", ["a"], 0)  # 0: only if absent
    with pytest.raises(VersionConflictError, match="another writer changed it first") as caught:
        await context.compare_and_set("plan", ["b"], 0)
    assert (caught.value.key, caught.value.expected, caught.value.actual) == ("plan", 0, created)
    updated = await context.compare_and_set("plan", ["a", "b"], created)
    assert updated > created
    with pytest.raises(VersionConflictError):
        await context.compare_and_set("plan", ["stale"], created)
    assert await context.get("plan") == ["a", "b"]


async def test_versions_are_never_reused_after_a_delete(context: SharedContext) -> None:
    version = await context.set("k", 1)
    assert await context.delete("k") is True
    assert await context.delete("k") is False
    recreated = await context.set("k", 1)
    assert recreated > version
    with pytest.raises(VersionConflictError):  # the old reader's CAS must not succeed (no ABA)
        await context.compare_and_set("k", 2, version)


async def test_delete_with_expected_version(context: SharedContext) -> None:
    version = await context.set("k", 1)
    with pytest.raises(VersionConflictError):
        await context.delete("k", expected_version=version + 100)
    assert await context.delete("k", expected_version=version) is True


async def test_twenty_concurrent_cas_increments_lose_nothing(make_context: ContextFactory) -> None:
    # Two context instances (on Redis: two clients) so that writers really race.
    contexts = [await make_context(), await make_context()]

    async def increment(context: SharedContext) -> int:
        attempts = 0
        while True:
            attempts += 1
            current = await context.get_versioned("counter")
            await asyncio.sleep(0)  # let the other writers read the same version
            try:
                await context.compare_and_set("counter", (current.value or 0) + 1, current.version)
                return attempts
            except VersionConflictError:
                continue

    attempts = await asyncio.gather(*(increment(contexts[i % 2]) for i in range(20)))
    assert await contexts[0].get("counter") == 20
    assert max(attempts) > 1  # the writers did collide, and the retries resolved it


async def test_update_retries_until_it_wins(make_context: ContextFactory) -> None:
    contexts = [await make_context(), await make_context()]

    async def add_one(value: Any) -> Any:
        await asyncio.sleep(0)
        return value + 1

    results = await asyncio.gather(
        *(contexts[i % 2].update("counter", add_one, default=0, writer=f"w{i}") for i in range(20))
    )
    assert sorted(results) == list(range(1, 21))
    assert await contexts[1].get("counter") == 20
    changes = await contexts[0].history("counter")
    assert [c.value for c in changes] == list(range(1, 21))


async def test_agent_namespaces(context: SharedContext) -> None:
    researcher = context.namespace("researcher")
    writer = context.namespace("writer")
    await researcher.set("memory", {"facts": 3})
    await writer.set("memory", {"drafts": 1})
    await context.set("task", "analyze")
    assert await researcher.get("memory") == {"facts": 3}
    assert await writer.get("memory") == {"drafts": 1}
    assert await context.get("agents/researcher/memory") == {"facts": 3}
    assert await researcher.keys() == ["memory"]
    assert await researcher.items() == {"memory": {"facts": 3}}
    assert await context.keys() == ["agents/researcher/memory", "agents/writer/memory", "task"]
    assert await context.keys("agents/") == ["agents/researcher/memory", "agents/writer/memory"]
    [change] = await researcher.history()
    assert (change.key, change.writer, change.value) == ("memory", "researcher", {"facts": 3})
    version = (await researcher.get_versioned("memory")).version
    await researcher.compare_and_set("memory", {"facts": 4}, version)
    assert await researcher.delete("memory") is True
    assert await context.get("agents/researcher/memory") is None


async def test_history_by_key_prefix_and_time(context: SharedContext) -> None:
    await context.set("a/1", 1, writer="alice")
    await context.set("b/1", 2)
    await context.set("a/2", 3)
    await context.delete("a/1", writer="bob")
    everything = await context.history()
    assert [(c.key, c.op) for c in everything] == [("a/1", "set"), ("b/1", "set"), ("a/2", "set"), ("a/1", "delete")]
    assert [c.version for c in everything] == sorted(c.version for c in everything)
    assert [c.key for c in await context.history(prefix="a/")] == ["a/1", "a/2", "a/1"]
    deleted = (await context.history("a/1"))[-1]
    assert (deleted.op, deleted.value, deleted.writer) == ("delete", None, "bob")
    assert (await context.history("a/1"))[0].writer == "alice"
    assert await context.history(limit=2) == everything[:2]
    assert await context.history(since=everything[-1].ts + 3600) == []
    assert everything[0].to_dict()["key"] == "a/1"


async def test_watch_a_key_as_an_iterator(context: SharedContext) -> None:
    await context.set("plan", "before the watch")
    watch = await context.watch("plan")
    await context.set("other", 1)
    await context.set("plan", "v1")
    await context.delete("plan")
    received = []
    async for change in watch:
        received.append(change)
        if len(received) == 2:
            break
    assert [(c.key, c.op, c.value) for c in received] == [("plan", "set", "v1"), ("plan", "delete", None)]
    await watch.close()
    async for _ in watch:
        pytest.fail("a closed watch yields nothing more")


async def test_watch_a_prefix_with_callbacks(context: SharedContext) -> None:
    seen_sync: list[Change] = []
    seen_async: list[Change] = []
    done = asyncio.Event()

    async def on_change(change: Change) -> None:
        seen_async.append(change)
        if len(seen_async) == 3:
            done.set()

    sync_watch = await context.watch("results/", seen_sync.append, prefix=True)
    async_watch = await context.watch("results/", on_change, prefix=True)
    for index in range(3):
        await context.set(f"results/{index}", index)
    await context.set("elsewhere", 0)
    await asyncio.wait_for(done.wait(), 5)
    assert [c.key for c in seen_async] == ["results/0", "results/1", "results/2"]
    await async_watch.close()
    await sync_watch.close()
    assert [c.key for c in seen_sync] == ["results/0", "results/1", "results/2"]


async def test_watch_a_namespace_sees_relative_keys(context: SharedContext) -> None:
    researcher = context.namespace("researcher")
    async with await researcher.watch("", prefix=True) as watch:
        await context.set("task", "not in the namespace")
        await researcher.set("memory", 1)
        change = await asyncio.wait_for(anext(watch), 5)
    assert (change.key, change.writer, change.value) == ("memory", "researcher", 1)


async def test_a_watcher_that_falls_behind_is_told(context: SharedContext) -> None:
    watch = await context.watch("k", buffer_size=2)
    for value in range(5):
        await context.set("k", value)
    received: list[Any] = []
    with pytest.raises(WatchOverflowError, match="fell 2 changes behind"):
        while True:
            received.append((await asyncio.wait_for(anext(watch), 5)).value)
    assert received == [0, 1]
    await watch.close()


async def test_invalid_values_and_keys(context: SharedContext) -> None:
    with pytest.raises(InvalidValueError, match="not JSON-serializable"):
        await context.set("k", {"when": object()})
    with pytest.raises(InvalidValueError, match="not JSON-serializable"):
        await context.set("k", float("nan"))
    with pytest.raises(InvalidValueError, match="context key"):
        await context.set("", 1)
    assert await context.get("k") is None


async def test_items_and_keys(context: SharedContext) -> None:
    await context.set("x/a", 1)
    await context.set("x/b", [2])
    await context.set("y", None)
    assert await context.items("x/") == {"x/a": 1, "x/b": [2]}
    assert await context.keys() == ["x/a", "x/b", "y"]
    assert (await context.get_versioned("y")).exists  # a stored None is still a value


async def test_history_can_be_disabled(make_context: ContextFactory) -> None:
    context = await make_context(history_max=0)
    await context.set("k", 1)
    assert await context.history() == []


async def test_a_closed_context_refuses_work(make_context: ContextFactory) -> None:
    context = await make_context(history_max=7)
    await context.close()
    with pytest.raises(ProtocolClosedError, match="shared context is closed"):
        await context.get("k")
