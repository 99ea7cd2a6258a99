"""Datasets, their versions, experiments and their results - always within one tenant.

A dataset is created with its version 1; adding cases whose content hash the dataset already has
returns that version instead of writing a copy, so versions are unique by content. Experiments are
written when created (``queued``), marked ``running`` with their run, and finished in one transaction
with all their results. :func:`watched_experiments` is the one cross-tenant read: the attached
experiments the continuous-evaluation loop checks, each then handled within its own tenant.
Validation is the caller's (the service's); this module only stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.evals_models import Dataset, DatasetVersion, Experiment, ExperimentResult
from agentadapter.store.models import TERMINAL_RUN_STATUSES, Run, utcnow
from agentadapter.store.pagination import Page, paginate

__all__ = [
    "add_dataset_version",
    "create_dataset",
    "create_experiment",
    "delete_dataset",
    "finish_experiment",
    "get_dataset",
    "get_dataset_version",
    "get_experiment",
    "latest_finished_child",
    "list_dataset_versions",
    "list_datasets",
    "list_experiments",
    "list_results",
    "orphaned_experiments",
    "watched_experiments",
]


async def create_dataset(
    session: AsyncSession, tenant_id: uuid.UUID, *, name: str, description: str, spec: Mapping[str, Any],
    content_hash: str, case_count: int, created_by: uuid.UUID | None,
) -> tuple[Dataset, DatasetVersion]:
    """A new dataset and its version 1."""
    taken = await session.scalar(sa.select(Dataset.id).where(Dataset.tenant_id == tenant_id, Dataset.name == name))
    if taken is not None:
        raise RecordConflict(f"a dataset named {name!r} exists already in this tenant; add a version to it "
                             f"(POST /v1/datasets/{taken}/versions) or pick another name", param="name")
    dataset = Dataset(id=uuid.uuid4(), tenant_id=tenant_id, name=name, description=description, latest_version=1,
                      created_by=created_by)
    session.add(dataset)
    await session.flush()
    version = DatasetVersion(id=uuid.uuid4(), tenant_id=tenant_id, dataset_id=dataset.id, version=1,
                             content_hash=content_hash, case_count=case_count, spec=dict(spec), created_by=created_by)
    session.add(version)
    await session.flush()
    return dataset, version


async def add_dataset_version(
    session: AsyncSession, tenant_id: uuid.UUID, dataset_id: uuid.UUID, *, spec: Mapping[str, Any],
    content_hash: str, case_count: int, created_by: uuid.UUID | None,
) -> tuple[DatasetVersion, bool]:
    """The next version (True), or the existing one with the same content (False)."""
    dataset = await get_dataset(session, tenant_id, dataset_id)
    existing = await session.scalar(sa.select(DatasetVersion).where(
        DatasetVersion.dataset_id == dataset.id, DatasetVersion.content_hash == content_hash))
    if existing is not None:
        return existing, False
    dataset.latest_version += 1
    version = DatasetVersion(id=uuid.uuid4(), tenant_id=tenant_id, dataset_id=dataset.id,
                             version=dataset.latest_version, content_hash=content_hash, case_count=case_count,
                             spec=dict(spec), created_by=created_by)
    session.add(version)
    await session.flush()
    return version, True


async def get_dataset(session: AsyncSession, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    found: Dataset | None = await session.scalar(
        sa.select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.id == dataset_id))
    if found is None:
        raise RecordNotFound("dataset", dataset_id)
    return found


async def delete_dataset(session: AsyncSession, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    """The dataset, its versions and its experiments (cascade)."""
    dataset = await get_dataset(session, tenant_id, dataset_id)
    await session.delete(dataset)
    await session.flush()


async def list_datasets(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20,
                        cursor: str | None = None) -> Page[Dataset]:
    statement = sa.select(Dataset).where(Dataset.tenant_id == tenant_id)
    page: Page[Dataset] = await paginate(session, statement, Dataset, limit=limit, cursor=cursor)
    return page


async def get_dataset_version(session: AsyncSession, tenant_id: uuid.UUID, dataset_id: uuid.UUID,
                              version: int | None = None) -> DatasetVersion:
    """A version of the dataset (None: the latest)."""
    dataset = await get_dataset(session, tenant_id, dataset_id)
    number = dataset.latest_version if version is None else version
    found: DatasetVersion | None = await session.scalar(sa.select(DatasetVersion).where(
        DatasetVersion.tenant_id == tenant_id, DatasetVersion.dataset_id == dataset_id,
        DatasetVersion.version == number))
    if found is None:
        raise RecordNotFound("dataset version", f"{dataset_id}/{number}")
    return found


async def list_dataset_versions(session: AsyncSession, tenant_id: uuid.UUID,
                                dataset_id: uuid.UUID) -> list[DatasetVersion]:
    """Every version of the dataset, newest first."""
    await get_dataset(session, tenant_id, dataset_id)
    rows = await session.scalars(sa.select(DatasetVersion).where(
        DatasetVersion.tenant_id == tenant_id, DatasetVersion.dataset_id == dataset_id,
    ).order_by(DatasetVersion.version.desc()))
    return list(rows)


# ------------------------------------------------------------------------------------------ experiments


async def create_experiment(session: AsyncSession, tenant_id: uuid.UUID, **fields: Any) -> Experiment:
    """A new ``queued`` experiment with ``fields`` (the model's columns)."""
    experiment = Experiment(id=uuid.uuid4(), tenant_id=tenant_id, status="queued", **fields)
    session.add(experiment)
    await session.flush()
    return experiment


async def get_experiment(session: AsyncSession, tenant_id: uuid.UUID, experiment_id: uuid.UUID) -> Experiment:
    found: Experiment | None = await session.scalar(
        sa.select(Experiment).where(Experiment.tenant_id == tenant_id, Experiment.id == experiment_id))
    if found is None:
        raise RecordNotFound("experiment", experiment_id)
    return found


async def list_experiments(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
    dataset_id: uuid.UUID | None = None, parent_id: uuid.UUID | None = None, regressed: bool | None = None,
) -> Page[Experiment]:
    statement = sa.select(Experiment).where(Experiment.tenant_id == tenant_id)
    if dataset_id is not None:
        statement = statement.where(Experiment.dataset_id == dataset_id)
    if parent_id is not None:
        statement = statement.where(Experiment.parent_id == parent_id)
    if regressed is not None:
        statement = statement.where(Experiment.regression.is_not(None) if regressed
                                    else Experiment.regression.is_(None))
    page: Page[Experiment] = await paginate(session, statement, Experiment, limit=limit, cursor=cursor)
    return page


async def finish_experiment(
    session: AsyncSession, experiment: Experiment, *, status: str, results: Iterable[Mapping[str, Any]] = (),
    **fields: Any,
) -> None:
    """End ``experiment`` with ``status``, its results and the given columns (the caller commits)."""
    rows = [ExperimentResult(id=uuid.uuid4(), tenant_id=experiment.tenant_id, experiment_id=experiment.id, **r)
            for r in results]
    session.add_all(rows)
    experiment.status = status
    experiment.finished_at = utcnow()
    for name, value in fields.items():
        setattr(experiment, name, value)
    await session.flush()


async def list_results(
    session: AsyncSession, tenant_id: uuid.UUID, experiment_id: uuid.UUID, *, subject: str | None = None,
    limit: int | None = None, offset: int = 0,
) -> list[ExperimentResult]:
    """The experiment's results (by case id, subject, repetition; the service puts them in dataset order)."""
    statement = sa.select(ExperimentResult).where(ExperimentResult.tenant_id == tenant_id,
                                                  ExperimentResult.experiment_id == experiment_id)
    if subject is not None:
        statement = statement.where(ExperimentResult.subject == subject)
    statement = statement.order_by(ExperimentResult.case_id, ExperimentResult.subject, ExperimentResult.repetition)
    if limit is not None:
        statement = statement.limit(limit).offset(offset)
    return list(await session.scalars(statement))


async def orphaned_experiments(session: AsyncSession) -> list[Experiment]:
    """Experiments of every tenant still ``queued`` or ``running`` whose run has ended or is gone (its
    process died and a reaper ended the run): nothing will finish them."""
    ended = sa.select(Run.id).where(Run.id == Experiment.run_id, Run.status.in_(TERMINAL_RUN_STATUSES))
    gone = ~sa.exists(sa.select(Run.id).where(Run.id == Experiment.run_id))
    statement = sa.select(Experiment).where(
        Experiment.status.in_(("queued", "running")), Experiment.run_id.is_not(None),
        sa.or_(sa.exists(ended), gone))
    return list(await session.scalars(statement))


async def watched_experiments(session: AsyncSession) -> list[Experiment]:
    """Every attached experiment of every tenant (the continuous-evaluation loop handles each in its tenant)."""
    return list(await session.scalars(sa.select(Experiment).where(Experiment.watch.is_(True))))


async def latest_finished_child(session: AsyncSession, tenant_id: uuid.UUID, parent_id: uuid.UUID,
                                before: uuid.UUID | None = None) -> Experiment | None:
    """The newest completed re-run of an attached experiment (other than ``before``)."""
    statement = sa.select(Experiment).where(Experiment.tenant_id == tenant_id, Experiment.parent_id == parent_id,
                                            Experiment.status == "completed")
    if before is not None:
        statement = statement.where(Experiment.id != before)
    statement = statement.order_by(Experiment.finished_at.desc()).limit(1)
    found: Experiment | None = await session.scalar(statement)
    return found
