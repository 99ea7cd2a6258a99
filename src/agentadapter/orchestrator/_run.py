"""The run engine: one run's state, and the agent step every strategy is built from.

:class:`RunEngine` holds what one run has: its agents, options, protocol, event log, recorder,
totals and the result being built. :meth:`RunEngine.step` runs one agent once - the unit every
strategy composes - and does everything around it: checks the run limits, opens the step span,
streams the agent (its tokens, tool calls, handoffs become run events), times each attempt out,
retries retryable failures with back-off inside the run's deadline, charges usage and cost (a failed
attempt's too), records the step, and collects the messages agents sent on the run's bus. Given a
:class:`~agentadapter.orchestrator.steps.StepExecutor`, the engine hands each step's request to it
instead and settles the outcome it returns (:meth:`RunEngine.settle`) as if it had run the step.
:meth:`RunEngine.execute` runs a strategy under the run's deadline and turns however it ends -
completed, failed, cancelled - into the final ``RunResult``. Private: the public surface is
:class:`~agentadapter.orchestrator.orchestrator.Orchestrator` and
:mod:`agentadapter.orchestrator.execution`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentInput, input_text
from agentadapter.agents.events import (
    GuardrailEvent,
    HandoffEvent,
    NestedRunEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agentadapter.agents.result import AgentResult
from agentadapter.agents.run_config import RunConfig, RunResources
from agentadapter.llm.errors import AgentAdapterError, BudgetExceededError
from agentadapter.llm.messages import Message, TextPart, Usage, coerce_messages
from agentadapter.observability.logging import get_logger
from agentadapter.orchestrator import telemetry
from agentadapter.orchestrator.conditions import to_text
from agentadapter.orchestrator.errors import (
    AgentPausedError,
    AgentTimeoutError,
    RunLimitExceeded,
    StepFailedError,
)
from agentadapter.orchestrator.events import EventLog, EventType
from agentadapter.orchestrator.options import RunOptions, StepPolicy
from agentadapter.orchestrator.pause import RunResume, StepPaused, pause_details
from agentadapter.orchestrator.result import AgentRunResult, RunResult, error_info, jsonable
from agentadapter.orchestrator.steps import StepExecutor, StepOutcome, StepRequest
from agentadapter.orchestrator.strategies import DEFAULT_ROUTED_STEPS, Strategy

if TYPE_CHECKING:
    from agentadapter.agents.events import AgentStream
    from agentadapter.llm.client import LLM
    from agentadapter.orchestrator.recorder import RunRecorder
    from agentadapter.protocol.envelope import Envelope
    from agentadapter.protocol.protocol import CommunicationProtocol

__all__ = ["RunEngine", "StrategyRunner"]

# get_logger: the redacting filter, so an unexpected error that quotes a key is masked in the log too.
logger = get_logger("agentadapter.orchestrator")

StrategyRunner = Callable[["RunEngine"], Awaitable[Any]]
"""Runs a strategy on an engine and returns the run's output (the engine holds everything else)."""


def _message_name(agent: str) -> str:
    # OpenAI accepts only these characters in a message's name.
    return re.sub(r"[^A-Za-z0-9_-]+", "_", agent)[:64] or "agent"


def agent_message(agent: str, text: str) -> Message:
    """An agent's output as the next message of the run's conversation."""
    return Message("user", [TextPart(text)], name=_message_name(agent))


