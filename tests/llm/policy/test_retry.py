"""The retry policy, table-tested with time frozen (the official SDKs' defaults)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from agentadapter.llm.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    OverloadedError,
    RateLimitError,
    ServerError,
    error_from_response,
    parse_retry_after,
)
from agentadapter.llm.policy.retry import RetryPolicy, call_with_retries

FROZEN = dt.datetime(2026, 11, 20, 12, 0, 0, tzinfo=dt.UTC)


def status_error(status: int, headers: dict[str, str] | None = None):
    return error_from_response(status, {"error": {"message": "x"}}, headers or {}, provider="p", model="m")


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (status_error(408), True),
        (status_error(409), True),
        (status_error(429), True),
        (status_error(500), True),
        (status_error(502), True),
        (status_error(529), True),
        (APIConnectionError("down"), True),
        (APITimeoutError("slow"), True),
        (status_error(400), False),
        (status_error(401), False),
        (status_error(403), False),
        (status_error(404), False),
        (status_error(422), False),
        (status_error(400, {"x-should-retry": "true"}), True),
        (status_error(500, {"x-should-retry": "false"}), False),
    ],
)
def test_which_errors_are_retried(error, retryable):
    assert RetryPolicy().should_retry(error, 0) is retryable


def test_classes_per_status():
    assert isinstance(status_error(409), ConflictError)
    assert isinstance(status_error(529), OverloadedError)
    assert isinstance(status_error(503), ServerError)
    assert isinstance(status_error(401), AuthenticationError)
    assert isinstance(status_error(418), BadRequestError)


def test_gives_up_after_max_retries():
    policy = RetryPolicy(max_retries=2)
    error = status_error(500)
    assert policy.should_retry(error, 1)
    assert not policy.should_retry(error, 2)


@pytest.mark.parametrize(
    ("retries_done", "rand", "expected"),
    [
        (0, 0.0, 0.5),
        (1, 0.0, 1.0),
        (2, 0.0, 2.0),
        (3, 0.0, 4.0),
        (4, 0.0, 8.0),
        (5, 0.0, 8.0),  # capped at 8 s
        (0, 1.0, 0.375),  # full jitter takes off a quarter
        (4, 0.5, 7.0),
    ],
)
def test_backoff_without_retry_after(retries_done, rand, expected):
    assert RetryPolicy().delay(status_error(500), retries_done, rand=lambda: rand) == pytest.approx(expected)


@time_machine.travel(FROZEN, tick=False)
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": "Fri, 20 Nov 2026 12:00:07 GMT"}, 7.0),
        ({"retry-after-ms": "100", "retry-after": "9"}, 0.1),  # the ms header wins
        ({"retry-after": "not a date"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers, expected):
    value = parse_retry_after(headers)
    assert value == (pytest.approx(expected) if expected is not None else None)


@time_machine.travel(FROZEN, tick=False)
def test_retry_after_is_honoured_up_to_the_cap():
    policy = RetryPolicy(max_retry_after=60)
    assert policy.delay(status_error(429, {"retry-after": "5"}), 0) == 5.0
    too_long = status_error(429, {"retry-after": "120"})
    assert isinstance(too_long, RateLimitError) and too_long.retry_after == 120
    assert not policy.should_retry(too_long, 0)  # not worth waiting: the caller hears it at once
    assert policy.delay(status_error(503, {"retry-after": "2"}), 0) == 2.0


async def test_call_with_retries_sleeps_the_policy_delays():
    waits: list[float] = []
    calls = 0

    async def flaky():
        nonlocal calls
        calls += 1
        if calls < 3:
            raise status_error(429, {"retry-after": "1"})
        return "ok"

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    result, retries = await call_with_retries(flaky, RetryPolicy(), sleep=fake_sleep)
    assert (result, retries, waits) == ("ok", 2, [1.0, 1.0])


async def test_call_with_retries_raises_the_last_error():
    async def always_down():
        raise status_error(500)

    async def no_sleep(_: float) -> None:
        return None

    with pytest.raises(ServerError):
        await call_with_retries(always_down, RetryPolicy(max_retries=2), sleep=no_sleep)


async def test_never_waits_past_the_deadline():
    import time

    calls = 0

    async def down():
        nonlocal calls
        calls += 1
        raise status_error(429, {"retry-after": "30"})

    async def no_sleep(_: float) -> None:
        raise AssertionError("must not wait past the deadline")

    with pytest.raises(RateLimitError):
        await call_with_retries(down, RetryPolicy(), deadline=time.monotonic() + 1.0, sleep=no_sleep)
    assert calls == 1


async def test_does_not_retry_caller_errors():
    calls = 0

    async def bad():
        nonlocal calls
        calls += 1
        raise status_error(400)

    with pytest.raises(BadRequestError):
        await call_with_retries(bad, RetryPolicy())
    assert calls == 1
