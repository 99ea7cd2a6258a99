"""How a worker drives a run and executes its steps, so that agents of one run spread over workers.

A run is driven by :func:`drive_run`: it replays the run's strategy - the orchestrator's own
``_strategies`` - on a :class:`ReplayEngine`, whose ``step`` does not run agents. Step ``n`` of
agent ``a`` in phase ``p`` has the key ``"n:p:a"`` (deterministic: replaying the same results
takes the same path). A step whose result is stored returns it at once; a step that is not is
noted, and the replay goes on until nothing more can move (every branch of a parallel group has
reached its step), then stops. Each noted step is inserted into ``run_steps`` (unique per run and
key) and, only by the drive whose insert created it, sent to the workers: a step is enqueued once.

:func:`execute_step` claims a step (a conditional update, under a lease it renews while it runs),
runs that one agent through the orchestrator's ``RunEngine.step`` (retries, timeouts, events),
stores the result, marks the step done - only if it is still running, so a duplicate does
nothing - and sends the drive again. Events get step-based sequence numbers (step ``n`` uses
``n * SEQ_BLOCK + i``), so a step executed again after its worker died writes the same numbers
and the database keeps one copy; agent runs get ids derived from the run and step key, so they
are upserted, not repeated. The run moves to ``running`` and to its end through conditional
updates: one ``run_started``, one ``run_finished``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentInput
from agentadapter.llm.messages import Message, Usage, coerce_messages
from agentadapter.orchestrator._run import RunEngine, _jsonable
from agentadapter.orchestrator._strategies import runner_for
from agentadapter.orchestrator.conditions import to_text
from agentadapter.orchestrator.errors import RunLimitExceeded, StepFailedError
from agentadapter.orchestrator.events import EventLog, EventType, RunEvent
from agentadapter.orchestrator.options import RunOptions
from agentadapter.orchestrator.result import AgentRunResult, error_info
from agentadapter.orchestrator.strategies import Strategy, coerce_strategy
from agentadapter.protocol.context import InProcessSharedContext
from agentadapter.protocol.inprocess_bus import InProcessMessageBus
from agentadapter.protocol.protocol import CommunicationProtocol
from agentadapter.protocol.registry import InProcessAgentRegistry
from agentadapter.store import steps as step_store
from agentadapter.store.models import TERMINAL_RUN_STATUSES, Run
from agentadapter.store.recorder import StoreRunRecorder

if TYPE_CHECKING:
    from agentadapter.store.database import Database
    from agentadapter.worker.app import WorkerRuntime
    from agentadapter.worker.channel import RunChannel

__all__ = ["SEQ_BLOCK", "drive_run", "execute_step", "step_key", "step_task_id"]

logger = logging.getLogger("agentadapter.worker")

SEQ_BLOCK = 100_000
"""Event numbers per step: step ``n``'s events are ``n * SEQ_BLOCK + 1, + 2, ...``."""
_QUIET_ROUNDS = 20


def _worker_id() -> str:
    """Host, the worker's main process (the pool's parent) and this pool process: who claimed a step."""
    return f"{socket.gethostname()}:{os.getppid()}:{os.getpid()}"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def step_key(step: int, phase: str, name: str) -> str:
    return f"{step}:{phase}:{name}"


# ------------------------------------------------------------------------------ the run's job


