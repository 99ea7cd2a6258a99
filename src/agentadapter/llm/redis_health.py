"""Breakers and learned rate limits shared on Redis, so several instances act on one view of a target.

:class:`RedisReliabilityStore` is a :class:`~agentadapter.llm.health.ReliabilityStore` whose
breakers and limiters live in this process, exactly as in the in-process store, and are kept in
step with every other instance's through Redis. The router asks the store synchronously on every
call, so the request path never waits for Redis:

- A local breaker transition (``open``, ``half_open``, ``closed``) is queued; a background writer
  stores it under ``<prefix>:{reliability}:breaker:<target>`` and publishes it on the
  ``<prefix>:{reliability}:events`` channel in one Lua step. Every instance subscribes and applies
  what the others publish to its own breaker.
- What a limiter learns from a provider's rate-limit headers (the limit, the remaining count, and
  "nothing left until the reset") is shared the same way under ``...:limit:<backend>`` when it
  matters: a new limit, a block until a reset, or a nearly empty bucket.
- An instance that missed a message (it started later, or its subscription dropped) reads the
  stored state back: using a breaker or limiter whose shared state is older than ``refresh_s``
  queues a background read; the call itself goes on with the local state.

Consistency. Times travel as offsets from Redis' clock (``TIME`` in the scripts), so instances'
clocks may differ. Records are ordered by that clock per key; the last transition written wins.
What can differ between instances, and for how long:

- After a transition, the others follow within the publish delay (milliseconds); one that missed
  the message follows within ``refresh_s`` of its next use of the target.
- Two instances may change the same breaker at once (one opens it while another's probe closes it):
  whichever Redis writes last is what every instance ends with.
- When an open breaker's cooldown ends, each instance may send its own probe; an instance that
  hears another's ``half_open`` first waits for that probe (at most ``probe_lease_s``) instead.
- Failure counts, failure rates, latency statistics and calls in flight stay per instance: each
  instance opens a breaker from what it has seen, and everyone follows once it does.
- Token buckets refill per instance; only what providers report is shared, and a shared remaining
  count only lowers (never raises) another instance's bucket.

If Redis is unreachable every instance keeps working on its local state; a warning is logged when
sharing stops and a notice when it resumes. Transitions made meanwhile are not replayed: they would
describe a past state. Calls never fail or wait because of Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentadapter.llm.health import InProcessReliabilityStore
from agentadapter.llm.policy.breaker import BreakerConfig, BreakerState, CircuitBreaker
from agentadapter.llm.policy.ratelimit import RateLimitConfig, RateLimiter, TokenBucket
from agentadapter.redis_connections import describe_client

logger = logging.getLogger("agentadapter.reliability")

__all__ = ["DEFAULT_PREFIX", "RedisReliabilityStore", "SharedCircuitBreaker", "SharedRateLimiter"]

DEFAULT_PREFIX = "agentadapter"

# KEYS[1]: the record's key. ARGV: channel, record (JSON), ttl in ms. Stamps the record with Redis'
# clock in microseconds (strictly increasing per key, so the order of writes is the order of
# records), stores it and publishes it. Numbers go out as strings: Lua would round them.
_WRITE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if now <= last then now = last + 1 end
local at = string.format('%d', now)
redis.call('HSET', KEYS[1], 'at', at, 'record', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], '{"key":' .. cjson.encode(KEYS[1]) .. ',"at":' .. at .. ',"record":' .. ARGV[2] .. '}')
return at
"""

# KEYS: records to read. Returns {Redis' clock in microseconds, then per key its stamp and record
# (empty strings when the key is gone)}.
_READ = """
local t = redis.call('TIME')
local out = {string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))}
for i = 1, #KEYS do
  local state = redis.call('HMGET', KEYS[i], 'at', 'record')
  out[#out + 1] = state[1] or ''
  out[#out + 1] = state[2] or ''
end
return out
"""

_LOW_SHARE = 0.1
"""A learned bucket at or below this share of its limit is worth telling the other instances about."""
_LIMIT_REPUBLISH_S = 0.25
"""How often, at most, a nearly empty bucket is shared again (a new block is shared at once)."""
_KINDS = ("requests", "tokens")


