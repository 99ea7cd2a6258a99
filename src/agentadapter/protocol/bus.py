"""The message bus: its contract (:class:`MessageBus`) and the in-process implementation.

A bus routes :class:`~agentadapter.protocol.envelope.Envelope` s into per-agent inboxes: direct
(``recipient``), published on a topic (to every agent subscribed with a matching pattern) or broadcast
(to every open inbox but the sender's). Each inbox is a bounded priority queue: one FIFO per
priority level, a capacity, a retention age and a policy for when it is full (reject, drop the
oldest, or make the sender wait). Agents consume with :meth:`MessageBus.get_messages` or a registered
handler; a message taken without ``auto_ack`` is redelivered if it is not acknowledged within
``claim_idle_s`` (the Redis bus does the same with consumer groups and XAUTOCLAIM, see
``redis_bus.py``). Requests wait for a response with the same correlation id. Every message sent is
kept in a bounded history for audit. :class:`InProcessMessageBus` is asyncio-native and also
thread-safe: its state sits behind one ``threading.Lock`` that is never held across an ``await``, and
waiters are woken on their own event loop, so a handler running in a worker thread may use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from agentadapter.observability.metrics import BUS_METRICS
from agentadapter.protocol.envelope import (
    PRIORITY_LEVELS,
    Envelope,
    MessageType,
    check_json,
    check_priority,
    new_message_id,
    topic_matches,
    validate_name,
    validate_pattern,
    validate_topic,
)
from agentadapter.protocol.errors import (
    InvalidEnvelopeError,
    ProtocolClosedError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
)

__all__ = [
    "BusConfig",
    "FullPolicy",
    "Handler",
    "HandlerRegistration",
    "InProcessMessageBus",
    "MessageBus",
    "QueueConfig",
]

logger = logging.getLogger("agentadapter.protocol.bus")

#: A message handler: a sync or async callable taking the envelope. For a ``REQUEST``, a non-None
#: return value is sent back as the response payload (and an exception as an ``ERROR`` response).
Handler = Callable[[Envelope], Any]

# Priority -> level index. Looked up with dict.get so that a bad priority costs nothing until it
# happens (and IntEnum members hash like their ints).
_LEVEL = {level: level for level in range(PRIORITY_LEVELS)}
_LEVELS_HIGH_FIRST = tuple(range(PRIORITY_LEVELS - 1, -1, -1))


class FullPolicy(StrEnum):
    """What an inbox does when a message arrives and it is at capacity."""

    REJECT = "reject"
    """Refuse the message: a direct send raises QueueFullError; a fan-out skips that inbox."""
    DROP_OLDEST = "drop_oldest"
    """Evict the oldest waiting message of the lowest priority present, then accept the new one."""
    WAIT = "wait"
    """The sender waits for room, up to ``QueueConfig.wait_timeout_s``, then gets QueueFullError."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Capacity and policies of one agent's inbox."""

    maxsize: int = 10_000
    """Most messages held: waiting plus delivered-but-unacknowledged."""
    policy: FullPolicy = FullPolicy.REJECT
    """What happens to a message arriving at a full inbox."""
    retention_s: float | None = None
    """Messages older than this (since creation) are discarded instead of delivered; None keeps them."""
    wait_timeout_s: float = 30.0
    """With policy ``wait``: how long a sender waits for room before QueueFullError."""

    def __post_init__(self) -> None:
        if self.maxsize < 1:
            raise ValueError(f"QueueConfig.maxsize must be at least 1, not {self.maxsize}")
        object.__setattr__(self, "policy", FullPolicy(self.policy))
        if self.retention_s is not None and self.retention_s <= 0:
            raise ValueError(f"QueueConfig.retention_s must be positive or None, not {self.retention_s}")
        if self.wait_timeout_s < 0:
            raise ValueError(f"QueueConfig.wait_timeout_s must not be negative, not {self.wait_timeout_s}")


