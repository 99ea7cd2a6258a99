"""Circuit breakers: stop calling a target that keeps failing, and probe it back to health.

One breaker per backend+model. ``closed`` lets every call through and counts outcomes; it opens
after ``failure_threshold`` consecutive failures, or when the failure rate over the last
``window_s`` seconds exceeds ``failure_rate`` (with at least ``min_calls`` calls in the window).
``open`` rejects at once with :class:`~agentadapter.llm.errors.CircuitOpenError` (nothing is
sent) until ``cooldown_s`` has passed; then ``half_open`` lets ``half_open_probes`` calls through:
a success closes the breaker, a failure opens it again. Only failures that say the target is
unhealthy count (server errors, timeouts, connection errors); a caller's 4xx or a rate limit does
not. The clock is injectable so the transitions are table-tested without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agentadapter.llm.errors import (
    APIConnectionError,
    CircuitOpenError,
    ServerError,
    StreamInterruptedError,
)

BreakerState = Literal["closed", "open", "half_open"]

# The errors that say "this target is unhealthy". Rate limits and caller errors do not.
UNHEALTHY: tuple[type[BaseException], ...] = (ServerError, APIConnectionError, StreamInterruptedError)


@dataclass(slots=True, frozen=True)
class BreakerConfig:
    """When a breaker opens and how it recovers."""

    failure_threshold: int = 5
    """Consecutive failures that open the breaker."""
    failure_rate: float = 0.5
    """Failure share over the window that opens it (with at least ``min_calls`` calls)."""
    window_s: float = 30.0
    min_calls: int = 20
    window_max_calls: int = 1000
    """The failure rate counts at most the last this-many calls of the window: a busy target's
    breaker keeps bounded memory and work, whatever its request rate."""
    cooldown_s: float = 15.0
    """How long an open breaker rejects before letting a probe through."""
    half_open_probes: int = 1
    enabled: bool = True


@dataclass(slots=True, frozen=True)
class BreakerSnapshot:
    """A breaker's state and counters, for health reports."""

    state: BreakerState
    consecutive_failures: int
    window_calls: int
    window_failures: int
    opened_count: int
    retry_in_s: float | None


class CircuitBreaker:
    """The breaker of one target (see the module docstring for the states)."""

    __slots__ = (
        "_clock", "_consecutive", "_in_flight_probes", "_opened_at", "_outcomes", "config", "name",
        "on_change", "opened_count", "state",
    )

    def __init__(
        self, name: str, config: BreakerConfig | None = None, *, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.state: BreakerState = "closed"
        self.opened_count = 0
        self.on_change = on_change
        self._clock = clock
        self._consecutive = 0
        self._opened_at = 0.0
        self._in_flight_probes = 0
        self._outcomes: deque[tuple[float, bool]] = deque(
            maxlen=max(self.config.window_max_calls, self.config.min_calls))

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` if the call may not go through now."""
        if not self.config.enabled or self.state == "closed":
            return
        now = self._clock()
        if self.state == "open":
            retry_in = self._opened_at + self.config.cooldown_s - now
            if retry_in > 0:
                raise CircuitOpenError(
                    f"CircuitOpenError: {self.name} failed {self._consecutive} time(s) in a row and its breaker "
                    f"is open; not calling it for another {retry_in:.1f} s (another target of the route may answer)",
                    target=self.name, retry_in=retry_in,
                )
            self._transition("half_open")
        if self._in_flight_probes >= self.config.half_open_probes:
            raise CircuitOpenError(
                f"CircuitOpenError: {self.name} is being probed after failures; try again shortly",
                target=self.name, retry_in=0.0,
            )
        self._in_flight_probes += 1

    def record_success(self) -> None:
        self._consecutive = 0
        self._record(True)
        if self.state == "half_open":
            self._in_flight_probes = max(0, self._in_flight_probes - 1)
            self._outcomes.clear()  # a fresh start: old failures no longer describe the target
            self._transition("closed")

    def record_failure(self, error: BaseException | None = None) -> None:
        """Count a failure; ``error`` decides whether it says anything about the target's health."""
        if error is not None and not isinstance(error, UNHEALTHY):
            if self.state == "half_open":
                self._in_flight_probes = max(0, self._in_flight_probes - 1)
            return
        self._consecutive += 1
        self._record(False)
        if self.state == "half_open":
            self._in_flight_probes = max(0, self._in_flight_probes - 1)
            self._open()
        elif self.state == "closed" and self._should_open():
            self._open()

    def release(self) -> None:
        """A call that was let through ended without an outcome (cancelled): free its probe slot."""
        if self.state == "half_open":
            self._in_flight_probes = max(0, self._in_flight_probes - 1)

    def snapshot(self) -> BreakerSnapshot:
        self._trim(self._clock())
        failures = sum(1 for _, ok in self._outcomes if not ok)
        retry_in = None
        if self.state == "open":
            retry_in = max(0.0, self._opened_at + self.config.cooldown_s - self._clock())
        return BreakerSnapshot(
            self.state, self._consecutive, len(self._outcomes), failures, self.opened_count, retry_in
        )

    def _should_open(self) -> bool:
        config = self.config
        if not config.enabled:
            return False
        if self._consecutive >= config.failure_threshold:
            return True
        calls = len(self._outcomes)
        if calls < config.min_calls:
            return False
        failures = sum(1 for _, ok in self._outcomes if not ok)
        return failures / calls > config.failure_rate

    def _open(self) -> None:
        self._opened_at = self._clock()
        self.opened_count += 1
        self._transition("open")

    def _record(self, ok: bool) -> None:
        now = self._clock()
        self._outcomes.append((now, ok))
        self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self.config.window_s
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] < horizon:
            outcomes.popleft()

    def _transition(self, new_state: BreakerState) -> None:
        old_state, self.state = self.state, new_state
        if new_state != "half_open":
            self._in_flight_probes = 0
        if self.on_change is not None and old_state != new_state:
            self.on_change(self.name, old_state, new_state)
