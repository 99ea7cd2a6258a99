"""State several instances share on Redis: breakers, learned rate limits and budget spend.

:func:`shared_state_from_settings` builds a :class:`SharedState` from ``AGENTADAPTER_REDIS_URL``
(None when it is unset). Hand it to ``LLM(shared=...)``: the facade's breakers and limiters then
live in a :class:`~agentadapter.llm.redis_health.RedisReliabilityStore` and its budgets count spend
in a :class:`~agentadapter.llm.policy.redis_budget.RedisBudgetStore`. The stores use one Redis
connection pool; :meth:`SharedState.aclose` closes it (the facades do not own it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentadapter.config import Settings
    from agentadapter.llm.policy.breaker import BreakerConfig, BreakerState
    from agentadapter.llm.policy.ratelimit import RateLimitConfig
    from agentadapter.llm.policy.redis_budget import RedisBudgetStore
    from agentadapter.llm.redis_health import RedisReliabilityStore

__all__ = ["SharedState", "shared_state_from_settings"]


class SharedState:
    """One Redis connection pool and the shared stores built on it."""

    def __init__(self, url: str, *, prefix: str = "agentadapter") -> None:
        import redis.asyncio as aioredis

        from agentadapter.llm.policy.redis_budget import RedisBudgetStore

        # Short timeouts: when Redis stops answering, budget checks fail fast and the reliability
        # store falls back to local state quickly.
        self.client: Any = aioredis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0,
                                                   health_check_interval=10)
        self.url = url.rsplit("@", 1)[-1]
        self.prefix = prefix
        self.budgets: RedisBudgetStore = RedisBudgetStore(self.client, prefix=f"{prefix}:budget:")
        self._stores: list[RedisReliabilityStore] = []

    def reliability_store(
        self,
        *,
        breaker_config: BreakerConfig | None = None,
        rate_limits: Mapping[str, RateLimitConfig] | None = None,
        on_breaker_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> RedisReliabilityStore:
        """A reliability store on this Redis (one per facade; facades derived from it share it)."""
        from agentadapter.llm.redis_health import RedisReliabilityStore

        store = RedisReliabilityStore(self.client, prefix=self.prefix, breaker_config=breaker_config,
                                      rate_limits=rate_limits, on_breaker_change=on_breaker_change)
        self._stores.append(store)
        return store

    async def start(self) -> None:
        """Subscribe the reliability stores now rather than on their first use (never raises for Redis)."""
        for store in self._stores:
            await store.start()

    async def aclose(self) -> None:
        for store in self._stores:
            await store.aclose()
        await self.client.aclose()


def shared_state_from_settings(settings: Settings) -> SharedState | None:
    """The shared stores on ``settings.redis_url`` (``AGENTADAPTER_REDIS_URL``); None when it is unset."""
    if not settings.redis_url:
        return None
    return SharedState(settings.redis_url)
