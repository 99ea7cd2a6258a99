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
    "EmbeddingResponse": "agentadapter.llm.embeddings",
    "BatchItem": "agentadapter.llm.batch",
    "BatchJob": "agentadapter.llm.batch",
    "BatchResult": "agentadapter.llm.batch",
    "BedrockBackend": "agentadapter.llm.backends.bedrock",
    "VertexBackend": "agentadapter.llm.backends.vertex",
    "Backend": "agentadapter.llm.backends.base",
    "BackendConfig": "agentadapter.llm.backends.base",
    "register_backend": "agentadapter.llm.backends.base",
    "TestBackend": "agentadapter.llm.backends.testing",
    "FunctionBackend": "agentadapter.llm.backends.testing",
    "RetryPolicy": "agentadapter.llm.policy.retry",
    "Timeout": "agentadapter.llm.transport",
    "Settings": "agentadapter.config",
    "get_settings": "agentadapter.config",
    "AgentAdapterError": "agentadapter.errors",
    "ConfigurationError": "agentadapter.errors",
    "InvalidRequestError": "agentadapter.errors",
    "APIError": "agentadapter.llm.errors",
    "APIConnectionError": "agentadapter.llm.errors",
    "APITimeoutError": "agentadapter.llm.errors",
    "StreamInterruptedError": "agentadapter.llm.errors",
    "InvalidResponseError": "agentadapter.llm.errors",
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
    "InsufficientCreditsError": "agentadapter.llm.errors",
    "CapabilityError": "agentadapter.llm.errors",
    "OutputValidationError": "agentadapter.llm.errors",
    "GuardrailTripped": "agentadapter.agents.errors",
    "MaxTurnsExceeded": "agentadapter.agents.errors",
    "FrameworkError": "agentadapter.frameworks.errors",
    "AllTargetsFailedError": "agentadapter.llm.errors",
    "BaseAgent": "agentadapter.agents.base",
    "AgentContext": "agentadapter.agents.context",
    "AgentResult": "agentadapter.agents.result",
    "RunState": "agentadapter.agents.result",
    "RunConfig": "agentadapter.agents.run_config",
    "ModelSettings": "agentadapter.agents.run_config",
    "LLMAgent": "agentadapter.agents.llm_agent",
    "OnlineAgent": "agentadapter.agents.online",
    "LocalAgent": "agentadapter.agents.local",
    "tool": "agentadapter.agents.tools",
    "FunctionTool": "agentadapter.agents.tools",
    "ToolRegistry": "agentadapter.agents.tools",
    "handoff": "agentadapter.agents.handoffs",
    "Handoff": "agentadapter.agents.handoffs",
    "GuardrailResult": "agentadapter.agents.guardrails",
    "input_guardrail": "agentadapter.agents.guardrails",
    "output_guardrail": "agentadapter.agents.guardrails",
    "create_agent": "agentadapter.agents.factory",
    "AgentLoader": "agentadapter.agents.loader",
    "UsageLedger": "agentadapter.llm.ledger",
    "UsageTotals": "agentadapter.llm.ledger",
    "Budget": "agentadapter.llm.policy.budget",
    "BudgetGuard": "agentadapter.llm.policy.budget",
    "BreakerConfig": "agentadapter.llm.policy.breaker",
    "RateLimitConfig": "agentadapter.llm.policy.ratelimit",
    "TargetHealth": "agentadapter.llm.health",
    "configure_logging": "agentadapter.observability.logging",
    "create_protocol": "agentadapter.protocol",
    "CommunicationProtocol": "agentadapter.protocol",
    "Envelope": "agentadapter.protocol",
    "MessageBus": "agentadapter.protocol",
    "AgentRegistry": "agentadapter.protocol",
    "SharedContext": "agentadapter.protocol",
    "ProtocolError": "agentadapter.protocol",
    "Orchestrator": "agentadapter.orchestrator",
    "RunHandle": "agentadapter.orchestrator",
    "RunResult": "agentadapter.orchestrator",
    "AgentRunResult": "agentadapter.orchestrator",
    "RunEvent": "agentadapter.orchestrator",
    "RunOptions": "agentadapter.orchestrator",
    "RunLimits": "agentadapter.orchestrator",
    "Sequential": "agentadapter.orchestrator",
    "Parallel": "agentadapter.orchestrator",
    "Adaptive": "agentadapter.orchestrator",
    "Loop": "agentadapter.orchestrator",
    "Workflow": "agentadapter.orchestrator",
    "load_workflow": "agentadapter.orchestrator",
    "RunRecorder": "agentadapter.orchestrator",
    "InMemoryRunRecorder": "agentadapter.orchestrator",
    "RunLimitExceeded": "agentadapter.orchestrator",
    "WorkflowError": "agentadapter.orchestrator",
    "MCPServer": "agentadapter.agents.tools",
    "Shell": "agentadapter.agents.tools",
    "WebSearch": "agentadapter.agents.tools",
    "HTTPFetch": "agentadapter.agents.tools",
    "ToolError": "agentadapter.agents.tools",
    "LocalBackend": "agentadapter.llm.backends.local",
    "Runner": "agentadapter.llm.runners",
    "GenerationConfig": "agentadapter.llm.runners",
    "register_runner": "agentadapter.llm.runners",
    "get_runner": "agentadapter.llm.runners",
    "Dataset": "agentadapter.evals",
    "ExperimentResult": "agentadapter.evals",
    "load_dataset": "agentadapter.evals",
    "run_experiment": "agentadapter.evals",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Adaptive",
    "AgentAdapterError",
    "AgentContext",
    "AgentLoader",
    "AgentRegistry",
    "AgentResult",
    "AgentRunResult",
    "AllTargetsFailedError",
    "Attempt",
    "AuthenticationError",
    "Backend",
    "BackendConfig",
    "BadRequestError",
    "BaseAgent",
    "BatchItem",
    "BatchJob",
    "BatchResult",
    "BedrockBackend",
    "BreakerConfig",
    "Budget",
    "BudgetExceededError",
    "BudgetGuard",
    "CacheHints",
    "Capabilities",
    "CapabilityError",
    "CircuitOpenError",
    "CommunicationProtocol",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "Dataset",
    "EmbeddingResponse",
    "Envelope",
    "ExperimentResult",
    "FilePart",
    "FrameworkError",
    "FunctionBackend",
    "FunctionTool",
    "GenerationConfig",
    "GuardrailResult",
    "GuardrailTripped",
    "HTTPFetch",
    "Handoff",
    "ImagePart",
    "InMemoryRunRecorder",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLM",
    "LLMAgent",
    "LLMStream",
    "LocalAgent",
    "LocalBackend",
    "Loop",
    "MCPServer",
    "MaxTurnsExceeded",
    "Message",
    "MessageBus",
    "ModelSettings",
    "NotFoundError",
    "OnlineAgent",
    "Orchestrator",
    "OutputSchema",
    "OutputValidationError",
    "OverloadedError",
    "Parallel",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitConfig",
    "RateLimitError",
    "ReasoningPart",
    "Request",
    "Response",
    "RetryPolicy",
    "RunConfig",
    "RunEvent",
    "RunHandle",
    "RunLimitExceeded",
    "RunLimits",
    "RunOptions",
    "RunRecorder",
    "RunResult",
    "RunState",
    "Runner",
    "Sequential",
    "ServerError",
    "Settings",
    "SharedContext",
    "Shell",
    "StreamAccumulator",
    "StreamEvent",
    "StreamInterruptedError",
    "TargetHealth",
    "TestBackend",
    "TextPart",
    "Timeout",
    "Tool",
    "ToolCallPart",
    "ToolError",
    "ToolRegistry",
    "ToolResultPart",
    "Usage",
    "UsageLedger",
    "UsageTotals",
    "VertexBackend",
    "WebSearch",
    "Workflow",
    "WorkflowError",
    "__version__",
    "configure_logging",
    "create_agent",
    "create_protocol",
    "get_runner",
    "get_settings",
    "handoff",
    "input_guardrail",
    "load_dataset",
    "load_workflow",
    "output_guardrail",
    "register_backend",
    "register_runner",
    "run_experiment",
    "tool",
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
    from agentadapter.agents.base import BaseAgent
    from agentadapter.agents.context import AgentContext
    from agentadapter.agents.errors import GuardrailTripped, MaxTurnsExceeded
    from agentadapter.agents.factory import create_agent
    from agentadapter.agents.guardrails import GuardrailResult, input_guardrail, output_guardrail
    from agentadapter.agents.handoffs import Handoff, handoff
    from agentadapter.agents.llm_agent import LLMAgent
    from agentadapter.agents.loader import AgentLoader
    from agentadapter.agents.local import LocalAgent
    from agentadapter.agents.online import OnlineAgent
    from agentadapter.agents.result import AgentResult, RunState
    from agentadapter.agents.run_config import ModelSettings, RunConfig
    from agentadapter.agents.tools import (
        FunctionTool,
        HTTPFetch,
        MCPServer,
        Shell,
        ToolError,
        ToolRegistry,
        WebSearch,
        tool,
    )
    from agentadapter.config import Settings, get_settings
    from agentadapter.errors import AgentAdapterError, ConfigurationError, InvalidRequestError
    from agentadapter.frameworks.errors import FrameworkError
    from agentadapter.llm.backends.base import Backend, BackendConfig, register_backend
    from agentadapter.llm.backends.bedrock import BedrockBackend
    from agentadapter.llm.backends.local import LocalBackend
    from agentadapter.llm.backends.testing import FunctionBackend, TestBackend
    from agentadapter.llm.backends.vertex import VertexBackend
    from agentadapter.llm.batch import BatchItem, BatchJob, BatchResult
    from agentadapter.llm.catalog import Capabilities
    from agentadapter.llm.client import LLM, LLMStream
    from agentadapter.llm.embeddings import EmbeddingResponse
    from agentadapter.llm.errors import (
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
        ConflictError,
        ContentFilterError,
        ContextWindowExceededError,
        InsufficientCreditsError,
        InvalidResponseError,
        NotFoundError,
        OutputValidationError,
        OverloadedError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
        StreamInterruptedError,
    )
    from agentadapter.llm.health import TargetHealth
    from agentadapter.llm.ledger import UsageLedger, UsageTotals
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
    from agentadapter.llm.policy.breaker import BreakerConfig
    from agentadapter.llm.policy.budget import Budget, BudgetGuard
    from agentadapter.llm.policy.ratelimit import RateLimitConfig
    from agentadapter.llm.policy.retry import RetryPolicy
    from agentadapter.llm.runners import GenerationConfig, Runner, get_runner, register_runner
    from agentadapter.llm.tools import Tool
    from agentadapter.llm.transport import Timeout
    from agentadapter.observability.logging import configure_logging
    from agentadapter.orchestrator import (
        Adaptive,
        AgentRunResult,
        InMemoryRunRecorder,
        Loop,
        Orchestrator,
        Parallel,
        RunEvent,
        RunHandle,
        RunLimitExceeded,
        RunLimits,
        RunOptions,
        RunRecorder,
        RunResult,
        Sequential,
        Workflow,
        WorkflowError,
        load_workflow,
    )
    from agentadapter.protocol import (
        AgentRegistry,
        CommunicationProtocol,
        Envelope,
        MessageBus,
        ProtocolError,
        SharedContext,
        create_protocol,
    )
