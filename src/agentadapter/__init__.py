"""AgentAdapter: run AI agents on any LLM backend.

The public API lives here. Names load lazily on first attribute access so that
``import agentadapter`` stays fast; the implementation modules are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "LLM": "agentadapter.llm.client",
    "LLMStream": "agentadapter.llm.client",
    "Message": "agentadapter.llm.messages",
    "TextPart": "agentadapter.llm.messages",
    "ImagePart": "agentadapter.llm.messages",
    "FilePart": "agentadapter.llm.messages",
    "ToolCallPart": "agentadapter.llm.messages",
    "ToolResultPart": "agentadapter.llm.messages",
    "ReasoningPart": "agentadapter.llm.messages",
    "Request": "agentadapter.llm.messages",
    "Response": "agentadapter.llm.messages",
    "Usage": "agentadapter.llm.messages",
    "StreamEvent": "agentadapter.llm.messages",
    "StreamAccumulator": "agentadapter.llm.messages",
    "Attempt": "agentadapter.llm.messages",
    "CacheHints": "agentadapter.llm.messages",
    "Tool": "agentadapter.llm.tools",
    "OutputSchema": "agentadapter.llm.output",
    "Capabilities": "agentadapter.llm.catalog",
    "Backend": "agentadapter.llm.backends.base",
    "BackendConfig": "agentadapter.llm.backends.base",
    "register_backend": "agentadapter.llm.backends.base",
    "TestBackend": "agentadapter.llm.backends.testing",
    "FunctionBackend": "agentadapter.llm.backends.testing",
    "RetryPolicy": "agentadapter.llm.policy.retry",
    "Timeout": "agentadapter.llm.transport",
    "Settings": "agentadapter.config",
    "get_settings": "agentadapter.config",
    "AgentAdapterError": "agentadapter.llm.errors",
    "ConfigurationError": "agentadapter.llm.errors",
    "InvalidRequestError": "agentadapter.llm.errors",
    "APIError": "agentadapter.llm.errors",
    "APIConnectionError": "agentadapter.llm.errors",
    "APITimeoutError": "agentadapter.llm.errors",
    "StreamInterruptedError": "agentadapter.llm.errors",
    "APIStatusError": "agentadapter.llm.errors",
    "BadRequestError": "agentadapter.llm.errors",
    "ContextWindowExceededError": "agentadapter.llm.errors",
    "ContentFilterError": "agentadapter.llm.errors",
    "AuthenticationError": "agentadapter.llm.errors",
    "PermissionDeniedError": "agentadapter.llm.errors",
    "NotFoundError": "agentadapter.llm.errors",
    "ConflictError": "agentadapter.llm.errors",
    "RateLimitError": "agentadapter.llm.errors",
    "ServerError": "agentadapter.llm.errors",
    "OverloadedError": "agentadapter.llm.errors",
    "CircuitOpenError": "agentadapter.llm.errors",
    "BudgetExceededError": "agentadapter.llm.errors",
    "CapabilityError": "agentadapter.llm.errors",
    "OutputValidationError": "agentadapter.llm.errors",
    "GuardrailTripped": "agentadapter.llm.errors",
    "MaxTurnsExceeded": "agentadapter.llm.errors",
    "AllTargetsFailedError": "agentadapter.llm.errors",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AgentAdapterError",
    "AllTargetsFailedError",
    "Attempt",
    "AuthenticationError",
    "Backend",
    "BackendConfig",
    "BadRequestError",
    "BudgetExceededError",
    "CacheHints",
    "Capabilities",
    "CapabilityError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "FilePart",
    "FunctionBackend",
    "GuardrailTripped",
    "ImagePart",
    "InvalidRequestError",
    "LLM",
    "LLMStream",
    "MaxTurnsExceeded",
    "Message",
    "NotFoundError",
    "OutputSchema",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReasoningPart",
    "Request",
    "Response",
    "RetryPolicy",
    "ServerError",
    "Settings",
    "StreamAccumulator",
    "StreamEvent",
    "StreamInterruptedError",
    "TestBackend",
    "TextPart",
    "Timeout",
    "Tool",
    "ToolCallPart",
    "ToolResultPart",
    "Usage",
    "__version__",
    "get_settings",
    "register_backend",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'agentadapter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from agentadapter.config import Settings, get_settings
    from agentadapter.llm.backends.base import Backend, BackendConfig, register_backend
    from agentadapter.llm.backends.testing import FunctionBackend, TestBackend
    from agentadapter.llm.catalog import Capabilities
    from agentadapter.llm.client import LLM, LLMStream
    from agentadapter.llm.errors import (
        AgentAdapterError,
        AllTargetsFailedError,
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        CapabilityError,
        CircuitOpenError,
        ConfigurationError,
        ConflictError,
        ContentFilterError,
        ContextWindowExceededError,
        GuardrailTripped,
        InvalidRequestError,
        MaxTurnsExceeded,
        NotFoundError,
        OutputValidationError,
        OverloadedError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
        StreamInterruptedError,
    )
    from agentadapter.llm.messages import (
        Attempt,
        CacheHints,
        FilePart,
        ImagePart,
        Message,
        ReasoningPart,
        Request,
        Response,
        StreamAccumulator,
        StreamEvent,
        TextPart,
        ToolCallPart,
        ToolResultPart,
        Usage,
    )
    from agentadapter.llm.output import OutputSchema
    from agentadapter.llm.policy.retry import RetryPolicy
    from agentadapter.llm.tools import Tool
    from agentadapter.llm.transport import Timeout
