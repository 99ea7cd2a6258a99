"""Stored files of a tenant: create (deduplicated by SHA-256), get, list, delete - always within one tenant.

The bytes are not here (the blob storage holds them, under the row's ``storage_key``); this module
keeps what is known of each upload. Deleting a file removes it from every archive (its archive
memberships and chunks go with it, by ``ON DELETE CASCADE``).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordNotFound
from agentadapter.store.files_models import ArchiveFile, StoredFile
from agentadapter.store.pagination import Page, paginate

__all__ = ["create_file", "delete_file", "file_archive_ids", "find_file_by_hash", "get_file", "list_files"]


async def find_file_by_hash(session: AsyncSession, tenant_id: uuid.UUID, sha256: str) -> StoredFile | None:
    row: StoredFile | None = await session.scalar(
        sa.select(StoredFile).where(StoredFile.tenant_id == tenant_id, StoredFile.sha256 == sha256))
    return row


async def create_file(session: AsyncSession, tenant_id: uuid.UUID, *, filename: str, media_type: str,
                      size_bytes: int, sha256: str, storage_key: str, meta: dict[str, Any] | None = None,
                      created_by: uuid.UUID | None = None) -> StoredFile:
    row = StoredFile(id=uuid.uuid4(), tenant_id=tenant_id, filename=filename, media_type=media_type,
                     size_bytes=size_bytes, sha256=sha256, storage_key=storage_key, meta=meta or {},
                     created_by=created_by)
    session.add(row)
    await session.flush()
    return row


async def get_file(session: AsyncSession, tenant_id: uuid.UUID, file_id: uuid.UUID) -> StoredFile:
    row: StoredFile | None = await session.scalar(
        sa.select(StoredFile).where(StoredFile.tenant_id == tenant_id, StoredFile.id == file_id))
    if row is None:
        raise RecordNotFound("file", file_id)
    return row


async def list_files(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
                     media_type: str | None = None) -> Page[StoredFile]:
    """The tenant's files, newest first."""
    statement = sa.select(StoredFile).where(StoredFile.tenant_id == tenant_id)
    if media_type:
        statement = statement.where(StoredFile.media_type == media_type)
    page: Page[StoredFile] = await paginate(session, statement, StoredFile, limit=limit, cursor=cursor)
    return page


async def file_archive_ids(session: AsyncSession, tenant_id: uuid.UUID, file_id: uuid.UUID) -> list[uuid.UUID]:
    """The archives the file is in."""
    rows = await session.scalars(sa.select(ArchiveFile.archive_id).where(ArchiveFile.tenant_id == tenant_id,
                                                                          ArchiveFile.file_id == file_id))
    return list(rows)


async def delete_file(session: AsyncSession, tenant_id: uuid.UUID, file_id: uuid.UUID) -> StoredFile:
    """Delete the row (its memberships and chunks cascade); returns it, for its storage key."""
    row = await get_file(session, tenant_id, file_id)
    await session.delete(row)
    await session.flush()
    return row
