"""The service's tables, as SQLAlchemy 2.x declarative models.

The seeds' hierarchy - :class:`Tenant` -> :class:`Project` -> :class:`Run` -> :class:`AgentRun` and
:class:`AgentMessage` - plus what the API stores around it: :class:`AgentDefinition` (with its
:class:`AgentVersion` history), :class:`Workflow`, :class:`User` and their :class:`UserSettings`,
:class:`ApiKey`, :class:`RunEventRow` (the persisted run events SSE replays) and :class:`AuditLog`.

Everything is portable between SQLite and PostgreSQL: UUID primary keys (``Uuid``: native on
PostgreSQL, 32 hex characters on SQLite), timezone-aware timestamps (stored as UTC and read back
aware on both), ``JSON`` columns, statuses as ``VARCHAR`` with a ``CHECK`` constraint rather than a
native enum type (so adding a status is a plain migration), and ``ON DELETE CASCADE`` from a tenant
down to every row it owns. Every table that holds tenant data carries ``tenant_id`` so that a
repository can filter on it without a join; the indexes follow the API's list queries (newest
first per tenant, by status, by agent, by workflow). Constraint names come from
:data:`NAMING_CONVENTION`, which Alembic's batch mode on SQLite needs to find them again.
The service's money and keys live here too: :class:`ProviderKey` (a tenant's provider API keys,
Fernet-encrypted), :class:`UsageRecord` (one per LLM call), :class:`BudgetCounter` (the budgets'
spend and reservations), :class:`CreditAccount` and :class:`CreditTransaction` (a tenant's prepaid
balance and every grant and charge, each charge keyed by its reservation so it is recorded once).
The migrations in ``migrations/`` must match these models exactly; a test checks it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AGENT_RUN_STATUSES",
    "CREDIT_KINDS",
    "NAMING_CONVENTION",
    "ROLES",
    "RUN_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "AgentDefinition",
    "AgentMessage",
    "AgentRun",
    "AgentVersion",
    "ApiKey",
    "AuditLog",
    "Base",
    "BudgetCounter",
    "CreditAccount",
    "CreditTransaction",
    "Project",
    "ProviderKey",
    "Run",
    "RunEventRow",
    "RunStep",
    "STEP_STATUSES",
    "Tenant",
    "User",
    "UserSettings",
    "UTCDateTime",
    "UsageRecord",
    "Workflow",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("queued", "running", "paused", "completed", "failed", "cancelled")
TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled"})
AGENT_RUN_STATUSES = ("running", "completed", "failed", "cancelled")
ROLES = ("admin", "member", "viewer")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware datetimes (datetime.now(UTC))")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _status(name: str, values: tuple[str, ...]) -> sa.Enum:
    # native_enum=False: a VARCHAR and a CHECK constraint on both databases, no CREATE TYPE.
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: sa.Uuid(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
        list[str]: sa.JSON(),
    }


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


class Tenant(Base):
    """An organisation: every other row belongs to one, and is invisible to the others."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    projects: Mapped[list[Project]] = relationship(back_populates="tenant", cascade="all, delete-orphan",
                                                   passive_deletes=True)


class Project(Base):
    """A grouping of runs inside a tenant (each tenant has a ``default`` one)."""

    __tablename__ = "projects"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    tenant: Mapped[Tenant] = relationship(back_populates="projects")


