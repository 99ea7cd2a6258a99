"""``/v1/experiments``: start one (it runs in the background as a run), list, get (with results), its
results, the A/B comparison of two subjects, the export as JSON or CSV, and cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from agentadapter.evals import to_csv, to_json
from agentadapter.server.auth import Principal
from agentadapter.server.deps import PageDep, RequestId, SessionDep, StateDep, WriteSessionDep, require
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import ListPublic, error_responses
from agentadapter.server.schemas.evals import (
    ExperimentCompare,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentResultPublic,
)
from agentadapter.service import evals as service
from agentadapter.service.common import Caller
from agentadapter.service.evals import ExperimentRequest, SubjectRef
from agentadapter.store import evals as store

router = APIRouter(prefix=API_PREFIX + "/experiments", tags=["experiments"])

ExperimentsRead = Annotated[Principal, Depends(require("experiments", "read"))]
ExperimentsWrite = Annotated[Principal, Depends(require("experiments", "write"))]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ExperimentPublic,
             responses=error_responses(402, 404, 409, 503))
async def create_experiment(data: ExperimentCreate, principal: ExperimentsWrite, session: WriteSessionDep,
                            state: StateDep, request_id: RequestId, response: Response) -> ExperimentPublic:
    """Run a dataset against stored agents, workflows or models; it runs in the background as a run."""
    request = ExperimentRequest(
        dataset_id=data.dataset_id, dataset_version=data.dataset_version, name=data.name,
        subjects=[SubjectRef(s.agent_id, s.workflow_id, s.model, s.name, s.instructions) for s in data.subjects],
        evaluators=data.evaluators, repeat=data.repeat, concurrency=data.concurrency, max_cost_usd=data.max_cost_usd,
        watch=data.watch, threshold=data.threshold, schedule_s=data.schedule_s, project_id=data.project_id)
    experiment = await service.create_experiment(session, state, Caller(principal, request_id), request)
    response.headers["Location"] = f"/v1/experiments/{experiment.id}"
    return ExperimentPublic.model_validate(experiment)


@router.get("", response_model=ListPublic[ExperimentPublic])
async def list_experiments(
    principal: ExperimentsRead, session: SessionDep, page: PageDep,
    dataset_id: uuid.UUID | None = None,
    parent_id: Annotated[uuid.UUID | None, Query(description="Re-runs of this attached experiment.")] = None,
    regressed: Annotated[bool | None, Query(description="Only re-runs that regressed (true) or not.")] = None,
) -> ListPublic[ExperimentPublic]:
    """The tenant's experiments, newest first."""
    found = await store.list_experiments(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                         dataset_id=dataset_id, parent_id=parent_id, regressed=regressed)
    return ListPublic[ExperimentPublic](data=[ExperimentPublic.model_validate(e) for e in found.items],
                                        has_more=found.has_more, next_cursor=found.next_cursor)


class ExperimentWithResults(ExperimentPublic):
    results: list[ExperimentResultPublic] | None = None


@router.get("/{experiment_id}", response_model=ExperimentWithResults)
async def get_experiment(
    experiment_id: uuid.UUID, principal: ExperimentsRead, session: SessionDep,
    results: Annotated[bool, Query(description="Include every case result.")] = False,
) -> ExperimentWithResults:
    experiment = await store.get_experiment(session, principal.tenant_id, experiment_id)
    public = ExperimentWithResults.model_validate(experiment)
    if results:
        rows = await store.list_results(session, principal.tenant_id, experiment_id)
        public.results = [ExperimentResultPublic.model_validate(r) for r in rows]
    return public


@router.get("/{experiment_id}/results", response_model=ListPublic[ExperimentResultPublic])
async def list_results(
    experiment_id: uuid.UUID, principal: ExperimentsRead, session: SessionDep,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ListPublic[ExperimentResultPublic]:
    """The experiment's case results, a page at a time (``offset`` and ``limit``)."""
    await store.get_experiment(session, principal.tenant_id, experiment_id)
    rows = await store.list_results(session, principal.tenant_id, experiment_id, subject=subject, limit=limit + 1,
                                    offset=offset)
    return ListPublic[ExperimentResultPublic](data=[ExperimentResultPublic.model_validate(r) for r in rows[:limit]],
                                              has_more=len(rows) > limit, next_cursor=None)


@router.get("/{experiment_id}/comparison", response_model=ExperimentCompare, responses=error_responses(409))
async def comparison(
    experiment_id: uuid.UUID, principal: ExperimentsRead, session: SessionDep,
    a: Annotated[str | None, Query(max_length=200, description="The baseline subject (default: the first).")] = None,
    b: Annotated[str | None, Query(max_length=200, description="The candidate (default: the second).")] = None,
    confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
) -> ExperimentCompare:
    """B against A per metric: paired difference, bootstrap interval, wins/losses/ties, cost and latency."""
    found = await service.compare_experiment(session, principal.tenant_id, experiment_id, a, b, confidence)
    return ExperimentCompare.model_validate(found.to_dict())


@router.get("/{experiment_id}/export", responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
async def export(experiment_id: uuid.UUID, principal: ExperimentsRead, session: SessionDep,
                 format: Literal["json", "csv"] = "json") -> Response:
    """The whole result as JSON, or one row per case result as CSV."""
    _, result = await service.experiment_result(session, principal.tenant_id, experiment_id)
    if format == "csv":
        return Response(to_csv(result), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="experiment-{experiment_id}.csv"'})
    return Response(to_json(result, indent=None), media_type="application/json")


@router.post("/{experiment_id}/cancel", response_model=ExperimentPublic, responses=error_responses(409))
async def cancel(experiment_id: uuid.UUID, principal: ExperimentsWrite, session: WriteSessionDep, state: StateDep,
                 request_id: RequestId) -> ExperimentPublic:
    """Cancel a queued or running experiment (its run); it records ``cancelled`` as it stops."""
    experiment = await service.cancel_experiment(session, state, Caller(principal, request_id), experiment_id)
    return ExperimentPublic.model_validate(experiment)
