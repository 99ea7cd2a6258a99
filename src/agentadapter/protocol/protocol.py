"""The communication protocol of one run: its bus, registry and shared context, and each agent's view.

:class:`CommunicationProtocol` binds a :class:`~agentadapter.protocol.bus.MessageBus`, an
:class:`~agentadapter.protocol.registry.AgentRegistry` and a
:class:`~agentadapter.protocol.context.SharedContext` to one run id; with Redis, all three live under
that run's namespace, so concurrent runs never see each other's agents, messages or state.
:meth:`CommunicationProtocol.join` gives an agent its :class:`AgentChannel` - send, ask, broadcast,
publish, subscribe, receive, shared and private state - which is what an agent's execution context
exposes. :func:`create_protocol` picks the implementation: Redis when a URL is given or
``AGENTADAPTER_REDIS_URL`` is set, in-process otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

from agentadapter.protocol.bus import (
    BusConfig,
    Handler,
    HandlerRegistration,
    MessageBus,
    QueueConfig,
)
from agentadapter.protocol.context import InProcessSharedContext, SharedContext
from agentadapter.protocol.envelope import Envelope, MessageType, Priority, validate_name
from agentadapter.protocol.inprocess_bus import InProcessMessageBus
from agentadapter.protocol.registry import AgentInfo, AgentRegistry, InProcessAgentRegistry

if TYPE_CHECKING:
    from agentadapter.redis_connections import RedisConnections

__all__ = ["REDIS_URL_ENV", "AgentChannel", "CommunicationProtocol", "create_protocol"]

#: The environment variable that selects the Redis implementation.
REDIS_URL_ENV = "AGENTADAPTER_REDIS_URL"


class AgentChannel:
    """One agent's handle on the protocol: messaging as that agent, plus shared and private state."""

    def __init__(self, protocol: CommunicationProtocol, name: str) -> None:
        self.protocol = protocol
        self.name = validate_name(name)
        self._private: SharedContext | None = None

    def __repr__(self) -> str:
        return f"AgentChannel({self.name!r}, run_id={self.protocol.run_id!r})"

    @property
    def state(self) -> SharedContext:
        """The run's shared (global) state."""
        return self.protocol.context

    @property
    def private(self) -> SharedContext:
        """This agent's namespace of the shared state (``agents/<name>/...``)."""
        if self._private is None:
            self._private = self.protocol.context.namespace(self.name)
        return self._private

    def _envelope(
        self,
        type: MessageType,
        payload: Any,
        *,
        recipient: str | None = None,
        topic: str | None = None,
        priority: int,
        ttl_s: float | None,
        headers: dict[str, str] | None,
    ) -> Envelope:
        return Envelope(
            type=type,
            sender=self.name,
            recipient=recipient,
            topic=topic,
            payload=payload,
            priority=priority,
            run_id=self.protocol.run_id,
            ttl_s=ttl_s,
            headers=headers,
        )

    async def send(
        self,
        to: str,
        payload: Any = None,
        *,
        type: MessageType = MessageType.MESSAGE,
        priority: int = Priority.NORMAL,
        ttl_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Envelope:
        """Send ``payload`` to agent ``to``; return the envelope sent."""
        envelope = self._envelope(type, payload, recipient=to, priority=priority, ttl_s=ttl_s, headers=headers)
        await self.protocol.bus.send(envelope)
        return envelope

    async def publish(
        self,
        topic: str,
        payload: Any = None,
        *,
        type: MessageType = MessageType.EVENT,
        priority: int = Priority.NORMAL,
        ttl_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Envelope:
        """Publish ``payload`` on ``topic`` to every agent subscribed with a matching pattern."""
        envelope = self._envelope(type, payload, topic=topic, priority=priority, ttl_s=ttl_s, headers=headers)
        await self.protocol.bus.send(envelope)
        return envelope

    async def broadcast(
        self,
        payload: Any = None,
        *,
        type: MessageType = MessageType.BROADCAST,
        priority: int = Priority.NORMAL,
        ttl_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Envelope:
        """Send ``payload`` to every agent that joined (has an open inbox), except this one."""
        envelope = self._envelope(type, payload, priority=priority, ttl_s=ttl_s, headers=headers)
        await self.protocol.bus.send(envelope)
        return envelope

    async def ask(
        self,
        to: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        priority: int = Priority.NORMAL,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request to ``to`` and return its response's payload.

        Raises RequestTimeoutError if no response arrives within ``timeout`` (default: the bus's
        ``request_timeout_s``) and RemoteError if the responder answered with an error. The request
        expires with the timeout, so a late responder never works on it.
        """
        effective = self.protocol.bus.config.request_timeout_s if timeout is None else timeout
        envelope = self._envelope(
            MessageType.REQUEST, payload, recipient=to, priority=priority, ttl_s=effective, headers=headers
        )
        response = await self.protocol.bus.request(envelope, timeout=effective)
        return response.payload

    async def reply(self, request: Envelope, payload: Any = None, *, error: bool = False) -> Envelope:
        """Answer ``request`` (an ``ERROR`` response when ``error``)."""
        return await self.protocol.bus.reply(request, payload, sender=self.name, error=error)

    async def receive(
        self, max_messages: int = 100, timeout: float | None = 0.0, *, auto_ack: bool = True
    ) -> list[Envelope]:
        """Take waiting messages, highest priority first (see :meth:`MessageBus.get_messages`)."""
        return await self.protocol.bus.get_messages(self.name, max_messages, timeout, auto_ack=auto_ack)

    async def ack(self, envelopes: Iterable[Envelope]) -> None:
        """Acknowledge messages received with ``auto_ack=False``."""
        await self.protocol.bus.ack(self.name, envelopes)

    async def on_message(
        self, handler: Handler, *, concurrency: int = 1, sync_in_thread: bool = True
    ) -> HandlerRegistration:
        """Call ``handler`` for each incoming message (see :meth:`MessageBus.add_handler`)."""
        return await self.protocol.bus.add_handler(
            self.name, handler, concurrency=concurrency, sync_in_thread=sync_in_thread
        )

    async def subscribe(self, pattern: str) -> None:
        """Receive messages published on topics matching ``pattern`` (``*`` one segment, ``#`` any)."""
        await self.protocol.bus.subscribe(self.name, pattern)

    async def unsubscribe(self, pattern: str) -> None:
        """Stop receiving messages for ``pattern``."""
        await self.protocol.bus.unsubscribe(self.name, pattern)

    async def heartbeat(self, *, load: int | None = None) -> None:
        """Tell the registry this agent is alive (and, optionally, how many tasks it has in flight)."""
        await self.protocol.registry.heartbeat(self.name, load=load)


class CommunicationProtocol:
    """The bus, registry and shared context of one run. ``async with`` it, or start() and close()."""

    def __init__(
        self,
        bus: MessageBus,
        registry: AgentRegistry,
        context: SharedContext,
        *,
        run_id: str,
        purge: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.context = context
        self.run_id = run_id
        self._purge = purge

    def __repr__(self) -> str:
        return f"CommunicationProtocol(run_id={self.run_id!r}, transport={self.transport!r})"

    @property
    def transport(self) -> str:
        """``inprocess`` or ``redis``."""
        return self.bus.transport

    async def start(self) -> None:
        """Connect (checks that Redis answers; a no-op in-process)."""
        await self.bus.start()
        await self.registry.start()
        await self.context.start()

    async def close(self, *, purge: bool = False) -> None:
        """Stop handlers and watches and release connections.

        Stored data stays unless ``purge``: then everything this run stored in Redis is deleted once
        the handlers have stopped (so none of them recreates an inbox afterwards).
        """
        await self.bus.close()
        if purge and self._purge is not None:
            await self._purge()
        await self.registry.close()
        await self.context.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def purge(self) -> None:
        """Delete everything this run stored in Redis (messages, history, agents, state) now.

        For when the run's audit history is no longer needed; a no-op in-process. Running handlers
        may recreate their (empty) inboxes: to clean up at the end of a run, ``close(purge=True)``.
        """
        if self._purge is not None:
            await self._purge()

    def channel(self, name: str) -> AgentChannel:
        """A handle for agent ``name`` without joining (it can send, but gets no broadcasts)."""
        return AgentChannel(self, name)

    async def join(
        self,
        name: str,
        capabilities: Iterable[str] = (),
        *,
        agent_type: str = "agent",
        metadata: Mapping[str, Any] | None = None,
        queue: QueueConfig | None = None,
    ) -> AgentChannel:
        """Open ``name``'s inbox (so it receives broadcasts), register it, and return its channel."""
        channel = AgentChannel(self, name)
        await self.bus.open_inbox(name, queue)
        await self.registry.register(name, capabilities, agent_type=agent_type, metadata=metadata)
        return channel

    async def leave(self, name: str) -> None:
        """Close ``name``'s inbox (dropping waiting messages) and unregister it."""
        await self.bus.close_inbox(name)
        await self.registry.unregister(name)

    async def history(self, **filters: Any) -> list[Envelope]:
        """This run's messages (see :meth:`MessageBus.history` for the filters)."""
        return await self.bus.history(run_id=self.run_id, **filters)

    async def agents(self, *, healthy_only: bool = False) -> list[AgentInfo]:
        """The agents registered in this run."""
        return await self.registry.agents(healthy_only=healthy_only)


def create_protocol(
    run_id: str | None = None,
    redis_url: str | None = None,
    *,
    bus_config: BusConfig | None = None,
    heartbeat_timeout_s: float = 30.0,
    context_history_max: int = 10_000,
    key_prefix: str = "agentadapter",
    connections: RedisConnections | None = None,
) -> CommunicationProtocol:
    """Create the protocol for a run (a new run id if None).

    Redis is used when ``redis_url`` is given or, if it is None, when ``AGENTADAPTER_REDIS_URL`` is
    set; otherwise everything stays in this process. ``connections`` is the process's Redis owner
    (:class:`~agentadapter.redis_connections.RedisConnections`): when given, a Redis protocol uses its
    ``blocking`` pool (the bus blocks in its reads) instead of a pool of its own per run.
    Connections open lazily: ``async with`` the result (or await its start()) to check Redis is
    reachable up front.
    """
    run_id = run_id or uuid.uuid4().hex
    if redis_url is None:
        redis_url = os.environ.get(REDIS_URL_ENV) or None
    if redis_url is None:
        return CommunicationProtocol(
            InProcessMessageBus(bus_config),
            InProcessAgentRegistry(heartbeat_timeout_s=heartbeat_timeout_s),
            InProcessSharedContext(history_max=context_history_max),
            run_id=run_id,
        )
    # Imported here so that the in-process protocol never needs the redis package.
    from agentadapter.protocol._redis import RedisLink
    from agentadapter.protocol.redis_bus import RedisMessageBus
    from agentadapter.protocol.redis_context import RedisSharedContext
    from agentadapter.protocol.redis_registry import RedisAgentRegistry

    client = connections.blocking if connections is not None else redis_url
    link = RedisLink(client, namespace=f"run:{run_id}", key_prefix=key_prefix)
    return CommunicationProtocol(
        RedisMessageBus(link, config=bus_config),
        RedisAgentRegistry(link, heartbeat_timeout_s=heartbeat_timeout_s),
        RedisSharedContext(link, history_max=context_history_max),
        run_id=run_id,
        purge=link.purge,
    )
