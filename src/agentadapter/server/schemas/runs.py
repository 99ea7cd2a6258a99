"""Bodies of ``/v1/runs``: what to run and its limits in (``RunCreate``), the run, its agent steps,
messages and events out (``RunPublic``, ``AgentRunPublic``, ``MessagePublic``, ``RunEventPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from agentadapter.server.schemas.common import RequestModel, ResponseModel, Task

__all__ = [
    "AgentRunPublic",
    "ApprovalDecisionIn",
    "ApprovalsIn",
    "MessagePublic",
    "RunCreate",
    "RunEventPublic",
    "RunLimitsIn",
    "RunPublic",
]


class RunLimitsIn(RequestModel):
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=1, le=1000)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)



class RunCreate(RequestModel):
    """Run one stored agent (``agent_id``) or workflow (``workflow_id``) on ``input``.

    Exactly one of ``agent_id`` and ``workflow_id``; ``input`` is required for an agent (a workflow
    may have its own).
    """

    agent_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    input: Annotated[Task, Field(description="A prompt, or OpenAI-style messages.")] | None = None
    project_id: uuid.UUID | None = Field(default=None, description="Default: the tenant's default project.")
    limits: RunLimitsIn | None = None
    thread_id: uuid.UUID | None = Field(default=None, description="Continue this thread (agent runs only).")


class ApprovalDecisionIn(RequestModel):
    """A decision on one pending tool call of a paused run."""

    call_id: Annotated[str, Field(min_length=1, max_length=200)]
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Field(max_length=2000)] | None = None


class ApprovalsIn(RequestModel):
    """One decision per pending tool call (the ``pending_approvals`` of the paused run)."""

    decisions: Annotated[list[ApprovalDecisionIn], Field(min_length=1, max_length=100)]


class AgentRunPublic(ResponseModel):
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


class RunPublic(ResponseModel):
    object: Literal["run"] = "run"
    id: uuid.UUID
    status: Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
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
    pending_approvals: list[dict[str, Any]] = Field(
        default_factory=list, description="A paused run's tool calls waiting for a decision: call_id, tool, "
                                          "arguments, agent.")


class MessagePublic(ResponseModel):
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
