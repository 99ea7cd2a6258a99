"""What ``/metrics`` may show: label values bounded to what the operator and the catalog name.

Metrics are recorded with the labels the library knows (the model a request asked for, the agent
that sent a message, the tool called), and those come from tenants' requests: a made-up or private
model name, an agent named after a customer. A scrape passes every sample through
:func:`label_policy` instead (an :class:`~agentadapter.observability.metrics.RelabeledView`), which
keeps a value only when the operator or the catalog names it and shows ``other`` otherwise:

- ``provider``: a preset, a built-in backend type, a backend or seed agent of the config file, or
  an ``AGENT_ONLINE_ENDPOINTS`` name;
- ``model`` (with its ``provider``) and ``target`` (``provider/model``): a catalog model or alias, or
  a model the config file names (a route's targets, an alias, the default model, a seed agent's);
- ``agent`` (the message bus): a seed agent of the config file;
- ``tool``: a tool registered with the server.

Every other label takes its values from a fixed set in code and is shown as it is: status, outcome,
error type, phase... and the HTTP ``route``, which the middleware (``server/middleware.py``) records
as the matched route's template (``/v1/agents/{agent_id}``) or ``unmatched``, never the raw path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentadapter.config import FileConfig, RouteSpec
from agentadapter.llm import catalog
from agentadapter.llm.backends.base import builtin_backend_types
from agentadapter.llm.backends.presets import PRESETS, TYPE_ALIASES
from agentadapter.observability.metrics import OTHER, Relabel

__all__ = ["KnownLabels", "label_policy"]


@dataclass(slots=True, frozen=True)
class KnownLabels:
    """The label values a scrape may show; anything else is ``other``."""

    providers: frozenset[str]
    models: frozenset[str]
    """``provider/model`` ids."""
    agents: frozenset[str]
    tools: frozenset[str]

    @classmethod
    def of(cls, file_config: FileConfig, *, online_endpoints: Iterable[str] = (),
           tools: Iterable[str] = ()) -> KnownLabels:
        seed_agents = file_config.seed_agents()
        providers = {*PRESETS, *TYPE_ALIASES, *builtin_backend_types(), *file_config.backends, *online_endpoints,
                     *(agent.id for agent in seed_agents)}
        models: set[str] = set()
        for model_id, entry in catalog.CatalogView(file_config.catalog).known_models().items():
            provider = model_id.split("/", 1)[0]
            models.add(model_id)
            models.update(alias if alias.startswith(f"{provider}/") else f"{provider}/{alias}"
                          for alias in entry.aliases)
        for alias, spec in file_config.models.items():
            models.add(alias)
            models.update(spec.targets if isinstance(spec, RouteSpec) else (spec,))
        if file_config.default_model:
            models.add(file_config.default_model)
        models.update(f"{agent.id}/{agent.backend.model}" for agent in seed_agents if agent.backend.model)
        return cls(
            providers=frozenset(providers), models=frozenset(models),
            agents=frozenset(agent.id for agent in seed_agents), tools=frozenset(tools),
        )


def label_policy(known: KnownLabels) -> Relabel:
    """The relabelling a scrape applies (see the module docstring)."""

    def provider_label(provider: str) -> str:
        return provider if provider in known.providers else OTHER

    def relabel(_family: str, labels: dict[str, str]) -> dict[str, str]:
        provider = labels.get("provider")
        if provider is not None:
            labels["provider"] = provider_label(provider)
            model = labels.get("model")
            if model is not None and f"{provider}/{model}" not in known.models:
                labels["model"] = OTHER
        target = labels.get("target")
        if target is not None and target not in known.models:
            target_provider, _, _model = target.partition("/")
            labels["target"] = f"{provider_label(target_provider)}/{OTHER}"
        agent = labels.get("agent")
        if agent is not None and agent not in known.agents:
            labels["agent"] = OTHER
        tool = labels.get("tool")
        if tool is not None and tool not in known.tools:
            labels["tool"] = OTHER
        return labels

    return relabel
