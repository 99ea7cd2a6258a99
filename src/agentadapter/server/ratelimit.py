"""Request rate limits per API key (or JWT user) and per tenant: token buckets checked after authentication.

Each caller has two buckets, its own (``key``: an API key, or a JWT's user) and its tenant's
(``tenant``); a request takes one token from both or, when either is empty, from neither and is
answered 429 (``rate_limit_exceeded``, with ``Retry-After`` and ``X-RateLimit-*`` headers). A
bucket holds ``burst`` tokens and refills at ``rpm / 60`` per second.

:class:`InProcessRateLimiter` keeps the buckets in this process. :class:`RedisRateLimiter` keeps
them in Redis, so every server process shares one limit: a single Lua script refills and takes
atomically (with Redis' own clock, so the processes' clocks do not matter) and gives each bucket a
TTL, so idle callers leave nothing behind. A limiter must never take the API down: when Redis does
not answer, requests pass, a warning is logged, and Redis is left alone for a few seconds before it
is tried again. The Redis limiter uses the process's Redis owner
(:class:`~agentadapter.redis_connections.RedisConnections`, built in the server's lifespan), each check bounded
by :data:`REDIS_TIMEOUT_S` whatever the pool's own timeouts. :func:`build_rate_limiter` returns None
when no limit is set, and ``deps.py`` then does no work at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentadapter.redis_connections import RedisConnections
from agentadapter.server.errors import HTTPProblem

if TYPE_CHECKING:
    from agentadapter.server.auth import Principal
    from agentadapter.server.settings import ServerSettings

__all__ = [
    "InProcessRateLimiter",
    "Limit",
    "RateLimiter",
    "RedisRateLimiter",
    "build_rate_limiter",
]

logger = logging.getLogger("agentadapter.server.ratelimit")

REDIS_PREFIX = "agentadapter:ratelimit:"
REDIS_TIMEOUT_S = 0.5
"""How long a request may wait for Redis before it passes unchecked."""
REDIS_BACKOFF_S = 5.0
"""After Redis failed, requests pass unchecked this long before Redis is tried again."""
MAX_BUCKETS = 100_000
"""The in-process limiter forgets full buckets above this many (a full bucket is a fresh one)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """One kind of bucket: whose it is (``key`` or ``tenant``), its rate and its size."""

    scope: str
    rpm: int
    burst: int

    @property
    def per_second(self) -> float:
        return self.rpm / 60.0


@dataclass(frozen=True, slots=True)
class _Denial:
    limit: Limit
    retry_after_s: float
    remaining: int


class RateLimiter:
    """Checks a caller against its key's and its tenant's buckets; subclasses keep the buckets."""

    def __init__(self, limits: Sequence[Limit]) -> None:
        self.limits = tuple(limits)

    async def check(self, principal: Principal) -> None:
        """Take a token from each of the caller's buckets, or raise the 429 that says which limit and when."""
        buckets = [_bucket_name(limit.scope, principal) for limit in self.limits]
        denial = await self._take(buckets)
        if denial is not None:
            raise _too_many(denial)

    async def take(self, buckets: Sequence[str]) -> float | None:
        """Take a token from each named bucket (one per limit, in order; a name starts with its limit's
        scope, ``client:...``): None when taken, else the seconds until the empty one has a token again.

        For limits on something other than a principal, such as failed authentications per address.
        """
        denial = await self._take(buckets)
        return None if denial is None else denial.retry_after_s

    async def _take(self, buckets: Sequence[str]) -> _Denial | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the limiter holds (a Redis connection pool)."""


def _bucket_name(scope: str, principal: Principal) -> str:
    if scope == "tenant":
        return f"tenant:{principal.tenant_id}"
    # A JWT has no key id: its user is the caller.
    who = f"key:{principal.key_id}" if principal.key_id is not None else f"user:{principal.user_id}"
    return who


def _too_many(denial: _Denial) -> HTTPProblem:
    retry_after = max(1, math.ceil(denial.retry_after_s))
    limit = denial.limit
    whose = "this API key's (or user's)" if limit.scope == "key" else "this tenant's"
    return HTTPProblem(
        429, f"{whose} rate limit of {limit.rpm} requests per minute (bursts of {limit.burst}) is used up; "
             f"retry in {retry_after} s", code="rate_limit_exceeded",
        details={"limit": limit.scope, "requests_per_minute": limit.rpm, "burst": limit.burst,
                 "retry_after_s": retry_after},
        headers={"Retry-After": str(retry_after), "X-RateLimit-Limit": str(limit.rpm),
                 "X-RateLimit-Remaining": str(denial.remaining)})


class InProcessRateLimiter(RateLimiter):
    """Buckets in this process's memory (one server process, or limits per process)."""

    def __init__(self, limits: Sequence[Limit], *, clock: Any = time.monotonic) -> None:
        super().__init__(limits)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """name -> (tokens, when they were counted)."""

    async def _take(self, buckets: Sequence[str]) -> _Denial | None:
        now = self._clock()
        levels = []
        for name, limit in zip(buckets, self.limits, strict=True):
            tokens, then = self._buckets.get(name, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + max(0.0, now - then) * limit.per_second)
            if tokens < 1.0:
                return _Denial(limit, (1.0 - tokens) / limit.per_second, int(tokens))
            levels.append(tokens)
        if len(self._buckets) > MAX_BUCKETS:
            self._forget_full(now)
        for name, tokens in zip(buckets, levels, strict=True):
            self._buckets[name] = (tokens - 1.0, now)
        return None

    def _forget_full(self, now: float) -> None:
        by_scope = {limit.scope: limit for limit in self.limits}
        for name, (tokens, then) in list(self._buckets.items()):
            # A bucket's name starts with its scope; a JWT user's (user:...) is a key-scope bucket.
            limit = by_scope.get(name.partition(":")[0]) or by_scope.get("key")
            if limit is not None and tokens + (now - then) * limit.per_second >= limit.burst:
                del self._buckets[name]