class User(Base):
    """A person (a JWT subject) or the tenant's default user, who API keys act as."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "subject"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    subject: Mapped[str] = mapped_column(sa.String(255))
    """The JWT ``sub`` claim, or ``default`` for the tenant's default user."""
    email: Mapped[str | None] = mapped_column(sa.String(320))
    display_name: Mapped[str | None] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(_status("user_role", ROLES), default="member")
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class UserSettings(Base):
    """One user's defaults (the seeds' user settings): models, RAG archives, local or online."""

    __tablename__ = "user_settings"

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    default_model: Mapped[str | None] = mapped_column(sa.String(200))
    """The model agents without one use."""
    default_models: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Default models by purpose (``chat``, ``embedding``, ``vision``, ...)."""
    rag_archives: Mapped[list[str]] = mapped_column(default=list)
    """The file archives searched for retrieval by default."""
    prefer_local: Mapped[bool] = mapped_column(default=False)
    """Prefer local models to online ones when an agent does not say."""
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ApiKey(Base):
    """A tenant API key: only its SHA-256 hash is kept, with a visible prefix to recognise it by."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(_status("api_key_role", ROLES), default="member")
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class AgentDefinition(Base):
    """An agent as data: what ``create_agent`` builds a runnable agent from."""

    __tablename__ = "agent_definitions"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name"),
        sa.Index(None, "tenant_id", "created_at"),
        sa.Index(None, "tenant_id", "model"),
    )

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    model: Mapped[str | None] = mapped_column(sa.String(200))
    instructions: Mapped[str] = mapped_column(sa.Text, default="")
    tools: Mapped[list[str]] = mapped_column(default=list)
    handoffs: Mapped[list[str]] = mapped_column(default=list)
    guardrails: Mapped[list[Any]] = mapped_column(default=list)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column()
    model_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_turns: Mapped[int | None] = mapped_column()
    mcp_servers: Mapped[list[Any]] = mapped_column(default=list, server_default=sa.text("'[]'"))
    """Streamable-HTTP MCP servers whose tools the agent uses (``{name, url, headers, ...}``)."""
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class AgentVersion(Base):
    """A snapshot of an agent definition's spec, one per version."""

    __tablename__ = "agent_versions"
    __table_args__ = (sa.UniqueConstraint("agent_id", "version"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    agent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agent_definitions.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    spec: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()


class Workflow(Base):
    """A workflow (the YAML format, stored as JSON)."""

    __tablename__ = "workflows"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"), sa.Index(None, "tenant_id", "created_at"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column()
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Run(Base):
    """One execution of an agent or a workflow, and its outcome."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.Index(None, "tenant_id", "created_at"),
        sa.Index(None, "tenant_id", "status", "created_at"),
        sa.Index(None, "tenant_id", "agent_id", "created_at"),
        sa.Index(None, "tenant_id", "workflow_id", "created_at"),
        sa.Index(None, "status", "lease_until"),
    )

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("agent_definitions.id", ondelete="SET NULL"))
    agent_version: Mapped[int | None] = mapped_column()
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("workflows.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(_status("run_status", RUN_STATUSES), default="queued")
    input: Mapped[Any] = mapped_column(sa.JSON)
    """The task: a string, or a list of OpenAI-style messages."""
    output: Mapped[Any | None] = mapped_column(sa.JSON)
    text: Mapped[str] = mapped_column(sa.Text, default="")
    error: Mapped[dict[str, Any] | None] = mapped_column()
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cost_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    duration_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    strategy: Mapped[str] = mapped_column(sa.String(200), default="")
    workflow_name: Mapped[str | None] = mapped_column(sa.String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_seq: Mapped[int] = mapped_column(default=0)
    """The highest persisted event seq."""
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    """The server process executing the run inline (host:pid:nonce); None for runs of the Celery executor."""
    lease_until: Mapped[datetime | None] = mapped_column()
    """Until when that process holds the run; it renews the lease while the run executes. Past it (the process
    died), any server process's reaper ends the run."""

    @property
    def pending_approvals(self) -> list[dict[str, Any]]:
        """A paused run's tool calls waiting for a human's decision (kept in its details)."""
        return pending_approvals(self.status, self.details)


def pending_approvals(status: str, details: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The tool calls a paused run waits on (``call_id``, ``tool``, ``arguments``, ``agent``), from its details."""
    if status != "paused":
        return []
    paused = (details or {}).get("paused") or {}
    return [dict(p) for p in paused.get("pending") or []]


class AgentRun(Base):
    """One agent step of a run (the orchestrator's ``AgentRunResult``)."""

    __tablename__ = "agent_runs"
    __table_args__ = (sa.Index(None, "run_id", "step"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    step: Mapped[int] = mapped_column()
    phase: Mapped[str] = mapped_column(sa.String(32), default="run")
    status: Mapped[str] = mapped_column(_status("agent_run_status", AGENT_RUN_STATUSES), default="running")
    input: Mapped[str] = mapped_column(sa.Text, default="")
    output: Mapped[Any | None] = mapped_column(sa.JSON)
    text: Mapped[str] = mapped_column(sa.Text, default="")
    error: Mapped[dict[str, Any] | None] = mapped_column()
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cost_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    attempts: Mapped[int] = mapped_column(default=0)
    model: Mapped[str | None] = mapped_column(sa.String(200))
    answered_by: Mapped[str | None] = mapped_column(sa.String(200))
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)


class AgentMessage(Base):
    """A message one agent of a run sent another on the run's bus."""

    __tablename__ = "agent_messages"
    __table_args__ = (sa.UniqueConstraint("run_id", "message_id"), sa.Index(None, "run_id", "created_at"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(sa.String(64))
    type: Mapped[str] = mapped_column(sa.String(64))
    sender: Mapped[str] = mapped_column(sa.String(200))
    recipient: Mapped[str | None] = mapped_column(sa.String(200))
    topic: Mapped[str | None] = mapped_column(sa.String(200))
    payload: Mapped[Any | None] = mapped_column(sa.JSON)
    correlation_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = _created()


class RunEventRow(Base):
    """A persisted run event (never a token): what SSE replays from ``Last-Event-ID``."""

    __tablename__ = "run_events"

    run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    type: Mapped[str] = mapped_column(sa.String(32))
    agent: Mapped[str | None] = mapped_column(sa.String(200))
    ts: Mapped[float] = mapped_column(sa.Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditLog(Base):
    """Who changed what: every create, update, delete and run start of the API."""

    __tablename__ = "audit_logs"
    __table_args__ = (sa.Index(None, "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    actor_type: Mapped[str] = mapped_column(sa.String(16))
    """``user``, ``api_key`` or ``system``."""
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(64))
    resource_type: Mapped[str] = mapped_column(sa.String(32))
    resource_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = _created()


CREDIT_KINDS = ("grant", "charge", "adjustment")


class ProviderKey(Base):
    """A tenant's API key for a provider, encrypted with the server's secret key (Fernet).

    The plaintext is never stored, logged or returned: lists show ``hint`` (the last characters).
    """

    __tablename__ = "provider_keys"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "provider", "name"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    provider: Mapped[str] = mapped_column(sa.String(64))
    """A provider preset name (``openai``, ``anthropic``, ...) or a backend named in the config."""
    name: Mapped[str] = mapped_column(sa.String(100), default="default")
    ciphertext: Mapped[str] = mapped_column(sa.Text)
    hint: Mapped[str] = mapped_column(sa.String(16))
    """The key's last characters, to recognise it by."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    rotated_at: Mapped[datetime | None] = mapped_column()


class UsageRecord(Base):
    """One LLM call's tokens, cost and latency (agent runs and the gateway alike)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        sa.Index(None, "tenant_id", "ts"),
        sa.Index(None, "ts"),
    )

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    """None for a call made outside any tenant (kept, never attributed)."""
    ts: Mapped[datetime] = mapped_column()
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(200))
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cache_read_tokens: Mapped[int] = mapped_column(default=0)
    cache_write_tokens: Mapped[int] = mapped_column(default=0)
    reasoning_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float | None] = mapped_column(sa.Float)
    """None when the model's price is unknown."""
    latency_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    cached: Mapped[bool] = mapped_column(default=False)
    agent: Mapped[str | None] = mapped_column(sa.String(200))
    project: Mapped[str | None] = mapped_column(sa.String(100))
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    api_key_id: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str | None] = mapped_column(sa.String(32))
    """``run`` (an agent run) or ``gateway``."""
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BudgetCounter(Base):
    """One budget window's spend and outstanding reservations (the budgets' database store)."""

    __tablename__ = "budget_counters"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    committed_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    reserved_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    alerted: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = _updated()


class CreditAccount(Base):
    """A tenant's prepaid balance. A tenant with no account is not metered (unless the server requires
    credits); ``reserved_usd`` is what calls in flight hold."""

    __tablename__ = "credit_accounts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    balance_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    reserved_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    charged_usd: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default=sa.text("0"))
    """Every charge ever made to the account, summed: it only grows, so processes that keep running balances
    on Redis can tell which charges their copy already has (a larger total always includes a smaller one)."""
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class CreditTransaction(Base):
    """A grant, a charge or an adjustment of a tenant's balance. A charge carries the id of the
    reservation it settles, unique, so a settlement is recorded exactly once."""

    __tablename__ = "credit_transactions"
    __table_args__ = (sa.Index(None, "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    kind: Mapped[str] = mapped_column(_status("credit_kind", CREDIT_KINDS))
    amount_usd: Mapped[float] = mapped_column(sa.Float)
    """Positive for a grant, negative for a charge."""
    balance_after_usd: Mapped[float] = mapped_column(sa.Float)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    reserved_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = _created()


STEP_STATUSES = ("queued", "running", "done")


class RunStep(Base):
    """One agent step of a run executed by the workers: queued once, claimed under a lease, done once.

    ``(run_id, key)`` is unique, so a step is enqueued at most once however often the run is
    replayed; ``claims`` counts the executions that started (more than one only after a worker died).
    """

    __tablename__ = "run_steps"
    __table_args__ = (sa.Index(None, "status", "lease_until"),)

    run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    status: Mapped[str] = mapped_column(_status("run_step_status", STEP_STATUSES), default="queued")
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What the step runs: agent, phase, input, history, the run's spend so far."""
    result: Mapped[dict[str, Any] | None] = mapped_column()
    claims: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    """The worker (host and process) that claimed it last."""
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

# The knowledge tables are defined beside these; importing them here puts them in Base.metadata wherever
# the models are loaded (migrations, the store, the service).
from agentadapter.store import compliance_models as _compliance_tables  # noqa: E402, F401  (policies, consents)
from agentadapter.store import evals_models as _evaluation_tables  # noqa: E402, F401  (datasets, experiments)
from agentadapter.store import files_models as _knowledge_tables  # noqa: E402, F401
from agentadapter.store import stored_responses as _stored_responses  # noqa: E402, F401  (the gateway's store)
from agentadapter.store import threads_models as _conversation_tables  # noqa: E402, F401
