"""Human approval of a paused run's tool calls, and its resumption.

A run whose agent calls a tool that needs approval ends its execution ``paused``: its
``run_paused`` event names the pending calls and its details keep the state needed to go on (see
:mod:`agentadapter.orchestrator.pause`). Nothing executes a paused run and it holds no lease, so no
reaper ends it and a server restart loses nothing. :func:`decide` takes a decision per pending call
(approve, or reject with an optional reason), rebuilds the run's agents from their stored
definitions (as a new run would be built: the trust boundary holds), moves the run back to
``queued`` through a conditional update (of two concurrent decisions, one wins; the other gets a
409), and hands it to the executor, which continues it where it stopped.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.agents.tools.registry import ToolRegistry
from agentadapter.errors import ConfigurationError
from agentadapter.orchestrator import RunOptions, RunResume
from agentadapter.orchestrator.strategies import Strategy
from agentadapter.service.building import agent_defaults, builder
from agentadapter.service.common import Caller, ServiceParts, invalid, record
from agentadapter.service.errors import Conflict, Unavailable
from agentadapter.service.executor import ExecutorUnavailable, RunJob
from agentadapter.store import agents as agent_store
from agentadapter.store import runs as run_store
from agentadapter.store import threads as thread_store
from agentadapter.store import users
from agentadapter.store import workflows as workflow_store
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import Run

__all__ = ["Decision", "decide", "require_approval"]


def require_approval(registry: ToolRegistry, names: Sequence[str]) -> None:
    """Make every call of these registered tools wait for a human's approval (``approval_tools``)."""
    for name in names:
        tool = registry.get(name)  # an unknown name is a configuration error, raised at start
        if not isinstance(tool, FunctionTool):
            raise ConfigurationError(f"AGENTADAPTER_APPROVAL_TOOLS names {name!r}, which is not a function tool "
                                     "(only those run in this process and can wait for an approval)")
        if tool.needs_approval is not True:
            registry.register(dataclasses.replace(tool, needs_approval=True), name=name, replace=True)


@dataclass(frozen=True, slots=True)
class Decision:
    """A human's decision on one pending tool call."""

    call_id: str
    approve: bool
    reason: str | None = None


async def _agents(session: AsyncSession, state: ServiceParts, caller: Caller,
                  run: Run) -> tuple[dict[str, BaseAgent], Strategy | str, RunOptions, str | None]:
    """The run's agents, strategy and options, rebuilt from their stored definitions."""
    settings = await users.get_settings(session, caller.tenant_id, caller.user)
    defaults = agent_defaults(settings)
    build = builder(state)
    try:
        if run.workflow_id is not None:
            row = await workflow_store.get_workflow(session, caller.tenant_id, run.workflow_id)
            workflow, agents = await build.build_workflow(session, caller.tenant_id, row, defaults)
            return agents, workflow.strategy, build.run_options(workflow.options, run.options), row.name
        if run.agent_id is None:
            raise RecordNotFound("agent", None)
        definition = await agent_store.get_agent(session, caller.tenant_id, run.agent_id)
    except RecordNotFound as exc:
        raise Conflict(f"run {run.id} cannot be resumed: its agent or workflow was deleted; cancel it",
                       code="run_target_deleted", param="run_id") from exc
    agent = await build.build_agent(session, caller.tenant_id, definition, defaults)
    return {agent.name: agent}, "sequential", build.run_options(RunOptions(), run.options), None


async def decide(session: AsyncSession, state: ServiceParts, caller: Caller, run_id: uuid.UUID,
                 decisions: Sequence[Decision]) -> Run:
    """Approve or reject each pending call of a paused run and resume it (202 through the API)."""
    run = await run_store.get_run(session, caller.tenant_id, run_id)
    if run.status != "paused":
        raise Conflict(f"run {run_id} is {run.status}, not paused for approval; there is nothing to decide",
                       code="run_not_paused", param="run_id")
    seen: set[str] = set()
    for decision in decisions:
        if decision.call_id in seen:
            raise invalid("decisions", f"tool call {decision.call_id} has two decisions; give one per call")
        seen.add(decision.call_id)
    approvals = {d.call_id: d.approve for d in decisions}
    try:
        resume = RunResume.from_details(run.details or {}, approvals)
    except ValueError as exc:
        raise invalid("decisions", str(exc), code="invalid_decisions") from exc
    reasons = {d.call_id: d.reason for d in decisions if d.reason}
    resume = dataclasses.replace(resume, reasons=reasons)
    agents, strategy, options, workflow = await _agents(session, state, caller, run)
    # Queue workers had started the run (its run_started is written): it goes on running; the server's
    # executor starts it again from queued.
    status = "running" if state.executor.name == "celery" else "queued"
    if not await thread_store.claim_paused_run(session, caller.tenant_id, run_id, state.executor.new_run_lease(),
                                               status=status):
        raise Conflict(f"run {run_id} is no longer paused (another decision was taken meanwhile)",
                       code="run_not_paused", param="run_id")
    audit: dict[str, Any] = {"decisions": [{"call_id": d.call_id, "approve": d.approve, "reason": d.reason}
                                           for d in decisions]}
    await record(session, caller, "run.approve", "run", run_id, audit)
    await session.commit()
    job = RunJob(run.id, caller.tenant_id, run.project_id, run.input, agents, strategy,
                 dataclasses.replace(options, resume=resume), workflow=workflow)
    try:
        await state.executor.submit(job)
    except ExecutorUnavailable as exc:
        await _pause_again(session, run_id)
        raise Unavailable(f"{exc}; the run stays paused, send the decisions again in a moment", code=exc.code,
                          retry_after_s=exc.retry_after_s) from exc
    except Exception:
        await _pause_again(session, run_id)
        raise
    await session.refresh(run)
    return run


async def _pause_again(session: AsyncSession, run_id: uuid.UUID) -> None:
    """The executor did not take the resumed run: it is paused again, its decisions still to be given."""
    await thread_store.pause_again(session, run_id)
    await session.commit()
