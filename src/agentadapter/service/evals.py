"""Evaluation in the service: a tenant's datasets, and experiments run through the run executor.

Datasets arrive as JSON (``cases`` and ``evaluators``) or as text in YAML, JSONL or CSV; they are
parsed by :mod:`agentadapter.evals` (nothing is interpolated, nothing names a path), their evaluator
specs are built as tenant data (``trusted=False``: no unbounded regular expressions, no unsafe
schemas) and the models their judges and embedders name must be models a tenant may name. Each
distinct content is one version.

An experiment's subjects are the tenant's stored agents and workflows - built by the one
:class:`~agentadapter.service.building.DefinitionBuilder`, at creation (a broken definition is a 422
now) - and models the tenant may name. Starting one creates a run whose single agent is an
:class:`~agentadapter.service.evals_runner.ExperimentAgent` and hands it to the executor, exactly as a
run is started: the credit check, the lease, the audit entry, then ``submit``; so every model call of
the experiment (subjects, judges, embeddings) goes through the tenant's facade tagged with the run,
is metered and charged like a run's, and the operator's run caps (time, steps) bound it. Cancelling
the run cancels the experiment. The Celery executor rebuilds runs from stored agent and workflow
definitions, which an experiment is not, so experiments need the inline executor (a 503 says so).

Continuous evaluation: an experiment created with ``watch`` is attached to its first stored subject;
:func:`check_watched` (called by the server's loop) starts a re-run when that agent or workflow has a
newer version than the one last evaluated, or when ``schedule_s`` has passed since the last start.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.errors import InvalidRequestError
from agentadapter.evals import CaseResult, Comparison, Dataset, ExperimentResult, compare, from_spec, parse_dataset
from agentadapter.evals.dataset import dataset_from_document
from agentadapter.evals.evaluators import model_names
from agentadapter.evals.subjects import AgentSubject, ModelSubject, Subject, WorkflowSubject
from agentadapter.llm.messages import coerce_messages
from agentadapter.orchestrator import RunOptions
from agentadapter.service.building import agent_defaults, builder
from agentadapter.service.common import BuildParts, Caller, ServiceParts, invalid, record
from agentadapter.service.errors import Conflict, InvalidInput, Unavailable
from agentadapter.service.evals_runner import ExperimentAgent, RunSpec
from agentadapter.service.executor import ExecutorUnavailable, RunJob
from agentadapter.service.runs import cancel_run
from agentadapter.service.trust import check_model
from agentadapter.service.workflows import YamlLoader
from agentadapter.store import agents as agent_store
from agentadapter.store import credits as credit_store
from agentadapter.store import evals as eval_store
from agentadapter.store import runs as run_store
from agentadapter.store import tenants, users
from agentadapter.store import workflows as workflow_store
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.evals_models import Dataset as DatasetRow
from agentadapter.store.evals_models import DatasetVersion, Experiment
from agentadapter.store.models import utcnow

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_ITEMS",
    "MAX_REPEAT",
    "DatasetInput",
    "ExperimentRequest",
    "SubjectRef",
    "add_dataset_version",
    "cancel_experiment",
    "check_watched",
    "compare_experiment",
    "create_dataset",
    "create_experiment",
    "dataset_of",
    "delete_dataset",
    "experiment_result",
    "settle_orphans",
    "stored_dataset",
]

MAX_CONCURRENCY = 16
"""Cases an experiment runs at once (each is a model call or an agent run of the tenant)."""
MAX_REPEAT = 10
MAX_ITEMS = 20_000
"""Answers (cases x repetitions x subjects) one experiment may plan."""
DEFAULT_THRESHOLD = 0.05


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset as the API takes it: ``cases`` (and ``evaluators``) as JSON, or ``content`` in ``format``."""

    name: str
    description: str = ""
    cases: Sequence[Any] | None = None
    evaluators: Sequence[Any] = ()
    content: str | None = None
    format: str = "json"