async def load_job(db: Database, runtime: WorkerRuntime, run: Run) -> tuple[dict[str, BaseAgent], Strategy, RunOptions]:
    """The run's agents, strategy and options, built from its stored agent or workflow (as the API did)."""
    from agentadapter.server.services.building import DefinitionBuilder, agent_defaults
    from agentadapter.store import agents as agent_store
    from agentadapter.store import users
    from agentadapter.store import workflows as workflow_store

    build = DefinitionBuilder.of(llm=runtime.llm, tools=runtime.tools, server=runtime.server)
    limits = dict(run.options) if run.options else None
    async with db.writer() as session:
        settings = await users.get_settings(session, run.tenant_id, run.created_by) if run.created_by else None
        defaults = agent_defaults(settings)
        if run.workflow_id is not None:
            row = await workflow_store.get_workflow(session, run.tenant_id, run.workflow_id)
            workflow, agents = await build.build_workflow(session, run.tenant_id, row, defaults)
            return agents, coerce_strategy(workflow.strategy), build.run_options(workflow.options, limits)
        if run.agent_id is None:
            raise RuntimeError(f"run {run.id} names neither an agent nor a workflow; it cannot be executed")
        definition = await agent_store.get_agent(session, run.tenant_id, run.agent_id)
        agent = await build.build_agent(session, run.tenant_id, definition, defaults)
        return {agent.name: agent}, coerce_strategy("sequential"), build.run_options(RunOptions(), limits)


def _protocol(run_id: str) -> CommunicationProtocol:
    # Each step's agents get a bus of their own: messages between agents of one step are kept.
    return CommunicationProtocol(InProcessMessageBus(), InProcessAgentRegistry(), InProcessSharedContext(),
                                 run_id=run_id)


def _dump_input(value: AgentInput) -> Any:
    if isinstance(value, str):
        return value
    return [m.to_dict() for m in coerce_messages(value)]


def _load_input(value: Any) -> AgentInput:
    return value if isinstance(value, str) else coerce_messages(value)


# ----------------------------------------------------------------------------- replay (drive)


