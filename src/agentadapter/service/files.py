"""Files: upload (checked, scanned, deduplicated, stored) and delete - each audited, within the caller's tenant.

An upload is refused when it is empty or larger than ``AGENTADAPTER_FILES_MAX_BYTES``; with a scanner
configured it is scanned first (a signature found: 422 ``malware_found``; the scanner unreachable: 503
``scanner_unavailable``, nothing stored). Its type is detected from its bytes; its name is kept for
display only (reduced to a base name without control characters). The same bytes uploaded again by the
same tenant are the same file (SHA-256): the existing row is returned, ``created`` False. The blob's
key is ``<tenant>/<sha256>``: nothing a tenant sends names a path.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.knowledge import MalwareFound, ScannerUnavailable, StorageError, detect_media_type
from agentadapter.service.common import Caller, invalid, record
from agentadapter.service.errors import Unavailable
from agentadapter.service.knowledge import Knowledge
from agentadapter.store import archives as archive_store
from agentadapter.store import files as file_store
from agentadapter.store.files_models import StoredFile

__all__ = ["Upload", "clean_filename", "delete_file", "upload_file"]

_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Upload:
    """What an upload gave: the stored file, and whether it is new (False: the same bytes were there)."""

    file: StoredFile
    created: bool


def clean_filename(name: str | None) -> str:
    """A display name: the last path segment, control and format characters dropped, at most 255 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf", "Cs")).strip()
    if base in ("", ".", ".."):
        base = "upload"
    return base[:_MAX_NAME]


def storage_unavailable(exc: StorageError) -> Unavailable:
    return Unavailable(f"the file storage failed ({exc}); retry in a moment", code="storage_unavailable")


async def upload_file(session: AsyncSession, knowledge: Knowledge, caller: Caller, *, filename: str | None,
                      data: bytes, metadata: Mapping[str, Any] | None = None) -> Upload:
    knowledge.require()
    limit = knowledge.settings.files_max_bytes
    if not data:
        raise invalid("file", "the file is empty; upload a file with content", code="empty_file")
    if len(data) > limit:
        raise invalid("file", f"the file has {len(data)} bytes, more than the {limit} accepted "
                              "(AGENTADAPTER_FILES_MAX_BYTES)", code="file_too_large")
    digest = hashlib.sha256(data).hexdigest()
    existing = await file_store.find_file_by_hash(session, caller.tenant_id, digest)
    if existing is not None:
        return Upload(existing, False)
    if knowledge.scanner is not None:
        try:
            await knowledge.scanner.scan(data)
        except MalwareFound as exc:
            await record(session, caller, "file.refuse", "file", digest, {"reason": "malware_found",
                                                                           "signature": exc.signature})
            await session.commit()
            raise invalid("file", str(exc), code="malware_found", details={"signature": exc.signature}) from exc
        except ScannerUnavailable as exc:
            raise Unavailable(str(exc), code="scanner_unavailable") from exc
    media_type = detect_media_type(data, filename)
    key = f"{caller.tenant_id.hex}/{digest}"
    try:
        await knowledge.storage.put(key, data)
    except StorageError as exc:
        raise storage_unavailable(exc) from exc
    row = await file_store.create_file(session, caller.tenant_id, filename=clean_filename(filename),
                                       media_type=media_type, size_bytes=len(data), sha256=digest, storage_key=key,
                                       meta=dict(metadata or {}), created_by=caller.user_id)
    await record(session, caller, "file.create", "file", row.id, {"filename": row.filename, "media_type": media_type,
                                                                  "size_bytes": len(data), "sha256": digest})
    await session.commit()
    return Upload(row, True)


async def delete_file(session: AsyncSession, knowledge: Knowledge, caller: Caller, file_id: uuid.UUID) -> None:
    """Delete the file from every archive and from storage."""
    archives = await file_store.file_archive_ids(session, caller.tenant_id, file_id)
    row = await file_store.delete_file(session, caller.tenant_id, file_id)
    for archive_id in archives:
        await archive_store.bump_index_version(session, archive_id)
    await record(session, caller, "file.delete", "file", file_id, {"filename": row.filename,
                                                                   "archives": [str(a) for a in archives]})
    await session.commit()
    try:
        await knowledge.storage.delete(row.storage_key)
    except StorageError:
        # The row is gone (nothing reads the blob any more); an orphan blob is only disk space.
        from agentadapter.service.knowledge import logger

        logger.warning("the blob of deleted file %s could not be removed", file_id, exc_info=True)