def _check_specs(parts: BuildParts, specs: Sequence[Mapping[str, Any]], param: str) -> None:
    for index, spec in enumerate(specs):
        try:
            from_spec(spec, where=f"{param}[{index}]", trusted=False)
        except InvalidRequestError as exc:
            raise invalid(param, str(exc), code="invalid_evaluator") from exc
    for model in model_names(specs):
        check_model(parts.llm, model, param)


def dataset_of(parts: BuildParts, data: DatasetInput, load_yaml: YamlLoader) -> Dataset:
    """The dataset ``data`` describes, checked as tenant data (a 422 naming the field otherwise).

    YAML content is loaded by ``load_yaml`` (the face's bounded loader for tenant YAML), never by a plain
    YAML load.
    """
    if data.content is not None and data.cases is not None:
        raise invalid("content", "give cases or content, not both", code="two_forms")
    if data.format not in ("json", "yaml", "jsonl", "csv"):
        raise invalid("format", f"unknown format {data.format!r}; use json, yaml, jsonl or csv")
    try:
        if data.content is not None:
            if data.format == "yaml":
                try:
                    document = load_yaml(data.content)
                except yaml.YAMLError as exc:
                    raise invalid("content", f"not valid YAML: {exc}", code="invalid_yaml") from exc
                parsed = dataset_from_document(document, data.name)
            else:
                parsed = parse_dataset(data.content, data.format, name=data.name)  # type: ignore[arg-type]
            dataset = Dataset.of(data.name, parsed.cases, description=data.description or parsed.description,
                                 evaluators=[*parsed.evaluators, *data.evaluators])
        else:
            if not data.cases:
                raise invalid("cases", "a dataset needs cases (or content in a format)", code="missing_cases")
            dataset = Dataset.of(data.name, list(data.cases), description=data.description,
                                 evaluators=list(data.evaluators))
    except InvalidRequestError as exc:
        raise invalid("content" if data.content is not None else "cases", str(exc), code="invalid_dataset") from exc
    _check_specs(parts, dataset.evaluators, "evaluators")
    for case in dataset.cases:
        if isinstance(case.input, list):  # messages: refused now, not as an error in every answer later
            try:
                coerce_messages(case.input)
            except (InvalidRequestError, TypeError, ValueError) as exc:
                raise invalid("cases", f"case {case.id!r}: its input is not a list of messages: {exc}",
                              code="invalid_dataset") from exc
        if case.evaluators:
            _check_specs(parts, case.evaluators, f"cases[{case.id}].evaluators")
    return dataset


def _spec(dataset: Dataset) -> dict[str, Any]:
    return {"evaluators": [dict(e) for e in dataset.evaluators], "cases": [c.to_dict() for c in dataset.cases]}


def stored_dataset(row: DatasetRow, version: DatasetVersion) -> Dataset:
    """The library's dataset of a stored version."""
    spec = version.spec or {}
    return Dataset.of(row.name, list(spec.get("cases") or []), description=row.description,
                      evaluators=list(spec.get("evaluators") or []))


async def create_dataset(session: AsyncSession, parts: BuildParts, caller: Caller, data: DatasetInput,
                         load_yaml: YamlLoader) -> tuple[DatasetRow, DatasetVersion]:
    dataset = dataset_of(parts, data, load_yaml)
    row, version = await eval_store.create_dataset(
        session, caller.tenant_id, name=data.name, description=dataset.description, spec=_spec(dataset),
        content_hash=dataset.version, case_count=len(dataset), created_by=caller.user_id)
    await record(session, caller, "dataset.create", "dataset", row.id,
                 {"name": row.name, "version": 1, "cases": len(dataset), "content_hash": dataset.version})
    await session.commit()
    return row, version


