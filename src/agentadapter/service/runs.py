"""Runs: start one (an agent or a workflow), cancel one, read its events.

Starting a run builds its agents first - so a broken definition is refused now (a 422 through the
API), not a failed run later - then stores the run as ``queued`` (with the executor's lease on it),
commits, and hands it to the executor, which answers at once; the API replies 202 with the run. An executor that cannot
take it (shutting down, its broker or Redis down) raises :class:`~.errors.Unavailable` (a 503) with a
code that says which, and the
run is deleted again: no ``queued`` run is left that nobody will run. Cancelling a run that
executes here cancels its task (its agents stop, and it records ``cancelled``); a run no process
executes any more (a server stopped under it: no Redis to ask the others, or its lease expired) is
closed in the database directly, with its ``run_finished`` event. :func:`run_events` is what SSE streams: the
executor's in-memory log when the run is (or recently was) here, tokens included; otherwise the
persisted events, then the new ones as they are written, until the run ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.context import AgentInput
from agentadapter.orchestrator import RunEvent, RunOptions
from agentadapter.service import threads
from agentadapter.service.building import agent_defaults, builder
from agentadapter.service.common import Caller, ServiceParts, invalid, record
from agentadapter.service.compliance import check_run_consents
from agentadapter.service.errors import Conflict, Unavailable
from agentadapter.service.executor import ExecutorUnavailable, RunJob
from agentadapter.store import agents as agent_store
from agentadapter.store import credits as credit_store
from agentadapter.store import runs as run_store
from agentadapter.store import tenants, users
from agentadapter.store import threads as thread_store
from agentadapter.store import workflows as workflow_store
from agentadapter.store.models import TERMINAL_RUN_STATUSES, Run, utcnow

__all__ = ["RunRequest", "cancel_run", "run_events", "start_agent_run", "start_workflow_run"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What a caller asks of a run: its input, its project, its limits (``max_cost_usd``, ``max_steps``,
    ``timeout_s``: brought within the operator's caps); None: the defaults."""

    input: AgentInput | None = None
    project_id: uuid.UUID | None = None
    limits: Mapping[str, Any] | None = None
    thread_id: uuid.UUID | None = None
    """The conversation the run continues (agent runs): its history comes first, its input and answer join it."""

    def stored_limits(self) -> dict[str, Any]:
        """The limits as the run row keeps them (those given)."""
        return {k: v for k, v in (self.limits or {}).items() if v is not None}


async def _defaults(session: AsyncSession, caller: Caller) -> dict[str, Any]:
    settings = await users.get_settings(session, caller.tenant_id, caller.user)
    return agent_defaults(settings)


async def _submit(session: AsyncSession, state: ServiceParts, caller: Caller, run: Run, job: RunJob,
                  details: Mapping[str, Any]) -> Run:
    # A tenant with no credit left gets a 402 now (the run is not stored), not a run that fails later.
    await credit_store.check_can_start(session, caller.tenant_id, required=state.service.credits_required)
    for column, value in state.executor.new_run_lease().items():
        setattr(run, column, value)
    await record(session, caller, "run.create", "run", run.id, details)
    await session.commit()
    try:
        await state.executor.submit(job)
    except ExecutorUnavailable as exc:
        await _discard(session, caller, run, exc.code)
        raise Unavailable(f"{exc}; the run was not started, retry in a moment", code=exc.code,
                          retry_after_s=exc.retry_after_s) from exc
    except Exception:
        await _discard(session, caller, run, "submit_failed")
        raise
    return run


async def _discard(session: AsyncSession, caller: Caller, run: Run, why: str) -> None:
    """Delete a run the executor did not take, so no ``queued`` run is left behind (the audit log keeps why)."""
    if await run_store.discard_unstarted_run(session, caller.tenant_id, run.id):
        await record(session, caller, "run.discard", "run", run.id, {"reason": why})
    await session.commit()


async def start_agent_run(session: AsyncSession, state: ServiceParts, caller: Caller, agent_id: uuid.UUID,
                          data: RunRequest) -> Run:
    if not data.input:
        raise invalid("input", "is required to run an agent (a prompt, or a list of messages)", code="missing_input")
    definition = await agent_store.get_agent(session, caller.tenant_id, agent_id)
    await check_run_consents(session, caller)  # a 403 naming the consent the tenant's policy needs and the user lacks
    defaults = await _defaults(session, caller)
    if not definition.model and not defaults.get("default_model"):
        raise invalid("agent_id", f"agent {definition.name!r} has no model and your settings have no default_model; "
                                  "set one (PATCH /v1/settings or the agent's model)", code="no_model")
    build = builder(state)
    agent = await build.build_agent(session, caller.tenant_id, definition, defaults)
    project = await tenants.resolve_project(session, caller.tenant_id, data.project_id)
    options = build.run_options(RunOptions(), data.limits)
    task: AgentInput = data.input
    conversation = None
    if data.thread_id is not None:
        model = definition.model or defaults.get("default_model")
        conversation = await threads.continue_thread(session, state, caller, data.thread_id,
                                                     model if isinstance(model, str) else None)
        task = threads.thread_task(conversation.history, data.input)
    stored_input = data.input
    if conversation is not None and state.executor.name == "celery":
        # Workers build the run from its row: it carries the history (the thread leaves it out when it folds).
        stored_input = [m.to_dict() for m in threads.thread_task(conversation.history, data.input)]
    run = await run_store.create_run(
        session, caller.tenant_id, input=stored_input, project_id=project.id, agent_id=definition.id,
        agent_version=definition.version, created_by=caller.user, strategy="sequential",
        options=data.stored_limits(),
    )
    details: dict[str, Any] = {"agent_id": str(definition.id), "agent_version": definition.version}
    if conversation is not None:
        conversation.thread.active_run_id = run.id
        details.update(thread_id=str(data.thread_id), thread_compacted=conversation.compacted)
    job = RunJob(run.id, caller.tenant_id, project.id, task, {agent.name: agent}, "sequential", options)
    return await _submit(session, state, caller, run, job, details)


