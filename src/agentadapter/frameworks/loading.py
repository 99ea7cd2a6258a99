"""``framework: <name>, ref: "module:object"``: an operator's workflow entry becomes a wrapped agent here.

The object a ref names is the framework's own (a LangChain runnable or compiled LangGraph graph, an AG2
``Agent``, an OpenAI Agents SDK ``Agent``), or a function returning one (called with the entry's
``params``). Importing a module runs its code, so only operators' files may name one: the service's
builder refuses ``framework:`` in tenant data (:mod:`agentadapter.service.trust`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.factory import resolve_ref
from agentadapter.errors import ConfigurationError
from agentadapter.frameworks.common import require

__all__ = ["FRAMEWORKS", "framework_agent"]

FRAMEWORKS: dict[str, tuple[str, str, str]] = {
    "langchain": ("agentadapter.frameworks.langchain", "LangChainAgent", "langchain_core"),
    "langgraph": ("agentadapter.frameworks.langchain", "LangGraphAgent", "langgraph"),
    "ag2": ("agentadapter.frameworks.ag2", "AG2Agent", "ag2"),
    "openai-agents": ("agentadapter.frameworks.openai_agents", "OpenAIAgentsAgent", "agents"),
}
"""Each ``framework:`` name: the wrapper's module and class, and the framework's own top-level module."""


def framework_agent(
    framework: str,
    ref: str,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
) -> BaseAgent:
    """The agent ``name`` wrapping the object ``ref`` names, of ``framework``.

    ``model`` (the entry's ``model:``) is the model of ours SDK and AG2 agents run on when given.
    """
    known = FRAMEWORKS.get(framework)
    if known is None:
        raise ConfigurationError(
            f"agent {name!r}: framework {framework!r} is not one of {', '.join(sorted(FRAMEWORKS))}"
        )
    module_name, class_name, package = known
    require(package, framework)
    wrapper = getattr(importlib.import_module(module_name), class_name)
    target = resolve_ref(ref, name)
    if inspect.isfunction(target) or inspect.ismethod(target):
        try:
            target = target(**dict(params or {}))
        except Exception as exc:
            raise ConfigurationError(
                f"agent {name!r}: {ref} could not build its {framework} object ({type(exc).__name__}: {exc})"
            ) from exc
    elif params:
        raise ConfigurationError(
            f"agent {name!r}: params are given to a function a ref names; {ref} is a {type(target).__name__}"
        )
    options: dict[str, Any] = {"name": name}
    if model is not None:
        if framework not in ("ag2", "openai-agents"):
            raise ConfigurationError(
                f"agent {name!r}: model: applies to ag2 and openai-agents agents; a {framework} "
                "object names its model itself (AgentAdapterChatModel(model=...))"
            )
        options["default_model"] = model
    try:
        agent: BaseAgent = wrapper(target, **options)
    except TypeError as exc:
        raise ConfigurationError(f"agent {name!r}: {exc}") from exc
    return agent
