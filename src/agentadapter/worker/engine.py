"""How a worker drives a run and executes its steps, so that agents of one run spread over workers.

Both halves go through the orchestrator's public step seam (:mod:`agentadapter.orchestrator.execution`).
A run is driven by :func:`drive_run`: it loads the run's strategy, agent names and options - without
building any agent - and :func:`~agentadapter.orchestrator.replay` s the strategy against the step
outcomes stored so far. Step ``n`` of agent ``a`` in phase ``p`` has the key ``"n:p:a"``
(deterministic: replaying the same outcomes takes the same path). The replay either ends the run or
names the steps it is blocked on; each of those not stored yet is inserted into ``run_steps``
(unique per run and key) and, only by the drive whose insert created it, sent to the workers: a step
is enqueued once.

:func:`execute_step` claims a step (a conditional update, under a lease it renews while it runs),
builds the run's agents (once per step execution), runs that one agent through
:class:`~agentadapter.orchestrator.StepRun` (limits, retries, timeouts, events), stores its
outcome, marks the step done - only if it is still running, so a duplicate does nothing - and sends
the drive again. Events get step-based sequence numbers (step ``n`` uses ``n * SEQ_BLOCK + i``), so
a step executed again after its worker died writes the same numbers and the database keeps one
copy; agent runs get ids derived from the run and step key, so they are upserted, not repeated. The
run moves to ``running`` and to its end through conditional updates: one ``run_started``, one
``run_finished``.
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
from agentadapter.llm.messages import Usage
from agentadapter.orchestrator import (
    EventLog,
    EventType,
    ReplayOutcome,
    RunEvent,
    RunOptions,
    RunResume,
    StepOutcome,
    StepRequest,
    StepRun,
    Strategy,
    coerce_strategy,
    jsonable,
    replay,
)
from agentadapter.orchestrator.result import AgentRunResult, error_info
from agentadapter.protocol.context import InProcessSharedContext
from agentadapter.protocol.inprocess_bus import InProcessMessageBus
from agentadapter.protocol.protocol import CommunicationProtocol
from agentadapter.protocol.registry import InProcessAgentRegistry
from agentadapter.store import steps as step_store
from agentadapter.store.models import TERMINAL_RUN_STATUSES, Run
from agentadapter.store.recorder import StoreRunRecorder

if TYPE_CHECKING:
    from agentadapter.service.channel import RunChannel
    from agentadapter.store.database import Database
    from agentadapter.worker.app import WorkerRuntime

__all__ = ["SEQ_BLOCK", "RunPlan", "drive_run", "execute_step", "load_job", "load_plan", "step_key", "step_task_id"]

logger = logging.getLogger("agentadapter.worker")

SEQ_BLOCK = 100_000
"""Event numbers per step: step ``n``'s events are ``n * SEQ_BLOCK + 1, + 2, ...``."""


def _worker_id() -> str:
    """Host, the worker's main process (the pool's parent) and this pool process: who claimed a step."""
    return f"{socket.gethostname()}:{os.getppid()}:{os.getpid()}"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def step_key(step: int, phase: str, name: str) -> str:
    """The key of step ``step`` of agent ``name`` in ``phase`` (:attr:`StepRequest.key`'s form)."""
    return StepRequest(name, step, phase).key


# ------------------------------------------------------------------------------ the run's job


async def load_job(db: Database, runtime: WorkerRuntime, run: Run) -> tuple[dict[str, BaseAgent], Strategy, RunOptions]:
    """The run's agents, strategy and options, built from its stored agent or workflow (as the API did)."""
    from agentadapter.service.building import agent_defaults, builder
    from agentadapter.store import agents as agent_store
    from agentadapter.store import users
    from agentadapter.store import workflows as workflow_store

    build = builder(runtime)
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


@dataclasses.dataclass(frozen=True, slots=True)
class RunPlan:
    """What driving a run needs of its definition: the agents' names, the strategy, the options."""

    agents: list[str]
    strategy: Strategy
    options: RunOptions


