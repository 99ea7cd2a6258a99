"""The API's request and response bodies, one module per resource.

``common`` holds the bases every body uses (requests refuse unknown fields; responses carry an
``object`` tag) and the list page; ``agents``, ``runs``, ``workflows``, ``settings``, ``providers``,
``provider_keys``, ``audit`` and ``billing`` (usage and credits) one family each (``AgentCreate``,
``AgentUpdate``, ``AgentPublic``, ...), so that what a client may send and what it gets back are
separate types and nothing internal leaks into a response; ``errors`` the one error shape and which
error responses the OpenAPI document lists for each route. Every name a route uses is re-exported
here: routes import from ``agentadapter.server.schemas``.
"""

from __future__ import annotations

from agentadapter.server.schemas.agents import (
    AgentClone,
    AgentCreate,
    AgentFields,
    AgentPublic,
    AgentUpdate,
    AgentVersionPublic,
    GuardrailSpec,
)
from agentadapter.server.schemas.audit import AuditLogPublic
from agentadapter.server.schemas.billing import (
    CreditGrantIn,
    CreditGrantPublic,
    CreditsPublic,
    CreditTransactionPublic,
    UsageListPublic,
    UsageTotalsPublic,
)
from agentadapter.server.schemas.common import AgentName, ListPublic, ModelId, RequestModel, ResponseModel, Task
from agentadapter.server.schemas.errors import ErrorDetail, ErrorResponse, document_errors, error_responses
from agentadapter.server.schemas.provider_keys import ProviderKeyCreate, ProviderKeyPublic, ProviderKeyRotate
from agentadapter.server.schemas.providers import ProviderPublic
from agentadapter.server.schemas.runs import (
    AgentRunPublic,
    MessagePublic,
    RunCreate,
    RunEventPublic,
    RunLimitsIn,
    RunPublic,
)
from agentadapter.server.schemas.settings import SettingsPatch, SettingsPublic, SettingsPut
from agentadapter.server.schemas.workflows import WorkflowCreate, WorkflowPublic, WorkflowRun, WorkflowUpdate

__all__ = [
    "AgentClone",
    "AgentCreate",
    "AgentFields",
    "AgentName",
    "AgentPublic",
    "AgentRunPublic",
    "AgentUpdate",
    "AgentVersionPublic",
    "AuditLogPublic",
    "CreditGrantIn",
    "CreditGrantPublic",
    "CreditTransactionPublic",
    "CreditsPublic",
    "ErrorDetail",
    "ErrorResponse",
    "GuardrailSpec",
    "ListPublic",
    "MessagePublic",
    "ModelId",
    "ProviderKeyCreate",
    "ProviderKeyPublic",
    "ProviderKeyRotate",
    "ProviderPublic",
    "RequestModel",
    "ResponseModel",
    "RunCreate",
    "RunEventPublic",
    "RunLimitsIn",
    "RunPublic",
    "SettingsPatch",
    "SettingsPublic",
    "SettingsPut",
    "Task",
    "UsageListPublic",
    "UsageTotalsPublic",
    "WorkflowCreate",
    "WorkflowPublic",
    "WorkflowRun",
    "WorkflowUpdate",
    "document_errors",
    "error_responses",
]
