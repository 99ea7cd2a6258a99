"""The envelope every message travels in, its types and priorities, and topic patterns.

An :class:`Envelope` is what the :class:`~agentadapter.protocol.bus.MessageBus` carries: who sent it,
to whom (one agent, a topic, or everyone), a JSON payload, a priority, the run it belongs to, a
correlation id tying a response to its request, and a time to live after which it is never delivered.
It is a slotted dataclass rather than a pydantic model because the in-process bus creates and routes
hundreds of thousands of them per second; validation happens where data crosses a process boundary
(:meth:`Envelope.from_dict`, the Redis wire format). Topic patterns (``*`` for one dot-separated
segment, ``#`` for any number) are matched here too, so both bus implementations agree on them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
from enum import IntEnum, StrEnum
from functools import lru_cache
from typing import Any

from agentadapter.protocol.errors import InvalidEnvelopeError, InvalidValueError

__all__ = [
    "Envelope",
    "MessageType",
    "Priority",
    "check_json",
    "new_message_id",
    "topic_matches",
    "validate_name",
    "validate_pattern",
    "validate_topic",
]


class MessageType(StrEnum):
    """What a message means. Extensible: ``MessageType("approval")`` makes a custom type.

    Custom types are created on first use and then compare, hash and serialize like the built-in
    ones, so a new communication pattern needs no change here (the type travels as its string).
    """

    MESSAGE = "message"
    """A plain point-to-point message."""
    REQUEST = "request"
    """Expects a ``RESPONSE`` (or ``ERROR``) carrying the same correlation id."""
    RESPONSE = "response"
    """The answer to a ``REQUEST``."""
    ERROR = "error"
    """A failed answer to a ``REQUEST``; the payload holds ``{"error": ..., "type": ...}``."""
    EVENT = "event"
    """Something happened; usually published on a topic."""
    BROADCAST = "broadcast"
    """Sent to every agent with an open inbox."""
    COMMAND = "command"
    """An instruction (stop, pause, resume) from the orchestrator or a supervisor."""
    HANDOFF = "handoff"
    """Control passes to the recipient."""

    @classmethod
    def _missing_(cls, value: object) -> MessageType | None:
        # A value not among the members becomes a pseudo-member, cached so that identity and
        # equality hold across calls; this is how "extend the enum" works without subclassing.
        if not isinstance(value, str) or not value or len(value) > 200:
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]


class Priority(IntEnum):
    """Delivery priority: higher is delivered first; equal priorities are delivered in send order."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3


#: Number of priority levels; both buses keep one FIFO per level.
PRIORITY_LEVELS = 4

# Ids are a per-process random prefix plus a counter: unique across processes and about twenty times
# cheaper than uuid4() on the send path.
_ID_PREFIX = os.urandom(8).hex() + "-"
_id_counter = itertools.count(1)
_now = time.time


def new_message_id() -> str:
    """Return a new unique message id (a per-process random prefix, a dash, a counter)."""
    return f"{_ID_PREFIX}{next(_id_counter)}"


