"""Per-target reliability state: health statistics, breakers and rate limiters, behind one store.

:class:`TargetStats` keeps what routing strategies and health reports need about one target
(backend+model): successes, failures, calls in flight, recent latencies and exponentially weighted
averages of time to first token and total latency. :class:`ReliabilityStore` is the small
interface that hands out a target's stats and breaker and a backend's rate limiter;
:class:`InProcessReliabilityStore` keeps them in this process (a Redis store can implement the
same interface so several processes share them). :class:`TargetHealth` is the snapshot that
``LLM.health()`` and ``agentadapter health`` show.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from agentadapter.llm.policy.breaker import BreakerConfig, BreakerState, CircuitBreaker
from agentadapter.llm.policy.ratelimit import RateLimitConfig, RateLimiter

EWMA_ALPHA = 0.2
"""Weight of the newest sample: about the last ten calls dominate the average."""


@dataclass(slots=True, frozen=True)
class TargetHealth:
    """A target's health, as reported."""

    target: str
    calls: int
    successes: int
    failures: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    ewma_latency_ms: float | None
    ewma_ttft_ms: float | None
    in_flight: int
    breaker: BreakerState
    last_error: str | None

    def to_dict(self) -> dict[str, object]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


class TargetStats:
    """Outcome and latency statistics of one target."""

    __slots__ = ("ewma_latency_ms", "ewma_ttft_ms", "failures", "in_flight", "last_error", "latencies", "successes")

    def __init__(self, window: int = 512) -> None:
        self.successes = 0
        self.failures = 0
        self.in_flight = 0
        self.latencies: deque[float] = deque(maxlen=window)
        self.ewma_latency_ms: float | None = None
        self.ewma_ttft_ms: float | None = None
        self.last_error: str | None = None

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, *, ok: bool, latency_ms: float, ttft_ms: float | None = None, error: str | None = None) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if ok:
            self.successes += 1
            self.latencies.append(latency_ms)
            self.ewma_latency_ms = _ewma(self.ewma_latency_ms, latency_ms)
            self.ewma_ttft_ms = _ewma(self.ewma_ttft_ms, ttft_ms if ttft_ms is not None else latency_ms)
        else:
            self.failures += 1
            self.last_error = error

    def health(self, target: str, breaker: BreakerState) -> TargetHealth:
        calls = self.successes + self.failures
        ordered = sorted(self.latencies)
        return TargetHealth(
            target=target,
            calls=calls,
            successes=self.successes,
            failures=self.failures,
            success_rate=self.successes / calls if calls else None,
            p50_ms=_percentile(ordered, 0.50),
            p95_ms=_percentile(ordered, 0.95),
            ewma_latency_ms=self.ewma_latency_ms,
            ewma_ttft_ms=self.ewma_ttft_ms,
            in_flight=self.in_flight,
            breaker=breaker,
            last_error=self.last_error,
        )


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + EWMA_ALPHA * (sample - previous)


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ReliabilityStore(Protocol):
    """Where breakers, rate limiters and statistics live."""

    def breaker(self, target: str) -> CircuitBreaker: ...

    def limiter(self, backend: str) -> RateLimiter: ...

    def stats(self, target: str) -> TargetStats: ...

    def health(self) -> dict[str, TargetHealth]: ...


class InProcessReliabilityStore:
    """Reliability state in this process's memory."""

    def __init__(
        self,
        *,
        breaker_config: BreakerConfig | None = None,
        rate_limits: Mapping[str, RateLimitConfig] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_breaker_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.breaker_config = breaker_config or BreakerConfig()
        self.rate_limits = dict(rate_limits or {})
        self._clock = clock
        self._on_breaker_change = on_breaker_change
        self._breakers: dict[str, CircuitBreaker] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._stats: dict[str, TargetStats] = {}

    def breaker(self, target: str) -> CircuitBreaker:
        breaker = self._breakers.get(target)
        if breaker is None:
            breaker = self._breakers[target] = CircuitBreaker(
                target, self.breaker_config, clock=self._clock, on_change=self._on_breaker_change
            )
        return breaker

    def limiter(self, backend: str) -> RateLimiter:
        limiter = self._limiters.get(backend)
        if limiter is None:
            limiter = self._limiters[backend] = RateLimiter(backend, self.rate_limits.get(backend), clock=self._clock)
        return limiter

    def stats(self, target: str) -> TargetStats:
        stats = self._stats.get(target)
        if stats is None:
            stats = self._stats[target] = TargetStats()
        return stats

    def health(self) -> dict[str, TargetHealth]:
        return {
            target: stats.health(target, self.breaker(target).state) for target, stats in sorted(self._stats.items())
        }
