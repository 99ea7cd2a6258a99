"""Bodies of ``/v1/threads``: a new conversation in (``ThreadCreate``), the conversation out (``ThreadPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from agentadapter.server.schemas.common import RequestModel, ResponseModel

__all__ = ["CompactionIn", "ThreadCreate", "ThreadPublic"]


class CompactionIn(RequestModel):
    """When and how the thread's history is shortened before a run (unset: the defaults)."""

    strategy: Literal["trim", "summarize"] | None = Field(
        default=None, description="trim: drop the oldest messages; summarize: the agent's model summarizes them.")
    threshold: float | None = Field(default=None, gt=0, le=1,
                                    description="Compact at this share of the context window (default 0.8).")
    context_window: int | None = Field(default=None, ge=1, le=10_000_000,
                                       description="Tokens the model takes (default: the catalog's number).")
    keep_last: int | None = Field(default=None, ge=1, le=1000,
                                  description="The newest messages always kept as they are (default 2).")


class ThreadCreate(RequestModel):
    """A new conversation; runs continue it with ``POST /v1/runs {agent_id, thread_id, input}``."""

    title: Annotated[str, Field(max_length=200)] = ""
    agent_id: uuid.UUID | None = Field(default=None, description="The agent a run on the thread uses by default.")
    messages: Annotated[list[dict[str, Any]], Field(max_length=10_000)] = Field(
        default_factory=list, description="Messages the conversation starts with (OpenAI-style or role/parts).")
    compaction: CompactionIn | None = None


class ThreadPublic(ResponseModel):
    object: Literal["thread"] = "thread"
    id: uuid.UUID
    title: str
    agent_id: uuid.UUID | None
    messages: list[dict[str, Any]] = Field(
        description="The conversation, oldest first: {role, parts: [{kind, text, ...}]}.")
    compaction: dict[str, Any]
    compactions: int = Field(description="How many times the history was compacted.")
    active_run_id: uuid.UUID | None = Field(description="The run continuing the thread now, if any.")
    active_run_status: str | None = None
    created_at: datetime
    updated_at: datetime
