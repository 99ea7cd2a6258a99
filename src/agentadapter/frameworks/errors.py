"""The errors of the framework integrations (drawn in the one tree, :mod:`agentadapter.errors`).

:class:`FrameworkError` is what an agent of another framework raises when the framework itself failed
(an error of ours inside it - a budget, a provider error - is raised as it is);
:class:`FrameworkCancelled` stops a framework's worker thread at its next model call once its agent
was cancelled.
"""

from __future__ import annotations

from agentadapter.errors import AgentAdapterError

__all__ = ["FrameworkCancelled", "FrameworkError"]


class FrameworkError(AgentAdapterError):
    """An agent of another framework (LangChain, LangGraph, AG2, the OpenAI Agents SDK) failed."""

    def __init__(self, message: str, *, framework: str | None = None, agent: str | None = None) -> None:
        super().__init__(message)
        self.framework = framework
        self.agent = agent


class FrameworkCancelled(FrameworkError):
    """The framework's agent was cancelled; its next model call is refused."""
