"""Agent definitions: create (checked), update (versioned), delete, clone - each audited.

Handoffs are given as names or ids and stored as ids, so renaming an agent does not break the
agents that hand off to it. Reads go straight to the store from the routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.building import builder, raise_all, resolve_handoffs
from agentadapter.service.common import BuildParts, Caller, record
from agentadapter.service.errors import InvalidInput
from agentadapter.store import agents as agent_store
from agentadapter.store.models import AgentDefinition

__all__ = ["clone_agent", "create_agent", "delete_agent", "update_agent"]


def _stored_fields(values: dict[str, Any]) -> dict[str, Any]:
    if "metadata" in values:
        values["meta"] = values.pop("metadata")
    if "guardrails" in values and values["guardrails"] is not None:
        values["guardrails"] = [dict(g) for g in values["guardrails"]]
    if "mcp_servers" in values and values["mcp_servers"] is not None:
        values["mcp_servers"] = [dict(s) for s in values["mcp_servers"]]
    return values


def _check(parts: BuildParts, values: dict[str, Any]) -> None:
    builder(parts).check_agent(values)


async def create_agent(session: AsyncSession, parts: BuildParts, caller: Caller,
                       fields: Mapping[str, Any]) -> AgentDefinition:
    """``fields``: the agent's validated fields (``AgentCreate``'s), handoffs as names or ids."""
    values = dict(fields)
    problems: list[InvalidInput] = []
    try:
        _check(parts, values)
    except InvalidInput as problem:
        problems.append(problem)
    try:  # a wrong handoff is reported with the fields' problems, not after they are fixed
        values["handoffs"] = await resolve_handoffs(session, caller.tenant_id, list(values.get("handoffs") or []))
    except InvalidInput as problem:
        problems.append(problem)
    raise_all(problems)
    name = values.pop("name")
    agent = await agent_store.create_agent(session, caller.tenant_id, name=name, created_by=caller.user_id,
                                           **_stored_fields(values))
    await record(session, caller, "agent.create", "agent", agent.id, {"name": agent.name, "version": 1})
    await session.commit()
    return agent


async def update_agent(
    session: AsyncSession, parts: BuildParts, caller: Caller, agent_id: uuid.UUID, fields: Mapping[str, Any]
) -> AgentDefinition:
    """``fields``: the fields the request sets (``AgentUpdate``'s, unset ones left out)."""
    changes = dict(fields)
    for required in ("name", "description", "instructions", "tools", "handoffs", "guardrails", "model_settings",
                     "metadata", "mcp_servers"):
        if required in changes and changes[required] is None:
            changes.pop(required)  # null for a field that cannot be null: leave it as it is
    await agent_store.get_agent(session, caller.tenant_id, agent_id)  # 404 before any 422
    problems: list[InvalidInput] = []
    try:
        _check(parts, changes)
    except InvalidInput as problem:
        problems.append(problem)
    if "handoffs" in changes:
        try:
            changes["handoffs"] = await resolve_handoffs(session, caller.tenant_id, changes["handoffs"],
                                                         own_id=agent_id)
        except InvalidInput as problem:
            problems.append(problem)
    raise_all(problems)
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
    session: AsyncSession, caller: Caller, agent_id: uuid.UUID, name: str | None = None
) -> AgentDefinition:
    """A copy under ``name`` (default ``<name>-copy``)."""
    clone = await agent_store.clone_agent(session, caller.tenant_id, agent_id, name=name,
                                          created_by=caller.user_id)
    await record(session, caller, "agent.clone", "agent", clone.id, {"source": str(agent_id), "name": clone.name})
    await session.commit()
    return clone
