"""``/v1/audit-logs``: who changed what in the tenant (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from agentadapter.server.deps import AdminOnly, PageDep, SessionDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import AuditLogPublic, ListPublic
from agentadapter.store import audit

router = APIRouter(prefix=API_PREFIX + "/audit-logs", tags=["audit"])


@router.get("", response_model=ListPublic[AuditLogPublic])
async def list_audit_logs(
    principal: AdminOnly, session: SessionDep, page: PageDep,
    action: Annotated[str | None, Query(max_length=64, description="e.g. agent.create")] = None,
    resource_type: Annotated[str | None, Query(max_length=32)] = None,
) -> ListPublic[AuditLogPublic]:
    found = await audit.list_audit_logs(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                        action=action, resource_type=resource_type)
    return ListPublic[AuditLogPublic](data=[AuditLogPublic.model_validate(e) for e in found.items],
                                      has_more=found.has_more, next_cursor=found.next_cursor)
