"""RAG by default: the ``file_search`` tool the builder gives the agents it builds from a tenant's data.

Which archives an agent searches: a workflow's agent entry may name its own (``archives: [...]``; ``[]``
for none); otherwise the user's settings' ``rag_archives`` (archives deleted since are left out), unless
the agent's definition says ``metadata: {file_search: false}``. The tool is made per build over the
tenant's own archives (:meth:`agentadapter.service.knowledge.Knowledge.search`), so ``file_search`` is a
tool name a tenant may list without it being in the registry (:data:`CONTEXT_TOOLS`). Used only by
:mod:`agentadapter.service.building`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.service.common import invalid
from agentadapter.service.knowledge import Knowledge
from agentadapter.store import archives as archive_store
from agentadapter.store.files_models import Archive
from agentadapter.store.models import AgentDefinition

__all__ = [
    "CONTEXT_TOOLS",
    "attach_file_search",
    "entry_archives",
    "factory_defaults",
    "pop_entry_archives",
    "settings_archives",
    "wants_file_search",
    "workflow_archives",
]

CONTEXT_TOOLS = frozenset({"file_search"})
"""Tools the builder makes per tenant (over its own data) rather than taking from the registry."""


def factory_defaults(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The user settings the agent factory reads (``rag_archives`` is the builder's)."""
    return {k: v for k, v in defaults.items() if k != "rag_archives"}


def wants_file_search(definition: AgentDefinition | None) -> bool:
    """RAG by default, unless the definition's metadata says ``file_search: false``."""
    return definition is None or (definition.meta or {}).get("file_search") is not False


async def settings_archives(session: AsyncSession, tenant_id: uuid.UUID, defaults: Mapping[str, Any]) -> list[Archive]:
    """The archives of the user's ``rag_archives`` that exist (one deleted since is left out)."""
    refs = [str(r) for r in defaults.get("rag_archives") or []]
    if not refs:
        return []
    found = await archive_store.find_archives(session, tenant_id, refs)
    return list({archive.id: archive for archive in found.values()}.values())


async def entry_archives(session: AsyncSession, tenant_id: uuid.UUID, refs: Sequence[str], param: str) -> list[Archive]:
    """The tenant's archives a workflow entry names; an unknown one is a 422 naming it."""
    from agentadapter.service.archives import resolve_archives

    return await resolve_archives(session, tenant_id, list(refs), param=param)


def pop_entry_archives(spec: dict[str, Any], param: str) -> dict[int, list[str]]:
    """Take each agent entry's ``archives`` out of ``spec`` (the builder's key, not the factory's); by index."""
    found: dict[int, list[str]] = {}
    entries = spec.get("agents")
    if not isinstance(entries, list):
        return found
    copied: list[Any] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping) and "archives" in entry:
            entry = dict(entry)
            refs = entry.pop("archives")
            if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs) or len(refs) > 20:
                raise invalid(f"{param}.agents[{index}].archives", "a list of at most 20 archive names or ids "
                                                                   "([] for none)", code="invalid_archives")
            found[index] = refs
        copied.append(entry)
    spec["agents"] = copied
    return found


def workflow_archives(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each agent entry's ``archives``, by the entry's name (``name`` or ``id``, else its ``ref``)."""
    named: dict[str, list[str]] = {}
    for entry in spec.get("agents") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("archives"), list):
            name = entry.get("name") or entry.get("id") or entry.get("ref")
            if isinstance(name, str):
                named[name] = [str(r) for r in entry["archives"]]
    return named


def attach_file_search(knowledge: Knowledge | None, agent: BaseAgent | None, tenant_id: uuid.UUID,
                       archives: Sequence[Archive]) -> None:
    """Give ``agent`` a ``file_search`` over ``archives`` (nothing when there are none, or it has one)."""
    if knowledge is None or not isinstance(agent, LLMAgent) or not archives:
        return
    if any(getattr(tool, "name", None) == "file_search" for tool in agent.tools):
        return
    from agentadapter.agents.tools.file_search import FileSearch

    chosen = list(archives)

    async def search(query: str, max_results: int) -> list[dict[str, Any]]:
        hits = await knowledge.search(tenant_id, chosen, query, k=max_results)
        return [hit.to_dict() for hit in hits]

    agent.tools = [*agent.tools, FileSearch(search, archives=[a.name for a in chosen]).as_tool()]
