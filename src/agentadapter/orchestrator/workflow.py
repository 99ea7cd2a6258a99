"""Workflows in YAML: the file format, its validation, and the :class:`Workflow` it becomes.

A workflow names a strategy and its agents (DESIGN.md's shape)::

    name: research-team
    strategy: sequential            # sequential | parallel | adaptive | loop
    agents:
      - {name: researcher, model: openai/gpt-4o-mini, instructions: "Find the facts."}
      - {name: reviewer, ref: "my_package.agents:Reviewer", timeout_s: 30}
    limits: {max_cost_usd: 1.0, max_steps: 20, timeout_s: 300}

plus ``aggregate`` / ``judge`` / ``quorum`` (parallel), ``router`` / ``routes`` / ``start``
(adaptive), ``loop: {generator, evaluator, max_iterations, until}``, ``retry:``,
``agent_timeout_s`` and a default ``input``. Agents are the agent layer's specs (built with
``create_agents``, so handoffs may name each other; the seeds' ``id`` is accepted for ``name``) plus
``timeout_s`` and ``max_retries`` for the orchestrator. ``${VAR}`` is read from the environment.
A config in MassGen's shape (``agent:``/``agents:`` with ``id``, ``backend:``, ``system_message``,
``orchestrator:``, ``ui:``, ``timeout_settings:``) is translated first by :mod:`.massgen`, whose
warnings name every key not carried over (:attr:`Workflow.warnings`).
Everything is checked when the file loads - pydantic for the shapes, then every agent a strategy
names and every condition - and each error names the YAML path and line:
``team.yaml:7: agents[1].model: Input should be a valid string``.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.factory import AgentSpec, create_agent, create_agents
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.tools.mcp_config import MCPAgent, parse_mcp_servers
from agentadapter.agents.tools.registry import ToolRegistry
from agentadapter.config import interpolate
from agentadapter.llm.errors import ConfigurationError
from agentadapter.observability.logging import get_logger
from agentadapter.orchestrator.conditions import Condition
from agentadapter.orchestrator.errors import ConditionError, StrategyError, WorkflowError
from agentadapter.orchestrator.massgen import is_massgen, translate
from agentadapter.orchestrator.options import RunLimits, RunOptions, StepPolicy
from agentadapter.orchestrator.strategies import END, Adaptive, Loop, Parallel, Route, Sequential, Strategy

__all__ = ["Workflow", "WorkflowAgentSpec", "WorkflowSpec", "load_workflow", "parse_workflow"]

Path_ = tuple[str | int, ...]

logger = get_logger("agentadapter.workflow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LimitsSpec(_Strict):
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)


class RetrySpec(_Strict):
    max_retries: int = Field(default=1, ge=0)
    initial_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(default=8.0, ge=0)


class RouteSpec(_Strict):
    source: str | None = Field(default=None, alias="from")
    to: str = Field(min_length=1)
    when: str | None = None


class LoopSpec(_Strict):
    generator: str
    evaluator: str
    max_iterations: int = Field(default=3, ge=1)
    until: str | None = None


class WorkflowAgentSpec(AgentSpec):
    """An agent spec with the orchestrator's per-agent settings."""

    timeout_s: float | None = Field(default=None, gt=0)
    """Seconds one attempt of this agent's steps may take (``timeout`` is an online agent's per-request one)."""
    retries: int | None = Field(default=None, ge=0)
    """Retries of this agent's failed steps (``max_retries`` is an online agent's HTTP retry count)."""
    mcp_servers: list[str] = Field(default_factory=list)
    """Names of the workflow's MCP servers (``mcp_servers:`` at the top) whose tools this agent uses."""
    workflow: str | None = Field(default=None, min_length=1)
    """Another workflow run as this step: a file path (relative to this file) in workflow files; a
    stored workflow's id or name in a tenant's workflow."""
    framework: str | None = Field(default=None, min_length=1)
    """Another framework's agent (``langchain``, ``langgraph``, ``ag2``, ``openai-agents``) that ``ref:``
    names as ``module:object``; workflow files only (see :func:`_framework_agents`)."""

    def agent_spec(self) -> AgentSpec:
        data = self.model_dump(exclude={"timeout_s", "retries", "workflow", "framework", "mcp_servers"},
                               exclude_unset=True)
        return AgentSpec.model_validate(data)


