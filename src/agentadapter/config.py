"""Configuration: platform settings from the environment, and the ``agentadapter.yaml`` file.

:class:`Settings` (pydantic-settings, prefix ``AGENTADAPTER_``) holds the platform's own settings
and the seeds' un-prefixed names (``AGENT_DEFAULT_TRANSPORT``, ``AGENT_ONLINE_ENDPOINTS``,
``LOCAL_MODEL_PATHS``); it refuses unsafe defaults outside development. :func:`load_config_file`
reads the YAML file (named backends, model aliases and routes, budgets, cache, the seeds'
``agents:`` list) with ``${VAR}`` / ``${VAR:-default}`` interpolation. Provider keys and base URLs
are read by the adapter from each vendor's own variable names (see ``llm/backends/presets.py``).
Everything here is below ``llm/`` in the layering, so it imports nothing from the rest.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agentadapter.errors import ConfigurationError

CONFIG_FILE_NAME = "agentadapter.yaml"
_DEV_SECRET = "development-only-secret"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentadapter"


class Settings(BaseSettings):
    """Platform settings, from ``AGENTADAPTER_*`` environment variables (and the seeds' names)."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_", extra="ignore", populate_by_name=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    """Unset: a SQLite file in ``data_dir``."""
    redis_url: str | None = None
    """Unset: the in-process bus, state, cache and limits."""
    redis_max_connections: int = Field(100, ge=1)
    """Connections per pool of the process's one Redis owner (``agentadapter.redis_connections.RedisConnections``)."""
    redis_connect_timeout_s: float = Field(2.0, gt=0)
    """How long connecting to Redis may take before a check fails."""
    redis_socket_timeout_s: float = Field(5.0, gt=0)
    """How long a Redis command may wait for its reply before it fails."""
    secret_key: str = _DEV_SECRET
    """Fernet keys, comma-separated, newest first (encrypts stored provider keys)."""
    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    executor: Literal["inline", "celery"] = "inline"
    broker_url: str | None = None
    retention_days: int = 30
    log_level: str = "INFO"
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    config: Path | None = None
    """An explicit ``agentadapter.yaml`` path."""
    code_tool: bool = False
    """Register ``run_python`` (Python in the shell sandbox, no network) in the default tool registry."""
    agents_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Directories of the operator's agent modules (separated by ``os.pathsep``): the agent loader's, whose
    agents ``agentadapter agents`` lists and workflow files name as ``type: <agent name>``."""

    agent_default_transport: Literal["online", "local"] = Field(
        "online", validation_alias=AliasChoices("AGENT_DEFAULT_TRANSPORT", "AGENTADAPTER_AGENT_DEFAULT_TRANSPORT")
    )
    # NoDecode: these take the seeds' plain forms (name=url,... and os.pathsep lists), which the
    # validators below split; pydantic-settings would otherwise insist on JSON.
    agent_online_endpoints: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("AGENT_ONLINE_ENDPOINTS", "AGENTADAPTER_AGENT_ONLINE_ENDPOINTS"),
    )
    local_model_paths: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("LOCAL_MODEL_PATHS", "AGENTADAPTER_LOCAL_MODEL_PATHS")
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        value = _json_form(value)
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("agent_online_endpoints", mode="before")
    @classmethod
    def _parse_endpoints(cls, value: Any) -> Any:
        value = _json_form(value)
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for item in filter(None, (v.strip() for v in value.split(","))):
                name, sep, url = item.partition("=")
                if not sep or not name or not url:
                    raise ValueError(f"AGENT_ONLINE_ENDPOINTS entry {item!r} is not name=url")
                pairs[name.strip()] = url.strip()
            return pairs
        return value

    @field_validator("local_model_paths", "agents_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        value = _json_form(value)
        if isinstance(value, str):
            return [Path(v) for v in value.split(os.pathsep) if v]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.env == "production" and self.secret_key == _DEV_SECRET:
            raise ValueError(
                "AGENTADAPTER_SECRET_KEY must be set in production (generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            )
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "agentadapter.db"


def _json_form(value: Any) -> Any:
    """These list and mapping settings also take JSON, as pydantic-settings would."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} looks like JSON but does not parse: {exc}") from exc
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached; call ``get_settings.cache_clear()`` after changing the env)."""
    try:
        return Settings()  # type: ignore[call-arg]  # every field has a default; mypy misreads the aliases
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"invalid AgentAdapter settings in the environment: {exc}") from exc


# ----------------------------------------------------------------------------------- the YAML file


class RateLimitSpec(BaseModel):
    """Client-side limits of one backend."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    mode: Literal["wait", "fail"] = "wait"
    learn_from_headers: bool = True


