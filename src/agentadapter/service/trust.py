"""The trust boundary: what data written by a tenant may say, and the limits an operator puts on runs.

Operators write the environment and config files; those are interpolated (``${VAR}``) and may name
local paths, Python classes, base URLs, keys and local models. Tenants write data through the API;
it is never interpolated and may name none of those. The checks here are what the one builder
(:mod:`agentadapter.service.building`) applies to a tenant's agent definitions and workflows
when they are written (a 422 naming the field) and again when they are built to run (rows stored
before a rule existed, or an operator who tightened a setting since, are refused the same way):

- no string anywhere holds ``${`` (it would read the server's environment if it ever reached an
  interpolating loader; the builder never interpolates, and refusing it keeps the data honest);
- a model is a ``provider/model`` id of a known online provider, a backend the operator named, or an
  alias of the operator's config - never ``local/...`` (which names files on the server) unless
  through such an alias;
- model settings carry no headers that authenticate or route a request;
- a workflow's agent entries use only the keys listed in :data:`TENANT_AGENT_KEYS`, ``ref:`` names
  the tenant's own stored agents (never ``module:Class``), and ``type`` is ``llm`` if given;
- the steps, loop iterations, retries and run time a spec asks for are capped by :class:`RunCaps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from agentadapter.llm.backends.presets import PRESETS, canonical_type
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.orchestrator import RunLimits, RunOptions, StepPolicy
from agentadapter.service.common import invalid

__all__ = [
    "MAX_TURNS",
    "OPERATOR_ONLY_HEADERS",
    "TENANT_AGENT_KEYS",
    "ModelRefusal",
    "RunCaps",
    "check_model",
    "check_model_settings",
    "check_workflow_entries",
    "model_refusal",
    "refuse_interpolation",
]

TENANT_AGENT_KEYS = frozenset({
    "name", "id", "ref", "description", "capabilities", "instructions", "model", "model_settings", "tools",
    "handoffs", "output_schema", "output_type", "output_strategy", "max_turns", "timeout_s", "retries", "type",
    "workflow",  # a stored workflow of the tenant (its id or name), run as this step
})
"""The keys a workflow's agent entry may have when a tenant writes it (the rest are operator-only:
``base_url``, ``api_key``, ``provider``, ``endpoint``, ``backend``, ``backups``, ``headers``, ``runner``,
``model_path``, ``device_config``, ``runner_kwargs``, ``params``, ...)."""

OPERATOR_ONLY_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "anthropic-version",
    "cookie", "host", "x-forwarded-for", "x-forwarded-host", "forwarded", "x-real-ip",
})
"""Headers that authenticate or route a provider request: the operator's keys and network decide them."""

_MARKER = "${"
MAX_TURNS = 100
"""The most model turns one agent of a tenant may take in one step."""


def refuse_interpolation(value: Any, param: str) -> None:
    """Refuse ``${`` in every string (keys included) of a tenant's data, naming where it is."""
    pending: list[tuple[Any, str]] = [(value, param)]
    while pending:  # a loop, not recursion: depth is bounded at the edge, but this must not rely on it
        item, path = pending.pop()
        if isinstance(item, str):
            if _MARKER in item:
                raise invalid(path, "${...} is not read from data sent through the API (only operators' config "
                                    "files are interpolated); write the value itself",
                              code="interpolation_not_allowed")
        elif isinstance(item, Mapping):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _MARKER in key:
                    raise invalid(where, "${...} is not allowed in keys of data sent through the API",
                                  code="interpolation_not_allowed")
                pending.append((child, where))
        elif isinstance(item, list | tuple):
            pending.extend((child, f"{path}[{index}]") for index, child in enumerate(item))


@dataclass(frozen=True, slots=True)
class ModelRefusal:
    """Why a tenant may not name a model, and what to do instead."""

    reason: Literal["invalid", "unknown", "operator_only"]
    """``invalid``: not a model id at all; ``unknown``: no provider, backend or alias here has it;
    ``operator_only``: a model only the operator may name (``local/...``)."""
    message: str


