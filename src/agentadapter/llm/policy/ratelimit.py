"""Client-side rate limits: requests and tokens per minute, per backend and API key.

Each limiter holds two token buckets (requests per minute, tokens per minute) that refill
continuously. A call takes one request and its estimated tokens before it is sent; when the
buckets are short it either waits (never past the request's deadline) or fails fast with
:class:`~agentadapter.llm.errors.RateLimitError`, as configured. When a provider reports its own
limits in response headers (OpenAI's ``x-ratelimit-*``, Anthropic's ``anthropic-ratelimit-*``)
the limiter learns them: a limit it was not given becomes its capacity, and "0 remaining until
reset" holds further calls until the reset time. The clock and sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from agentadapter.llm.errors import RateLimitError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(slots=True, frozen=True)
class RateLimitConfig:
    """Limits for one backend (or API key). ``None`` means no limit until one is learned."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    mode: Literal["wait", "fail"] = "wait"
    learn_from_headers: bool = True


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity`` per minute."""

    __slots__ = ("_clock", "blocked_until", "capacity", "level", "updated")

    def __init__(self, capacity: float, clock: Callable[[], float]) -> None:
        self.capacity = capacity
        self.level = capacity
        self._clock = clock
        self.updated = clock()
        self.blocked_until = 0.0

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60.0)
        self.updated = now

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is now)."""
        now = self._clock()
        self._refill(now)
        blocked = max(0.0, self.blocked_until - now)
        # A call larger than the whole bucket can never fit: let it through when the bucket is full.
        needed = min(amount, self.capacity)
        if self.level >= needed:
            return blocked
        return max(blocked, (needed - self.level) * 60.0 / self.capacity)

    def take(self, amount: float) -> None:
        self._refill(self._clock())
        self.level -= min(amount, self.capacity)

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """The limits of one backend or API key."""

    def __init__(
        self,
        name: str,
        config: RateLimitConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.config = config or RateLimitConfig()
        self._clock = clock
        self._sleep = sleep
        self.requests = self._bucket(self.config.requests_per_minute)
        self.tokens = self._bucket(self.config.tokens_per_minute)
        self._lock = asyncio.Lock()

    def _bucket(self, per_minute: float | None) -> TokenBucket | None:
        return TokenBucket(per_minute, self._clock) if per_minute else None

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def wait_time(self, tokens: int) -> float:
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.wait_time(1))
        if self.tokens is not None:
            waits.append(self.tokens.wait_time(tokens))
        return max(waits)

    async def acquire(self, tokens: int, *, deadline: float | None = None) -> None:
        """Take one request and ``tokens`` tokens, waiting (or failing) as configured."""
        if not self.active:
            return
        async with self._lock:  # one waiter at a time keeps the order fair and the buckets exact
            while True:
                wait = self.wait_time(tokens)
                if wait <= 0:
                    break
                if self.config.mode == "fail" or (deadline is not None and self._clock() + wait > deadline):
                    reason = (
                        "fails fast by config" if self.config.mode == "fail" else "the request's deadline is sooner"
                    )
                    raise RateLimitError(
                        f"RateLimitError: the client-side limit for {self.name} is reached and {reason}; "
                        f"capacity returns in {wait:.2f} s. Raise the limit in agentadapter.yaml or slow down",
                        provider=self.name, retry_after=wait, status=None, retryable=False,
                    )
                await self._sleep(wait)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens is None:
            return
        if actual_tokens < estimated_tokens:
            self.tokens.give_back(estimated_tokens - actual_tokens)
        else:
            self.tokens.take(actual_tokens - estimated_tokens)

    # ------------------------------------------------------------------------- learning from headers

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn limits and resets from a provider's rate-limit headers."""
        if not self.config.learn_from_headers:
            return
        for kind in ("requests", "tokens"):
            limit = _first(headers, f"x-ratelimit-limit-{kind}", f"anthropic-ratelimit-{kind}-limit")
            remaining = _first(headers, f"x-ratelimit-remaining-{kind}", f"anthropic-ratelimit-{kind}-remaining")
            reset = _first(headers, f"x-ratelimit-reset-{kind}", f"anthropic-ratelimit-{kind}-reset")
            if limit is None and remaining is None:
                continue
            bucket = self.requests if kind == "requests" else self.tokens
            if bucket is None and limit is not None:
                try:
                    capacity = float(limit)
                except ValueError:
                    continue
                if capacity > 0:
                    bucket = TokenBucket(capacity, self._clock)
                    if kind == "requests":
                        self.requests = bucket
                    else:
                        self.tokens = bucket
            if bucket is None or remaining is None:
                continue
            try:
                left = float(remaining)
            except ValueError:
                continue
            bucket.level = min(bucket.level, left)
            if left <= 0 and reset is not None:
                seconds = parse_reset(reset)
                if seconds is not None:
                    bucket.blocked_until = max(bucket.blocked_until, self._clock() + seconds)


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def parse_reset(value: str) -> float | None:
    """Seconds until a reset: OpenAI durations (``1s``, ``6m0s``, ``20ms``), or an RFC 3339 time."""
    value = value.strip()
    if not value:
        return None
    matches = _DURATION_PART.findall(value)
    if matches and "".join(n + u for n, u in matches) == value:
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(number) * scale[unit] for number, unit in matches)
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds())
