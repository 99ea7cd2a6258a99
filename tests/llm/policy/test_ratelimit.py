"""Token buckets, waiting vs failing fast, and limits learned from provider headers."""

from __future__ import annotations

import datetime as dt

import pytest

from agentadapter.llm.errors import RateLimitError
from agentadapter.llm.policy.ratelimit import RateLimitConfig, RateLimiter, parse_reset


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(**config) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter("openai", RateLimitConfig(**config), clock=clock, sleep=clock.sleep), clock


async def test_requests_per_minute_hold():
    limit, clock = limiter(requests_per_minute=60)
    for _ in range(60):
        await limit.acquire(0)
    assert clock.slept == []
    await limit.acquire(0)  # the 61st waits for one request's worth of refill: one second
    assert clock.slept == [pytest.approx(1.0)]


async def test_tokens_per_minute_and_settle():
    limit, clock = limiter(tokens_per_minute=1000)
    await limit.acquire(600)
    limit.settle(600, 100)  # the call used less than estimated: 500 come back
    await limit.acquire(800)
    assert clock.slept == []
    await limit.acquire(600)
    assert clock.slept and clock.slept[0] == pytest.approx((600 - 100) * 60 / 1000)


async def test_fail_fast_mode():
    limit, _ = limiter(requests_per_minute=1, mode="fail")
    await limit.acquire(0)
    with pytest.raises(RateLimitError, match="fails fast by config") as caught:
        await limit.acquire(0)
    assert caught.value.retry_after == pytest.approx(60) and not caught.value.retryable


async def test_wait_is_bounded_by_the_deadline():
    limit, clock = limiter(requests_per_minute=1)
    await limit.acquire(0)
    with pytest.raises(RateLimitError, match="deadline"):
        await limit.acquire(0, deadline=clock.now + 5)


async def test_no_limits_means_no_waiting():
    limit, clock = limiter()
    assert not limit.active
    for _ in range(1000):
        await limit.acquire(10_000)
    assert clock.slept == []


async def test_learns_openai_headers():
    limit, clock = limiter()
    limit.observe({"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
                   "x-ratelimit-reset-requests": "2s", "x-ratelimit-limit-tokens": "50000",
                   "x-ratelimit-remaining-tokens": "49000", "x-ratelimit-reset-tokens": "1m0s"})
    assert limit.requests is not None and limit.requests.capacity == 100
    assert limit.tokens is not None and limit.tokens.level == 49000
    await limit.acquire(10)
    assert clock.slept[0] >= 2.0  # held until the reported reset


async def test_learns_anthropic_headers():
    limit, _clock = limiter()
    reset = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    limit.observe({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                   "anthropic-ratelimit-requests-reset": reset})
    assert limit.requests is not None and limit.requests.blocked_until == pytest.approx(30, abs=2)


def test_learning_can_be_turned_off_and_ignores_garbage():
    limit, _ = limiter(learn_from_headers=False)
    limit.observe({"x-ratelimit-limit-requests": "10"})
    assert limit.requests is None
    limit, _ = limiter()
    limit.observe({"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-tokens": "few"})
    assert not limit.active


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3s", 3723.0), ("2.5", 2.5), ("", None), ("soon", None)],
)
def test_parse_reset(value, seconds):
    assert parse_reset(value) == (pytest.approx(seconds) if seconds is not None else None)
