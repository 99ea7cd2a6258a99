"""MassGen-shaped configs: read MassGen's YAML and turn it into a workflow of ours, saying what is left out.

MassGen (a multi-agent system whose agents answer in parallel and then vote) writes its configs as::

    agents:                          # or a single `agent:` mapping
      - id: researcher
        backend: {type: openai, model: gpt-4o-mini, temperature: 0.3, reasoning: {effort: low}}
        system_message: "You are a researcher."
    orchestrator: {snapshot_storage: snapshots, context_paths: [...]}
    ui: {display_type: rich_terminal, logging_enabled: true}
    timeout_settings: {orchestrator_timeout_seconds: 1800}

:func:`translate` maps what we implement - ``id`` to ``name``, ``backend.type``/``model`` to a model id
(the seeds' type names are provider aliases: ``claude`` is ``anthropic``), the backend's generation
settings to ``model_settings`` (so they reach every request), ``base_url``/``api_key`` to the online
agent's endpoint, ``system_message`` to ``instructions``, ``timeout_settings.orchestrator_timeout_seconds``
to ``limits.timeout_s`` - and lists every other key as a warning naming its YAML path, never dropping
one silently. Keys of our own workflow format (``strategy``, ``aggregate``, ``limits``, ``input``, ...)
may stand beside MassGen's and win. Without a ``strategy:`` the config runs MassGen's way: the agents
answer in parallel, then vote (one agent alone simply runs). ``backend.type: ag2`` needs the
external-framework agents (``agentadapter.frameworks.ag2``); without them it is a clear error.
:mod:`.workflow` calls :func:`is_massgen` and :func:`translate` before validating a file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentadapter.llm.backends.presets import canonical_type

__all__ = ["MassGenTranslation", "is_massgen", "translate"]

# Top-level keys only MassGen configs have; a single `agent:` is MassGen's too.
_MASSGEN_KEYS = frozenset({"agent", "orchestrator", "ui", "timeout_settings"})
# Keys of our workflow format a MassGen config may also carry (they override the defaults).
_OWN_KEYS = frozenset(
    {
        "name",
        "description",
        "strategy",
        "aggregate",
        "judge",
        "quorum",
        "max_concurrency",
        "router",
        "routes",
        "start",
        "loop",
        "limits",
        "retry",
        "agent_timeout_s",
        "input",
        "mcp_servers",
    }
)
# Backend keys that are generation settings: they become the agent's model_settings.
_SETTINGS = ("temperature", "top_p", "max_tokens", "stop", "seed", "parallel_tool_calls", "tool_choice")
# Backend keys that say where the model is (an online agent's endpoint).
_ENDPOINT = ("base_url", "api_key")
# Agent keys of ours that may stand beside MassGen's in an agent entry.
_OWN_AGENT_KEYS = frozenset(
    {
        "tools",
        "handoffs",
        "output_schema",
        "max_turns",
        "timeout_s",
        "retries",
        "model_settings",
        "description",
        "mcp_servers",
        "ref",
        "params",
    }
)
Path_ = tuple[str | int, ...]
# The package the external-framework agents live in (another part of the project provides it).
AG2_MODULE = "agentadapter.frameworks.ag2"


@dataclass
class MassGenTranslation:
    """A MassGen config as our workflow data, with the warnings for what it does not carry over."""

    data: dict[str, Any]
    warnings: list[tuple[Path_, str]] = field(default_factory=list)
    """``(YAML path, what is ignored and why)`` for every key not carried over."""
    paths: dict[Path_, Path_] = field(default_factory=dict)
    """Where a translated key came from (``agents.0.instructions`` <- ``agent.system_message``), so errors
    point at the line the user wrote."""

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append((path, message))


def is_massgen(data: Mapping[str, Any]) -> bool:
    """Whether a parsed YAML mapping is in MassGen's shape rather than ours."""
    if _MASSGEN_KEYS & set(data):
        return True
    agents = data.get("agents")
    if isinstance(agents, list) and "strategy" not in data:
        return any(isinstance(a, Mapping) and ("system_message" in a or ("id" in a and "backend" in a)) for a in agents)
    return False


