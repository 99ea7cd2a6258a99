"""``create_agent``: agents from data (a dict, YAML, or a stored record).

A spec (:class:`AgentSpec`) names an agent and how it runs. The factory picks the class: ``type:``
when given (``llm``, ``online``, ``local``, or a type registered with :func:`register_agent_type`),
``ref: "module:Class"`` for a ``BaseAgent`` class, a ``local/...`` model or ``runner:`` for a
:class:`~agentadapter.agents.local.LocalAgent`, an endpoint (``base_url``, ``endpoint``, ``provider``,
the seeds' ``backend:``) for an :class:`~agentadapter.agents.online.OnlineAgent`, and otherwise the
transport in the user's settings (``prefer_local``) or ``AGENT_DEFAULT_TRANSPORT``. Defaults come from
the platform settings (``AGENT_ONLINE_ENDPOINTS`` names endpoints, ``LOCAL_MODEL_PATHS`` finds local
models) and the user settings passed as ``defaults`` (``default_model``, ``prefer_local``). Tools are
named and looked up in a :class:`~agentadapter.agents.tools.registry.ToolRegistry`; an ``output_schema``
(a JSON schema) gets a validation model built from it; handoffs name other agents of the same set
(:func:`create_agents`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.agents.local import LocalAgent
from agentadapter.agents.online import Endpoint, OnlineAgent
from agentadapter.agents.tools.registry import ToolRegistry, default_registry
from agentadapter.config import get_settings, interpolate
from agentadapter.llm.errors import ConfigurationError

__all__ = [
    "AgentSpec",
    "agent_types",
    "create_agent",
    "create_agents",
    "load_agents",
    "register_agent_type",
    "resolve_ref",
]

AgentFactory = Callable[["AgentSpec"], BaseAgent]

_TYPES: dict[str, type[BaseAgent] | AgentFactory] = {}
_BUILTIN_TYPES: dict[str, type[LLMAgent]] = {"llm": LLMAgent, "online": OnlineAgent, "local": LocalAgent}


class AgentSpec(BaseModel):
    """An agent as data. Unknown keys are refused, so a typo is an error rather than a silent default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(validation_alias=AliasChoices("name", "id"), min_length=1)
    """The agent's name (the seeds' ``id`` is accepted)."""
    type: str | None = Field(default=None, validation_alias=AliasChoices("type", "agent_type"))
    """``llm``, ``online``, ``local``, or a registered type; None: chosen from the other fields."""
    ref: str | None = None
    """``"package.module:Class"``: a BaseAgent class to instantiate with ``params``."""
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    capabilities: list[str] = Field(default_factory=list)
    instructions: str = ""
    model: str | list[str] | None = None
    model_settings: dict[str, Any] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)
    handoffs: list[str] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("output_schema", "output_type")
    )
    output_strategy: Literal["auto", "native", "tool"] = "auto"
    max_turns: int | None = Field(default=None, ge=1)
    # online
    provider: str | None = None
    base_url: str | None = None
    endpoint: str | None = None
    """A name from AGENT_ONLINE_ENDPOINTS (its URL becomes base_url; the wire format is OpenAI's)."""
    api_key: str | None = Field(default=None, repr=False)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    backups: list[str | dict[str, Any]] = Field(default_factory=list)
    backend: dict[str, Any] | None = None
    """The seeds' shape: ``backend: {type, model, api_key, base_url}``."""
    # local
    runner: str | None = None
    model_path: str | None = None
    device_config: dict[str, Any] = Field(default_factory=dict)
    generation_config: dict[str, Any] = Field(default_factory=dict)
    runner_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Options for the runner's constructor (load-time settings)."""

    @classmethod
    def of(cls, value: AgentSpec | Mapping[str, Any] | Any) -> AgentSpec:
        """A spec from a spec, a dict, or a record with ``model_dump()`` / ``to_dict()``."""
        if isinstance(value, AgentSpec):
            return value
        if not isinstance(value, Mapping):
            for method in ("model_dump", "to_dict"):
                dump = getattr(value, method, None)
                if callable(dump):
                    value = dump()
                    break
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"an agent spec is a dict (or YAML mapping), not a {type(value).__name__}")
        try:
            return cls.model_validate(dict(value))
        except pydantic.ValidationError as exc:
            name = value.get("name") or value.get("id") or "?"
            raise ConfigurationError(f"agent spec {name!r} is not valid: {exc}") from exc


def register_agent_type(name: str, factory: type[BaseAgent] | AgentFactory) -> None:
    """Make ``type: <name>`` build agents with ``factory`` (a BaseAgent class, or spec -> agent)."""
    if name in _BUILTIN_TYPES:
        raise ConfigurationError(f"agent type {name!r} is built in; register yours under another name")
    if not callable(factory):
        raise ConfigurationError(f"register_agent_type({name!r}, ...) needs a BaseAgent class or a function")
    _TYPES[name] = factory


def agent_types() -> list[str]:
    """The agent types a spec may name."""
    return sorted({*_BUILTIN_TYPES, *_TYPES})


