"""Archives: create, delete, add and remove files, re-index, search - audited, within the caller's tenant.

An archive is embedded with the operator's embedding model (``AGENTADAPTER_EMBEDDING_MODEL``) as it is
when the archive is made; :func:`reindex_archive` queues every file again with the model configured now
(after the operator changed it). Adding files queues them for ingestion in the background; their status
(``queued``, ``processing``, ``ready``, ``failed`` with the error) is read from ``GET
/v1/archives/{id}/files``. Searching names archives of the caller's tenant only; another tenant's
archive is "not found", as if it did not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.llm.errors import AgentAdapterError
from agentadapter.service.common import Caller, invalid, record
from agentadapter.service.errors import Unavailable
from agentadapter.service.knowledge import Knowledge, SearchHit
from agentadapter.store import archives as archive_store
from agentadapter.store import files as file_store
from agentadapter.store.files_models import Archive, ArchiveFile

__all__ = [
    "MAX_SEARCH_RESULTS",
    "add_files",
    "create_archive",
    "delete_archive",
    "reindex_archive",
    "remove_file",
    "resolve_archives",
    "search_archives",
]

MAX_SEARCH_RESULTS = 50


async def create_archive(session: AsyncSession, knowledge: Knowledge, caller: Caller, *, name: str,
                         description: str = "", metadata: Mapping[str, Any] | None = None) -> Archive:
    archive = await archive_store.create_archive(
        session, caller.tenant_id, name=name, description=description,
        embedding_model=knowledge.settings.embedding_model, chunk_max_tokens=knowledge.chunking.max_tokens,
        chunk_overlap_tokens=knowledge.chunking.overlap_tokens, meta=dict(metadata or {}),
        created_by=caller.user_id)
    await record(session, caller, "archive.create", "archive", archive.id,
                 {"name": name, "embedding_model": archive.embedding_model})
    await session.commit()
    return archive


async def delete_archive(session: AsyncSession, caller: Caller, archive_id: uuid.UUID) -> None:
    """Delete the archive and its chunks (its files stay, in the tenant's files and other archives)."""
    archive = await archive_store.delete_archive(session, caller.tenant_id, archive_id)
    await record(session, caller, "archive.delete", "archive", archive_id, {"name": archive.name})
    await session.commit()


async def add_files(session: AsyncSession, knowledge: Knowledge, caller: Caller, archive_id: uuid.UUID,
                    file_ids: Sequence[uuid.UUID], *, enqueue: bool = True) -> list[ArchiveFile]:
    """Put the tenant's files in the archive and queue the new ones for ingestion (in the background unless
    ``enqueue`` is False: the caller ingests them); returns each membership."""
    await archive_store.get_archive(session, caller.tenant_id, archive_id)
    for index, file_id in enumerate(file_ids):
        try:
            await file_store.get_file(session, caller.tenant_id, file_id)
        except AgentAdapterError as exc:
            raise invalid(f"file_ids[{index}]", f"no file {file_id} in this tenant; upload it first (POST /v1/files)",
                          code="unknown_file") from exc
    rows: list[ArchiveFile] = []
    new: list[uuid.UUID] = []
    for file_id in dict.fromkeys(file_ids):
        row, created = await archive_store.add_file(session, caller.tenant_id, archive_id, file_id)
        rows.append(row)
        if created:
            new.append(row.id)
    await record(session, caller, "archive.add_files", "archive", archive_id,
                 {"file_ids": [str(f) for f in dict.fromkeys(file_ids)], "queued": len(new)})
    await session.commit()
    for archive_file_id in new if enqueue else []:
        knowledge.enqueue(archive_file_id)
    return rows


async def remove_file(session: AsyncSession, caller: Caller, archive_id: uuid.UUID, file_id: uuid.UUID) -> None:
    await archive_store.remove_file(session, caller.tenant_id, archive_id, file_id)
    await record(session, caller, "archive.remove_file", "archive", archive_id, {"file_id": str(file_id)})
    await session.commit()


async def reindex_archive(session: AsyncSession, knowledge: Knowledge, caller: Caller, archive_id: uuid.UUID) -> int:
    """Queue every file of the archive again, embedded with the model configured now; returns how many."""
    archive = await archive_store.get_archive(session, caller.tenant_id, archive_id)
    before = archive.embedding_model
    count = await archive_store.requeue_archive(session, caller.tenant_id, archive_id,
                                                knowledge.settings.embedding_model)
    await record(session, caller, "archive.reindex", "archive", archive_id,
                 {"from_model": before, "to_model": knowledge.settings.embedding_model, "files": count})
    await session.commit()
    for row, _ in await archive_store.archive_files(session, caller.tenant_id, archive_id):
        knowledge.enqueue(row.id)
    return count


async def resolve_archives(session: AsyncSession, tenant_id: uuid.UUID, refs: Sequence[str],
                           param: str = "archives") -> list[Archive]:
    """The tenant's archives named by these names or ids; an unknown one is a 422 naming it."""
    found = await archive_store.find_archives(session, tenant_id, refs)
    archives: list[Archive] = []
    for index, ref in enumerate(refs):
        archive = found.get(ref)
        if archive is None:
            raise invalid(f"{param}[{index}]", f"no archive {ref!r} in this tenant; create it first "
                                               "(POST /v1/archives)", code="unknown_archive")
        if archive not in archives:
            archives.append(archive)
    return archives


async def search_archives(knowledge: Knowledge, tenant_id: uuid.UUID, archives: Sequence[Archive], query: str, *,
                          k: int = 8, file_ids: Sequence[uuid.UUID] | None = None,
                          media_types: Sequence[str] | None = None) -> list[SearchHit]:
    """Hybrid search of the tenant's ``archives`` (already resolved within the tenant)."""
    knowledge.require()
    if not query.strip():
        raise invalid("query", "the query is empty; say what to look for", code="empty_query")
    if not 1 <= k <= MAX_SEARCH_RESULTS:
        raise invalid("max_results", f"max_results is between 1 and {MAX_SEARCH_RESULTS}", code="limit_exceeded")
    try:
        return await knowledge.search(tenant_id, archives, query, k=k, file_ids=file_ids, media_types=media_types)
    except AgentAdapterError as exc:
        if getattr(exc, "retryable", False):
            raise Unavailable(f"the embedding model could not embed the query ({exc}); retry in a moment",
                              code="embedding_unavailable") from exc
        raise
