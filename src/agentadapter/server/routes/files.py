"""``/v1/files``: upload (multipart), list, get, delete - a tenant's files, deduplicated by content."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile, status
from pydantic import Field

from agentadapter.server.auth import Principal
from agentadapter.server.deps import PageDep, RequestId, SessionDep, StateDep, WriteSessionDep, require
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import ListPublic, ResponseModel, error_responses
from agentadapter.server.state import AppState
from agentadapter.service import files as service
from agentadapter.service.common import Caller
from agentadapter.service.knowledge import Knowledge
from agentadapter.store import files as store

__all__ = ["FilePublic", "FilesRead", "FilesWrite", "knowledge_of_state", "router"]

router = APIRouter(prefix=API_PREFIX + "/files", tags=["files"])

FilesRead = Annotated[Principal, Depends(require("files", "read"))]
FilesWrite = Annotated[Principal, Depends(require("files", "write"))]


class FilePublic(ResponseModel):
    object: Literal["file"] = "file"
    id: uuid.UUID
    filename: str
    media_type: str = Field(description="Detected from the content, not the name.")
    size_bytes: int
    sha256: str
    metadata: dict[str, Any] = Field(validation_alias="meta")
    created_at: datetime


def knowledge_of_state(state: AppState) -> Knowledge:
    if state.knowledge is None:  # pragma: no cover - the lifespan builds it
        raise HTTPProblem(503, "the knowledge service is not running", code="knowledge_unavailable")
    return state.knowledge


@router.post("", status_code=status.HTTP_201_CREATED, response_model=FilePublic,
             responses={200: {"model": FilePublic, "description": "The same bytes were uploaded before: that file."},
                        **error_responses(503)})
async def upload_file(file: Annotated[UploadFile, File(description="The file (PDF, DOCX, HTML, Markdown, text, "
                                                                   "CSV, JSON).")],
                      principal: FilesWrite, session: WriteSessionDep, state: StateDep, request_id: RequestId,
                      response: Response) -> FilePublic:
    """Upload a file; the same bytes uploaded again answer 200 with the file there already."""
    knowledge = knowledge_of_state(state)
    data = await file.read(knowledge.settings.files_max_bytes + 1)  # one byte more tells "too large"
    upload = await service.upload_file(session, knowledge, Caller(principal, request_id), filename=file.filename,
                                       data=data)
    response.headers["Location"] = f"/v1/files/{upload.file.id}"
    if not upload.created:
        response.status_code = status.HTTP_200_OK
    return FilePublic.model_validate(upload.file)


@router.get("", response_model=ListPublic[FilePublic])
async def list_files(principal: FilesRead, session: SessionDep, page: PageDep,
                     media_type: Annotated[str | None, Query(max_length=100)] = None) -> ListPublic[FilePublic]:
    """The tenant's files, newest first."""
    found = await store.list_files(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                   media_type=media_type)
    return ListPublic[FilePublic](data=[FilePublic.model_validate(f) for f in found.items], has_more=found.has_more,
                                  next_cursor=found.next_cursor)


@router.get("/{file_id}", response_model=FilePublic)
async def get_file(file_id: uuid.UUID, principal: FilesRead, session: SessionDep) -> FilePublic:
    return FilePublic.model_validate(await store.get_file(session, principal.tenant_id, file_id))


@router.delete("/{file_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(file_id: uuid.UUID, principal: FilesWrite, session: WriteSessionDep, state: StateDep,
                      request_id: RequestId) -> Response:
    """Delete the file, from every archive too."""
    await service.delete_file(session, knowledge_of_state(state), Caller(principal, request_id), file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
