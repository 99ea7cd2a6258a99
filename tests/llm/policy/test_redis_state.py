"""State several instances share on Redis: budget spend, breakers and learned rate limits.

Every test uses its own key prefix, so tests never see each other's keys, and deletes only the keys
under it when it ends: the Redis is shared. The one test that starts the whole service, whose key
prefix is fixed, runs it on a redis-server of its own. The "instances" are separate facades with
separate stores (and Redis connections) on one Redis, calling loopback fakes that count the requests
they receive. Breaker cooldowns pass on an injected clock the instances share, not by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from agentadapter import LLM
from agentadapter.errors import RedisUnavailableError
from agentadapter.llm.errors import BudgetExceededError, CircuitOpenError, ServerError
from agentadapter.llm.health import ReliabilityStore
from agentadapter.llm.policy.breaker import BreakerConfig
from agentadapter.llm.policy.budget import Budget, BudgetGuard, BudgetStore, InProcessBudgetStore
from agentadapter.llm.policy.redis_budget import RedisBudgetStore, window_ttl_s
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.llm.redis_health import RedisReliabilityStore
from agentadapter.llm.shared import SharedState
from fakes.openai_server import OpenAIFake
from services import DEFAULT_TEST_REDIS_URL, redis_url_or_skip, start_redis, stop_group

NO_RETRY = RetryPolicy(max_retries=0)
CLOSED_PORT = "redis://127.0.0.1:1/0"


def prefix() -> str:
    return f"aa-test-{uuid.uuid4().hex[:10]}"


class Clock:
    """A monotonic clock the test moves: a cooldown passes when the test says so, at once."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def eventually(condition: Callable[[], bool], what: str, within_s: float = 5.0) -> None:
    """Wait for something another connection delivers (a published message); fail saying what never came."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within_s
    while not condition():
        if loop.time() > give_up:
            pytest.fail(f"{what} did not happen within {within_s} s")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------------------ budgets


@pytest.fixture(params=["in-process", "redis"])
async def budget_store(request: pytest.FixtureRequest) -> AsyncIterator[BudgetStore]:
    if request.param == "in-process":
        yield InProcessBudgetStore()
        return
    url, keys = redis_url_or_skip(), prefix() + ":"
    store = RedisBudgetStore(url, prefix=keys)
    yield store
    await store.aclose()
    await purge(url, keys)


async def purge(url: str, keys: str) -> None:
    """Delete a test's keys (budget windows would otherwise stay for a day)."""
    client = aioredis.Redis.from_url(url)
    found = [key async for key in client.scan_iter(match=keys + "*")]
    if found:
        await client.delete(*found)
    await client.aclose()


async def test_budget_store_contract_reserve_refuse_settle(budget_store: BudgetStore):
    key = "global|day|2026-11-21"
    assert await budget_store.try_reserve(key, 0.4, 1.0) == (True, 0.0)
    assert await budget_store.try_reserve(key, 0.4, 1.0) == (True, pytest.approx(0.4))
    ok, used = await budget_store.try_reserve(key, 0.4, 1.0)  # 0.8 held: 1.2 would pass the limit
    assert not ok and used == pytest.approx(0.8)
    assert await budget_store.settle(key, 0.4, 0.25) == pytest.approx(0.25)
    assert await budget_store.spent(key) == pytest.approx(0.25)
    assert await budget_store.try_reserve(key, 0.3, 1.0) == (True, pytest.approx(0.65))
    assert await budget_store.settle(key, 0.4, 0.0) == pytest.approx(0.25)  # a released hold commits nothing
    assert await budget_store.settle(key, 0.3, 0.3) == pytest.approx(0.55)
    assert await budget_store.spent(key) == pytest.approx(0.55)
    assert await budget_store.try_reserve(key, 0.45, 1.0) == (True, pytest.approx(0.55))  # nothing left held
    assert await budget_store.spent("global|day|2026-11-22") == 0.0  # another window starts empty


async def test_budget_store_contract_alerts_once_per_key(budget_store: BudgetStore):
    assert await budget_store.mark_alerted("global|month|2026-11") is True
    assert await budget_store.mark_alerted("global|month|2026-11") is False
    assert await budget_store.mark_alerted("global|month|2026-12") is True


