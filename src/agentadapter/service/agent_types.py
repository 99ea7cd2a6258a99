"""The operator's custom agent types, as the service sees them: one agent loader per process.

The loader (:class:`~agentadapter.agents.loader.AgentLoader`) reads the directories of
``AGENTADAPTER_AGENTS_DIRS`` and the ``agentadapter.agents`` entry points - operators' files - and
registers every agent it finds as an agent type (:meth:`~AgentLoader.register_types`), so the one
builder (:mod:`.building`) can build them. Tenants see them through ``GET /v1/agent-types`` (name,
type, capabilities, description: never a path or a module) and name one in a stored workflow's entry
by name only (``{name: ..., type: <agent type>}``, no ``params``). Files added to the directories
after the start, and files fixed after a broken first load, are found on the next lookup (in
development mode, changed modules are re-imported too).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agentadapter.agents.loader import AgentLoader
from agentadapter.config import get_settings

__all__ = [
    "BUILTIN_TYPE",
    "AgentTypeInfo",
    "list_agent_types",
    "loaded_types",
    "operator_loader",
    "use_operator_loader",
]

BUILTIN_TYPE = "llm"
"""The type every agent defined through the API is, unless it names a loaded one."""

_LOADER: AgentLoader | None = None
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class AgentTypeInfo:
    """An agent type a tenant may name."""

    name: str
    agent_type: str
    capabilities: tuple[str, ...]
    description: str
    builtin: bool


def operator_loader() -> AgentLoader:
    """This process's loader of the operator's agents (loaded on first use)."""
    global _LOADER
    with _LOCK:
        if _LOADER is None:
            _LOADER = AgentLoader(get_settings().agents_dirs).load()
        return _LOADER


def use_operator_loader(loader: AgentLoader | None) -> None:
    """Make ``loader`` this process's (None: load from the settings again on next use)."""
    global _LOADER
    with _LOCK:
        _LOADER = loader


def loaded_types() -> frozenset[str]:
    """The names of the operator's agents, each registered as an agent type (new and fixed files included)."""
    loader = operator_loader()
    loader.refresh()
    loader.register_types()
    return frozenset(loader.names())


def list_agent_types() -> list[AgentTypeInfo]:
    """The built-in type, then the operator's agents by name."""
    loaded_types()
    types = [
        AgentTypeInfo(
            BUILTIN_TYPE,
            "llm",
            (),
            "an agent on the service's models: instructions, model, tools, handoffs, guardrails (POST /v1/agents)",
            True,
        )
    ]
    types += [
        AgentTypeInfo(m.name, m.agent_type, tuple(m.capabilities), m.description, False)
        for m in operator_loader().metadata()
    ]
    return types
