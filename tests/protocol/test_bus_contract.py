"""The message bus contract: every test runs against the in-process bus and the Redis bus."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from agentadapter.protocol import (
    BusConfig,
    Envelope,
    FullPolicy,
    InvalidEnvelopeError,
    MessageBus,
    MessageType,
    Priority,
    ProtocolClosedError,
    QueueConfig,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
)

from .conftest import BusFactory, FakeClock


def message(sender: str = "alice", recipient: str | None = "bob", payload: Any = None, **fields: Any) -> Envelope:
    return Envelope(
        type=fields.pop("type", MessageType.MESSAGE), sender=sender, recipient=recipient, payload=payload, **fields
    )


async def drain(bus: MessageBus, agent: str, expected: int, timeout: float = 5.0) -> list[Envelope]:
    """Collect ``expected`` messages for ``agent``, waiting up to ``timeout`` for each batch."""
    received: list[Envelope] = []
    while len(received) < expected:
        batch = await bus.get_messages(agent, expected - len(received), timeout)
        if not batch:
            break
        received.extend(batch)
    return received


# -- direct messages ---------------------------------------------------------------------------


async def test_direct_message_arrives_with_every_field(bus: MessageBus) -> None:
    sent = message(
        payload={"text": "hi", "n": [1, 2.5, None, True]},
        run_id="run-1",
        correlation_id="corr-1",
        headers={"traceparent": "00-abc"},
        priority=Priority.HIGH,
        ttl_s=3600,
    )
    assert await bus.send(sent) == 1
    [got] = await bus.get_messages("bob")
    assert got.to_dict() == sent.to_dict()
    assert await bus.get_messages("bob") == []


async def test_get_messages_waits_for_the_first_message(bus: MessageBus) -> None:
    waiter = asyncio.create_task(bus.get_messages("bob", 10, timeout=5))
    await asyncio.sleep(0)
    await bus.send(message(payload=1))
    got = await waiter
    assert [envelope.payload for envelope in got] == [1]


async def test_get_messages_times_out_empty(bus: MessageBus) -> None:
    assert await bus.get_messages("bob", 10, timeout=0.05) == []
    assert await bus.get_messages("bob", 10, timeout=0) == []


async def test_priorities_then_fifo(bus: MessageBus) -> None:
    order = [Priority.LOW, Priority.NORMAL, Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.URGENT]
    for index, priority in enumerate(order):
        await bus.send(message(payload=index, priority=priority))
    got = await bus.get_messages("bob", 100)
    assert [envelope.payload for envelope in got] == [2, 5, 3, 1, 4, 0]


async def test_max_messages_limits_a_batch(bus: MessageBus) -> None:
    for index in range(7):
        await bus.send(message(payload=index))
    first = await bus.get_messages("bob", 3)
    rest = await bus.get_messages("bob", 100)
    assert [e.payload for e in first] == [0, 1, 2]
    assert [e.payload for e in rest] == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="max_messages"):
        await bus.get_messages("bob", 0)


async def test_a_message_waits_for_an_agent_that_has_not_started(bus: MessageBus) -> None:
    await bus.send(message(recipient="later"))
    assert await bus.queue_depth("later") == 1
    assert len(await bus.get_messages("later")) == 1
    assert await bus.queue_depth("later") == 0


async def test_custom_message_type_round_trips(bus: MessageBus) -> None:
    approval = MessageType("approval_request")
    await bus.send(message(type=approval, payload={"amount": 3}))
    [got] = await bus.get_messages("bob")
    assert got.type is approval
    assert got.type == "approval_request"


# -- broadcast and topics ----------------------------------------------------------------------


async def test_broadcast_reaches_every_open_inbox_but_the_sender(bus: MessageBus) -> None:
    for agent in ("alice", "bob", "carol"):
        await bus.open_inbox(agent)
    await bus.send(message(payload="closed", recipient="dave"))  # dave has messages but no open inbox
    delivered = await bus.send(Envelope(type=MessageType.BROADCAST, sender="alice", payload="all"))
    assert delivered == 2
    assert [e.payload for e in await bus.get_messages("bob")] == ["all"]
    assert [e.payload for e in await bus.get_messages("carol")] == ["all"]
    assert await bus.get_messages("alice") == []
    assert [e.payload for e in await bus.get_messages("dave")] == ["closed"]


async def test_topic_wildcards(bus: MessageBus) -> None:
    await bus.subscribe("exact", "research.results")
    await bus.subscribe("star", "research.*")
    await bus.subscribe("hash", "research.#")
    await bus.subscribe("all", "#")
    await bus.subscribe("other", "billing.*")
    await bus.subscribe("twice", "research.*")
    await bus.subscribe("twice", "#")

    def topic(name: str) -> Envelope:
        return Envelope(type=MessageType.EVENT, sender="alice", topic=name, payload=name)

    assert await bus.send(topic("research.results")) == 5
    assert await bus.send(topic("research.results.final")) == 3  # hash, all, twice
    assert await bus.send(topic("research")) == 3  # '#' matches zero segments
    assert await bus.send(topic("billing.invoice")) == 3  # other, all, twice

    async def payloads(agent: str) -> list[Any]:
        return [e.payload for e in await bus.get_messages(agent, 100)]

    assert await payloads("exact") == ["research.results"]
    assert await payloads("star") == ["research.results"]
    assert await payloads("hash") == ["research.results", "research.results.final", "research"]
    assert await payloads("all") == ["research.results", "research.results.final", "research", "billing.invoice"]
    assert await payloads("other") == ["billing.invoice"]
    assert await payloads("twice") == ["research.results", "research.results.final", "research", "billing.invoice"]
    assert await bus.subscriptions("twice") == ["#", "research.*"]


async def test_unsubscribe_stops_delivery(bus: MessageBus) -> None:
    await bus.subscribe("bob", "news.*")
    await bus.send(Envelope(type=MessageType.EVENT, sender="alice", topic="news.a"))
    await bus.unsubscribe("bob", "news.*")
    await bus.unsubscribe("bob", "never.subscribed")
    assert await bus.send(Envelope(type=MessageType.EVENT, sender="alice", topic="news.b")) == 0
    assert [e.topic for e in await bus.get_messages("bob")] == ["news.a"]
    assert await bus.subscriptions("bob") == []


async def test_publish_without_subscribers_delivers_nothing(bus: MessageBus) -> None:
    assert await bus.send(Envelope(type=MessageType.EVENT, sender="alice", topic="nobody.listens")) == 0


# -- capacity and policies ---------------------------------------------------------------------


async def test_full_inbox_rejects_a_direct_message(bus: MessageBus) -> None:
    await bus.open_inbox("bob", QueueConfig(maxsize=2))
    await bus.send(message(payload=1))
    await bus.send(message(payload=2))
    with pytest.raises(QueueFullError, match="inbox of agent 'bob' is full") as caught:
        await bus.send(message(payload=3))
    assert caught.value.maxsize == 2
    assert [e.payload for e in await bus.get_messages("bob")] == [1, 2]


async def test_fan_out_skips_a_full_inbox(bus: MessageBus) -> None:
    await bus.open_inbox("bob", QueueConfig(maxsize=1))
    await bus.open_inbox("carol")
    await bus.send(message(payload="first"))
    assert await bus.send(Envelope(type=MessageType.BROADCAST, sender="alice", payload="b")) == 1
    assert [e.payload for e in await bus.get_messages("bob")] == ["first"]
    assert [e.payload for e in await bus.get_messages("carol")] == ["b"]


async def test_drop_oldest_evicts_the_oldest_of_the_lowest_priority(bus: MessageBus) -> None:
    await bus.open_inbox("bob", QueueConfig(maxsize=3, policy=FullPolicy.DROP_OLDEST))
    await bus.send(message(payload="urgent", priority=Priority.URGENT))
    await bus.send(message(payload="low-1", priority=Priority.LOW))
    await bus.send(message(payload="low-2", priority=Priority.LOW))
    await bus.send(message(payload="new"))  # evicts low-1
    await bus.send(message(payload="newer"))  # evicts low-2
    got = await bus.get_messages("bob", 10)
    assert [e.payload for e in got] == ["urgent", "new", "newer"]


async def test_drop_oldest_never_evicts_a_message_being_processed(bus: MessageBus) -> None:
    await bus.open_inbox("bob", QueueConfig(maxsize=2, policy=FullPolicy.DROP_OLDEST))
    await bus.send(message(payload="in-flight"))
    [taken] = await bus.get_messages("bob", 1, auto_ack=False)
    await bus.send(message(payload="waiting"))
    await bus.send(message(payload="newest"))  # evicts "waiting", not the unacknowledged one
    assert [e.payload for e in await bus.get_messages("bob", 10)] == ["newest"]
    await bus.ack("bob", [taken])


async def test_wait_policy_blocks_the_sender_until_there_is_room(bus: MessageBus) -> None:
    await bus.open_inbox("bob", QueueConfig(maxsize=1, policy=FullPolicy.WAIT, wait_timeout_s=10))
    await bus.send(message(payload=1))
    blocked = asyncio.create_task(bus.send(message(payload=2)))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert [e.payload for e in await bus.get_messages("bob", 1)] == [1]
    assert await asyncio.wait_for(blocked, 5) == 1
    assert [e.payload for e in await bus.get_messages("bob", 1, timeout=5)] == [2]


async def test_wait_policy_gives_up_after_its_timeout(bus: MessageBus) -> None:
    await bus.open_inbox("bob", QueueConfig(maxsize=1, policy=FullPolicy.WAIT, wait_timeout_s=0.05))
    await bus.send(message(payload=1))
    with pytest.raises(QueueFullError) as caught:
        await bus.send(message(payload=2))
    assert caught.value.waited_s is not None


# -- expiry and retention ----------------------------------------------------------------------


async def test_expired_envelopes_are_never_delivered(make_bus: BusFactory, clock: FakeClock) -> None:
    bus = await make_bus(fake_clock=True)
    await bus.send(message(payload="short", ttl_s=5, created_at=clock.now))
    await bus.send(message(payload="long", ttl_s=60, created_at=clock.now))
    await bus.send(message(payload="forever", created_at=clock.now))
    clock.advance(10)
    assert [e.payload for e in await bus.get_messages("bob", 10)] == ["long", "forever"]


async def test_an_envelope_expired_at_send_is_recorded_but_not_delivered(
    make_bus: BusFactory, clock: FakeClock
) -> None:
    bus = await make_bus(fake_clock=True)
    stale = message(payload="stale", ttl_s=1, created_at=clock.now - 5, run_id="r")
    assert await bus.send(stale) == 0
    assert await bus.get_messages("bob", 10) == []
    assert [e.id for e in await bus.history(run_id="r")] == [stale.id]


async def test_expired_messages_are_not_redelivered_either(make_bus: BusFactory, clock: FakeClock) -> None:
    bus = await make_bus(BusConfig(claim_idle_s=0.05), fake_clock=True)
    await bus.send(message(payload="x", ttl_s=5, created_at=clock.now))
    assert len(await bus.get_messages("bob", 1, auto_ack=False)) == 1
    clock.advance(10)
    assert await bus.get_messages("bob", 1, timeout=0.3) == []


async def test_retention_discards_old_waiting_messages(make_bus: BusFactory, clock: FakeClock) -> None:
    bus = await make_bus(fake_clock=True)
    await bus.open_inbox("bob", QueueConfig(retention_s=30))
    await bus.send(message(payload="old", created_at=clock.now))
    clock.advance(20)
    await bus.send(message(payload="young", created_at=clock.now))
    clock.advance(20)
    assert [e.payload for e in await bus.get_messages("bob", 10)] == ["young"]


# -- acknowledgements and redelivery -----------------------------------------------------------


async def test_unacknowledged_messages_are_redelivered(make_bus: BusFactory) -> None:
    config = BusConfig(claim_idle_s=0.1)
    first = await make_bus(config)
    second = await make_bus(config)
    for index in range(3):
        await first.send(message(payload=index))
    taken = await first.get_messages("bob", 2, auto_ack=False)
    assert [e.payload for e in taken] == [0, 1]
    # The taker never acknowledges (it died): after claim_idle_s another consumer gets them again.
    again = await drain(second, "bob", 3, timeout=5)
    assert sorted(e.payload for e in again) == [0, 1, 2]


async def test_acknowledged_messages_are_not_redelivered(make_bus: BusFactory) -> None:
    bus = await make_bus(BusConfig(claim_idle_s=0.05))
    await bus.send(message(payload="once"))
    taken = await bus.get_messages("bob", 1, auto_ack=False)
    await bus.ack("bob", taken)
    assert await bus.get_messages("bob", 1, timeout=0.3) == []
    assert await bus.queue_depth("bob") == 0


# -- request / response ------------------------------------------------------------------------


async def test_request_response_with_a_handler(bus: MessageBus) -> None:
    async def double(envelope: Envelope) -> Any:
        return {"doubled": envelope.payload["n"] * 2}

    registration = await bus.add_handler("calc", double)
    request = Envelope(type=MessageType.REQUEST, sender="alice", recipient="calc", payload={"n": 21}, run_id="r")
    response = await bus.request(request, timeout=5)
    assert response.type == MessageType.RESPONSE
    assert response.payload == {"doubled": 42}
    assert response.correlation_id == request.id
    assert response.sender == "calc" and response.recipient == "alice"
    await registration.stop()
    assert not registration.active


async def test_manual_reply_from_get_messages(bus: MessageBus) -> None:
    async def responder() -> None:
        [incoming] = await bus.get_messages("calc", 1, timeout=5)
        await bus.reply(incoming, "pong", sender="calc")

    task = asyncio.create_task(responder())
    response = await bus.request(message(type=MessageType.REQUEST, recipient="calc", payload="ping"), timeout=5)
    assert response.payload == "pong"
    await task


async def test_a_failing_handler_answers_with_an_error(bus: MessageBus) -> None:
    def broken(envelope: Envelope) -> Any:
        raise LookupError("no such invoice")

    await bus.add_handler("billing", broken)
    with pytest.raises(RemoteError, match="no such invoice") as caught:
        await bus.request(message(type=MessageType.REQUEST, recipient="billing"), timeout=5)
    assert caught.value.error_type == "LookupError"
    assert caught.value.responder == "billing"


async def test_request_times_out(bus: MessageBus) -> None:
    with pytest.raises(RequestTimeoutError, match="did not answer") as caught:
        await bus.request(message(type=MessageType.REQUEST, recipient="nobody"), timeout=0.05)
    assert caught.value.recipient == "nobody"


async def test_concurrent_requests_each_get_their_own_response(bus: MessageBus) -> None:
    async def echo(envelope: Envelope) -> Any:
        await asyncio.sleep(0)
        return envelope.payload

    await bus.add_handler("echo", echo, concurrency=4)
    requests = [message(type=MessageType.REQUEST, recipient="echo", payload=i) for i in range(20)]
    responses = await asyncio.gather(*(bus.request(request, timeout=5) for request in requests))
    assert [r.payload for r in responses] == list(range(20))


async def test_many_requests_with_mixed_timeouts(bus: MessageBus) -> None:
    async def echo(envelope: Envelope) -> Any:
        return envelope.payload

    await bus.add_handler("echo", echo)

    async def ask(recipient: str, payload: Any, timeout: float) -> Any:
        request = message(type=MessageType.REQUEST, recipient=recipient, payload=payload)
        try:
            return (await bus.request(request, timeout=timeout)).payload
        except RequestTimeoutError:
            return "timed out"

    # A long timeout first, then shorter ones: the earliest deadline must still fire first.
    slow = asyncio.create_task(ask("nobody", "slow", 30))
    answers = await asyncio.gather(ask("nobody", "x", 0.1), ask("echo", "y", 30), ask("nobody", "z", 0.05))
    assert list(answers) == ["timed out", "y", "timed out"]
    many = await asyncio.gather(*(ask("echo", index, 30) for index in range(300)))
    assert many == list(range(300))
    slow.cancel()


async def test_a_handler_answer_that_is_not_json_becomes_an_error(make_bus: BusFactory) -> None:
    bus = await make_bus(BusConfig(validate_payloads=True))
    await bus.add_handler("odd", lambda envelope: {"when": object()}, sync_in_thread=False)
    with pytest.raises(RemoteError, match="not JSON"):
        await bus.request(message(type=MessageType.REQUEST, recipient="odd"), timeout=5)


async def test_a_plain_function_may_return_a_coroutine(bus: MessageBus) -> None:
    async def double(value: int) -> int:
        return value * 2

    await bus.add_handler("calc", lambda envelope: double(envelope.payload))
    response = await bus.request(message(type=MessageType.REQUEST, recipient="calc", payload=4), timeout=5)
    assert response.payload == 8


async def test_request_needs_a_recipient(bus: MessageBus) -> None:
    with pytest.raises(InvalidEnvelopeError, match="no recipient"):
        await bus.request(message(type=MessageType.REQUEST, recipient=None), timeout=1)


# -- handlers ----------------------------------------------------------------------------------


async def test_sync_handler_runs_in_a_worker_thread(bus: MessageBus) -> None:
    seen: list[tuple[Any, bool]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handle(envelope: Envelope) -> None:
        seen.append((envelope.payload, threading.current_thread() is threading.main_thread()))
        if len(seen) == 3:
            loop.call_soon_threadsafe(done.set)

    await bus.add_handler("bob", handle)
    for index in range(3):
        await bus.send(message(payload=index))
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [(0, False), (1, False), (2, False)]


async def test_a_handler_error_does_not_stop_the_handler(bus: MessageBus) -> None:
    handled: list[Any] = []
    done = asyncio.Event()

    async def handle(envelope: Envelope) -> None:
        if envelope.payload == "bad":
            raise ValueError("bad message")
        handled.append(envelope.payload)
        if envelope.payload == "last":
            done.set()

    await bus.add_handler("bob", handle)
    for payload in ("first", "bad", "last"):
        await bus.send(message(payload=payload))
    await asyncio.wait_for(done.wait(), 5)
    assert handled == ["first", "last"]


# -- audit history -----------------------------------------------------------------------------


async def test_history_filters_by_run_agent_time_and_type(make_bus: BusFactory, clock: FakeClock) -> None:
    bus = await make_bus(fake_clock=True)
    start = clock.now
    first = message("alice", "bob", 1, run_id="run-a", created_at=start)
    second = message("bob", "carol", 2, run_id="run-a", created_at=start + 10)
    third = message("carol", "alice", 3, run_id="run-b", created_at=start + 20, type=MessageType.COMMAND)
    for envelope in (first, second, third):
        await bus.send(envelope)

    async def ids(**filters: Any) -> list[str]:
        return [e.id for e in await bus.history(**filters)]

    assert await ids() == [first.id, second.id, third.id]
    assert await ids(run_id="run-a") == [first.id, second.id]
    assert await ids(agent="alice") == [first.id, third.id]
    assert await ids(agent="carol", run_id="run-a") == [second.id]
    assert await ids(since=start + 5) == [second.id, third.id]
    assert await ids(until=start + 15) == [first.id, second.id]
    assert await ids(since=start + 5, until=start + 15) == [second.id]
    assert await ids(types=[MessageType.COMMAND]) == [third.id]
    assert await ids(limit=2) == [first.id, second.id]
    assert (await bus.history(run_id="run-a"))[1].to_dict() == second.to_dict()


async def test_history_includes_requests_and_responses(bus: MessageBus) -> None:
    await bus.add_handler("calc", lambda envelope: "ok", sync_in_thread=False)
    await bus.request(message(type=MessageType.REQUEST, recipient="calc", run_id="r"), timeout=5)
    kinds = [e.type for e in await bus.history(run_id="r")]
    assert kinds == [MessageType.REQUEST, MessageType.RESPONSE]


async def test_history_is_bounded(make_bus: BusFactory) -> None:
    bus = await make_bus(BusConfig(history_max=5))
    for index in range(50):
        await bus.send(message(payload=index))
    kept = [e.payload for e in await bus.history()]
    # Redis trims approximately (whole stream nodes): at least the newest five, and far fewer than all.
    assert kept[-5:] == [45, 46, 47, 48, 49]
    assert len(kept) < 50 or bus.transport == "redis"


async def test_history_retention(make_bus: BusFactory, clock: FakeClock) -> None:
    bus = await make_bus(BusConfig(history_retention_s=50), fake_clock=True)
    old = message(payload="old", created_at=clock.now)
    await bus.send(old)
    clock.advance(100)
    young = message(payload="young", created_at=clock.now)
    await bus.send(young)
    assert [e.id for e in await bus.history()] == [young.id]


# -- inbox lifecycle and validation ------------------------------------------------------------


async def test_close_inbox_drops_messages_and_membership(bus: MessageBus) -> None:
    await bus.open_inbox("bob")
    await bus.subscribe("bob", "news.#")
    await bus.send(message(payload="dropped"))
    await bus.close_inbox("bob")
    assert await bus.queue_depth("bob") == 0
    assert await bus.subscriptions("bob") == []
    assert await bus.send(Envelope(type=MessageType.BROADCAST, sender="alice")) == 0
    assert await bus.get_messages("bob") == []


async def test_queue_depth_counts_waiting_messages(bus: MessageBus) -> None:
    for index in range(4):
        await bus.send(message(payload=index))
    assert await bus.queue_depth("bob") == 4
    await bus.get_messages("bob", 1, auto_ack=False)
    assert await bus.queue_depth("bob") == 3


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"recipient": "bob", "topic": "a.b"}, "both recipient"),
        ({"recipient": "bob", "priority": 7}, "out of range"),
        ({"recipient": None, "topic": "a.*"}, "not valid"),
        ({"recipient": None, "topic": "a..b"}, "not valid"),
    ],
)
async def test_malformed_envelopes_are_refused(bus: MessageBus, fields: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match=error):
        await bus.send(Envelope(type=MessageType.MESSAGE, sender="alice", **fields))


async def test_a_non_json_payload_is_refused(make_bus: BusFactory) -> None:
    bus = await make_bus(BusConfig(validate_payloads=True))
    with pytest.raises(InvalidEnvelopeError, match="JSON"):
        await bus.send(message(payload={"when": object()}))
    assert await bus.get_messages("bob") == []


async def test_bad_subscription_patterns_and_names_are_refused(bus: MessageBus) -> None:
    with pytest.raises(InvalidEnvelopeError, match="empty segment"):
        await bus.subscribe("bob", "a..b")
    with pytest.raises(InvalidEnvelopeError, match="agent name"):
        await bus.open_inbox("")


async def test_a_closed_bus_refuses_work(make_bus: BusFactory) -> None:
    bus = await make_bus()
    await bus.close()
    with pytest.raises(ProtocolClosedError, match="message bus is closed"):
        await bus.send(message())
    with pytest.raises(ProtocolClosedError):
        await bus.get_messages("bob")
    await bus.close()  # idempotent


async def test_close_wakes_a_waiting_consumer(make_bus: BusFactory) -> None:
    bus = await make_bus()
    waiter = asyncio.create_task(bus.get_messages("bob", 1, timeout=None))
    await asyncio.sleep(0.01)
    await bus.close()
    if bus.transport == "redis":
        waiter.cancel()  # a blocked Redis read ends at its next poll; do not wait for it
    with pytest.raises((ProtocolClosedError, asyncio.CancelledError)):
        await waiter