async def add_dataset_version(session: AsyncSession, parts: BuildParts, caller: Caller, dataset_id: uuid.UUID,
                              data: DatasetInput, load_yaml: YamlLoader) -> tuple[DatasetRow, DatasetVersion, bool]:
    """A new version of the dataset (or the existing one with the same content: False)."""
    row = await eval_store.get_dataset(session, caller.tenant_id, dataset_id)
    dataset = dataset_of(parts, DatasetInput(row.name, data.description or row.description, data.cases,
                                             data.evaluators, data.content, data.format), load_yaml)
    version, created = await eval_store.add_dataset_version(
        session, caller.tenant_id, dataset_id, spec=_spec(dataset), content_hash=dataset.version,
        case_count=len(dataset), created_by=caller.user_id)
    if created:
        await record(session, caller, "dataset.version", "dataset", row.id,
                     {"version": version.version, "cases": len(dataset), "content_hash": dataset.version})
    await session.commit()
    return row, version, created


async def delete_dataset(session: AsyncSession, caller: Caller, dataset_id: uuid.UUID) -> None:
    row = await eval_store.get_dataset(session, caller.tenant_id, dataset_id)
    name = row.name
    await eval_store.delete_dataset(session, caller.tenant_id, dataset_id)
    await record(session, caller, "dataset.delete", "dataset", dataset_id, {"name": name})
    await session.commit()


