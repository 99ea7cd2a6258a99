"""Errors raised by the communication protocol (message bus, agent registry, shared context).

Every error says what happened and what to do about it. They are drawn, with every other layer's,
in the one tree of :mod:`agentadapter.errors`; this part of it::

    ProtocolError
    ├── InvalidValueError           (also ValueError)  a value that is not JSON or a malformed key
    │   └── InvalidEnvelopeError                       a message that cannot be sent as built
    ├── QueueFullError                                 a recipient's inbox is at capacity
    ├── RequestTimeoutError         (also TimeoutError) no response before the deadline
    ├── RemoteError                                    the responder answered with an error
    ├── VersionConflictError                           a compare-and-set lost the race (alias CASConflict)
    ├── AgentNotFoundError          (also LookupError) the registry does not know the agent
    ├── NoAgentAvailableError                          no healthy agent has the capability
    ├── WatchOverflowError                             a watcher fell too far behind
    ├── ProtocolClosedError                            the component was closed
    └── ProtocolConnectionError     (also RedisUnavailableError) the Redis server could not be reached

``ProtocolError`` derives from :class:`~agentadapter.AgentAdapterError`, so ``except
AgentAdapterError`` also catches protocol failures; ``ProtocolConnectionError`` is also the
bottom layer's :class:`~agentadapter.errors.RedisUnavailableError` (which the adapter's Redis budget
store raises), so ``except RedisUnavailableError`` catches every Redis outage, whichever part met it.
"""

from __future__ import annotations

from agentadapter.errors import AgentAdapterError, RedisUnavailableError

__all__ = [
    "AgentNotFoundError",
    "CASConflict",
    "InvalidEnvelopeError",
    "InvalidValueError",
    "NoAgentAvailableError",
    "ProtocolClosedError",
    "ProtocolConnectionError",
    "ProtocolError",
    "QueueFullError",
    "RemoteError",
    "RequestTimeoutError",
    "VersionConflictError",
    "WatchOverflowError",
]


class ProtocolError(AgentAdapterError):
    """Base class of every error raised by ``agentadapter.protocol``."""


class InvalidValueError(ProtocolError, ValueError):
    """A value or name the protocol cannot store or route (not JSON, empty, control characters)."""


class InvalidEnvelopeError(InvalidValueError):
    """An envelope (or a topic, pattern or name) is malformed and was not sent."""


class QueueFullError(ProtocolError):
    """A recipient's inbox is at capacity and its policy refused the message."""

    def __init__(self, agent: str, maxsize: int, policy: str, *, waited_s: float | None = None) -> None:
        self.agent = agent
        self.maxsize = maxsize
        self.policy = policy
        self.waited_s = waited_s
        waited = f" after waiting {waited_s:g}s" if waited_s is not None else ""
        super().__init__(
            f"the inbox of agent {agent!r} is full ({maxsize} messages, policy {policy!r}){waited}; "
            "let the agent consume its messages, raise QueueConfig.maxsize, or choose the "
            "'drop_oldest' or 'wait' policy"
        )


class RequestTimeoutError(ProtocolError, TimeoutError):
    """A request received no response within its timeout."""

    def __init__(self, recipient: str, timeout_s: float, correlation_id: str) -> None:
        self.recipient = recipient
        self.timeout_s = timeout_s
        self.correlation_id = correlation_id
        super().__init__(
            f"agent {recipient!r} did not answer request {correlation_id} within {timeout_s:g}s; "
            "check that the agent is running and consuming its inbox (a handler or get_messages), "
            "or pass a longer timeout"
        )


class RemoteError(ProtocolError):
    """The responder handled a request and answered with an error."""

    def __init__(self, responder: str, message: str, *, error_type: str | None = None) -> None:
        self.responder = responder
        self.remote_message = message
        self.error_type = error_type
        kind = f"{error_type}: " if error_type else ""
        super().__init__(
            f"agent {responder!r} failed to handle the request ({kind}{message}); "
            "see that agent's logs, fix the request or the handler, and retry"
        )


class VersionConflictError(ProtocolError):
    """A compare-and-set found another version than expected: someone else wrote first."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"key {key!r} is at version {actual}, not the expected {expected}: another writer "
            "changed it first; re-read it (get_versioned) and retry, or use update(), which retries"
        )


#: Short alias: the compare-and-set lost the race.
CASConflict = VersionConflictError


class AgentNotFoundError(ProtocolError, LookupError):
    """The registry has no agent of that name."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        super().__init__(f"agent {agent!r} is not registered; call register() first (or again, if it was unregistered)")


class NoAgentAvailableError(ProtocolError):
    """No registered, healthy agent offers the requested capabilities."""

    def __init__(self, capabilities: tuple[str, ...], *, registered: int, healthy: int) -> None:
        self.capabilities = capabilities
        self.registered = registered
        self.healthy = healthy
        wanted = ", ".join(capabilities) or "(any)"
        super().__init__(
            f"no healthy agent offers {wanted}: {registered} registered with it, {healthy} of them healthy; "
            "register an agent with these capabilities, or make sure registered agents send heartbeats "
            "more often than the registry's heartbeat timeout"
        )


class WatchOverflowError(ProtocolError):
    """A watcher's buffer filled up because its consumer fell behind; changes were lost to it."""

    def __init__(self, target: str, buffer_size: int) -> None:
        self.target = target
        self.buffer_size = buffer_size
        super().__init__(
            f"the watch on {target!r} fell {buffer_size} changes behind and was stopped; consume changes "
            "faster or pass a larger buffer_size, then re-read the current state with get() or history()"
        )


class ProtocolClosedError(ProtocolError):
    """The bus, registry or context was used after close()."""

    def __init__(self, component: str) -> None:
        self.component = component
        super().__init__(f"the {component} is closed; create a new one (or do not close it while in use)")


class ProtocolConnectionError(ProtocolError, RedisUnavailableError):
    """The Redis server behind the protocol could not be reached or failed mid-operation."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(url, detail, advice="start the Redis server or fix the URL, or unset "
                                             "AGENTADAPTER_REDIS_URL to use the in-process protocol")
