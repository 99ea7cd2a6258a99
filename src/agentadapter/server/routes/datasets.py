"""``/v1/datasets``: create (cases as JSON, or YAML / JSONL / CSV text), list, get, delete, and versions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from agentadapter.server.auth import Principal
from agentadapter.server.deps import MAX_DB_INT, PageDep, RequestId, SessionDep, StateDep, WriteSessionDep, require
from agentadapter.server.payloads import load_untrusted_yaml
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import ListPublic, error_responses
from agentadapter.server.schemas.evals import (
    DatasetCreate,
    DatasetPublic,
    DatasetVersionCreate,
    DatasetVersionPublic,
)
from agentadapter.service import evals as service
from agentadapter.service.common import Caller
from agentadapter.service.evals import DatasetInput
from agentadapter.store import evals as store
from agentadapter.store.evals_models import DatasetVersion

router = APIRouter(prefix=API_PREFIX + "/datasets", tags=["datasets"])

DatasetsRead = Annotated[Principal, Depends(require("datasets", "read"))]
DatasetsWrite = Annotated[Principal, Depends(require("datasets", "write"))]


def _input(data: DatasetVersionCreate, name: str) -> DatasetInput:
    return DatasetInput(name=name, description=data.description, cases=data.cases, evaluators=data.evaluators,
                        content=data.content, format=data.format)


def _version(row: DatasetVersion, *, cases: bool) -> DatasetVersionPublic:
    public = DatasetVersionPublic.model_validate(row)
    if cases:
        public.cases = list((row.spec or {}).get("cases") or [])
        public.evaluators = list((row.spec or {}).get("evaluators") or [])
    return public


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetPublic, responses=error_responses(409))
async def create_dataset(data: DatasetCreate, principal: DatasetsWrite, session: WriteSessionDep, state: StateDep,
                         request_id: RequestId, response: Response) -> DatasetPublic:
    """Store a dataset and its version 1; its evaluators and the models they call are checked first."""
    row, _ = await service.create_dataset(session, state, Caller(principal, request_id), _input(data, data.name),
                                          load_untrusted_yaml)
    response.headers["Location"] = f"/v1/datasets/{row.id}"
    return DatasetPublic.model_validate(row)


@router.get("", response_model=ListPublic[DatasetPublic])
async def list_datasets(principal: DatasetsRead, session: SessionDep, page: PageDep) -> ListPublic[DatasetPublic]:
    """The tenant's datasets, newest first."""
    found = await store.list_datasets(session, principal.tenant_id, limit=page.limit, cursor=page.cursor)
    return ListPublic[DatasetPublic](data=[DatasetPublic.model_validate(d) for d in found.items],
                                     has_more=found.has_more, next_cursor=found.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetPublic)
async def get_dataset(dataset_id: uuid.UUID, principal: DatasetsRead, session: SessionDep) -> DatasetPublic:
    return DatasetPublic.model_validate(await store.get_dataset(session, principal.tenant_id, dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_dataset(dataset_id: uuid.UUID, principal: DatasetsWrite, session: WriteSessionDep,
                         request_id: RequestId) -> Response:
    """Delete a dataset, its versions and its experiments."""
    await service.delete_dataset(session, Caller(principal, request_id), dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{dataset_id}/versions", response_model=ListPublic[DatasetVersionPublic])
async def list_versions(
    dataset_id: uuid.UUID, principal: DatasetsRead, session: SessionDep,
    cases: Annotated[bool, Query(description="Include each version's cases.")] = False,
) -> ListPublic[DatasetVersionPublic]:
    """Every version of the dataset, newest first."""
    versions = await store.list_dataset_versions(session, principal.tenant_id, dataset_id)
    return ListPublic[DatasetVersionPublic](data=[_version(v, cases=cases) for v in versions], has_more=False,
                                            next_cursor=None)


@router.post("/{dataset_id}/versions", status_code=status.HTTP_201_CREATED, response_model=DatasetVersionPublic,
             responses={200: {"description": "A version with the same content exists: that one."},
                        **error_responses(409)})
async def add_version(dataset_id: uuid.UUID, data: DatasetVersionCreate, principal: DatasetsWrite,
                      session: WriteSessionDep, state: StateDep, request_id: RequestId,
                      response: Response) -> DatasetVersionPublic:
    """A new version with these cases (the same content as an existing version gives that version, 200)."""
    row, version, created = await service.add_dataset_version(
        session, state, Caller(principal, request_id), dataset_id, _input(data, ""), load_untrusted_yaml)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/datasets/{row.id}/versions/{version.version}"
    return _version(version, cases=False)


@router.get("/{dataset_id}/versions/{version}", response_model=DatasetVersionPublic)
async def get_version(dataset_id: uuid.UUID, version: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
                      principal: DatasetsRead, session: SessionDep) -> DatasetVersionPublic:
    """One version, with its cases and evaluators."""
    return _version(await store.get_dataset_version(session, principal.tenant_id, dataset_id, version), cases=True)
