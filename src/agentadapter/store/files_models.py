"""The knowledge tables: stored files, archives, each file's place in an archive, and the chunks indexed.

:class:`StoredFile` is an upload (its bytes live in the blob storage under ``storage_key``), unique per
tenant by SHA-256 so a second upload of the same bytes is the same file. :class:`Archive` is a named
collection of files (the seeds' file archives) with the embedding model its chunks were embedded with.
:class:`ArchiveFile` is a file's membership in an archive and its ingestion status
(``queued | processing | ready | failed``, with the error of a failed one). :class:`KnowledgeChunk` is
a piece of a file's text with its page, section and character span, and its unit embedding as
float32 bytes (portable: read by the embedded exact search).

Search indexes that one database has and the other has not are made by the migration outside these
models, and :func:`include_object` hides them from Alembic's comparison: on SQLite the FTS5 table
``knowledge_chunks_fts`` (kept in step by triggers); on PostgreSQL the generated ``search_vector``
(``tsvector``) column with its GIN index and, where the pgvector extension is installed, the
``embedding_vector`` column with HNSW indexes per dimension count (made when an archive first needs one).
The chunk id is an integer so that FTS5 can use it as its rowid across table copies.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from agentadapter.store.models import Base, _created, _pk, _status, _tenant_fk, _updated

__all__ = [
    "ARCHIVE_FILE_STATUSES",
    "FTS_TABLE",
    "Archive",
    "ArchiveFile",
    "KnowledgeChunk",
    "StoredFile",
    "include_object",
]

ARCHIVE_FILE_STATUSES = ("queued", "processing", "ready", "failed")
FTS_TABLE = "knowledge_chunks_fts"
_DIALECT_COLUMNS = frozenset({"search_vector", "embedding_vector"})
_DIALECT_INDEX_PREFIXES = ("ix_knowledge_chunks_search_vector", "ix_knowledge_chunks_hnsw_")


class StoredFile(Base):
    """An uploaded file of a tenant: its name as given, its detected type, its size and hash."""

    __tablename__ = "files"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "sha256"), sa.Index(None, "tenant_id", "created_at"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(sa.String(255))
    """The name the uploader gave (shown, never used as a path)."""
    media_type: Mapped[str] = mapped_column(sa.String(100))
    """Detected from the content, not the name."""
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    storage_key: Mapped[str] = mapped_column(sa.String(300))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()


class Archive(Base):
    """A named collection of a tenant's files, searchable together."""

    __tablename__ = "archives"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"), sa.Index(None, "tenant_id", "created_at"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    embedding_model: Mapped[str] = mapped_column(sa.String(200))
    """The model its chunks are embedded with (the operator's, when the archive was made or re-indexed)."""
    dimensions: Mapped[int | None] = mapped_column()
    """Of its vectors, once the first file is embedded."""
    chunk_max_tokens: Mapped[int] = mapped_column(default=200)
    chunk_overlap_tokens: Mapped[int] = mapped_column(default=40)
    index_version: Mapped[int] = mapped_column(default=0)
    """Raised whenever its chunks change, so cached vector matrices know they are stale."""
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ArchiveFile(Base):
    """A file in an archive, and how far its ingestion got."""

    __tablename__ = "archive_files"
    __table_args__ = (sa.UniqueConstraint("archive_id", "file_id"), sa.Index(None, "status", "updated_at"))

    id: Mapped[uuid.UUID] = _pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    archive_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("archives.id", ondelete="CASCADE"))
    file_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("files.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(_status("archive_file_status", ARCHIVE_FILE_STATUSES), default="queued")
    error: Mapped[dict[str, Any] | None] = mapped_column()
    """``{code, message}`` of a failed ingestion."""
    chunk_count: Mapped[int] = mapped_column(default=0)
    embedding_model: Mapped[str | None] = mapped_column(sa.String(200))
    """The model its chunks were embedded with (None before it is ready)."""
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class KnowledgeChunk(Base):
    """A chunk of a file's text in an archive, with its span and its embedding."""

    __tablename__ = "knowledge_chunks"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    archive_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("archives.id", ondelete="CASCADE"), index=True)
    archive_file_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("archive_files.id", ondelete="CASCADE"),
                                                       index=True)
    file_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("files.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column()
    """Its place among its file's chunks."""
    text: Mapped[str] = mapped_column(sa.Text)
    page: Mapped[int | None] = mapped_column()
    section: Mapped[str | None] = mapped_column(sa.String(500))
    char_start: Mapped[int] = mapped_column()
    char_end: Mapped[int] = mapped_column()
    tokens: Mapped[int] = mapped_column()
    dimensions: Mapped[int] = mapped_column()
    embedding: Mapped[bytes] = mapped_column(sa.LargeBinary)
    """Unit-length float32 values, little-endian."""


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's filter: leave out the search indexes the migration makes per database (see the docstring)."""
    if not name:
        return True
    if type_ == "table" and name.startswith(FTS_TABLE):
        return False
    if type_ == "column" and reflected and compare_to is None and name in _DIALECT_COLUMNS:
        return False
    return not (type_ == "index" and reflected and name.startswith(_DIALECT_INDEX_PREFIXES))
