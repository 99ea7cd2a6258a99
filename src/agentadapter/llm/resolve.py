"""From a model id to the backend that serves it.

``provider/model`` ids, named backends from the config file, the seeds' ``agents:`` entries,
``AGENT_ONLINE_ENDPOINTS`` and user aliases (``smart``, ``cheap``) all resolve here to a list of
:class:`Target` (one backend instance and the bare model name each). Keys and base URLs come from
the config file first, then the vendor's own environment variables, then the preset's default. A
missing key or base URL fails here, before any network call, with a message naming the variable
to set. Backend instances are created once per resolver and shared (:class:`BackendPool`).

The wiring runs one way: the facade owns a resolver and hands it a
:class:`~agentadapter.llm.router.RouterContext` (retry policy, breakers and limits, telemetry, the
facade's view of the catalog); the resolver builds routes and :class:`~agentadapter.llm.router.Router`
instances from it, and routers reach backends through the pool, never the resolver or the facade.
Routes and routers are cached per model id in bounded LRUs (:data:`ROUTE_CACHE_SIZE`): model ids come
from callers, a gateway tenant can send any.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from agentadapter.config import BackendSpec, FileConfig, RouteSpec
from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig, backend_class, register_builtin
from agentadapter.llm.backends.presets import PRESETS, Preset, canonical_type, get_preset
from agentadapter.llm.catalog import Capabilities, CatalogView
from agentadapter.llm.errors import ConfigurationError, InvalidRequestError
from agentadapter.llm.health import InProcessReliabilityStore, ReliabilityStore
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.llm.router import Router, RouterContext
from agentadapter.llm.transport import DEFAULT_TIMEOUT, Timeout, Transport
from agentadapter.observability.redact import register_secret

# Which backend type speaks each API an OpenAI-style provider offers.
_API_BACKENDS = {"chat": "openai_chat", "responses": "openai_responses"}

# `local/embed/<model>`: a `local` backend's embedding models run on this in-process backend (declared by
# import path, so nothing of it is imported until an embedding model is used).
_EMBED_PREFIX = "embed/"
register_builtin("local_embed", "agentadapter.llm.backends.local_embed:LocalEmbedBackend")

ROUTE_CACHE_SIZE = 1024
"""How many model ids' routes (and routers) one resolver keeps; the least recently used are dropped
past it and rebuilt on their next call (cheap: the backends stay in the pool)."""


@dataclass(slots=True, frozen=True)
class Target:
    """One backend and the model name it is asked for."""

    backend: Backend
    model: str
    provider: str
    """The provider or backend name as the model id wrote it (the key into the catalog)."""

    catalog: CatalogView | None = field(default=None, compare=False)
    """The facade's view of the catalog (its config's ``catalog:`` entries first); None: the process-wide one."""

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider

    def capabilities(self) -> Capabilities:
        """The catalog entry under this id, else what the backend itself says."""
        entry = catalog.find(self.label) if self.catalog is None else self.catalog.find(self.label)
        return entry if entry is not None else self.backend.capabilities(self.model)


@dataclass(slots=True, frozen=True)
class Route:
    """What a model id resolves to: one target, or a strategy over several."""

    targets: tuple[Target, ...]
    strategy: str = "failover"
    failover_on: frozenset[str] = field(default_factory=frozenset)
    weights: tuple[float, ...] | None = None


class BackendPool:
    """The backend instances of one resolver, by provider or backend name (and ``name#api`` variants).

    Instances passed in are kept for good; those built from presets and the config are kept in a
    bounded LRU (:data:`ROUTE_CACHE_SIZE`), since a caller can spell a provider many ways (``OpenAI``,
    ``openai``, `` openai``) and each spelling is its own instance. An evicted instance is rebuilt on
    its next use; the connections belong to the shared transport, so nothing is lost. Each instance's
    rate-limit headers teach the reliability store's limiter for it.
    """

    def __init__(self, transport: Transport[Any], store: ReliabilityStore | None,
                 given: Mapping[str, Backend] | None = None, *, size: int = ROUTE_CACHE_SIZE) -> None:
        self.transport = transport
        self._store = store
        self._size = size
        self._built: OrderedDict[str, Backend] = OrderedDict()
        self.given: dict[str, Backend] = dict(given or {})
        """The instances passed in (not built from keys and presets)."""
        for backend in self.given.values():
            self._watch(backend)

    def get(self, name: str) -> Backend | None:
        found = self.given.get(name)
        if found is None:
            found = self._built.get(name)
            if found is not None:
                self._built.move_to_end(name)
        return found

    def add(self, name: str, backend: Backend) -> Backend:
        self._built[name] = backend
        while len(self._built) > self._size:
            self._built.popitem(last=False)
        self._watch(backend)
        return backend

    def all(self) -> dict[str, Backend]:
        return {**self._built, **self.given}

    def __len__(self) -> int:
        return len(self._built) + len(self.given)

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
        found = self.get(key)
        if found is None:
            found = backend_class(wanted)(backend.config, transport=self.transport)
            found.header_listeners = backend.header_listeners  # one limiter learns from both APIs
            self._built[key] = found
            while len(self._built) > self._size:
                self._built.popitem(last=False)
        return found

    def embedder(self, backend: Backend) -> Backend:
        """The in-process embedding backend beside a ``local`` backend (for its ``embed/<model>`` ids):
        same name, so its limits and telemetry are the local backend's; its device when it has one."""
        key = f"{backend.name}#embed"
        found = self.get(key)
        if found is None:
            device = getattr(backend, "device_config", {}).get("device")
            config = BackendConfig(name=backend.name, type="local_embed", options={"device": device} if device else {})
            found = self.add(key, backend_class("local_embed")(config, transport=self.transport))
        return found

    def _watch(self, backend: Backend) -> None:
        # Providers' rate-limit headers teach the backend's client-side limiter. A backend shared by
        # derived facades (one per tenant, rebuilt as their keys change) is watched once per limiter.
        if self._store is None:
            return
        observe = self._store.limiter(backend.name).observe
        if observe not in backend.header_listeners:
            backend.header_listeners.append(observe)


class Resolver:
    """Resolves model ids against a config file, the environment and the presets, and builds their routers."""

    def __init__(
        self,
        file_config: FileConfig,
        *,
        transport: Transport[Any],
        environ: Mapping[str, str] | None = None,
        backends: Mapping[str, Backend] | None = None,
        online_endpoints: Mapping[str, str] | None = None,
        context: RouterContext | None = None,
        cache_size: int = ROUTE_CACHE_SIZE,
    ) -> None:
        self.file_config = file_config
        self.transport = transport
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        given = context or RouterContext(retry=RetryPolicy(), store=InProcessReliabilityStore())
        self.pool = BackendPool(transport, given.store, backends, size=cache_size)
        # What every router of this resolver shares; routers reach another API of a backend through the
        # pool (below the resolver), never through the resolver or the facade.
        self.context: RouterContext = dataclasses.replace(given, variant=self.pool.variant)
        self.catalog: CatalogView = self.context.catalog
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
        # Bounded LRUs: a model id is whatever a caller sends. Failures are not cached (lru_cache keeps
        # no exceptions), so a misconfigured id fails the same way every time.
        self._route = lru_cache(maxsize=cache_size)(self._route_uncached)
        self._router = lru_cache(maxsize=cache_size)(self._router_uncached)

    # ------------------------------------------------------------------------------------- routes

    def route(self, model_id: str | Sequence[str]) -> Route:
        """The route for a model id, an alias, or an inline failover list."""
        if not isinstance(model_id, str):
            if not model_id:
                raise InvalidRequestError("an inline route needs at least one model id")
            return Route(tuple(self._target(m, ()) for m in model_id))
        return self._route(model_id)

    def router(self, model_id: str | Sequence[str]) -> Router:
        """The router that runs ``model_id`` (an id, an alias, or a list tried in order)."""
        return self._router(model_id if isinstance(model_id, str) else tuple(model_id))

    def cache_sizes(self) -> dict[str, int]:
        """How many routes, routers and backends are held now (each at most ``cache_size``, beside the
        backends passed in)."""
        return {"routes": self._route.cache_info().currsize, "routers": self._router.cache_info().currsize,
                "backends": len(self.pool)}

    def _route_uncached(self, model_id: str) -> Route:
        return self._resolve(model_id, seen=())

    def _router_uncached(self, key: str | tuple[str, ...]) -> Router:
        name = key if isinstance(key, str) else " | ".join(key)
        return Router(name, self.route(key), self.context)

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
        if model.startswith(_EMBED_PREFIX) and backend.type_name == "local":
            backend = self.pool.embedder(backend)
        entry = self.catalog.find(model_id)
        if entry is not None and entry.api in _API_BACKENDS and backend.type_name in _API_BACKENDS.values():
            backend = self.variant(backend, entry.api)  # the catalog says which API this model prefers
        return Route((Target(backend, model, provider, self.catalog),))

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
        # A route inside a route becomes one target whose backend is a router (routes nest).
        return Target(Router(model_id, route, self.context), "", model_id, self.catalog)

    # ----------------------------------------------------------------------------------- backends

    def backend(self, name: str, *, model: str | None = None) -> Backend:
        """The backend instance for a provider or named backend (created on first use)."""
        backend = self.pool.get(name)
        if backend is None:
            config = self.backend_config(name, model=model)
            preset_backend = PRESETS[config.type].backend if config.type in PRESETS else config.type
            backend_type = backend_class(preset_backend)
            backend = self.pool.add(name, backend_type(config, transport=self.transport))
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
        return self.pool.variant(backend, api)

    def backends(self) -> dict[str, Backend]:
        """The backend instances created so far."""
        return self.pool.all()

    def given_backends(self) -> dict[str, Backend]:
        """The backend instances passed in (not built from keys and presets)."""
        return dict(self.pool.given)
