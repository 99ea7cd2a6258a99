"""Tenants and their projects.

A tenant is created with what it needs to be used at once: a ``default`` project (runs go there
unless they name another) and a default user with settings (who API keys act as). The first start
of the service creates the ``default`` tenant the same way (:func:`ensure_tenant`). These functions
take a session and leave committing to the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.models import Project, Tenant
from agentadapter.store.users import ensure_default_user

__all__ = [
    "DEFAULT_PROJECT",
    "DEFAULT_TENANT",
    "create_tenant",
    "default_project",
    "ensure_tenant",
    "get_project",
    "get_tenant",
    "get_tenant_by_name",
    "list_tenants",
    "resolve_project",
]

DEFAULT_TENANT = "default"
DEFAULT_PROJECT = "default"


async def create_tenant(session: AsyncSession, name: str) -> Tenant:
    """A new tenant with its default project, default user and settings."""
    name = name.strip()
    if not name:
        raise RecordConflict("a tenant needs a name", param="name")
    if await get_tenant_by_name(session, name) is not None:
        raise RecordConflict(f"tenant {name!r} exists already; pick another name", param="name")
    tenant = Tenant(id=uuid.uuid4(), name=name)
    session.add(tenant)
    await session.flush()
    await default_project(session, tenant.id)
    await ensure_default_user(session, tenant.id)
    return tenant


async def ensure_tenant(session: AsyncSession, name: str = DEFAULT_TENANT) -> Tenant:
    """The tenant named ``name``, created (with its defaults) when missing."""
    tenant = await get_tenant_by_name(session, name)
    if tenant is None:
        return await create_tenant(session, name)
    await default_project(session, tenant.id)
    await ensure_default_user(session, tenant.id)
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise RecordNotFound("tenant", tenant_id)
    return tenant


async def get_tenant_by_name(session: AsyncSession, name: str) -> Tenant | None:
    found: Tenant | None = await session.scalar(sa.select(Tenant).where(Tenant.name == name))
    return found


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.scalars(sa.select(Tenant).order_by(Tenant.created_at))).all()


async def default_project(session: AsyncSession, tenant_id: uuid.UUID) -> Project:
    """The tenant's ``default`` project, created on first use."""
    project: Project | None = await session.scalar(
        sa.select(Project).where(Project.tenant_id == tenant_id, Project.name == DEFAULT_PROJECT)
    )
    if project is None:
        project = Project(id=uuid.uuid4(), tenant_id=tenant_id, name=DEFAULT_PROJECT,
                          description="Runs that name no project.")
        session.add(project)
        await session.flush()
    return project


async def get_project(session: AsyncSession, tenant_id: uuid.UUID, project_id: uuid.UUID) -> Project:
    project: Project | None = await session.scalar(
        sa.select(Project).where(Project.tenant_id == tenant_id, Project.id == project_id)
    )
    if project is None:
        raise RecordNotFound("project", project_id)
    return project


async def resolve_project(session: AsyncSession, tenant_id: uuid.UUID, project_id: uuid.UUID | None) -> Project:
    """The project a run goes to: the one named (it must be the tenant's), or the default."""
    if project_id is None:
        return await default_project(session, tenant_id)
    return await get_project(session, tenant_id, project_id)