def create_agent(
    spec: AgentSpec | Mapping[str, Any] | str | Path | Any,
    *,
    defaults: Mapping[str, Any] | None = None,
    tools: ToolRegistry | None = None,
    agents: Mapping[str, BaseAgent] | None = None,
) -> BaseAgent:
    """Build one agent from a spec: a dict, an ``AgentSpec``, YAML text (str), a YAML file (Path), or a record.

    ``defaults`` are the user's settings (``default_model``, ``prefer_local``); ``tools`` the registry
    tool names are looked up in (default: the process-wide one); ``agents`` the agents handoffs may name.
    """
    parsed = _parse(spec)
    if isinstance(parsed, list):
        if len(parsed) != 1:
            raise ConfigurationError(f"create_agent() got {len(parsed)} agent specs; use create_agents() for several")
        parsed = parsed[0]
    return _build(AgentSpec.of(parsed), defaults or {}, tools or default_registry(), agents or {})


def create_agents(
    specs: Iterable[AgentSpec | Mapping[str, Any]] | str | Path,
    *,
    defaults: Mapping[str, Any] | None = None,
    tools: ToolRegistry | None = None,
) -> dict[str, BaseAgent]:
    """Build a set of agents whose handoffs may name each other (in any order, cycles included)."""
    parsed = _parse(specs) if isinstance(specs, str | Path) else list(specs)
    items = [AgentSpec.of(s) for s in (parsed if isinstance(parsed, list) else [parsed])]
    names = [s.name for s in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"agent name(s) {', '.join(duplicates)} are used more than once")
    registry = tools or default_registry()
    # First every agent without handoffs, then the handoffs, so that agents may refer to each other.
    built = {s.name: _build(s.model_copy(update={"handoffs": []}), defaults or {}, registry, {}) for s in items}
    for item in items:
        if item.handoffs:
            agent = built[item.name]
            if not isinstance(agent, LLMAgent):
                raise ConfigurationError(f"agent {item.name!r} ({type(agent).__name__}) cannot have handoffs")
            agent.handoffs = [_lookup(name, built, item.name) for name in item.handoffs]
            agent.handoffs = list(agent.prepared_handoffs().values())
    return built


def load_agents(path: str | Path, **options: Any) -> dict[str, BaseAgent]:
    """Build the agents of a YAML file (``agents: [...]``, a list, or one agent)."""
    return create_agents(Path(path), **options)


# ------------------------------------------------------------------------------------------ internals


def _parse(spec: Any) -> Any:
    if isinstance(spec, Path):
        try:
            text = spec.read_text("utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read agent file {str(spec)!r}: {exc.strerror}") from exc
        return _parse_yaml(text, str(spec))
    if isinstance(spec, str):
        return _parse_yaml(spec, "agent YAML")
    return spec


def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source} is not valid YAML: {exc}") from exc
    data = interpolate(data, source=source)
    if isinstance(data, Mapping) and "agents" in data and "name" not in data and "id" not in data:
        data = data["agents"]
    if not isinstance(data, list | Mapping):
        raise ConfigurationError(f"{source} must hold an agent mapping, a list of them, or agents: [...]")
    return list(data) if isinstance(data, list) else dict(data)


def _lookup(name: str, agents: Mapping[str, BaseAgent], owner: str) -> BaseAgent:
    found = agents.get(name)
    if found is None:
        raise ConfigurationError(
            f"agent {owner!r} hands off to {name!r}, which is not among the agents given "
            f"({', '.join(sorted(agents)) or 'none'}); build them together with create_agents()"
        )
    return found


def _kind(spec: AgentSpec, defaults: Mapping[str, Any]) -> str:
    if spec.type:
        return spec.type
    if spec.ref:
        return "ref"
    model = spec.model if isinstance(spec.model, str) else ""
    if model.startswith("local/") or spec.runner or spec.model_path:
        return "local"
    if spec.base_url or spec.endpoint or spec.backend or spec.provider or spec.api_key or spec.backups:
        return "online"
    if isinstance(spec.model, list) or "/" in model:
        return "online"  # an explicit provider/model id (or a route) is online whatever the default
    if "prefer_local" in defaults:
        return "local" if defaults["prefer_local"] else "online"
    return get_settings().agent_default_transport


def _build(
    spec: AgentSpec, defaults: Mapping[str, Any], registry: ToolRegistry, agents: Mapping[str, BaseAgent]
) -> BaseAgent:
    kind = _kind(spec, defaults)
    if kind == "ref":
        assert spec.ref is not None
        return _instantiate(_import_ref(spec.ref, spec.name), spec)
    if kind in _TYPES:
        factory = _TYPES[kind]
        if isinstance(factory, type):
            return _instantiate(factory, spec)
        agent = factory(spec)
        if not isinstance(agent, BaseAgent):
            raise ConfigurationError(f"the factory of agent type {kind!r} returned a {type(agent).__name__}")
        return agent
    cls = _BUILTIN_TYPES.get(kind)
    if cls is None:
        raise ConfigurationError(
            f"agent {spec.name!r} has type {kind!r}; known types: {', '.join(agent_types())} "
            "(register others with register_agent_type)"
        )
    fields = _llm_fields(spec, defaults, registry, agents)
    try:
        if cls is OnlineAgent:
            return OnlineAgent(**fields, **_online_fields(spec))
        if cls is LocalAgent:
            return LocalAgent(**fields, **_local_fields(spec))
        return LLMAgent(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"agent {spec.name!r} cannot be built: {exc}") from exc