async def load_plan(db: Database, runtime: WorkerRuntime, run: Run) -> RunPlan:
    """The run's plan from its stored agent or workflow, checked as the API checks it, building no agent."""
    from agentadapter.service.building import agent_defaults, builder
    from agentadapter.store import agents as agent_store
    from agentadapter.store import users
    from agentadapter.store import workflows as workflow_store

    build = builder(runtime)
    limits = dict(run.options) if run.options else None
    async with db.writer() as session:  # a user's settings row is created on first read
        if run.workflow_id is not None:
            settings = await users.get_settings(session, run.tenant_id, run.created_by) if run.created_by else None
            row = await workflow_store.get_workflow(session, run.tenant_id, run.workflow_id)
            workflow, _ = await build.plan_workflow(session, run.tenant_id, row, agent_defaults(settings))
            return RunPlan([entry.name for entry in workflow.spec.agents], coerce_strategy(workflow.strategy),
                           build.run_options(workflow.options, limits))
        if run.agent_id is None:
            raise RuntimeError(f"run {run.id} names neither an agent nor a workflow; it cannot be executed")
        # One stored agent: its name is the whole plan; its step builds (and so checks) it.
        definition = await agent_store.get_agent(session, run.tenant_id, run.agent_id)
        return RunPlan([definition.name], coerce_strategy("sequential"), build.run_options(RunOptions(), limits))


def _protocol(run_id: str) -> CommunicationProtocol:
    # Each step's agents get a bus of their own: messages between agents of one step are kept.
    return CommunicationProtocol(InProcessMessageBus(), InProcessAgentRegistry(), InProcessSharedContext(),
                                 run_id=run_id)


def _recorded(stored: Mapping[str, Any]) -> dict[str, StepOutcome]:
    """The outcomes of the run's finished steps, by key (queued and running ones have none yet)."""
    return {key: StepOutcome.from_dict(row.result) for key, row in stored.items()
            if row.status == "done" and row.result is not None}


# ----------------------------------------------------------------------------- replay (drive)


async def _record(session: Any, tenant_id: uuid.UUID, run_id: uuid.UUID, seq: int, type: EventType,
                  data: dict[str, Any]) -> RunEvent:
    """Persist a run-level event in the caller's transaction (with the status change it reports)."""
    event = RunEvent(seq, type, str(run_id), None, time.time(), data)
    await step_store.record_event_once(session, tenant_id, run_id, seq, type, None, event.ts, data)
    return event


async def drive_run(runtime: WorkerRuntime, run_id: uuid.UUID) -> None:
    """Advance the run as far as stored outcomes allow: enqueue the steps it waits on, or end it."""
    db = runtime.db
    async with db.session() as session:
        run = await session.get(Run, run_id)
        if run is None or run.status in TERMINAL_RUN_STATUSES:
            return
        session.expunge(run)
    reason = await runtime.channel.cancel_reason(run_id)
    if reason is not None:
        await _end(runtime, run, None, "cancelled", {"type": "Cancelled", "message": reason})
        return
    try:
        plan = await load_plan(db, runtime, run)
    except Exception as exc:
        await _end(runtime, run, None, "failed", error_info(exc))
        return
    options = plan.options
    if options.limits.timeout_s is not None and run.started_at is not None \
            and time.time() - run.started_at.timestamp() > options.limits.timeout_s:
        await _end(runtime, run, None, "failed", {
            "type": "RunLimitExceeded", "message": f"run {run_id} did not finish within its "
            f"{options.limits.timeout_s:g} s deadline (limits.timeout_s); raise the limit or give the agents less "
            "to do"})
        return
    async with db.session() as session:
        stored = await step_store.load(session, run_id)
    outcome = await replay(
        run_id=str(run_id), task=run.input, agents=plan.agents, strategy=plan.strategy,
        recorded=_recorded(stored), options=dataclasses.replace(options, run_id=str(run_id)),
        project_id=str(run.project_id), workflow=run.workflow_name,
    )
    if run.status == "queued":
        now = time.time()
        started: RunEvent | None = None
        async with db.writer() as session:
            if await step_store.begin_run(session, run_id, {"started_at": _utc(now),
                                                            "strategy": plan.strategy.describe()}):
                started = await _record(session, run.tenant_id, run_id, 1, "run_started", {
                    "strategy": plan.strategy.describe(), "agents": list(plan.agents),
                    "input": outcome.result.input, "workflow": run.workflow_name,
                    "project_id": str(run.project_id)})
        if started is not None:
            run.started_at = _utc(now)
            await runtime.channel.publish(started)
    if outcome.finished:
        await _end(runtime, run, outcome, outcome.result.status, outcome.result.error)
    elif outcome.result.status == "paused":
        await _pause(runtime, run, outcome)
    else:
        # Steps already stored are queued or running: they were sent when their row was created.
        await _enqueue(runtime, run, [r for r in outcome.waiting if r.key not in stored])


