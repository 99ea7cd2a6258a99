"""Fixtures for the protocol's contract suite: every contract test runs in-process and on Redis.

``transport`` is parametrized; the factories below build buses, registries and contexts of that
transport. On Redis each test gets its own namespace (a unique key prefix) in the test database and
deletes every key of it afterwards, so tests never see each other's data and leave nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentadapter.protocol import (
    BusConfig,
    InProcessAgentRegistry,
    InProcessMessageBus,
    InProcessSharedContext,
    MessageBus,
    SharedContext,
)
from agentadapter.protocol.registry import AgentRegistry
from services import redis_url_or_skip


class FakeClock:
    """A settable clock (Unix seconds) for expiry, retention and heartbeat tests."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["inprocess", pytest.param("redis", marks=pytest.mark.redis)])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


class RedisNamespace:
    """A unique namespace in the test Redis; creates links (one client each) into it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.namespace = f"test:{uuid.uuid4().hex}"
        self._links: list[Any] = []

    def link(self) -> Any:
        from agentadapter.protocol import RedisLink

        link = RedisLink(self.url, namespace=self.namespace)
        link.retain()  # held by the fixture until teardown, so components can close freely
        self._links.append(link)
        return link

    async def cleanup(self) -> None:
        if self._links:
            await self._links[0].purge()
        for link in self._links:
            await link.release()


@pytest.fixture
async def redis_namespace(transport: str) -> AsyncIterator[RedisNamespace | None]:
    if transport != "redis":
        yield None
        return
    namespace = RedisNamespace(redis_url_or_skip())
    try:
        yield namespace
    finally:
        await namespace.cleanup()


BusFactory = Callable[..., Awaitable[MessageBus]]


@pytest.fixture
async def make_bus(
    transport: str, redis_namespace: RedisNamespace | None, clock: FakeClock
) -> AsyncIterator[BusFactory]:
    """``await make_bus(config=None, *, fake_clock=False, consumer=None, separate_client=False)``.

    On Redis every call makes a new bus instance (a new consumer) on the test's namespace, sharing
    one client unless ``separate_client``. In-process there is one bus per process: the first call
    makes it, later calls return it (so "two consumers" are two users of the same bus).
    """
    made: list[MessageBus] = []
    shared_link: list[Any] = []

    async def factory(
        config: BusConfig | None = None,
        *,
        fake_clock: bool = False,
        consumer: str | None = None,
        separate_client: bool = False,
    ) -> MessageBus:
        bus: MessageBus
        kwargs: dict[str, Any] = {"clock": clock} if fake_clock else {}
        if redis_namespace is None:
            if made:
                return made[0]
            bus = InProcessMessageBus(config, **kwargs)
        else:
            from agentadapter.protocol import RedisMessageBus

            if separate_client:
                link = redis_namespace.link()
            else:
                if not shared_link:
                    shared_link.append(redis_namespace.link())
                link = shared_link[0]
            bus = RedisMessageBus(link, config=config, consumer=consumer, **kwargs)
        await bus.start()
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        await bus.close()


@pytest.fixture
async def bus(make_bus: BusFactory) -> MessageBus:
    return await make_bus()


@pytest.fixture
async def make_registry(
    transport: str, redis_namespace: RedisNamespace | None, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[AgentRegistry]]]:
    """``await make_registry(heartbeat_timeout_s=30.0)``; always on the fake clock."""
    made: list[AgentRegistry] = []

    async def factory(heartbeat_timeout_s: float = 30.0) -> AgentRegistry:
        registry: AgentRegistry
        if redis_namespace is None:
            registry = InProcessAgentRegistry(heartbeat_timeout_s=heartbeat_timeout_s, clock=clock)
        else:
            from agentadapter.protocol import RedisAgentRegistry

            registry = RedisAgentRegistry(redis_namespace.link(), heartbeat_timeout_s=heartbeat_timeout_s, clock=clock)
        await registry.start()
        made.append(registry)
        return registry

    yield factory
    for registry in made:
        await registry.close()


@pytest.fixture
async def registry(make_registry: Callable[..., Awaitable[AgentRegistry]]) -> AgentRegistry:
    return await make_registry()


@pytest.fixture
async def make_context(
    transport: str, redis_namespace: RedisNamespace | None
) -> AsyncIterator[Callable[..., Awaitable[SharedContext]]]:
    """``await make_context(history_max=10_000)``: in-process, one shared instance per test (unless
    ``history_max`` differs); on Redis a new instance with its own client on the test's namespace."""
    made: list[SharedContext] = []

    async def factory(history_max: int = 10_000) -> SharedContext:
        context: SharedContext
        if redis_namespace is None:
            if made and made[0].history_max == history_max:
                return made[0]
            context = InProcessSharedContext(history_max=history_max)
        else:
            from agentadapter.protocol import RedisSharedContext

            context = RedisSharedContext(redis_namespace.link(), history_max=history_max)
        await context.start()
        made.append(context)
        return context

    yield factory
    for context in made:
        await context.close()


@pytest.fixture
async def context(make_context: Callable[..., Awaitable[SharedContext]]) -> SharedContext:
    return await make_context()
