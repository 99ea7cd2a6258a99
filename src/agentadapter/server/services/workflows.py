"""Stored workflows: validation of the YAML format coming through the API, CRUD, and building them to run.

A workflow arrives as JSON (``spec``) or YAML text (``yaml``) and is checked with the orchestrator's
own parser, so an error names the key at fault (``spec.agents[1].model``). What a workflow *file*
may do but an API caller may not is refused: ``${VAR}`` interpolation (it would read the server's
environment), ``ref: "module:Class"`` (it would import code), and agent keys that reach outside the
tenant's own definitions (``base_url``, ``api_key``, ``model_path``, ...). ``ref:`` may instead name
one of the tenant's stored agents (by id or name), whose definition is used with its guardrails.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.orchestrator.errors import WorkflowError
from agentadapter.orchestrator.workflow import Workflow, parse_workflow
from agentadapter.server.schemas import WorkflowCreate, WorkflowUpdate
from agentadapter.server.services.building import check_model, check_tools, definition_spec, make_guardrails
from agentadapter.server.services.common import Caller, invalid, record
from agentadapter.server.state import AppState
from agentadapter.store import agents as agent_store
from agentadapter.store import workflows as workflow_store
from agentadapter.store.models import AgentDefinition
from agentadapter.store.models import Workflow as WorkflowRow

__all__ = ["build_workflow", "create_workflow", "delete_workflow", "update_workflow"]

_API_AGENT_KEYS = frozenset({
    "name", "id", "ref", "description", "capabilities", "instructions", "model", "model_settings", "tools",
    "handoffs", "output_schema", "output_type", "output_strategy", "max_turns", "timeout_s", "retries", "type",
})


def _spec_from(data: WorkflowCreate | WorkflowUpdate, name: str) -> dict[str, Any]:
    if data.spec is not None and data.yaml is not None:
        raise invalid("spec", "give the workflow as spec (JSON) or as yaml (text), not both", code="two_forms")
    if data.yaml is not None:
        try:
            loaded = yaml.safe_load(data.yaml)
        except yaml.YAMLError as exc:
            raise invalid("yaml", f"not valid YAML: {exc}", code="invalid_yaml") from exc
        if not isinstance(loaded, dict):
            raise invalid("yaml", "a workflow is a mapping (name:, strategy:, agents: ...)", code="invalid_workflow")
        spec = loaded
        param = "yaml"
    else:
        spec = dict(data.spec or {})
        param = "spec"
    spec["name"] = name
    _refuse_unsafe(spec, param)
    return spec


def _refuse_unsafe(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "${" in value:
            raise invalid(path, "${...} environment interpolation is not available to workflows sent through the "
                                "API; write the value itself", code="interpolation_not_allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unsafe(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unsafe(item, f"{path}[{index}]")


def _check_agent_entries(spec: Mapping[str, Any], param: str) -> list[tuple[int, str]]:
    """Refused keys and code refs; returns (index, ref) of the entries that name stored agents."""
    stored: list[tuple[int, str]] = []
    entries = spec.get("agents")
    if not isinstance(entries, list):
        return stored
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        for key in entry:
            if key not in _API_AGENT_KEYS:
                raise invalid(f"{param}.agents[{index}].{key}", f"{key!r} is not available to workflows sent through "
                              "the API; store the agent with POST /v1/agents and name it with ref:",
                              code="key_not_allowed")
        ref = entry.get("ref")
        if ref is not None:
            if not isinstance(ref, str) or ":" in ref:
                raise invalid(f"{param}.agents[{index}].ref", "through the API, ref: names one of your stored agents "
                              "(its id or name); Python classes (module:Class) are for workflow files",
                              code="ref_not_allowed")
            stored.append((index, ref))
    return stored


async def _stored_agents(
    session: AsyncSession, tenant_id: uuid.UUID, spec: dict[str, Any], param: str
) -> dict[str, AgentDefinition]:
    """Replace each ``ref: <stored agent>`` entry by that definition's spec; returns them by entry name."""
    refs = _check_agent_entries(spec, param)
    if not refs:
        return {}
    found = await agent_store.find_agents(session, tenant_id, [ref for _, ref in refs])
    used: dict[str, AgentDefinition] = {}
    agents = list(spec["agents"])
    for index, ref in refs:
        definition = found.get(ref)
        if definition is None:
            raise invalid(f"{param}.agents[{index}].ref", f"no agent {ref!r} in this tenant", code="unknown_agent")
        entry = dict(agents[index])
        entry.pop("ref")
        own = definition_spec(definition, {})
        own.pop("handoffs")
        own["name"] = entry.get("name") or entry.get("id") or definition.name
        entry.pop("id", None)
        agents[index] = {**own, **{k: v for k, v in entry.items() if k != "name"}, "name": own["name"]}
        used[own["name"]] = definition
    spec["agents"] = agents
    return used


