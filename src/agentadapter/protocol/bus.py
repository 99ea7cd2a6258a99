"""The message bus contract (:class:`MessageBus`), its settings, and what both implementations share.

A bus routes :class:`~agentadapter.protocol.envelope.Envelope` s into per-agent inboxes: direct
(``recipient``), published on a topic (to every agent subscribed with a matching pattern) or broadcast
(to every open inbox but the sender's). Each inbox is a bounded priority queue: one FIFO per
priority level, a capacity, a retention age and a policy for when it is full (reject, drop the
oldest, or make the sender wait). Agents consume with :meth:`MessageBus.get_messages` or a registered
handler; a message taken without ``auto_ack`` is redelivered if it is not acknowledged within
``claim_idle_s``. Requests wait for a response with the same correlation id. Every message sent is
kept in a bounded history for audit. Request/response, handlers and request timeouts are implemented
here once; ``inprocess_bus.py`` and ``redis_bus.py`` provide the storage and routing.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import math
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from agentadapter.observability.metrics import BUS_METRICS
from agentadapter.protocol.envelope import (
    PRIORITY_LEVELS,
    Envelope,
    MessageType,
    check_json,
    validate_name,
)
from agentadapter.protocol.errors import (
    InvalidEnvelopeError,
    ProtocolClosedError,
    ProtocolError,
    RemoteError,
    RequestTimeoutError,
)

__all__ = [
    "BusConfig",
    "FullPolicy",
    "Handler",
    "HandlerRegistration",
    "MessageBus",
    "QueueConfig",
    "cancel_and_wait",
    "filter_history",
]

logger = logging.getLogger("agentadapter.protocol.bus")

#: A message handler: a sync or async callable taking the envelope. For a ``REQUEST``, a non-None
#: return value is sent back as the response payload (and an exception as an ``ERROR`` response).
Handler = Callable[[Envelope], Any]

# Priority -> level index. Looked up with dict.get so that a bad priority costs nothing until it
# happens (and IntEnum members hash like their ints).
LEVEL_INDEX = {level: level for level in range(PRIORITY_LEVELS)}
LEVELS_HIGH_FIRST = tuple(range(PRIORITY_LEVELS - 1, -1, -1))


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


class _Expired(Exception):
    """Set on a request's future when its timeout passes."""