class SharedCircuitBreaker(CircuitBreaker):
    """A circuit breaker whose transitions are shared through its store (see the module docstring)."""

    __slots__ = ("_applying", "_remote_probe_until", "_share")

    def __init__(
        self, name: str, config: BreakerConfig | None, *, clock: Callable[[], float],
        on_change: Callable[[str, BreakerState, BreakerState], None] | None, share: RedisReliabilityStore,
    ) -> None:
        super().__init__(name, config, clock=clock, on_change=on_change)
        self._share = share
        self._applying = False
        self._remote_probe_until = 0.0

    def before_call(self) -> None:
        if self._remote_probe_until and self._clock() >= self._remote_probe_until:
            # Another instance's probe never reported back: probe from here.
            self._remote_probe_until = 0.0
            if self.state == "half_open":
                self._in_flight_probes = 0
        super().before_call()

    def _transition(self, new_state: BreakerState) -> None:
        old_state = self.state
        super()._transition(new_state)
        if new_state != "half_open":
            self._remote_probe_until = 0.0
        if not self._applying and old_state != new_state:
            self._share._breaker_changed(self)

    def shared_record(self) -> dict[str, Any]:
        """This breaker's state for the other instances: offsets are seconds from now."""
        record: dict[str, Any] = {"kind": "breaker", "state": self.state, "origin": self._share.instance_id}
        if self.state == "open":
            record["for_s"] = max(0.0, self._opened_at + self.config.cooldown_s - self._clock())
        elif self.state == "half_open":
            record["for_s"] = self._share.probe_lease_s
        return record

    def apply_shared(self, record: Mapping[str, Any], age_s: float) -> None:
        """Take another instance's transition (written ``age_s`` seconds ago)."""
        state = record.get("state")
        remaining = float(record.get("for_s") or 0.0) - age_s
        now = self._clock()
        self._applying = True
        try:
            if state == "open":
                if self.state != "open":
                    self.opened_count += 1
                self._opened_at = now - self.config.cooldown_s + max(0.0, remaining)
                self._transition("open")
            elif state == "half_open":
                self._transition("half_open")
                if remaining > 0:  # the slots are taken by the other instance's probe
                    self._in_flight_probes = self.config.half_open_probes
                    self._remote_probe_until = now + remaining
            elif state == "closed":
                self._consecutive = 0
                self._outcomes.clear()
                self._transition("closed")
        finally:
            self._applying = False


class SharedRateLimiter(RateLimiter):
    """A rate limiter that shares what it learns from providers' headers through its store."""

    def __init__(
        self, name: str, config: RateLimitConfig | None, *, clock: Callable[[], float],
        share: RedisReliabilityStore,
    ) -> None:
        super().__init__(name, config, clock=clock)
        self._share = share
        self._published: tuple[tuple[float | None, ...], float] | None = None
        """(capacities and block ends last shared, when)."""

    def observe(self, headers: Mapping[str, str]) -> None:
        super().observe(headers)
        if not self.config.learn_from_headers:
            return
        now = self._clock()
        shape = self._shape()
        if self._published is not None and self._published[0] == shape:
            low = any(b is not None and b.level <= _LOW_SHARE * b.capacity for b in (self.requests, self.tokens))
            if not low or now - self._published[1] < _LIMIT_REPUBLISH_S:
                return
        elif self.requests is None and self.tokens is None:
            return
        self._published = (shape, now)
        self._share._limiter_learned(self)

    def _shape(self) -> tuple[float | None, ...]:
        """The limits and block ends: what, when it changes, is worth sharing at once."""
        return tuple(value for bucket in (self.requests, self.tokens)
                     for value in ((bucket.capacity, bucket.blocked_until) if bucket else (None, None)))

    def shared_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": "limit", "origin": self._share.instance_id}
        now = self._clock()
        for kind, bucket in zip(_KINDS, (self.requests, self.tokens), strict=True):
            if bucket is not None:
                bucket._refill(now)
                record[kind] = {"limit": bucket.capacity, "remaining": bucket.level,
                                "blocked_for_s": max(0.0, bucket.blocked_until - now)}
        return record

    def apply_shared(self, record: Mapping[str, Any], age_s: float) -> None:
        """Take what another instance learned (written ``age_s`` seconds ago)."""
        if not self.config.learn_from_headers:
            return
        now = self._clock()
        for kind in _KINDS:
            learned = record.get(kind)
            if not isinstance(learned, Mapping):
                continue
            bucket = self.requests if kind == "requests" else self.tokens
            capacity = float(learned.get("limit") or 0.0)
            if bucket is None:
                if capacity <= 0:
                    continue
                bucket = TokenBucket(capacity, self._clock)
                if kind == "requests":
                    self.requests = bucket
                else:
                    self.tokens = bucket
            remaining = learned.get("remaining")
            if remaining is not None:
                bucket._refill(now)
                bucket.level = min(bucket.level, float(remaining))
            blocked = float(learned.get("blocked_for_s") or 0.0) - age_s
            if blocked > 0:
                bucket.blocked_until = max(bucket.blocked_until, now + blocked)
        # What was just heard need not be told back.
        self._published = (self._shape(), now)


