"""What the application layer reads of the environment (``AGENTADAPTER_*``): run caps, credits, the ledger, tools.

These are the settings every face needs alike - an API server and a Celery worker build and meter a
tenant's run the same way - so they live below the faces: ``ServerSettings``
(:mod:`agentadapter.server.settings`) extends :class:`ServiceSettings` with what only the HTTP
service reads, and a worker reads :class:`ServiceSettings` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """What building, running and metering a tenant's work reads, wherever it executes (``AGENTADAPTER_*``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_", extra="ignore")

    auth_cache_s: float = Field(default=30.0, ge=0)
    """How long a verified API key (or a JWT's user) is remembered; a revoked key stops working within this.
    A tenant's LLM facade (its stored keys, its credit guard) is rebuilt as often."""
    sse_poll_s: float = Field(default=0.5, gt=0)
    """How often the events of a run executing in another process are read from the database."""
    credits_required: bool = False
    """Refuse the LLM calls (and runs) of tenants that have no prepaid credit account; off: such tenants
    are not metered, and only tenants that were granted credits draw on a balance."""
    api_denied_tools: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["shell"])
    """Registered tools that agents defined through the API may not use (comma-separated; the shell
    tool by default: an API caller should not get a command line on the server)."""
    approval_tools: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Registered tools whose every call in a service run waits for a human's approval (comma-separated):
    the run pauses until ``POST /v1/runs/{id}/approvals`` decides. Tools that ask for approval themselves
    (``needs_approval``) pause runs too."""

    # MCP servers that agents defined through the API name (streamable HTTP only): the address rules of
    # http_fetch apply to their URLs; these exempt the operator's own servers.
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host names (``mcp.internal``, or ``.internal`` for a domain) a tenant's MCP server may be on although
    they resolve to private addresses (comma-separated)."""
    mcp_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Networks (CIDR, comma-separated) a tenant's MCP server may be on although they are private."""

    # Run caps (the trust boundary): what a tenant's spec or request asks for is brought within these.
    run_max_steps: int = Field(default=1000, ge=1)
    """Most agent steps one run of a tenant may take, whatever its workflow's limits say."""
    run_max_loop_iterations: int = Field(default=100, ge=1)
    """Most iterations of a loop workflow's generator and evaluator."""
    run_max_seconds: float = Field(default=3600.0, gt=0)
    """Longest wall-clock time of one run; a run still going then is failed."""
    run_max_step_retries: int = Field(default=5, ge=0)
    """Most retries of one failed agent step."""
    run_max_agents: int = Field(default=64, ge=1)
    """Most agents in one workflow."""

    # credit bounds: what a metered tenant's call holds against its balance
    credit_default_max_output_tokens: int = Field(default=4096, ge=1)
    """The output bound of a metered tenant's call that sets no max_tokens: held at the model's output price
    and sent to the provider as max_tokens (capped at the model's maximum output), so it cannot write more."""
    credit_unpriced_hold_usd: float = Field(default=0.0, ge=0)
    """What a metered tenant's call to a model without a known price holds and is charged, flat. 0: such
    calls are refused (their cost cannot be bounded); price the model in the config's catalog: instead."""

    credit_reconcile_s: float = Field(default=5.0, gt=0)
    """How often the running credit balances are reconciled with the database: a grant made in another
    process (``agentadapter credits add``) reaches this one's balances within this delay."""
    credit_lease_holds: int = Field(default=64, ge=0)
    """With several processes (balances on Redis): how many holds of a call's size a process leases from a
    tenant's balance beyond the call's own, so that most holds and charges need no Redis call. 0: each hold
    leases exactly what it needs (one Redis call per hold)."""

    # the ledger: usage records and credit charges on their way to the database
    ledger_dir: Path | None = None
    """Where the journal of records not yet in the database is kept (a local directory; unset: ``ledger``
    in the data dir). Records left by a process that died are replayed from it at the next start."""
    ledger_fsync: Literal["always", "interval", "never"] = "interval"
    """When the journal is forced to disk: ``always`` (every record), ``interval`` (every
    ``ledger_fsync_interval_s``) or ``never`` (the OS decides). A killed process loses nothing either way;
    this bounds what a power cut or kernel crash can lose."""
    ledger_fsync_interval_s: float = Field(default=1.0, gt=0)
    ledger_queue: int = Field(default=100_000, ge=1)
    """Records the writer keeps in memory; beyond, records wait in the journal only (read back, not lost)."""

    @field_validator("mcp_allowed_hosts", "mcp_allowed_networks", "api_denied_tools", "approval_tools", mode="before")
    @classmethod
    def _split_tools(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value
