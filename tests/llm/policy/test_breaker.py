"""Circuit breaker transitions, table-tested on a fake clock."""

from __future__ import annotations

import pytest

from agentadapter.llm.errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    CircuitOpenError,
    RateLimitError,
    ServerError,
)
from agentadapter.llm.policy.breaker import BreakerConfig, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CHANGES: list[tuple[str, str]] = []


def breaker(**config) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    CHANGES.clear()
    made = CircuitBreaker("p/m", BreakerConfig(**config), clock=clock,
                          on_change=lambda name, old, new: CHANGES.append((old, new)))
    return made, clock


def fail(b: CircuitBreaker, n: int = 1, error: BaseException | None = None) -> None:
    for _ in range(n):
        b.before_call()
        b.record_failure(error or ServerError("down"))


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ServerError("5xx"), True),
        (APIConnectionError("refused"), True),
        (APITimeoutError("slow"), True),
        (RateLimitError("429"), False),
        (BadRequestError("400"), False),
    ],
)
def test_which_errors_count(error, counts):
    b, _ = breaker(failure_threshold=1)
    b.before_call()
    b.record_failure(error)
    assert b.state == ("open" if counts else "closed")


def test_opens_after_consecutive_failures_and_rejects_without_calling():
    b, clock = breaker(failure_threshold=3, cooldown_s=10)
    fail(b, 2)
    assert b.state == "closed"
    fail(b)
    assert b.state == "open" and b.opened_count == 1
    with pytest.raises(CircuitOpenError) as caught:
        b.before_call()
    assert caught.value.retry_in == pytest.approx(10) and caught.value.target == "p/m"
    clock.now += 9.9
    with pytest.raises(CircuitOpenError):
        b.before_call()


def test_half_open_probe_closes_on_success():
    b, clock = breaker(failure_threshold=1, cooldown_s=5)
    fail(b)
    clock.now += 5
    b.before_call()  # the probe goes through
    assert b.state == "half_open"
    with pytest.raises(CircuitOpenError, match="being probed"):
        b.before_call()  # only one probe at a time
    b.record_success()
    assert b.state == "closed"
    b.before_call()
    assert CHANGES == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_half_open_probe_failure_reopens():
    b, clock = breaker(failure_threshold=1, cooldown_s=5)
    fail(b)
    clock.now += 5
    fail(b)
    assert b.state == "open" and b.opened_count == 2
    assert b.snapshot().retry_in_s == pytest.approx(5)


def test_opens_on_failure_rate_over_the_window():
    b, clock = breaker(failure_threshold=100, failure_rate=0.5, min_calls=10, window_s=30)
    for i in range(10):
        b.before_call()
        if i % 5 in (1, 2, 4):  # 6 failures in 10 calls, the last one a failure, never 3 in a row
            b.record_failure(ServerError("x"))
        else:
            b.record_success()
        clock.now += 1
    assert b.state == "open"


def test_old_outcomes_leave_the_window():
    b, clock = breaker(failure_threshold=100, failure_rate=0.5, min_calls=4, window_s=10)
    fail(b, 3)
    clock.now += 11  # the failures age out
    for _ in range(4):
        b.before_call()
        b.record_success()
    assert b.state == "closed"
    snap = b.snapshot()
    assert (snap.window_calls, snap.window_failures) == (4, 0)


def test_cancelled_probe_frees_its_slot_and_non_health_errors_in_half_open():
    b, clock = breaker(failure_threshold=1, cooldown_s=1)
    fail(b)
    clock.now += 1
    b.before_call()
    b.release()
    b.before_call()  # the slot is free again
    b.record_failure(BadRequestError("caller's fault"))  # says nothing about health: stays half-open
    assert b.state == "half_open"
    b.before_call()


def test_disabled_breaker_never_opens():
    b, _ = breaker(failure_threshold=1, enabled=False)
    fail(b, 10)
    b.before_call()
    assert b.state == "closed"


def test_a_busy_targets_window_keeps_only_its_last_calls() -> None:
    now = [0.0]
    breaker = CircuitBreaker("busy", BreakerConfig(window_max_calls=100, min_calls=20), clock=lambda: now[0])
    for _ in range(10_000):
        breaker.record_success()
    assert len(breaker._outcomes) == 100
    for _ in range(4):
        breaker.record_failure(ServerError("boom"))
    assert breaker.state == "closed"  # 4 of the last 100 calls failed: under the failure rate