def _llm_fields(
    spec: AgentSpec, defaults: Mapping[str, Any], registry: ToolRegistry, agents: Mapping[str, BaseAgent]
) -> dict[str, Any]:
    model: str | list[str] | None = spec.model
    if spec.backend and not model:
        model = spec.backend.get("model")
    if not model and defaults.get("default_model"):
        model = str(defaults["default_model"])
    fields: dict[str, Any] = {
        "name": spec.name,
        "instructions": spec.instructions,
        "model": model,
        "model_settings": {**_backend_settings(spec), **spec.model_settings},
        "tools": registry.resolve(spec.tools),
        "handoffs": [_lookup(name, agents, spec.name) for name in spec.handoffs],
        "output_type": spec.output_schema,
        "output_strategy": spec.output_strategy,
        "description": spec.description,
        "capabilities": tuple(spec.capabilities),
    }
    if spec.max_turns is not None:
        fields["max_turns"] = spec.max_turns
    return fields


# The keys of the seeds' ``backend:`` mapping that say where the model is; the others are generation
# settings (ModelSettings' names), which reach every request like ``model_settings``.
_BACKEND_KEYS = frozenset({"type", "provider", "model", "api_key", "base_url", "headers", "timeout", "max_retries"})


def _backend_settings(spec: AgentSpec) -> dict[str, Any]:
    """The generation settings inside ``backend:`` (``temperature: 0.2``); an unknown key is an error,
    never dropped."""
    from agentadapter.agents.run_config import ModelSettings

    settings = {k: v for k, v in (spec.backend or {}).items() if k not in _BACKEND_KEYS}
    known = {f.name for f in dataclasses.fields(ModelSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigurationError(
            f"agent {spec.name!r}: backend key(s) {', '.join(unknown)} are unknown; a backend takes "
            f"{', '.join(sorted(_BACKEND_KEYS))} and the generation settings {', '.join(sorted(known))}"
        )
    return settings


def _online_fields(spec: AgentSpec) -> dict[str, Any]:
    backend = dict(spec.backend or {})
    base_url = spec.base_url or backend.get("base_url")
    provider = spec.provider or backend.get("type") or backend.get("provider")
    if spec.endpoint:
        endpoints = get_settings().agent_online_endpoints
        if spec.endpoint not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none are set"
            raise ConfigurationError(
                f"agent {spec.name!r} names endpoint {spec.endpoint!r}, which AGENT_ONLINE_ENDPOINTS does not "
                f"define ({known}); add {spec.endpoint}=<url> to it or give base_url"
            )
        base_url = base_url or endpoints[spec.endpoint]
        provider = provider or "custom"
    return {
        "provider": provider,
        "base_url": base_url,
        "api_key": spec.api_key or backend.get("api_key"),
        "headers": dict(spec.headers or backend.get("headers") or {}),
        "timeout": spec.timeout or backend.get("timeout"),
        "max_retries": spec.max_retries if spec.max_retries is not None else backend.get("max_retries"),
        "backups": [b if isinstance(b, str) else Endpoint.of(b) for b in spec.backups],
    }


def _local_fields(spec: AgentSpec) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "device_config": dict(spec.device_config),
        "generation_config": dict(spec.generation_config),
        "runner_kwargs": dict(spec.runner_kwargs),
    }
    if spec.runner:
        fields["runner"] = spec.runner
    if spec.model_path:
        fields["model_path"] = spec.model_path
    return fields


def resolve_ref(ref: str, name: str, *, shape: str = "package.module:object") -> Any:
    """The object ``ref`` (``package.module:attribute.path``) names, for the agent ``name`` of an operator's
    file; a :class:`ConfigurationError` naming the agent when it is malformed or cannot be imported."""
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"agent {name!r}: ref must be '{shape}', not {ref!r}")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except Exception as exc:
        raise ConfigurationError(f"agent {name!r}: cannot import {ref!r} ({type(exc).__name__}: {exc})") from exc
    return value


def _import_ref(ref: str, name: str) -> type[BaseAgent]:
    value = resolve_ref(ref, name, shape="package.module:Class")
    if not (isinstance(value, type) and issubclass(value, BaseAgent)):
        raise ConfigurationError(f"agent {name!r}: {ref!r} is not a BaseAgent subclass")
    return value


def _instantiate(cls: type[BaseAgent], spec: AgentSpec) -> BaseAgent:
    params = dict(spec.params)
    try:
        if issubclass(cls, LLMAgent):
            params.setdefault("name", spec.name)
            agent: BaseAgent = cls(**params)
        else:
            agent = cls(**params)
            agent.name = spec.name
    except TypeError as exc:
        raise ConfigurationError(
            f"agent {spec.name!r}: {cls.__qualname__} cannot be created with params {sorted(params)}: {exc}"
        ) from exc
    return agent
