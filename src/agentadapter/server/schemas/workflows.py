"""Bodies of ``/v1/workflows``: a workflow as JSON or YAML in (``WorkflowCreate``, ``WorkflowUpdate``),
a run of it (``WorkflowRun``), the stored workflow out (``WorkflowPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from agentadapter.server.schemas.common import AgentName, RequestModel, ResponseModel, Task
from agentadapter.server.schemas.runs import RunLimitsIn

__all__ = ["WorkflowCreate", "WorkflowPublic", "WorkflowRun", "WorkflowUpdate"]


class WorkflowCreate(RequestModel):
    """A workflow in the YAML format (docs/workflows.md), given as JSON (``spec``) or as YAML text (``yaml``):
    exactly one of the two."""

    name: AgentName
    description: str = Field(default="", max_length=4000)
    spec: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, max_length=200_000)


class WorkflowUpdate(RequestModel):
    name: AgentName | None = None
    description: str | None = Field(default=None, max_length=4000)
    spec: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, max_length=200_000)


class WorkflowPublic(ResponseModel):
    object: Literal["workflow"] = "workflow"
    id: uuid.UUID
    name: str
    description: str
    spec: dict[str, Any]
    version: int
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class WorkflowRun(RequestModel):
    input: Task | None = Field(default=None, description="Default: the workflow's own input.")
    project_id: uuid.UUID | None = None
    limits: RunLimitsIn | None = None