class BreakerSpec(BaseModel):
    """When circuit breakers open and how they recover (one breaker per backend+model)."""

    model_config = ConfigDict(extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window_s: float = Field(default=30.0, gt=0)
    min_calls: int = Field(default=20, ge=1)
    window_max_calls: int = Field(default=1000, ge=1)
    cooldown_s: float = Field(default=15.0, ge=0)
    half_open_probes: int = Field(default=1, ge=1)
    enabled: bool = True


class BackendSpec(BaseModel):
    """A named endpoint: ``my-vllm: {type: openai, base_url: ..., api_key: ...}``.

    A name that is also a provider (``openai:``) configures that provider; ``type`` then defaults
    to it.
    """

    model_config = ConfigDict(extra="allow")

    type: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    """Seconds per try to connect, to get the first byte and between chunks (not a stream's length)."""
    max_retries: int | None = None
    model: str | None = None
    """A default model (the seeds' ``backend: {type, model}``)."""
    rate_limit: RateLimitSpec | None = None


class RouteSpec(BaseModel):
    """A model alias: one target, or a strategy over several."""

    model_config = ConfigDict(extra="allow")

    strategy: Literal["failover", "cost", "latency", "least_busy", "weighted"] = "failover"
    targets: list[str] = Field(min_length=1)
    weights: list[float] | None = None
    failover_on: list[str] = Field(default_factory=list)
    """Extra error kinds that move to the next target: ``context_window``, ``content_filter``."""
    drop_params: bool | None = None
    """The gateway: drop request parameters a target cannot honour (and say so in a header) instead of
    refusing the request; None follows ``gateway.drop_params``."""


class GatewaySpec(BaseModel):
    """How the client-format gateway treats what a request asks for."""

    model_config = ConfigDict(extra="forbid")

    drop_params: bool = False
    """Drop parameters a target cannot honour (listed in ``x-agentadapter-dropped-params``) instead of
    answering 400 naming the parameter and the target; a route's own ``drop_params`` wins."""
    responses_store: Literal["auto", "database", "redis", "off"] = "auto"
    """Where ``/v1/responses`` keeps recent answers for ``previous_response_id`` (per tenant): ``auto`` is
    Redis when the server has it, else the database; ``off`` refuses ``previous_response_id``."""
    responses_ttl_s: float = Field(default=86400.0, gt=0)
    """How long a stored response can be continued from."""


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = "global"
    limit_usd: float = Field(gt=0)
    window: Literal["request", "day", "month", "total"] = "day"
    alert_at: float | None = Field(default=None, gt=0, le=1)
    allow_unpriced: bool = False
    """Let calls to models without a known price through this budget (they count as $0 against it)."""


class CacheSpec(BaseModel):
    backend: Literal["memory", "sqlite", "redis", "off"] = "memory"
    ttl_s: float = 3600


class SeedAgentSpec(BaseModel):
    """The seeds' shape: ``agents: [{id, backend: {type, model, api_key}}]``."""

    model_config = ConfigDict(extra="allow")

    id: str
    backend: BackendSpec


class FileConfig(BaseModel):
    """What ``agentadapter.yaml`` may hold."""

    model_config = ConfigDict(extra="allow")

    backends: dict[str, BackendSpec] = Field(default_factory=dict)
    models: dict[str, RouteSpec | str] = Field(default_factory=dict)
    budgets: list[BudgetSpec] = Field(default_factory=list)
    cache: CacheSpec | None = None
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)
    catalog: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Overrides of catalog entries by model id."""
    agents: list[dict[str, Any]] = Field(default_factory=list)
    default_model: str | None = None
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    """MCP servers (stdio or streamable HTTP) the workflows ``agentadapter run`` runs may name (checked by the
    agent layer's ``parse_mcp_servers`` where they are used)."""

    def seed_agents(self) -> list[SeedAgentSpec]:
        return [SeedAgentSpec.model_validate(a) for a in self.agents if "backend" in a]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, *, source: str = "config", environ: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed document."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigurationError(
                f"{source} uses ${{{name}}} but {name} is not set; export it or write ${{{name}:-default}}"
            )

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: interpolate(v, source=source, environ=environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, source=source, environ=environ) for v in value]
    return value


def parse_config(data: Any, *, source: str = "config") -> FileConfig:
    if data is None:
        return FileConfig()
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must be a mapping at the top level (backends:, models:, ...)")
    try:
        return FileConfig.model_validate(interpolate(data, source=source))
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"{source} is not valid: {exc}") from exc


def load_config_file(path: str | Path) -> FileConfig:
    """Read and validate a YAML config file."""
    import yaml

    file_path = Path(path)
    try:
        text = file_path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {str(file_path)!r}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{file_path} is not valid YAML: {exc}") from exc
    return parse_config(data, source=str(file_path))


def find_config_file(explicit: str | Path | None = None) -> Path | None:
    """The config file to use: an explicit path, ``AGENTADAPTER_CONFIG``, or ./agentadapter.yaml."""
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get("AGENTADAPTER_CONFIG")
    if from_env:
        return Path(from_env)
    local = Path.cwd() / CONFIG_FILE_NAME
    return local if local.is_file() else None
