"""The orchestrator: runs of several agents - strategies, workflows, run events, and their records.

:class:`Orchestrator` runs agents on a task under a strategy - :class:`Sequential`,
:class:`Parallel` (``concat``, ``vote``, ``judge``, ``first``), :class:`Adaptive` (a router and
conditions, :class:`Route`) or :class:`Loop` (generator and evaluator) - with per-agent timeouts,
retries inside the run's deadline, graceful degradation of parallel groups and run limits
(:class:`RunLimits`, :class:`StepPolicy`, :class:`RunOptions`), and returns a :class:`RunResult`.
Every run emits numbered :class:`RunEvent` s (through its :class:`RunHandle`) and hands its records
to a :class:`RunRecorder`. Workflows are YAML files (:func:`load_workflow` -> :class:`Workflow`);
route conditions are a small safe expression language (:class:`Condition`). This layer builds on
:mod:`agentadapter.agents` and :mod:`agentadapter.protocol`; the CLI and the service use it.
"""

from __future__ import annotations

from agentadapter.orchestrator.conditions import Condition
from agentadapter.orchestrator.errors import (
    AgentPausedError,
    AgentTimeoutError,
    ConditionError,
    OrchestratorError,
    QuorumLostError,
    RunLimitExceeded,
    StepFailedError,
    StrategyError,
    WorkflowError,
)
from agentadapter.orchestrator.events import EVENT_TYPES, EventLog, EventType, RunEvent
from agentadapter.orchestrator.options import RunLimits, RunOptions, StepPolicy
from agentadapter.orchestrator.orchestrator import Orchestrator, RunHandle
from agentadapter.orchestrator.recorder import InMemoryRunRecorder, RunRecorder
from agentadapter.orchestrator.result import AgentRunResult, RunResult, RunStatus
from agentadapter.orchestrator.strategies import (
    END,
    Adaptive,
    Loop,
    Parallel,
    Route,
    Sequential,
    Strategy,
    coerce_strategy,
)
from agentadapter.orchestrator.workflow import Workflow, WorkflowSpec, load_workflow, parse_workflow

__all__ = [
    "Adaptive",
    "AgentPausedError",
    "AgentRunResult",
    "AgentTimeoutError",
    "Condition",
    "ConditionError",
    "END",
    "EVENT_TYPES",
    "EventLog",
    "EventType",
    "InMemoryRunRecorder",
    "Loop",
    "Orchestrator",
    "OrchestratorError",
    "Parallel",
    "QuorumLostError",
    "Route",
    "RunEvent",
    "RunHandle",
    "RunLimitExceeded",
    "RunLimits",
    "RunOptions",
    "RunRecorder",
    "RunResult",
    "RunStatus",
    "Sequential",
    "StepFailedError",
    "StepPolicy",
    "Strategy",
    "StrategyError",
    "Workflow",
    "WorkflowError",
    "WorkflowSpec",
    "coerce_strategy",
    "load_workflow",
    "parse_workflow",
]