async def _enqueue(runtime: WorkerRuntime, run: Run, wanted: Sequence[StepRequest]) -> None:
    from agentadapter.service.queue import STEP_TASK
    from agentadapter.worker.app import celery_app

    fresh: list[str] = []
    async with runtime.db.writer() as session:
        for request in wanted:
            if await step_store.enqueue(session, run.tenant_id, run.id, request.key, request.to_dict()):
                fresh.append(request.key)
        await step_store.touch_run(session, run.id)
    for key in fresh:  # after the commit: a step task must find its row
        celery_app.send_task(STEP_TASK, args=[str(run.id), key], task_id=step_task_id(run.id, key))


def step_task_id(run_id: uuid.UUID, key: str) -> str:
    return f"step:{run_id}:{key}"


async def _end(runtime: WorkerRuntime, run: Run, replayed: ReplayOutcome | None, status: str,
               error: dict[str, Any] | None) -> None:
    """End the run with ``status`` - once: only the drive whose conditional update wins emits ``run_finished``.

    ``replayed`` is the run as its steps made it (output, usage, cost, details); None when the run
    ends before any replay (cancelled, or its definition cannot be loaded).
    """
    now = time.time()
    started = run.started_at.timestamp() if run.started_at is not None else now
    result = replayed.result if replayed is not None else None
    usage = result.usage if result is not None else Usage()
    cost = result.cost_usd if result is not None else 0.0
    output = result.output if result is not None else None
    text = result.text if result is not None else ""
    duration_ms = (now - started) * 1000.0
    values = {
        "status": status, "output": jsonable(output), "text": text, "error": error, "usage": usage.to_dict(),
        "cost_usd": cost, "duration_ms": round(duration_ms, 3),
        "details": jsonable(result.details) if result is not None else {},
        "finished_at": _utc(now),
    }
    if run.started_at is None:
        values["started_at"] = _utc(now)
    steps = replayed.steps if replayed is not None else 0
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
                "status": status, "output": jsonable(output), "usage": usage.to_dict(), "cost_usd": cost,
                "duration_ms": round(duration_ms, 3), "error": error,
            })
    if finished is None:
        return  # another drive (or the reaper) ended it
    await runtime.channel.publish(finished)
    # Steps still running (the losers of a parallel "first", say) see the flag and stop.
    await runtime.channel.request_cancel(run.id, f"the run ended ({status})")


async def _pause(runtime: WorkerRuntime, run: Run, replayed: ReplayOutcome) -> None:
    """A step waits for a human's approval: the run becomes ``paused`` (once), with its ``run_paused`` event.

    Nothing executes it until ``POST /v1/runs/{id}/approvals`` requeues the paused step with the decisions.
    """
    result = replayed.result
    paused = dict(result.details.get("paused") or {})
    async with runtime.db.writer() as session:
        fresh = await session.get(Run, run.id)
        seq = (fresh.last_seq if fresh is not None else 0) + 1  # after the paused step's events
        paused["last_seq"] = seq
        values = {"status": "paused", "usage": result.usage.to_dict(), "cost_usd": result.cost_usd,
                  "details": jsonable({**result.details, "paused": paused})}
        event: RunEvent | None = None
        if await step_store.end_run(session, run.id, values):
            event = await _record(session, run.tenant_id, run.id, seq, "run_paused", {
                "pending": paused.get("pending") or [], "usage": result.usage.to_dict(), "cost_usd": result.cost_usd})
    if event is not None:
        await runtime.channel.publish(event)


# ---------------------------------------------------------------------------------- a step


class _StepLog(EventLog):
    """Numbers a step's events from its block: ``step * SEQ_BLOCK + 1, ...``."""

    def __init__(self, run_id: str, step: int, after: int = 0) -> None:
        super().__init__(run_id, keep=False)
        self._seq = max(step * SEQ_BLOCK, after) if after < (step + 1) * SEQ_BLOCK - 1 else step * SEQ_BLOCK
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
    """Claim the step, build the run's agents, run the step's agent once, store the outcome, send the drive again."""
    from agentadapter.service.queue import DRIVE_TASK
    from agentadapter.worker.app import celery_app

    db, settings = runtime.db, runtime.worker
    async with db.writer() as session:
        claimed = await step_store.claim(session, run_id, key, settings.step_lease_s, worker=_worker_id())
    if claimed is None:
        return  # done already, or running under a live lease (a duplicate delivery)
    request = StepRequest.from_dict(claimed)
    decisions = claimed.get("resume")  # the step paused for approval and a human has decided
    async with db.session() as session:
        run = await session.get(Run, run_id)
        if run is not None:
            session.expunge(run)
    reason = await runtime.channel.cancel_reason(run_id)
    unbuildable: dict[str, Any] | None = None
    if run is None or run.status in TERMINAL_RUN_STATUSES or reason is not None:
        why = reason or "the run had ended before the step started"
        outcome = StepOutcome("cancelled", error={"type": "Cancelled", "message": why})
    else:
        try:
            job = await load_job(db, runtime, run)
        except Exception as exc:  # its definition no longer builds: the run fails with that error, as it would inline
            logger.warning("run %s cannot be built for step %s", run_id, key, exc_info=True)
            unbuildable = error_info(exc)
            outcome = StepOutcome("failed", error=unbuildable)
        else:
            try:
                outcome = await _run_step(runtime, run, request, job, decisions)
            except Exception as exc:  # not the agent's failure (that is an outcome): the step fails, the run decides
                logger.exception("step %s of run %s could not run", key, run_id)
                outcome = StepOutcome("failed", error=error_info(exc))
    async with db.writer() as session:
        done = await step_store.complete(session, run_id, key, outcome.to_dict())
    if unbuildable is not None and run is not None:
        await _end(runtime, run, None, "failed", unbuildable)
    elif done:
        celery_app.send_task(DRIVE_TASK, args=[str(run_id)])