class RedisReliabilityStore(InProcessReliabilityStore):
    """Breakers and limiters in this process, kept in step with other instances through Redis.

    Pass a URL (the store owns the client and closes it in :meth:`aclose`) or a ``redis.asyncio``
    client (the caller keeps owning it: the process's :class:`~agentadapter.redis_connections.RedisConnections`
    hands its ``commands`` client, and its ``blocking`` one as ``subscriber`` for the pub/sub
    listener, which holds its connection for as long as the store runs). The store starts its
    background work on first use in a running event loop, or when :meth:`start` is awaited; it
    belongs to that event loop.
    """

    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        refresh_s: float = 1.0,
        probe_lease_s: float = 30.0,
        record_ttl_s: float = 300.0,
        breaker_config: BreakerConfig | None = None,
        rate_limits: Mapping[str, RateLimitConfig] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_breaker_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        subscriber: aioredis.Redis | None = None,
    ) -> None:
        super().__init__(breaker_config=breaker_config, rate_limits=rate_limits, clock=clock,
                         on_breaker_change=on_breaker_change)
        if isinstance(client_or_url, str):
            self.url = client_or_url.rsplit("@", 1)[-1]
            # Short timeouts: a Redis that stops answering must not stall the background work for long.
            self._client: Any = aioredis.Redis.from_url(
                client_or_url, socket_connect_timeout=2.0, socket_timeout=5.0, health_check_interval=10
            )
            self._owns_client = True
        else:
            self.url = describe_client(client_or_url)
            self._client = client_or_url
            self._owns_client = False
        self._subscriber: Any = subscriber if subscriber is not None else self._client
        self.instance_id = uuid.uuid4().hex[:12]
        self.refresh_s = refresh_s
        self.probe_lease_s = probe_lease_s
        self.record_ttl_s = record_ttl_s
        self._base = f"{prefix}:{{reliability}}"
        self.channel = f"{self._base}:events"
        self._write = self._client.register_script(_WRITE)
        self._read = self._client.register_script(_READ)
        self._outbox: dict[str, SharedCircuitBreaker | SharedRateLimiter] = {}
        self._to_read: set[str] = set()
        self._read_at: dict[str, float] = {}
        self._seen: dict[str, int] = {}
        """Per key, the stamp of the newest record applied or written here."""
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed: asyncio.Event | None = None
        self._healthy = True
        self._closed = False

    # ----------------------------------------------------------------------- the ReliabilityStore

    def breaker(self, target: str) -> CircuitBreaker:
        breaker = self._breakers.get(target)
        if breaker is None:
            breaker = self._breakers[target] = SharedCircuitBreaker(
                target, self.breaker_config, clock=self._clock, on_change=self._on_breaker_change, share=self
            )
        self._read_through(self._key("breaker", target))
        return breaker

    def limiter(self, backend: str) -> RateLimiter:
        limiter = self._limiters.get(backend)
        if limiter is None:
            limiter = self._limiters[backend] = SharedRateLimiter(
                backend, self.rate_limits.get(backend), clock=self._clock, share=self
            )
        self._read_through(self._key("limit", backend))
        return limiter

    # -------------------------------------------------------------------------------- lifecycle

    async def start(self, *, wait_s: float = 2.0) -> None:
        """Start the background work; wait up to ``wait_s`` for the first subscription attempt (its failure
        is logged, never raised: the store then works on local state and keeps trying)."""
        self._ensure_started()
        if self._subscribed is not None:
            with contextlib.suppress(TimeoutError):  # the listener keeps trying and says why in the log
                await asyncio.wait_for(self._subscribed.wait(), wait_s)

    async def aclose(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        if self._wake is not None:
            self._wake.set()  # the loops see _closed and end
        for task in tasks:
            # The Redis client may absorb a cancellation that lands inside its own retries: ask again.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
            if not task.cancelled() and task.exception() is not None:
                logger.error("the reliability store's %s task had failed: %r", task.get_name(), task.exception())
        if self._owns_client:
            await self._client.aclose()

    @property
    def sharing(self) -> bool:
        """Whether the last exchange with Redis worked (False: working on local state only)."""
        return self._healthy and bool(self._tasks)

    def _ensure_started(self) -> bool:
        if self._tasks:
            return True
        if self._closed:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # outside an event loop (a synchronous health report): local state only
        self._loop = loop
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks = [loop.create_task(self._listen(), name="reliability-listen"),
                       loop.create_task(self._exchange(), name="reliability-exchange")]
        return True

    # ---------------------------------------------------------------- called on the request path

    def _key(self, kind: str, name: str) -> str:
        return f"{self._base}:{kind}:{name}"

    def _read_through(self, key: str) -> None:
        now = self._clock()
        if now - self._read_at.get(key, -1e18) < self.refresh_s:
            return
        self._read_at[key] = now
        self._to_read.add(key)
        self._signal()

    def _breaker_changed(self, breaker: SharedCircuitBreaker) -> None:
        self._outbox[self._key("breaker", breaker.name)] = breaker
        self._signal()

    def _limiter_learned(self, limiter: SharedRateLimiter) -> None:
        self._outbox[self._key("limit", limiter.name)] = limiter
        self._signal()

    def _signal(self) -> None:
        if not self._ensure_started() or self._loop is None or self._wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:  # a caller on another thread's loop: hand the wake-up to the store's loop
            self._loop.call_soon_threadsafe(self._wake.set)

    # --------------------------------------------------------------------------- background work

    async def _exchange(self) -> None:
        """Write queued records and read stale keys, whenever the request path asks."""
        assert self._wake is not None
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            outbox, self._outbox = self._outbox, {}
            keys, self._to_read = sorted(self._to_read), set()
            try:
                for key, source in outbox.items():
                    record = source.shared_record()
                    ttl_ms = int((float(record.get("for_s") or 0.0) + self._longest_block(record)
                                  + self.record_ttl_s) * 1000)
                    stamp = int(await self._write(keys=[key], args=[self.channel, json.dumps(record), ttl_ms]))
                    self._seen[key] = max(self._seen.get(key, 0), stamp)
                if keys:
                    await self._read_keys(keys)
            except (RedisError, OSError) as exc:
                self._lost(exc, "changes made here stay local until it is back")
                continue
            self._back()

    async def _read_keys(self, keys: list[str]) -> None:
        answer = await self._read(keys=keys, args=[])
        now = int(answer[0])
        for index, key in enumerate(keys):
            stamp, record = answer[1 + 2 * index], answer[2 + 2 * index]
            if stamp:
                self._apply(key, int(stamp), record, now)

    async def _listen(self) -> None:
        """Follow the other instances' records; after a gap, read back every key this instance uses."""
        assert self._subscribed is not None
        backoff = 0.5
        missed = False
        while not self._closed:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                if missed:  # messages may have been lost meanwhile: read back what this instance uses
                    known = [self._key("breaker", t) for t in self._breakers]
                    known += [self._key("limit", b) for b in self._limiters]
                    if known:
                        await self._read_keys(known)
                    missed = False
                self._back()
                backoff = 0.5
                while not self._closed:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except (RedisError, OSError) as exc:
                missed = True
                self._lost(exc, "following the other instances stops until Redis is back")
                self._subscribed.set()  # start() waits for the first attempt, not for Redis to come back
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            key, stamp, record = message["key"], int(message["at"]), message["record"]
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignored a malformed reliability record on %s (%s: %s)", self.channel,
                           type(exc).__name__, exc)
            return
        self._apply(key, stamp, record, stamp)  # delivery takes milliseconds: count it as fresh

    def _apply(self, key: str, stamp: int, record: Any, now: int) -> None:
        if stamp <= self._seen.get(key, 0):
            return
        self._seen[key] = stamp
        if isinstance(record, bytes | str):
            try:
                record = json.loads(record)
            except ValueError:
                logger.warning("ignored a malformed reliability record at %s", key)
                return
        if not isinstance(record, dict) or record.get("origin") == self.instance_id:
            return
        age_s = max(0.0, (now - stamp) / 1_000_000)
        kind, _, name = key[len(self._base) + 1:].partition(":")
        if kind == "breaker" and record.get("kind") == "breaker":
            breaker = self.breaker(name)
            assert isinstance(breaker, SharedCircuitBreaker)
            breaker.apply_shared(record, age_s)
        elif kind == "limit" and record.get("kind") == "limit":
            limiter = self.limiter(name)
            assert isinstance(limiter, SharedRateLimiter)
            limiter.apply_shared(record, age_s)

    @staticmethod
    def _longest_block(record: Mapping[str, Any]) -> float:
        blocks = [float(record[kind].get("blocked_for_s") or 0.0) for kind in _KINDS
                  if isinstance(record.get(kind), Mapping)]
        return max(blocks, default=0.0)

    def _lost(self, exc: BaseException, consequence: str) -> None:
        if self._healthy:
            self._healthy = False
            logger.warning(
                "breakers and rate limits are per instance for now: Redis at %s did not answer (%s: %s); %s. "
                "Calls go on with this instance's own state", self.url, type(exc).__name__, exc, consequence,
            )

    def _back(self) -> None:
        if not self._healthy:
            self._healthy = True
            logger.info("breakers and rate limits are shared again through Redis at %s", self.url)
