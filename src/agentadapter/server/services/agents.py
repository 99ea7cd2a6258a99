"""Agent definitions: create (checked), update (versioned), delete, clone - each audited.

Handoffs are given as names or ids and stored as ids, so renaming an agent does not break the
agents that hand off to it. Reads go straight to the store from the routes.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.server.schemas import AgentClone, AgentCreate, AgentUpdate
from agentadapter.server.services.building import builder, resolve_handoffs
from agentadapter.server.services.common import Caller, record
from agentadapter.server.state import AppState
from agentadapter.store import agents as agent_store
from agentadapter.store.models import AgentDefinition

__all__ = ["clone_agent", "create_agent", "delete_agent", "update_agent"]


def _stored_fields(values: dict[str, Any]) -> dict[str, Any]:
    if "metadata" in values:
        values["meta"] = values.pop("metadata")
    if "guardrails" in values and values["guardrails"] is not None:
        values["guardrails"] = [dict(g) for g in values["guardrails"]]
    return values


def _check(state: AppState, values: dict[str, Any]) -> None:
    builder(state).check_agent(values)


async def create_agent(session: AsyncSession, state: AppState, caller: Caller, data: AgentCreate) -> AgentDefinition:
    values = data.model_dump()
    _check(state, values)
    values["handoffs"] = await resolve_handoffs(session, caller.tenant_id, data.handoffs)
    name = values.pop("name")
    agent = await agent_store.create_agent(session, caller.tenant_id, name=name, created_by=caller.user_id,
                                           **_stored_fields(values))
    await record(session, caller, "agent.create", "agent", agent.id, {"name": agent.name, "version": 1})
    await session.commit()
    return agent


async def update_agent(
    session: AsyncSession, state: AppState, caller: Caller, agent_id: uuid.UUID, data: AgentUpdate
) -> AgentDefinition:
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "description", "instructions", "tools", "handoffs", "guardrails", "model_settings",
                     "metadata"):
        if required in changes and changes[required] is None:
            changes.pop(required)  # null for a field that cannot be null: leave it as it is
    await agent_store.get_agent(session, caller.tenant_id, agent_id)  # 404 before any 422
    _check(state, changes)
    if "handoffs" in changes:
        changes["handoffs"] = await resolve_handoffs(session, caller.tenant_id, changes["handoffs"], own_id=agent_id)
    agent = await agent_store.update_agent(session, caller.tenant_id, agent_id, _stored_fields(changes),
                                           updated_by=caller.user_id)
    await record(session, caller, "agent.update", "agent", agent.id,
                 {"fields": sorted(changes), "version": agent.version})
    await session.commit()
    return agent


async def delete_agent(session: AsyncSession, caller: Caller, agent_id: uuid.UUID) -> None:
    agent = await agent_store.get_agent(session, caller.tenant_id, agent_id)
    name = agent.name
    await agent_store.delete_agent(session, caller.tenant_id, agent_id)
    await record(session, caller, "agent.delete", "agent", agent_id, {"name": name})
    await session.commit()


async def clone_agent(
    session: AsyncSession, caller: Caller, agent_id: uuid.UUID, data: AgentClone
) -> AgentDefinition:
    clone = await agent_store.clone_agent(session, caller.tenant_id, agent_id, name=data.name,
                                          created_by=caller.user_id)
    await record(session, caller, "agent.clone", "agent", clone.id, {"source": str(agent_id), "name": clone.name})
    await session.commit()
    return clone