def model_refusal(llm: LLM, model: str) -> ModelRefusal | None:
    """The one rule for a model a tenant names (agents, workflows, settings, the gateway): an alias of
    the operator's config, or ``provider/model`` of a known online provider or a backend the operator
    named. ``local/...`` ids name files on the server: only operators reach them (through an alias or a
    named backend). None: allowed."""
    if not isinstance(model, str) or not model.strip():
        return ModelRefusal("invalid", "a model is a non-empty string such as 'openai/gpt-4o-mini'")
    if _MARKER in model:
        return ModelRefusal("invalid", "${...} is not read from data sent through the API; "
                                                         "write the model id itself")
    if model in llm.file_config.models:
        return None  # the operator's alias: its targets are the operator's choice
    try:
        leaves = llm.resolver.model_ids(model)
    except AgentAdapterError as exc:
        return ModelRefusal("invalid", str(exc))
    named = set(llm.file_config.backends) | set(llm.resolver.backends())  # named in the config, or given
    for leaf in leaves:
        provider, sep, name = leaf.partition("/")
        if not sep or not provider or not name:
            return ModelRefusal("unknown", f"{leaf!r} is not a provider/model id (like 'openai/gpt-4o-mini' "
                                                 "or 'test/echo') nor an alias defined in agentadapter.yaml")
        if provider in named:
            continue
        kind = canonical_type(provider)
        if kind not in PRESETS:
            known = ", ".join(sorted(p for p in PRESETS if p != "local"))
            return ModelRefusal("unknown", f"unknown provider {provider!r} in {leaf!r}; known providers: "
                                                 f"{known} (or a backend named in agentadapter.yaml)")
        if kind == "local":
            return ModelRefusal("operator_only", f"{leaf!r} names an in-process local model, which only the "
                                                     "operator may load; use an alias the operator defined for it "
                                                     "in agentadapter.yaml (GET /v1/models lists them)")
    return None


def check_model(llm: LLM, model: str, param: str = "model") -> None:
    """A 422 naming ``param`` unless a tenant may name ``model`` (:func:`model_refusal`)."""
    refusal = model_refusal(llm, model)
    if refusal is not None:
        raise invalid(param, refusal.message,
                      code="model_not_allowed" if refusal.reason == "operator_only" else "invalid_model")


def check_model_settings(settings: Mapping[str, Any], param: str = "model_settings") -> None:
    """Refuse headers that authenticate or route a request; the rest is checked by ``ModelSettings.of``."""
    headers = settings.get("extra_headers")
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise invalid(f"{param}.extra_headers", "extra_headers is an object of header names to string values",
                      code="invalid_model_settings")
    for name in headers:
        if str(name).strip().lower() in OPERATOR_ONLY_HEADERS:
            raise invalid(f"{param}.extra_headers.{name}", f"the {name} header authenticates or routes the request; "
                          "the operator's configuration sets it, not an agent definition",
                          code="header_not_allowed")


# What an entry naming one of the operator's agent types may set (by name only: no params).
_LOADED_TYPE_KEYS = frozenset({"name", "id", "type", "description", "timeout_s", "retries"})


