"""Runs whose steps execute somewhere else: replay a run from recorded outcomes, execute one step on its own.

A run can be spread over processes - a queue's workers - with the seam of
:mod:`agentadapter.orchestrator.steps`, in two halves:

- :func:`replay` runs the strategy against the outcomes recorded so far, deterministically, and
  builds no agent (it needs the agents' names only). It returns a :class:`ReplayOutcome`: the run
  ended (completed, failed, cancelled: its result), or it is blocked on the steps listed in
  ``waiting`` - the steps the strategy asked for that have no outcome yet. "Blocked" is explicit:
  :class:`RecordedSteps` raises :class:`~agentadapter.orchestrator.steps.StepsPending` for each
  such step, and a parallel group raises it once all its branches have settled or are blocked, so
  a replay never waits on anything. Replaying again once those outcomes exist takes the same path
  (steps have the same keys) and goes further.
- :class:`StepRun` executes one requested step exactly as an inline run executes it - limits,
  the step span, streaming the agent into events, timeouts, retries inside the run's deadline,
  usage and cost, records, bus messages - and returns its
  :class:`~agentadapter.orchestrator.steps.StepOutcome`, to be recorded for the next replay.

An executor that waits for its queue instead (``run_step`` returns once the outcome exists) plugs
into :class:`~agentadapter.orchestrator.orchestrator.Orchestrator` directly (``step_executor=``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentInput
from agentadapter.observability.logging import get_logger
from agentadapter.orchestrator._run import RunEngine
from agentadapter.orchestrator._strategies import runner_for
from agentadapter.orchestrator.conditions import to_text
from agentadapter.orchestrator.errors import RunLimitExceeded, StepFailedError
from agentadapter.orchestrator.events import EventLog
from agentadapter.orchestrator.options import RunOptions
from agentadapter.orchestrator.pause import StepPaused, pause_details
from agentadapter.orchestrator.result import AgentRunResult, RunResult, error_info
from agentadapter.orchestrator.steps import StepOutcome, StepRequest, StepsPending
from agentadapter.orchestrator.strategies import Strategy, coerce_strategy
from agentadapter.protocol.context import InProcessSharedContext
from agentadapter.protocol.inprocess_bus import InProcessMessageBus
from agentadapter.protocol.protocol import CommunicationProtocol
from agentadapter.protocol.registry import InProcessAgentRegistry

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM
    from agentadapter.orchestrator.recorder import RunRecorder

__all__ = ["RecordedSteps", "ReplayOutcome", "StepRun", "replay"]

logger = get_logger("agentadapter.orchestrator")


def _local_protocol(run_id: str) -> CommunicationProtocol:
    return CommunicationProtocol(InProcessMessageBus(), InProcessAgentRegistry(), InProcessSharedContext(),
                                 run_id=run_id)


# -------------------------------------------------------------------------------------- replay


class RecordedSteps:
    """A step executor answering from recorded outcomes (by step key); a step without one is pending."""

    def __init__(self, recorded: Mapping[str, StepOutcome]) -> None:
        self.recorded = recorded

    async def run_step(self, request: StepRequest) -> StepOutcome:
        outcome = self.recorded.get(request.key)
        if outcome is None:
            raise StepsPending([request])
        return outcome


@dataclass(slots=True)
class ReplayOutcome:
    """Where a replayed run stands: ended (``result.status`` completed, failed or cancelled), or waiting."""

    result: RunResult
    """The run as the recorded steps make it: its steps, usage, cost and details; its output, text and
    error once it ended (a failed run's output is its last completed step's). ``running`` while it waits."""
    waiting: list[StepRequest] = field(default_factory=list)
    """The steps the run is blocked on, in the order the strategy asked for them (none once it ended)."""
    steps: int = 0
    """Steps the strategy has taken, the waiting ones included."""

    @property
    def finished(self) -> bool:
        return self.result.status in ("completed", "failed", "cancelled")


async def replay(
    *,
    run_id: str,
    task: AgentInput,
    agents: Sequence[str],
    strategy: Strategy | str,
    recorded: Mapping[str, StepOutcome],
    options: RunOptions | None = None,
    project_id: str | None = None,
    workflow: str | None = None,
) -> ReplayOutcome:
    """Run ``strategy`` over the agents named ``agents`` with each step's outcome taken from ``recorded``.

    Deterministic: the same outcomes give the same result and the same waiting steps. Builds no
    agent, runs no model, emits no event (the steps' executions did). A strategy that does not fit
    the agents raises StrategyError.
    """
    chosen = coerce_strategy(strategy)
    names = list(agents)
    chosen.check(names)
    engine = RunEngine(
        run_id=run_id, task=task, agents=names, strategy=chosen, options=options or RunOptions(), llm=None,
        protocol=_local_protocol(run_id), owns_protocol=False, recorder=None, log=EventLog(run_id, keep=False),
        project_id=project_id, workflow=workflow, executor=RecordedSteps(recorded),
    )
    result = engine.result
    result.status = "running"
    runner = runner_for(chosen)

    async def run() -> Any:
        return await runner(engine)

    # A task of its own: a recorded cancelled step raises CancelledError in the strategy, which must
    # end the replay as "cancelled", not cancel whoever awaits it.
    strategy_task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(run(), name=f"replay:{run_id}")
    try:
        await asyncio.wait({strategy_task})
    except asyncio.CancelledError:
        strategy_task.cancel()
        await asyncio.wait({strategy_task})
        raise
    waiting: list[StepRequest] = []
    if strategy_task.cancelled():
        result.status = "cancelled"
        result.error = {"type": "Cancelled", "message": engine.cancelled_step or "a step was cancelled"}
    elif isinstance(error := strategy_task.exception(), StepsPending):
        waiting = list({r.key: r for r in error.requests}.values())  # a key once, in the order asked
    elif isinstance(error, StepPaused):  # a step waits for a human: so does the run
        result.status = "paused"
        result.details["paused"] = pause_details(error, result.agents, 0)
    elif error is not None:
        result.status = "failed"
        result.error = error_info(error)
        result.output, result.text = engine.partial_output()
    else:
        result.status = "completed"
        result.output = strategy_task.result()
        result.text = to_text(result.output)
    result.usage, result.cost_usd = engine.usage, engine.cost_usd
    return ReplayOutcome(result, waiting, engine.steps)


# ------------------------------------------------------------------------------------ one step


class StepRun:
    """One requested step of a run, executed on its own as an inline run executes it.

    The run's context comes in whole: its task, agents (built for this step), strategy and options
    (the limits apply: step ``request.step`` of a run that had spent ``request.cost_usd``), the
    facade its model calls go through, the protocol its agents message on (started and closed
    here), the event log its events go to and the recorder its records go to. ``remaining_s`` is
    what is left of the run's deadline. :meth:`cancel` stops the step (recorded as cancelled).
    With ``can_pause`` an agent that pauses for approval ends the step ``paused`` (its outcome keeps
    the pending calls and the agent's state; replaying it pauses the run), else the step fails.
    ``options.resume`` continues a paused step with its decisions.
    """

    def __init__(
        self,
        request: StepRequest,
        *,
        run_id: str,
        task: AgentInput,
        agents: Mapping[str, BaseAgent],
        strategy: Strategy | str,
        options: RunOptions | None = None,
        llm: LLM | None = None,
        protocol: CommunicationProtocol | None = None,
        log: EventLog | None = None,
        recorder: RunRecorder | None = None,
        remaining_s: float | None = None,
        project_id: str | None = None,
        workflow: str | None = None,
        can_pause: bool = False,
    ) -> None:
        self.request = request
        self.remaining_s = remaining_s
        self.log = log if log is not None else EventLog(run_id, keep=False)
        self._engine = RunEngine(
            run_id=run_id, task=task, agents=agents, strategy=coerce_strategy(strategy),
            options=options or RunOptions(), llm=llm,
            protocol=protocol if protocol is not None else _local_protocol(run_id), owns_protocol=True,
            recorder=recorder, log=self.log, project_id=project_id, workflow=workflow,
        )
        # A pause for approval fails the step unless the caller can keep the paused run (can_pause).
        self._engine.can_pause = can_pause
        # The run so far, as far as the step's limits go: its step count and what it spent.
        self._engine.steps = request.step - 1
        self._engine.cost_usd = request.cost_usd
        if remaining_s is not None:
            self._engine.deadline = time.monotonic() + remaining_s
        self._work: asyncio.Task[AgentRunResult] | None = None

    def cancel(self, reason: str) -> None:
        """Stop the step: its agent is cancelled (or never starts) and the outcome is ``cancelled``."""
        engine = self._engine
        if not engine.cancel_requested:
            engine.cancel_requested, engine.cancel_reason = True, reason
        if self._work is not None:
            self._work.cancel()

    def _cancelled(self, message: str) -> StepOutcome:
        return StepOutcome("cancelled", self._last_record(), error={"type": "Cancelled", "message": message})

    def _last_record(self) -> AgentRunResult | None:
        agents = self._engine.result.agents
        return agents[-1] if agents else None

    async def execute(self) -> StepOutcome:
        """Run the step; its outcome however it ended. Cancelling the caller cancels the step and re-raises."""
        engine, request = self._engine, self.request
        if engine.cancel_requested:
            return StepOutcome("cancelled", error={"type": "Cancelled", "message": engine.cancel_reason})

        async def under_deadline() -> AgentRunResult:
            async with asyncio.timeout(self.remaining_s):
                return await engine.step(request.name, request.input, request.history, phase=request.phase,
                                         via=request.via)

        work = self._work = asyncio.get_running_loop().create_task(under_deadline())
        try:
            await engine.protocol.start()
            record = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller itself is being cancelled (a worker stopping): not the step's outcome
            return self._cancelled(engine.cancel_reason or "the run's deadline (limits.timeout_s) passed")
        except TimeoutError:
            return self._cancelled("the run's deadline (limits.timeout_s) passed")
        except StepFailedError as exc:
            return StepOutcome("failed", self._last_record(), error=error_info(exc.error))
        except RunLimitExceeded as exc:
            return StepOutcome("failed", self._last_record(), error=error_info(exc),
                               limit={"limit": exc.limit, "value": exc.value, "used": exc.used})
        except StepPaused as paused:
            return StepOutcome("paused", paused.record or self._last_record(), paused=paused.to_dict())
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
            try:
                await engine.protocol.close()
            except Exception:  # the step's outcome stands; a bus that will not close is only logged
                logger.warning("closing the protocol of step %s of run %s failed", request.key, engine.run_id,
                               exc_info=True)
        return StepOutcome("completed", record, text=record.text)
