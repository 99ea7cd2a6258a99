"""From a model id to the backend that serves it.

``provider/model`` ids, named backends from the config file, the seeds' ``agents:`` entries,
``AGENT_ONLINE_ENDPOINTS`` and user aliases (``smart``, ``cheap``) all resolve here to a list of
:class:`Target` (one backend instance and the bare model name each). Keys and base URLs come from
the config file first, then the vendor's own environment variables, then the preset's default. A
missing key or base URL fails here, before any network call, with a message naming the variable
to set. Backend instances are created once per resolver and shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentadapter.config import BackendSpec, FileConfig, RouteSpec
from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig, backend_class
from agentadapter.llm.backends.presets import PRESETS, Preset, canonical_type, get_preset
from agentadapter.llm.errors import ConfigurationError, InvalidRequestError
from agentadapter.llm.transport import DEFAULT_TIMEOUT, Timeout, Transport
from agentadapter.observability.logging import register_secret

# Which backend type speaks each API an OpenAI-style provider offers.
_API_BACKENDS = {"chat": "openai_chat", "responses": "openai_responses"}


@dataclass(slots=True, frozen=True)
class Target:
    """One backend and the model name it is asked for."""

    backend: Backend
    model: str
    provider: str
    """The provider or backend name as the model id wrote it (the key into the catalog)."""

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider

    def capabilities(self) -> catalog.Capabilities:
        """The catalog entry under this id, else what the backend itself says."""
        entry = catalog.find(self.label)
        return entry if entry is not None else self.backend.capabilities(self.model)


@dataclass(slots=True, frozen=True)
class Route:
    """What a model id resolves to: one target, or a strategy over several."""

    targets: tuple[Target, ...]
    strategy: str = "failover"
    failover_on: frozenset[str] = field(default_factory=frozenset)
    weights: tuple[float, ...] | None = None


class Resolver:
    """Resolves model ids against a config file, the environment and the presets."""

    def __init__(
        self,
        file_config: FileConfig,
        *,
        transport: Transport[Any],
        environ: Mapping[str, str] | None = None,
        backends: Mapping[str, Backend] | None = None,
        online_endpoints: Mapping[str, str] | None = None,
        nested_route: Callable[[str, Route], Backend] | None = None,
        on_new_backend: Callable[[Backend], None] | None = None,
    ) -> None:
        self.file_config = file_config
        self.transport = transport
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._backends: dict[str, Backend] = dict(backends or {})
        self._given: dict[str, Backend] = dict(self._backends)
        # A route inside a route becomes one target whose backend is a router (routes nest).
        self._nested_route = nested_route
        self._on_new_backend = on_new_backend
        for backend in self._backends.values():
            if on_new_backend is not None:
                on_new_backend(backend)
        self._routes: dict[str, Route] = {}
        self._specs: dict[str, BackendSpec] = dict(file_config.backends)
        self._aliases: dict[str, RouteSpec | str] = dict(file_config.models)
        for name, url in (online_endpoints or {}).items():
            self._specs.setdefault(name, BackendSpec(type="custom", base_url=url))
        for agent in file_config.seed_agents():
            # The seeds' shape names a backend per agent; `<id>` becomes both a backend name and an
            # alias of its model, so `llm.generate("researcher", ...)` works.
            self._specs.setdefault(agent.id, agent.backend)
            if agent.backend.model:
                self._aliases.setdefault(agent.id, f"{agent.id}/{agent.backend.model}")

    # ------------------------------------------------------------------------------------- routes

    def route(self, model_id: str | Sequence[str]) -> Route:
        """The route for a model id, an alias, or an inline failover list."""
        if not isinstance(model_id, str):
            if not model_id:
                raise InvalidRequestError("an inline route needs at least one model id")
            return Route(tuple(self._target(m, ()) for m in model_id))
        route = self._routes.get(model_id)
        if route is None:
            route = self._routes[model_id] = self._resolve(model_id, seen=())
        return route

    def _resolve(self, model_id: str, seen: tuple[str, ...]) -> Route:
        if model_id in seen:
            raise ConfigurationError(f"model alias loop: {' -> '.join((*seen, model_id))}")
        alias = self._aliases.get(model_id)
        if alias is not None:
            if isinstance(alias, str):
                return self._resolve(alias, (*seen, model_id))
            targets = tuple(self._target(m, (*seen, model_id)) for m in alias.targets)
            if alias.weights is not None and len(alias.weights) != len(targets):
                raise ConfigurationError(
                    f"model {model_id!r}: weights has {len(alias.weights)} entries for {len(targets)} targets"
                )
            weights = tuple(alias.weights) if alias.weights is not None else None
            return Route(targets, alias.strategy, frozenset(alias.failover_on), weights)
        provider, sep, model = model_id.partition("/")
        if not sep or not provider or not model:
            raise ConfigurationError(
                f"model {model_id!r} is not a provider/model id or a known alias; write it as "
                "'openai/gpt-4o-mini', or define it under `models:` in agentadapter.yaml"
            )
        backend = self.backend(provider, model=model)
        entry = catalog.find(model_id)
        if entry is not None and entry.api in _API_BACKENDS and backend.type_name in _API_BACKENDS.values():
            backend = self.variant(backend, entry.api)  # the catalog says which API this model prefers
        return Route((Target(backend, model, provider),))

    def model_ids(self, model_id: str, seen: tuple[str, ...] = ()) -> list[str]:
        """The ``provider/model`` ids behind an id or alias, in route order; builds no backend."""
        if model_id in seen:
            raise ConfigurationError(f"model alias loop: {' -> '.join((*seen, model_id))}")
        alias = self._aliases.get(model_id)
        if alias is None:
            return [model_id]
        targets = [alias] if isinstance(alias, str) else alias.targets
        return [leaf for target in targets for leaf in self.model_ids(target, (*seen, model_id))]

    def _target(self, model_id: str, seen: tuple[str, ...]) -> Target:
        route = self._resolve(model_id, seen)
        if len(route.targets) == 1 and route.strategy == "failover" and not route.failover_on:
            return route.targets[0]
        if self._nested_route is None:
            raise ConfigurationError(f"route {model_id!r} is used inside another route, which needs a router")
        return Target(self._nested_route(model_id, route), "", model_id)

    # ----------------------------------------------------------------------------------- backends

    def backend(self, name: str, *, model: str | None = None) -> Backend:
        """The backend instance for a provider or named backend (created on first use)."""
        backend = self._backends.get(name)
        if backend is None:
            config = self.backend_config(name, model=model)
            preset_backend = PRESETS[config.type].backend if config.type in PRESETS else config.type
            backend_type = backend_class(preset_backend)
            backend = backend_type(config, transport=self.transport)
            self._backends[name] = backend
            if self._on_new_backend is not None:
                self._on_new_backend(backend)
        return backend

    def backend_config(self, name: str, *, model: str | None = None) -> BackendConfig:
        spec = self._specs.get(name)
        if spec is not None:
            config = self._config_from_spec(name, spec, model)
        else:
            config = self._config_from_preset(name, get_preset(name), model=model)
        register_secret(config.api_key)  # logs never show it, whatever the level
        return config

    def _env(self, names: tuple[str, ...]) -> str | None:
        for env_name in names:
            value = self.environ.get(env_name)
            if value:
                return value
        return None

    def _config_from_preset(
        self, name: str, preset: Preset, *, model: str | None, spec: BackendSpec | None = None
    ) -> BackendConfig:
        base_url = (spec.base_url if spec else None) or self._env(preset.base_url_env) or preset.base_url
        explicit_url = bool(spec and spec.base_url)
        api_key = (spec.api_key if spec else None) or (None if explicit_url else self._env(preset.api_key_env))
        where = f"backend {name}" + (f", model {model}" if model else "")
        if preset.needs_base_url and not base_url:
            env_hint = " or ".join(preset.base_url_env) or "base_url"
            raise ConfigurationError(
                f"{env_hint} is not set; export it or set base_url under backends: in agentadapter.yaml ({where})"
            )
        if preset.key_required and not api_key and not explicit_url:
            raise ConfigurationError(
                f"{preset.api_key_env[0]} is not set; export it or pass api_key=... ({where})"
            )
        timeout = DEFAULT_TIMEOUT if not (spec and spec.timeout) else Timeout.of(spec.timeout)
        options = dict(spec.model_extra or {}) if spec else {}
        explicit_url = explicit_url and not (spec is not None and spec.type is None and name == preset.name)
        api_version = (spec.api_version if spec else None) or (
            self.environ.get("OPENAI_API_VERSION") if preset.name == "azure" else None
        )
        return BackendConfig(
            name=name,
            type=preset.name,
            base_url=base_url.rstrip("/") if base_url else None,
            api_key=api_key,
            headers=dict(spec.headers) if spec else {},
            api_version=api_version,
            timeout=timeout,
            max_retries=spec.max_retries if spec else None,
            options=options,
        )

    def _config_from_spec(self, name: str, spec: BackendSpec, model: str | None) -> BackendConfig:
        type_name = canonical_type(spec.type or (name if canonical_type(name) in PRESETS else "custom"))
        if type_name in PRESETS:
            return self._config_from_preset(name, PRESETS[type_name], model=model, spec=spec)
        # A registered third-party backend type: pass the spec through as is.
        backend_class(type_name)  # fails early, with the list of known types, when unknown
        return BackendConfig(
            name=name,
            type=type_name,
            base_url=spec.base_url,
            api_key=spec.api_key,
            headers=dict(spec.headers),
            api_version=spec.api_version,
            timeout=DEFAULT_TIMEOUT if spec.timeout is None else Timeout.of(spec.timeout),
            max_retries=spec.max_retries,
            options=dict(spec.model_extra or {}),
        )

    def variant(self, backend: Backend, api: str) -> Backend:
        """The same OpenAI-style backend speaking ``api`` (``chat`` or ``responses``)."""
        wanted = _API_BACKENDS.get(api)
        if wanted is None:
            raise InvalidRequestError(f"api={api!r} is not known; use 'chat' or 'responses'")
        if backend.type_name == wanted:
            return backend
        if backend.type_name not in _API_BACKENDS.values():
            raise InvalidRequestError(
                f"api={api!r} applies to OpenAI-style providers only; {backend.name} speaks its own API"
            )
        key = f"{backend.name}#{api}"
        found = self._backends.get(key)
        if found is None:
            found = backend_class(wanted)(backend.config, transport=self.transport)
            found.header_listeners = backend.header_listeners  # one limiter learns from both APIs
            self._backends[key] = found
        return found

    def backends(self) -> dict[str, Backend]:
        """The backend instances created so far."""
        return dict(self._backends)

    def given_backends(self) -> dict[str, Backend]:
        """The backend instances passed in (not built from keys and presets)."""
        return dict(self._given)