@dataclass(frozen=True, slots=True)
class BusConfig:
    """Settings shared by both bus implementations."""

    queue: QueueConfig = field(default_factory=QueueConfig)
    """Default inbox settings (override per agent with ``open_inbox(agent, config)``)."""
    history_max: int = 100_000
    """Most messages kept in the audit history (the oldest are discarded first)."""
    history_retention_s: float | None = None
    """Messages older than this leave the history; None keeps them until ``history_max`` pushes them out."""
    claim_idle_s: float = 60.0
    """A message taken without ``auto_ack`` and not acknowledged for this long is delivered again."""
    request_timeout_s: float = 30.0
    """Default time a request waits for its response."""
    validate_payloads: bool = False
    """In-process only: check every payload is JSON at send time (the Redis bus always does, as it
    serializes). Off by default because it costs about as much as the rest of a send."""

    def __post_init__(self) -> None:
        if self.history_max < 0:
            raise ValueError(f"BusConfig.history_max must not be negative, not {self.history_max}")
        if self.claim_idle_s <= 0:
            raise ValueError(f"BusConfig.claim_idle_s must be positive, not {self.claim_idle_s}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"BusConfig.request_timeout_s must be positive, not {self.request_timeout_s}")


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended, whatever it raised.

    Cancels again while it keeps running: a client library may swallow a cancellation that lands
    just as a command completes (redis-py does), and a background task must still stop.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.05)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("task %s ended with %r while being stopped", task.get_name(), task.exception())