async def test_redis_budget_keys_expire_after_their_window_and_total_never():
    url = redis_url_or_skip()
    keys = prefix() + ":"
    store = RedisBudgetStore(url, prefix=keys)
    client = aioredis.Redis.from_url(url)
    try:
        for key in ("global|day|2026-11-21", "global|month|2026-11", "global|total|all"):
            await store.try_reserve(key, 0.1, 1.0)
            await store.mark_alerted(key)
        day, month = await client.ttl(keys + "global|day|2026-11-21"), await client.ttl(keys + "global|month|2026-11")
        assert 86_400 < day <= window_ttl_s("global|day|x")
        assert 31 * 86_400 < month <= window_ttl_s("global|month|x")
        assert await client.ttl(keys + "global|day|2026-11-21|alerted") > 86_400
        assert await client.ttl(keys + "global|total|all") == -1  # no expiry
    finally:
        await client.aclose()
        await store.aclose()
        await purge(url, keys)


async def test_two_guards_on_one_redis_cannot_overspend_in_a_concurrent_burst():
    url = redis_url_or_skip()
    keys = prefix() + ":"
    # Clients with patient timeouts: sixty connections opened at once on a machine the other test workers
    # keep busy can take longer than the 2 s a store gives itself by default, and this test is about
    # overspending, not about timeouts.
    clients = [aioredis.Redis.from_url(url, socket_connect_timeout=15.0, socket_timeout=15.0) for _ in range(2)]
    stores = [RedisBudgetStore(client, prefix=keys) for client in clients]
    guards = [BudgetGuard([Budget("global", 1.0, "day")], store=store) for store in stores]

    async def one_call(guard: BudgetGuard) -> bool:
        try:
            hold = await guard.reserve(0.1, {})
        except BudgetExceededError:
            return False
        await asyncio.sleep(0)  # other reservations run while this one is held
        await hold.settle(0.1)
        return True

    try:
        results = await asyncio.gather(*(one_call(guards[i % 2]) for i in range(60)))
        assert 9 <= sum(results) <= 10  # a dollar holds ten $0.10 calls (nine if rounding bites)
        assert await guards[0].spent("global", "day") == pytest.approx(0.1 * sum(results))
        assert await guards[1].spent("global", "day") <= 1.0 + 1e-9
    finally:
        for store in stores:
            await store.aclose()
        for client in clients:
            await client.aclose()
        await purge(url, keys)


async def test_a_budget_that_cannot_be_checked_refuses_the_call_and_says_why():
    store = RedisBudgetStore(CLOSED_PORT)
    try:
        with pytest.raises(RedisUnavailableError, match="budget cannot be checked"):
            await store.try_reserve("global|day|2026-11-21", 0.1, 1.0)
    finally:
        await store.aclose()


async def test_a_settlement_redis_did_not_take_is_written_when_it_is_back(caplog: pytest.LogCaptureFixture):
    url, keys = redis_url_or_skip(), prefix() + ":"
    proxy = await RedisProxy.to(url)
    store = RedisBudgetStore(proxy.url, prefix=keys)
    key = "global|day|2026-11-21"
    try:
        assert (await store.try_reserve(key, 0.5, 1.0))[0]
        await proxy.close()
        caplog.set_level(logging.WARNING, logger="agentadapter.budget")
        assert await store.settle(key, 0.5, 0.2) == pytest.approx(0.2)  # the paid call does not fail
        assert "not written yet" in caplog.text
        with pytest.raises(RedisUnavailableError):
            await store.spent(key)
        await proxy.reopen()
        assert await store.spent(key) == pytest.approx(0.2)  # written first, then read
        assert await store.try_reserve(key, 0.8, 1.0) == (True, pytest.approx(0.2))  # the hold was released
    finally:
        await store.aclose()
        await proxy.close()
        await purge(url, keys)


# ------------------------------------------------------------------------------ breakers and limits


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[OpenAIFake, OpenAIFake]]:
    async with OpenAIFake() as primary, OpenAIFake() as backup:
        yield primary, backup


Instance = Callable[..., Awaitable[LLM]]


