"""The orchestrator: runs of several agents - strategies, workflows, run events, and their records.

:class:`Orchestrator` runs agents on a task under a strategy - :class:`Sequential`,
:class:`Parallel` (``concat``, ``vote``, ``judge``, ``first``), :class:`Adaptive` (a router and
conditions, :class:`Route`) or :class:`Loop` (generator and evaluator) - with per-agent timeouts,
retries inside the run's deadline, graceful degradation of parallel groups and run limits
(:class:`RunLimits`, :class:`StepPolicy`, :class:`RunOptions`), and returns a :class:`RunResult`.
Every run emits numbered :class:`RunEvent` s (through its :class:`RunHandle`) and hands its records
to a :class:`RunRecorder`. Workflows are YAML files (:func:`load_workflow` -> :class:`Workflow`);
route conditions are a small safe expression language (:class:`Condition`). Steps can run apart
from their run: a :class:`StepExecutor` (``Orchestrator(step_executor=...)``) gets each step's
:class:`StepRequest` and answers its :class:`StepOutcome`; :func:`replay` runs a strategy against
recorded outcomes and says whether the run ended or which steps it waits on; :class:`StepRun`
executes one requested step. This layer builds on
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
from agentadapter.orchestrator.execution import RecordedSteps, ReplayOutcome, StepRun, replay
from agentadapter.orchestrator.nested import NestedRunFailed, WorkflowAgent, workflow_tool
from agentadapter.orchestrator.options import RunLimits, RunOptions, StepPolicy
from agentadapter.orchestrator.orchestrator import Orchestrator, RunHandle
from agentadapter.orchestrator.pause import RunResume, StepPaused
from agentadapter.orchestrator.recorder import InMemoryRunRecorder, RunRecorder
from agentadapter.orchestrator.result import AgentRunResult, RunResult, RunStatus, jsonable
from agentadapter.orchestrator.steps import StepExecutor, StepOutcome, StepRequest, StepsPending
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
    "NestedRunFailed",
    "Orchestrator",
    "OrchestratorError",
    "Parallel",
    "QuorumLostError",
    "RecordedSteps",
    "ReplayOutcome",
    "Route",
    "RunEvent",
    "RunHandle",
    "RunLimitExceeded",
    "RunLimits",
    "RunOptions",
    "RunRecorder",
    "RunResult",
    "RunResume",
    "RunStatus",
    "Sequential",
    "StepExecutor",
    "StepFailedError",
    "StepOutcome",
    "StepPaused",
    "StepPolicy",
    "StepRequest",
    "StepRun",
    "StepsPending",
    "Strategy",
    "StrategyError",
    "Workflow",
    "WorkflowAgent",
    "WorkflowError",
    "WorkflowSpec",
    "coerce_strategy",
    "jsonable",
    "load_workflow",
    "parse_workflow",
    "replay",
    "workflow_tool",
]
