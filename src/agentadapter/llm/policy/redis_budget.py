"""Budget spend on Redis, so every instance of the service counts against the same budgets.

:class:`RedisBudgetStore` implements :class:`~agentadapter.llm.policy.budget.BudgetStore`. Each budget
window is one hash (``committed``, ``reserved``) under ``<prefix><scope|window|window key>``; a
reservation is one Lua script that checks committed + reserved + amount against the limit and
reserves in the same step, so concurrent reservations from any number of processes cannot overspend.
Alert marks are ``SET NX`` keys. Day and month windows expire a little after their window ends (the
key names the window, so an expired key is never needed again); ``total`` never expires.

When Redis does not answer, a reservation is refused with
:class:`~agentadapter.errors.RedisUnavailableError`: sending a call whose spend cannot be
checked could overspend. A settlement that cannot be written (the provider has already answered) is
kept and written before the next operation instead of failing a call that was paid for.

Settlements are idempotent: each carries an id, and the settle script applies it only if it can
create the marker key ``<prefix>settled|<id>`` (``SET NX``, kept ``settlement_marker_ttl_s``) in the
same atomic step. A settlement Redis applied but whose reply was lost (the connection dropped) is
therefore skipped when retried, and the kept settlements are written by one flusher at a time, each
removed only once written - concurrent callers after an outage neither apply one twice nor drop one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentadapter.errors import RedisUnavailableError
from agentadapter.redis_connections import describe_client, mask_url

logger = logging.getLogger("agentadapter.budget")

__all__ = ["DEFAULT_PREFIX", "SETTLEMENT_MARKER_TTL_S", "RedisBudgetStore", "window_ttl_s"]

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

# KEYS[1]: the window's hash, KEYS[2]: the settlement's marker. ARGV: minus the reserved amount to
# release, actual spend, ttl (0: none), the marker's ttl. Returns {1 if applied now else 0 (applied
# before), the committed total}. The reservation never goes below zero (float rounding).
_SETTLE = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  return {0, redis.call('HGET', KEYS[1], 'committed') or '0'}
end
local reserved = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', ARGV[1]))
if reserved < 0 then
  redis.call('HSET', KEYS[1], 'reserved', '0')
end
local committed = redis.call('HINCRBYFLOAT', KEYS[1], 'committed', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {1, committed}
"""

#: How long a settlement's marker is kept (seconds): a kept settlement retried within this time is
#: never applied twice. One small key per settled call.
SETTLEMENT_MARKER_TTL_S = 2 * _DAY_S


@dataclass(frozen=True)
class _Settlement:
    """One call's spend to write: its id makes writing it again a no-op."""

    id: str
    key: str
    reserved: float
    actual: float


def window_ttl_s(key: str) -> int:
    """Seconds a budget key lives (0: forever), from the window named in ``scope|window|window key``."""
    parts = key.split("|")
    return _WINDOW_TTL_S.get(parts[-2], 0) if len(parts) >= 3 else 0


class RedisBudgetStore:
    """Spend and reservations on Redis, shared by every process that uses the same server and prefix.

    Pass a URL (the store owns the client and closes it in :meth:`aclose`) or a ``redis.asyncio``
    client (the caller keeps owning it: the shared state hands the command client of the process's
    :class:`~agentadapter.redis_connections.RedisConnections`).
    """

    def __init__(self, client_or_url: aioredis.Redis | str, *, prefix: str = DEFAULT_PREFIX,
                 settlement_marker_ttl_s: int = SETTLEMENT_MARKER_TTL_S) -> None:
        if isinstance(client_or_url, str):
            self.url = mask_url(client_or_url)
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
        self.settlement_marker_ttl_s = max(1, int(settlement_marker_ttl_s))
        self._unwritten: list[_Settlement] = []
        """Settlements Redis did not take, in order, written before the next operation."""
        self._flushing = asyncio.Lock()
        """One flusher at a time: concurrent ones would each write the head of the queue."""
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
        settlement = _Settlement(uuid.uuid4().hex, key, reserved, actual)
        try:
            await self._write_unwritten()
            total = await self._write(settlement)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # The provider has answered: failing now would lose a paid response. Keep the
            # settlement (the reservation stays held meanwhile, so nothing can overspend); its id
            # makes the retry a no-op if Redis did apply it before the connection dropped.
            self._unwritten.append(settlement)
            estimate = self._last_committed.get(key, 0.0) + actual
            logger.warning(
                "budget spend of $%.6f on %s is not written yet: Redis at %s did not answer (%s: %s); it is "
                "written before the next budget operation", actual, key, self.url, type(exc).__name__, exc,
            )
            return estimate
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

    async def _write(self, settlement: _Settlement) -> float:
        """Apply one settlement (or find it applied already); the window's committed total."""
        _, total = await self._settle(
            keys=[self.prefix + settlement.key, f"{self.prefix}settled|{settlement.id}"],
            args=[repr(-settlement.reserved), repr(settlement.actual), window_ttl_s(settlement.key),
                  self.settlement_marker_ttl_s])
        self._last_committed[settlement.key] = float(total)
        return float(total)

    async def _write_unwritten(self) -> None:
        if not self._unwritten:
            return
        async with self._flushing:
            # Settlements kept while this caller waited for the lock stay queued behind these; a
            # failure leaves the unwritten ones (and only those) for the next operation.
            while self._unwritten:
                settlement = self._unwritten[0]
                await self._write(settlement)
                self._unwritten.remove(settlement)

    @property
    def unwritten(self) -> int:
        """How many settlements wait for Redis to come back."""
        return len(self._unwritten)

    def _unavailable(self, exc: BaseException, consequence: str) -> RedisUnavailableError:
        return RedisUnavailableError(self.url, f"{type(exc).__name__}: {exc}; {consequence}")
