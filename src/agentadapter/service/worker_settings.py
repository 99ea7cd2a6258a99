"""Settings of the Celery executor and its workers (``AGENTADAPTER_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WorkerSettings"]


class WorkerSettings(BaseSettings):
    """Leases, the reaper, and the Redis event streams of runs executed by workers."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_", extra="ignore")

    queue: str = Field(default="agentadapter", alias="AGENTADAPTER_WORKER_QUEUE")
    """The Celery queue runs are sent to (and workers consume by default)."""
    broker_visibility_timeout_s: float = Field(default=60.0, gt=0)
    """Redis broker only: an unacknowledged task is delivered again after this long."""
    step_lease_s: float = Field(default=30.0, gt=0)
    """A running step's lease; its worker renews it every third of it. Expired: the reaper re-enqueues it."""
    step_requeue_s: float = Field(default=60.0, gt=0)
    """A step queued and never claimed for this long (or a run idle this long) is sent again."""
    reaper_interval_s: float = Field(default=5.0, gt=0)
    run_max_age_s: float = Field(default=6 * 3600.0, gt=0)
    """A run still unfinished this long after it was created is failed by the reaper."""
    event_stream_maxlen: int = Field(default=10_000, ge=100)
    event_stream_ttl_s: int = Field(default=3600, ge=1)
    """How long a finished run's Redis event stream is kept (live SSE; the database keeps the rest)."""
    cancel_ttl_s: int = Field(default=24 * 3600, ge=1)