class RunEngine:
    """One run: its agents, limits, totals, events and records, and the step strategies use."""

    def __init__(
        self,
        *,
        run_id: str,
        task: AgentInput,
        agents: Mapping[str, BaseAgent] | Sequence[str],
        strategy: Strategy,
        options: RunOptions,
        llm: LLM | None,
        protocol: CommunicationProtocol,
        owns_protocol: bool,
        recorder: RunRecorder | None,
        log: EventLog,
        project_id: str | None = None,
        workflow: str | None = None,
        executor: StepExecutor | None = None,
    ) -> None:
        self.run_id = run_id
        # Names alone are enough when an executor runs every step (a replay builds no agent).
        self.agents: dict[str, BaseAgent] = dict(agents) if isinstance(agents, Mapping) else {}
        self.order = list(agents)
        self.executor = executor
        self.strategy = strategy
        self.options = options
        self.llm = llm
        self.protocol = protocol
        self.owns_protocol = owns_protocol
        self.recorder = recorder
        self.log = log
        self.task_messages = coerce_messages(task)
        self.task_text = input_text(self.task_messages) or to_text(self.task_messages[-1].text)
        limits = options.limits
        self.max_steps = limits.max_steps
        if self.max_steps is None and strategy.name in ("adaptive", "loop"):
            iterations = getattr(strategy, "max_iterations", 0)
            self.max_steps = max(DEFAULT_ROUTED_STEPS, 2 * iterations)
        self.max_cost_usd = limits.max_cost_usd
        self.deadline: float | None = None
        self.usage = Usage()
        self.cost_usd = 0.0
        self.steps = 0
        self.outputs: dict[str, Any] = {}
        """The last output of each agent, by name (what conditions read as ``outputs``)."""
        self.cancel_requested = False
        self.cancel_reason = ""
        self.cancelled_step = ""
        """Why the last step an executor reported cancelled was (what a replay that ends cancelled says)."""
        self.task_reasons: dict[asyncio.Task[Any], str] = {}
        """Why a step's task was cancelled, set by whoever cancels it (a parallel group's decision)."""
        self.result = RunResult(
            run_id, status="queued", strategy=strategy.describe(), workflow=workflow, project_id=project_id,
            input=self.task_text,
        )
        self._config = RunConfig(llm=llm, run_id=run_id, protocol=protocol, tracing=options.tracing)
        self._message_cursor = 0.0
        self._messages_seen: set[str] = set()
        self._message_lock = asyncio.Lock()
        self._recorder_failed = False
        self.resume = options.resume
        self.paused: StepPaused | None = None
        """The pause this run continues from (None: a fresh run)."""
        self.can_pause = True
        """False where nobody could resume the run (a step executed on its own): a pause fails the step."""

    # ------------------------------------------------------------------------------- the run

    async def execute(self, runner: StrategyRunner) -> RunResult:
        """Run the strategy under the run's deadline; return the final result, however the run ended."""
        result = self.result
        started = time.perf_counter()
        result.started_at = time.time()
        result.status = "running"
        # Shared by this run's steps (MCP connections), closed in _finish; a step run on its own has none.
        self._config = dataclasses.replace(self._config, resources=RunResources())
        timeout_s = self.options.limits.timeout_s
        if timeout_s is not None:
            self.deadline = time.monotonic() + timeout_s
        span = telemetry.run_span(result.strategy, result.workflow, len(self.agents), trace_id=self.run_id,
                                  enabled=self.options.tracing)
        span.start()
        cancelled_from_outside = False
        try:
            if self.cancel_requested:
                raise asyncio.CancelledError  # cancelled before it started
            await self._save_run()
            if self.resume is None:
                await self.emit("run_started", None, {
                    "strategy": result.strategy, "agents": self.order, "input": self.task_text,
                    "workflow": result.workflow, "project_id": result.project_id,
                })
            else:
                await self.emit("run_resumed", None, {
                    "step_key": self.resume.step_key, "approvals": dict(self.resume.approvals),
                    "reasons": dict(self.resume.reasons),
                })
            await self.protocol.start()
            try:
                async with asyncio.timeout(timeout_s):
                    output = await runner(self)
            except TimeoutError as exc:
                if not self._deadline_passed():
                    raise
                raise RunLimitExceeded(
                    f"run {self.run_id} did not finish within its {timeout_s:g} s deadline (limits.timeout_s) "
                    f"after {self.steps} step(s); raise the limit or give the agents less to do",
                    limit="timeout_s", value=float(timeout_s or 0), used=timeout_s or 0,
                ) from exc
            result.output = output
            result.text = to_text(output)
            result.status = "completed"
        except asyncio.CancelledError:
            result.status = "cancelled"
            result.error = {"type": "Cancelled", "message": self.cancel_reason or "the run was cancelled"}
            task = asyncio.current_task()
            if self.cancel_requested and task is not None:
                task.uncancel()  # a cancel we asked for ends the run; anyone else's propagates
            else:
                cancelled_from_outside = True
        except StepPaused as paused:
            # Not a failure: the run waits for a human's decision; its state goes into details["paused"].
            result.status = "paused"
            self.paused = paused
        except Exception as error:
            result.status = "failed"
            result.error = error_info(error)
            if result.output is None:
                result.output, result.text = self.partial_output()
            if not isinstance(error, AgentAdapterError):
                logger.exception("run %s failed with an unexpected error", self.run_id)
        finally:
            await self._finish(started, span)
        if cancelled_from_outside:
            raise asyncio.CancelledError
        return result

    async def _finish(self, started: float, span: Any) -> None:
        result = self.result
        with contextlib.suppress(Exception):
            await self.collect_messages()
        if self._config.resources is not None:
            await self._config.resources.aclose()
        if self.owns_protocol:
            try:
                await self.protocol.close()
            except Exception:
                logger.warning("closing the protocol of run %s failed", self.run_id, exc_info=True)
        result.usage, result.cost_usd = self.usage, self.cost_usd
        result.finished_at = time.time()
        result.duration_ms = (time.perf_counter() - started) * 1000.0
        if span.recording:
            span.data.status, span.data.steps, span.data.cost_usd = result.status, self.steps, self.cost_usd
            if result.error is not None:
                span.set_error(result.error["message"])
        span.end()
        telemetry.record_run(self.strategy.name, result.status, result.duration_ms / 1000.0)
        if result.status == "paused" and self.paused is not None:
            await self.emit("run_paused", self.paused.agent, {
                "pending": list(self.paused.pending), "usage": self.usage.to_dict(), "cost_usd": self.cost_usd,
            })
            result.details["paused"] = pause_details(self.paused, result.agents, self.log.last_seq)
            await self._save_run()
            self.log.close()
            return
        await self.emit("run_finished", None, {
            "status": result.status, "output": jsonable(result.output), "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd, "duration_ms": round(result.duration_ms, 3), "error": result.error,
        })
        await self._save_run()
        self.log.close()

    def partial_output(self) -> tuple[Any, str]:
        """A failed run's best answer so far: the last completed step's output."""
        for record in reversed(self.result.agents):
            if record.status == "completed":
                return record.output, record.text
        return None, ""

    # ------------------------------------------------------------------------------ limits

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _deadline_passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - 1e-3

    def over_budget(self) -> bool:
        return self.max_cost_usd is not None and self.cost_usd > self.max_cost_usd

    def budget_error(self) -> RunLimitExceeded:
        cap = self.max_cost_usd or 0.0
        return RunLimitExceeded(
            f"run {self.run_id} has spent ${self.cost_usd:.6f} of its ${cap:.6f} cap (limits.max_cost_usd) after "
            f"{self.steps} step(s); raise the cap or use cheaper models",
            limit="max_cost_usd", value=cap, used=self.cost_usd,
        )

    def check_limits(self) -> None:
        """Before a step: refuse it if the run is out of steps or money."""
        if self.max_steps is not None and self.steps >= self.max_steps:
            raise RunLimitExceeded(
                f"run {self.run_id} used all {self.max_steps} of its steps (limits.max_steps) without finishing; "
                "raise the limit, or check the routes for a cycle that never ends",
                limit="max_steps", value=self.max_steps, used=self.steps,
            )
        if self.max_cost_usd is not None and self.cost_usd >= self.max_cost_usd:
            raise self.budget_error()

    def _step_config(self) -> RunConfig:
        if self.max_cost_usd is None:
            return self._config
        # Each agent may spend what the run has left; its own loop checks that before each model call.
        return dataclasses.replace(self._config, max_cost_usd=max(self.max_cost_usd - self.cost_usd, 1e-12))

    # ------------------------------------------------------------------------------- a step

    async def step(
        self, name: str, input: AgentInput, history: Sequence[Message] = (), *, phase: str = "run",
        via: str | None = None,
    ) -> AgentRunResult:
        """Run agent ``name`` once (retries included) and return its record.

        Raises StepFailedError when every attempt failed, RunLimitExceeded when the run may not take
        another step, and CancelledError (after recording the step as cancelled) when cancelled.
        """
        self.check_limits()
        self.steps += 1
        resume = self.resume
        if resume is not None:
            key = f"{self.steps}:{phase}:{name}"
            if key in resume.outcomes:  # completed before the pause: the strategy takes the same path
                request = StepRequest(name, self.steps, phase, input, tuple(history), via, self.cost_usd)
                return self.settle(request, resume.outcomes[key])
            if key == resume.step_key:
                return await self._resumed_step(name)
        if self.executor is not None:
            request = StepRequest(name, self.steps, phase, input, tuple(history), via, self.cost_usd)
            return self.settle(request, await self.executor.run_step(request))
        agent = self.agents[name]
        record = AgentRunResult(name, self.steps, phase, input=_input_text(input), started_at=time.time())
        self.result.agents.append(record)
        policy = self.options.policy_for(name)
        span = telemetry.step_span(name, record.step, phase, trace_id=self.run_id, enabled=self.options.tracing)
        span.start()
        started = time.perf_counter()
        try:
            await self._save_agent_run(record)
            return await self._attempts(agent, record, input, list(history), policy, via, started)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            reason = (self.task_reasons.pop(task, "") if task is not None else "") or self.cancel_reason
            if not reason and self._deadline_passed():
                reason = "the run's deadline (limits.timeout_s) passed"
            record.status = "cancelled"
            record.error = {"type": "Cancelled", "message": reason or "cancelled"}
            self._close_record(record, started)
            await self.emit("agent_cancelled", name, {"step": record.step, "reason": record.error["message"]})
            await self._save_agent_run(record)
            raise
        finally:
            if record.finished_at is None:
                self._close_record(record, started)
            if span.recording:
                span.data.status, span.data.attempts = record.status, record.attempts
                if record.error is not None:
                    span.set_error(record.error["message"])
            span.end()
            telemetry.record_step(phase, record.status, record.duration_ms / 1000.0)
            await self.collect_messages()

    async def _resumed_step(self, name: str) -> AgentRunResult:
        """The step that paused, continued from its agent's state with the decisions given."""
        resume = self.resume
        assert resume is not None
        agent = self.agents[name]
        record = dataclasses.replace(resume.record, status="running", error=None, finished_at=None)
        self.result.agents.append(record)
        # What the step had spent before it paused is the run's too.
        self.usage = self.usage + record.usage
        self.cost_usd += record.cost_usd
        started = time.perf_counter()
        stream = _resume_stream(agent, resume, self._step_config(), self.options.deps)
        try:
            await self.emit("agent_started", name, {"step": record.step, "phase": record.phase,
                                                    "attempt": record.attempts, "resumed": True})
            result = await self._consume(stream)
        except asyncio.CancelledError:
            record.status = "cancelled"
            record.error = {"type": "Cancelled", "message": self.cancel_reason or "cancelled"}
            self._close_record(record, started)
            await self._save_agent_run(record)
            raise
        except Exception as raised:
            error = self._charge_failure(record, raised)
            self._close_record(record, started)
            if isinstance(raised, StepPaused):  # it asked for another approval
                raised.record = record
                await self._save_agent_run(record)
                raise
            return await self._fail(record, error)
        finally:
            await self.collect_messages()
        self._complete(record, result)
        self._close_record(record, started)
        await self.emit("agent_finished", name, {
            "step": record.step, "status": "completed", "output": jsonable(record.output),
            "usage": record.usage.to_dict(), "cost_usd": record.cost_usd, "duration_ms": round(record.duration_ms, 3),
        })
        await self._save_agent_run(record)
        return record

    def settle(self, request: StepRequest, outcome: StepOutcome) -> AgentRunResult:
        """Take the outcome of a step an executor ran into the run: record it, charge it, and return
        its record or raise what running it inline would have raised (StepFailedError,
        RunLimitExceeded, CancelledError)."""
        # A copy: the outcome stays as recorded (replaying it again gives the same run).
        record = dataclasses.replace(outcome.record) if outcome.record is not None else None
        if record is None:  # the step never started (its agent could not be built)
            record = AgentRunResult(request.name, request.step, request.phase,
                                    status="running" if outcome.status == "paused" else outcome.status,
                                    error=outcome.error)
            if outcome.status == "completed":
                record.status = "failed"
        record.name, record.step, record.phase = request.name, request.step, request.phase
        record.text = outcome.text or record.text
        self.result.agents.append(record)
        self.usage = self.usage + record.usage
        self.cost_usd += record.cost_usd
        if outcome.status == "completed" and outcome.record is not None:
            self.outputs[request.name] = record.output
            if record.answered_by:
                self.outputs[record.answered_by] = record.output
            return record
        error = outcome.error or {}
        message = str(error.get("message") or "the step failed")
        if outcome.status == "cancelled":
            self.cancelled_step = message
            raise asyncio.CancelledError(message)
        if outcome.status == "paused" and outcome.paused is not None:  # a queue worker's step waits for a human
            paused = StepPaused(f"agent {request.name!r} paused for human approval", agent=str(
                outcome.paused.get("agent") or request.name), pending=list(outcome.paused.get("pending") or []),
                state=dict(outcome.paused.get("state") or {}))
            paused.record = record
            raise paused
        if outcome.limit:
            limit = outcome.limit
            raise RunLimitExceeded(message, limit=limit["limit"], value=limit["value"], used=limit["used"])
        raise StepFailedError(
            f"agent {request.name!r} failed (step {request.step}, {record.attempts} attempt(s)): "
            f"{error.get('type') or 'Error'}: {message}",
            agent=request.name, error=RuntimeError(message),
        )

    async def _attempts(
        self, agent: BaseAgent, record: AgentRunResult, input: AgentInput, history: list[Message],
        policy: StepPolicy, via: str | None, started_at: float,
    ) -> AgentRunResult:
        name = record.name
        while True:
            record.attempts += 1
            started = {"step": record.step, "phase": record.phase, "attempt": record.attempts}
            if via:
                started["via"] = via
            await self.emit("agent_started", name, started)
            try:
                result = await self._attempt(agent, input, history, policy.timeout_s)
            except Exception as raised:
                error = self._charge_failure(record, raised)
                if isinstance(raised, StepPaused):  # waiting for a human is not a failure to retry
                    raised.record = record
                    self._close_record(record, started_at)
                    await self._save_agent_run(record)
                    raise
                delay = self._retry_delay(policy, record.attempts, error)
                if delay is None:
                    return await self._fail(record, error)
                telemetry.STEP_RETRIES.inc()
                await self.emit("agent_retried", name, {
                    "step": record.step, "attempt": record.attempts, "error": error_info(error),
                    "delay_s": round(delay, 3),
                })
                await asyncio.sleep(delay)
                continue
            self._complete(record, result)
            self._close_record(record, started_at)
            await self.emit("agent_finished", name, {
                "step": record.step, "status": "completed", "output": jsonable(record.output),
                "usage": record.usage.to_dict(), "cost_usd": record.cost_usd,
                "duration_ms": round(record.duration_ms, 3),
            })
            await self._save_agent_run(record)
            return record

    async def _attempt(
        self, agent: BaseAgent, input: AgentInput, history: list[Message], timeout_s: float | None
    ) -> AgentResult:
        stream = agent.run_stream(input, self._step_config(), deps=self.options.deps, history=history)
        if timeout_s is None:
            return await self._consume(stream)
        try:
            async with asyncio.timeout(timeout_s):
                return await self._consume(stream)
        except TimeoutError as exc:
            raise AgentTimeoutError(
                f"agent {agent.name!r} did not finish within its {timeout_s:g} s timeout and was cancelled; "
                "raise its timeout_s, or give it a faster model or a smaller task",
                provider="orchestrator", model=agent.name,
            ) from exc

    async def _consume(self, stream: AgentStream) -> AgentResult:
        """Run the agent through its event stream, turning its events into run events."""
        emit = self.log.emit
        async for event in stream:
            if isinstance(event, TextDeltaEvent):
                emit("token", event.agent, {"text": event.text})
            elif isinstance(event, ToolCallEvent):
                await self.emit("tool_call", event.agent, {
                    "call_id": event.call_id, "name": event.name, "arguments": jsonable(event.arguments),
                })
            elif isinstance(event, ToolResultEvent):
                await self.emit("tool_result", event.agent, {
                    "call_id": event.call_id, "name": event.name, "content": event.content,
                    "is_error": event.is_error,
                })
            elif isinstance(event, HandoffEvent):
                await self.emit("handoff", event.from_agent, {"from_agent": event.from_agent,
                                                               "to_agent": event.to_agent})
            elif isinstance(event, GuardrailEvent):
                await self.emit("guardrail", event.agent, {
                    "name": event.name, "kind": event.kind, "tripwire_triggered": event.tripwire_triggered,
                })
            elif isinstance(event, NestedRunEvent):
                nested = event.event
                if nested.get("type") == "token":  # streamed under the nested agent's path, never stored
                    emit("token", f"{event.agent}/{nested.get('agent')}", dict(nested.get("data") or {}))
                else:
                    await self.emit("nested", event.agent, {"workflow": event.workflow,
                                                            "run_id": nested.get("run_id"), "event": nested})
        result = stream.result
        assert result is not None
        if result.status == "paused":
            calls = ", ".join(f"{p.tool} ({p.call_id})" for p in result.pending_approvals)
            if self.can_pause and result.state is not None:
                raise StepPaused.of(result)
            raise AgentPausedError(
                f"agent {result.agent!r} paused for human approval of {calls}; a step executed on "
                "its own (a queue worker) cannot pause: run it inline, or drop needs_approval for these tools"
            )
        return result

    def _complete(self, record: AgentRunResult, result: AgentResult) -> None:
        record.status = "completed"
        record.output = result.output
        record.text = result.text or to_text(result.output)
        record.usage = record.usage + result.usage
        record.cost_usd += result.cost_usd
        record.model = result.model
        if result.agent and result.agent != record.name:
            record.answered_by = result.agent
        record.error = None
        self.usage = self.usage + result.usage
        self.cost_usd += result.cost_usd
        self.outputs[record.name] = result.output
        if record.answered_by:
            self.outputs[record.answered_by] = result.output

    def _charge_failure(self, record: AgentRunResult, raised: Exception) -> Exception:
        """Count a failed attempt's usage (errors carry the run so far) and name the error precisely."""
        partial = getattr(raised, "result", None)
        if isinstance(partial, AgentResult):
            record.usage = record.usage + partial.usage
            record.cost_usd += partial.cost_usd
            self.usage = self.usage + partial.usage
            self.cost_usd += partial.cost_usd
        if isinstance(raised, BudgetExceededError) and self.max_cost_usd is not None \
                and (raised.scope or "").startswith("run:"):
            return self.budget_error()
        return raised

    def _retry_delay(self, policy: StepPolicy, attempts: int, error: Exception) -> float | None:
        """Seconds to wait before another attempt, or None when there is none to make."""
        if attempts > policy.max_retries or not policy.retryable(error) or isinstance(error, RunLimitExceeded):
            return None
        delay = policy.delay(attempts - 1)
        remaining = self.remaining_s()
        if remaining is not None and delay >= remaining:
            return None  # the wait would cross the run's deadline: the last error is the answer
        return delay

    async def _fail(self, record: AgentRunResult, error: Exception) -> AgentRunResult:
        record.status = "failed"
        record.error = error_info(error)
        await self.emit("agent_failed", record.name, {
            "step": record.step, "error": record.error, "attempts": record.attempts,
        })
        await self._save_agent_run(record)
        if isinstance(error, RunLimitExceeded):
            raise error
        raise StepFailedError(
            f"agent {record.name!r} failed (step {record.step}, {record.attempts} attempt(s)): "
            f"{type(error).__name__}: {error}",
            agent=record.name, error=error,
        ) from error

    @staticmethod
    def _close_record(record: AgentRunResult, started: float) -> None:
        record.finished_at = time.time()
        record.duration_ms = (time.perf_counter() - started) * 1000.0

    # ------------------------------------------------------------------------- events, records

    async def emit(self, type: EventType, agent: str | None, data: dict[str, Any]) -> None:
        event = self.log.emit(type, agent, data)
        if self.recorder is not None:
            await self._recorded(self.recorder.save_event(event))

    async def _save_run(self) -> None:
        if self.recorder is not None:
            await self._recorded(self.recorder.save_run(self.result))

    async def _save_agent_run(self, record: AgentRunResult) -> None:
        if self.recorder is not None:
            await self._recorded(self.recorder.save_agent_run(self.run_id, record))

    async def _recorded(self, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:
            if not self._recorder_failed:
                logger.exception("the run recorder failed for run %s; the run goes on without it", self.run_id)
            self._recorder_failed = True

    async def collect_messages(self) -> None:
        """Turn messages agents sent on the run's bus since the last call into events and records."""
        async with self._message_lock:
            envelopes = await self.protocol.history(since=self._message_cursor or None, limit=100_000)
            fresh: list[Envelope] = [e for e in envelopes if e.id not in self._messages_seen]
            if not fresh:
                return
            newest = max(e.created_at for e in fresh)
            if newest > self._message_cursor:
                # Only ids at the cursor's instant are needed to skip repeats next time.
                self._messages_seen = {e.id for e in envelopes if e.created_at >= newest}
                self._message_cursor = newest
            else:
                self._messages_seen.update(e.id for e in fresh)
            for envelope in fresh:
                await self.emit("message", envelope.sender, {
                    "id": envelope.id, "type": str(envelope.type), "sender": envelope.sender,
                    "recipient": envelope.recipient, "topic": envelope.topic,
                    "payload": jsonable(envelope.payload), "correlation_id": envelope.correlation_id,
                })
                if self.recorder is not None:
                    await self._recorded(self.recorder.save_message(self.run_id, envelope))


def _resume_stream(agent: BaseAgent, resume: RunResume, config: RunConfig, deps: Any) -> AgentStream:
    resume_stream = getattr(agent, "resume_stream", None)
    if resume_stream is None:
        raise AgentPausedError(f"agent {agent.name!r} cannot resume a paused run (it is not an LLMAgent)")
    stream: AgentStream = resume_stream(resume.state, resume.approvals, config, deps=deps, reasons=resume.reasons)
    return stream


def _input_text(value: AgentInput) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Message):
        return value.text
    return input_text(coerce_messages(value))

