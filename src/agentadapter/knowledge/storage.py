"""Where uploaded files' bytes live: the :class:`BlobStorage` seam and its local-directory default.

A blob's key is chosen by the application layer (``<tenant id>/<sha256>``): never a name a tenant
gave. :class:`LocalStorage` keeps blobs under one directory (made private, mode 0700), writes each
through a temporary file and a rename so a reader never sees half a file, and refuses a key that is
not lowercase hex segments. ``storage_from_url`` reads the operator's ``AGENTADAPTER_FILES_URL``: a
path or ``file://`` URL. S3-compatible storage is not built yet; such a URL is refused with that said.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path
from typing import Protocol

from agentadapter.errors import ConfigurationError
from agentadapter.knowledge.errors import StorageError
from agentadapter.private_files import private_directory

__all__ = ["BlobStorage", "LocalStorage", "storage_from_url"]

_KEY = re.compile(r"^[0-9a-f]{1,64}(?:/[0-9a-f]{1,64}){0,3}$")


class BlobStorage(Protocol):
    """Bytes by key."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing one is not an error."""
        ...


class LocalStorage:
    """Blobs as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise StorageError(f"blob key {key!r} is not hex segments; keys are made by the service, not given")
        return self.root.joinpath(*key.split("/"))

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        private_directory(self.root)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StorageError(f"cannot write {key} under {self.root}: {exc.strerror or exc}") from exc

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {key} under {self.root}: {exc.strerror or exc}") from exc

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key} under {self.root}: {exc.strerror or exc}") from exc

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)


def storage_from_url(url: str | None, default: Path) -> BlobStorage:
    """The storage an operator's URL names: unset, a path or ``file://`` is a local directory."""
    if not url:
        return LocalStorage(default)
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")))
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigurationError(f"AGENTADAPTER_FILES_URL: {scheme}:// storage is not supported yet; use a local "
                                 "directory (a path or file:// URL)")
    return LocalStorage(Path(url).expanduser())