class HandlerRegistration:
    """A running handler: worker tasks that take messages from an inbox and call the handler."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def active(self) -> bool:
        """Whether any worker is still running."""
        return any(not task.done() for task in self._tasks)

    async def stop(self) -> None:
        """Stop the workers. Messages taken but not yet handled are redelivered later (not lost)."""
        self.stopping = True
        for task in self._tasks:
            await cancel_and_wait(task)


def _set_if_pending(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _wake(future: asyncio.Future[Any], value: Any = None) -> bool:
    """Resolve ``future`` from any thread; False if it was already done (cancelled or timed out)."""
    if future.done():
        return False
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        future.set_result(value)
    else:
        # Another thread (or loop): futures are not thread-safe, so resolve it on its own loop.
        try:
            loop.call_soon_threadsafe(_set_if_pending, future, value)
        except RuntimeError:  # that loop is closed; nobody is waiting any more
            return False
    return True


class MessageBus(ABC):
    """The message bus contract, implemented in-process and on Redis.

    Sending: :meth:`send` routes by the envelope's fields (``recipient``, ``topic``, or neither for a
    broadcast). Receiving: :meth:`get_messages` or :meth:`add_handler`. Request/response:
    :meth:`request` and :meth:`reply`. Audit: :meth:`history`. Use ``async with bus:`` or call
    :meth:`close` to stop handlers and release resources.
    """

    transport: str = "abstract"

    def __init__(self, config: BusConfig | None = None) -> None:
        self.config = config or BusConfig()
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        self._handlers: list[HandlerRegistration] = []
        self._closed = False
        self._latency = BUS_METRICS.latency(self.transport)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and prepare (a no-op in-process)."""

    async def close(self) -> None:
        """Stop handlers and fail pending requests; the bus cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        for registration in list(self._handlers):
            await registration.stop()
        self._handlers.clear()
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(ProtocolClosedError("message bus"))
        self._pending.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ProtocolClosedError("message bus")

    # -- inboxes and subscriptions -----------------------------------------------------------

    @abstractmethod
    async def open_inbox(self, agent: str, config: QueueConfig | None = None) -> None:
        """Create (or reconfigure) ``agent``'s inbox and include it in broadcasts."""

    @abstractmethod
    async def close_inbox(self, agent: str) -> None:
        """Remove ``agent``'s inbox, its waiting messages and its subscriptions."""

    @abstractmethod
    async def subscribe(self, agent: str, pattern: str) -> None:
        """Deliver messages published on topics matching ``pattern`` (``*`` one segment, ``#`` any)."""

    @abstractmethod
    async def unsubscribe(self, agent: str, pattern: str) -> None:
        """Stop delivering messages for ``pattern`` (no error if not subscribed)."""

    @abstractmethod
    async def subscriptions(self, agent: str) -> list[str]:
        """The patterns ``agent`` is subscribed to, sorted."""

    @abstractmethod
    async def queue_depth(self, agent: str) -> int:
        """Messages waiting in ``agent``'s inbox (not counting delivered-but-unacknowledged ones)."""

    # -- sending and receiving ---------------------------------------------------------------

    @abstractmethod
    async def send(self, envelope: Envelope) -> int:
        """Route ``envelope``; return how many inboxes received it.

        Raises QueueFullError when a direct recipient's inbox is full (policy ``reject``, or ``wait``
        past its timeout). A fan-out skips full inboxes (counted as dropped). An expired envelope is
        recorded in the history but delivered to no one (returns 0).
        """

    @abstractmethod
    async def get_messages(
        self, agent: str, max_messages: int = 100, timeout: float | None = 0.0, *, auto_ack: bool = True
    ) -> list[Envelope]:
        """Take up to ``max_messages`` from ``agent``'s inbox, highest priority first.

        ``timeout``: 0 returns at once (possibly empty), a positive number waits up to that many
        seconds for the first message, None waits indefinitely. With ``auto_ack=False`` the caller
        must :meth:`ack` them, or they are delivered again after ``claim_idle_s``.
        """

    @abstractmethod
    async def ack(self, agent: str, envelopes: Iterable[Envelope]) -> None:
        """Acknowledge messages taken with ``auto_ack=False`` (unknown ones are ignored)."""

    @abstractmethod
    async def history(
        self,
        *,
        run_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        types: Iterable[MessageType | str] | None = None,
        limit: int = 1000,
    ) -> list[Envelope]:
        """Messages sent, oldest first, filtered by run, agent (as sender or recipient), creation time
        window ``[since, until]`` (Unix seconds) and type; at most ``limit`` (the earliest ones)."""

    # -- request / response ------------------------------------------------------------------

    @property
    @abstractmethod
    def reply_address(self) -> str:
        """Where responses to this bus's requests are routed."""

    @abstractmethod
    async def _deliver_reply(self, response: Envelope, reply_to: str | None) -> None:
        """Route a response to the requester's bus (or the recipient's inbox without reply_to)."""

    async def _prepare_requests(self) -> None:  # noqa: B027 - optional hook
        """Hook: start whatever receives responses (the Redis bus starts a listener)."""

    def _resolve(self, response: Envelope) -> bool:
        """Hand a response to the request waiting for it; False if none is (late or unknown)."""
        correlation_id = response.correlation_id
        future = self._pending.get(correlation_id) if correlation_id is not None else None
        if future is None:
            return False
        if _wake(future, response):
            recipient = response.recipient or "?"
            BUS_METRICS.delivered[recipient] += 1
            self._latency.observe(time.time() - response.created_at)
            return True
        return False

    async def request(self, envelope: Envelope, timeout: float | None = None) -> Envelope:
        """Send a request and wait for its response.

        Sets ``correlation_id`` (to the envelope id unless given) and ``reply_to`` on ``envelope``.
        Returns the ``RESPONSE`` envelope; raises RemoteError for an ``ERROR`` response and
        RequestTimeoutError if nothing arrives within ``timeout`` (default ``request_timeout_s``).
        """
        self._check_open()
        recipient = envelope.recipient
        if recipient is None:
            raise InvalidEnvelopeError(
                f"request {envelope.id} has no recipient; a request goes to one agent (set recipient), "
                "use publish or broadcast to reach several"
            )
        timeout = self.config.request_timeout_s if timeout is None else timeout
        await self._prepare_requests()
        correlation_id = envelope.correlation_id or envelope.id
        envelope.correlation_id = correlation_id
        envelope.reply_to = self.reply_address
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self.send(envelope)
            try:
                async with asyncio.timeout(timeout):
                    response = await future
            except TimeoutError:
                raise RequestTimeoutError(recipient, timeout, correlation_id) from None
        finally:
            self._pending.pop(correlation_id, None)
        if response.type == MessageType.ERROR:
            payload = response.payload if isinstance(response.payload, dict) else {"error": response.payload}
            raise RemoteError(response.sender, str(payload.get("error")), error_type=payload.get("type"))
        return response

    async def reply(
        self, request: Envelope, payload: Any, *, sender: str | None = None, error: bool = False
    ) -> Envelope:
        """Answer ``request`` with ``payload`` (an ``ERROR`` response when ``error``); return the response."""
        self._check_open()
        response = Envelope(
            type=MessageType.ERROR if error else MessageType.RESPONSE,
            sender=sender or request.recipient or "bus",
            recipient=request.sender,
            payload=payload,
            priority=request.priority,
            run_id=request.run_id,
            correlation_id=request.correlation_id or request.id,
            headers=request.headers,
        )
        await self._deliver_reply(response, request.reply_to)
        return response

    # -- handlers ----------------------------------------------------------------------------

    async def add_handler(
        self,
        agent: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        batch_size: int = 64,
        sync_in_thread: bool = True,
    ) -> HandlerRegistration:
        """Call ``handler`` for every message arriving in ``agent``'s inbox, until stopped.

        ``concurrency`` workers compete for messages. A sync handler runs in a worker thread unless
        ``sync_in_thread=False`` (then it must be quick: it runs on the event loop). Messages are
        acknowledged after the handler returns or raises (errors are logged, and a failing
        ``REQUEST`` gets an ``ERROR`` response), so a message is redelivered only if its worker dies.
        """
        self._check_open()
        validate_name(agent)
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        )
        registration = HandlerRegistration(agent)
        registration._tasks = [
            asyncio.create_task(
                self._handler_worker(registration, handler, is_async, batch_size, sync_in_thread),
                name=f"agentadapter-bus-handler:{agent}:{index}",
            )
            for index in range(concurrency)
        ]
        self._handlers.append(registration)
        return registration

    async def _handler_worker(
        self,
        registration: HandlerRegistration,
        handler: Handler,
        is_async: bool,
        batch_size: int,
        sync_in_thread: bool,
    ) -> None:
        agent = registration.agent
        while not self._closed and not registration.stopping:
            try:
                envelopes = await self.get_messages(agent, batch_size, None, auto_ack=False)
            except ProtocolClosedError:
                return
            for envelope in envelopes:
                await self._call_handler(agent, handler, envelope, is_async, sync_in_thread)
            if envelopes and not self._closed:
                await self.ack(agent, envelopes)

    async def _call_handler(
        self, agent: str, handler: Handler, envelope: Envelope, is_async: bool, sync_in_thread: bool
    ) -> None:
        try:
            if is_async:
                result = await handler(envelope)
            elif sync_in_thread:
                result = await asyncio.to_thread(handler, envelope)
            else:
                result = handler(envelope)
                if inspect.isawaitable(result):
                    result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("handler of agent %r failed on message %s (%s)", agent, envelope.id, envelope.type)
            if envelope.type == MessageType.REQUEST:
                await self._reply_safely(
                    envelope, {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}, agent, True
                )
            return
        if result is not None and envelope.type == MessageType.REQUEST:
            await self._reply_safely(envelope, result, agent, False)

    async def _reply_safely(self, request: Envelope, payload: Any, agent: str, error: bool) -> None:
        try:
            await self.reply(request, payload, sender=agent, error=error)
        except Exception:  # a reply that cannot be sent must not kill the worker
            logger.exception("agent %r could not reply to request %s", agent, request.id)