class ReplayEngine(RunEngine):
    """A run engine whose steps return stored results, or note what must run next and wait."""

    def __init__(self, *, stored: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stored = stored
        self.wanted: dict[str, dict[str, Any]] = {}
        self.parked = 0
        self.progress = 0
        self.cancelled_step: str | None = None

    async def emit(self, type: EventType, agent: str | None, data: dict[str, Any]) -> None:
        return None  # the steps' own executions emitted their events

    async def step(self, name: str, input: AgentInput, history: Sequence[Message] = (), *, phase: str = "run",
                   via: str | None = None) -> AgentRunResult:
        self.progress += 1
        self.check_limits()
        self.steps += 1
        key = step_key(self.steps, phase, name)
        row = self.stored.get(key)
        if row is not None and row.status == "done" and row.result is not None:
            return self._replayed(key, name, self.steps, phase, row.result)
        if row is None:
            self.wanted[key] = {
                "name": name, "step": self.steps, "phase": phase, "via": via, "input": _dump_input(input),
                "history": [m.to_dict() for m in history], "cost_usd": self.cost_usd,
            }
        self.parked += 1
        # Wait for ever: the replay stops (and cancels this) once nothing else can move.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable: the future of a waiting step never completes")

    def _replayed(self, key: str, name: str, step: int, phase: str, result: Mapping[str, Any]) -> AgentRunResult:
        data = dict(result.get("record") or {})
        usage = {k: v for k, v in dict(data.get("usage") or {}).items() if k != "total_tokens"}
        record = AgentRunResult(
            name, step, phase, id=str(data.get("id") or uuid.uuid4().hex), status=data.get("status", "failed"),
            input=str(data.get("input") or ""), output=data.get("output"), text=str(result.get("text") or ""),
            error=data.get("error"), usage=Usage(**usage), cost_usd=float(data.get("cost_usd") or 0.0),
            attempts=int(data.get("attempts") or 0), started_at=float(data.get("started_at") or 0.0),
            finished_at=data.get("finished_at"), duration_ms=float(data.get("duration_ms") or 0.0),
            model=data.get("model"), answered_by=data.get("answered_by"),
        )
        self.result.agents.append(record)
        self.usage = self.usage + record.usage
        self.cost_usd += record.cost_usd
        status = result.get("status")
        if status == "completed":
            self.outputs[name] = record.output
            if record.answered_by:
                self.outputs[record.answered_by] = record.output
            return record
        error = dict(result.get("error") or {})
        message = str(error.get("message") or "the step failed")
        if status == "cancelled":
            self.cancelled_step = message
            raise asyncio.CancelledError(message)
        limit = result.get("limit")
        if limit:
            raise RunLimitExceeded(message, limit=limit["limit"], value=limit["value"], used=limit["used"])
        raise StepFailedError(
            f"agent {name!r} failed (step {step}, {record.attempts} attempt(s)): {error.get('type')}: {message}",
            agent=name, error=RuntimeError(message),
        )


async def _replay(engine: ReplayEngine, strategy: Strategy) -> tuple[str, Any]:
    """Run the strategy until it ends or waits on steps: ``("done", output)``, ``("error", exc)``,
    ``("cancelled", reason)`` or ``("waiting", None)``."""
    async def run() -> Any:
        return await runner_for(strategy)(engine)

    task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(run())
    quiet, seen = 0, -1
    while not task.done():
        await asyncio.sleep(0)
        marker = engine.progress * 1_000_003 + engine.parked
        quiet = quiet + 1 if marker == seen and engine.parked else 0
        seen = marker
        if quiet >= _QUIET_ROUNDS:
            break
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return "waiting", None
    if task.cancelled():
        return "cancelled", engine.cancelled_step or "a step was cancelled"
    error = task.exception()
    if error is not None:
        return "error", error
    return "done", task.result()


async def _record(session: Any, tenant_id: uuid.UUID, run_id: uuid.UUID, seq: int, type: EventType,
                  data: dict[str, Any]) -> RunEvent:
    """Persist a run-level event in the caller's transaction (with the status change it reports)."""
    event = RunEvent(seq, type, str(run_id), None, time.time(), data)
    await step_store.record_event_once(session, tenant_id, run_id, seq, type, None, event.ts, data)
    return event


async def drive_run(runtime: WorkerRuntime, run_id: uuid.UUID) -> None:
    """Advance the run as far as stored results allow: enqueue the next steps, or end it."""
    db = runtime.db
    async with db.session() as session:
        run = await session.get(Run, run_id)
        if run is None or run.status in TERMINAL_RUN_STATUSES:
            return
        session.expunge(run)
    reason = await runtime.channel.cancel_reason(run_id)
    if reason is not None:
        await _end(runtime, run, None, "cancelled", None, {"type": "Cancelled", "message": reason})
        return
    try:
        agents, strategy, options = await load_job(db, runtime, run)
    except Exception as exc:
        await _end(runtime, run, None, "failed", None, error_info(exc))
        return
    if options.limits.timeout_s is not None and run.started_at is not None \
            and time.time() - run.started_at.timestamp() > options.limits.timeout_s:
        await _end(runtime, run, None, "failed", None, {
            "type": "RunLimitExceeded", "message": f"run {run_id} did not finish within its "
            f"{options.limits.timeout_s:g} s deadline (limits.timeout_s); raise the limit or give the agents less "
            "to do"})
        return
    async with db.session() as session:
        stored = await step_store.load(session, run_id)
    engine = ReplayEngine(
        stored=stored, run_id=str(run_id), task=run.input, agents=agents, strategy=strategy,
        options=dataclasses.replace(options, run_id=str(run_id)), llm=None, protocol=_protocol(str(run_id)),
        owns_protocol=False, recorder=None, log=EventLog(str(run_id), keep=False), project_id=str(run.project_id),
        workflow=run.workflow_name,
    )
    if run.status == "queued":
        now = time.time()
        started: RunEvent | None = None
        async with db.writer() as session:
            if await step_store.begin_run(session, run_id, {"started_at": _utc(now),
                                                            "strategy": strategy.describe()}):
                started = await _record(session, run.tenant_id, run_id, 1, "run_started", {
                    "strategy": strategy.describe(), "agents": list(agents), "input": engine.task_text,
                    "workflow": run.workflow_name, "project_id": str(run.project_id)})
        if started is not None:
            run.started_at = _utc(now)
            await runtime.channel.publish(started)
    outcome, value = await _replay(engine, strategy)
    if outcome == "waiting":
        await _enqueue(runtime, run, engine.wanted)
    elif outcome == "done":
        await _end(runtime, run, engine, "completed", value, None)
    elif outcome == "cancelled":
        await _end(runtime, run, engine, "cancelled", None, {"type": "Cancelled", "message": str(value)})
    else:
        await _end(runtime, run, engine, "failed", None, error_info(value))


async def _enqueue(runtime: WorkerRuntime, run: Run, wanted: Mapping[str, dict[str, Any]]) -> None:
    from agentadapter.worker.app import STEP_TASK, celery_app

    fresh: list[str] = []
    async with runtime.db.writer() as session:
        for key, request in wanted.items():
            if await step_store.enqueue(session, run.tenant_id, run.id, key, request):
                fresh.append(key)
        await step_store.touch_run(session, run.id)
    for key in fresh:  # after the commit: a step task must find its row
        celery_app.send_task(STEP_TASK, args=[str(run.id), key], task_id=step_task_id(run.id, key))


def step_task_id(run_id: uuid.UUID, key: str) -> str:
    return f"step:{run_id}:{key}"


async def _end(runtime: WorkerRuntime, run: Run, engine: ReplayEngine | None, status: str, output: Any,
               error: dict[str, Any] | None) -> None:
    """End the run with ``status`` - once: only the drive whose conditional update wins emits ``run_finished``."""
    now = time.time()
    started = run.started_at.timestamp() if run.started_at is not None else now
    usage = engine.usage if engine is not None else Usage()
    cost = engine.cost_usd if engine is not None else 0.0
    text = to_text(output) if output is not None else ""
    if status == "failed" and engine is not None:
        for record in reversed(engine.result.agents):  # a failed run's best answer so far
            if record.status == "completed":
                output, text = record.output, record.text
                break
    duration_ms = (now - started) * 1000.0
    values = {
        "status": status, "output": _jsonable(output), "text": text, "error": error, "usage": usage.to_dict(),
        "cost_usd": cost, "duration_ms": round(duration_ms, 3),
        "details": _jsonable(engine.result.details) if engine is not None else {},
        "finished_at": _utc(now),
    }
    if run.started_at is None:
        values["started_at"] = _utc(now)
    steps = engine.steps if engine is not None else 0
    finished: RunEvent | None = None
    async with runtime.db.writer() as session:
        if await step_store.end_run(session, run.id, values):
            # Steps still queued (revoked, or behind a failure) will never run.
            await step_store.close_queued(session, run.id, {"status": "cancelled", "error": {
                "type": "Cancelled", "message": f"the run ended ({status}) before the step started"}})
            # After every step's block, so no step's event (an agent_cancelled still to come) can take its seq.
            steps = max([steps, *(int(key.split(":", 1)[0]) for key in await step_store.load(session, run.id))])
            fresh = await session.get(Run, run.id)
            seq = max((fresh.last_seq if fresh is not None else 0) + 1, (steps + 1) * SEQ_BLOCK)
            finished = await _record(session, run.tenant_id, run.id, seq, "run_finished", {
                "status": status, "output": _jsonable(output), "usage": usage.to_dict(), "cost_usd": cost,
                "duration_ms": round(duration_ms, 3), "error": error,
            })
    if finished is None:
        return  # another drive (or the reaper) ended it
    await runtime.channel.publish(finished)
    # Steps still running (the losers of a parallel "first", say) see the flag and stop.
    await runtime.channel.request_cancel(run.id, f"the run ended ({status})")


# ---------------------------------------------------------------------------------- a step


class _StepLog(EventLog):
    """Numbers a step's events from its block: ``step * SEQ_BLOCK + 1, ...``."""

    def __init__(self, run_id: str, step: int) -> None:
        super().__init__(run_id, keep=False)
        self._seq = step * SEQ_BLOCK
        self._last = (step + 1) * SEQ_BLOCK - 1

    def emit(self, type: EventType, agent: str | None, data: dict[str, Any]) -> RunEvent:
        if self._seq >= self._last:
            self._seq = self._last - 1  # a step with 100 000 events: the rest share the block's last number
        return super().emit(type, agent, data)


class _StepRecorder(StoreRunRecorder):
    """The database recorder, writing each event once per seq and each agent run under a stable id."""

    def __init__(self, db: Database, tenant_id: uuid.UUID, record_id: str) -> None:
        super().__init__(db, tenant_id)
        self.record_id = record_id

    async def save_agent_run(self, run_id: str, agent_run: AgentRunResult) -> None:
        agent_run.id = self.record_id
        await super().save_agent_run(run_id, agent_run)

    async def save_event(self, event: RunEvent) -> None:
        async with self.db.writer() as session:
            await step_store.record_event_once(session, self.tenant_id, uuid.UUID(event.run_id), event.seq,
                                               event.type, event.agent, event.ts, event.data)


async def execute_step(runtime: WorkerRuntime, run_id: uuid.UUID, key: str) -> None:
    """Claim the step, run its agent once, store the result, send the drive again."""
    from agentadapter.worker.app import DRIVE_TASK, celery_app

    db, settings = runtime.db, runtime.worker
    async with db.writer() as session:
        request = await step_store.claim(session, run_id, key, settings.step_lease_s, worker=_worker_id())
    if request is None:
        return  # done already, or running under a live lease (a duplicate delivery)
    async with db.session() as session:
        run = await session.get(Run, run_id)
        if run is not None:
            session.expunge(run)
    reason = await runtime.channel.cancel_reason(run_id)
    if run is None or run.status in TERMINAL_RUN_STATUSES or reason is not None:
        why = reason or "the run had ended before the step started"
        result: dict[str, Any] = {"status": "cancelled", "error": {"type": "Cancelled", "message": why}}
    else:
        try:
            result = await _run_step(runtime, run, key, request)
        except Exception as exc:  # the agent could not even be built: the step fails, the run decides
            logger.exception("step %s of run %s could not run", key, run_id)
            result = {"status": "failed", "error": error_info(exc), "record": {}, "text": ""}
    async with db.writer() as session:
        done = await step_store.complete(session, run_id, key, result)
    if done:
        celery_app.send_task(DRIVE_TASK, args=[str(run_id)])


async def _run_step(runtime: WorkerRuntime, run: Run, key: str, request: Mapping[str, Any]) -> dict[str, Any]:
    agents, strategy, options = await load_job(runtime.db, runtime, run)
    run_id = str(run.id)
    step = int(request["step"])
    llm = await runtime.tenant_llms.get(run.tenant_id)
    # Its usage records name the run and project, as the inline executor's do.
    llm = llm.derive(tags={"run": run_id, "project": str(run.project_id), "source": "run"})
    log = _StepLog(run_id, step)
    protocol = _protocol(run_id)
    engine = RunEngine(
        run_id=run_id, task=run.input, agents=agents, strategy=strategy,
        options=dataclasses.replace(options, run_id=run_id), llm=llm, protocol=protocol, owns_protocol=True,
        recorder=_StepRecorder(runtime.db, run.tenant_id, uuid.uuid5(run.id, key).hex), log=log,
        project_id=str(run.project_id), workflow=run.workflow_name,
    )
    engine.steps = step - 1
    engine.cost_usd = float(request.get("cost_usd") or 0.0)
    remaining: float | None = None
    if options.limits.timeout_s is not None and run.started_at is not None:
        remaining = max(run.started_at.timestamp() + options.limits.timeout_s - time.time(), 0.0)
        engine.deadline = time.monotonic() + remaining
    history = request.get("history") or []
    step_input, step_history = _load_input(request["input"]), coerce_messages(history) if history else []
    reason = await runtime.channel.cancel_reason(run.id)
    if reason is not None:  # cancelled while this worker built the agents: the agent never starts
        return {"status": "cancelled", "error": {"type": "Cancelled", "message": reason}, "record": {}, "text": ""}
    outbox: asyncio.Queue[RunEvent | None] = asyncio.Queue()
    log.add_listener(outbox.put_nowait)
    publisher = asyncio.get_running_loop().create_task(_publish(runtime.channel, outbox))
    work = asyncio.get_running_loop().create_task(_step_under_deadline(
        engine, str(request["name"]), step_input, step_history, str(request.get("phase") or "run"),
        request.get("via"), remaining))
    guard = asyncio.get_running_loop().create_task(_guard(runtime, run.id, key, engine, work))
    try:
        await protocol.start()
        record = await work
        result: dict[str, Any] = {"status": "completed", "record": record.to_dict(), "text": record.text}
    except asyncio.CancelledError:
        if not work.cancelled():
            raise  # this task itself is being cancelled: the worker stops
        failed = engine.result.agents[-1] if engine.result.agents else None
        message = engine.cancel_reason or "the run's deadline (limits.timeout_s) passed"
        result = {"status": "cancelled", "error": {"type": "Cancelled", "message": message},
                  "record": failed.to_dict() if failed else {}, "text": ""}
    except TimeoutError:
        failed = engine.result.agents[-1] if engine.result.agents else None
        result = {"status": "cancelled", "error": {"type": "Cancelled", "message": "the run's deadline "
                  "(limits.timeout_s) passed"}, "record": failed.to_dict() if failed else {}, "text": ""}
    except (StepFailedError, RunLimitExceeded) as exc:
        failed = engine.result.agents[-1] if engine.result.agents else None
        inner = exc.error if isinstance(exc, StepFailedError) else exc
        result = {"status": "failed", "error": error_info(inner), "record": failed.to_dict() if failed else {},
                  "text": ""}
        if isinstance(exc, RunLimitExceeded):
            result["limit"] = {"limit": exc.limit, "value": exc.value, "used": exc.used}
    finally:
        guard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guard
        outbox.put_nowait(None)
        await publisher
        with contextlib.suppress(Exception):
            await protocol.close()
    return result


async def _step_under_deadline(engine: RunEngine, name: str, input: AgentInput, history: list[Message], phase: str,
                               via: Any, remaining: float | None) -> AgentRunResult:
    async with asyncio.timeout(remaining):
        return await engine.step(name, input, history, phase=phase, via=via)


async def _publish(channel: RunChannel, outbox: asyncio.Queue[RunEvent | None]) -> None:
    """Append the step's events, in order, to the run's Redis stream (live SSE on any API instance)."""
    while (event := await outbox.get()) is not None:
        try:
            await channel.publish(event)
        except Exception:  # live streaming lost an event; the database has it (tokens excepted)
            logger.warning("could not publish event %s of run %s to Redis", event.seq, event.run_id, exc_info=True)


async def _guard(runtime: WorkerRuntime, run_id: uuid.UUID, key: str, engine: RunEngine,
                 work: asyncio.Task[AgentRunResult]) -> None:
    """While the step runs: renew its lease, and cancel it when the run's cancel flag appears."""
    lease_s = runtime.worker.step_lease_s
    renew_every = lease_s / 3
    last_renewal = time.monotonic()
    while not work.done():
        await asyncio.sleep(min(0.2, renew_every))
        reason = await runtime.channel.cancel_reason(run_id)
        if reason is not None:
            engine.cancel_requested, engine.cancel_reason = True, reason
            work.cancel()
            return
        if time.monotonic() - last_renewal >= renew_every:
            async with runtime.db.writer() as session:
                await step_store.renew(session, run_id, key, lease_s)
            last_renewal = time.monotonic()
