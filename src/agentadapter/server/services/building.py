"""From stored definitions to runnable agents, and the checks a definition passes before it is stored.

An agent definition becomes an ``AgentSpec`` for the agent layer's factory (``create_agents``), with
its handoff targets - other definitions of the same tenant, followed transitively - built alongside
so they can refer to each other. Guardrails are data: ``{name, kind, when, message}`` where ``when``
is a condition of the orchestrator's safe expression language (``text contains 'password'``),
evaluated on the run's input text (``input``/``text``) or the final output (``output``/``text``).

The checks (:func:`check_definition`) run on create and update, so a bad definition is a 422 that
names its field rather than a failed run later: the model's provider is known (a missing key is
not an error yet - keys may come later), every tool is registered and allowed, the output schema is a
valid JSON schema of an object, every guardrail condition compiles, every handoff names an agent
of the tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.factory import create_agents
from agentadapter.agents.guardrails import GuardrailResult, InputGuardrail, OutputGuardrail
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.tools.registry import ToolRegistry
from agentadapter.llm.backends.presets import PRESETS, canonical_type
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.orchestrator.conditions import Condition, to_text
from agentadapter.orchestrator.errors import ConditionError
from agentadapter.server.services.common import invalid
from agentadapter.store import agents as agent_store
from agentadapter.store.models import AgentDefinition

__all__ = [
    "agent_defaults",
    "build_agent",
    "check_definition",
    "check_model",
    "check_tools",
    "definition_spec",
    "make_guardrails",
    "resolve_handoffs",
]


def check_model(llm: LLM, model: str, param: str = "model") -> None:
    """The model is ``provider/model`` of a known provider or named backend, or an alias of the config."""
    try:
        leaves = llm.resolver.model_ids(model)
    except AgentAdapterError as exc:
        raise invalid(param, str(exc), code="invalid_model") from exc
    backends = set(llm.file_config.backends) | set(llm.resolver.backends())  # named in the config, or given
    for leaf in leaves:
        provider, sep, name = leaf.partition("/")
        if not sep or not provider or not name:
            raise invalid(param, f"{leaf!r} is not a provider/model id (like 'openai/gpt-4o-mini' or 'test/echo') "
                                 "nor an alias defined in agentadapter.yaml", code="invalid_model")
        if provider not in backends and canonical_type(provider) not in PRESETS:
            raise invalid(param, f"unknown provider {provider!r} in {leaf!r}; known providers: "
                                 f"{', '.join(sorted(PRESETS))} (or a backend named in agentadapter.yaml)",
                          code="invalid_model")


def check_tools(registry: ToolRegistry, names: Sequence[str], denied: Iterable[str], param: str = "tools") -> None:
    denied = set(denied)
    for index, name in enumerate(names):
        if name in denied:
            raise invalid(f"{param}[{index}]", f"tool {name!r} is not available to agents defined through the API "
                                               "(AGENTADAPTER_API_DENIED_TOOLS)", code="tool_not_allowed")
        if name not in registry:
            known = ", ".join(n for n in registry.names() if n not in denied) or "none"
            raise invalid(f"{param}[{index}]", f"unknown tool {name!r}; the registered tools are: {known}",
                          code="unknown_tool")


def check_output_schema(schema: Mapping[str, Any], param: str = "output_schema") -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        raise invalid(f"{param}.{where}" if where else param, f"not a valid JSON schema: {exc.message}",
                      code="invalid_schema") from exc
    if schema.get("type") != "object":
        raise invalid(f"{param}.type", "the output schema must describe an object (\"type\": \"object\" with "
                                       "\"properties\"), which every provider's structured output accepts",
                      code="invalid_schema")
    from agentadapter.llm.output import OutputSchema

    try:
        OutputSchema.of(schema)
    except (AgentAdapterError, TypeError, ValueError) as exc:
        raise invalid(param, str(exc), code="invalid_schema") from exc


def check_guardrails(guardrails: Sequence[Mapping[str, Any]], param: str = "guardrails") -> None:
    names: set[str] = set()
    for index, spec in enumerate(guardrails):
        try:
            Condition(str(spec["when"]))
        except ConditionError as exc:
            raise invalid(f"{param}[{index}].when", str(exc), code="invalid_condition") from exc
        key = f"{spec['kind']}:{spec['name']}"
        if key in names:
            raise invalid(f"{param}[{index}].name", f"two {spec['kind']} guardrails are named {spec['name']!r}")
        names.add(key)


async def resolve_handoffs(
    session: AsyncSession, tenant_id: uuid.UUID, refs: Sequence[str], *, own_id: uuid.UUID | None = None,
    param: str = "handoffs",
) -> list[str]:
    """The ids of the tenant's agents that handoff references (names or ids) name."""
    found = await agent_store.find_agents(session, tenant_id, refs)
    ids: list[str] = []
    for index, ref in enumerate(refs):
        target = found.get(ref)
        if target is None:
            raise invalid(f"{param}[{index}]", f"no agent {ref!r} in this tenant to hand off to; create it first",
                          code="unknown_agent")
        if own_id is not None and target.id == own_id:
            raise invalid(f"{param}[{index}]", "an agent cannot hand off to itself")
        if str(target.id) not in ids:
            ids.append(str(target.id))
    return ids