class WorkflowSpec(_Strict):
    """The shape of a workflow file."""

    name: str = ""
    description: str = ""
    strategy: Literal["sequential", "parallel", "adaptive", "loop"] = "sequential"
    agents: list[WorkflowAgentSpec] = Field(min_length=1)
    aggregate: Literal["concat", "vote", "judge", "first"] | None = None
    judge: str | None = None
    quorum: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    router: str | None = None
    routes: list[RouteSpec] = Field(default_factory=list)
    start: str | None = None
    loop: LoopSpec | None = None
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    agent_timeout_s: float | None = Field(default=None, gt=0)
    input: str | None = None
    """The input used when the run is given none."""
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    """MCP servers (``{name, url, headers}`` or ``{name, command, args, env}``) agents name in their own
    ``mcp_servers:``; each run of such an agent connects to them and closes the connections at its end."""


# --------------------------------------------------------------------------------------- loading


def load_workflow(
    path: str | Path, *, mcp_servers: Sequence[Mapping[str, Any]] = (), _including: tuple[Path, ...] = (),
) -> Workflow:
    """Read, interpolate and validate a workflow file (and the workflow files its steps name).

    ``mcp_servers`` are MCP servers the operator declared elsewhere (``agentadapter.yaml``) that the file's
    agents may name too; the file's own declarations win by name."""
    file_path = Path(path)
    try:
        text = file_path.read_text("utf-8")
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow file {str(file_path)!r}: {exc.strerror}; check the path",
                            source=str(file_path)) from exc
    return parse_workflow(text, source=str(file_path), base_dir=file_path.parent, mcp_servers=mcp_servers,
                          _including=(*_including, file_path.resolve()))


def parse_workflow(
    text: str, *, source: str = "workflow", base_dir: str | Path | None = None, interpolate: bool = True,
    massgen: bool = True, nested_files: bool = True, mcp_servers: Sequence[Mapping[str, Any]] = (),
    _including: tuple[Path, ...] = (),
) -> Workflow:
    """Validate a workflow given as YAML text (``source`` names it in errors).

    ``interpolate`` reads ``${VAR}`` from the environment: right for an operator's file, never for data
    someone else wrote (the service parses its tenants' workflows with it off). ``massgen`` accepts
    MassGen's shape too (off for tenants' data: a MassGen backend may name a base URL).
    ``nested_files`` loads the workflow files that ``workflow:`` entries name (off for tenants' data,
    whose ``workflow:`` names a stored workflow the service's builder resolves).
    """
    data, lines = _load_yaml(text, source)
    if not isinstance(data, dict):
        raise WorkflowError(f"{source}: a workflow is a mapping (name:, strategy:, agents: ...), "
                            f"not {type(data).__name__}", source=source, line=1)
    if interpolate:
        data = _interpolate(data, (), source, lines)
    warnings: list[str] = []
    if massgen and is_massgen(data):
        try:
            translated = translate(data)
        except ConfigurationError as exc:
            raise WorkflowError(f"{source}: {exc}", source=source) from None
        for target, origin in translated.paths.items():
            if origin in lines:
                lines[target] = lines[origin]
        if "agent" in data and "agents" not in data:
            lines[("agents", 0)] = lines.get(("agent",), 1)
        data = translated.data
        warnings = [f"{source}:{_line(lines, path)}: {_dotted(path)}: {message}"
                    for path, message in translated.warnings]
        for warning in warnings:
            logger.info("workflow key ignored", extra={"warning": warning})
    if mcp_servers and isinstance(data, dict):
        own = data.get("mcp_servers")
        names = {s.get("name") for s in own if isinstance(s, Mapping)} if isinstance(own, list) else set()
        extra = [dict(s) for s in mcp_servers if s.get("name") not in names]
        data = {**data, "mcp_servers": [*(own if isinstance(own, list) else []), *extra]}
    try:
        spec = WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [(tuple(e["loc"]), _message(e)) for e in exc.errors()]
        raise _errors(source, lines, problems) from None
    if not spec.name:
        spec.name = Path(source).stem if source != "workflow" else "workflow"
    problems = list(_check(spec))
    if problems:
        raise _errors(source, lines, problems)
    workflow = Workflow(spec, source, Path(base_dir) if base_dir is not None else None, lines, warnings)
    if nested_files:
        workflow.nested = _nested_files(workflow, _including)
    return workflow


