"""``/v1/runs``: start (202), list, get, cancel, the agents' messages, and the events as SSE."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from agentadapter.server.deps import (
    MAX_DB_INT,
    PageDep,
    RequestId,
    RunsRead,
    RunsWrite,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import (
    AgentRunPublic,
    ListPublic,
    MessagePublic,
    RunCreate,
    RunPublic,
    error_responses,
)
from agentadapter.server.schemas.runs import ApprovalsIn
from agentadapter.server.sse import SSE_HEADERS, sse_stream
from agentadapter.service import approvals, threads
from agentadapter.service import runs as service
from agentadapter.service.common import Caller, invalid
from agentadapter.service.runs import RunRequest
from agentadapter.store import runs as store
from agentadapter.store.models import pending_approvals

router = APIRouter(prefix=API_PREFIX + "/runs", tags=["runs"])

RunStatus = Annotated[str | None, Query(pattern="^(queued|running|paused|completed|failed|cancelled)$")]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=RunPublic, responses=error_responses(402, 404))
async def create_run(data: RunCreate, principal: RunsWrite, session: WriteSessionDep, state: StateDep,
                     request_id: RequestId, response: Response) -> RunPublic:
    """Start a run of an agent or a workflow; it executes in the background (status ``queued``).

    With ``thread_id`` an agent run continues that conversation (the thread's own agent when
    ``agent_id`` is not given).

    Follow it with ``GET /v1/runs/{id}`` or its events at ``GET /v1/runs/{id}/events``.
    """
    caller = Caller(principal, request_id)
    if data.thread_id is not None and data.agent_id is None and data.workflow_id is None:
        data.agent_id = await threads.default_agent(session, caller, data.thread_id)  # the thread's own agent
    if (data.agent_id is None) == (data.workflow_id is None):
        raise invalid("agent_id", "give exactly one of agent_id and workflow_id", code="missing_target")
    if data.thread_id is not None and data.workflow_id is not None:
        raise invalid("thread_id", "a thread is continued by an agent run; give agent_id, not workflow_id",
                      code="thread_needs_agent")
    request = RunRequest(input=data.input, project_id=data.project_id,
                         limits=data.limits.model_dump() if data.limits else None, thread_id=data.thread_id)
    if data.workflow_id is not None:
        run = await service.start_workflow_run(session, state, caller, data.workflow_id, request)
    else:
        assert data.agent_id is not None
        run = await service.start_agent_run(session, state, caller, data.agent_id, request)
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return RunPublic.model_validate(run)


@router.get("", response_model=ListPublic[RunPublic])
async def list_runs(principal: RunsRead, state: StateDep, page: PageDep, status: RunStatus = None,
                    agent_id: uuid.UUID | None = None, workflow_id: uuid.UUID | None = None,
                    project_id: uuid.UUID | None = None) -> ListPublic[RunPublic]:
    """The tenant's runs, newest first, optionally of one status, agent, workflow or project."""
    # The session opened here, not through SessionDep: a generator dependency costs more than the read.
    async with state.db.session() as session:
        found = await store.list_runs(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                      status=status, agent_id=agent_id, workflow_id=workflow_id, project_id=project_id)
    return ListPublic[RunPublic](data=[RunPublic.model_validate(r) for r in found.items], has_more=found.has_more,
                                 next_cursor=found.next_cursor)


@router.get("/{run_id}", response_model=RunPublic)
async def get_run(run_id: uuid.UUID, principal: RunsRead, state: StateDep) -> RunPublic:
    """The run, with its agent steps."""
    async with state.db.session() as session:
        run = await store.read_run(session, principal.tenant_id, run_id)
        steps = await store.read_agent_runs(session, principal.tenant_id, run_id)
    public = RunPublic.model_validate(run)
    public.agents = [AgentRunPublic.model_validate(s) for s in steps]
    public.pending_approvals = pending_approvals(run["status"], run.get("details"))
    return public


@router.post("/{run_id}/cancel", response_model=RunPublic, status_code=status.HTTP_202_ACCEPTED,
             responses=error_responses(409))
async def cancel_run(run_id: uuid.UUID, principal: RunsWrite, session: WriteSessionDep, state: StateDep,
                     request_id: RequestId) -> RunPublic:
    """Cancel a queued or running run (409 when it has already ended)."""
    run = await service.cancel_run(session, state, Caller(principal, request_id), run_id)
    return RunPublic.model_validate(run)


@router.post("/{run_id}/approvals", response_model=RunPublic, status_code=status.HTTP_202_ACCEPTED,
             responses=error_responses(404, 409))
async def decide_approvals(run_id: uuid.UUID, data: ApprovalsIn, principal: RunsWrite, session: WriteSessionDep,
                           state: StateDep, request_id: RequestId) -> RunPublic:
    """Approve or reject each pending tool call of a paused run; the run resumes (status ``queued``).

    One decision per call of the run's ``pending_approvals`` (409 when the run is not paused).
    """
    decisions = [approvals.Decision(d.call_id, d.decision == "approve", d.reason) for d in data.decisions]
    run = await approvals.decide(session, state, Caller(principal, request_id), run_id, decisions)
    return RunPublic.model_validate(run)


@router.get("/{run_id}/messages", response_model=ListPublic[MessagePublic])
async def list_messages(
    run_id: uuid.UUID, principal: RunsRead, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> ListPublic[MessagePublic]:
    """Messages the run's agents sent each other, oldest first."""
    await store.get_run(session, principal.tenant_id, run_id)
    rows = await store.list_messages(session, principal.tenant_id, run_id, limit=limit + 1, offset=offset)
    return ListPublic[MessagePublic](data=[MessagePublic.model_validate(m) for m in rows[:limit]],
                                     has_more=len(rows) > limit, next_cursor=None)


@router.get("/{run_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "The run's events, as SSE."}})
async def run_events(
    run_id: uuid.UUID, principal: RunsRead, state: StateDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event seq.")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_DB_INT, description="Start after this seq (like Last-Event-ID).")]
    = None,
) -> StreamingResponse:
    """The run's events as Server-Sent Events: kept ones first, then live ones (tokens too) until it ends.

    Each frame's ``id`` is the event's ``seq``; reconnect with ``Last-Event-ID`` to resume.
    """
    start = after or 0
    if last_event_id:
        seq = last_event_id.strip()
        # ASCII digits only (str.isdigit() takes other scripts' digits too, which int() may refuse), and
        # within the seq column's range.
        if not (seq.isascii() and seq.isdigit()) or int(seq) > MAX_DB_INT:
            raise invalid("Last-Event-ID", f"{last_event_id!r} is not an event seq (a whole number up to "
                                           f"{MAX_DB_INT})")
        start = int(seq)
    async with state.db.session() as session:  # not a dependency: it would stay open for the whole stream
        await store.get_run(session, principal.tenant_id, run_id)
    events = service.run_events(state, principal.tenant_id, run_id, start)
    stop = state.drain.started if state.drain is not None else None  # SIGTERM: end, the client resumes elsewhere
    return StreamingResponse(sse_stream(events, heartbeat_s=state.server.sse_heartbeat_s, stop=stop),
                             media_type="text/event-stream", headers=SSE_HEADERS)
