"""The communication protocol: message bus, agent registry and shared context, in-process or on Redis.

Agents of a run talk through a :class:`MessageBus` (direct, broadcast, topic and request/response
messages in :class:`Envelope` s), find each other through an :class:`AgentRegistry` (capabilities,
heartbeats, least-busy selection) and share state through a :class:`SharedContext` (versioned keys,
compare-and-set, history, watches). :func:`create_protocol` binds the three for one run and picks the
implementation: in-process by default, Redis when ``AGENTADAPTER_REDIS_URL`` (or ``redis_url=``) is
set. The Redis classes load lazily, so importing this package never imports ``redis``. This package
knows nothing about LLMs or agents; ``agentadapter.agents`` builds on it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentadapter.protocol.bus import (
    BusConfig,
    FullPolicy,
    Handler,
    HandlerRegistration,
    MessageBus,
    QueueConfig,
)
from agentadapter.protocol.context import (
    Change,
    InProcessSharedContext,
    SharedContext,
    Versioned,
    Watch,
    WatchCallback,
)
from agentadapter.protocol.envelope import Envelope, MessageType, Priority, topic_matches
from agentadapter.protocol.errors import (
    AgentNotFoundError,
    CASConflict,
    InvalidEnvelopeError,
    InvalidValueError,
    NoAgentAvailableError,
    ProtocolClosedError,
    ProtocolConnectionError,
    ProtocolError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
    VersionConflictError,
    WatchOverflowError,
)
from agentadapter.protocol.inprocess_bus import InProcessMessageBus
from agentadapter.protocol.protocol import AgentChannel, CommunicationProtocol, create_protocol
from agentadapter.protocol.registry import AgentInfo, AgentRegistry, InProcessAgentRegistry

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from agentadapter.protocol._redis import RedisLink
    from agentadapter.protocol.redis_bus import RedisMessageBus
    from agentadapter.protocol.redis_context import RedisSharedContext
    from agentadapter.protocol.redis_registry import RedisAgentRegistry

# The Redis implementations import the redis package: load them on first use only.
_LAZY: dict[str, str] = {
    "RedisAgentRegistry": "agentadapter.protocol.redis_registry",
    "RedisLink": "agentadapter.protocol._redis",
    "RedisMessageBus": "agentadapter.protocol.redis_bus",
    "RedisSharedContext": "agentadapter.protocol.redis_context",
}

__all__ = [
    "AgentChannel",
    "AgentInfo",
    "AgentNotFoundError",
    "AgentRegistry",
    "BusConfig",
    "CASConflict",
    "Change",
    "CommunicationProtocol",
    "Envelope",
    "FullPolicy",
    "Handler",
    "HandlerRegistration",
    "InProcessAgentRegistry",
    "InProcessMessageBus",
    "InProcessSharedContext",
    "InvalidEnvelopeError",
    "InvalidValueError",
    "MessageBus",
    "MessageType",
    "NoAgentAvailableError",
    "Priority",
    "ProtocolClosedError",
    "ProtocolConnectionError",
    "ProtocolError",
    "QueueConfig",
    "QueueFullError",
    "RedisAgentRegistry",
    "RedisLink",
    "RedisMessageBus",
    "RedisSharedContext",
    "RemoteError",
    "RequestTimeoutError",
    "SharedContext",
    "VersionConflictError",
    "Versioned",
    "Watch",
    "WatchCallback",
    "WatchOverflowError",
    "create_protocol",
    "topic_matches",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'agentadapter.protocol' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
