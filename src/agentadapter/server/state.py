"""``AppState``: what the server builds once at start-up (in the lifespan) and every request uses.

It is the application layer's :class:`~agentadapter.service.common.ServiceParts` for this process:
services take it as such (``service`` is the part of the server's settings they read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentadapter.agents.tools.registry import ToolRegistry
    from agentadapter.config import Settings
    from agentadapter.llm.client import LLM
    from agentadapter.llm.shared import SharedState
    from agentadapter.redis_connections import RedisConnections
    from agentadapter.server.auth import Authenticator
    from agentadapter.server.drain import Drain
    from agentadapter.server.housekeeping import RetentionTask
    from agentadapter.server.ratelimit import RateLimiter
    from agentadapter.server.settings import ServerSettings
    from agentadapter.service.config import ServiceSettings
    from agentadapter.service.executor import RunExecutor
    from agentadapter.service.knowledge import Knowledge
    from agentadapter.service.tenancy import TenantLLMs
    from agentadapter.store.database import Database

__all__ = ["AppState"]


@dataclass(slots=True)
class AppState:
    """The server's long-lived parts."""

    settings: Settings
    server: ServerSettings
    db: Database
    auth: Authenticator
    executor: RunExecutor
    llm: LLM
    tools: ToolRegistry
    tenant_llms: TenantLLMs
    """The facade each tenant's calls go through (its keys, credits and tag)."""
    limiter: RateLimiter | None = None
    """Request rate limits per key and tenant; None when they are off."""
    retention: RetentionTask | None = None
    """The periodic purge of old data; None when AGENTADAPTER_RETENTION_INTERVAL_S is 0."""
    shared: SharedState | None = None
    """Breakers, learned rate limits and budget spend on Redis; None without AGENTADAPTER_REDIS_URL."""
    redis: RedisConnections | None = None
    """The process's one owner of Redis connections, handed to every part that uses Redis and closed
    last at shutdown; None without AGENTADAPTER_REDIS_URL."""
    knowledge: Knowledge | None = None
    """Files, archives, ingestion and search (built at start-up)."""
    drain: Drain | None = None
    """Set on SIGTERM: /readyz answers 503 and SSE streams end (server/drain.py)."""
    started_at: float = 0.0
    ready: bool = field(default=False)

    @property
    def service(self) -> ServiceSettings:
        """What the application layer reads of the server's settings (run caps, credits, denied tools)."""
        return self.server