async def start_workflow_run(
    session: AsyncSession, state: ServiceParts, caller: Caller, workflow_id: uuid.UUID, data: RunRequest
) -> Run:
    row = await workflow_store.get_workflow(session, caller.tenant_id, workflow_id)
    await check_run_consents(session, caller)
    defaults = await _defaults(session, caller)
    build = builder(state)
    workflow, agents = await build.build_workflow(session, caller.tenant_id, row, defaults)
    task = data.input if data.input else workflow.input
    if not task:
        raise invalid("input", f"workflow {row.name!r} has no input of its own; pass input", code="missing_input")
    project = await tenants.resolve_project(session, caller.tenant_id, data.project_id)
    run = await run_store.create_run(
        session, caller.tenant_id, input=task, project_id=project.id, workflow_id=row.id, workflow_name=row.name,
        created_by=caller.user, strategy=workflow.spec.strategy,
        options=data.stored_limits(),
    )
    job = RunJob(run.id, caller.tenant_id, project.id, task, agents, workflow.strategy,
                 build.run_options(workflow.options, data.limits),
                 workflow=row.name)
    return await _submit(session, state, caller, run, job, {"workflow_id": str(row.id), "version": row.version})


async def cancel_run(session: AsyncSession, state: ServiceParts, caller: Caller, run_id: uuid.UUID) -> Run:
    run = await run_store.get_run(session, caller.tenant_id, run_id)
    if run.status in TERMINAL_RUN_STATUSES:
        raise Conflict(f"run {run_id} has already ended ({run.status}); there is nothing to cancel",
                       code="run_finished", param="run_id")
    reason = f"cancelled through the API by {caller.principal.subject}"
    error = {"type": "Cancelled", "message": reason}
    if run.status == "paused" and await thread_store.close_paused_run(session, caller.tenant_id, run_id,
                                                                      "cancelled", error):
        # Nobody executes a paused run: it ends here, with its run_finished event.
        outcome = "closed"
        await session.refresh(run)
    elif run.lease_until is not None and run.lease_until < utcnow() and await run_store.close_run(
            session, run_id, "cancelled", error, tenant_id=caller.tenant_id, lease_expired_before=utcnow()):
        # Its process is gone (the lease expired, no reaper has ended it yet): nobody would hear a cancel request.
        outcome = "closed"
        await session.refresh(run)
    else:
        outcome = await state.executor.request_cancel(run_id, reason)
    if outcome == "unknown":
        # No process runs it: with one server process (no Redis), nobody does - close it here.
        run = await run_store.finish_run(session, caller.tenant_id, run_id, "cancelled", error)
    await record(session, caller, "run.cancel", "run", run_id, {"outcome": outcome})
    await session.commit()
    return run


async def run_events(state: ServiceParts, tenant_id: uuid.UUID, run_id: uuid.UUID,
                     after: int) -> AsyncIterator[RunEvent]:
    """The run's events with ``seq > after``, live until the run ends or pauses (the caller checked the tenant)."""
    live = state.executor.events(run_id, after)
    if live is not None:
        async for event in live:
            yield event
        return
    last = after
    while True:
        async with state.db.session() as session:
            rows = await run_store.list_events(session, tenant_id, run_id, after=last)
            status = (await run_store.get_run(session, tenant_id, run_id)).status if not rows else None
        for row in rows:
            last = row.seq
            yield RunEvent(row.seq, row.type, str(run_id), row.agent, row.ts, dict(row.data or {}))  # type: ignore[arg-type]
            if row.type == "run_finished":
                return
        if rows and rows[-1].type == "run_paused":
            async with state.db.session() as session:
                if (await run_store.get_run(session, tenant_id, run_id)).status == "paused":
                    return  # it waits for a human: the stream ends, as a live one does (reconnect after deciding)
        if status is not None and status in TERMINAL_RUN_STATUSES:
            return
        if not rows:
            live = state.executor.events(run_id, last)
            if live is not None:  # it started here meanwhile
                async for event in live:
                    yield event
                return
            await asyncio.sleep(state.service.sse_poll_s)