@pytest.fixture
async def instance(fakes: tuple[OpenAIFake, OpenAIFake]) -> AsyncIterator[Instance]:
    """A factory of facades ("instances") on the two fakes, each with its own Redis reliability store."""
    primary, backup = fakes
    made: list[tuple[LLM, RedisReliabilityStore]] = []
    used: set[tuple[str, str]] = set()

    async def make(url: str, keys: str, *, breaker: dict | None = None, clock: Clock | None = None) -> LLM:
        config = {
            "backends": {"a": {"type": "custom", "base_url": f"{primary.url}/v1", "api_key": "k"},
                         "b": {"type": "custom", "base_url": f"{backup.url}/v1", "api_key": "k"}},
            "models": {"smart": {"targets": ["a/m", "b/m"]}},
        }
        store = RedisReliabilityStore(url, prefix=keys, breaker_config=BreakerConfig(**(breaker or {})),
                                      **({"clock": clock} if clock is not None else {}))
        llm = LLM(config=config, environ={}, retry=NO_RETRY, reliability=store)
        made.append((llm, store))
        used.add((url, keys))
        await store.start()
        return llm

    yield make
    for llm, store in made:
        await store.aclose()
        await llm.aclose()
    test_redis = os.environ.get("AGENTADAPTER_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    for url, keys in used:
        if url == test_redis:  # not the unreachable port or a proxy that is shut by now
            await purge(url, keys + ":")


def breaker_state(llm: LLM, target: str) -> str:
    return llm.reliability.breaker(target).state


async def test_a_breaker_opened_by_one_instance_is_open_in_the_other_and_both_close_after_the_cooldown(
    fakes: tuple[OpenAIFake, OpenAIFake], instance: Instance,
):
    url, keys, clock = redis_url_or_skip(), prefix(), Clock()
    primary, _ = fakes
    breaker = {"failure_threshold": 2, "cooldown_s": 30}
    first = await instance(url, keys, breaker=breaker, clock=clock)
    second = await instance(url, keys, breaker=breaker, clock=clock)
    primary.fail(500, {"error": {"message": "down"}}, times=2)
    for _ in range(2):
        with pytest.raises(ServerError):
            await first.generate("a/m", "hi")
    assert breaker_state(first, "a/m") == "open"
    await eventually(lambda: breaker_state(second, "a/m") == "open", "the second instance seeing the open breaker")

    sent = len(primary.requests)
    with pytest.raises(CircuitOpenError):
        await second.generate("a/m", "hi")
    assert len(primary.requests) == sent  # refused without sending
    routed = await second.generate("smart", "hi")  # a route moves on to the backup at once
    assert [a.target for a in routed.attempts] == ["a/m", "b/m"] and len(primary.requests) == sent

    clock.advance(31)  # the cooldown passes; the first instance's probe succeeds and closes it
    assert (await first.generate("a/m", "hi")).text
    assert breaker_state(first, "a/m") == "closed"
    await eventually(lambda: breaker_state(second, "a/m") == "closed", "the second instance closing its breaker")
    assert (await second.generate("a/m", "hi")).text and len(primary.requests) == sent + 2


async def test_an_instance_that_starts_later_reads_the_open_breaker_back(
    fakes: tuple[OpenAIFake, OpenAIFake], instance: Instance,
):
    url, keys = redis_url_or_skip(), prefix()
    primary, _ = fakes
    breaker = {"failure_threshold": 1, "cooldown_s": 30}
    first = await instance(url, keys, breaker=breaker)
    primary.fail(500, {"error": {"message": "down"}})
    with pytest.raises(ServerError):
        await first.generate("a/m", "hi")
    late = await instance(url, keys, breaker=breaker)  # subscribed after the message went out
    late.reliability.breaker("a/m")  # first use: the stored state is read in the background
    await eventually(lambda: breaker_state(late, "a/m") == "open", "the late instance reading the breaker back")
    sent = len(primary.requests)
    with pytest.raises(CircuitOpenError):
        await late.generate("a/m", "hi")
    assert len(primary.requests) == sent


async def test_a_rate_limit_learned_by_one_instance_sends_the_others_to_the_backup(
    fakes: tuple[OpenAIFake, OpenAIFake], instance: Instance,
):
    url, keys = redis_url_or_skip(), prefix()
    primary, backup = fakes
    first, second = await instance(url, keys), await instance(url, keys)
    primary.fail(429, {"error": {"message": "slow down", "type": "rate_limit_error"}}, headers={
        "x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "30s"})
    routed = await first.generate("smart", "hi")
    assert [(a.target, a.error_type) for a in routed.attempts] == [("a/m", "RateLimitError"), ("b/m", None)]

    limiter = second.reliability.limiter("a")
    await eventually(lambda: limiter.wait_time(0) > 20, "the second instance learning the provider's reset")
    sent, answered = len(primary.requests), len(backup.requests)
    response = await second.generate("smart", "hi", timeout=5)  # waiting 30 s would pass the deadline
    assert [(a.target, a.error_type) for a in response.attempts] == [("a/m", "RateLimitError"), ("b/m", None)]
    assert len(primary.requests) == sent and len(backup.requests) == answered + 1


async def test_when_redis_goes_away_each_instance_keeps_working_on_its_own_state(
    fakes: tuple[OpenAIFake, OpenAIFake], instance: Instance, caplog: pytest.LogCaptureFixture,
):
    url, keys, clock = redis_url_or_skip(), prefix(), Clock()
    primary, _ = fakes
    proxy = await RedisProxy.to(url)
    breaker = {"failure_threshold": 1, "cooldown_s": 30}
    through_proxy = await instance(proxy.url, keys, breaker=breaker, clock=clock)
    direct = await instance(url, keys, breaker=breaker, clock=clock)
    shared_store = through_proxy.reliability
    assert isinstance(shared_store, RedisReliabilityStore) and shared_store.sharing

    await proxy.close()  # Redis is gone for this instance, mid-test
    caplog.set_level(logging.WARNING, logger="agentadapter.reliability")
    primary.fail(500, {"error": {"message": "down"}})
    with pytest.raises(ServerError):
        await through_proxy.generate("a/m", "hi")
    assert breaker_state(through_proxy, "a/m") == "open"  # the local breaker still works
    routed = await through_proxy.generate("smart", "hi")  # calls go on: the route skips the open target
    assert [a.target for a in routed.attempts] == ["a/m", "b/m"]
    await eventually(lambda: "per instance for now" in caplog.text, "a warning that sharing stopped")
    clock.advance(31)
    assert (await through_proxy.generate("a/m", "hi")).text  # the probe after the cooldown closes it locally
    assert breaker_state(direct, "a/m") == "closed"  # the other instance never heard of it


async def test_a_store_on_an_unreachable_redis_never_fails_a_call(
    fakes: tuple[OpenAIFake, OpenAIFake], instance: Instance,
):
    primary, _ = fakes
    llm = await instance(CLOSED_PORT, prefix(), breaker={"failure_threshold": 1, "cooldown_s": 60})
    assert (await llm.generate("a/m", "hi")).text
    primary.fail(500, {"error": {"message": "down"}})
    with pytest.raises(ServerError):
        await llm.generate("a/m", "hi")
    with pytest.raises(CircuitOpenError):  # the local breaker opened
        await llm.generate("a/m", "hi")
    store = llm.reliability
    assert isinstance(store, RedisReliabilityStore) and not store.sharing


async def test_shared_state_gives_a_facade_both_redis_stores():
    url, keys = redis_url_or_skip(), prefix()
    shared = SharedState(url, prefix=keys)
    try:
        llm = LLM(config={}, environ={}, shared=shared)
        reliability: ReliabilityStore = llm.reliability
        assert isinstance(reliability, RedisReliabilityStore) and llm.budgets.store is shared.budgets
        derived = llm.derive(tags={"tenant": "t1"})
        assert derived.reliability is reliability and derived.budgets.store is shared.budgets
        await shared.start()
        assert reliability.sharing
    finally:
        await shared.aclose()
        await purge(url, keys + ":")


class RedisProxy:
    """A TCP relay to Redis that can be shut, to take Redis away from one client mid-test."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.url = ""

    @classmethod
    async def to(cls, url: str) -> RedisProxy:
        rest = url.split("://", 1)[1]
        hostport, _, db = rest.partition("/")
        host, _, port = hostport.rpartition("@")[2].partition(":")
        proxy = cls(host, int(port or 6379))
        proxy.server = await asyncio.start_server(proxy._relay, "127.0.0.1", 0)
        listen_port = proxy.server.sockets[0].getsockname()[1]
        proxy.url = f"redis://127.0.0.1:{listen_port}/{db or 0}"
        return proxy

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await self.server.wait_closed()

    async def reopen(self) -> None:
        """Redis is back, on the same address."""
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", port)


def test_window_ttl_names_the_window():
    assert window_ttl_s("global|day|2026-11-21") > 86_400
    assert window_ttl_s("tag:team=a|month|2026-11") > 31 * 86_400
    assert window_ttl_s("global|total|all") == 0 and window_ttl_s("free-form") == 0


async def test_the_service_shares_its_llm_state_on_redis_when_configured(tmp_path: Path):
    (tmp_path / "redis").mkdir()
    server = start_redis(tmp_path / "redis")  # the service's prefix is fixed: keep its keys off the shared Redis
    try:
        await _service_shares_its_state(tmp_path, server.url())
    finally:
        stop_group(server.process)


async def _service_shares_its_state(tmp_path: Path, url: str) -> None:
    from agentadapter.server.app import create_app
    from server.conftest import make_settings, server_settings
    from store.databases import migrated_sqlite

    (tmp_path / "templates").mkdir()
    database = migrated_sqlite(tmp_path, tmp_path / "templates")
    app = create_app(make_settings(database, tmp_path, redis_url=url), server_settings=server_settings())
    async with app.router.lifespan_context(app):
        state = app.state.agentadapter
        assert state.shared is not None and state.llm.budgets.store is state.shared.budgets
        reliability = state.llm.reliability
        assert isinstance(reliability, RedisReliabilityStore) and reliability.sharing
    assert not reliability.sharing  # closed with the service
