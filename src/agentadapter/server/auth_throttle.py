"""Failed authentication: addresses that keep presenting bad credentials, and API keys known to be bad.

:class:`AuthThrottle` counts the failed authentications (401s: unknown, revoked or expired API keys,
JWTs that do not verify) of each client address in a token bucket of the request rate limiter
(``ratelimit.py``: in this process, or in Redis when ``AGENTADAPTER_REDIS_URL`` is set, so every
server process counts together). Once an address has used up its failures
(``AGENTADAPTER_AUTH_FAILURES_PER_MINUTE``, bursts of ``AGENTADAPTER_AUTH_FAILURES_BURST``), it is
answered 429 ``too_many_auth_failures`` with ``Retry-After``, before its credentials are even
looked at, until the bucket has refilled: guessing keys or replaying a stolen, revoked one is slowed
to the configured rate, and the other addresses are not affected. The refusal itself is remembered in
this process, so a throttled address costs no Redis call and no database query.

:class:`ExpiringSet` is the bounded memory both of that refusal and of the authenticator's negative
cache (``auth.py``): an API key just found invalid is refused again without a database lookup for
``AGENTADAPTER_AUTH_NEGATIVE_CACHE_S`` seconds, so a client that repeats a bad key makes no queries.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from agentadapter.redis_connections import RedisConnections
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.ratelimit import InProcessRateLimiter, Limit, RateLimiter, RedisRateLimiter
from agentadapter.server.settings import ServerSettings

__all__ = ["AuthThrottle", "ExpiringSet", "build_auth_throttle"]

MAX_BLOCKED_CLIENTS = 10_000
"""How many throttled addresses this process remembers (the least recently seen are forgotten first;
a forgotten one is throttled again at its next failure, by its bucket)."""


class ExpiringSet:
    """Keys that are remembered until a deadline, at most ``max_entries`` of them (least recently used go)."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, ttl_s: float) -> None:
        self._until[key] = self._clock() + ttl_s
        self._until.move_to_end(key)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def remaining(self, key: str) -> float:
        """Seconds until ``key`` is forgotten; 0 when it is not (or no longer) here."""
        until = self._until.get(key)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[key]
            return 0.0
        self._until.move_to_end(key)
        return left

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.remaining(key) > 0

    def __len__(self) -> int:
        return len(self._until)

    def clear(self) -> None:
        self._until.clear()


class AuthThrottle:
    """Counts each client address's failed authentications and refuses the addresses that used theirs up."""

    def __init__(self, limiter: RateLimiter, *, clock: Callable[[], float] = time.monotonic) -> None:
        if len(limiter.limits) != 1:
            raise ValueError("the failed-authentication limiter takes exactly one limit (per client address)")
        self.limiter = limiter
        self.limit = limiter.limits[0]
        self._blocked = ExpiringSet(MAX_BLOCKED_CLIENTS, clock=clock)

    def refuse_if_throttled(self, client: str) -> None:
        """Raise the 429 when ``client`` has used up its failures (no I/O: this process's memory only)."""
        left = self._blocked.remaining(client)
        if left > 0:
            raise self._too_many(left)

    async def failed(self, client: str) -> None:
        """Count one failed authentication of ``client``; raise the 429 when that was one too many."""
        retry_after = await self.limiter.take([f"{self.limit.scope}:{client}"])
        if retry_after is not None:
            self._blocked.add(client, retry_after)
            raise self._too_many(retry_after)

    def _too_many(self, retry_after_s: float) -> HTTPProblem:
        retry_after = max(1, math.ceil(retry_after_s))
        limit = self.limit
        return HTTPProblem(
            429, f"too many failed authentications from this address (at most {limit.rpm} per minute, bursts of "
                 f"{limit.burst}); retry in {retry_after} s with a valid API key or JWT",
            code="too_many_auth_failures",
            details={"limit": limit.scope, "failures_per_minute": limit.rpm, "burst": limit.burst,
                     "retry_after_s": retry_after},
            headers={"Retry-After": str(retry_after)})

    async def aclose(self) -> None:
        await self.limiter.aclose()


def build_auth_throttle(server: ServerSettings, redis: RedisConnections | str | None) -> AuthThrottle | None:
    """The throttle the settings ask for, or None when it is off (0 failures per minute)."""
    if server.auth_failures_per_minute <= 0:
        return None
    limit = Limit("client", server.auth_failures_per_minute,
                  server.auth_failures_burst or server.auth_failures_per_minute)
    # The same buckets as the request limits (and the same Redis script), under their own scope.
    limiter: RateLimiter = RedisRateLimiter([limit], redis) if redis else InProcessRateLimiter([limit])
    return AuthThrottle(limiter)