def check_definition(fields: Mapping[str, Any], *, llm: LLM, tools: ToolRegistry, denied_tools: Iterable[str]) -> None:
    """Every check but handoffs (which need the database): raises a 422 naming the field."""
    if fields.get("model"):
        check_model(llm, str(fields["model"]))
    if fields.get("tools"):
        check_tools(tools, list(fields["tools"]), denied_tools)
    if fields.get("output_schema") is not None:
        check_output_schema(fields["output_schema"])
    if fields.get("guardrails"):
        check_guardrails(list(fields["guardrails"]))
    if fields.get("model_settings"):
        from agentadapter.agents.run_config import ModelSettings

        try:
            ModelSettings.of(dict(fields["model_settings"]))
        except (AgentAdapterError, TypeError, ValueError) as exc:
            raise invalid("model_settings", f"{exc}", code="invalid_model_settings") from exc


# ----------------------------------------------------------------------------------------- building


def definition_spec(definition: AgentDefinition, names_by_id: Mapping[str, str]) -> dict[str, Any]:
    """The agent layer's spec of a definition (handoffs by name)."""
    spec: dict[str, Any] = {
        "name": definition.name, "description": definition.description, "instructions": definition.instructions,
        "model": definition.model, "tools": list(definition.tools or []),
        "handoffs": [names_by_id[h] for h in definition.handoffs or [] if h in names_by_id],
        "model_settings": dict(definition.model_settings or {}), "output_schema": definition.output_schema,
    }
    if definition.max_turns is not None:
        spec["max_turns"] = definition.max_turns
    return spec


def make_guardrails(specs: Sequence[Mapping[str, Any]]) -> tuple[list[InputGuardrail], list[OutputGuardrail]]:
    inputs: list[InputGuardrail] = []
    outputs: list[OutputGuardrail] = []
    for spec in specs:
        name, kind = str(spec["name"]), str(spec["kind"])
        condition = Condition(str(spec["when"]))
        message = str(spec.get("message") or f"guardrail {name!r} stopped the run")

        def check(context: Any, value: Any, *, _condition: Condition = condition, _kind: str = kind,
                  _message: str = message) -> GuardrailResult:
            text = value if isinstance(value, str) else to_text(value)
            names = {"input": text, "text": text} if _kind == "input" else {"output": value, "text": text}
            tripped = _condition.evaluate(names)
            return GuardrailResult(tripped, {"message": _message} if tripped else None)

        if kind == "input":
            inputs.append(InputGuardrail(check, name))
        else:
            outputs.append(OutputGuardrail(check, name))
    return inputs, outputs


def agent_defaults(settings: Any) -> dict[str, Any]:
    """The user settings the agent factory reads (``default_model``, ``prefer_local``)."""
    if settings is None:
        return {}
    defaults: dict[str, Any] = {"prefer_local": bool(settings.prefer_local)}
    if settings.default_model:
        defaults["default_model"] = settings.default_model
    return defaults


async def build_agent(
    session: AsyncSession, tenant_id: uuid.UUID, definition: AgentDefinition, *, tools: ToolRegistry,
    defaults: Mapping[str, Any],
) -> BaseAgent:
    """The runnable agent of a definition, with its handoff targets (transitively) and guardrails."""
    closure: dict[str, AgentDefinition] = {str(definition.id): definition}
    pending = list(definition.handoffs or [])
    while pending:
        wanted = [ref for ref in pending if ref not in closure]
        pending = []
        if not wanted:
            break
        found = await agent_store.find_agents(session, tenant_id, wanted)
        for ref in wanted:
            target = found.get(ref)
            if target is None:
                raise invalid("agent_id", f"agent {definition.name!r} (or one it hands off to) hands off to agent "
                                          f"{ref}, which no longer exists; update its handoffs",
                              code="broken_handoff")
            closure[str(target.id)] = target
            pending.extend(h for h in target.handoffs or [] if h not in closure)
    names_by_id = {key: d.name for key, d in closure.items()}
    specs = [definition_spec(d, names_by_id) for d in closure.values()]
    try:
        built = create_agents(specs, tools=tools, defaults=defaults)
    except AgentAdapterError as exc:
        raise invalid("agent_id", f"agent {definition.name!r} cannot be built: {exc}", code="invalid_agent") from exc
    for stored in closure.values():
        agent = built[stored.name]
        if isinstance(agent, LLMAgent) and stored.guardrails:
            inputs, outputs = make_guardrails(stored.guardrails)
            agent.input_guardrails = [*agent.input_guardrails, *inputs]
            agent.output_guardrails = [*agent.output_guardrails, *outputs]
    return built[definition.name]
