"""State several instances share on Redis: breakers, learned rate limits, budget spend and the cache.

:func:`shared_state_from_settings` builds a :class:`SharedState` on the process's Redis owner
(:class:`~agentadapter.redis_connections.RedisConnections`, built at start-up; None when
``AGENTADAPTER_REDIS_URL`` is unset). Hand it to ``LLM(shared=...)``: the facade's breakers and
limiters then live in a :class:`~agentadapter.llm.redis_health.RedisReliabilityStore`, its budgets
count spend in a :class:`~agentadapter.llm.policy.redis_budget.RedisBudgetStore` and a ``redis``
response cache uses the same connections. :meth:`SharedState.aclose` stops the stores, and closes
the connections only when it built them itself (from a URL); the facades own none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agentadapter.redis_connections import RedisConnections, connections_of

if TYPE_CHECKING:
    from agentadapter.config import Settings
    from agentadapter.llm.policy.breaker import BreakerConfig, BreakerState
    from agentadapter.llm.policy.ratelimit import RateLimitConfig
    from agentadapter.llm.policy.redis_budget import RedisBudgetStore
    from agentadapter.llm.redis_health import RedisReliabilityStore

__all__ = ["SharedState", "shared_state_from_settings"]


class SharedState:
    """The shared stores, on one Redis owner (given, or built here from a URL and then owned)."""

    def __init__(self, redis: RedisConnections | str, *, prefix: str = "agentadapter") -> None:
        from agentadapter.llm.policy.redis_budget import RedisBudgetStore

        self.connections, self._owns_connections = connections_of(redis)
        # The owner's command pool has short timeouts: when Redis stops answering, budget checks
        # fail fast and the reliability store falls back to local state quickly.
        self.client: Any = self.connections.commands
        self.url = self.connections.url
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
                                      rate_limits=rate_limits, on_breaker_change=on_breaker_change,
                                      subscriber=self.connections.blocking)
        self._stores.append(store)
        return store

    async def start(self) -> None:
        """Subscribe the reliability stores now rather than on their first use (never raises for Redis)."""
        for store in self._stores:
            await store.start()

    async def aclose(self) -> None:
        for store in self._stores:
            await store.aclose()
        if self._owns_connections:
            await self.connections.aclose()


def shared_state_from_settings(settings: Settings, redis: RedisConnections | None = None) -> SharedState | None:
    """The shared stores on ``redis`` (the process's owner) or, without one, on ``settings.redis_url``
    (``AGENTADAPTER_REDIS_URL``, an owner built for them); None when Redis is not configured."""
    if redis is not None:
        return SharedState(redis)
    owner = RedisConnections.from_settings(settings)
    if owner is None:
        return None
    shared = SharedState(owner)
    shared._owns_connections = True  # built here: closed with the shared state
    return shared
