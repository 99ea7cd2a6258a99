"""``/v1/agent-types``: the agent types a tenant may name - the built-in ``llm`` and the operator's custom agents."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from agentadapter.server.deps import AgentsRead
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.service import agent_types as service

router = APIRouter(prefix=API_PREFIX + "/agent-types", tags=["agents"])


@router.get("")
async def list_agent_types(principal: AgentsRead) -> dict[str, Any]:
    """Name, type, capabilities and description of each (a workflow entry names one with ``type:``)."""
    data = [{"object": "agent_type", **dataclasses.asdict(info)} for info in service.list_agent_types()]
    return {"object": "list", "data": data, "has_more": False, "next_cursor": None}