def _parse(spec: Mapping[str, Any], param: str) -> Workflow:
    try:
        return parse_workflow(yaml.safe_dump(dict(spec), sort_keys=False), source=param)
    except WorkflowError as exc:
        where = f"{param}.{exc.path}" if getattr(exc, "path", None) and exc.path != "(top level)" else param
        message = str(exc).replace(f"workflow {param} is not valid:\n", "").strip()
        raise invalid(where, message, code="invalid_workflow") from exc


def _check_agents(state: AppState, workflow: Workflow, param: str) -> None:
    for index, entry in enumerate(workflow.spec.agents):
        if isinstance(entry.model, str):
            check_model(state.llm, entry.model, param=f"{param}.agents[{index}].model")
        if entry.tools:
            check_tools(state.tools, entry.tools, state.server.api_denied_tools, param=f"{param}.agents[{index}].tools")
    try:
        workflow.build_agents(tools=state.tools)
    except (WorkflowError, AgentAdapterError) as exc:
        raise invalid(param, str(exc), code="invalid_workflow") from exc


async def _validated(session: AsyncSession, state: AppState, caller: Caller, spec: dict[str, Any],
                     param: str) -> dict[str, Any]:
    """Check the spec as it will run (stored refs expanded); return it as given (refs kept)."""
    expanded = dict(spec)
    await _stored_agents(session, caller.tenant_id, expanded, param)
    _check_agents(state, _parse(expanded, param), param)
    return spec


async def create_workflow(session: AsyncSession, state: AppState, caller: Caller, data: WorkflowCreate) -> WorkflowRow:
    if data.spec is None and data.yaml is None:
        raise invalid("spec", "give the workflow as spec (JSON) or as yaml (text)", code="missing_spec")
    param = "yaml" if data.yaml is not None else "spec"
    spec = await _validated(session, state, caller, _spec_from(data, data.name), param)
    row = await workflow_store.create_workflow(session, caller.tenant_id, name=data.name, spec=spec,
                                               description=data.description or str(spec.get("description") or ""),
                                               created_by=caller.user_id)
    await record(session, caller, "workflow.create", "workflow", row.id, {"name": row.name})
    await session.commit()
    return row


async def update_workflow(
    session: AsyncSession, state: AppState, caller: Caller, workflow_id: uuid.UUID, data: WorkflowUpdate
) -> WorkflowRow:
    row = await workflow_store.get_workflow(session, caller.tenant_id, workflow_id)
    changes: dict[str, Any] = {}
    name = data.name or row.name
    if data.name is not None:
        changes["name"] = data.name
    if data.description is not None:
        changes["description"] = data.description
    if data.spec is not None or data.yaml is not None:
        param = "yaml" if data.yaml is not None else "spec"
        changes["spec"] = await _validated(session, state, caller, _spec_from(data, name), param)
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


async def build_workflow(
    session: AsyncSession, state: AppState, caller: Caller, row: WorkflowRow, defaults: Mapping[str, Any]
) -> tuple[Workflow, dict[str, BaseAgent]]:
    """The parsed workflow and its agents, stored refs expanded and their guardrails attached."""
    spec = dict(row.spec)
    used = await _stored_agents(session, caller.tenant_id, spec, "spec")
    workflow = _parse(spec, "spec")
    try:
        agents = workflow.build_agents(tools=state.tools, defaults=defaults)
    except (WorkflowError, AgentAdapterError) as exc:
        raise invalid("workflow_id", f"workflow {row.name!r} cannot be built: {exc}", code="invalid_workflow") from exc
    for name, definition in used.items():
        agent = agents.get(name)
        if isinstance(agent, LLMAgent) and definition.guardrails:
            inputs, outputs = make_guardrails(definition.guardrails)
            agent.input_guardrails = [*agent.input_guardrails, *inputs]
            agent.output_guardrails = [*agent.output_guardrails, *outputs]
    return workflow, agents