class Envelope:
    """One message on the bus.

    Exactly one of ``recipient`` (direct) and ``topic`` (publish) may be set; with neither, the
    envelope is broadcast to every open inbox except the sender's. The in-process bus hands the same
    object to every recipient of a broadcast, so treat a received envelope (and its payload) as
    read-only. Fields (keyword-only):

    - ``type``: what the message means (:class:`MessageType`).
    - ``sender``: the sending agent's name.
    - ``payload``: JSON-compatible data (dict, list, str, int, float, bool or None).
    - ``recipient``: the receiving agent, for a direct message.
    - ``topic``: the topic, for a published message (dot-separated segments).
    - ``priority``: 0 (low) to 3 (urgent), see :class:`Priority`; higher is delivered first.
    - ``run_id``: the run this message belongs to (for audit queries).
    - ``correlation_id``: ties a response to its request.
    - ``reply_to``: where a response to this request goes (set by the bus).
    - ``ttl_s``: seconds after ``created_at`` when the message expires; it is then never delivered.
    - ``headers``: small free-form string metadata (trace context, tenant).
    - ``id``: unique message id (generated unless given).
    - ``created_at``: when the message was created, Unix seconds (now unless given).
    """

    # Hand-written rather than a dataclass: this constructor runs once per message, and a dataclass
    # __init__ with default factories costs half as much again.
    __slots__ = (
        "correlation_id", "created_at", "headers", "id", "payload", "priority", "recipient", "reply_to",
        "run_id", "sender", "topic", "ttl_s", "type",
    )  # fmt: skip

    type: MessageType
    sender: str
    payload: Any
    recipient: str | None
    topic: str | None
    priority: int
    run_id: str | None
    correlation_id: str | None
    reply_to: str | None
    ttl_s: float | None
    headers: dict[str, str] | None
    id: str
    created_at: float

    def __init__(
        self,
        *,
        type: MessageType,
        sender: str,
        payload: Any = None,
        recipient: str | None = None,
        topic: str | None = None,
        priority: int = Priority.NORMAL,
        run_id: str | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        ttl_s: float | None = None,
        headers: dict[str, str] | None = None,
        id: str | None = None,
        created_at: float | None = None,
    ) -> None:
        self.type = type
        self.sender = sender
        self.payload = payload
        self.recipient = recipient
        self.topic = topic
        self.priority = priority
        self.run_id = run_id
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.ttl_s = ttl_s
        self.headers = headers
        self.id = f"{_ID_PREFIX}{next(_id_counter)}" if id is None else id
        self.created_at = _now() if created_at is None else created_at

    def __repr__(self) -> str:
        target = f"recipient={self.recipient!r}" if self.recipient is not None else f"topic={self.topic!r}"
        return (
            f"Envelope(id={self.id!r}, type={str(self.type)!r}, sender={self.sender!r}, {target}, "
            f"priority={int(self.priority)}, payload={self.payload!r})"
        )

    @property
    def expires_at(self) -> float | None:
        """Unix time after which the message is not delivered, or None if it never expires."""
        ttl = self.ttl_s
        return None if ttl is None else self.created_at + ttl

    def is_expired(self, now: float | None = None) -> bool:
        """Whether the message's time to live has passed (at ``now``, default the current time)."""
        ttl = self.ttl_s
        if ttl is None:
            return False
        return (time.time() if now is None else now) >= self.created_at + ttl

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (``type`` as its string)."""
        return {
            "id": self.id,
            "type": str(self.type),
            "sender": self.sender,
            "recipient": self.recipient,
            "topic": self.topic,
            "payload": self.payload,
            "priority": int(self.priority),
            "run_id": self.run_id,
            "correlation_id": self.correlation_id,
            "reply_to": self.reply_to,
            "ttl_s": self.ttl_s,
            "headers": self.headers,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """Build and validate an envelope from :meth:`to_dict`'s shape (unknown keys are ignored)."""
        try:
            envelope = cls(
                id=str(data["id"]) if data.get("id") else None,
                type=MessageType(data["type"]),
                sender=str(data["sender"]),
                recipient=data.get("recipient"),
                topic=data.get("topic"),
                payload=data.get("payload"),
                priority=int(data.get("priority", Priority.NORMAL)),
                run_id=data.get("run_id"),
                correlation_id=data.get("correlation_id"),
                reply_to=data.get("reply_to"),
                ttl_s=None if data.get("ttl_s") is None else float(data["ttl_s"]),
                headers=data.get("headers"),
                created_at=float(data["created_at"]) if data.get("created_at") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidEnvelopeError(
                f"cannot build an Envelope from {sorted(data)!r}: {exc}; it needs at least "
                "'type' and 'sender' (see Envelope.to_dict for the full shape)"
            ) from exc
        envelope.validate()
        return envelope

    def validate(self) -> None:
        """Check routing fields, priority, TTL and that the payload is JSON; raise InvalidEnvelopeError."""
        if not isinstance(self.sender, str) or not self.sender:
            raise InvalidEnvelopeError(f"envelope {self.id}: sender must be a non-empty string")
        if self.recipient is not None and self.topic is not None:
            raise InvalidEnvelopeError(
                f"envelope {self.id} has both recipient {self.recipient!r} and topic {self.topic!r}; "
                "set recipient for a direct message, topic to publish, or neither to broadcast"
            )
        if self.topic is not None:
            validate_topic(self.topic)
        check_priority(self.priority, self.id)
        if self.ttl_s is not None and not (self.ttl_s > 0 and math.isfinite(self.ttl_s)):
            raise InvalidEnvelopeError(
                f"envelope {self.id}: ttl_s must be a positive number of seconds or None, not {self.ttl_s!r}"
            )
        check_json(self.payload, f"envelope {self.id}'s payload")

    # The Redis wire format is a positional JSON array: about twice as fast to encode and decode
    # as a dict and half the size. The leading 1 is a format version.
    def to_wire(self) -> str:
        """Encode for transport (a compact JSON array); raises InvalidEnvelopeError for non-JSON payloads."""
        try:
            return json.dumps(
                [
                    1,
                    self.id,
                    str(self.type),
                    self.sender,
                    self.recipient,
                    self.topic,
                    self.payload,
                    int(self.priority),
                    self.run_id,
                    self.correlation_id,
                    self.reply_to,
                    self.ttl_s,
                    self.headers,
                    self.created_at,
                ],
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidEnvelopeError(
                f"envelope {self.id}'s payload is not JSON-serializable ({exc}); send dicts, lists, "
                "strings, numbers, booleans and None only (e.g. model_dump(mode='json') for pydantic models)"
            ) from exc

    @classmethod
    def from_wire(cls, data: str | bytes) -> Envelope:
        """Decode :meth:`to_wire`'s output."""
        fields = json.loads(data)
        if not isinstance(fields, list) or len(fields) != 14 or fields[0] != 1:
            raise InvalidEnvelopeError(
                "unrecognised envelope wire format; was it written by a newer AgentAdapter? "
                "upgrade this process to the same version"
            )
        (_, id_, type_, sender, recipient, topic, payload, priority, run_id, correlation_id, reply_to, ttl_s,
         headers, created_at) = fields  # fmt: skip
        return cls(
            id=id_,
            type=MessageType(type_),
            sender=sender,
            recipient=recipient,
            topic=topic,
            payload=payload,
            priority=priority,
            run_id=run_id,
            correlation_id=correlation_id,
            reply_to=reply_to,
            ttl_s=ttl_s,
            headers=headers,
            created_at=created_at,
        )


def check_priority(priority: object, envelope_id: str = "?") -> None:
    """Raise InvalidEnvelopeError unless ``priority`` is an int between 0 and 3."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidEnvelopeError(f"envelope {envelope_id}: priority must be an int 0-3, not {priority!r}")
    if not 0 <= priority < PRIORITY_LEVELS:
        raise InvalidEnvelopeError(
            f"envelope {envelope_id}: priority {priority} is out of range; use 0 (LOW) to 3 (URGENT), see Priority"
        )


_JSON_SCALARS = (str, int, float, bool, type(None))


def check_json(value: Any, what: str = "payload", *, error: type[InvalidValueError] = InvalidEnvelopeError) -> None:
    """Raise ``error`` unless ``value`` is made of JSON types only (str-keyed dicts, lists, scalars)."""
    _check_json(value, what, error, 0)


def _check_json(value: Any, what: str, error: type[InvalidValueError], depth: int) -> None:
    kind = type(value)
    if kind in _JSON_SCALARS:
        if kind is float and not math.isfinite(value):
            raise error(f"{what} contains {value!r}, which JSON cannot represent; use None")
        return
    if depth > 100:
        raise error(f"{what} is nested more than 100 levels deep; flatten it")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"{what} has a non-string key {key!r}; JSON object keys are strings")
            _check_json(item, what, error, depth + 1)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(item, what, error, depth + 1)
        return
    if isinstance(value, _JSON_SCALARS):  # str/int/float subclasses (enums) serialize as their value
        return
    raise error(
        f"{what} contains a {kind.__name__}, which is not JSON; use dicts, lists, strings, numbers, "
        "booleans and None only (e.g. model_dump(mode='json') for pydantic models)"
    )


_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


def validate_name(name: object, what: str = "agent name") -> str:
    """Return ``name`` if it is a usable agent name (non-empty, no control characters), else raise."""
    if not isinstance(name, str) or not name or len(name) > 256 or _NAME_FORBIDDEN.search(name):
        raise InvalidEnvelopeError(
            f"{what} {name!r} is not valid; use a non-empty string of at most 256 characters without control characters"
        )
    return name


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it is a valid topic: dot-separated, non-empty segments, no wildcards."""
    validate_name(topic, "topic")
    assert isinstance(topic, str)
    segments = topic.split(".")
    if "" in segments or "*" in segments or "#" in segments:
        raise InvalidEnvelopeError(
            f"topic {topic!r} is not valid; a topic is dot-separated non-empty segments such as "
            "'research.results' (the wildcards * and # belong in subscription patterns only)"
        )
    return topic


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid subscription pattern (segments, ``*``, ``#``)."""
    validate_name(pattern, "topic pattern")
    assert isinstance(pattern, str)
    if "" in pattern.split("."):
        raise InvalidEnvelopeError(
            f"topic pattern {pattern!r} has an empty segment; use dot-separated segments where * matches "
            "one segment and # matches any number, e.g. 'research.*' or 'research.#'"
        )
    return pattern


def _match_segments(pattern: tuple[str, ...], pi: int, topic: tuple[str, ...], ti: int) -> bool:
    while pi < len(pattern):
        segment = pattern[pi]
        if segment == "#":
            if pi == len(pattern) - 1:
                return True
            # '#' absorbs zero or more segments: try every split point.
            return any(_match_segments(pattern, pi + 1, topic, k) for k in range(ti, len(topic) + 1))
        if ti >= len(topic) or (segment != "*" and segment != topic[ti]):
            return False
        pi += 1
        ti += 1
    return ti == len(topic)


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern``: ``*`` is one segment, ``#`` is zero or more segments."""
    return _match_segments(tuple(pattern.split(".")), 0, tuple(topic.split(".")), 0)