# ---------------------------------------------------------------------------------------- experiments


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """One subject as the API names it: exactly one of ``agent_id``, ``workflow_id``, ``model``."""

    agent_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    model: str | None = None
    name: str | None = None
    instructions: str = ""
    """For a model subject: the system prompt."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.agent_id is not None:
            data.update(kind="agent", id=str(self.agent_id))
        elif self.workflow_id is not None:
            data.update(kind="workflow", id=str(self.workflow_id))
        else:
            data.update(kind="model", model=self.model, instructions=self.instructions)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubjectRef:
        kind = data.get("kind")
        return cls(agent_id=uuid.UUID(data["id"]) if kind == "agent" else None,
                   workflow_id=uuid.UUID(data["id"]) if kind == "workflow" else None,
                   model=data.get("model") if kind == "model" else None, name=data.get("name"),
                   instructions=str(data.get("instructions") or ""))


@dataclass(frozen=True, slots=True)
class ExperimentRequest:
    """What a caller asks of an experiment."""

    dataset_id: uuid.UUID
    subjects: Sequence[SubjectRef]
    dataset_version: int | None = None
    name: str | None = None
    evaluators: Sequence[Any] = ()
    repeat: int = 1
    concurrency: int = 4
    max_cost_usd: float | None = None
    watch: bool = False
    threshold: float | None = None
    schedule_s: int | None = None
    project_id: uuid.UUID | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


async def _defaults(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID | None) -> dict[str, Any]:
    if user_id is None:
        return {}
    return agent_defaults(await users.get_settings(session, tenant_id, user_id))


async def _build_subjects(session: AsyncSession, parts: BuildParts, tenant_id: uuid.UUID, user_id: uuid.UUID | None,
                          refs: Sequence[SubjectRef]) -> tuple[list[Subject], list[dict[str, Any]]]:
    """The runnable subjects and what each was (kind, id, name, version), built through the one builder."""
    build = builder(parts)
    defaults = await _defaults(session, tenant_id, user_id)
    subjects: list[Subject] = []
    described: list[dict[str, Any]] = []
    for index, ref in enumerate(refs):
        param = f"subjects[{index}]"
        given = [v for v in (ref.agent_id, ref.workflow_id, ref.model) if v]
        if len(given) != 1:
            raise invalid(param, "name exactly one of agent_id, workflow_id or model", code="invalid_subject")
        entry = ref.to_dict()
        if ref.agent_id is not None:
            definition = await agent_store.get_agent(session, tenant_id, ref.agent_id)
            if not definition.model and not defaults.get("default_model"):
                raise invalid(param, f"agent {definition.name!r} has no model and the settings have no "
                                     "default_model; set one", code="no_model")
            agent = await build.build_agent(session, tenant_id, definition, defaults)
            subjects.append(AgentSubject(agent, ref.name or definition.name))
            entry.update(name=ref.name or definition.name, version=definition.version)
        elif ref.workflow_id is not None:
            row = await workflow_store.get_workflow(session, tenant_id, ref.workflow_id)
            workflow, agents = await build.build_workflow(session, tenant_id, row, defaults)
            subjects.append(WorkflowSubject(agents, workflow.strategy, name=ref.name or row.name,
                                            options=build.run_options(workflow.options)))
            entry.update(name=ref.name or row.name, version=row.version)
        else:
            assert ref.model is not None
            check_model(parts.llm, ref.model, f"{param}.model")
            subjects.append(ModelSubject(ref.model, ref.name or ref.model, instructions=ref.instructions))
            entry.update(name=ref.name or ref.model)
        described.append(entry)
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise invalid("subjects", f"two subjects share a name ({', '.join(names)}); give them names",
                      code="duplicate_subject")
    return subjects, described


def _check_request(request: ExperimentRequest, cases: int) -> None:
    if not request.subjects:
        raise invalid("subjects", "an experiment needs at least one subject", code="missing_subjects")
    if not 1 <= request.repeat <= MAX_REPEAT:
        raise invalid("repeat", f"repeat is between 1 and {MAX_REPEAT}", code="limit_exceeded")
    if not 1 <= request.concurrency <= MAX_CONCURRENCY:
        raise invalid("concurrency", f"concurrency is between 1 and {MAX_CONCURRENCY}", code="limit_exceeded")
    if request.max_cost_usd is not None and request.max_cost_usd <= 0:
        raise invalid("max_cost_usd", "max_cost_usd must be a positive number of USD")
    planned = cases * request.repeat * len(request.subjects)
    if planned > MAX_ITEMS:
        raise invalid("subjects", f"{cases} cases x {request.repeat} x {len(request.subjects)} subjects is {planned} "
                                  f"answers; at most {MAX_ITEMS} per experiment", code="limit_exceeded")
    if request.threshold is not None and not 0 < request.threshold <= 1:
        raise invalid("threshold", "threshold is a score drop between 0 and 1 (0.05: five points)")
    if request.schedule_s is not None and request.schedule_s < 60:
        raise invalid("schedule_s", "schedule_s is at least 60 seconds")
    if (request.threshold is not None or request.schedule_s is not None) and not request.watch:
        raise invalid("watch", "threshold and schedule_s apply to an attached experiment: set watch: true")
    if request.watch and not any(r.agent_id or r.workflow_id for r in request.subjects):
        raise invalid("watch", "an attached experiment needs a stored agent or workflow among its subjects",
                      code="nothing_to_watch")


def _check_executor(state: ServiceParts) -> None:
    if state.executor.name != "inline":
        raise Unavailable("experiments run in the API server's process, and this server executes runs on "
                          f"{state.executor.name} workers; run experiments on a server with "
                          "AGENTADAPTER_EXECUTOR=inline", code="experiments_need_inline_executor",
                          retry_after_s=60)


async def create_experiment(session: AsyncSession, state: ServiceParts, caller: Caller,
                            request: ExperimentRequest) -> Experiment:
    """Check, store and start an experiment (202: it runs in the background)."""
    _check_executor(state)
    row = await eval_store.get_dataset(session, caller.tenant_id, request.dataset_id)
    version = await eval_store.get_dataset_version(session, caller.tenant_id, row.id, request.dataset_version)
    dataset = stored_dataset(row, version)
    _check_request(request, len(dataset))
    extra = [{"type": e} if isinstance(e, str) else e for e in request.evaluators]
    if any(not isinstance(e, Mapping) for e in extra):
        raise invalid("evaluators", "each evaluator is a type name or an object with a type", code="invalid_evaluator")
    _check_specs(state, extra, "evaluators")
    subjects, described = await _build_subjects(session, state, caller.tenant_id, caller.user_id, request.subjects)
    try:  # the same checks the runner makes (names unique across dataset and extra evaluators)
        names = [from_spec(s, trusted=False).name for s in [*dataset.evaluators, *extra]]
    except InvalidRequestError as exc:
        raise invalid("evaluators", str(exc), code="invalid_evaluator") from exc
    if len(set(names)) != len(names):
        raise invalid("evaluators", f"two evaluators share a name ({', '.join(names)}); name them apart",
                      code="invalid_evaluator")
    watched = next((d for d in described if d["kind"] in ("agent", "workflow")), None) if request.watch else None
    experiment = await eval_store.create_experiment(
        session, caller.tenant_id, name=request.name or f"{row.name} v{version.version}", dataset_id=row.id,
        dataset_version=version.version, subjects=described, evaluators=extra,
        settings={"repeat": request.repeat, "concurrency": request.concurrency, "max_cost_usd": request.max_cost_usd},
        planned=len(dataset) * request.repeat * len(subjects), cause="api", watch=request.watch,
        threshold=(request.threshold if request.threshold is not None else DEFAULT_THRESHOLD) if request.watch
        else None, schedule_s=request.schedule_s, watched_version=watched["version"] if watched else None,
        created_by=caller.user_id, comparison=None, error=None, summary=[],
    )
    await record(session, caller, "experiment.create", "experiment", experiment.id,
                 {"dataset_id": str(row.id), "dataset_version": version.version,
                  "subjects": [d["name"] for d in described], "watch": request.watch})
    await _start(session, state, caller, experiment, dataset, subjects, request.project_id)
    return experiment


async def _start(session: AsyncSession, state: ServiceParts, caller: Caller, experiment: Experiment,
                 dataset: Dataset, subjects: list[Subject], project_id: uuid.UUID | None) -> None:
    """Start ``experiment`` as a run of the executor, as a run is started (credits, lease, audit, submit)."""
    await credit_store.check_can_start(session, caller.tenant_id, required=state.service.credits_required)
    project = await tenants.resolve_project(session, caller.tenant_id, project_id)
    task = f"experiment {experiment.name}: {len(dataset)} cases x {len(subjects)} subjects"
    run = await run_store.create_run(
        session, caller.tenant_id, input=task, project_id=project.id, workflow_name=f"experiment:{experiment.name}",
        created_by=caller.user_id, strategy="sequential", options={"experiment_id": str(experiment.id)})
    for column, value in state.executor.new_run_lease().items():
        setattr(run, column, value)
    experiment.run_id = run.id
    experiment.last_started_at = utcnow()
    settings = experiment.settings or {}
    spec = RunSpec(experiment_id=experiment.id, tenant_id=caller.tenant_id, dataset=dataset, subjects=subjects,
                   evaluators=list(experiment.evaluators or []), repeat=int(settings.get("repeat", 1)),
                   concurrency=int(settings.get("concurrency", 4)), max_cost_usd=settings.get("max_cost_usd"))
    agent = ExperimentAgent(state.db, spec)
    job = RunJob(run.id, caller.tenant_id, project.id, task, {agent.name: agent}, "sequential",
                 builder(state).run_options(RunOptions()), workflow=f"experiment:{experiment.name}")
    await record(session, caller, "run.create", "run", run.id, {"experiment_id": str(experiment.id)})
    await session.commit()
    try:
        await state.executor.submit(job)
    except ExecutorUnavailable as exc:
        await _not_started(session, caller, experiment, run.id, exc.code)
        raise Unavailable(f"{exc}; the experiment was not started, retry in a moment", code=exc.code,
                          retry_after_s=exc.retry_after_s) from exc
    except Exception:
        await _not_started(session, caller, experiment, run.id, "submit_failed")
        raise


async def _not_started(session: AsyncSession, caller: Caller, experiment: Experiment, run_id: uuid.UUID,
                       why: str) -> None:
    if await run_store.discard_unstarted_run(session, caller.tenant_id, run_id):
        await record(session, caller, "run.discard", "run", run_id, {"reason": why})
    await eval_store.finish_experiment(session, experiment, status="failed",
                                       error={"type": "NotStarted", "message": f"the executor did not take it ({why})"})
    await session.commit()


# ------------------------------------------------------------------------------------ continuous evaluation


async def _current_version(session: AsyncSession, tenant_id: uuid.UUID, watched: Mapping[str, Any]) -> int | None:
    try:
        if watched["kind"] == "agent":
            return (await agent_store.get_agent(session, tenant_id, uuid.UUID(watched["id"]))).version
        return (await workflow_store.get_workflow(session, tenant_id, uuid.UUID(watched["id"]))).version
    except RecordNotFound:  # deleted since: nothing to watch any more
        return None


async def settle_orphans(state: ServiceParts) -> int:
    """End as ``failed`` the experiments whose run ended without them (their server process died); how many."""
    async with state.db.write_session() as session:
        orphans = await eval_store.orphaned_experiments(session)
        for experiment in orphans:
            await eval_store.finish_experiment(session, experiment, status="failed", error={
                "type": "ServerLost", "message": "the experiment's run ended before the experiment did (its server "
                                                 "process stopped); start it again"})
        await session.commit()
    return len(orphans)


async def check_watched(state: ServiceParts) -> list[uuid.UUID]:
    """Start the re-runs that attached experiments are due (a new version, or their schedule); their ids.

    Experiments a dead process left ``running`` are ended first, so they do not hold up their chain."""
    await settle_orphans(state)
    started: list[uuid.UUID] = []
    async with state.db.session() as session:
        watched = await eval_store.watched_experiments(session)
    for parent in watched:
        async with state.db.write_session() as session:
            child = await _maybe_rerun(session, state, parent.tenant_id, parent.id)
        if child is not None:
            started.append(child)
    return started


async def _maybe_rerun(session: AsyncSession, state: ServiceParts, tenant_id: uuid.UUID,
                       parent_id: uuid.UUID) -> uuid.UUID | None:
    parent = await eval_store.get_experiment(session, tenant_id, parent_id)
    target = next((s for s in parent.subjects if s.get("kind") in ("agent", "workflow")), None)
    if not parent.watch or target is None or parent.status in ("queued", "running"):
        return None
    version = await _current_version(session, tenant_id, target)
    if version is None:
        return None
    cause: str | None = None
    if parent.watched_version is None or version > parent.watched_version:
        cause = "new_version"
    elif parent.schedule_s and parent.last_started_at is not None and (
            (utcnow() - parent.last_started_at).total_seconds() >= parent.schedule_s):
        cause = "schedule"
    if cause is None:
        return None
    running = await eval_store.list_experiments(session, tenant_id, parent_id=parent.id, limit=1)
    if running.items and running.items[0].status in ("queued", "running"):
        return None  # one re-run at a time per attached experiment
    caller = Caller.system(tenant_id, "continuous-evaluation")
    row = await eval_store.get_dataset(session, tenant_id, parent.dataset_id)
    dataset_version = await eval_store.get_dataset_version(session, tenant_id, row.id, parent.dataset_version)
    dataset = stored_dataset(row, dataset_version)
    refs = [SubjectRef.from_dict(s) for s in parent.subjects]
    parent.watched_version = version
    parent.last_started_at = utcnow()
    try:
        subjects, described = await _build_subjects(session, state, tenant_id, parent.created_by, refs)
    except InvalidInput as exc:
        # The new version cannot be built: that is the finding, recorded as a failed re-run.
        child = await eval_store.create_experiment(
            session, tenant_id, name=parent.name, dataset_id=parent.dataset_id, dataset_version=parent.dataset_version,
            subjects=parent.subjects, evaluators=parent.evaluators, settings=parent.settings, planned=0, cause=cause,
            parent_id=parent.id, watched_version=version, created_by=parent.created_by, summary=[])
        await eval_store.finish_experiment(session, child, status="failed",
                                           error={"type": "InvalidInput", "message": str(exc)})
        await record(session, caller, "experiment.rerun", "experiment", child.id,
                     {"parent_id": str(parent.id), "cause": cause, "version": version, "error": str(exc)})
        await session.commit()
        return child.id
    child = await eval_store.create_experiment(
        session, tenant_id, name=parent.name, dataset_id=parent.dataset_id, dataset_version=parent.dataset_version,
        subjects=described, evaluators=parent.evaluators, settings=parent.settings, planned=parent.planned,
        cause=cause, parent_id=parent.id, watched_version=version, threshold=parent.threshold,
        created_by=parent.created_by, summary=[])
    await record(session, caller, "experiment.rerun", "experiment", child.id,
                 {"parent_id": str(parent.id), "cause": cause, "version": version})
    await _start(session, state, caller, child, dataset, subjects, None)
    return child.id


# ------------------------------------------------------------------------------------------------ reading


async def experiment_result(session: AsyncSession, tenant_id: uuid.UUID,
                            experiment_id: uuid.UUID) -> tuple[Experiment, ExperimentResult]:
    """The stored experiment and its results as the library's :class:`ExperimentResult`, in dataset order."""
    experiment = await eval_store.get_experiment(session, tenant_id, experiment_id)
    version = await eval_store.get_dataset_version(session, tenant_id, experiment.dataset_id,
                                                   experiment.dataset_version)
    order = {str(c.get("id")): i for i, c in enumerate((version.spec or {}).get("cases") or [])}
    subjects = {str(s.get("name")): i for i, s in enumerate(experiment.subjects)}
    rows = await eval_store.list_results(session, tenant_id, experiment_id)
    rows.sort(key=lambda r: (order.get(r.case_id, len(order)), subjects.get(r.subject, 0), r.repetition))
    results = [CaseResult.from_dict({
        "subject": r.subject, "case_id": r.case_id, "repetition": r.repetition, "output": r.output, "text": r.text,
        "scores": r.scores, "tool_calls": r.tool_calls, "usage": r.usage, "cost_usd": r.cost_usd,
        "eval_cost_usd": r.eval_cost_usd, "latency_ms": r.latency_ms, "error": r.error}) for r in rows]
    row = await eval_store.get_dataset(session, tenant_id, experiment.dataset_id)
    return experiment, ExperimentResult(
        name=experiment.name, dataset=row.name, dataset_version=version.content_hash,
        subjects=[{"name": s.get("name"), "kind": s.get("kind")} for s in experiment.subjects], results=results,
        repeat=int((experiment.settings or {}).get("repeat", 1)), planned=experiment.planned,
        stopped=experiment.stopped, id=str(experiment.id))


