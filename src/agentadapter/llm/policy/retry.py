"""The retry policy: the official OpenAI and Anthropic SDKs' defaults, which users already trust.

Retry 408, 409, 429, >= 500, connection errors and timeouts (each error class says whether it is
``retryable``; an ``x-should-retry`` header overrides that). Honour ``retry-after-ms`` /
``retry-after`` up to a cap, else back off ``min(0.5 * 2**n, 8) * (1 - 0.25 * random)``. Two retries
by default. Never retry once a stream has emitted content to the caller (the facade enforces that by
retrying only before the first event), and never past the request's deadline: a wait that would
cross it is not started, and once it has passed no try is started either (:func:`deadline_error`
is what the caller gets then).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from agentadapter.llm.errors import AgentAdapterError, APITimeoutError, RateLimitError, parse_retry_after

T = TypeVar("T")


class Deadlined(Protocol):
    """A call with one deadline (a chat :class:`~agentadapter.llm.messages.Request`, an embedding request)."""

    model: str
    timeout: float | None
    deadline: float | None


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed call."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    """A server's ``retry-after`` longer than this is not waited for: the error is raised instead."""
    jitter: float = 0.25

    def should_retry(self, error: BaseException, retries_done: int) -> bool:
        if retries_done >= self.max_retries:
            return False
        if not isinstance(error, AgentAdapterError) or not error.retryable:
            return False
        retry_after = getattr(error, "retry_after", None)
        return not (retry_after is not None and retry_after > self.max_retry_after)

    def delay(self, error: BaseException, retries_done: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        if retry_after is None:
            headers = getattr(error, "headers", None)
            if headers:
                retry_after = parse_retry_after(headers)
        if retry_after is not None and 0 <= retry_after <= self.max_retry_after:
            return retry_after
        backoff = min(self.initial_delay * 2.0**retries_done, self.max_delay)
        return backoff * (1.0 - self.jitter * rand())


NO_RETRY = RetryPolicy(max_retries=0)


MIN_TIME_LEFT = 0.005
"""Seconds: a try with less than this left of its deadline is not started. It could not finish a
round trip; it would only add a request the server has to handle (and timers fire a hair early)."""


def deadline_passed(request: Deadlined) -> bool:
    """Whether the request has a deadline and (all but :data:`MIN_TIME_LEFT` of) it has passed."""
    return request.deadline is not None and time.monotonic() >= request.deadline - MIN_TIME_LEFT


def deadline_error(request: Deadlined, *, before: str, provider: str | None = None) -> APITimeoutError:
    """The error for a call whose deadline passed ``before`` something could start.

    Not retryable: nothing retried under the same deadline could run.
    """
    limit = f"timeout={request.timeout:g}s" if request.timeout is not None else "its deadline"
    return APITimeoutError(
        f"APITimeoutError: the call's deadline ({limit}) passed before {before} (model {request.model}); "
        "raise timeout= on the call, or shorten the backends' timeout: so a stalled target gives up sooner",
        provider=provider,
        model=request.model,
        retryable=False,
    )


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[T, int]:
    """Run ``call`` under ``policy``; returns (result, retries used). Raises the last error."""
    retries = 0
    while True:
        try:
            return await call(), retries
        except AgentAdapterError as error:
            if not policy.should_retry(error, retries):
                raise
            wait = policy.delay(error, retries)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise  # waiting would cross the deadline: the last error is the answer
            if on_retry is not None:
                on_retry(error, retries + 1, wait)
            await sleep(wait)
            retries += 1
