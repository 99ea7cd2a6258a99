"""What every service shares: who acts (:class:`Caller`), the parts a service works with
(:class:`ServiceParts`), the audit entry, and the :class:`~.errors.InvalidInput` that names a field.

A caller is whoever makes a change: an API request's principal (an API key or a JWT's user), or the
operator at the command line (:meth:`Caller.system`). Either way the change and its audit entry are
written in one transaction, by the same function of this package.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.errors import InvalidInput, NotAllowed
from agentadapter.store import audit

if TYPE_CHECKING:
    from agentadapter.agents.tools.registry import ToolRegistry
    from agentadapter.config import Settings
    from agentadapter.llm.client import LLM
    from agentadapter.service.config import ServiceSettings
    from agentadapter.service.executor import RunExecutor
    from agentadapter.service.tenancy import TenantLLMs
    from agentadapter.store.database import Database

__all__ = ["Actor", "BuildParts", "Caller", "ServiceParts", "SystemActor", "invalid", "record"]


class Actor(Protocol):
    """Who acts: its tenant and user, how the audit log names it, and how messages name it."""

    @property
    def tenant_id(self) -> uuid.UUID: ...

    @property
    def user_id(self) -> uuid.UUID | None: ...

    @property
    def actor(self) -> tuple[str, str]:
        """``(actor_type, actor_id)`` for the audit log."""
        ...

    @property
    def subject(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SystemActor:
    """The operator acting on a tenant from the command line (``actor_type`` ``system``)."""

    tenant_id: uuid.UUID
    name: str = "cli"
    user_id: uuid.UUID | None = None

    @property
    def actor(self) -> tuple[str, str]:
        return "system", self.name

    @property
    def subject(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the change, and the request's id (for the audit log)."""

    principal: Actor
    request_id: str | None = None

    @classmethod
    def system(cls, tenant_id: uuid.UUID, name: str = "cli") -> Caller:
        """The operator, at the command line (the audit log's actor ``system``/``name``)."""
        return cls(SystemActor(tenant_id, name))

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.principal.tenant_id

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.principal.user_id

    @property
    def user(self) -> uuid.UUID:
        """The acting user, for what belongs to one (settings, runs); the operator's system actor has none."""
        if self.principal.user_id is None:
            raise NotAllowed(f"{self.principal.subject} acts for no user of the tenant; this needs a user's API key "
                             "or token", code="user_required")
        return self.principal.user_id


class BuildParts(Protocol):
    """What building a tenant's definitions needs: the service's facade, tools and settings."""

    @property
    def llm(self) -> LLM: ...

    @property
    def tools(self) -> ToolRegistry: ...

    @property
    def service(self) -> ServiceSettings: ...


class ServiceParts(BuildParts, Protocol):
    """The long-lived parts a service works with (the API server's state is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def executor(self) -> RunExecutor: ...

    @property
    def tenant_llms(self) -> TenantLLMs: ...


def invalid(param: str | None, message: str, *, code: str = "invalid_value",
            details: Mapping[str, Any] | None = None) -> InvalidInput:
    """The refusal of a field's value, naming the field at fault."""
    where = f"{param}: " if param else ""
    return InvalidInput(f"{where}{message}", code=code, param=param, details=details)


async def record(session: AsyncSession, caller: Caller, action: str, resource_type: str, resource_id: object,
                 details: Mapping[str, Any] | None = None) -> None:
    """Write the audit entry of a change, in the change's transaction."""
    actor_type, actor_id = caller.principal.actor
    await audit.record_audit(session, caller.tenant_id, action=action, resource_type=resource_type,
                             resource_id=resource_id, actor_type=actor_type, actor_id=actor_id, details=details,
                             request_id=caller.request_id)
