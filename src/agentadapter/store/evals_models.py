"""The evaluation tables: datasets and their versions, experiments and each case's result.

:class:`Dataset` is a tenant's named dataset; :class:`DatasetVersion` is one immutable version of its
cases and evaluator specs (numbered 1, 2, ... and keyed by the content hash, so posting the same
cases again is the same version). :class:`Experiment` is one run of a dataset version against its
subjects (stored agents, workflows, or models): its settings, status, the run that executed it, the
summary per subject and the A/B comparison when it has two subjects. An experiment with ``watch`` set
is attached to its first stored subject: a new version of that agent or workflow starts a re-run (an
experiment whose ``parent_id`` is the attached one, ``cause`` ``new_version``), and so does its
``schedule_s`` when set (``cause`` ``schedule``); a re-run whose score dropped more than the
threshold below the previous one records ``regression``. :class:`ExperimentResult` is one subject's
answer to one case (one repetition), with its scores, tokens, cost, latency and error.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from agentadapter.store.models import RUN_STATUSES, Base, _created, _pk, _status, _tenant_fk, _updated

__all__ = ["EXPERIMENT_TRIGGERS", "Dataset", "DatasetVersion", "Experiment", "ExperimentResult"]

EXPERIMENT_TRIGGERS = ("api", "new_version", "schedule")


class Dataset(Base):
    """A tenant's named dataset; its cases live in its versions."""

    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"), sa.Index(None, "tenant_id", "created_at"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    latest_version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class DatasetVersion(Base):
    """One immutable version of a dataset: its cases and evaluator specs, and their content hash."""

    __tablename__ = "dataset_versions"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "version"), sa.UniqueConstraint("dataset_id", "content_hash"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    dataset_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    case_count: Mapped[int] = mapped_column()
    spec: Mapped[dict[str, Any]] = mapped_column()
    """``{"evaluators": [...], "cases": [...]}``."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()


class Experiment(Base):
    """A dataset version run against subjects, and how it went."""

    __tablename__ = "experiments"
    __table_args__ = (
        sa.Index(None, "tenant_id", "created_at"),
        sa.Index(None, "tenant_id", "dataset_id", "created_at"),
        sa.Index(None, "watch", "status"),
    )

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    dataset_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    dataset_version: Mapped[int] = mapped_column()
    subjects: Mapped[list[Any]] = mapped_column()
    """``[{"kind": "agent"|"workflow"|"model", "id"|"model", "name", "version"}]`` as run."""
    evaluators: Mapped[list[Any]] = mapped_column(default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """``repeat``, ``concurrency``, ``max_cost_usd``."""
    status: Mapped[str] = mapped_column(_status("experiment_status", RUN_STATUSES), default="queued")
    run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    planned: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    stopped: Mapped[str | None] = mapped_column(sa.String(50))
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    eval_cost_usd: Mapped[float] = mapped_column(default=0.0)
    summary: Mapped[list[Any]] = mapped_column(default=list)
    comparison: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[dict[str, Any] | None] = mapped_column()
    cause: Mapped[str] = mapped_column(_status("experiment_cause", EXPERIMENT_TRIGGERS), default="api")
    """What started it: ``api``, ``new_version`` (of the watched subject) or ``schedule``."""
    parent_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    """The attached experiment a re-run was started for."""
    watch: Mapped[bool] = mapped_column(default=False)
    """Attached: re-run on a new version of the first stored subject (and on ``schedule_s``)."""
    threshold: Mapped[float | None] = mapped_column()
    """Score drop (0..1) that counts as a regression."""
    schedule_s: Mapped[int | None] = mapped_column()
    watched_version: Mapped[int | None] = mapped_column()
    """The version of the watched subject this experiment (or its latest re-run) evaluated."""
    last_started_at: Mapped[datetime | None] = mapped_column()
    """When the attached experiment or its latest re-run started (schedules count from it)."""
    regression: Mapped[dict[str, Any] | None] = mapped_column()
    """``{metric, previous, current, drop, threshold, subject, version}`` when this re-run regressed."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    finished_at: Mapped[datetime | None] = mapped_column()


class ExperimentResult(Base):
    """One subject's answer to one case (one repetition), and its scores."""

    __tablename__ = "experiment_results"
    __table_args__ = (sa.Index(None, "experiment_id", "subject", "case_id"),)

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    experiment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(sa.String(200))
    case_id: Mapped[str] = mapped_column(sa.String(200))
    repetition: Mapped[int] = mapped_column(default=0)
    score: Mapped[float] = mapped_column(default=0.0)
    output: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    text: Mapped[str] = mapped_column(sa.Text, default="")
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tool_calls: Mapped[list[Any]] = mapped_column(default=list)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    eval_cost_usd: Mapped[float] = mapped_column(default=0.0)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(sa.Text)
