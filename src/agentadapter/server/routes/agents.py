"""``/v1/agents``: create, list, get, update, delete, clone, and the version history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from agentadapter.server.deps import (
    MAX_DB_INT,
    AgentsRead,
    AgentsWrite,
    PageDep,
    RequestId,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import (
    AgentClone,
    AgentCreate,
    AgentPublic,
    AgentUpdate,
    AgentVersionPublic,
    ListPublic,
    error_responses,
)
from agentadapter.service import agents as service
from agentadapter.service.common import Caller
from agentadapter.store import agents as store

router = APIRouter(prefix=API_PREFIX + "/agents", tags=["agents"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgentPublic, responses=error_responses(409))
async def create_agent(data: AgentCreate, principal: AgentsWrite, session: WriteSessionDep, state: StateDep,
                       request_id: RequestId, response: Response) -> AgentPublic:
    """Create an agent; its model, tools, handoffs, guardrails and output schema are checked first."""
    agent = await service.create_agent(session, state, Caller(principal, request_id), data.model_dump())
    response.headers["Location"] = f"/v1/agents/{agent.id}"
    return AgentPublic.model_validate(agent)


@router.get("", response_model=ListPublic[AgentPublic])
async def list_agents(
    principal: AgentsRead, state: StateDep, page: PageDep,
    name: Annotated[str | None, Query(max_length=100, description="Part of the name.")] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    tool: Annotated[str | None, Query(max_length=100, description="Agents that use this tool.")] = None,
) -> ListPublic[AgentPublic]:
    """The tenant's agents, newest first."""
    # The hot reads open their session here rather than through SessionDep: a generator dependency costs
    # FastAPI an exit stack per request, more than the read itself.
    async with state.db.session() as session:
        found = await store.list_agents(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                        name=name, model=model, tool=tool)
    return ListPublic[AgentPublic](data=[AgentPublic.model_validate(a) for a in found.items],
                                   has_more=found.has_more, next_cursor=found.next_cursor)


@router.get("/{agent_id}", response_model=AgentPublic)
async def get_agent(agent_id: uuid.UUID, principal: AgentsRead, state: StateDep) -> AgentPublic:
    async with state.db.session() as session:
        return AgentPublic.model_validate(await store.read_agent(session, principal.tenant_id, agent_id))


@router.patch("/{agent_id}", response_model=AgentPublic, responses=error_responses(409))
async def update_agent(agent_id: uuid.UUID, data: AgentUpdate, principal: AgentsWrite, session: WriteSessionDep,
                       state: StateDep, request_id: RequestId) -> AgentPublic:
    """Change some fields; a change to the spec makes a new version."""
    agent = await service.update_agent(session, state, Caller(principal, request_id), agent_id,
                                       data.model_dump(exclude_unset=True))
    return AgentPublic.model_validate(agent)


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: uuid.UUID, principal: AgentsWrite, session: WriteSessionDep,
                       request_id: RequestId) -> Response:
    """Delete an agent and its versions; its runs stay, without the link."""
    await service.delete_agent(session, Caller(principal, request_id), agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{agent_id}/clone", status_code=status.HTTP_201_CREATED, response_model=AgentPublic,
             responses=error_responses(409))
async def clone_agent(agent_id: uuid.UUID, principal: AgentsWrite, session: WriteSessionDep, request_id: RequestId,
                      response: Response, data: AgentClone | None = None) -> AgentPublic:
    """A copy of the agent under a new name (default ``<name>-copy``), with its own history."""
    clone = await service.clone_agent(session, Caller(principal, request_id), agent_id, data.name if data else None)
    response.headers["Location"] = f"/v1/agents/{clone.id}"
    return AgentPublic.model_validate(clone)


@router.get("/{agent_id}/versions", response_model=ListPublic[AgentVersionPublic])
async def list_versions(
    agent_id: uuid.UUID, principal: AgentsRead, session: SessionDep
) -> ListPublic[AgentVersionPublic]:
    """Every version of the agent's spec, newest first."""
    versions = await store.list_agent_versions(session, principal.tenant_id, agent_id)
    return ListPublic[AgentVersionPublic](data=[AgentVersionPublic.model_validate(v) for v in versions],
                                          has_more=False, next_cursor=None)


@router.get("/{agent_id}/versions/{version}", response_model=AgentVersionPublic)
async def get_version(agent_id: uuid.UUID, version: Annotated[int, Path(ge=1, le=MAX_DB_INT)], principal: AgentsRead,
                      session: SessionDep) -> AgentVersionPublic:
    row = await store.get_agent_version(session, principal.tenant_id, agent_id, version)
    return AgentVersionPublic.model_validate(row)
