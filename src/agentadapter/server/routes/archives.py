"""``/v1/archives``: archives of files, their files and ingestion status, re-indexing, and hybrid search."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, Field

from agentadapter.server.auth import Principal
from agentadapter.server.deps import PageDep, RequestId, SessionDep, StateDep, WriteSessionDep, require
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.routes.files import knowledge_of_state
from agentadapter.server.schemas import ListPublic, RequestModel, ResponseModel, error_responses
from agentadapter.service import archives as service
from agentadapter.service.archives import MAX_SEARCH_RESULTS
from agentadapter.service.common import Caller
from agentadapter.store import archives as store

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX + "/archives", tags=["archives"])

ArchivesRead = Annotated[Principal, Depends(require("archives", "read"))]
ArchivesWrite = Annotated[Principal, Depends(require("archives", "write"))]


class ArchiveCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="Unique in the tenant; what settings' rag_archives and workflows name.")
    description: str = Field(default="", max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ArchivePublic(ResponseModel):
    object: Literal["archive"] = "archive"
    id: uuid.UUID
    name: str
    description: str
    embedding_model: str
    dimensions: int | None
    metadata: dict[str, Any] = Field(validation_alias="meta")
    created_at: datetime
    updated_at: datetime


class ArchiveFilesAdd(RequestModel):
    file_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class ArchiveFilePublic(BaseModel):
    object: Literal["archive.file"] = "archive.file"
    file_id: uuid.UUID
    filename: str
    media_type: str
    status: str = Field(description="queued, processing, ready or failed.")
    error: dict[str, Any] | None = Field(description="{code, message} of a failed ingestion.")
    chunk_count: int
    embedding_model: str | None
    updated_at: datetime


class ArchiveSearch(RequestModel):
    query: str = Field(min_length=1, max_length=4000)
    max_results: int = Field(default=8, ge=1, le=MAX_SEARCH_RESULTS)
    file_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000, description="Only these files.")
    media_types: list[str] | None = Field(default=None, max_length=20, description="Only files of these types.")


class SearchHitPublic(BaseModel):
    object: Literal["search.hit"] = "search.hit"
    chunk_id: int
    score: float = Field(description="Reciprocal-rank fusion of the vector and keyword rankings.")
    archive_id: uuid.UUID
    archive: str
    file_id: uuid.UUID
    filename: str
    media_type: str
    text: str
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    vector_rank: int | None
    keyword_rank: int | None


class SearchResults(BaseModel):
    object: Literal["list"] = "list"
    query: str
    data: list[SearchHitPublic]


class Reindexed(BaseModel):
    object: Literal["archive.reindex"] = "archive.reindex"
    archive_id: uuid.UUID
    embedding_model: str
    queued: int


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ArchivePublic, responses=error_responses(409))
async def create_archive(data: ArchiveCreate, principal: ArchivesWrite, session: WriteSessionDep, state: StateDep,
                         request_id: RequestId, response: Response) -> ArchivePublic:
    archive = await service.create_archive(session, knowledge_of_state(state), Caller(principal, request_id),
                                           name=data.name, description=data.description, metadata=data.metadata)
    response.headers["Location"] = f"/v1/archives/{archive.id}"
    return ArchivePublic.model_validate(archive)


@router.get("", response_model=ListPublic[ArchivePublic])
async def list_archives(principal: ArchivesRead, session: SessionDep, page: PageDep) -> ListPublic[ArchivePublic]:
    found = await store.list_archives(session, principal.tenant_id, limit=page.limit, cursor=page.cursor)
    return ListPublic[ArchivePublic](data=[ArchivePublic.model_validate(a) for a in found.items],
                                     has_more=found.has_more, next_cursor=found.next_cursor)


@router.get("/{archive_id}", response_model=ArchivePublic)
async def get_archive(archive_id: uuid.UUID, principal: ArchivesRead, session: SessionDep) -> ArchivePublic:
    return ArchivePublic.model_validate(await store.get_archive(session, principal.tenant_id, archive_id))


@router.delete("/{archive_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_archive(archive_id: uuid.UUID, principal: ArchivesWrite, session: WriteSessionDep,
                         request_id: RequestId) -> Response:
    """Delete the archive and its index; its files stay."""
    await service.delete_archive(session, Caller(principal, request_id), archive_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _file_public(pair: tuple[Any, Any]) -> ArchiveFilePublic:
    row, stored = pair
    return ArchiveFilePublic(file_id=row.file_id, filename=stored.filename, media_type=stored.media_type,
                             status=row.status, error=row.error, chunk_count=row.chunk_count,
                             embedding_model=row.embedding_model, updated_at=row.updated_at)


@router.get("/{archive_id}/files", response_model=ListPublic[ArchiveFilePublic])
async def list_archive_files(archive_id: uuid.UUID, principal: ArchivesRead,
                             session: SessionDep) -> ListPublic[ArchiveFilePublic]:
    """The archive's files and how far their ingestion got, oldest first."""
    await store.get_archive(session, principal.tenant_id, archive_id)
    pairs = await store.archive_files(session, principal.tenant_id, archive_id)
    return ListPublic[ArchiveFilePublic](data=[_file_public(p) for p in pairs], has_more=False, next_cursor=None)


