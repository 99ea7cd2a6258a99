"""Stored workflows: the YAML or JSON format coming through the API, and their audited writes.

A workflow arrives as JSON (``spec``) or YAML text (``yaml``) and is checked by the one builder
(:class:`~agentadapter.service.building.DefinitionBuilder`) with the orchestrator's own parser,
so an error names the key at fault (``spec.agents[1].model``). What a workflow *file* may do but an
API caller may not is refused there: ``${VAR}`` interpolation (it would read the server's
environment), ``ref: "module:Class"`` (it would import code), agent types other than ``llm`` and
agent keys that reach outside the tenant's own definitions (``base_url``, ``api_key``,
``model_path``, ...). ``ref:`` may instead name one of the tenant's stored agents (by id or name),
whose definition is used with its guardrails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.building import builder
from agentadapter.service.common import BuildParts, Caller, invalid, record
from agentadapter.service.trust import refuse_interpolation
from agentadapter.store import workflows as workflow_store
from agentadapter.store.models import Workflow as WorkflowRow

__all__ = ["WorkflowDraft", "YamlLoader", "create_workflow", "delete_workflow", "update_workflow"]

YamlLoader = Callable[[str], Any]
"""Loads a tenant's YAML text safely (JSON types only, bounded): the face's loader, which knows the
request's limits; it raises ``yaml.YAMLError`` for a document it refuses."""


@dataclass(frozen=True, slots=True)
class WorkflowDraft:
    """A workflow as a caller writes it: its spec as JSON (``spec``) or YAML text (``yaml``); None: unchanged."""

    name: str | None = None
    description: str | None = None
    spec: dict[str, Any] | None = None
    yaml: str | None = None


def _spec_from(data: WorkflowDraft, name: str, load_yaml: YamlLoader) -> dict[str, Any]:
    if data.spec is not None and data.yaml is not None:
        raise invalid("spec", "give the workflow as spec (JSON) or as yaml (text), not both", code="two_forms")
    if data.yaml is not None:
        try:
            loaded = load_yaml(data.yaml)
        except yaml.YAMLError as exc:
            raise invalid("yaml", f"not valid YAML: {exc}", code="invalid_yaml") from exc
        if not isinstance(loaded, dict):
            raise invalid("yaml", "a workflow is a mapping (name:, strategy:, agents: ...)", code="invalid_workflow")
        spec = loaded
    else:
        spec = dict(data.spec or {})
    spec["name"] = name
    return spec


async def _validated(session: AsyncSession, parts: BuildParts, caller: Caller, spec: dict[str, Any],
                     param: str, own_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Check the spec as it will run (stored refs expanded); return it as given (refs kept)."""
    await builder(parts).check_workflow(session, caller.tenant_id, spec, param, own_id)
    return spec


async def create_workflow(session: AsyncSession, parts: BuildParts, caller: Caller, data: WorkflowDraft, *,
                          load_yaml: YamlLoader) -> WorkflowRow:
    if data.name is None:
        raise invalid("name", "a workflow needs a name", code="missing_name")
    if data.spec is None and data.yaml is None:
        raise invalid("spec", "give the workflow as spec (JSON) or as yaml (text)", code="missing_spec")
    param = "yaml" if data.yaml is not None else "spec"
    refuse_interpolation(data.description, "description")
    spec = await _validated(session, parts, caller, _spec_from(data, data.name, load_yaml), param)
    row = await workflow_store.create_workflow(session, caller.tenant_id, name=data.name, spec=spec,
                                               description=data.description or str(spec.get("description") or ""),
                                               created_by=caller.user_id)
    await record(session, caller, "workflow.create", "workflow", row.id, {"name": row.name})
    await session.commit()
    return row


async def update_workflow(
    session: AsyncSession, parts: BuildParts, caller: Caller, workflow_id: uuid.UUID, data: WorkflowDraft, *,
    load_yaml: YamlLoader,
) -> WorkflowRow:
    row = await workflow_store.get_workflow(session, caller.tenant_id, workflow_id)
    changes: dict[str, Any] = {}
    name = data.name or row.name
    if data.name is not None:
        changes["name"] = data.name
    if data.description is not None:
        refuse_interpolation(data.description, "description")
        changes["description"] = data.description
    if data.spec is not None or data.yaml is not None:
        param = "yaml" if data.yaml is not None else "spec"
        changes["spec"] = await _validated(session, parts, caller, _spec_from(data, name, load_yaml), param,
                                           own_id=workflow_id)
    elif data.name is not None:
        changes["spec"] = {**row.spec, "name": name}
    row = await workflow_store.update_workflow(session, caller.tenant_id, workflow_id, changes)
    await record(session, caller, "workflow.update", "workflow", row.id, {"fields": sorted(changes),
                                                                           "version": row.version})
    await session.commit()
    return row


async def delete_workflow(session: AsyncSession, caller: Caller, workflow_id: uuid.UUID) -> None:
    row = await workflow_store.get_workflow(session, caller.tenant_id, workflow_id)
    name = row.name
    await workflow_store.delete_workflow(session, caller.tenant_id, workflow_id)
    await record(session, caller, "workflow.delete", "workflow", workflow_id, {"name": name})
    await session.commit()
