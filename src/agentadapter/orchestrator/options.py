"""How a run goes: its limits (:class:`RunLimits`), how each agent step is timed and retried
(:class:`StepPolicy`), and the settings object that holds both (:class:`RunOptions`).

These are plain settings, separate from the strategy (what runs in which order) so that one
strategy can run under different budgets. A workflow file's ``limits:``, ``retry:``,
``agent_timeout_s`` and per-agent ``timeout_s`` / ``max_retries`` become a ``RunOptions``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agentadapter.llm.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.orchestrator.pause import RunResume

__all__ = ["RunLimits", "RunOptions", "StepPolicy"]


@dataclass(slots=True, frozen=True)
class RunLimits:
    """Limits of one whole run; None means no limit. A run that hits one ends with status ``failed``."""

    max_cost_usd: float | None = None
    """Cost cap. Agents get what is left as their own cap, checked before each model call; a parallel
    group stops as soon as a finished agent takes the run over it."""
    max_steps: int | None = None
    """Agent steps allowed (a retry is not a new step). Adaptive and loop runs default to 25."""
    timeout_s: float | None = None
    """Wall-clock deadline of the run: every running agent is cancelled when it passes, and a retry
    whose back-off would cross it is not attempted."""

    def __post_init__(self) -> None:
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            raise InvalidRequestError("RunLimits.max_cost_usd must be a positive number of USD (or None)")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidRequestError("RunLimits.max_steps must be at least 1 (or None)")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidRequestError("RunLimits.timeout_s must be a positive number of seconds (or None)")


@dataclass(slots=True, frozen=True)
class StepPolicy:
    """How one agent step is timed and retried."""

    timeout_s: float | None = None
    """Seconds one attempt may take before it is cancelled (``AgentTimeoutError``, retryable)."""
    max_retries: int = 1
    """Further attempts after a retryable failure: a timeout, or an error whose ``retryable`` is true
    (the adapter has already retried the model call itself by then)."""
    initial_delay_s: float = 0.5
    """Back-off before the first retry; it doubles for each further one."""
    max_delay_s: float = 8.0
    """Longest back-off."""
    jitter: float = 0.25
    """The back-off is shortened by up to this fraction, at random, so retries do not align."""

    def __post_init__(self) -> None:
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidRequestError("StepPolicy.timeout_s must be a positive number of seconds (or None)")
        if self.max_retries < 0:
            raise InvalidRequestError("StepPolicy.max_retries must be 0 or more")
        if self.initial_delay_s < 0 or self.max_delay_s < 0:
            raise InvalidRequestError("StepPolicy delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise InvalidRequestError("StepPolicy.jitter must be between 0 and 1")

    def retryable(self, error: BaseException) -> bool:
        """Timeouts and errors that say they are retryable (``error.retryable``)."""
        return isinstance(error, TimeoutError) or bool(getattr(error, "retryable", False))

    def delay(self, retries_done: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        backoff = min(self.initial_delay_s * 2.0**retries_done, self.max_delay_s)
        return backoff * (1.0 - self.jitter * rand())


@dataclass(slots=True, frozen=True)
class RunOptions:
    """Everything about how a run goes that is not its agents or its strategy."""

    limits: RunLimits = field(default_factory=RunLimits)
    step: StepPolicy = field(default_factory=StepPolicy)
    """Timeout and retries of every agent step."""
    agents: Mapping[str, StepPolicy] = field(default_factory=dict)
    """Per-agent overrides of ``step``, by agent name."""
    run_id: str | None = None
    """The run's id (a new one when None): the trace id and the protocol's namespace."""
    deps: Any = None
    """Handed to every agent's context as ``deps`` (a database handle, the current user, ...)."""
    tracing: bool = True
    """False keeps this run (and its agents) out of the trace processors."""
    keep_events: bool = True
    """Keep the run's events (tokens excepted) so that late subscribers get them replayed."""
    resume: RunResume | None = None
    """Continue a run paused for approval (:mod:`agentadapter.orchestrator.pause`) instead of starting one."""

    def policy_for(self, agent: str) -> StepPolicy:
        return self.agents.get(agent, self.step)

    def with_limits(self, **changes: Any) -> RunOptions:
        """A copy with some limits changed (``options.with_limits(max_steps=5)``)."""
        return replace(self, limits=replace(self.limits, **changes))
