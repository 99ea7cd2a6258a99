"""``/v1/audit-logs``: who changed what in the tenant (admins only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from agentadapter.server.deps import AdminOnly, PageDep, SessionDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import AuditLogPublic, ListPublic
from agentadapter.service.common import invalid
from agentadapter.store import audit

router = APIRouter(prefix=API_PREFIX + "/audit-logs", tags=["audit"])


@router.get("", response_model=ListPublic[AuditLogPublic])
async def list_audit_logs(
    principal: AdminOnly, session: SessionDep, page: PageDep,
    action: Annotated[str | None, Query(max_length=64, description="e.g. agent.create")] = None,
    resource_type: Annotated[str | None, Query(max_length=32)] = None,
    actor_type: Annotated[Literal["user", "api_key", "system"] | None, Query(
        description="Who acted: a JWT user, an API key, or the system (the CLI, the server itself).")] = None,
    since: Annotated[datetime | None, Query(description="Entries at or after this time (ISO 8601; UTC if no zone).")]
    = None,
    until: Annotated[datetime | None, Query(description="Entries before this time (ISO 8601; UTC if no zone).")]
    = None,
) -> ListPublic[AuditLogPublic]:
    found = await audit.list_audit_logs(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                        action=action, resource_type=resource_type, actor_type=actor_type,
                                        since=_aware("since", since), until=_aware("until", until))
    return ListPublic[AuditLogPublic](data=[AuditLogPublic.model_validate(e) for e in found.items],
                                      has_more=found.has_more, next_cursor=found.next_cursor)


def _aware(param: str, moment: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC, the zone the log is kept in. In UTC here, not in the driver:
    # a time near year 1 or 9999 with an offset has no UTC equivalent, and that is the caller's 422.
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid(param, f"{moment.isoformat()} is out of range once in UTC; give a time between years 1 "
                             "and 9999", code="invalid_datetime") from None