class _Deadlines:
    """The request timeouts of one event loop, served by a single timer.

    A timer per request (``asyncio.timeout``, ``call_later``) costs more than the rest of an
    in-process request; a heap of ``(deadline, n, future)`` with one timer for the earliest costs a
    tenth of that. Answered requests stay in the heap until it is compacted.
    """

    __slots__ = ("_compact_at", "_counter", "_heap", "_loop", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._counter = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._compact_at = 1024

    def add(self, deadline: float, future: asyncio.Future[Any]) -> None:
        heap = self._heap
        if len(heap) >= self._compact_at:
            # Drop answered requests so the heap tracks live ones; amortized O(1) per request.
            heap[:] = [entry for entry in heap if not entry[2].done()]
            heapq.heapify(heap)
            self._compact_at = max(1024, 2 * len(heap))
        heapq.heappush(heap, (deadline, next(self._counter), future))
        if deadline < self._timer_at:
            self._schedule(deadline)

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        heap = self._heap
        now = self._loop.time()
        while heap and heap[0][0] <= now:
            future = heapq.heappop(heap)[2]
            if not future.done():
                future.set_exception(_Expired())
        while heap and heap[0][2].done():
            heapq.heappop(heap)
        if heap:
            self._schedule(heap[0][0])


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if not future.done():
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def wake_future(future: asyncio.Future[Any], value: Any = None, error: BaseException | None = None) -> bool:
    """Resolve ``future`` (with ``value``, or fail it with ``error``) from any thread.

    False if it was already done (cancelled or timed out).
    """
    if future.done():
        return False
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _settle(future, value, error)
    else:
        # Another thread (or loop): futures are not thread-safe, so resolve it on its own loop.
        try:
            loop.call_soon_threadsafe(_settle, future, value, error)
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
    #: Whether a handler's reply is sent without waiting for it before the next message (the batch
    #: is acknowledged once every reply went out).
    _reply_in_background = False

    def __init__(self, config: BusConfig | None = None) -> None:
        self.config = config or BusConfig()
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        self._deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = weakref.WeakKeyDictionary()
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
            wake_future(future, error=ProtocolClosedError("message bus"))
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
        if wake_future(future, response):
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Envelope] = loop.create_future()
        self._pending[correlation_id] = future
        deadlines = self._deadlines.get(loop)
        if deadlines is None:
            deadlines = self._deadlines[loop] = _Deadlines(loop)
        deadlines.add(loop.time() + timeout, future)
        try:
            await self.send(envelope)
            response = await future
        except _Expired:
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
        if self.config.validate_payloads:
            check_json(payload, f"the response to request {request.id}")
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
        done: list[Envelope] = []
        while not self._closed and not registration.stopping:
            try:
                envelopes = await self._ack_and_get(agent, done, batch_size)
            except ProtocolClosedError:
                return
            except ProtocolError as exc:
                # A transient failure (Redis restarting): keep the worker alive and try again.
                logger.warning("handler of agent %r cannot read its inbox (%s); retrying in 1s", agent, exc)
                await asyncio.sleep(1.0)
                continue
            replies: list[asyncio.Task[None]] = []
            for envelope in envelopes:
                await self._call_handler(agent, handler, envelope, is_async, sync_in_thread, replies)
            if replies:
                await asyncio.gather(*replies)
            done = envelopes
        if done and not self._closed:
            await self.ack(agent, done)

    async def _ack_and_get(self, agent: str, done: list[Envelope], max_messages: int) -> list[Envelope]:
        """Acknowledge a handler's finished batch and wait for its next one (one step over Redis)."""
        if done:
            await self.ack(agent, done)
        return await self.get_messages(agent, max_messages, None, auto_ack=False)

    async def _call_handler(
        self,
        agent: str,
        handler: Handler,
        envelope: Envelope,
        is_async: bool,
        sync_in_thread: bool,
        replies: list[asyncio.Task[None]],
    ) -> None:
        try:
            if is_async:
                result = await handler(envelope)
            else:
                result = await asyncio.to_thread(handler, envelope) if sync_in_thread else handler(envelope)
                if inspect.isawaitable(result):  # a plain function (a lambda) that returned a coroutine
                    result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("handler of agent %r failed on message %s (%s)", agent, envelope.id, envelope.type)
            if envelope.type == MessageType.REQUEST:
                error = {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}
                await self._answer(envelope, error, agent, True, replies)
            return
        if result is not None and envelope.type == MessageType.REQUEST:
            await self._answer(envelope, result, agent, False, replies)

    async def _answer(
        self, request: Envelope, payload: Any, agent: str, error: bool, replies: list[asyncio.Task[None]]
    ) -> None:
        if self._reply_in_background:
            # A networked reply is a round trip: let it fly while the next message is handled.
            replies.append(asyncio.create_task(self._reply_safely(request, payload, agent, error)))
        else:
            await self._reply_safely(request, payload, agent, error)

    async def _reply_safely(self, request: Envelope, payload: Any, agent: str, error: bool) -> None:
        try:
            await self.reply(request, payload, sender=agent, error=error)
        except InvalidEnvelopeError as exc:
            # The handler returned something that cannot travel: tell the requester rather than
            # leaving it to time out.
            logger.error("agent %r returned an unsendable answer to request %s: %s", agent, request.id, exc)
            if not error:
                await self._reply_safely(request, {"error": str(exc), "type": type(exc).__name__}, agent, True)
        except Exception:  # a reply that cannot be sent must not kill the worker
            logger.exception("agent %r could not reply to request %s", agent, request.id)


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
