"""The in-process message bus: inboxes in memory, for one process and any number of its threads.

:class:`InProcessMessageBus` implements the :class:`~agentadapter.protocol.bus.MessageBus` contract with
one FIFO (a deque) per priority level per agent. It is asyncio-native and also thread-safe: its state
sits behind one ``threading.Lock`` that is never held across an ``await``, and a waiting consumer or
sender is woken on its own event loop, so a handler running in a worker thread (or another thread with
its own loop) may use the bus too. The direct-send path is written for speed - it is the hot path of
every in-process run and is measured in ``bench/bus.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from agentadapter.observability.metrics import BUS_METRICS
from agentadapter.protocol.bus import (
    LEVEL_INDEX,
    LEVELS_HIGH_FIRST,
    BusConfig,
    FullPolicy,
    MessageBus,
    QueueConfig,
    filter_history,
    wake_future,
)
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
from agentadapter.protocol.errors import ProtocolClosedError, QueueFullError

__all__ = ["InProcessMessageBus"]

logger = logging.getLogger("agentadapter.protocol.bus")


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
            if wake_future(getters.popleft()):
                return

    def wake_putters(self) -> None:
        putters = self.putters
        while putters:
            wake_future(putters.popleft())

    def wake_all(self) -> None:
        while self.getters:
            wake_future(self.getters.popleft())
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
        # Bound once: attribute chains cost on a path taken hundreds of thousands of times a second.
        self._history_append = self._history.append
        self._history_on = self.config.history_max > 0
        self._history_retention = self.config.history_retention_s
        self._validate_payloads = self.config.validate_payloads
        self._sent = BUS_METRICS.sent
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
            if len(self._topic_cache) >= 10_000:
                self._topic_cache.clear()  # many one-off topics: start over rather than grow forever
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
        level = LEVEL_INDEX.get(envelope.priority)
        if level is None:
            check_priority(envelope.priority, envelope.id)
            level = int(envelope.priority)
        if self._validate_payloads:
            check_json(envelope.payload, f"envelope {envelope.id}'s payload")
        recipient = envelope.recipient
        with self._lock:
            self._sent[envelope.sender] += 1
            if self._history_on:
                self._history_append(envelope)
                if self._history_retention is not None:
                    self._trim_history_locked()
            if envelope.ttl_s is not None and envelope.is_expired(self._clock()):
                BUS_METRICS.dropped[recipient or envelope.topic or "*", "expired"] += 1
                return 0
            if recipient is not None and envelope.topic is None:
                # The hot path, inlined: a direct message to an inbox with room.
                inbox = self._inboxes.get(recipient)
                if inbox is not None and inbox.size + len(inbox.inflight) < inbox.config.maxsize:
                    inbox.levels[level].append(envelope)
                    inbox.size += 1
                    if inbox.getters:
                        inbox.wake_getter()
                    return 1
                if self._send_direct_locked(envelope, recipient, level):
                    return 1
                waiting, delivered = [recipient], 0
            else:
                if recipient is not None:
                    envelope.validate()  # raises: both recipient and topic
                waiting, delivered = self._fan_out_locked(envelope, level)
        for agent in waiting:
            # Policy "wait": block outside the lock until each full inbox has room.
            try:
                await self._put_waiting(agent, envelope, level)
                delivered += 1
            except QueueFullError:
                BUS_METRICS.dropped[agent, "queue_full"] += 1
                if agent == recipient:
                    raise
                logger.warning("inbox of %r stayed full; it misses message %s", agent, envelope.id)
        return delivered

    def _send_direct_locked(self, envelope: Envelope, recipient: str, level: int) -> bool:
        """A direct message to a new or full inbox: True if delivered, False if the sender must wait."""
        inbox = self._inboxes.get(recipient)
        if inbox is None:
            validate_name(recipient, "recipient")
            inbox = self._inbox_locked(recipient)
        if self._put_locked(inbox, envelope, level):
            return True
        config = inbox.config
        if config.policy is not FullPolicy.WAIT:
            BUS_METRICS.dropped[recipient, "queue_full"] += 1
            raise QueueFullError(recipient, config.maxsize, config.policy.value)
        return False

    def _fan_out_locked(self, envelope: Envelope, level: int) -> tuple[list[str], int]:
        """Deliver a broadcast or a publication; return (full inboxes to wait for, inboxes reached)."""
        if envelope.topic is not None:
            targets: Sequence[str] = self._topic_recipients_locked(envelope.topic)
        else:
            targets = self._members
        waiting: list[str] = []
        reached = 0
        broadcast = envelope.topic is None
        sender = envelope.sender
        for agent in targets:
            if broadcast and agent == sender:
                continue  # a broadcast does not echo back to its sender
            inbox = self._inbox_locked(agent)
            if self._put_locked(inbox, envelope, level):
                reached += 1
            elif inbox.config.policy is FullPolicy.WAIT:
                waiting.append(agent)
            else:
                BUS_METRICS.dropped[agent, "queue_full"] += 1
                logger.warning("inbox of %r is full; it misses message %s", agent, envelope.id)
        return waiting, reached

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
        self._sent[envelope.sender] += 1
        if self._history_on:
            self._history_append(envelope)
            if self._history_retention is not None:
                self._trim_history_locked()

    def _trim_history_locked(self) -> None:
        assert self._history_retention is not None
        history = self._history
        horizon = self._clock() - self._history_retention
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
        for level in LEVELS_HIGH_FIRST:
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
            inbox.levels[LEVEL_INDEX.get(envelope.priority, 1)].appendleft(envelope)
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
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    # Woken for a message this consumer will not take now: pass the wake-up on.
                    with self._lock:
                        if inbox.size:
                            inbox.wake_getter()
                raise
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