async def compare_experiment(session: AsyncSession, tenant_id: uuid.UUID, experiment_id: uuid.UUID, a: str | None,
                             b: str | None, confidence: float = 0.95) -> Comparison:
    """Subject ``b`` against ``a`` (default: the second against the first) on the experiment's results."""
    experiment, result = await experiment_result(session, tenant_id, experiment_id)
    names = result.subject_names
    if len(names) < 2:
        raise invalid("experiment_id", "this experiment has one subject; a comparison needs two",
                      code="nothing_to_compare")
    if experiment.status != "completed":
        raise Conflict(f"experiment {experiment_id} is {experiment.status}; compare it once it has completed",
                       code="experiment_not_completed")
    try:
        return compare(result, a or names[0], b or names[1], confidence=confidence)
    except InvalidRequestError as exc:
        raise invalid("a" if (a or names[0]) not in names else "b", str(exc), code="unknown_subject") from exc


async def cancel_experiment(session: AsyncSession, state: ServiceParts, caller: Caller,
                            experiment_id: uuid.UUID) -> Experiment:
    """Cancel the experiment's run (it records ``cancelled`` as it stops)."""
    experiment = await eval_store.get_experiment(session, caller.tenant_id, experiment_id)
    if experiment.status not in ("queued", "running") or experiment.run_id is None:
        raise Conflict(f"experiment {experiment_id} has already ended ({experiment.status}); there is nothing to "
                       "cancel", code="experiment_finished", param="experiment_id")
    await cancel_run(session, state, caller, experiment.run_id)
    await record(session, caller, "experiment.cancel", "experiment", experiment_id, {"run_id": str(experiment.run_id)})
    await session.commit()
    return experiment
