"""Bodies of ``/v1/agents``: an agent's spec in (``AgentCreate``, ``AgentUpdate``, ``AgentClone``), the
stored agent and its versions out (``AgentPublic``, ``AgentVersionPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from agentadapter.server.schemas.common import AgentName, ModelId, RequestModel, ResponseModel

__all__ = ["AgentClone", "AgentCreate", "AgentFields", "AgentPublic", "AgentUpdate", "AgentVersionPublic",
           "GuardrailSpec", "MCPServerBody"]


class GuardrailSpec(RequestModel):
    """A check on the run's input or the agent's final output; ``when`` true trips it and stops the run."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["input", "output"]
    when: str = Field(min_length=1, max_length=2000,
                      description="A condition (docs/workflows.md): e.g. \"text contains 'password'\".")
    message: str = Field(default="", max_length=1000, description="What the refusal says.")


class MCPServerBody(RequestModel):
    """An MCP server whose tools the agent uses, named ``<name>__<tool>``: ``{name}`` alone is one the operator
    declared (agentadapter.yaml); with a ``url``, a streamable-HTTP server of the tenant's own."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    url: str | None = Field(default=None, min_length=1, max_length=2000,
                            description="The server's endpoint, e.g. https://host/mcp (none: the operator's server).")
    headers: dict[str, str] = Field(default_factory=dict, max_length=16,
                                    description="Sent with every request (e.g. Authorization); never shown back.")
    tools: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=128, description="Only these of its tools (default: all).")
    exclude: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=128)
    call_timeout_s: float = Field(default=60.0, gt=0, le=600)
    connect_timeout_s: float = Field(default=30.0, gt=0, le=120)


class AgentFields(RequestModel):
    description: str = Field(default="", max_length=4000)
    model: ModelId | None = None
    instructions: str = Field(default="", max_length=200_000)
    tools: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=64)
    handoffs: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=32, description="Names or ids of this tenant's agents.")
    guardrails: list[GuardrailSpec] = Field(default_factory=list, max_length=32)
    output_schema: dict[str, Any] | None = Field(default=None, description="A JSON schema for a typed answer.")
    model_settings: dict[str, Any] = Field(default_factory=dict,
                                           description="temperature, top_p, max_tokens, stop, seed, ...")
    max_turns: int | None = Field(default=None, ge=1, le=100)
    mcp_servers: list[MCPServerBody] = Field(default_factory=list, max_length=8)
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentCreate(AgentFields):
    name: AgentName


class AgentUpdate(RequestModel):
    """Only the fields given change; a change to the spec makes a new version."""

    name: AgentName | None = None
    description: str | None = Field(default=None, max_length=4000)
    model: ModelId | None = None
    instructions: str | None = Field(default=None, max_length=200_000)
    tools: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(default=None, max_length=64)
    handoffs: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(default=None, max_length=32)
    guardrails: list[GuardrailSpec] | None = Field(default=None, max_length=32)
    output_schema: dict[str, Any] | None = None
    model_settings: dict[str, Any] | None = None
    max_turns: int | None = Field(default=None, ge=1, le=100)
    mcp_servers: list[MCPServerBody] | None = Field(default=None, max_length=8)
    metadata: dict[str, Any] | None = None


class AgentClone(RequestModel):
    name: AgentName | None = Field(default=None, description="Default: <name>-copy.")


class AgentPublic(ResponseModel):
    object: Literal["agent"] = "agent"
    id: uuid.UUID
    name: str
    description: str
    model: str | None
    instructions: str
    tools: list[str]
    handoffs: list[str]
    guardrails: list[dict[str, Any]]
    output_schema: dict[str, Any] | None
    model_settings: dict[str, Any]
    max_turns: int | None
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    """Header values are masked: they usually authenticate."""
    metadata: dict[str, Any] = Field(validation_alias="meta")

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _mask_headers(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [{**server, "headers": {k: "***" for k in server.get("headers") or {}}}
                if isinstance(server, dict) else server for server in value]
    version: int
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class AgentVersionPublic(ResponseModel):
    object: Literal["agent.version"] = "agent.version"
    agent_id: uuid.UUID
    version: int
    spec: dict[str, Any]
    created_by: uuid.UUID | None
    created_at: datetime

    @field_validator("spec", mode="before")
    @classmethod
    def _mask_headers(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("mcp_servers"), list):
            return {**value, "mcp_servers": AgentPublic._mask_headers(value["mcp_servers"])}
        return value
