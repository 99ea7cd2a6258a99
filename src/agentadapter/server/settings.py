"""The server's own settings, and the checks that refuse an unsafe start.

The platform settings (``agentadapter.config.Settings``: database, Redis, secrets, JWT, CORS, env)
are shared with the CLI and library; what only the HTTP service needs is here, read from the same
``AGENTADAPTER_`` prefix: the request body limit, JWT leeway and default role, cache lifetimes, the
SSE heartbeat, and whether to migrate the database at start-up. :func:`check_secrets` is what makes
the server refuse to start outside development with a missing or default secret, or a JWT secret
too short to be safe for HS256.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from agentadapter.config import Settings
from agentadapter.llm.errors import ConfigurationError
from agentadapter.service.config import ServiceSettings

__all__ = ["ServerSettings", "check_secrets"]

_DEV_SECRET = "development-only-secret"
_WEAK_SECRETS = frozenset({"", "secret", "changeme", "change-me", "password", "jwt-secret", "your-secret", _DEV_SECRET})
MIN_JWT_SECRET_BYTES = 32
"""RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (256 bits)."""


class ServerSettings(ServiceSettings):
    """What only the HTTP service reads (``AGENTADAPTER_*``), over what the application layer reads
    (:class:`~agentadapter.service.config.ServiceSettings`: run caps, credits, denied tools)."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_", extra="ignore")

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted (413 above it)."""
    jwt_leeway_s: float = Field(default=10.0, ge=0)
    """Clock skew tolerated on ``exp`` and ``nbf``."""
    jwt_default_role: Literal["admin", "member", "viewer"] = "member"
    """The role of a JWT that carries no ``role`` / ``roles`` claim."""
    jwks_cache_s: float = Field(default=300.0, gt=0)
    """How long fetched JWKS keys are trusted before they are fetched again."""
    sse_heartbeat_s: float = Field(default=15.0, gt=0)
    """Seconds between SSE comments that keep idle connections (and proxies) open."""
    migrate_on_start: bool = True
    """Migrate the database to the newest revision when the server starts."""
    gc_freeze: bool = True
    """After start-up, move every object alive to the garbage collector's permanent generation, so full
    collections scan only what requests create (they otherwise pause the server for tens of ms)."""
    recent_runs: int = Field(default=256, ge=0)
    """Finished runs whose events stay in memory for quick replays."""
    rate_limit_key_rpm: int = Field(default=0, ge=0)
    """Requests per minute one API key (or JWT user) may make under /v1; 0: no limit."""
    rate_limit_key_burst: int = Field(default=0, ge=0)
    """Requests one key may make at once before the per-minute rate applies; 0: as many as its rpm."""
    rate_limit_tenant_rpm: int = Field(default=0, ge=0)
    """Requests per minute all of a tenant's keys and users together may make; 0: no limit."""
    rate_limit_tenant_burst: int = Field(default=0, ge=0)
    """The tenant's burst; 0: as many as its rpm."""
    retention_interval_s: float = Field(default=3600.0, ge=0)
    """Seconds between purges of data older than AGENTADAPTER_RETENTION_DAYS; 0: never purge in the server."""
    # Untrusted request bodies and API YAML (server/payloads.py): refused with 422 past these limits.
    max_body_depth: int = Field(default=64, ge=1, le=64)
    """Deepest nesting of arrays and objects in a request body or API YAML document (at most 64: what is
    stored must be readable back by code that recurses)."""
    max_body_nodes: int = Field(default=100_000, ge=100)
    """Most values (objects, arrays, strings, numbers) in one request body or API YAML document."""
    max_body_string_chars: int = Field(default=524_288, ge=1024)
    """Longest string or key in a request body or API YAML document, in characters."""
    body_offload_bytes: int = Field(default=16_384, ge=0)
    """Bodies of at least this many bytes are checked (and API YAML loaded) off the event loop."""
    body_check_processes: int = Field(default=2, ge=0, le=32)
    """Worker processes that check large bodies, started on first need; 0: threads of the server process
    (they hold the interpreter lock while parsing, so a flood of hostile bodies then slows every request)."""

    # -- secrets in errors and /metrics
    metrics_token: SecretStr | None = None
    """When set, ``/metrics`` answers only ``Authorization: Bearer <this token>`` (401 otherwise); its
    label values are bounded either way (tenants' model and agent names show as ``other``)."""

    # auth edges: failed-authentication throttling, the negative API-key cache, credit grants by JWT
    auth_failures_per_minute: int = Field(default=20, ge=0)
    """Failed authentications (invalid API keys or JWTs) one client address may make per minute; past them its
    requests are answered 429 until the window refills. Shared through Redis when AGENTADAPTER_REDIS_URL is
    set. 0: no throttling."""
    auth_failures_burst: int = Field(default=0, ge=0)
    """Failures one address may make at once before the per-minute rate applies; 0: as many as its rate."""
    auth_negative_cache_s: float = Field(default=30.0, ge=0)
    """How long an API key found invalid is refused again without a database lookup; 0: always look it up."""
    auth_negative_cache_size: int = Field(default=10_000, ge=1)
    """How many invalid API keys (as hashes) the negative cache holds; the least recently seen go first."""
    jwt_credits_admin: bool = False
    """Let admin JWTs that carry the credits:admin scope grant credits. Off: only API keys (which only the
    operator makes, with `agentadapter keys create`) can, since any token the identity provider issues
    could carry that scope."""

    # runs left behind: the leases of inline runs, and the reaper that ends those whose process died
    run_lease_s: float = Field(default=30.0, gt=0)
    """How long a server process holds an inline run it executes without renewing it (it renews every third
    of it). A run whose lease expired - its process was killed - is failed (``ServerLost``) by any process."""
    run_reaper_interval_s: float = Field(default=5.0, gt=0)
    """How often each server process looks for runs whose lease expired."""

    # draining on SIGTERM (server/drain.py): rolling restarts lose no request and no run
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    """After SIGTERM, how long in-flight requests, SSE streams and inline runs get to finish; runs still going
    then are handed over (ended ``failed``, ``ServerShutdown``, for their owner to start again)."""
    shutdown_delay_s: float = Field(default=0.0, ge=0)
    """After SIGTERM, how long ``/readyz`` answers 503 while the listener stays open (a pre-stop delay, so a
    load balancer stops sending before connections are refused)."""


def check_secrets(settings: Settings) -> None:
    """Refuse to serve outside development with a default or missing secret, or a weak JWT secret."""
    if settings.env == "development":
        return
    problems: list[str] = []
    if settings.secret_key.strip() in _WEAK_SECRETS:
        problems.append(
            "AGENTADAPTER_SECRET_KEY is missing or a default; set it to a generated Fernet key "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.strip()
        if secret in _WEAK_SECRETS or secret == settings.secret_key:
            problems.append("AGENTADAPTER_JWT_SECRET is a default value (or reuses SECRET_KEY); set its own secret")
        elif len(secret.encode()) < MIN_JWT_SECRET_BYTES:
            problems.append(
                f"AGENTADAPTER_JWT_SECRET is {len(secret.encode())} bytes; HS256 needs at least "
                f"{MIN_JWT_SECRET_BYTES} (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
    if problems:
        raise ConfigurationError(
            f"the server refuses to start in {settings.env} with unsafe secrets:\n  - " + "\n  - ".join(problems)
        )
