"""The one builder: a tenant's stored agent definitions and workflows become runnable agents here.

Everything the service runs from data a tenant wrote (through the API, or stored earlier) is built by
:class:`DefinitionBuilder`, which applies the trust boundary of :mod:`.trust` twice: when the data is
written (an ``InvalidInput`` naming the field: a 422 through the API) and when it is built to run (the
same refusal on ``POST /v1/runs`` and in a worker, so a row stored before a rule existed - or after an
operator tightened a setting - is refused, not run).
It never interpolates ``${VAR}``, builds every agent as an ``LLMAgent`` on the tenant's facade (never a
local runner, a Python class or an endpoint of the tenant's choosing), parses workflows with
interpolation off, and caps steps, loop iterations, retries and run time by the operator's settings
(:class:`~agentadapter.service.trust.RunCaps`).

RAG by default (:mod:`.rag`): every agent built here gets a ``file_search`` tool over the archives of
the user's settings' ``rag_archives`` unless its definition's metadata says ``file_search: false``; a
workflow's agent entry may name its own ``archives`` (``[]``: none), checked like handoffs, at write and
at build time.

An agent definition becomes an ``AgentSpec`` for the agent layer's factory (``create_agents``), with
its handoff targets - other definitions of the same tenant, followed transitively - built alongside
so they can refer to each other. A workflow's ``ref:`` entries name the tenant's stored agents, whose
definitions (and guardrails) are used. Guardrails are data: ``{name, kind, when, message}`` where
``when`` is a condition of the orchestrator's safe expression language (``text contains 'password'``),
evaluated on the run's input text (``input``/``text``) or the final output (``output``/``text``).

The checks of a definition: no ``${`` anywhere, the model is one a tenant may name (a missing key is
not an error yet - keys may come later), every tool is registered and allowed, the output schema is a
valid JSON schema of an object, every guardrail condition compiles, every handoff names an agent
of the tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.factory import create_agents
from agentadapter.agents.guardrails import GuardrailResult, InputGuardrail, OutputGuardrail
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.tools.errors import FetchRefused
from agentadapter.agents.tools.mcp_config import MCPAgent, MCPServerSpec, parse_mcp_servers
from agentadapter.agents.tools.registry import ToolRegistry
from agentadapter.agents.tools.ssrf import AddressPolicy, check_url
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.llm.schema_safety import check_schema
from agentadapter.orchestrator.conditions import Condition, to_text
from agentadapter.orchestrator.errors import ConditionError, WorkflowError
from agentadapter.orchestrator.nested import WorkflowAgent
from agentadapter.orchestrator.options import RunOptions
from agentadapter.orchestrator.workflow import Workflow, parse_workflow
from agentadapter.service.common import BuildParts, invalid
from agentadapter.service.config import ServiceSettings
from agentadapter.service.errors import InvalidInput
from agentadapter.service.knowledge import Knowledge, knowledge_of
from agentadapter.service.rag import (
    CONTEXT_TOOLS,
    attach_file_search,
    entry_archives,
    factory_defaults,
    pop_entry_archives,
    settings_archives,
    wants_file_search,
    workflow_archives,
)
from agentadapter.service.trust import (
    MAX_TURNS,
    RunCaps,
    check_model,
    check_model_settings,
    check_workflow_entries,
    refuse_interpolation,
)
from agentadapter.store import agents as agent_store
from agentadapter.store import workflows as workflow_store
from agentadapter.store.models import AgentDefinition
from agentadapter.store.models import Workflow as WorkflowRow

__all__ = [
    "DefinitionBuilder",
    "agent_defaults",
    "builder",
    "check_definition",
    "check_model",
    "check_tools",
    "definition_spec",
    "make_guardrails",
    "raise_all",
    "resolve_handoffs",
]


def check_tools(registry: ToolRegistry, names: Sequence[str], denied: Iterable[str], param: str = "tools") -> None:
    denied = set(denied)
    problems: list[InvalidInput] = []
    for index, name in enumerate(names):
        if name in denied:
            problems.append(invalid(f"{param}[{index}]", f"tool {name!r} is not available to agents defined through "
                                                         "the API (AGENTADAPTER_API_DENIED_TOOLS)",
                                    code="tool_not_allowed"))
        elif name not in registry and name not in CONTEXT_TOOLS:
            known = ", ".join(n for n in registry.names() if n not in denied) or "none"
            problems.append(invalid(f"{param}[{index}]", f"unknown tool {name!r}; the registered tools are: {known}",
                                    code="unknown_tool"))
    raise_all(problems)


def raise_all(problems: Sequence[InvalidInput]) -> None:
    """Raise every problem at once: one alone as it is; several as one 422 whose ``details.errors`` lists each
    (``param``, ``message``, ``code``), named after the first (as the API's own validation errors are)."""
    flat = [item for problem in problems for item in _each(problem)]
    if not flat:
        return
    if len(flat) == 1:
        raise flat[0]
    first = flat[0]
    raise InvalidInput(
        f"{first.message} (and {len(flat) - 1} more problem(s), listed in details.errors)", code=first.code,
        param=first.param,
        details={"errors": [{"param": p.param, "message": p.message, "code": p.code} for p in flat]},
    )


def _each(problem: InvalidInput) -> list[InvalidInput]:
    """The problems one error stands for (a combined one lists them in ``details.errors``)."""
    listed = (problem.details or {}).get("errors")
    if not isinstance(listed, list) or not all(isinstance(item, Mapping) for item in listed):
        return [problem]
    return [InvalidInput(str(item.get("message")), code=item.get("code"), param=item.get("param")) for item in listed]


def _collect(problems: list[InvalidInput], check: Callable[[], object]) -> None:
    try:
        check()
    except InvalidInput as problem:
        problems.append(problem)


def check_output_schema(schema: Mapping[str, Any], param: str = "output_schema") -> None:
    check_schema(schema, param)  # first: local acyclic $ref, bounded size (a 422 naming where, by errors.py)
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
    problems: list[InvalidInput] = []
    for index, spec in enumerate(guardrails):
        try:
            Condition(str(spec["when"]))
        except ConditionError as exc:
            problems.append(invalid(f"{param}[{index}].when", str(exc), code="invalid_condition"))
        key = f"{spec['kind']}:{spec['name']}"
        if key in names:
            problems.append(invalid(f"{param}[{index}].name",
                                    f"two {spec['kind']} guardrails are named {spec['name']!r}"))
        names.add(key)
    raise_all(problems)


async def resolve_handoffs(
    session: AsyncSession, tenant_id: uuid.UUID, refs: Sequence[str], *, own_id: uuid.UUID | None = None,
    param: str = "handoffs",
) -> list[str]:
    """The ids of the tenant's agents that handoff references (names or ids) name."""
    found = await agent_store.find_agents(session, tenant_id, refs)
    ids: list[str] = []
    problems: list[InvalidInput] = []
    for index, ref in enumerate(refs):
        target = found.get(ref)
        if target is None:
            problems.append(invalid(f"{param}[{index}]", f"no agent {ref!r} in this tenant to hand off to; create "
                                                         "it first", code="unknown_agent"))
        elif own_id is not None and target.id == own_id:
            problems.append(invalid(f"{param}[{index}]", "an agent cannot hand off to itself"))
        elif str(target.id) not in ids:
            ids.append(str(target.id))
    raise_all(problems)
    return ids


def operator_mcp_servers(llm: LLM) -> dict[str, MCPServerSpec]:
    """The MCP servers the operator's ``agentadapter.yaml`` declares (stdio ones included), by name."""
    declared = list(getattr(llm.file_config, "mcp_servers", None) or [])
    return {spec.name: spec for spec in parse_mcp_servers(declared, where="agentadapter.yaml mcp_servers",
                                                          allow_stdio=True)}


def _is_reference(entry: Any) -> bool:
    """An entry with neither ``url`` nor ``command``: one of the operator's servers, by name (used as the
    operator declared it)."""
    return isinstance(entry, Mapping) and entry.get("url") is None and "command" not in entry


def check_mcp_servers(servers: Sequence[Any], policy: AddressPolicy, operator: Mapping[str, MCPServerSpec],
                      param: str = "mcp_servers") -> list[MCPServerSpec]:
    """A tenant's MCP servers: ``{"name"}`` alone names one the operator declared; any other entry is the
    tenant's own, streamable HTTP only, with a URL the address rules allow (an IP literal is judged now; a host
    name on the addresses it resolves to, before each connection). Names are unique. Returns the specs."""
    stand_ins = [{"name": e["name"], "url": "https://operator.invalid/"} if _is_reference(e) else e for e in servers]
    try:
        parsed = parse_mcp_servers(stand_ins, where=param, allow_stdio=False)
    except AgentAdapterError as exc:
        where, _, message = str(exc).partition(": ")
        raise invalid(where, message, code="invalid_mcp_server") from exc
    specs: list[MCPServerSpec] = []
    for index, (entry, spec) in enumerate(zip(servers, parsed, strict=True)):
        if _is_reference(entry):
            known = operator.get(spec.name)
            if known is None:
                raise invalid(f"{param}[{index}].name", f"the operator declares no MCP server {spec.name!r} "
                              f"({', '.join(sorted(operator)) or 'none'}); give a url for a server of your own",
                              code="unknown_mcp_server")
            specs.append(known)
            continue
        try:
            check_url(str(spec.url), policy)
        except FetchRefused as exc:
            raise invalid(f"{param}[{index}].url", str(exc), code="forbidden_address") from exc
        specs.append(spec)
    return specs


def check_definition(fields: Mapping[str, Any], *, llm: LLM, tools: ToolRegistry, denied_tools: Iterable[str],
                     mcp_policy: AddressPolicy | None = None) -> None:
    """Every check but handoffs (which need the database): one 422 naming the first field at fault and
    listing every problem in ``details.errors``."""
    problems: list[InvalidInput] = []
    _collect(problems, lambda: refuse_interpolation(dict(fields), ""))
    if fields.get("model"):
        _collect(problems, lambda: check_model(llm, str(fields["model"])))
    if fields.get("tools"):
        _collect(problems, lambda: check_tools(tools, list(fields["tools"]), denied_tools))
    if fields.get("output_schema") is not None:
        _collect(problems, lambda: check_output_schema(fields["output_schema"]))
    if fields.get("guardrails"):
        _collect(problems, lambda: check_guardrails(list(fields["guardrails"])))
    if fields.get("max_turns") is not None and not 1 <= int(fields["max_turns"]) <= MAX_TURNS:
        problems.append(invalid("max_turns", f"max_turns is between 1 and {MAX_TURNS}", code="limit_exceeded"))
    if fields.get("model_settings"):
        _collect(problems, lambda: _check_model_settings(fields["model_settings"]))
    if fields.get("mcp_servers"):
        _collect(problems, lambda: check_mcp_servers(fields["mcp_servers"], mcp_policy or AddressPolicy(),
                                                     operator_mcp_servers(llm)))
    raise_all(problems)


def _check_model_settings(settings: Any) -> None:
    from agentadapter.agents.run_config import ModelSettings

    check_model_settings(settings)
    try:
        ModelSettings.of(dict(settings))
    except (AgentAdapterError, TypeError, ValueError) as exc:
        raise invalid("model_settings", f"{exc}", code="invalid_model_settings") from exc


# ----------------------------------------------------------------------------------------- building


def definition_spec(definition: AgentDefinition, names_by_id: Mapping[str, str]) -> dict[str, Any]:
    """The agent layer's spec of a definition (handoffs by name)."""
    spec: dict[str, Any] = {
        "type": "llm",  # the tenant's facade runs it: never a local runner, a class or an endpoint
        "name": definition.name, "description": definition.description, "instructions": definition.instructions,
        "model": definition.model, "tools": [t for t in definition.tools or [] if t not in CONTEXT_TOOLS],
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
    """The user settings the agent factory reads (``default_model``; ``prefer_local`` is passed on but
    has no effect: every agent the builder makes is an ``llm`` agent on the tenant's facade)."""
    if settings is None:
        return {}
    defaults: dict[str, Any] = {"prefer_local": bool(settings.prefer_local),
                                "rag_archives": list(settings.rag_archives or [])}
    if settings.default_model:
        defaults["default_model"] = settings.default_model
    return defaults




# ------------------------------------------------------------------------------------------ the builder


def builder(parts: BuildParts) -> DefinitionBuilder:
    """The builder of a process's parts and settings (the API server's state, a worker's runtime)."""
    return DefinitionBuilder.of(llm=parts.llm, tools=parts.tools, service=parts.service, knowledge=knowledge_of(parts))



@dataclass(frozen=True, slots=True)
class DefinitionBuilder:
    """Checks a tenant's definitions when they are written, and builds them (checked again) to run."""

    llm: LLM
    """The service's facade: what models, aliases and backends exist (the operator's config)."""
    tools: ToolRegistry
    denied_tools: frozenset[str]
    """Registered tools that agents defined through the API may not use."""
    caps: RunCaps
    knowledge: Knowledge | None = None
    """Where ``file_search`` searches (None: agents get no file_search)."""
    mcp_policy: AddressPolicy = field(default_factory=AddressPolicy)
    """The addresses a tenant's MCP servers may be on (http_fetch's rules, with the operator's exemptions)."""
    agent_types: frozenset[str] = frozenset()
    """The operator's loaded agent types a tenant's workflow entry may name (by name only)."""

    @classmethod
    def of(cls, *, llm: LLM, tools: ToolRegistry, service: ServiceSettings,
           knowledge: Knowledge | None = None) -> DefinitionBuilder:
        """From the service's parts and its settings."""
        policy = AddressPolicy(allowed_hosts=tuple(service.mcp_allowed_hosts),
                               allowed_networks=tuple(service.mcp_allowed_networks))
        from agentadapter.service.agent_types import loaded_types

        return cls(llm=llm, tools=tools, denied_tools=frozenset(service.api_denied_tools), caps=RunCaps.of(service),
                   knowledge=knowledge, mcp_policy=policy, agent_types=loaded_types())

    # ---------------------------------------------------------------------------------------- agents

    def check_agent(self, fields: Mapping[str, Any]) -> None:
        """The checks of an agent definition being written (all but its handoffs)."""
        check_definition(fields, llm=self.llm, tools=self.tools, denied_tools=self.denied_tools,
                         mcp_policy=self.mcp_policy)

    def check_defaults(self, defaults: Mapping[str, Any]) -> None:
        """The user settings an agent falls back on (``default_model``) obey the same rules."""
        model = defaults.get("default_model")
        if model:
            _at_build("settings", "your settings", "PATCH /v1/settings", lambda: check_model(self.llm, str(model),
                                                                                          "default_model"))

    async def build_agent(
        self, session: AsyncSession, tenant_id: uuid.UUID, definition: AgentDefinition, defaults: Mapping[str, Any],
    ) -> BaseAgent:
        """The runnable agent of a definition, with its handoff targets (transitively) and guardrails."""
        self.check_defaults(defaults)
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
        for stored in closure.values():
            self._recheck(stored, "agent_id")
        names_by_id = {key: d.name for key, d in closure.items()}
        specs = [definition_spec(d, names_by_id) for d in closure.values()]
        try:
            built = create_agents(specs, tools=self.tools, defaults=factory_defaults(defaults))
        except AgentAdapterError as exc:
            raise invalid("agent_id", f"agent {definition.name!r} cannot be built: {exc}",
                          code="invalid_agent") from exc
        rag = await settings_archives(session, tenant_id, defaults) if self.knowledge is not None else []
        for stored in closure.values():
            _attach_guardrails(built[stored.name], stored)
            if wants_file_search(stored):
                attach_file_search(self.knowledge, built[stored.name], tenant_id, rag)
        return self._with_mcp(built[definition.name], definition)

    def _with_mcp(self, agent: BaseAgent, definition: AgentDefinition | None) -> BaseAgent:
        """The agent, connected to its definition's MCP servers for each run (checked again on the way)."""
        servers = list(getattr(definition, "mcp_servers", None) or [])
        if not servers or definition is None or not isinstance(agent, LLMAgent):
            return agent
        specs = _at_build("agent_id", f"agent {definition.name!r}", f"PATCH /v1/agents/{definition.id}",
                          lambda: check_mcp_servers(servers, self.mcp_policy, operator_mcp_servers(self.llm)))
        operators = {e["name"] for e in servers if _is_reference(e)}  # the operator's: no address rules
        return MCPAgent(agent, specs, policy=self.mcp_policy, trusted=operators)

    def _recheck(self, stored: AgentDefinition, param: str) -> None:
        fields = {"name": stored.name, "description": stored.description, "instructions": stored.instructions,
                  "model": stored.model, "tools": list(stored.tools or []), "output_schema": stored.output_schema,
                  "guardrails": list(stored.guardrails or []), "model_settings": dict(stored.model_settings or {}),
                  "max_turns": stored.max_turns, "metadata": dict(stored.meta or {}),
                  "mcp_servers": list(stored.mcp_servers or [])}
        _at_build(param, f"agent {stored.name!r}", f"PATCH /v1/agents/{stored.id}", lambda: self.check_agent(fields))

    # ------------------------------------------------------------------------------------- workflows

    async def check_workflow(
        self, session: AsyncSession, tenant_id: uuid.UUID, spec: Mapping[str, Any], param: str,
        own_id: uuid.UUID | None = None,
    ) -> None:
        """The checks of a workflow being written: its spec as it will run (stored refs expanded); ``own_id``
        is the workflow being updated, which the workflows it runs must not run in turn."""
        expanded = dict(spec)
        await self._expand(session, tenant_id, expanded, param)
        workflow = _parse(self.caps.cap_spec(expanded), param)
        self._check_entries(workflow, param)
        nested = await self._nested_rows(session, tenant_id, spec, param)
        stack = ((own_id, str(spec.get("name") or "this workflow")),) if own_id is not None else ()
        inner: dict[str, BaseAgent] = {}
        for name, (index, row) in nested.items():
            where = f"{param}.agents[{index}].workflow"
            self._check_nesting(row, stack, where)
            inner[name] = await self._build_nested(session, tenant_id, name, row, {}, stack, where)
        try:
            workflow.build_agents(tools=self.tools, nested_agents=inner)
        except (WorkflowError, AgentAdapterError) as exc:
            raise invalid(param, str(exc), code="invalid_workflow") from exc

    def _check_entries(self, workflow: Workflow, param: str) -> None:
        """Models, tools, schemas and settings of the workflow's agents, as a tenant may give them."""
        for index, entry in enumerate(workflow.spec.agents):
            where = f"{param}.agents[{index}]"
            models = entry.model if isinstance(entry.model, list) else [entry.model] if entry.model else []
            for model in models:
                check_model(self.llm, model, param=f"{where}.model")
            if entry.tools:
                check_tools(self.tools, entry.tools, self.denied_tools, param=f"{where}.tools")
            if entry.output_schema is not None:
                check_output_schema(entry.output_schema, param=f"{where}.output_schema")
            if entry.model_settings:
                check_model_settings(entry.model_settings, param=f"{where}.model_settings")

    async def build_workflow(
        self, session: AsyncSession, tenant_id: uuid.UUID, row: WorkflowRow, defaults: Mapping[str, Any],
        _stack: tuple[tuple[uuid.UUID, str], ...] = (),
    ) -> tuple[Workflow, dict[str, BaseAgent]]:
        """The parsed workflow and its agents, stored refs expanded and their guardrails attached; a
        ``workflow:`` step is the stored workflow it names, built the same way (as a :class:`WorkflowAgent`)."""
        workflow, used = await self.plan_workflow(session, tenant_id, row, defaults)
        nested: dict[str, BaseAgent] = {}
        rows = await self._nested_rows(session, tenant_id, row.spec, "spec")
        for name, (index, inner_row) in rows.items():
            where = f"spec.agents[{index}].workflow"
            try:
                self._check_nesting(inner_row, (*_stack, (row.id, row.name)), where)
                nested[name] = await self._build_nested(session, tenant_id, name, inner_row, defaults,
                                                        (*_stack, (row.id, row.name)), where)
            except InvalidInput as exc:
                raise _build_error(exc, "workflow_id", f"workflow {row.name!r}", f"PATCH /v1/workflows/{row.id}") \
                    from exc
        try:
            agents = workflow.build_agents(tools=self.tools, defaults=factory_defaults(defaults),
                                           nested_agents=nested)
        except (WorkflowError, AgentAdapterError) as exc:
            raise invalid("workflow_id", f"workflow {row.name!r} cannot be built: {exc}",
                          code="invalid_workflow") from exc
        for name, definition in used.items():
            _attach_guardrails(agents.get(name), definition)
            if name in agents:
                agents[name] = self._with_mcp(agents[name], definition)
        if self.knowledge is not None:
            rag = await settings_archives(session, tenant_id, defaults)
            named = workflow_archives(row.spec)  # checked by plan_workflow: every name is an archive
            for name, agent in agents.items():
                if name in named:
                    chosen = await entry_archives(session, tenant_id, named[name], f"spec.agents.{name}.archives")
                    attach_file_search(self.knowledge, agent, tenant_id, chosen)
                elif wants_file_search(used.get(name)):
                    attach_file_search(self.knowledge, agent, tenant_id, rag)
        return workflow, agents

    async def plan_workflow(
        self, session: AsyncSession, tenant_id: uuid.UUID, row: WorkflowRow, defaults: Mapping[str, Any],
    ) -> tuple[Workflow, dict[str, AgentDefinition]]:
        """The parsed workflow, stored refs expanded and everything checked as :meth:`build_workflow` checks it,
        without building its agents (its strategy, agent names and options are all a run's replay needs);
        with the stored definitions used, by entry name."""
        self.check_defaults(defaults)
        where = f"workflow {row.name!r}"
        fix = f"PATCH /v1/workflows/{row.id}"
        spec = dict(row.spec)
        used: dict[str, AgentDefinition] = {}

        async def expand() -> None:
            used.update(await self._expand(session, tenant_id, spec, "spec"))

        try:
            await expand()
        except InvalidInput as exc:
            raise _build_error(exc, "workflow_id", where, fix) from exc
        for definition in used.values():
            self._recheck(definition, "workflow_id")
        workflow = _at_build("workflow_id", where, fix, lambda: _parse(self.caps.cap_spec(spec), "spec"))
        _at_build("workflow_id", where, fix, lambda: self._check_entries(workflow, "spec"))
        try:
            await self._nested_rows(session, tenant_id, row.spec, "spec")
        except InvalidInput as exc:
            raise _build_error(exc, "workflow_id", where, fix) from exc
        return workflow, used

    # ------------------------------------------------------------------------------ nested workflows

    async def _nested_rows(
        self, session: AsyncSession, tenant_id: uuid.UUID, spec: Mapping[str, Any], param: str,
    ) -> dict[str, tuple[int, WorkflowRow]]:
        """The stored workflows a spec's ``workflow:`` steps name, by step name (with the entry's index)."""
        entries = spec.get("agents")
        wanted: list[tuple[int, str, str]] = []
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, Mapping) or entry.get("workflow") is None:
                continue
            ref = entry["workflow"]
            if not isinstance(ref, str) or not ref:
                raise invalid(f"{param}.agents[{index}].workflow", "names one of your stored workflows (its id or "
                              "name)", code="invalid_workflow")
            wanted.append((index, str(entry.get("name") or entry.get("id") or index), ref))
        if not wanted:
            return {}
        found = await workflow_store.find_workflows(session, tenant_id, [ref for _, _, ref in wanted])
        rows: dict[str, tuple[int, WorkflowRow]] = {}
        for index, name, ref in wanted:
            row = found.get(ref)
            if row is None:
                raise invalid(f"{param}.agents[{index}].workflow", f"no workflow {ref!r} in this tenant; create it "
                              "first (POST /v1/workflows)", code="unknown_workflow")
            rows[name] = (index, row)
        return rows

    def _check_nesting(self, row: WorkflowRow, stack: tuple[tuple[uuid.UUID, str], ...], where: str) -> None:
        """Refuse a workflow that would run itself (``stack``: the workflows running it, outermost first)."""
        if row.id in {key for key, _ in stack}:
            chain = " -> ".join((*(name for _, name in stack), row.name))
            raise invalid(where, f"workflow {row.name!r} would run itself ({chain}); workflows cannot include "
                          "each other in a cycle", code="workflow_cycle")
        if len(stack) >= MAX_NESTING:
            raise invalid(where, f"workflows nest at most {MAX_NESTING} deep", code="limit_exceeded")

    async def _build_nested(
        self, session: AsyncSession, tenant_id: uuid.UUID, name: str, row: WorkflowRow, defaults: Mapping[str, Any],
        stack: tuple[tuple[uuid.UUID, str], ...], where: str,
    ) -> WorkflowAgent:
        """The stored workflow ``row`` as step ``name`` (its own limits, within the operator's caps)."""
        try:
            inner, agents = await self.build_workflow(session, tenant_id, row, defaults, stack)
        except InvalidInput as exc:
            raise invalid(where, exc.message, code=exc.code or "invalid_workflow") from exc
        return WorkflowAgent(name, inner, agents=agents, options=self.run_options(inner.options),
                             description=row.description)

    async def _expand(
        self, session: AsyncSession, tenant_id: uuid.UUID, spec: dict[str, Any], param: str,
    ) -> dict[str, AgentDefinition]:
        """Check the spec's own data, then replace each ``ref: <stored agent>`` entry by that definition's
        spec and make every entry an ``llm`` agent; returns the stored definitions used, by entry name."""
        refuse_interpolation(spec, param)
        if spec.get("mcp_servers"):
            raise invalid(f"{param}.mcp_servers", "a workflow sent through the API declares no MCP servers; give them "
                          "to a stored agent (mcp_servers of POST /v1/agents) and name that agent with ref:",
                          code="key_not_allowed")
        for index, named in pop_entry_archives(spec, param).items():  # the builder's key: checked here
            await entry_archives(session, tenant_id, named, f"{param}.agents[{index}].archives")
        refs = check_workflow_entries(spec, param, self.agent_types)
        self.caps.check_spec(spec, param)
        found = await agent_store.find_agents(session, tenant_id, [ref for _, ref in refs]) if refs else {}
        used: dict[str, AgentDefinition] = {}
        agents = [dict(entry) if isinstance(entry, Mapping) else entry for entry in spec.get("agents") or []]
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
        if isinstance(spec.get("agents"), list):
            spec["agents"] = [
                {**entry, "type": "llm"}
                if isinstance(entry, dict) and "workflow" not in entry and entry.get("type") not in self.agent_types
                else entry
                for entry in agents
            ]
        return used

    # ------------------------------------------------------------------------------------------- runs

    def run_options(self, base: RunOptions, requested: Mapping[str, Any] | None = None) -> RunOptions:
        """A run's options: the spec's, then the request's limits, within the operator's caps."""
        return self.caps.options(base, requested)



MAX_NESTING = 4
"""How deep a tenant's workflows may run one another (each level is a run inside a step)."""


def _parse(spec: Mapping[str, Any], param: str) -> Workflow:
    """Validate a tenant's workflow with the orchestrator's own parser; never interpolated."""
    try:
        return parse_workflow(yaml.safe_dump(dict(spec), sort_keys=False), source=param, interpolate=False,
                              massgen=False, nested_files=False)
    except WorkflowError as exc:
        where = f"{param}.{exc.path}" if getattr(exc, "path", None) and exc.path != "(top level)" else param
        message = str(exc).replace(f"workflow {param} is not valid:\n", "").strip()
        raise invalid(where, message, code="invalid_workflow") from exc


def _attach_guardrails(agent: BaseAgent | None, definition: AgentDefinition) -> None:
    if isinstance(agent, LLMAgent) and definition.guardrails:
        inputs, outputs = make_guardrails(definition.guardrails)
        agent.input_guardrails = [*agent.input_guardrails, *inputs]
        agent.output_guardrails = [*agent.output_guardrails, *outputs]


def _build_error(error: InvalidInput, param: str, what: str, fix: str) -> InvalidInput:
    """A check that failed at build time: the same refusal, naming the stored resource and how to fix it."""
    where = f" ({error.param})" if error.param else ""
    message = error.message.removeprefix(f"{error.param}: ") if error.param else error.message
    return InvalidInput(f"{what} cannot run{where}: {message}; fix it with {fix}", code=error.code, param=param,
                        details={**(error.details or {}), "field": error.param})


def _at_build(param: str, what: str, fix: str, check: Any) -> Any:
    try:
        return check()
    except InvalidInput as exc:
        raise _build_error(exc, param, what, fix) from exc