def _nested_files(workflow: Workflow, including: tuple[Path, ...]) -> dict[str, Workflow]:
    """The workflows ``workflow: file.yaml`` entries name, loaded (and checked) now; a cycle is an error."""
    nested: dict[str, Workflow] = {}
    for index, entry in enumerate(workflow.spec.agents):
        if entry.workflow is None:
            continue
        path = Path(entry.workflow)
        if not path.is_absolute() and workflow.base_dir is not None:
            path = workflow.base_dir / path
        line = _line(workflow.lines, ("agents", index, "workflow"))
        where = f"{workflow.source}:{line}: agents[{index}].workflow"
        if path.resolve() in including:
            chain = " -> ".join(p.name for p in (*including, path.resolve()))
            raise WorkflowError(f"{where}: workflows include each other in a cycle ({chain}); a workflow cannot "
                                "run itself", source=workflow.source, line=line, path=f"agents[{index}].workflow")
        try:
            nested[entry.name] = load_workflow(path, _including=including)
        except WorkflowError as exc:
            raise WorkflowError(f"{where}: the nested workflow is not usable: {exc}", source=workflow.source,
                                line=line, path=f"agents[{index}].workflow") from exc
    return nested


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"{source}:{line}" if line else source
        raise WorkflowError(f"{where}: not valid YAML: {problem}", source=source, line=line) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        _positions(node, (), lines)
    return data, lines


def _positions(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, key_node.value)
                lines[child] = key_node.start_mark.line + 1
                _positions(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, (*path, index), lines)


def _interpolate(value: Any, path: Path_, source: str, lines: Mapping[Path_, int]) -> Any:
    if isinstance(value, str):
        try:
            return interpolate(value, source=f"{source}:{_line(lines, path)} ({_dotted(path)})")
        except ConfigurationError as exc:
            raise WorkflowError(str(exc), source=source, line=_line(lines, path), path=_dotted(path)) from None
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), source, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), source, lines) for i, v in enumerate(value)]
    return value


def _line(lines: Mapping[Path_, int], path: Path_) -> int:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown key (check its spelling; see docs/workflows.md for the keys)"
    if kind == "missing":
        return "required key is missing"
    return str(error.get("msg", "invalid"))


def _errors(source: str, lines: Mapping[Path_, int], problems: list[tuple[Path_, str]]) -> WorkflowError:
    located = []
    for loc, message in problems:
        # pydantic adds the member of a union it tried ('str', 'list[str]'): keep the YAML part.
        path = tuple(p for p in loc if isinstance(p, int) or not re.fullmatch(r"[a-z-]+\[.*\]|str|int|float|bool", p))
        located.append((_line(lines, path), _dotted(path), message))
    located.sort(key=lambda item: item[0])
    text = "\n".join(f"  {source}:{line}: {where}: {message}" for line, where, message in located)
    first_line, first_path, _ = located[0]
    return WorkflowError(f"workflow {source} is not valid:\n{text}", source=source, line=first_line,
                         path=first_path)


# What a `workflow:` step may set besides the workflow it runs (it is no model agent).
_NESTED_KEYS = frozenset({"name", "description", "workflow", "timeout_s", "retries"})