# KEYS: the buckets; ARGV: per bucket its rate (tokens per second) and burst. Refills every bucket
# from Redis' clock, then takes one token from each only if every one has a token. Returns
# {0} when taken, or {index of the empty bucket (1-based), seconds until it has a token, tokens left}.
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = burst
  elseif now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate)
  end
  if tokens < 1 then
    return {i, tostring((1 - tokens) / rate), math.floor(tokens)}
  end
  levels[i] = tokens
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {0}
"""


class RedisRateLimiter(RateLimiter):
    """Buckets in Redis, shared by every server process that uses the same Redis.

    ``redis`` is the process's Redis owner (the caller keeps it) or a URL (connections of its own,
    closed by :meth:`aclose`).
    """

    def __init__(self, limits: Sequence[Limit], redis: RedisConnections | str, *, prefix: str = REDIS_PREFIX) -> None:
        super().__init__(limits)
        if isinstance(redis, str):
            redis = RedisConnections(redis, connect_timeout_s=REDIS_TIMEOUT_S, socket_timeout_s=REDIS_TIMEOUT_S)
            self._owns_connections = True
        else:
            self._owns_connections = False
        self.connections = redis
        self.url = redis.url
        self.prefix = prefix
        self._redis: Any = redis.commands
        self._script = self._redis.register_script(_TAKE_SCRIPT)
        self._args = [value for limit in self.limits for value in (repr(limit.per_second), str(limit.burst))]
        self._skip_until = 0.0

    async def _take(self, buckets: Sequence[str]) -> _Denial | None:
        import redis

        if self._skip_until and time.monotonic() < self._skip_until:
            return None
        try:
            # The shared pool's timeouts are for every part; a request waits no longer than this.
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                answer = await self._script(keys=[self.prefix + name for name in buckets], args=self._args)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            # Rate limits protect the API; they must not be what takes it down.
            self._skip_until = time.monotonic() + REDIS_BACKOFF_S
            logger.warning("rate limits are not enforced: Redis at %s did not answer (%s: %s); requests pass "
                           "unchecked, Redis is tried again in %.0f s", _safe_url(self.url), type(exc).__name__,
                           exc, REDIS_BACKOFF_S)
            return None
        self._skip_until = 0.0
        index = int(answer[0])
        if index == 0:
            return None
        return _Denial(self.limits[index - 1], float(answer[1]), int(answer[2]))

    async def aclose(self) -> None:
        if self._owns_connections:
            await self.connections.aclose()


def _safe_url(url: str) -> str:
    """The URL without its credentials (``redis://user:password@host`` -> ``host``)."""
    return url.rsplit("@", 1)[-1]


def build_rate_limiter(server: ServerSettings, redis: RedisConnections | str | None) -> RateLimiter | None:
    """The limiter the settings ask for, or None when every limit is off (0 requests per minute)."""
    limits = []
    if server.rate_limit_key_rpm > 0:
        limits.append(Limit("key", server.rate_limit_key_rpm,
                            server.rate_limit_key_burst or server.rate_limit_key_rpm))
    if server.rate_limit_tenant_rpm > 0:
        limits.append(Limit("tenant", server.rate_limit_tenant_rpm,
                            server.rate_limit_tenant_burst or server.rate_limit_tenant_rpm))
    if not limits:
        return None
    if redis:
        return RedisRateLimiter(limits, redis)
    return InProcessRateLimiter(limits)
