"""Budget spend on Redis, so every instance of the service counts against the same budgets.

:class:`RedisBudgetStore` implements :class:`~agentadapter.llm.policy.budget.BudgetStore`. Each budget
window is one hash (``committed``, ``reserved``) under ``<prefix><scope|window|window key>``; a
reservation is one Lua script that checks committed + reserved + amount against the limit and
reserves in the same step, so concurrent reservations from any number of processes cannot overspend.
Alert marks are ``SET NX`` keys. Day and month windows expire a little after their window ends (the
key names the window, so an expired key is never needed again); ``total`` never expires.

When Redis does not answer, a reservation is refused with
:class:`~agentadapter.protocol.errors.ProtocolConnectionError`: sending a call whose spend cannot be
checked could overspend. A settlement that cannot be written (the provider has already answered) is
kept and written before the next operation instead of failing a call that was paid for.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentadapter._redis import describe_client
from agentadapter.protocol.errors import ProtocolConnectionError

logger = logging.getLogger("agentadapter.budget")

__all__ = ["DEFAULT_PREFIX", "RedisBudgetStore", "window_ttl_s"]

DEFAULT_PREFIX = "agentadapter:budget:"

_DAY_S = 86_400
# Kept one margin past the longest window of its kind, counted from the last write in the window.
_WINDOW_TTL_S = {"day": _DAY_S + 3_600, "month": 31 * _DAY_S + _DAY_S}

# KEYS[1]: the window's hash. ARGV: amount, limit, ttl in seconds (0: none).
# Returns {1 if reserved else 0, committed + reserved before this reservation (as a string: Lua
# numbers become integers in replies)}.
_RESERVE = """
local state = redis.call('HMGET', KEYS[1], 'committed', 'reserved')
local used = (tonumber(state[1]) or 0) + (tonumber(state[2]) or 0)
local amount = tonumber(ARGV[1])
if used + amount > tonumber(ARGV[2]) then
  return {0, string.format('%.17g', used)}
end
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', ARGV[1])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {1, string.format('%.17g', used)}
"""

# KEYS[1]: the window's hash. ARGV: minus the reserved amount to release, actual spend, ttl (0: none).
# Returns the committed total. The reservation never goes below zero (float rounding).
_SETTLE = """
local reserved = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', ARGV[1]))
if reserved < 0 then
  redis.call('HSET', KEYS[1], 'reserved', '0')
end
local committed = redis.call('HINCRBYFLOAT', KEYS[1], 'committed', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return committed
"""


def window_ttl_s(key: str) -> int:
    """Seconds a budget key lives (0: forever), from the window named in ``scope|window|window key``."""
    parts = key.split("|")
    return _WINDOW_TTL_S.get(parts[-2], 0) if len(parts) >= 3 else 0


class RedisBudgetStore:
    """Spend and reservations on Redis, shared by every process that uses the same server and prefix.

    Pass a URL (the store owns the client and closes it in :meth:`aclose`) or a ``redis.asyncio``
    client (the caller keeps owning it).
    """

    def __init__(self, client_or_url: aioredis.Redis | str, *, prefix: str = DEFAULT_PREFIX) -> None:
        if isinstance(client_or_url, str):
            self.url = _mask(client_or_url)
            self._client: Any = aioredis.Redis.from_url(
                client_or_url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
            self._owns_client = True
        else:
            self.url = describe_client(client_or_url)
            self._client = client_or_url
            self._owns_client = False
        self.prefix = prefix
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._unwritten: list[tuple[str, float, float]] = []
        """Settlements Redis did not take (key, reserved, actual), written before the next operation."""
        self._last_committed: dict[str, float] = {}

    async def try_reserve(self, key: str, amount: float, limit: float) -> tuple[bool, float]:
        try:
            await self._write_unwritten()
            answer = await self._reserve(keys=[self.prefix + key], args=[repr(amount), repr(limit),
                                                                          window_ttl_s(key)])
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._unavailable(exc, "the call was not sent because its budget cannot be checked") from exc
        return bool(int(answer[0])), float(answer[1])

    async def settle(self, key: str, reserved: float, actual: float) -> float:
        try:
            await self._write_unwritten()
            total = float(await self._settle(keys=[self.prefix + key], args=[repr(-reserved), repr(actual),
                                                                             window_ttl_s(key)]))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # The provider has answered: failing now would lose a paid response. Keep the
            # settlement (the reservation stays held meanwhile, so nothing can overspend).
            self._unwritten.append((key, reserved, actual))
            estimate = self._last_committed.get(key, 0.0) + actual
            logger.warning(
                "budget spend of $%.6f on %s is not written yet: Redis at %s did not answer (%s: %s); it is "
                "written before the next budget operation", actual, key, self.url, type(exc).__name__, exc,
            )
            return estimate
        self._last_committed[key] = total
        return total

    async def spent(self, key: str) -> float:
        try:
            await self._write_unwritten()
            value = await self._client.hget(self.prefix + key, "committed")
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._unavailable(exc, "spend cannot be read") from exc
        return float(value) if value is not None else 0.0

    async def mark_alerted(self, key: str) -> bool:
        ttl = window_ttl_s(key)
        try:
            created = await self._client.set(self.prefix + key + "|alerted", b"1", nx=True, ex=ttl or None)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise self._unavailable(exc, "the budget alert cannot be recorded") from exc
        return bool(created)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _write_unwritten(self) -> None:
        while self._unwritten:
            key, reserved, actual = self._unwritten[0]
            total = await self._settle(keys=[self.prefix + key], args=[repr(-reserved), repr(actual),
                                                                       window_ttl_s(key)])
            self._last_committed[key] = float(total)
            self._unwritten.pop(0)

    def _unavailable(self, exc: BaseException, consequence: str) -> ProtocolConnectionError:
        return ProtocolConnectionError(self.url, f"{type(exc).__name__}: {exc}; {consequence}")


def _mask(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else f"{scheme}{sep}{user}@{host}"