def _check(spec: WorkflowSpec) -> Iterator[tuple[Path_, str]]:
    """Cross-field checks: agents a strategy names exist, settings fit the strategy, conditions compile."""
    names = [a.name for a in spec.agents]
    known = set(names)
    for index, name in enumerate(names):
        if names.index(name) != index:
            yield ("agents", index, "name"), f"the name {name!r} is used by another agent too"
    servers: set[str] = set()
    try:
        servers = {s.name for s in parse_mcp_servers(spec.mcp_servers, allow_stdio=True)}
    except ConfigurationError as exc:
        where, _, message = str(exc).partition(": ")
        path: Path_ = tuple(int(p) if p.isdigit() else p for p in re.split(r"[\[\].]+", where) if p)
        yield path, message
    for index, entry in enumerate(spec.agents):
        for position, server in enumerate(entry.mcp_servers):
            if server not in servers:
                yield (("agents", index, "mcp_servers", position),
                       f"no MCP server named {server!r} in the workflow's mcp_servers ({', '.join(sorted(servers))})")
        if entry.workflow is not None:
            for key in sorted(entry.model_fields_set - _NESTED_KEYS):
                yield (("agents", index, key), "a workflow: step runs another workflow; it takes only "
                       f"{', '.join(sorted(_NESTED_KEYS))}")

    def agent(path: Path_, name: str | None, *, end_ok: bool = False) -> Iterator[tuple[Path_, str]]:
        if name is not None and name not in known and not (end_ok and name == END):
            yield path, f"{name!r} is not one of the workflow's agents ({', '.join(names)})"

    def only_for(strategy: str, key: str, present: bool) -> Iterator[tuple[Path_, str]]:
        if present and spec.strategy != strategy:
            yield (key,), f"applies to strategy {strategy} only (this workflow's strategy is {spec.strategy})"

    yield from _framework_problems(spec)
    yield from only_for("parallel", "aggregate", spec.aggregate is not None)
    yield from only_for("parallel", "judge", spec.judge is not None)
    yield from only_for("parallel", "quorum", spec.quorum is not None)
    yield from only_for("parallel", "max_concurrency", spec.max_concurrency is not None)
    yield from only_for("adaptive", "router", spec.router is not None)
    yield from only_for("adaptive", "routes", bool(spec.routes))
    yield from only_for("adaptive", "start", spec.start is not None)
    yield from only_for("loop", "loop", spec.loop is not None)
    yield from agent(("judge",), spec.judge)
    yield from agent(("router",), spec.router)
    yield from agent(("start",), spec.start)
    if spec.strategy == "parallel":
        if spec.aggregate == "judge" and spec.judge is None:
            yield ("aggregate",), "aggregate judge needs judge: <agent name> (the agent that picks or merges)"
        group = len([n for n in names if n != spec.judge])
        if group == 0:
            yield ("agents",), "a parallel workflow needs at least one agent besides the judge"
        elif spec.quorum is not None and spec.quorum > group:
            yield ("quorum",), f"the quorum is {spec.quorum} but only {group} agent(s) answer"
    if spec.strategy == "adaptive" and spec.router is None and not spec.routes:
        yield ("strategy",), "an adaptive workflow needs router: <agent>, routes: [...], or both"
    for index, route in enumerate(spec.routes):
        yield from agent(("routes", index, "from"), route.source)
        yield from agent(("routes", index, "to"), route.to, end_ok=True)
        if route.when is not None:
            yield from _condition(("routes", index, "when"), route.when)
    if spec.strategy == "loop":
        if spec.loop is None:
            yield ("strategy",), "a loop workflow needs loop: {generator: <agent>, evaluator: <agent>}"
        else:
            yield from agent(("loop", "generator"), spec.loop.generator)
            yield from agent(("loop", "evaluator"), spec.loop.evaluator)
            if spec.loop.generator == spec.loop.evaluator:
                yield ("loop", "evaluator"), "the evaluator must be another agent than the generator"
            if spec.loop.until is not None:
                yield from _condition(("loop", "until"), spec.loop.until)


def _condition(path: Path_, source: str) -> Iterator[tuple[Path_, str]]:
    try:
        Condition(source)
    except ConditionError as exc:
        yield path, str(exc)


# -------------------------------------------------------------------------------------- workflow


