"""Agents from other frameworks as ours, and our models for them (docs/frameworks.md).

LangChain and LangGraph (:mod:`.langchain`), AG2 (:mod:`.ag2`) and the OpenAI Agents SDK
(:mod:`.openai_agents`) each get a model backed by ``LLM`` (so their calls go through our routes,
budgets, usage ledger and telemetry) and a ``BaseAgent`` wrapper that runs their agents in our
orchestrator; :mod:`.common` holds what they share and :mod:`.loading` builds a workflow's
``framework:`` entries. Each framework is an extra (``agentadapter[langchain]``, ``[ag2]``,
``[openai-agents]``) imported only when one of its names is used; a missing one is a
``ConfigurationError`` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentadapter.frameworks.common import FrameworkAgent, FrameworkRun, current_run, require
from agentadapter.frameworks.errors import FrameworkCancelled, FrameworkError
from agentadapter.frameworks.loading import FRAMEWORKS, framework_agent

if TYPE_CHECKING:
    from agentadapter.frameworks.ag2 import AG2Agent, AgentAdapterConfig
    from agentadapter.frameworks.langchain import AgentAdapterChatModel, LangChainAgent, LangGraphAgent
    from agentadapter.frameworks.openai_agents import (
        AgentAdapterModel,
        AgentAdapterModelProvider,
        OpenAIAgentsAgent,
    )

__all__ = [
    "FRAMEWORKS",
    "AG2Agent",
    "AgentAdapterChatModel",
    "AgentAdapterConfig",
    "AgentAdapterModel",
    "AgentAdapterModelProvider",
    "FrameworkAgent",
    "FrameworkCancelled",
    "FrameworkError",
    "FrameworkRun",
    "LangChainAgent",
    "LangGraphAgent",
    "OpenAIAgentsAgent",
    "current_run",
    "framework_agent",
    "require",
]

_LAZY = {
    "AG2Agent": ("ag2", "ag2"),
    "AgentAdapterConfig": ("ag2", "ag2"),
    "AgentAdapterChatModel": ("langchain", "langchain_core"),
    "LangChainAgent": ("langchain", "langchain_core"),
    "LangGraphAgent": ("langchain", "langgraph"),
    "AgentAdapterModel": ("openai_agents", "agents"),
    "AgentAdapterModelProvider": ("openai_agents", "agents"),
    "OpenAIAgentsAgent": ("openai_agents", "agents"),
}


def __getattr__(name: str) -> Any:
    """The framework-specific names, importing their framework on first use."""
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'agentadapter.frameworks' has no attribute {name!r}")
    module, package = found
    require(package, module.replace("_", "-"))
    import importlib

    return getattr(importlib.import_module(f"agentadapter.frameworks.{module}"), name)
