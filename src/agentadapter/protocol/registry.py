"""The agent registry: who is there, what they can do, whether they are alive, how busy they are.

Agents register with a set of capabilities (``"summarize"``, ``"search.web"``); a caller finds agents
offering all the capabilities it needs and picks the least busy healthy one. An agent is healthy while
its last heartbeat is younger than the registry's ``heartbeat_timeout_s``; unhealthy agents stay listed
(for diagnosis) but are never chosen. Load is the number of tasks in flight: :meth:`AgentRegistry.acquire`
atomically picks an agent and counts one more task on it, :meth:`AgentRegistry.release` counts it done,
and :meth:`AgentRegistry.lease` wraps the pair. Ties between equally loaded agents go to the one given
the fewest tasks so far, so work spreads round-robin. :class:`InProcessAgentRegistry` keeps all this in
memory behind a lock; ``redis_registry.py`` keeps it in Redis hashes with Lua for atomic selection.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Self

from agentadapter.protocol.envelope import check_json, validate_name
from agentadapter.protocol.errors import (
    AgentNotFoundError,
    InvalidValueError,
    NoAgentAvailableError,
    ProtocolClosedError,
)

__all__ = ["AgentInfo", "AgentRegistry", "InProcessAgentRegistry"]


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """A snapshot of one registered agent."""

    name: str
    """The agent's unique name (its bus address)."""
    capabilities: frozenset[str]
    """What the agent can do."""
    agent_type: str = "agent"
    """Free-form kind (``llm``, ``local``, ``tool``...)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """JSON-compatible extra facts (model, version, host)."""
    registered_at: float = 0.0
    """When the agent (last) registered (Unix seconds)."""
    last_heartbeat: float = 0.0
    """When the agent last reported alive (Unix seconds)."""
    load: int = 0
    """Tasks in flight on the agent now."""
    assigned: int = 0
    """Tasks given to the agent since it registered."""
    healthy: bool = True
    """Whether the last heartbeat is within the registry's timeout (as of this snapshot)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (capabilities sorted)."""
        return {
            "name": self.name,
            "capabilities": sorted(self.capabilities),
            "agent_type": self.agent_type,
            "metadata": dict(self.metadata),
            "registered_at": self.registered_at,
            "last_heartbeat": self.last_heartbeat,
            "load": self.load,
            "assigned": self.assigned,
            "healthy": self.healthy,
        }


def selection_key(info: AgentInfo) -> tuple[int, int, str]:
    """Least busy first; among equals, the one given the fewest tasks; then by name (deterministic)."""
    return (info.load, info.assigned, info.name)


def normalize_capabilities(capabilities: Iterable[str]) -> frozenset[str]:
    """Validate capability names and return them as a frozenset."""
    if isinstance(capabilities, str):
        capabilities = (capabilities,)
    return frozenset(validate_name(capability, "capability") for capability in capabilities)


