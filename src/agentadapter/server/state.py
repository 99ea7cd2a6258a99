"""``AppState``: what the server builds once at start-up (in the lifespan) and every request uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentadapter.agents.tools.registry import ToolRegistry
    from agentadapter.config import Settings
    from agentadapter.llm.client import LLM
    from agentadapter.server.auth import Authenticator
    from agentadapter.server.executor import RunExecutor
    from agentadapter.server.settings import ServerSettings
    from agentadapter.server.tenancy import TenantLLMs
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
    started_at: float = 0.0
    ready: bool = field(default=False)
