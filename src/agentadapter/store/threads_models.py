"""The conversation tables: :class:`Thread`, a tenant's conversation that runs continue.

A thread keeps its messages (the neutral model's dicts, oldest first; a compacted thread starts with a
summary or has lost its oldest turns) and the run that continues it now, whose input and answer
join the messages once it has ended (:mod:`agentadapter.store.threads`). Imported by
:mod:`agentadapter.store.models`, so one metadata holds every table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from agentadapter.store.models import Base, utcnow

__all__ = ["Thread"]


class Thread(Base):
    """A conversation of one tenant: its messages so far and how it is compacted."""

    __tablename__ = "threads"
    __table_args__ = (sa.Index(None, "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("agent_definitions.id", ondelete="SET NULL"))
    """The agent a run on this thread uses when it names none."""
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    messages: Mapped[list[Any]] = mapped_column(default=list)
    """message dicts (``role``, ``parts``: the neutral message model), oldest first."""
    compaction: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """``{strategy: trim | summarize, context_window, threshold, keep_last}`` (empty: the defaults)."""
    compactions: Mapped[int] = mapped_column(default=0)
    """How many times the history was compacted."""
    active_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    """The run continuing the thread, until its input and answer have joined the messages."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