class AgentRegistry(ABC):
    """The registry contract, implemented in-process and on Redis.

    ``clock`` (Unix seconds) stamps heartbeats and judges health; tests may pass a fake one.
    """

    def __init__(self, *, heartbeat_timeout_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        if heartbeat_timeout_s <= 0:
            raise ValueError(f"heartbeat_timeout_s must be positive, not {heartbeat_timeout_s}")
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._clock = clock
        self._closed = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and prepare (a no-op in-process)."""

    async def close(self) -> None:
        """Release resources; the registry cannot be used afterwards."""
        self._closed = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ProtocolClosedError("agent registry")

    def is_healthy(self, last_heartbeat: float, now: float | None = None) -> bool:
        """Whether a heartbeat at ``last_heartbeat`` still counts as alive."""
        return (self._clock() if now is None else now) - last_heartbeat <= self.heartbeat_timeout_s

    @abstractmethod
    async def register(
        self,
        name: str,
        capabilities: Iterable[str] = (),
        *,
        agent_type: str = "agent",
        metadata: Mapping[str, Any] | None = None,
    ) -> AgentInfo:
        """Register (or re-register) ``name``; counts as a heartbeat. Load and assignments are kept."""

    @abstractmethod
    async def unregister(self, name: str) -> bool:
        """Remove ``name``; False if it was not registered."""

    @abstractmethod
    async def heartbeat(self, name: str, *, load: int | None = None) -> None:
        """Report ``name`` alive (and optionally its current load); AgentNotFoundError if unknown."""

    @abstractmethod
    async def get(self, name: str) -> AgentInfo | None:
        """The agent's snapshot, or None."""

    @abstractmethod
    async def agents(self, *, healthy_only: bool = False) -> list[AgentInfo]:
        """Every registered agent, sorted by name."""

    @abstractmethod
    async def find(self, *capabilities: str, healthy_only: bool = True) -> list[AgentInfo]:
        """Agents offering all ``capabilities`` (any agent if none given), least busy first."""

    @abstractmethod
    async def acquire(self, *capabilities: str) -> AgentInfo:
        """Pick the least busy healthy agent offering all ``capabilities`` and add one to its load.

        Atomic: concurrent callers never both see the same load. Raises NoAgentAvailableError.
        The returned snapshot shows the load after the increment. Pair with :meth:`release`.
        """

    @abstractmethod
    async def release(self, name: str) -> None:
        """Count one task on ``name`` as done (load never goes below 0); unknown names are ignored."""

    @abstractmethod
    async def set_load(self, name: str, load: int) -> None:
        """Set ``name``'s load as the agent itself reports it; AgentNotFoundError if unknown."""

    async def select(self, *capabilities: str) -> AgentInfo:
        """The least busy healthy agent offering all ``capabilities``, without changing its load."""
        candidates = await self.find(*capabilities, healthy_only=False)
        healthy = [info for info in candidates if info.healthy]
        if not healthy:
            raise NoAgentAvailableError(tuple(capabilities), registered=len(candidates), healthy=0)
        return healthy[0]

    @asynccontextmanager
    async def lease(self, *capabilities: str) -> AsyncIterator[AgentInfo]:
        """``async with registry.lease("summarize") as agent:`` acquire, then release on exit."""
        info = await self.acquire(*capabilities)
        try:
            yield info
        finally:
            await self.release(info.name)


@dataclass(slots=True)
class _Entry:
    name: str
    capabilities: frozenset[str]
    agent_type: str
    metadata: dict[str, Any]
    registered_at: float
    last_heartbeat: float
    load: int = 0
    assigned: int = 0


class InProcessAgentRegistry(AgentRegistry):
    """The registry for one process: a dict behind a lock (safe from any thread)."""

    def __init__(self, *, heartbeat_timeout_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(heartbeat_timeout_s=heartbeat_timeout_s, clock=clock)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def _snapshot(self, entry: _Entry, now: float) -> AgentInfo:
        return AgentInfo(
            name=entry.name,
            capabilities=entry.capabilities,
            agent_type=entry.agent_type,
            metadata=dict(entry.metadata),
            registered_at=entry.registered_at,
            last_heartbeat=entry.last_heartbeat,
            load=entry.load,
            assigned=entry.assigned,
            healthy=self.is_healthy(entry.last_heartbeat, now),
        )

    async def register(
        self,
        name: str,
        capabilities: Iterable[str] = (),
        *,
        agent_type: str = "agent",
        metadata: Mapping[str, Any] | None = None,
    ) -> AgentInfo:
        self._check_open()
        validate_name(name)
        caps = normalize_capabilities(capabilities)
        meta = dict(metadata or {})
        check_json(meta, f"metadata of agent {name!r}", error=InvalidValueError)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry(name, caps, agent_type, meta, now, now)
            else:
                entry.capabilities, entry.agent_type, entry.metadata = caps, agent_type, meta
                entry.registered_at = entry.last_heartbeat = now
            return self._snapshot(entry, now)

    async def unregister(self, name: str) -> bool:
        self._check_open()
        with self._lock:
            return self._entries.pop(name, None) is not None

    async def heartbeat(self, name: str, *, load: int | None = None) -> None:
        self._check_open()
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise AgentNotFoundError(name)
            entry.last_heartbeat = self._clock()
            if load is not None:
                entry.load = max(0, int(load))

    async def get(self, name: str) -> AgentInfo | None:
        self._check_open()
        with self._lock:
            entry = self._entries.get(name)
            return None if entry is None else self._snapshot(entry, self._clock())

    async def agents(self, *, healthy_only: bool = False) -> list[AgentInfo]:
        self._check_open()
        now = self._clock()
        with self._lock:
            infos = [self._snapshot(entry, now) for entry in self._entries.values()]
        return sorted((info for info in infos if info.healthy or not healthy_only), key=lambda info: info.name)

    def _candidates_locked(self, wanted: frozenset[str], now: float) -> list[AgentInfo]:
        return sorted(
            (self._snapshot(entry, now) for entry in self._entries.values() if wanted <= entry.capabilities),
            key=selection_key,
        )

    async def find(self, *capabilities: str, healthy_only: bool = True) -> list[AgentInfo]:
        self._check_open()
        wanted = normalize_capabilities(capabilities)
        with self._lock:
            candidates = self._candidates_locked(wanted, self._clock())
        return [info for info in candidates if info.healthy or not healthy_only]

    async def acquire(self, *capabilities: str) -> AgentInfo:
        self._check_open()
        wanted = normalize_capabilities(capabilities)
        with self._lock:
            candidates = self._candidates_locked(wanted, self._clock())
            for info in candidates:
                if info.healthy:
                    entry = self._entries[info.name]
                    entry.load += 1
                    entry.assigned += 1
                    return replace(info, load=entry.load, assigned=entry.assigned)
        raise NoAgentAvailableError(tuple(capabilities), registered=len(candidates), healthy=0)

    async def release(self, name: str) -> None:
        self._check_open()
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.load > 0:
                entry.load -= 1

    async def set_load(self, name: str, load: int) -> None:
        self._check_open()
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise AgentNotFoundError(name)
            entry.load = max(0, int(load))
