"""Tenants and their API keys, made by the operator (``agentadapter tenants create``, ``keys create|revoke``),
and the audit entry of a tenant's data export (the API's and the CLI's).

Each change and its audit entry (the actor ``system``/``cli``) are written in one transaction. A key
is returned once, with its row: only its hash is stored. Servers stop accepting a revoked key within
``AGENTADAPTER_AUTH_CACHE_S``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.common import Caller, record
from agentadapter.store import api_keys, tenants
from agentadapter.store.models import ApiKey, Tenant

__all__ = ["create_api_key", "create_tenant", "record_export", "revoke_api_key"]


async def create_tenant(session: AsyncSession, name: str, *, actor: str = "cli") -> Tenant:
    """A new tenant with its default project, user and settings, audited in its own log."""
    tenant = await tenants.create_tenant(session, name)
    await record(session, Caller.system(tenant.id, actor), "tenant.create", "tenant", tenant.id, {"name": tenant.name})
    await session.commit()
    return tenant


async def record_export(session: AsyncSession, caller: Caller, details: Mapping[str, Any] | None = None) -> None:
    """Audit an export of the caller's tenant's data, and commit: before its first byte is written, so an
    export that starts is one that happened (``GET /v1/export``, ``agentadapter tenants export``)."""
    await record(session, caller, "tenant.export", "tenant", caller.tenant_id, details)
    await session.commit()


async def create_api_key(session: AsyncSession, caller: Caller, *, name: str = "default", role: str = "member",
                         scopes: Iterable[str] = (), expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new API key of the caller's tenant: its row and the key itself (shown once, never stored)."""
    row, key = await api_keys.create_api_key(session, caller.tenant_id, name=name, role=role, scopes=scopes,
                                             expires_at=expires_at)
    await record(session, caller, "api_key.create", "api_key", row.id,
                 {"name": name, "prefix": row.prefix, "role": row.role, "scopes": list(row.scopes)})
    await session.commit()
    return row, key


async def revoke_api_key(session: AsyncSession, caller: Caller, key_id: uuid.UUID) -> ApiKey:
    """Revoke one of the caller's tenant's keys."""
    row = await api_keys.revoke_api_key(session, caller.tenant_id, key_id)
    await record(session, caller, "api_key.revoke", "api_key", row.id, {"prefix": row.prefix})
    await session.commit()
    return row
