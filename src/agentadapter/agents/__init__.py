"""The agent layer: agents, tools, handoffs, guardrails, and the context an agent runs in.

:class:`BaseAgent` is the contract (``execute(context) -> AgentResult``); :class:`LLMAgent` is the
declarative, model-driven agent whose ``execute`` is the tool loop; :class:`OnlineAgent` and
:class:`LocalAgent` bind it to an HTTP endpoint or a local runner. :func:`create_agent` builds agents
from data, :class:`AgentLoader` finds them in modules. Tools come from :func:`tool` and the
:class:`ToolRegistry`; :mod:`agentadapter.agents.tracing` records typed spans. This layer uses
:mod:`agentadapter.llm` and :mod:`agentadapter.protocol` and is used by the orchestrator and the server.
"""

from __future__ import annotations

from agentadapter.agents.base import AgentMetadata, BaseAgent
from agentadapter.agents.context import AgentContext, AgentInput
from agentadapter.agents.events import (
    AgentEvent,
    AgentStream,
    ApprovalRequiredEvent,
    FinalEvent,
    GuardrailEvent,
    HandoffEvent,
    NestedRunEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agentadapter.agents.factory import (
    AgentSpec,
    agent_types,
    create_agent,
    create_agents,
    load_agents,
    register_agent_type,
)
from agentadapter.agents.guardrails import (
    GuardrailResult,
    InputGuardrail,
    OutputGuardrail,
    input_guardrail,
    output_guardrail,
)
from agentadapter.agents.handoffs import Handoff, handoff, keep_last, remove_tool_messages
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.loader import AgentLoader, LoadedAgent, LoadError
from agentadapter.agents.local import LocalAgent
from agentadapter.agents.online import Endpoint, OnlineAgent
from agentadapter.agents.result import (
    AgentResult,
    ApprovalRequest,
    GuardrailRecord,
    HandoffRecord,
    RunState,
    ToolCallRecord,
)
from agentadapter.agents.run_config import ModelSettings, RunConfig, RunResources
from agentadapter.agents.tools import FunctionTool, ToolRegistry, default_registry, tool

__all__ = [
    "AgentContext",
    "AgentEvent",
    "AgentInput",
    "AgentLoader",
    "AgentMetadata",
    "AgentResult",
    "AgentSpec",
    "AgentStream",
    "ApprovalRequest",
    "ApprovalRequiredEvent",
    "BaseAgent",
    "Endpoint",
    "FinalEvent",
    "FunctionTool",
    "GuardrailEvent",
    "GuardrailRecord",
    "GuardrailResult",
    "Handoff",
    "HandoffEvent",
    "HandoffRecord",
    "InputGuardrail",
    "LLMAgent",
    "LoadError",
    "LoadedAgent",
    "LocalAgent",
    "ModelSettings",
    "NestedRunEvent",
    "OnlineAgent",
    "OutputGuardrail",
    "RunConfig",
    "RunResources",
    "RunState",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolCallRecord",
    "ToolRegistry",
    "ToolResultEvent",
    "agent_types",
    "create_agent",
    "create_agents",
    "default_registry",
    "handoff",
    "input_guardrail",
    "keep_last",
    "load_agents",
    "output_guardrail",
    "register_agent_type",
    "remove_tool_messages",
    "tool",
]