@dataclass
class Workflow:
    """A validated workflow: its spec, and the agents, strategy and options it runs with."""

    spec: WorkflowSpec
    source: str = "workflow"
    base_dir: Path | None = None
    """Where ``ref:`` modules are also looked for (the file's directory)."""
    lines: Mapping[Path_, int] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    """Keys of the file that are not carried over (a MassGen config's options this runner does not implement)."""
    nested: dict[str, Workflow] = field(default_factory=dict)
    """The workflows that ``workflow:`` steps run, by step name (loaded from files; empty for tenants')."""
    _agents: dict[str, BaseAgent] | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input(self) -> str | None:
        return self.spec.input

    @property
    def agents(self) -> dict[str, BaseAgent]:
        """The agents, built on first use with the default tool registry and settings."""
        if self._agents is None:
            self._agents = self.build_agents()
        return self._agents

    def build_agents(
        self, *, tools: ToolRegistry | None = None, defaults: Mapping[str, Any] | None = None,
        models: str | Mapping[str, str] | None = None, nested_agents: Mapping[str, BaseAgent] | None = None,
    ) -> dict[str, BaseAgent]:
        """Build the agents (fresh ones each call), in file order.

        ``models`` replaces the model of inline agents: one id for all of them, or ``{agent: model}``
        (``"*"`` for the others; ``ref:`` agents keep theirs). ``defaults`` are user settings
        (``default_model``, ...). ``nested_agents`` are the agents of ``workflow:`` steps, by step name
        (the service builds them; a file's are built from the workflows it loaded).
        """
        specs = []
        for entry in self.spec.agents:
            if entry.workflow is not None or entry.framework is not None:
                continue  # a nested workflow, or another framework's agent: built below
            spec = entry.agent_spec()
            override = models if isinstance(models, str) else (models or {}).get(entry.name, (models or {}).get("*"))
            if override and not spec.ref:
                spec = spec.model_copy(update={
                    "model": override, "provider": None, "base_url": None, "endpoint": None, "backend": None,
                    "api_key": None, "backups": [], "runner": None, "model_path": None, "type": None,
                })
            specs.append(spec)
        with self._importable():
            try:
                built = create_agents(specs, tools=tools, defaults=defaults)
            except ConfigurationError as exc:
                raise self._agent_errors(exc, specs, tools, defaults) from exc
            built.update(_framework_agents(self))
        return self._with_mcp(self._with_nested(built, nested_agents or {}, tools, defaults))

    def _with_mcp(self, agents: dict[str, BaseAgent]) -> dict[str, BaseAgent]:
        """Agents that name MCP servers, as :class:`MCPAgent` s that connect to them for each run."""
        declared = {s.name: s for s in parse_mcp_servers(self.spec.mcp_servers, allow_stdio=True)}
        for entry in self.spec.agents:
            agent = agents.get(entry.name)
            if entry.mcp_servers and isinstance(agent, LLMAgent):
                agents[entry.name] = MCPAgent(agent, [declared[name] for name in entry.mcp_servers])
        return agents

    def _with_nested(
        self, built: dict[str, BaseAgent], given: Mapping[str, BaseAgent], tools: ToolRegistry | None,
        defaults: Mapping[str, Any] | None,
    ) -> dict[str, BaseAgent]:
        """The agents in file order, ``workflow:`` steps as :class:`WorkflowAgent` s (given, or from files)."""
        from agentadapter.orchestrator.nested import WorkflowAgent

        ordered: dict[str, BaseAgent] = {}
        for index, entry in enumerate(self.spec.agents):
            if entry.workflow is None:
                ordered[entry.name] = built[entry.name]
            elif entry.name in given:
                ordered[entry.name] = given[entry.name]
            elif entry.name in self.nested:
                inner = self.nested[entry.name]
                ordered[entry.name] = WorkflowAgent(
                    entry.name, inner, agents=inner.build_agents(tools=tools, defaults=defaults),
                    description=entry.description,
                )
            else:
                line = _line(self.lines, ("agents", index, "workflow"))
                raise WorkflowError(f"{self.source}:{line}: agents[{index}].workflow: workflow {entry.workflow!r} "
                                    "was not resolved (load the file with load_workflow)", source=self.source,
                                    line=line, path=f"agents[{index}].workflow")
        return ordered

    def with_models(self, models: str | Mapping[str, str]) -> Workflow:
        """A copy whose inline agents run on other models (see :meth:`build_agents`)."""
        copy = Workflow(self.spec, self.source, self.base_dir, self.lines, self.warnings, self.nested)
        copy._agents = copy.build_agents(models=models)
        return copy

    @property
    def strategy(self) -> Strategy:
        spec = self.spec
        try:
            if spec.strategy == "sequential":
                return Sequential()
            if spec.strategy == "parallel":
                return Parallel(aggregate=spec.aggregate or "concat", judge=spec.judge, quorum=spec.quorum or 1,
                                max_concurrency=spec.max_concurrency)
            if spec.strategy == "adaptive":
                routes = tuple(Route(r.source, r.to, r.when) for r in spec.routes)
                return Adaptive(router=spec.router, routes=routes, start=spec.start)
            assert spec.loop is not None
            return Loop(spec.loop.generator, spec.loop.evaluator, spec.loop.max_iterations, spec.loop.until)
        except StrategyError as exc:  # pragma: no cover - the checks at load time catch these
            raise WorkflowError(f"{self.source}: {exc}", source=self.source) from exc

    @property
    def options(self) -> RunOptions:
        """The run options the file sets: limits, retries, timeouts."""
        spec = self.spec
        retry = spec.retry
        step = StepPolicy(timeout_s=spec.agent_timeout_s, max_retries=retry.max_retries,
                          initial_delay_s=retry.initial_delay_s, max_delay_s=retry.max_delay_s)
        overrides = {
            a.name: StepPolicy(
                timeout_s=a.timeout_s if a.timeout_s is not None else step.timeout_s,
                max_retries=a.retries if a.retries is not None else step.max_retries,
                initial_delay_s=step.initial_delay_s, max_delay_s=step.max_delay_s,
            )
            for a in spec.agents if a.timeout_s is not None or a.retries is not None
        }
        limits = RunLimits(spec.limits.max_cost_usd, spec.limits.max_steps, spec.limits.timeout_s)
        return RunOptions(limits=limits, step=step, agents=overrides)

    @contextlib.contextmanager
    def _importable(self) -> Iterator[None]:
        """Let ``ref: "module:Class"`` find modules next to the workflow file."""
        directory = str(self.base_dir.resolve()) if self.base_dir is not None else ""
        added = bool(directory) and directory not in sys.path
        if added:
            sys.path.insert(0, directory)
        try:
            yield
        finally:
            if added and directory in sys.path:
                sys.path.remove(directory)

    def _agent_errors(
        self, error: ConfigurationError, specs: list[AgentSpec], tools: ToolRegistry | None,
        defaults: Mapping[str, Any] | None,
    ) -> WorkflowError:
        """Every agent's problem at once, each at the entry it comes from.

        Building stops at the first agent that fails, so each agent is built again alone (its
        handoffs apart) and its handoffs checked against the others' names; ``error`` stands for any
        problem only the whole set shows.
        """
        names = {spec.name for spec in specs}
        problems: list[tuple[Path_, str, str]] = []  # (YAML path, agent name, message)
        for index, spec in enumerate(specs):
            path: Path_ = ("agents", index)
            try:
                create_agent(spec.model_copy(update={"handoffs": []}), tools=tools, defaults=defaults)
            except ConfigurationError as exc:
                problems.append((path, spec.name, str(exc)))
            for position, target in enumerate(spec.handoffs or ()):
                if isinstance(target, str) and target not in names:
                    problems.append(((*path, "handoffs", position), spec.name,
                                     f"no agent named {target!r} to hand off to "
                                     f"(the workflow's agents: {', '.join(s.name for s in specs)})"))
        if not problems:
            message = str(error)
            culprit = next((i for i, e in enumerate(self.spec.agents) if f"{e.name!r}" in message), None)
            if culprit is None:
                return WorkflowError(f"{self.source}: {message}", source=self.source)
            problems.append((("agents", culprit), self.spec.agents[culprit].name, message))
        if len(problems) == 1:
            path, name, message = problems[0]
            line = _line(self.lines, path)
            return WorkflowError(f"{self.source}:{line}: {_dotted(path)} ({name}): {message}",
                                 source=self.source, line=line, path=_dotted(path))
        return _errors(self.source, self.lines, [
            (path, message if message.startswith(f"agent {name!r}") else f"agent {name!r}: {message}")
            for path, name, message in problems
        ])