def translate(data: Mapping[str, Any]) -> MassGenTranslation:
    """Our workflow data for a MassGen config (see the module docstring)."""
    result = MassGenTranslation({})
    out = result.data
    for key, value in data.items():
        if key in _OWN_KEYS:
            out[key] = value
            result.paths[(key,)] = (key,)
    if "agent" in data and "agents" in data:
        result.warn(("agent",), "ignored because agents: is given too (MassGen takes one or the other)")
    entries: list[tuple[Path_, Any]]
    if "agents" in data:
        raw = data["agents"]
        entries = [(("agents", i), a) for i, a in enumerate(raw)] if isinstance(raw, list) else [(("agents",), raw)]
    elif "agent" in data:
        entries = [(("agent",), data["agent"])]
    else:
        entries = []
    out["agents"] = [_agent(entry, source, index, result) for index, (source, entry) in enumerate(entries)]
    _timeouts(data.get("timeout_settings"), out, result)
    for key in ("orchestrator", "ui"):
        value = data.get(key)
        if isinstance(value, Mapping):
            for sub in value:
                result.warn((key, sub), f"ignored ({_WHY[key]})")
        elif value is not None:
            result.warn((key,), f"ignored ({_WHY[key]})")
    for key in data:
        if key not in _OWN_KEYS and key not in _MASSGEN_KEYS and key != "agents":
            result.warn((key,), "ignored (not a MassGen key this runner implements)")
    if "strategy" not in out:
        if len(out["agents"]) > 1:
            out["strategy"] = "parallel"  # MassGen's way: everyone answers, then they vote
            out.setdefault("aggregate", "vote")
        else:
            out["strategy"] = "sequential"
    return result


_WHY = {
    "orchestrator": "MassGen's workspace, snapshot and context-path settings have no counterpart here; "
    "the workflow's strategy decides how agents cooperate",
    "ui": "`agentadapter run` shows its own progress; use --json or --events for other output",
}


def _agent(entry: Any, source: Path_, index: int, result: MassGenTranslation) -> Any:
    """One agent entry: MassGen's keys mapped, ours kept, the rest reported."""
    if not isinstance(entry, Mapping):
        return entry  # the workflow's own validation names the problem
    target: Path_ = ("agents", index)
    agent: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("id", "name"):
            agent["name"] = value
            result.paths[(*target, "name")] = (*source, key)
        elif key == "system_message":
            agent["instructions"] = value
            result.paths[(*target, "instructions")] = (*source, key)
        elif key == "backend":
            _backend(value, agent, (*source, key), target, result)
        elif key in _OWN_AGENT_KEYS:
            agent[key] = value
            result.paths[(*target, key)] = (*source, key)
        else:
            result.warn((*source, key), "ignored (not an agent key this runner implements)")
    agent.setdefault("name", f"agent{index + 1}")
    if agent.get("framework") == "ag2":
        for key, origin in (("instructions", "system_message"), ("model_settings", "backend")):
            if agent.pop(key, None) is not None:
                result.warn((*source, origin), "ignored (an AG2 agent's own settings apply)")
    if agent.get("framework") == "ag2" and "ref" not in agent:
        from agentadapter.llm.errors import ConfigurationError

        raise ConfigurationError(
            f"{'.'.join(str(p) for p in source)}: type: ag2 runs through the external-framework agents "
            "(framework: ag2), which need the AG2 agent as Python: add ref: 'module:agent_or_factory' to this "
            "entry (MassGen's agent_config is not built from YAML here)"
        )
    return agent


