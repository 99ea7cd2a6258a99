"""``/v1/threads``: create a conversation, read it (its messages), list and delete; runs continue it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from agentadapter.server.deps import RequestId, RunsRead, RunsWrite, WriteSessionDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import ListPublic, error_responses
from agentadapter.server.schemas.threads import ThreadCreate, ThreadPublic
from agentadapter.service import threads as service
from agentadapter.service.common import Caller
from agentadapter.store import threads as store

router = APIRouter(prefix=API_PREFIX + "/threads", tags=["threads"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ThreadPublic, responses=error_responses(422))
async def create_thread(data: ThreadCreate, principal: RunsWrite, session: WriteSessionDep, request_id: RequestId,
                        response: Response) -> ThreadPublic:
    """Start a conversation. Continue it with ``POST /v1/runs {agent_id, thread_id, input}``."""
    request = service.ThreadRequest(
        title=data.title, agent_id=data.agent_id, messages=data.messages,
        compaction=data.compaction.model_dump(exclude_none=True) if data.compaction else None)
    thread = await service.create_thread(session, Caller(principal, request_id), request)
    response.headers["Location"] = f"/v1/threads/{thread.id}"
    return ThreadPublic.model_validate(thread)


@router.get("", response_model=ListPublic[ThreadPublic])
async def list_threads(principal: RunsRead, session: WriteSessionDep,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ListPublic[ThreadPublic]:
    """The tenant's threads, newest first."""
    rows = await store.list_threads(session, principal.tenant_id, limit=limit + 1)
    return ListPublic[ThreadPublic](data=[ThreadPublic.model_validate(t) for t in rows[:limit]],
                                    has_more=len(rows) > limit, next_cursor=None)


@router.get("/{thread_id}", response_model=ThreadPublic)
async def get_thread(thread_id: uuid.UUID, principal: RunsRead, session: WriteSessionDep,
                     request_id: RequestId) -> ThreadPublic:
    """The thread and its messages (the last run's input and answer included once it has ended)."""
    thread, active = await service.read_thread(session, Caller(principal, request_id), thread_id)
    public = ThreadPublic.model_validate(thread)
    public.active_run_status = active
    return public


@router.delete("/{thread_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_thread(thread_id: uuid.UUID, principal: RunsWrite, session: WriteSessionDep,
                        request_id: RequestId) -> Response:
    """Delete the thread and its messages (its runs stay)."""
    await service.delete_thread(session, Caller(principal, request_id), thread_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
