"""Recent gateway responses kept for ``previous_response_id``: the table and its repository.

A :class:`StoredResponse` is one Responses-API answer's conversation (its input and output as
neutral messages), keyed by the tenant and the response id, so one tenant can never continue from
another's response, and kept until ``expires_at``. The application layer
(:mod:`agentadapter.service.responses`) decides what goes in (masked by the tenant's policy, and
naming the user who made it as ``data["user_id"]``) and for how long; expired rows are never read and
are deleted a few at a time as new ones are written. :func:`delete_user_responses` is a user's erasure's
part here (the tenant's cascades from the tenant row).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from agentadapter.store.models import Base, _created

__all__ = ["StoredResponse", "delete_user_responses", "get_stored_response", "put_stored_response"]

_PURGE_BATCH = 100


class StoredResponse(Base):
    """One response's conversation, readable by its tenant until it expires."""

    __tablename__ = "stored_responses"
    __table_args__ = (sa.Index(None, "expires_at"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    response_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column()


async def put_stored_response(session: AsyncSession, tenant_id: uuid.UUID, response_id: str, data: dict[str, Any],
                              expires_at: datetime, now: datetime) -> None:
    """Keep ``data`` for the tenant until ``expires_at``, and delete a batch of expired rows (the caller commits)."""
    expired = sa.select(StoredResponse.tenant_id, StoredResponse.response_id).where(
        StoredResponse.expires_at < now).limit(_PURGE_BATCH)
    rows = (await session.execute(expired)).all()
    for row in rows:
        await session.execute(sa.delete(StoredResponse).where(
            StoredResponse.tenant_id == row.tenant_id, StoredResponse.response_id == row.response_id))
    session.add(StoredResponse(tenant_id=tenant_id, response_id=response_id, data=data, expires_at=expires_at))


async def get_stored_response(session: AsyncSession, tenant_id: uuid.UUID, response_id: str,
                              now: datetime) -> dict[str, Any] | None:
    """The tenant's unexpired response, or None (another tenant's id is None too)."""
    row = await session.scalar(sa.select(StoredResponse.data).where(
        StoredResponse.tenant_id == tenant_id, StoredResponse.response_id == response_id,
        StoredResponse.expires_at >= now))
    return dict(row) if row is not None else None


async def delete_user_responses(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Delete the responses the user made in the tenant (the caller commits); how many were deleted."""
    result = await session.execute(sa.delete(StoredResponse).where(
        StoredResponse.tenant_id == tenant_id, StoredResponse.data["user_id"].as_string() == str(user_id)))
    return int(getattr(result, "rowcount", 0) or 0)
