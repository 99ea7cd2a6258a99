"""What every service shares: the caller of a request, the audit entry, and the 422 that names a field."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.server.auth import Principal
from agentadapter.server.errors import APIError
from agentadapter.store import audit

__all__ = ["Caller", "invalid", "record"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the request, and its id (for the audit log)."""

    principal: Principal
    request_id: str | None = None

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.principal.tenant_id

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id


def invalid(param: str | None, message: str, *, code: str = "invalid_value",
            details: Mapping[str, Any] | None = None) -> APIError:
    """A 422 that names the field at fault."""
    where = f"{param}: " if param else ""
    return APIError(422, f"{where}{message}", code=code, param=param, details=details)


async def record(session: AsyncSession, caller: Caller, action: str, resource_type: str, resource_id: object,
                 details: Mapping[str, Any] | None = None) -> None:
    """Write the audit entry of a change, in the change's transaction."""
    actor_type, actor_id = caller.principal.actor
    await audit.record_audit(session, caller.tenant_id, action=action, resource_type=resource_type,
                             resource_id=resource_id, actor_type=actor_type, actor_id=actor_id, details=details,
                             request_id=caller.request_id)