async def _run_step(runtime: WorkerRuntime, run: Run, request: StepRequest,
                    job: tuple[dict[str, BaseAgent], Strategy, RunOptions],
                    decisions: Mapping[str, Any] | None = None) -> StepOutcome:
    agents, strategy, options = job
    first_seq = 0
    if decisions is not None:  # continue the paused step from the state the run keeps
        resume = RunResume.from_details(run.details or {}, dict(decisions.get("approvals") or {}))
        options = dataclasses.replace(options, resume=dataclasses.replace(
            resume, reasons=dict(decisions.get("reasons") or {})))
        first_seq = run.last_seq  # its events come after the run_paused event, in the step's block
    run_id = str(run.id)
    llm = await runtime.tenant_llms.get(run.tenant_id)
    # Its usage records name the run and project, as the inline executor's do.
    llm = llm.derive(tags={"run": run_id, "project": str(run.project_id), "source": "run"})
    log = _StepLog(run_id, request.step, first_seq)
    remaining: float | None = None
    if options.limits.timeout_s is not None and run.started_at is not None:
        remaining = max(run.started_at.timestamp() + options.limits.timeout_s - time.time(), 0.0)
    step = StepRun(
        request, run_id=run_id, task=run.input, agents=agents, strategy=strategy,
        options=dataclasses.replace(options, run_id=run_id), llm=llm, protocol=_protocol(run_id), log=log,
        recorder=_StepRecorder(runtime.db, run.tenant_id, uuid.uuid5(run.id, request.key).hex),
        remaining_s=remaining, project_id=str(run.project_id), workflow=run.workflow_name, can_pause=True,
    )
    reason = await runtime.channel.cancel_reason(run.id)
    if reason is not None:  # cancelled while this worker built the agents: the agent never starts
        return StepOutcome("cancelled", error={"type": "Cancelled", "message": reason})
    outbox: asyncio.Queue[RunEvent | None] = asyncio.Queue()
    log.add_listener(outbox.put_nowait)
    loop = asyncio.get_running_loop()
    publisher = loop.create_task(_publish(runtime.channel, outbox))
    work = loop.create_task(step.execute())
    guard = loop.create_task(_guard(runtime, run.id, request.key, step, work))
    try:
        return await work
    finally:
        guard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guard
        outbox.put_nowait(None)
        await publisher


async def _publish(channel: RunChannel, outbox: asyncio.Queue[RunEvent | None]) -> None:
    """Append the step's events, in order, to the run's Redis stream (live SSE on any API instance)."""
    while (event := await outbox.get()) is not None:
        try:
            await channel.publish(event)
        except Exception:  # live streaming lost an event; the database has it (tokens excepted)
            logger.warning("could not publish event %s of run %s to Redis", event.seq, event.run_id, exc_info=True)


async def _guard(runtime: WorkerRuntime, run_id: uuid.UUID, key: str, step: StepRun,
                 work: asyncio.Task[StepOutcome]) -> None:
    """While the step runs: renew its lease, and cancel it when the run's cancel flag appears."""
    lease_s = runtime.worker.step_lease_s
    renew_every = lease_s / 3
    last_renewal = time.monotonic()
    while not work.done():
        await asyncio.sleep(min(0.2, renew_every))
        reason = await runtime.channel.cancel_reason(run_id)
        if reason is not None:
            step.cancel(reason)
            return
        if time.monotonic() - last_renewal >= renew_every:
            async with runtime.db.writer() as session:
                await step_store.renew(session, run_id, key, lease_s)
            last_renewal = time.monotonic()
