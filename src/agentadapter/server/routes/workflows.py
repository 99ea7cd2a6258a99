"""``/v1/workflows``: create (JSON or YAML), list, get, update, delete, and run."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from agentadapter.server.deps import (
    PageDep,
    RequestId,
    RunsWrite,
    SessionDep,
    StateDep,
    WorkflowsRead,
    WorkflowsWrite,
    WriteSessionDep,
)
from agentadapter.server.payloads import load_untrusted_yaml
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import (
    ListPublic,
    RunPublic,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowRun,
    WorkflowUpdate,
    error_responses,
)
from agentadapter.service import runs as run_service
from agentadapter.service import workflows as service
from agentadapter.service.common import Caller, invalid
from agentadapter.service.runs import RunRequest
from agentadapter.service.workflows import WorkflowDraft
from agentadapter.store import workflows as store

router = APIRouter(prefix=API_PREFIX + "/workflows", tags=["workflows"])


def _draft(data: WorkflowCreate | WorkflowUpdate) -> WorkflowDraft:
    return WorkflowDraft(name=data.name, description=data.description, spec=data.spec, yaml=data.yaml)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkflowPublic, responses=error_responses(409))
async def create_workflow(data: WorkflowCreate, principal: WorkflowsWrite, session: WriteSessionDep,
                          state: StateDep, request_id: RequestId, response: Response) -> WorkflowPublic:
    """Store a workflow (docs/workflows.md's format), checked as the orchestrator would load it."""
    row = await service.create_workflow(session, state, Caller(principal, request_id), _draft(data),
                                        load_yaml=load_untrusted_yaml)
    response.headers["Location"] = f"/v1/workflows/{row.id}"
    return WorkflowPublic.model_validate(row)


@router.get("", response_model=ListPublic[WorkflowPublic])
async def list_workflows(principal: WorkflowsRead, session: SessionDep, page: PageDep) -> ListPublic[WorkflowPublic]:
    found = await store.list_workflows(session, principal.tenant_id, limit=page.limit, cursor=page.cursor)
    return ListPublic[WorkflowPublic](data=[WorkflowPublic.model_validate(w) for w in found.items],
                                      has_more=found.has_more, next_cursor=found.next_cursor)


@router.get("/{workflow_id}", response_model=WorkflowPublic)
async def get_workflow(workflow_id: uuid.UUID, principal: WorkflowsRead, session: SessionDep) -> WorkflowPublic:
    return WorkflowPublic.model_validate(await store.get_workflow(session, principal.tenant_id, workflow_id))


@router.patch("/{workflow_id}", response_model=WorkflowPublic, responses=error_responses(409))
async def update_workflow(workflow_id: uuid.UUID, data: WorkflowUpdate, principal: WorkflowsWrite,
                          session: WriteSessionDep, state: StateDep, request_id: RequestId) -> WorkflowPublic:
    row = await service.update_workflow(session, state, Caller(principal, request_id), workflow_id, _draft(data),
                                        load_yaml=load_untrusted_yaml)
    return WorkflowPublic.model_validate(row)


@router.put("/{workflow_id}", response_model=WorkflowPublic, responses=error_responses(409))
async def replace_workflow(workflow_id: uuid.UUID, data: WorkflowCreate, principal: WorkflowsWrite,
                           session: WriteSessionDep, state: StateDep, request_id: RequestId) -> WorkflowPublic:
    """Replace name, description and spec."""
    if data.spec is None and data.yaml is None:
        raise invalid("spec", "give the workflow as spec (JSON) or as yaml (text)", code="missing_spec")
    row = await service.update_workflow(session, state, Caller(principal, request_id), workflow_id, _draft(data),
                                        load_yaml=load_untrusted_yaml)
    return WorkflowPublic.model_validate(row)


@router.delete("/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(workflow_id: uuid.UUID, principal: WorkflowsWrite, session: WriteSessionDep,
                          request_id: RequestId) -> Response:
    await service.delete_workflow(session, Caller(principal, request_id), workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{workflow_id}/run", status_code=status.HTTP_202_ACCEPTED, response_model=RunPublic,
             responses=error_responses(402))
async def run_workflow(workflow_id: uuid.UUID, principal: RunsWrite, session: WriteSessionDep, state: StateDep,
                       request_id: RequestId, response: Response, data: WorkflowRun | None = None) -> RunPublic:
    """Start a run of the workflow (202; follow it at /v1/runs/{id})."""
    data = data or WorkflowRun()
    run = await run_service.start_workflow_run(
        session, state, Caller(principal, request_id), workflow_id,
        RunRequest(input=data.input, project_id=data.project_id,
                   limits=data.limits.model_dump() if data.limits else None))
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return RunPublic.model_validate(run)
