"""The envelope, message types, topic patterns and the protocol's error messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentadapter.protocol import (
    Envelope,
    InvalidEnvelopeError,
    MessageType,
    Priority,
    QueueFullError,
    RequestTimeoutError,
    VersionConflictError,
    topic_matches,
)
from agentadapter.protocol.envelope import check_json, new_message_id, validate_pattern, validate_topic


def test_wire_format_round_trips_every_field() -> None:
    envelope = Envelope(
        type=MessageType.REQUEST,
        sender="alice",
        recipient="bob",
        payload={"text": "hé", "list": [1, 2.5, None, False]},
        priority=Priority.URGENT,
        run_id="r",
        correlation_id="c",
        reply_to="here",
        ttl_s=2.5,
        headers={"traceparent": "x"},
    )
    again = Envelope.from_wire(envelope.to_wire())
    assert again.to_dict() == envelope.to_dict()
    assert Envelope.from_dict(envelope.to_dict()).to_dict() == envelope.to_dict()
    assert json.loads(json.dumps(envelope.to_dict()))["type"] == "request"


def test_expiry() -> None:
    envelope = Envelope(type=MessageType.MESSAGE, sender="a", ttl_s=10, created_at=100.0)
    assert envelope.expires_at == 110.0
    assert not envelope.is_expired(109.9)
    assert envelope.is_expired(110.0)
    forever = Envelope(type=MessageType.MESSAGE, sender="a")
    assert forever.expires_at is None and not forever.is_expired()


def test_ids_are_unique() -> None:
    ids = [new_message_id() for _ in range(1000)] + [
        Envelope(type=MessageType.MESSAGE, sender="a").id for _ in range(1000)
    ]
    assert len(set(ids)) == 2000
    given = Envelope(type=MessageType.MESSAGE, sender="a", id="mine", created_at=5.0)
    assert (given.id, given.created_at) == ("mine", 5.0)
    assert "topic='t.x'" in repr(Envelope(type=MessageType.EVENT, sender="a", topic="t.x"))
    assert "recipient='b'" in repr(Envelope(type=MessageType.MESSAGE, sender="a", recipient="b"))


def test_message_type_is_extensible() -> None:
    custom = MessageType("approval")
    assert custom is MessageType("approval")
    assert custom == "approval" and isinstance(custom, MessageType)
    assert MessageType("request") is MessageType.REQUEST
    with pytest.raises(ValueError):
        MessageType("")


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a", False),
        ("a.*", "a.b.c", False),
        ("*.b", "a.b", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "anything.at.all", True),
        ("#.c", "a.b.c", True),
        ("#.c", "c", True),
        ("a.#.d", "a.d", True),
        ("a.#.d", "a.b.c.d", True),
        ("a.#.d", "a.b.c", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
    ],
)
def test_topic_patterns(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


@pytest.mark.parametrize("topic", ["", "a..b", ".a", "a.", "a.*", "a.#", "bad\ttopic"])
def test_invalid_topics(topic: str) -> None:
    with pytest.raises(InvalidEnvelopeError):
        validate_topic(topic)


def test_invalid_patterns() -> None:
    with pytest.raises(InvalidEnvelopeError, match="empty segment"):
        validate_pattern("a..*")
    assert validate_pattern("a.*.#") == "a.*.#"


@pytest.mark.parametrize(
    ("payload", "ok"),
    [
        ({"a": [1, "x", None, True, 2.5]}, True),
        ((1, 2), True),
        (Priority.HIGH, True),
        ({1: "x"}, False),
        ({"a": {1, 2}}, False),
        (float("inf"), False),
        (b"bytes", False),
    ],
)
def test_json_payload_check(payload: Any, ok: bool) -> None:
    if ok:
        check_json(payload)
    else:
        with pytest.raises(InvalidEnvelopeError):
            check_json(payload)


def test_validate_reports_what_to_fix() -> None:
    with pytest.raises(InvalidEnvelopeError, match="ttl_s must be a positive"):
        Envelope(type=MessageType.MESSAGE, sender="a", ttl_s=0).validate()
    with pytest.raises(InvalidEnvelopeError, match="sender must be"):
        Envelope(type=MessageType.MESSAGE, sender="").validate()
    with pytest.raises(InvalidEnvelopeError, match="needs at least 'type' and 'sender'"):
        Envelope.from_dict({"payload": 1})
    with pytest.raises(InvalidEnvelopeError, match="newer AgentAdapter"):
        Envelope.from_wire("[2]")
    with pytest.raises(InvalidEnvelopeError, match="not JSON-serializable"):
        Envelope(type=MessageType.MESSAGE, sender="a", payload=object()).to_wire()


def test_error_messages_say_what_to_do() -> None:
    assert "raise QueueConfig.maxsize" in str(QueueFullError("bob", 10, "reject"))
    assert "pass a longer timeout" in str(RequestTimeoutError("bob", 1.5, "c1"))
    assert "retry" in str(VersionConflictError("k", 1, 2))