def _backend(backend: Any, agent: dict[str, Any], source: Path_, target: Path_, result: MassGenTranslation) -> None:
    where = ".".join(str(p) for p in source)
    if not isinstance(backend, Mapping):
        agent["backend"] = backend  # the workflow's validation says it must be a mapping
        return
    kind = str(backend.get("type") or "").strip()
    model = backend.get("model")
    if kind.lower() == "ag2":
        _ag2(backend, agent, source, where, result)
        return
    settings: dict[str, Any] = dict(agent.get("model_settings") or {})
    endpoint: dict[str, Any] = {}
    for key, value in backend.items():
        if key in ("type", "model"):
            continue
        if key in _SETTINGS:
            settings[key] = value
        elif key == "max_completion_tokens":
            settings["max_tokens"] = value
        elif key == "reasoning" and isinstance(value, Mapping) and "effort" in value:
            settings["reasoning_effort"] = value["effort"]
            for other in value:
                if other != "effort":
                    result.warn((*source, "reasoning", other), "ignored (only reasoning.effort is sent)")
        elif key == "reasoning_effort":
            settings["reasoning_effort"] = value
        elif key in _ENDPOINT:
            endpoint[key] = value
        elif key == "timeout":
            settings["timeout"] = value
        elif key == "mcp_servers" and isinstance(value, list | Mapping):
            _mcp_servers(value, agent, (*source, key), result)
        else:
            result.warn((*source, key), "ignored (a MassGen backend option this runner does not implement)")
    if settings:
        agent["model_settings"] = settings
        result.paths[(*target, "model_settings")] = source
    result.paths[(*target, "model")] = (*source, "model")
    if endpoint:
        # An endpoint of the operator's choosing: the online agent's own base URL and key.
        agent["backend"] = {"type": kind or "custom", "model": model, **endpoint}
        result.paths[(*target, "backend")] = source
    elif model is not None:
        text = str(model)
        provider = canonical_type(kind) if kind else ""
        agent["model"] = text if not provider or text.startswith(f"{provider}/") else f"{provider}/{text}"


# MassGen's MCP server keys that ours share; its `type` (stdio / streamable-http) follows from command/url.
_MCP_KEYS = ("name", "command", "args", "env", "cwd", "url", "headers", "tools", "exclude")


def _mcp_servers(servers: Any, agent: dict[str, Any], source: Path_, result: MassGenTranslation) -> None:
    """A backend's ``mcp_servers`` (a list, or a mapping by name): declared at the workflow's top, named by the
    agent."""
    items = (
        [{"name": name, **spec} for name, spec in servers.items() if isinstance(spec, Mapping)]
        if isinstance(servers, Mapping)
        else list(servers)
    )
    declared: list[dict[str, Any]] = result.data.setdefault("mcp_servers", [])
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            result.warn((*source, index), "ignored (an MCP server is a mapping)")
            continue
        server = {k: item[k] for k in _MCP_KEYS if k in item}
        for key in item:
            if key not in _MCP_KEYS and key != "type":
                result.warn((*source, index, key), "ignored (an MCP server option this runner does not implement)")
        if not any(d.get("name") == server.get("name") for d in declared):
            declared.append(server)
        agent.setdefault("mcp_servers", []).append(server.get("name"))


def ag2_available() -> bool:
    """Whether the external-framework agents' AG2 wrapper is part of this installation."""
    return importlib.util.find_spec("agentadapter.frameworks") is not None and (
        importlib.util.find_spec(AG2_MODULE) is not None
    )


def _ag2(
    backend: Mapping[str, Any], agent: dict[str, Any], source: Path_, where: str, result: MassGenTranslation
) -> None:
    """``type: ag2``: an AG2 agent through the external-framework agents (``framework: ag2``), when they
    are installed. The AG2 agent itself comes from the entry's ``ref:`` (a module's agent or factory):
    MassGen builds it from ``agent_config``, which names Python-side settings this runner does not build."""
    from agentadapter.llm.errors import ConfigurationError

    if not ag2_available():
        raise ConfigurationError(
            f"{where}.type: ag2 needs the external-framework agents ({AG2_MODULE}), which this installation "
            "does not have; run this agent on a model backend instead (type: openai, claude, gemini, ...)"
        )
    agent["framework"] = "ag2"
    if backend.get("model"):
        agent["model"] = str(backend["model"])
    for key in backend:
        if key not in ("type", "model"):
            result.warn((*source, key), "ignored (the AG2 agent is the one the entry's ref: names)")


def _timeouts(settings: Any, out: dict[str, Any], result: MassGenTranslation) -> None:
    if settings is None:
        return
    if not isinstance(settings, Mapping):
        result.warn(("timeout_settings",), "ignored (a mapping was expected)")
        return
    for key, value in settings.items():
        if key == "orchestrator_timeout_seconds":
            limits = dict(out.get("limits") or {})
            limits.setdefault("timeout_s", value)
            out["limits"] = limits
            result.paths[("limits", "timeout_s")] = ("timeout_settings", key)
        elif key in ("agent_timeout_seconds", "initial_round_timeout_seconds"):
            out.setdefault("agent_timeout_s", value)
            result.paths[("agent_timeout_s",)] = ("timeout_settings", key)
        else:
            result.warn(("timeout_settings", key), "ignored (no counterpart; limits.timeout_s bounds the whole run)")
