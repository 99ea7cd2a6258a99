"""The audit log: who created, changed, deleted or ran what, per tenant.

Entries are written in the same transaction as the change they describe, so a change is never
without its entry (nor an entry without its change).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.models import AuditLog
from agentadapter.store.pagination import Page, paginate

__all__ = ["list_audit_logs", "record_audit"]


async def record_audit(
    session: AsyncSession, tenant_id: uuid.UUID, *, action: str, resource_type: str,
    resource_id: object | None = None, actor_type: str = "system", actor_id: object | None = None,
    details: Mapping[str, Any] | None = None, request_id: str | None = None,
) -> AuditLog:
    entry = AuditLog(id=uuid.uuid4(), tenant_id=tenant_id, action=action, resource_type=resource_type,
                     resource_id=str(resource_id) if resource_id is not None else None, actor_type=actor_type,
                     actor_id=str(actor_id) if actor_id is not None else None, details=dict(details or {}),
                     request_id=request_id)
    session.add(entry)
    await session.flush()
    return entry


async def list_audit_logs(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None,
    action: str | None = None, resource_type: str | None = None, actor_type: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> Page[AuditLog]:
    """A tenant's entries, newest first; ``since`` is inclusive, ``until`` exclusive."""
    statement = sa.select(AuditLog).where(AuditLog.tenant_id == tenant_id)
    if actor_type:
        statement = statement.where(AuditLog.actor_type == actor_type)
    if since is not None:
        statement = statement.where(AuditLog.created_at >= since)
    if until is not None:
        statement = statement.where(AuditLog.created_at < until)
    if action:
        statement = statement.where(AuditLog.action == action)
    if resource_type:
        statement = statement.where(AuditLog.resource_type == resource_type)
    page: Page[AuditLog] = await paginate(session, statement, AuditLog, limit=limit, cursor=cursor)
    return page
