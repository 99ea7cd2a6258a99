"""The orchestrator's errors, all under :class:`~agentadapter.AgentAdapterError`.

The whole tree is drawn once, in :mod:`agentadapter.errors`; this module's part of it::

    AgentAdapterError
    ├── ConfigurationError
    │   ├── WorkflowError            a workflow file or spec is invalid (names the YAML path and line)
    │   └── ConditionError           a route or loop condition does not compile or cannot be evaluated
    ├── InvalidRequestError
    │   └── StrategyError            a strategy names agents the run does not have, or is malformed
    ├── APIError > APIConnectionError > APITimeoutError
    │   └── AgentTimeoutError        one attempt of an agent step overran its timeout (retryable)
    └── OrchestratorError            a run could not finish
        ├── RunLimitExceeded         max_cost_usd, max_steps or timeout_s stopped the run (``limit``)
        ├── StepFailedError          an agent step failed after its retries (``agent``, ``error``)
        ├── QuorumLostError          too few agents of a parallel group succeeded
        └── AgentPausedError         an agent paused for human approval inside an orchestrated run

A failed run does not raise: :meth:`Orchestrator.run` returns a ``RunResult`` with status ``failed``
and the error in ``RunResult.error``. These classes are what that error records (``type``), and
what a strategy raises internally to stop a run.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from agentadapter.errors import AgentAdapterError, ConfigurationError, InvalidRequestError
from agentadapter.llm.errors import APITimeoutError

__all__ = [
    "AgentPausedError",
    "AgentTimeoutError",
    "ConditionError",
    "LimitName",
    "OrchestratorError",
    "QuorumLostError",
    "RunLimitExceeded",
    "StepFailedError",
    "StrategyError",
    "WorkflowError",
]

LimitName: TypeAlias = Literal["max_cost_usd", "max_steps", "timeout_s"]


class WorkflowError(ConfigurationError):
    """A workflow is invalid. ``source``, ``line`` and ``path`` say where, when known."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.path = path


class ConditionError(ConfigurationError):
    """A condition (``when:``, ``until:``) is not valid in the expression language, or failed to evaluate."""

    def __init__(self, message: str, *, expression: str = "") -> None:
        super().__init__(message)
        self.expression = expression


class StrategyError(InvalidRequestError):
    """A strategy does not fit the agents it was given (an unknown name, a missing judge, ...)."""


class AgentTimeoutError(APITimeoutError):
    """One attempt of an agent step ran longer than its timeout and was cancelled (retryable)."""


class OrchestratorError(AgentAdapterError):
    """A run could not finish."""


class RunLimitExceeded(OrchestratorError):
    """A run limit stopped the run: ``limit`` is ``max_cost_usd``, ``max_steps`` or ``timeout_s``."""

    def __init__(self, message: str, *, limit: LimitName, value: float, used: float) -> None:
        super().__init__(message)
        self.limit: LimitName = limit
        self.value = value
        self.used = used


class StepFailedError(OrchestratorError):
    """An agent step failed after its retries; ``error`` is the last attempt's exception."""

    def __init__(self, message: str, *, agent: str, error: BaseException) -> None:
        super().__init__(message)
        self.agent = agent
        self.error = error


class QuorumLostError(OrchestratorError):
    """Fewer agents of a parallel group succeeded (or still could) than its quorum needs."""

    def __init__(self, message: str, *, quorum: int, succeeded: int, failed: list[str]) -> None:
        super().__init__(message)
        self.quorum = quorum
        self.succeeded = succeeded
        self.failed = failed


class AgentPausedError(OrchestratorError):
    """An agent paused for human approval; orchestrated runs do not pause, so the step fails."""