def check_workflow_entries(spec: Mapping[str, Any], param: str,
                           agent_types: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """Refuse operator-only keys, code refs and agent types other than ``llm`` and the operator's loaded ones
    (``agent_types``) in a tenant's workflow; returns the ``(index, ref)`` of the entries that name stored
    agents."""
    stored: list[tuple[int, str]] = []
    entries = spec.get("agents")
    if not isinstance(entries, list):
        return stored
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        where = f"{param}.agents[{index}]"
        if "framework" in entry:  # before the generic refusal: say why, and where such agents do run
            raise invalid(f"{where}.framework", "agents of other frameworks (framework: with ref: module:object) run "
                          "from workflow files only, since they name Python code; through the API, name a stored "
                          "agent with ref:", code="framework_not_allowed")
        for key in entry:
            if key not in TENANT_AGENT_KEYS:
                raise invalid(f"{where}.{key}", f"{key!r} is not available to workflows sent through the API (it "
                              "is the operator's to set); store the agent with POST /v1/agents and name it with ref:",
                              code="key_not_allowed")
        kind = entry.get("type")
        if kind is not None and kind != "llm" and kind in agent_types:
            for key in entry:
                if key not in _LOADED_TYPE_KEYS:
                    raise invalid(f"{where}.{key}", f"an entry of the operator's agent type {kind!r} names it by "
                                  f"name only ({', '.join(sorted(_LOADED_TYPE_KEYS))})", code="key_not_allowed")
        elif kind is not None and kind != "llm":
            known = ", ".join(sorted({"llm", *agent_types}))
            raise invalid(f"{where}.type", f"agent type {kind!r} is not available through the API; agents sent "
                          f"through the API run on the service's models (type: llm, or leave it out) or are one "
                          f"of the operator's agent types (GET /v1/agent-types: {known})", code="type_not_allowed")
        ref = entry.get("ref")
        if ref is not None:
            if not isinstance(ref, str) or ":" in ref or not ref:
                raise invalid(f"{where}.ref", "through the API, ref: names one of your stored agents (its id or "
                              "name); Python classes (module:Class) are for workflow files", code="ref_not_allowed")
            stored.append((index, ref))
        max_turns = entry.get("max_turns")
        if isinstance(max_turns, int) and not isinstance(max_turns, bool) and max_turns > MAX_TURNS:
            raise invalid(f"{where}.max_turns", f"at most {MAX_TURNS} turns per agent", code="limit_exceeded")
    return stored


@dataclass(frozen=True, slots=True)
class RunCaps:
    """The operator's ceilings on a tenant's run, whatever its spec or request asks for."""

    max_steps: int = 1000
    max_loop_iterations: int = 100
    max_run_seconds: float = 3600.0
    max_step_retries: int = 5
    max_agents: int = 64

    @classmethod
    def of(cls, server: Any) -> RunCaps:
        """From the server settings (``AGENTADAPTER_RUN_MAX_*``)."""
        return cls(max_steps=server.run_max_steps, max_loop_iterations=server.run_max_loop_iterations,
                   max_run_seconds=server.run_max_seconds, max_step_retries=server.run_max_step_retries,
                   max_agents=server.run_max_agents)

    def check_spec(self, spec: Mapping[str, Any], param: str) -> None:
        """Refuse a workflow that cannot run within the caps (more agents than allowed)."""
        agents = spec.get("agents")
        if isinstance(agents, list) and len(agents) > self.max_agents:
            raise invalid(f"{param}.agents", f"a workflow may have at most {self.max_agents} agents "
                          f"(AGENTADAPTER_RUN_MAX_AGENTS); this one has {len(agents)}", code="limit_exceeded")

    def cap_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec with its loop iterations, step limit, run time and retries brought within the caps."""
        capped = dict(spec)
        loop = capped.get("loop")
        if isinstance(loop, Mapping):
            iterations = loop.get("max_iterations")
            if isinstance(iterations, int) and iterations > self.max_loop_iterations:
                capped["loop"] = {**loop, "max_iterations": self.max_loop_iterations}
        retry = capped.get("retry")
        if isinstance(retry, Mapping):
            retries = retry.get("max_retries")
            if isinstance(retries, int) and retries > self.max_step_retries:
                capped["retry"] = {**retry, "max_retries": self.max_step_retries}
        agents = capped.get("agents")
        if isinstance(agents, list):
            capped["agents"] = [
                {**entry, "retries": self.max_step_retries}
                if isinstance(entry, Mapping) and isinstance(entry.get("retries"), int)
                and entry["retries"] > self.max_step_retries else entry
                for entry in agents
            ]
        return capped

    def options(self, base: RunOptions, requested: Mapping[str, Any] | None = None) -> RunOptions:
        """Run options: the spec's (``base``), then what the request asks (``requested``), within the caps."""
        limits = base.limits
        values: dict[str, Any] = {"max_cost_usd": limits.max_cost_usd, "max_steps": limits.max_steps,
                                  "timeout_s": limits.timeout_s}
        values.update({k: v for k, v in (requested or {}).items() if v is not None})
        values["max_steps"] = min(values["max_steps"] or self.max_steps, self.max_steps)
        values["timeout_s"] = min(values["timeout_s"] or self.max_run_seconds, self.max_run_seconds)
        step = _capped_step(base.step, self.max_step_retries)
        agents = {name: _capped_step(policy, self.max_step_retries) for name, policy in base.agents.items()}
        return RunOptions(limits=RunLimits(**values), step=step, agents=agents)


def _capped_step(policy: StepPolicy, max_retries: int) -> StepPolicy:
    return policy if policy.max_retries <= max_retries else replace(policy, max_retries=max_retries)
