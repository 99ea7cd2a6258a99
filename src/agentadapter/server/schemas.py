"""The API's request and response bodies: one family per resource (``AgentCreate``, ``AgentUpdate``,
``AgentPublic``, ...), so what a client may send and what it gets back are separate types and
nothing internal leaks into a response.

Requests refuse unknown fields (a typo is a 422 naming the field, not a silent default). Responses
carry an ``object`` tag like OpenAI's (``agent``, ``run``, ``list``). Lists are
``{object: "list", data, has_more, next_cursor}``: pass ``next_cursor`` back as ``cursor``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AgentClone",
    "AgentCreate",
    "AgentPublic",
    "AgentRunPublic",
    "AgentUpdate",
    "AgentVersionPublic",
    "AuditLogPublic",
    "GuardrailSpec",
    "ListPublic",
    "MessagePublic",
    "ProviderPublic",
    "RunCreate",
    "RunEventPublic",
    "RunLimitsIn",
    "RunPublic",
    "SettingsPatch",
    "SettingsPublic",
    "SettingsPut",
    "WorkflowCreate",
    "WorkflowPublic",
    "WorkflowRun",
    "WorkflowUpdate",
]

T = TypeVar("T")

AgentName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                 description="Unique in the tenant; letters, digits, _ . - (handoffs use it).")]
ModelId = Annotated[str, Field(min_length=1, max_length=200, description="provider/model, or an alias")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListPublic(BaseModel, Generic[T]):
    """A page of a list, newest first."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


# ------------------------------------------------------------------------------------------ agents


class GuardrailSpec(_In):
    """A check on the run's input or the agent's final output; ``when`` true trips it and stops the run."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["input", "output"]
    when: str = Field(min_length=1, max_length=2000,
                      description="A condition (docs/workflows.md): e.g. \"text contains 'password'\".")
    message: str = Field(default="", max_length=1000, description="What the refusal says.")


class AgentFields(_In):
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
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentCreate(AgentFields):
    name: AgentName


class AgentUpdate(_In):
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
    metadata: dict[str, Any] | None = None


class AgentClone(_In):
    name: AgentName | None = Field(default=None, description="Default: <name>-copy.")


class AgentPublic(_Out):
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
    metadata: dict[str, Any] = Field(validation_alias="meta")
    version: int
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class AgentVersionPublic(_Out):
    object: Literal["agent.version"] = "agent.version"
    agent_id: uuid.UUID
    version: int
    spec: dict[str, Any]
    created_by: uuid.UUID | None
    created_at: datetime


# -------------------------------------------------------------------------------------------- runs


class RunLimitsIn(_In):
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=1, le=1000)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)


Task = str | list[dict[str, Any]]


class RunCreate(_In):
    """Run one stored agent (``agent_id``) or workflow (``workflow_id``) on ``input``.

    Exactly one of ``agent_id`` and ``workflow_id``; ``input`` is required for an agent (a workflow
    may have its own).
    """

    agent_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    input: Annotated[Task, Field(description="A prompt, or OpenAI-style messages.")] | None = None
    project_id: uuid.UUID | None = Field(default=None, description="Default: the tenant's default project.")
    limits: RunLimitsIn | None = None


class AgentRunPublic(_Out):
    object: Literal["agent_run"] = "agent_run"
    id: uuid.UUID
    name: str
    step: int
    phase: str
    status: str
    input: str
    output: Any
    text: str
    error: dict[str, Any] | None
    usage: dict[str, Any]
    cost_usd: float
    attempts: int
    model: str | None
    answered_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float


class RunPublic(_Out):
    object: Literal["run"] = "run"
    id: uuid.UUID
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    agent_id: uuid.UUID | None
    agent_version: int | None
    workflow_id: uuid.UUID | None
    workflow_name: str | None
    project_id: uuid.UUID
    input: Any
    output: Any
    text: str
    error: dict[str, Any] | None
    usage: dict[str, Any]
    cost_usd: float
    duration_ms: float
    strategy: str
    last_event_id: int = Field(validation_alias="last_seq", description="seq of the newest persisted event")
    created_by: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    agents: list[AgentRunPublic] | None = Field(default=None, description="Agent steps (on GET /v1/runs/{id}).")


class MessagePublic(_Out):
    object: Literal["agent_message"] = "agent_message"
    id: uuid.UUID
    message_id: str
    type: str
    sender: str
    recipient: str | None
    topic: str | None
    payload: Any
    correlation_id: str | None
    created_at: datetime


class RunEventPublic(BaseModel):
    seq: int
    type: str
    run_id: str
    agent: str | None
    ts: float
    data: dict[str, Any]


# --------------------------------------------------------------------------------------- workflows


class WorkflowCreate(_In):
    """A workflow in the YAML format (docs/workflows.md), given as JSON (``spec``) or as YAML text (``yaml``):
    exactly one of the two."""

    name: AgentName
    description: str = Field(default="", max_length=4000)
    spec: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, max_length=200_000)


class WorkflowUpdate(_In):
    name: AgentName | None = None
    description: str | None = Field(default=None, max_length=4000)
    spec: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, max_length=200_000)


class WorkflowPublic(_Out):
    object: Literal["workflow"] = "workflow"
    id: uuid.UUID
    name: str
    description: str
    spec: dict[str, Any]
    version: int
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class WorkflowRun(_In):
    input: Task | None = Field(default=None, description="Default: the workflow's own input.")
    project_id: uuid.UUID | None = None
    limits: RunLimitsIn | None = None


# ---------------------------------------------------------------------------------------- settings


class SettingsPut(_In):
    """The whole settings; a field left out goes back to its default."""

    default_model: ModelId | None = None
    default_models: dict[str, ModelId] = Field(default_factory=dict,
                                               description="By purpose: chat, embedding, vision, ...")
    rag_archives: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=100, description="File archives searched for RAG by default.")
    prefer_local: bool = Field(default=False, description="Prefer local models to online ones.")
    preferences: dict[str, Any] = Field(default_factory=dict)


class SettingsPatch(_In):
    """Only the fields given change."""

    default_model: ModelId | None = None
    default_models: dict[str, ModelId] | None = None
    rag_archives: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(default=None,
                                                                                           max_length=100)
    prefer_local: bool | None = None
    preferences: dict[str, Any] | None = None


class SettingsPublic(_Out):
    object: Literal["settings"] = "settings"
    user_id: uuid.UUID
    default_model: str | None
    default_models: dict[str, str]
    rag_archives: list[str]
    prefer_local: bool
    preferences: dict[str, Any]
    updated_at: datetime


# --------------------------------------------------------------------------------------- providers


class ProviderPublic(BaseModel):
    object: Literal["provider"] = "provider"
    name: str
    label: str
    wire_format: str
    base_url: str | None
    key_env: str | None
    key_set: bool
    key_required: bool
    local: bool


class AuditLogPublic(_Out):
    object: Literal["audit_log"] = "audit_log"
    id: uuid.UUID
    actor_type: str
    actor_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, Any]
    request_id: str | None
    created_at: datetime