# ------------------------------------------------------------------------ other frameworks' agents

_FRAMEWORK_KEYS = frozenset({"name", "framework", "ref", "params", "model", "timeout_s", "retries"})


def _framework_problems(spec: WorkflowSpec) -> Iterator[tuple[Path_, str]]:
    """A ``framework:`` entry names a known framework and a ``ref:``, and sets nothing our agents alone use."""
    from agentadapter.frameworks.loading import FRAMEWORKS

    for index, entry in enumerate(spec.agents):
        if entry.framework is None:
            continue
        if entry.framework not in FRAMEWORKS:
            yield ("agents", index, "framework"), (f"{entry.framework!r} is not a known framework "
                                                   f"({', '.join(sorted(FRAMEWORKS))})")
        if not entry.ref:
            yield ("agents", index, "framework"), "a framework agent needs ref: 'package.module:object'"
        for key in sorted(entry.model_fields_set - _FRAMEWORK_KEYS):
            yield ("agents", index, key), f"does not apply to a {entry.framework} agent (its object sets it)"


def _framework_agents(workflow: Workflow) -> dict[str, BaseAgent]:
    """The workflow's ``framework:`` entries as wrapped agents (imported next to the file, like ``ref:``)."""
    from agentadapter.frameworks.loading import framework_agent

    built: dict[str, BaseAgent] = {}
    for index, entry in enumerate(workflow.spec.agents):
        if entry.framework is None or not entry.ref:
            continue
        model = entry.model if isinstance(entry.model, str) else None
        try:
            built[entry.name] = framework_agent(entry.framework, entry.ref, entry.name, entry.params, model=model)
        except ConfigurationError as exc:
            line = _line(workflow.lines, ("agents", index))
            raise WorkflowError(f"{workflow.source}:{line}: agents[{index}] ({entry.name}): {exc}",
                                source=workflow.source, line=line, path=f"agents[{index}]") from exc
    return built
