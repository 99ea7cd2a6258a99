"""Stored workflows - the YAML workflow format kept as JSON - within one tenant.

The spec is validated by the caller (the orchestrator's workflow parser) before it gets here; this
module stores it, bumps ``version`` when it changes, and keeps names unique per tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.models import Workflow
from agentadapter.store.pagination import Page, paginate

__all__ = ["create_workflow", "delete_workflow", "find_workflows", "get_workflow", "list_workflows", "update_workflow"]


async def _name_taken(session: AsyncSession, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None) -> bool:
    statement = sa.select(Workflow.id).where(Workflow.tenant_id == tenant_id, Workflow.name == name)
    if exclude is not None:
        statement = statement.where(Workflow.id != exclude)
    return await session.scalar(statement) is not None


def _taken(name: str) -> RecordConflict:
    return RecordConflict(f"a workflow named {name!r} exists already in this tenant; pick another name", param="name")


async def create_workflow(
    session: AsyncSession, tenant_id: uuid.UUID, *, name: str, spec: Mapping[str, Any], description: str = "",
    created_by: uuid.UUID | None = None,
) -> Workflow:
    if await _name_taken(session, tenant_id, name, None):
        raise _taken(name)
    workflow = Workflow(id=uuid.uuid4(), tenant_id=tenant_id, name=name, description=description, spec=dict(spec),
                        version=1, created_by=created_by)
    session.add(workflow)
    await session.flush()
    return workflow


async def get_workflow(session: AsyncSession, tenant_id: uuid.UUID, workflow_id: uuid.UUID) -> Workflow:
    workflow: Workflow | None = await session.scalar(
        sa.select(Workflow).where(Workflow.tenant_id == tenant_id, Workflow.id == workflow_id)
    )
    if workflow is None:
        raise RecordNotFound("workflow", workflow_id)
    return workflow


async def find_workflows(
    session: AsyncSession, tenant_id: uuid.UUID, refs: Iterable[str]
) -> dict[str, Workflow]:
    """The tenant's workflows that these names or ids refer to, by the reference (missing ones left out)."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    ids: dict[str, uuid.UUID] = {}
    for ref in refs:
        try:
            ids[ref] = uuid.UUID(ref)
        except ValueError:
            pass
    conditions = [Workflow.name.in_(refs)]
    if ids:
        conditions.append(Workflow.id.in_(list(ids.values())))
    rows = (await session.scalars(
        sa.select(Workflow).where(Workflow.tenant_id == tenant_id, sa.or_(*conditions))
    )).all()
    by_name = {row.name: row for row in rows}
    by_id = {row.id: row for row in rows}
    found: dict[str, Workflow] = {}
    for ref in refs:
        row = by_name.get(ref) or (by_id.get(ids[ref]) if ref in ids else None)
        if row is not None:
            found[ref] = row
    return found


async def list_workflows(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None
) -> Page[Workflow]:
    statement = sa.select(Workflow).where(Workflow.tenant_id == tenant_id)
    page: Page[Workflow] = await paginate(session, statement, Workflow, limit=limit, cursor=cursor)
    return page


async def update_workflow(
    session: AsyncSession, tenant_id: uuid.UUID, workflow_id: uuid.UUID, changes: Mapping[str, Any]
) -> Workflow:
    unknown = set(changes) - {"name", "description", "spec"}
    if unknown:
        raise ValueError(f"unknown workflow fields {sorted(unknown)}")
    workflow = await get_workflow(session, tenant_id, workflow_id)
    name = changes.get("name")
    if name is not None and name != workflow.name and await _name_taken(session, tenant_id, name, workflow.id):
        raise _taken(name)
    if "spec" in changes and changes["spec"] != workflow.spec:
        workflow.version += 1
    for field_name, value in changes.items():
        setattr(workflow, field_name, dict(value) if field_name == "spec" else value)
    await session.flush()
    return workflow


async def delete_workflow(session: AsyncSession, tenant_id: uuid.UUID, workflow_id: uuid.UUID) -> None:
    workflow = await get_workflow(session, tenant_id, workflow_id)
    await session.delete(workflow)
    await session.flush()
