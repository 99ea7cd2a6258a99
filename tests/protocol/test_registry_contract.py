"""The agent registry contract: every test runs against the in-process and the Redis registry."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from agentadapter.protocol import (
    AgentNotFoundError,
    AgentRegistry,
    InvalidValueError,
    NoAgentAvailableError,
    ProtocolClosedError,
)

from .conftest import FakeClock


async def test_register_get_and_list(registry: AgentRegistry, clock: FakeClock) -> None:
    info = await registry.register(
        "researcher", ["search.web", "summarize"], agent_type="llm", metadata={"model": "openai/gpt-4o-mini"}
    )
    assert info.name == "researcher"
    assert info.capabilities == frozenset({"search.web", "summarize"})
    assert info.agent_type == "llm"
    assert info.metadata == {"model": "openai/gpt-4o-mini"}
    assert info.registered_at == info.last_heartbeat == clock.now
    assert (info.load, info.assigned, info.healthy) == (0, 0, True)
    assert await registry.get("researcher") == info
    assert await registry.get("nobody") is None
    await registry.register("writer", ["write"])
    assert [agent.name for agent in await registry.agents()] == ["researcher", "writer"]
    assert info.to_dict()["capabilities"] == ["search.web", "summarize"]


async def test_unregister(registry: AgentRegistry) -> None:
    await registry.register("researcher", ["summarize"])
    assert await registry.unregister("researcher") is True
    assert await registry.unregister("researcher") is False
    assert await registry.get("researcher") is None
    assert await registry.find("summarize") == []


async def test_find_needs_every_capability(registry: AgentRegistry) -> None:
    await registry.register("a", ["search", "summarize"])
    await registry.register("b", ["search"])
    await registry.register("c", ["summarize", "translate"])
    assert [i.name for i in await registry.find("search")] == ["a", "b"]
    assert [i.name for i in await registry.find("search", "summarize")] == ["a"]
    assert [i.name for i in await registry.find("summarize", "translate")] == ["c"]
    assert await registry.find("search", "translate") == []
    assert [i.name for i in await registry.find()] == ["a", "b", "c"]


async def test_re_registering_replaces_capabilities_and_keeps_load(registry: AgentRegistry) -> None:
    await registry.register("a", ["old"])
    await registry.acquire("old")
    info = await registry.register("a", ["new"])
    assert info.capabilities == frozenset({"new"})
    assert info.load == 1
    assert await registry.find("old") == []
    assert [i.name for i in await registry.find("new")] == ["a"]


async def test_an_agent_without_heartbeats_turns_unhealthy_and_is_not_chosen(
    make_registry: Callable[..., Awaitable[AgentRegistry]], clock: FakeClock
) -> None:
    registry = await make_registry(heartbeat_timeout_s=10)
    await registry.register("quiet", ["work"])
    await registry.register("lively", ["work"])
    await registry.acquire("work")  # "lively" is busier now, so "quiet" would be preferred...
    await registry.acquire("work")
    clock.advance(8)
    await registry.heartbeat("lively")
    clock.advance(5)  # ...but "quiet" last spoke 13 s ago
    assert [(i.name, i.healthy) for i in await registry.agents()] == [("lively", True), ("quiet", False)]
    assert [i.name for i in await registry.agents(healthy_only=True)] == ["lively"]
    assert [i.name for i in await registry.find("work")] == ["lively"]
    assert [i.name for i in await registry.find("work", healthy_only=False)] == ["lively", "quiet"]
    assert (await registry.select("work")).name == "lively"
    assert (await registry.acquire("work")).name == "lively"
    await registry.heartbeat("quiet")
    assert (await registry.select("work")).name == "quiet"


async def test_no_healthy_agent(make_registry: Callable[..., Awaitable[AgentRegistry]], clock: FakeClock) -> None:
    registry = await make_registry(heartbeat_timeout_s=10)
    with pytest.raises(NoAgentAvailableError, match="no healthy agent offers translate"):
        await registry.acquire("translate")
    await registry.register("a", ["translate"])
    clock.advance(11)
    with pytest.raises(NoAgentAvailableError, match="1 registered") as caught:
        await registry.select("translate")
    assert caught.value.capabilities == ("translate",)
    with pytest.raises(NoAgentAvailableError):
        await registry.acquire("translate")


async def test_least_busy_selection_and_round_robin_among_equals(registry: AgentRegistry) -> None:
    for name in ("a", "b", "c"):
        await registry.register(name, ["work"])
    picks = [(await registry.acquire("work")).name for _ in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]
    await registry.release("b")
    await registry.release("b")
    assert (await registry.select("work")).name == "b"
    info = await registry.acquire("work")
    assert (info.name, info.load, info.assigned) == ("b", 1, 3)
    # Equal load again: the one given the fewest tasks goes first, so work keeps spreading.
    for name in ("a", "b", "c"):
        while (current := await registry.get(name)) is not None and current.load:
            await registry.release(name)
    assert [(await registry.acquire("work")).name for _ in range(3)] == ["a", "c", "b"]


async def test_release_never_goes_below_zero(registry: AgentRegistry) -> None:
    await registry.register("a", ["work"])
    await registry.release("a")
    await registry.release("unknown")
    info = await registry.get("a")
    assert info is not None and info.load == 0


async def test_lease_acquires_and_releases(registry: AgentRegistry) -> None:
    await registry.register("a", ["work"])
    async with registry.lease("work") as agent:
        assert agent.name == "a" and agent.load == 1
        current = await registry.get("a")
        assert current is not None and current.load == 1
    current = await registry.get("a")
    assert current is not None and current.load == 0
    with pytest.raises(RuntimeError):
        async with registry.lease("work"):
            raise RuntimeError("task failed")
    current = await registry.get("a")
    assert current is not None and current.load == 0


async def test_concurrent_acquires_spread_exactly(registry: AgentRegistry) -> None:
    for name in ("a", "b", "c", "d"):
        await registry.register(name, ["work"])
    picks = await asyncio.gather(*(registry.acquire("work") for _ in range(20)))
    assert Counter(info.name for info in picks) == {"a": 5, "b": 5, "c": 5, "d": 5}
    assert sorted(info.load for info in picks) == sorted([1, 2, 3, 4, 5] * 4)
    assert [info.load for info in await registry.agents()] == [5, 5, 5, 5]


async def test_heartbeat_and_set_load(registry: AgentRegistry, clock: FakeClock) -> None:
    await registry.register("a", ["work"])
    clock.advance(3)
    await registry.heartbeat("a", load=4)
    info = await registry.get("a")
    assert info is not None and (info.last_heartbeat, info.load) == (clock.now, 4)
    await registry.set_load("a", 2)
    info = await registry.get("a")
    assert info is not None and info.load == 2
    with pytest.raises(AgentNotFoundError, match="'ghost' is not registered; call register"):
        await registry.heartbeat("ghost")
    with pytest.raises(AgentNotFoundError):
        await registry.set_load("ghost", 1)


async def test_invalid_registrations(registry: AgentRegistry) -> None:
    with pytest.raises(InvalidValueError):
        await registry.register("", ["work"])
    with pytest.raises(InvalidValueError):
        await registry.register("a", ["bad\ncapability"])
    with pytest.raises(InvalidValueError, match="not JSON"):
        await registry.register("a", ["work"], metadata={"when": object()})


async def test_a_closed_registry_refuses_work(make_registry: Callable[..., Awaitable[AgentRegistry]]) -> None:
    registry = await make_registry()
    await registry.close()
    with pytest.raises(ProtocolClosedError, match="agent registry is closed"):
        await registry.register("a")
