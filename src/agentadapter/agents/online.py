"""``OnlineAgent``: an ``LLMAgent`` bound to an HTTP endpoint, with backup providers.

The seeds' online agent: a ``base_url``, a ``model``, an optional ``api_key`` and headers, timeouts,
retries, and backup providers tried in order when the primary fails (a failover route). ``provider``
names the wire format and its quirks: ``openai`` (any OpenAI-compatible server), ``anthropic``,
``xai`` (Grok), ``groq``, ``gemini``, or any other preset. Without a ``base_url`` the agent is a plain
model id resolved from the environment (``OPENAI_API_KEY``, ...). The binding is made by a derived
:class:`~agentadapter.llm.client.LLM` that shares the run's transport (its connection pools), retry
policy, config file and environment, with the endpoints added as named backends; the derived facade
is built once per agent and facade.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from agentadapter.agents.llm_agent import LLMAgent
from agentadapter.config import BackendSpec
from agentadapter.llm.backends.presets import canonical_type, get_preset
from agentadapter.llm.errors import ConfigurationError, InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.llm.client import LLM, ModelId

__all__ = ["Endpoint", "OnlineAgent"]


@dataclass(slots=True)
class Endpoint:
    """One HTTP endpoint serving one model (a primary's or a backup's)."""

    model: str
    """The model name as this endpoint knows it (``gpt-4o-mini``, ``meta-llama/Llama-3.1-8B``)."""
    base_url: str | None = None
    """The API's base URL, given the way the vendor's SDK takes it (OpenAI-style ones end in /v1);
    None: the provider's own URL (from ``<PROVIDER>_BASE_URL`` or the preset)."""
    provider: str = "openai"
    """Wire format and quirks: openai (any compatible server), anthropic, xai, groq, gemini, ..."""
    api_key: str | None = field(default=None, repr=False)
    """The key; None with a base_url sends none, None without one reads ``<PROVIDER>_API_KEY``."""
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    """Seconds per request to this endpoint."""
    max_retries: int | None = None
    """Retries on this endpoint before moving to the next (None: the LLM's policy, 2)."""

    @classmethod
    def of(cls, value: Endpoint | Mapping[str, Any]) -> Endpoint:
        if isinstance(value, Endpoint):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequestError(f"an endpoint is an Endpoint or a dict, not {type(value).__name__}")
        data = dict(value)
        if "type" in data and "provider" not in data:  # the seeds' backend: {type, model, api_key}
            data["provider"] = data.pop("type")
        known = {"model", "base_url", "provider", "api_key", "headers", "timeout", "max_retries"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRequestError(f"unknown endpoint field(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
        if not data.get("model"):
            raise InvalidRequestError("an endpoint needs a model")
        return cls(**data)

    def spec(self) -> BackendSpec:
        return BackendSpec(
            type=canonical_type(self.provider), base_url=self.base_url, api_key=self.api_key,
            headers=dict(self.headers), timeout=self.timeout, max_retries=self.max_retries,
        )


@dataclass(eq=False, kw_only=True)
class OnlineAgent(LLMAgent):
    """An LLMAgent bound to an HTTP endpoint, with backup providers tried when it fails."""

    agent_type: ClassVar[str] = "online"

    provider: str | None = None
    """Wire format of the primary endpoint: openai (any compatible server), anthropic, xai, groq, ...
    Setting it (or base_url, or api_key) makes ``model`` the endpoint's own model name; leaving all
    three unset makes ``model`` a model id, alias or route resolved as for any LLMAgent."""
    base_url: str | None = None
    """The primary endpoint's base URL; None: the provider's own (``<PROVIDER>_BASE_URL`` or the preset)."""
    api_key: str | None = field(default=None, repr=False)
    """The primary endpoint's key; None reads ``<PROVIDER>_API_KEY``, except for a custom base_url
    (a key is never sent to a URL it was not issued for)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra HTTP headers for the primary endpoint."""
    timeout: float | None = None
    """Seconds per request to the primary endpoint."""
    max_retries: int | None = None
    """Retries on the primary endpoint before the backups (None: the LLM's policy)."""
    backups: list[Any] = field(default_factory=list)
    """Tried in order when the primary fails: Endpoints, dicts of their fields, or model ids/aliases."""
    _bound: weakref.WeakKeyDictionary[LLM, tuple[dict[str, BackendSpec], LLM]] = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False
    )
    _bind_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        LLMAgent.__post_init__(self)
        if self.provider is not None:
            get_preset(self.provider)  # an unknown provider fails here, with the list of known ones
        self.backups = [b if isinstance(b, str) else Endpoint.of(b) for b in self.backups]
        if self.has_endpoint and not isinstance(self.model, str):
            raise ConfigurationError(
                f"online agent {self.name!r}: with an endpoint (provider, base_url or api_key), model is the "
                "one model name it serves, not a route or None; put alternatives in backups=[...]"
            )

    @property
    def has_endpoint(self) -> bool:
        """Whether the agent names its primary endpoint, rather than a model id resolved as usual."""
        return self.provider is not None or self.base_url is not None or self.api_key is not None

    @property
    def primary(self) -> Endpoint | None:
        """The primary endpoint (None when ``model`` is a plain model id)."""
        if not self.has_endpoint:
            return None
        assert isinstance(self.model, str)
        return Endpoint(self.model, self.base_url, self.provider or "openai", self.api_key, dict(self.headers),
                        self.timeout, self.max_retries)

    def _backend_name(self, index: int) -> str:
        slug = re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-") or "agent"
        return f"online-{slug}-{index}"

    def _route(self) -> tuple[dict[str, BackendSpec], list[str]]:
        """Named backends for the endpoints, and the failover route over them and the model ids."""
        backends: dict[str, BackendSpec] = {}
        route: list[str] = []
        primary = self.primary
        if primary is not None:
            backends[self._backend_name(0)] = primary.spec()
            route.append(f"{self._backend_name(0)}/{primary.model}")
        elif isinstance(self.model, str):
            route.append(self.model)
        elif self.model:
            route.extend(self.model)
        for index, backup in enumerate(self.backups, start=1):
            if isinstance(backup, Endpoint):
                name = self._backend_name(index)
                backends[name] = backup.spec()
                route.append(f"{name}/{backup.model}")
            else:
                route.append(backup)
        return backends, route

    def bind_model(self, context: AgentContext) -> tuple[LLM, ModelId]:
        llm = context.llm
        backends, route = self._route()
        if not route:
            return LLMAgent.bind_model(self, context)
        if not backends:
            return llm, route[0] if len(route) == 1 else route
        with self._bind_lock:
            cached = self._bound.get(llm)
            # Rebuilt when the endpoints changed since (the agent's fields were edited).
            if cached is None or cached[0] != backends:
                cached = self._bound[llm] = (backends, _derived_llm(llm, backends))
        return cached[1], route[0] if len(route) == 1 else route


def _derived_llm(parent: LLM, backends: dict[str, BackendSpec]) -> LLM:
    """A facade sharing everything with ``parent`` (ledger, budgets, breakers...) plus these named backends."""
    config = parent.file_config.model_copy(update={"backends": {**parent.file_config.backends, **backends}})
    return parent.derive(config=config)