class _Inbox:
    """One agent's inbox: a FIFO per priority level plus delivered-but-unacknowledged messages."""

    __slots__ = ("agent", "config", "getters", "inflight", "levels", "member", "putters", "size")

    def __init__(self, agent: str, config: QueueConfig) -> None:
        self.agent = agent
        self.config = config
        self.levels: list[deque[Envelope]] = [deque() for _ in range(PRIORITY_LEVELS)]
        self.size = 0  # messages waiting, all levels
        # envelope id -> (monotonic delivery time, envelope); insertion order is delivery order.
        self.inflight: dict[str, tuple[float, Envelope]] = {}
        self.getters: deque[asyncio.Future[None]] = deque()
        self.putters: deque[asyncio.Future[None]] = deque()
        self.member = False  # receives broadcasts

    def wake_getter(self) -> None:
        getters = self.getters
        while getters:
            if _wake(getters.popleft()):
                return

    def wake_putters(self) -> None:
        putters = self.putters
        while putters:
            _wake(putters.popleft())

    def wake_all(self) -> None:
        while self.getters:
            _wake(self.getters.popleft())
        self.wake_putters()


class InProcessMessageBus(MessageBus):
    """The message bus for one process: asyncio-native, thread-safe, no external service.

    ``clock`` (Unix seconds) decides expiry and retention; tests may pass a fake one.
    """

    transport = "inprocess"

    def __init__(self, config: BusConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self._clock = clock
        self._lock = threading.Lock()
        self._inboxes: dict[str, _Inbox] = {}
        self._members: list[str] = []  # inboxes that receive broadcasts, in opening order
        self._subscriptions: dict[str, set[str]] = {}  # pattern -> agents
        self._topic_cache: dict[str, tuple[str, ...]] = {}  # topic -> subscribed agents
        self._history: deque[Envelope] = deque(maxlen=self.config.history_max)
        self._reply_address = f"inprocess:{new_message_id()}"
        BUS_METRICS.add_depth_source(self)

    def queue_depths(self) -> dict[str, int]:
        """Waiting messages per agent (read by the metrics collector)."""
        return {agent: inbox.size for agent, inbox in list(self._inboxes.items())}

    @property
    def reply_address(self) -> str:
        return self._reply_address

    async def close(self) -> None:
        await super().close()
        with self._lock:
            for inbox in self._inboxes.values():
                inbox.wake_all()

    # -- inboxes -----------------------------------------------------------------------------

    def _inbox_locked(self, agent: str) -> _Inbox:
        inbox = self._inboxes.get(agent)
        if inbox is None:
            inbox = self._inboxes[agent] = _Inbox(agent, self.config.queue)
        return inbox

    async def open_inbox(self, agent: str, config: QueueConfig | None = None) -> None:
        self._check_open()
        validate_name(agent)
        with self._lock:
            inbox = self._inbox_locked(agent)
            if config is not None:
                inbox.config = config
            if not inbox.member:
                inbox.member = True
                self._members.append(agent)
            inbox.wake_putters()  # a larger capacity may let waiting senders in

    async def close_inbox(self, agent: str) -> None:
        self._check_open()
        with self._lock:
            inbox = self._inboxes.pop(agent, None)
            if agent in self._members:
                self._members.remove(agent)
            for agents in self._subscriptions.values():
                agents.discard(agent)
            self._subscriptions = {pattern: agents for pattern, agents in self._subscriptions.items() if agents}
            self._topic_cache.clear()
            if inbox is not None:
                inbox.wake_all()

    async def subscribe(self, agent: str, pattern: str) -> None:
        self._check_open()
        validate_name(agent)
        validate_pattern(pattern)
        with self._lock:
            self._inbox_locked(agent)
            self._subscriptions.setdefault(pattern, set()).add(agent)
            self._topic_cache.clear()

    async def unsubscribe(self, agent: str, pattern: str) -> None:
        self._check_open()
        with self._lock:
            agents = self._subscriptions.get(pattern)
            if agents is not None:
                agents.discard(agent)
                if not agents:
                    del self._subscriptions[pattern]
            self._topic_cache.clear()

    async def subscriptions(self, agent: str) -> list[str]:
        with self._lock:
            return sorted(pattern for pattern, agents in self._subscriptions.items() if agent in agents)

    async def queue_depth(self, agent: str) -> int:
        with self._lock:
            inbox = self._inboxes.get(agent)
            return 0 if inbox is None else inbox.size

    def _topic_recipients_locked(self, topic: str) -> tuple[str, ...]:
        recipients = self._topic_cache.get(topic)
        if recipients is None:
            validate_topic(topic)
            matched: set[str] = set()
            for pattern, agents in self._subscriptions.items():
                if topic_matches(pattern, topic):
                    matched |= agents
            recipients = self._topic_cache[topic] = tuple(sorted(matched))
        return recipients

    # -- sending -----------------------------------------------------------------------------

    def _put_locked(self, inbox: _Inbox, envelope: Envelope, level: int) -> bool:
        """Enqueue unless full; evicts under drop_oldest. False means full (reject or wait)."""
        config = inbox.config
        if inbox.size + len(inbox.inflight) >= config.maxsize and (
            config.policy is not FullPolicy.DROP_OLDEST or not self._drop_oldest_locked(inbox)
        ):
            return False
        inbox.levels[level].append(envelope)
        inbox.size += 1
        if inbox.getters:
            inbox.wake_getter()
        return True

    def _drop_oldest_locked(self, inbox: _Inbox) -> bool:
        for queue in inbox.levels:  # lowest priority first
            if queue:
                queue.popleft()
                inbox.size -= 1
                BUS_METRICS.dropped[inbox.agent, "dropped_oldest"] += 1
                return True
        return False  # everything held is in flight: nothing to evict

    async def send(self, envelope: Envelope) -> int:
        if self._closed:
            raise ProtocolClosedError("message bus")
        level = _LEVEL.get(envelope.priority)
        if level is None:
            check_priority(envelope.priority, envelope.id)
            level = int(envelope.priority)
        if self.config.validate_payloads:
            check_json(envelope.payload, f"envelope {envelope.id}'s payload")
        recipient = envelope.recipient
        full: list[str] | None = None
        with self._lock:
            self._record_locked(envelope)
            if envelope.ttl_s is not None and envelope.is_expired(self._clock()):
                BUS_METRICS.dropped[recipient or envelope.topic or "*", "expired"] += 1
                return 0
            if recipient is not None:
                if envelope.topic is not None:
                    envelope.validate()  # raises: both recipient and topic
                inbox = self._inboxes.get(recipient)
                if inbox is None:
                    validate_name(recipient, "recipient")
                    inbox = self._inbox_locked(recipient)
                if self._put_locked(inbox, envelope, level):
                    return 1
                if inbox.config.policy is not FullPolicy.WAIT:
                    BUS_METRICS.dropped[recipient, "queue_full"] += 1
                    raise QueueFullError(recipient, inbox.config.maxsize, inbox.config.policy.value)
                full = [recipient]
                delivered = 0
            else:
                if envelope.topic is not None:
                    targets: Sequence[str] = self._topic_recipients_locked(envelope.topic)
                else:
                    targets = self._members
                delivered = 0
                sender = envelope.sender
                for agent in targets:
                    if agent == sender and envelope.topic is None:
                        continue  # a broadcast does not echo back to its sender
                    inbox = self._inbox_locked(agent)
                    if self._put_locked(inbox, envelope, level):
                        delivered += 1
                    elif inbox.config.policy is FullPolicy.WAIT:
                        full = full or []
                        full.append(agent)
                    else:
                        BUS_METRICS.dropped[agent, "queue_full"] += 1
                        logger.warning("inbox of %r is full; it misses message %s", agent, envelope.id)
        if full:
            # Policy "wait": block outside the lock until each full inbox has room.
            for agent in full:
                try:
                    await self._put_waiting(agent, envelope, level)
                    delivered += 1
                except QueueFullError:
                    BUS_METRICS.dropped[agent, "queue_full"] += 1
                    if recipient is not None:
                        raise
                    logger.warning("inbox of %r stayed full; it misses message %s", agent, envelope.id)
        return delivered

    async def _put_waiting(self, agent: str, envelope: Envelope, level: int) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        while True:
            with self._lock:
                self._check_open()
                inbox = self._inbox_locked(agent)
                if self._put_locked(inbox, envelope, level):
                    return
                waited = time.monotonic() - started
                remaining = inbox.config.wait_timeout_s - waited
                if remaining <= 0:
                    raise QueueFullError(agent, inbox.config.maxsize, inbox.config.policy.value, waited_s=waited)
                future: asyncio.Future[None] = loop.create_future()
                inbox.putters.append(future)
            try:
                async with asyncio.timeout(remaining):
                    await future
            except TimeoutError:
                pass
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    inbox.putters.remove(future)

    def _record_locked(self, envelope: Envelope) -> None:
        BUS_METRICS.sent[envelope.sender] += 1
        history = self._history
        if history.maxlen:
            history.append(envelope)
            retention = self.config.history_retention_s
            if retention is not None:
                horizon = self._clock() - retention
                while history and history[0].created_at < horizon:
                    history.popleft()

    async def _deliver_reply(self, response: Envelope, reply_to: str | None) -> None:
        if reply_to == self._reply_address:
            with self._lock:
                self._record_locked(response)
            if not self._resolve(response):
                logger.debug("response %s arrived after its request gave up", response.id)
            return
        # No reply address of ours (e.g. the request was sent with send()): use the inbox.
        await self.send(response)

    # -- receiving ---------------------------------------------------------------------------

    def _take_locked(self, inbox: _Inbox, max_messages: int, auto_ack: bool) -> list[Envelope]:
        if inbox.inflight:
            self._requeue_idle_locked(inbox)
        taken: list[Envelope] = []
        if not inbox.size:
            return taken
        now = self._clock()
        retention = inbox.config.retention_s
        horizon = None if retention is None else now - retention
        levels = inbox.levels
        agent = inbox.agent
        for level in _LEVELS_HIGH_FIRST:
            queue = levels[level]
            while queue and len(taken) < max_messages:
                envelope = queue.popleft()
                inbox.size -= 1
                if envelope.ttl_s is not None and now >= envelope.created_at + envelope.ttl_s:
                    BUS_METRICS.dropped[agent, "expired"] += 1
                    continue
                if horizon is not None and envelope.created_at < horizon:
                    BUS_METRICS.dropped[agent, "retention"] += 1
                    continue
                taken.append(envelope)
            if len(taken) >= max_messages:
                break
        if taken:
            if not auto_ack:
                delivered_at = time.monotonic()
                inflight = inbox.inflight
                for envelope in taken:
                    inflight[envelope.id] = (delivered_at, envelope)
            BUS_METRICS.delivered[agent] += len(taken)
            wall = time.time()
            observe = self._latency.observe
            for envelope in taken:
                observe(wall - envelope.created_at)
        if inbox.putters:
            inbox.wake_putters()
        return taken

    def _requeue_idle_locked(self, inbox: _Inbox) -> None:
        """Put back messages delivered without ack and not acknowledged within claim_idle_s."""
        threshold = time.monotonic() - self.config.claim_idle_s
        idle: list[Envelope] = []
        for envelope_id, (delivered_at, envelope) in list(inbox.inflight.items()):
            if delivered_at > threshold:
                break  # delivery order: the rest are younger
            del inbox.inflight[envelope_id]
            idle.append(envelope)
        for envelope in reversed(idle):  # back to the front, keeping their order
            inbox.levels[_LEVEL.get(envelope.priority, 1)].appendleft(envelope)
            inbox.size += 1
        if idle:
            BUS_METRICS.redelivered[inbox.agent] += len(idle)

    def _next_claim_in_locked(self, inbox: _Inbox) -> float | None:
        if not inbox.inflight:
            return None
        oldest_delivery = next(iter(inbox.inflight.values()))[0]
        return max(0.0, oldest_delivery + self.config.claim_idle_s - time.monotonic())

    async def get_messages(
        self, agent: str, max_messages: int = 100, timeout: float | None = 0.0, *, auto_ack: bool = True
    ) -> list[Envelope]:
        if self._closed:
            raise ProtocolClosedError("message bus")
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        deadline = None if timeout is None else time.monotonic() + timeout
        loop: asyncio.AbstractEventLoop | None = None
        while True:
            with self._lock:
                inbox = self._inboxes.get(agent)
                if inbox is None:
                    validate_name(agent)
                    inbox = self._inbox_locked(agent)
                taken = self._take_locked(inbox, max_messages, auto_ack)
                if taken:
                    return taken
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return taken
                claim_in = self._next_claim_in_locked(inbox)
                if claim_in is not None and (remaining is None or claim_in < remaining):
                    remaining = claim_in + 0.001  # wake up when an unacknowledged message is due again
                loop = loop or asyncio.get_running_loop()
                future: asyncio.Future[None] = loop.create_future()
                inbox.getters.append(future)
            try:
                if remaining is None:
                    await future
                else:
                    async with asyncio.timeout(remaining):
                        await future
            except TimeoutError:
                pass
            finally:
                if not future.done():
                    future.cancel()
                    with self._lock, contextlib.suppress(ValueError):
                        inbox.getters.remove(future)
            if self._closed:
                raise ProtocolClosedError("message bus")

    async def ack(self, agent: str, envelopes: Iterable[Envelope]) -> None:
        with self._lock:
            inbox = self._inboxes.get(agent)
            if inbox is None:
                return
            inflight = inbox.inflight
            for envelope in envelopes:
                inflight.pop(envelope.id, None)
            if inbox.putters:
                inbox.wake_putters()

    # -- audit -------------------------------------------------------------------------------

    async def history(
        self,
        *,
        run_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        types: Iterable[MessageType | str] | None = None,
        limit: int = 1000,
    ) -> list[Envelope]:
        with self._lock:
            snapshot = list(self._history)
        return filter_history(snapshot, run_id=run_id, agent=agent, since=since, until=until, types=types, limit=limit)


def filter_history(
    envelopes: Iterable[Envelope],
    *,
    run_id: str | None,
    agent: str | None,
    since: float | None,
    until: float | None,
    types: Iterable[MessageType | str] | None,
    limit: int,
) -> list[Envelope]:
    """Apply :meth:`MessageBus.history`'s filters to envelopes in send order (shared by both buses)."""
    wanted_types = None if types is None else {str(kind) for kind in types}
    matched: list[Envelope] = []
    if limit <= 0:
        return matched
    for envelope in envelopes:
        if run_id is not None and envelope.run_id != run_id:
            continue
        if agent is not None and envelope.sender != agent and envelope.recipient != agent:
            continue
        if since is not None and envelope.created_at < since:
            continue
        if until is not None and envelope.created_at > until:
            continue
        if wanted_types is not None and str(envelope.type) not in wanted_types:
            continue
        matched.append(envelope)
        if len(matched) >= limit:
            break
    return matched