@router.post("/{archive_id}/files", status_code=status.HTTP_202_ACCEPTED,
             response_model=ListPublic[ArchiveFilePublic])
async def add_archive_files(archive_id: uuid.UUID, data: ArchiveFilesAdd, principal: ArchivesWrite,
                            session: WriteSessionDep, state: StateDep,
                            request_id: RequestId) -> ListPublic[ArchiveFilePublic]:
    """Add uploaded files; new ones are ingested in the background (watch their status)."""
    caller = Caller(principal, request_id)
    await service.add_files(session, knowledge_of_state(state), caller, archive_id, data.file_ids)
    wanted = set(data.file_ids)
    pairs = [p for p in await store.archive_files(session, principal.tenant_id, archive_id) if p[0].file_id in wanted]
    return ListPublic[ArchiveFilePublic](data=[_file_public(p) for p in pairs], has_more=False, next_cursor=None)


@router.delete("/{archive_id}/files/{file_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_archive_file(archive_id: uuid.UUID, file_id: uuid.UUID, principal: ArchivesWrite,
                              session: WriteSessionDep, request_id: RequestId) -> Response:
    """Take the file out of the archive (the file itself stays)."""
    await service.remove_file(session, Caller(principal, request_id), archive_id, file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{archive_id}/reindex", status_code=status.HTTP_202_ACCEPTED, response_model=Reindexed)
async def reindex_archive(archive_id: uuid.UUID, principal: ArchivesWrite, session: WriteSessionDep,
                          state: StateDep, request_id: RequestId) -> Reindexed:
    """Ingest every file again with the embedding model configured now."""
    knowledge = knowledge_of_state(state)
    queued = await service.reindex_archive(session, knowledge, Caller(principal, request_id), archive_id)
    return Reindexed(archive_id=archive_id, embedding_model=knowledge.settings.embedding_model, queued=queued)


@router.post("/{archive_id}/search", response_model=SearchResults, responses=error_responses(503))
async def search_archive(archive_id: uuid.UUID, data: ArchiveSearch, principal: ArchivesRead,
                         session: SessionDep, state: StateDep) -> SearchResults:
    """Hybrid search (vectors and keywords, fused by reciprocal rank) of the archive's ready files."""
    archive = await store.get_archive(session, principal.tenant_id, archive_id)
    hits = await service.search_archives(knowledge_of_state(state), principal.tenant_id, [archive], data.query,
                                         k=data.max_results, file_ids=data.file_ids, media_types=data.media_types)
    return SearchResults(query=data.query, data=[SearchHitPublic(**hit.to_dict()) for hit in hits])
