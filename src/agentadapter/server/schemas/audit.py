"""The body of ``/v1/audit-logs``: one entry of the tenant's audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from agentadapter.server.schemas.common import ResponseModel

__all__ = ["AuditLogPublic"]


class AuditLogPublic(ResponseModel):
    object: Literal["audit_log"] = "audit_log"
    id: uuid.UUID
    actor_type: str
    actor_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, Any]
    request_id: str | None
    created_at: datetime
