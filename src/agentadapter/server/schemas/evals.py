"""Bodies of ``/v1/datasets`` and ``/v1/experiments``: a dataset in (``DatasetCreate``: cases as JSON, or
``content`` in YAML, JSONL or CSV), datasets and versions out; an experiment in (``ExperimentCreate``), the
experiment, its results and its comparison out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from agentadapter.server.schemas.common import ModelId, RequestModel, ResponseModel

__all__ = [
    "DatasetCreate",
    "DatasetPublic",
    "DatasetVersionCreate",
    "DatasetVersionPublic",
    "ExperimentCompare",
    "ExperimentCreate",
    "ExperimentPublic",
    "ExperimentResultPublic",
    "SubjectIn",
]

DatasetName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$",
                                   description="Unique in the tenant.")]
Evaluator = str | dict[str, Any]


class DatasetVersionCreate(RequestModel):
    """The cases of a version: ``cases`` (JSON), or ``content`` text in ``format``."""

    description: str = Field(default="", max_length=4000)
    cases: list[Any] | None = Field(default=None, max_length=20_000,
                                    description="[{id, input, expected, metadata, evaluators}] or prompts.")
    evaluators: list[Evaluator] = Field(default_factory=list, max_length=32,
                                        description="Evaluator specs every case gets (docs/evaluation.md).")
    content: str | None = Field(default=None, max_length=5_000_000,
                                description="The dataset as text in `format` (instead of cases).")
    format: Literal["json", "yaml", "jsonl", "csv"] = "json"


class DatasetCreate(DatasetVersionCreate):
    name: DatasetName


class DatasetPublic(ResponseModel):
    object: Literal["dataset"] = "dataset"
    id: uuid.UUID
    name: str
    description: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class DatasetVersionPublic(ResponseModel):
    object: Literal["dataset.version"] = "dataset.version"
    dataset_id: uuid.UUID
    version: int
    content_hash: str = Field(description="The content's hash: the same cases give the same hash.")
    case_count: int
    created_at: datetime
    evaluators: list[Any] | None = None
    cases: list[Any] | None = Field(default=None, description="With ?cases=true, or on a single version.")


class SubjectIn(RequestModel):
    """What an experiment runs: exactly one of a stored agent, a stored workflow, or a model."""

    agent_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    model: ModelId | None = None
    name: str | None = Field(default=None, min_length=1, max_length=100, description="Default: the agent's, "
                             "workflow's or model's name.")
    instructions: str = Field(default="", max_length=100_000, description="A model subject's system prompt.")


class ExperimentCreate(RequestModel):
    dataset_id: uuid.UUID
    dataset_version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Default: the latest.")
    subjects: list[SubjectIn] = Field(min_length=1, max_length=16)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    evaluators: list[Evaluator] = Field(default_factory=list, max_length=32,
                                        description="Evaluators beside the dataset's.")
    repeat: int = Field(default=1, ge=1, le=10)
    concurrency: int = Field(default=4, ge=1, le=16)
    max_cost_usd: float | None = Field(default=None, gt=0, le=1_000_000,
                                       description="Stop scheduling cases once this much is spent.")
    watch: bool = Field(default=False, description="Re-run when the first stored subject gets a new version.")
    threshold: float | None = Field(default=None, gt=0, le=1,
                                    description="Score drop that counts as a regression (default 0.05).")
    schedule_s: int | None = Field(default=None, ge=60, le=366 * 86400, description="Also re-run this often.")
    project_id: uuid.UUID | None = None


class ExperimentPublic(ResponseModel):
    object: Literal["experiment"] = "experiment"
    id: uuid.UUID
    name: str
    status: str
    dataset_id: uuid.UUID
    dataset_version: int
    subjects: list[dict[str, Any]]
    evaluators: list[Any]
    settings: dict[str, Any]
    run_id: uuid.UUID | None
    planned: int
    completed: int
    stopped: str | None
    cost_usd: float
    eval_cost_usd: float
    summary: list[dict[str, Any]]
    comparison: dict[str, Any] | None
    error: dict[str, Any] | None
    trigger: str = Field(validation_alias="cause", description="api, new_version or schedule.")
    parent_id: uuid.UUID | None
    watch: bool
    threshold: float | None
    schedule_s: int | None
    watched_version: int | None
    regression: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


class ExperimentResultPublic(ResponseModel):
    object: Literal["experiment.result"] = "experiment.result"
    subject: str
    case_id: str
    repetition: int
    score: float
    output: Any
    text: str
    scores: dict[str, Any]
    tool_calls: list[Any]
    usage: dict[str, Any]
    cost_usd: float
    eval_cost_usd: float
    latency_ms: float
    error: str | None


class ExperimentCompare(ResponseModel):
    object: Literal["experiment.comparison"] = "experiment.comparison"
    a: str
    b: str
    confidence: float
    winner: str | None
    verdict: str
    metrics: list[dict[str, Any]]
