"""Archives of a tenant, the files in them with their ingestion status, their chunks, and the search queries.

Every function takes the tenant. Ingestion claims a queued archive file (``queued`` -> ``processing``
by a conditional update, so two processes never both take it), replaces its chunks, and marks it
``ready`` or ``failed``; each change of an archive's chunks raises its ``index_version``. Keyword
search runs on the database's own full-text index (SQLite FTS5's BM25; PostgreSQL's ``tsvector`` with
``ts_rank_cd``), with the query reduced to its words (no operator of the tenant's reaches the engine).
Vector search runs here on PostgreSQL when the ``embedding_vector`` column exists (pgvector, HNSW by
cosine distance); elsewhere the service ranks the vectors :func:`load_vectors` returns.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.files_models import FTS_TABLE, Archive, ArchiveFile, KnowledgeChunk, StoredFile
from agentadapter.store.models import utcnow
from agentadapter.store.pagination import Page, paginate

__all__ = [
    "ChunkFilter",
    "ChunkRow",
    "add_file",
    "archive_files",
    "bump_index_version",
    "chunks_by_id",
    "claim_archive_file",
    "create_archive",
    "delete_archive",
    "ensure_vector_index",
    "filtered_file_ids",
    "find_archives",
    "get_archive",
    "get_archive_file",
    "has_vector_column",
    "index_version",
    "keyword_search",
    "list_archives",
    "load_vectors",
    "query_words",
    "queued_archive_files",
    "remove_file",
    "replace_chunks",
    "requeue_archive",
    "set_archive_file_status",
    "vector_search",
]

_WORD = re.compile(r"\w+")
_MAX_QUERY_WORDS = 32


@dataclass(frozen=True, slots=True)
class ChunkFilter:
    """What a search may return: chunks of these archives (required), of these files, of these media types."""

    archive_ids: Sequence[uuid.UUID]
    file_ids: Sequence[uuid.UUID] | None = None
    media_types: Sequence[str] | None = None

    def apply(self, statement: sa.Select[Any], tenant_id: uuid.UUID) -> sa.Select[Any]:
        statement = statement.where(KnowledgeChunk.tenant_id == tenant_id,
                                    KnowledgeChunk.archive_id.in_(list(self.archive_ids)))
        if self.file_ids is not None:
            statement = statement.where(KnowledgeChunk.file_id.in_(list(self.file_ids)))
        if self.media_types is not None:
            statement = statement.where(KnowledgeChunk.file_id.in_(
                sa.select(StoredFile.id).where(StoredFile.tenant_id == tenant_id,
                                               StoredFile.media_type.in_(list(self.media_types)))))
        return statement


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk with what a citation needs."""

    id: int
    archive_id: uuid.UUID
    file_id: uuid.UUID
    filename: str
    media_type: str
    text: str
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    ordinal: int


# -------------------------------------------------------------------------------------------- archives


async def create_archive(session: AsyncSession, tenant_id: uuid.UUID, *, name: str, embedding_model: str,
                         description: str = "", chunk_max_tokens: int = 200, chunk_overlap_tokens: int = 40,
                         meta: dict[str, Any] | None = None, created_by: uuid.UUID | None = None) -> Archive:
    taken = await session.scalar(sa.select(Archive.id).where(Archive.tenant_id == tenant_id, Archive.name == name))
    if taken is not None:
        raise RecordConflict(f"an archive named {name!r} exists already in this tenant; pick another name",
                             param="name")
    archive = Archive(id=uuid.uuid4(), tenant_id=tenant_id, name=name, description=description,
                      embedding_model=embedding_model, chunk_max_tokens=chunk_max_tokens,
                      chunk_overlap_tokens=chunk_overlap_tokens, meta=meta or {}, created_by=created_by)
    session.add(archive)
    await session.flush()
    return archive


async def get_archive(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID) -> Archive:
    row: Archive | None = await session.scalar(
        sa.select(Archive).where(Archive.tenant_id == tenant_id, Archive.id == archive_id))
    if row is None:
        raise RecordNotFound("archive", archive_id)
    return row


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def find_archives(session: AsyncSession, tenant_id: uuid.UUID, refs: Sequence[str]) -> dict[str, Archive]:
    """The tenant's archives that these names or ids name, by reference (missing ones left out)."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    ids = [parsed for ref in refs if (parsed := _as_uuid(ref)) is not None]
    condition: sa.ColumnElement[bool] = Archive.name.in_(refs)
    if ids:
        condition = sa.or_(condition, Archive.id.in_(ids))
    rows = (await session.scalars(sa.select(Archive).where(Archive.tenant_id == tenant_id, condition))).all()
    by_name = {row.name: row for row in rows}
    by_id = {str(row.id): row for row in rows}
    found: dict[str, Archive] = {}
    for ref in refs:
        parsed = _as_uuid(ref)
        row = by_name.get(ref) or (by_id.get(str(parsed)) if parsed is not None else None)
        if row is not None:
            found[ref] = row
    return found


async def list_archives(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20,
                        cursor: str | None = None) -> Page[Archive]:
    statement = sa.select(Archive).where(Archive.tenant_id == tenant_id)
    page: Page[Archive] = await paginate(session, statement, Archive, limit=limit, cursor=cursor)
    return page


async def delete_archive(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID) -> Archive:
    archive = await get_archive(session, tenant_id, archive_id)
    await session.delete(archive)
    await session.flush()
    return archive


async def bump_index_version(session: AsyncSession, archive_id: uuid.UUID) -> None:
    await session.execute(sa.update(Archive).where(Archive.id == archive_id)
                          .values(index_version=Archive.index_version + 1, updated_at=utcnow()))


# ------------------------------------------------------------------------------------- archive files


async def add_file(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID,
                   file_id: uuid.UUID) -> tuple[ArchiveFile, bool]:
    """The file's membership (queued for ingestion when new); ``(row, created)``."""
    existing: ArchiveFile | None = await session.scalar(sa.select(ArchiveFile).where(
        ArchiveFile.tenant_id == tenant_id, ArchiveFile.archive_id == archive_id, ArchiveFile.file_id == file_id))
    if existing is not None:
        return existing, False
    row = ArchiveFile(id=uuid.uuid4(), tenant_id=tenant_id, archive_id=archive_id, file_id=file_id, status="queued")
    session.add(row)
    await session.flush()
    return row, True


async def get_archive_file(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID,
                           file_id: uuid.UUID) -> ArchiveFile:
    row: ArchiveFile | None = await session.scalar(sa.select(ArchiveFile).where(
        ArchiveFile.tenant_id == tenant_id, ArchiveFile.archive_id == archive_id, ArchiveFile.file_id == file_id))
    if row is None:
        raise RecordNotFound(f"file {file_id} in archive", archive_id)
    return row


async def remove_file(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID,
                      file_id: uuid.UUID) -> None:
    row = await get_archive_file(session, tenant_id, archive_id, file_id)
    await session.delete(row)  # its chunks cascade
    await bump_index_version(session, archive_id)
    await session.flush()


async def archive_files(session: AsyncSession, tenant_id: uuid.UUID,
                        archive_id: uuid.UUID) -> list[tuple[ArchiveFile, StoredFile]]:
    """The archive's files with their status, oldest first."""
    rows = await session.execute(
        sa.select(ArchiveFile, StoredFile).join(StoredFile, StoredFile.id == ArchiveFile.file_id)
        .where(ArchiveFile.tenant_id == tenant_id, ArchiveFile.archive_id == archive_id)
        .order_by(ArchiveFile.created_at, ArchiveFile.id))
    return [(row[0], row[1]) for row in rows]


async def queued_archive_files(session: AsyncSession, *, limit: int = 100,
                               processing_before: datetime | None = None) -> list[uuid.UUID]:
    """Archive files waiting for ingestion, oldest first (all tenants: the ingestion queue's view); with
    ``processing_before``, those ``processing`` since before then instead (their process died)."""
    if processing_before is None:
        condition = ArchiveFile.status == "queued"
    else:
        condition = sa.and_(ArchiveFile.status == "processing", ArchiveFile.updated_at < processing_before)
    rows = await session.scalars(sa.select(ArchiveFile.id).where(condition).order_by(ArchiveFile.updated_at)
                                 .limit(limit))
    return list(rows)


async def index_version(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID) -> int:
    version = await session.scalar(sa.select(Archive.index_version).where(Archive.tenant_id == tenant_id,
                                                                          Archive.id == archive_id))
    return int(version or 0)


async def filtered_file_ids(session: AsyncSession, tenant_id: uuid.UUID, where: ChunkFilter) -> list[uuid.UUID]:
    """The files of the filter's archives that its file and media type conditions let through."""
    statement = sa.select(ArchiveFile.file_id).where(ArchiveFile.tenant_id == tenant_id,
                                                     ArchiveFile.archive_id.in_(list(where.archive_ids)))
    if where.file_ids is not None:
        statement = statement.where(ArchiveFile.file_id.in_(list(where.file_ids)))
    if where.media_types is not None:
        statement = statement.where(ArchiveFile.file_id.in_(
            sa.select(StoredFile.id).where(StoredFile.tenant_id == tenant_id,
                                           StoredFile.media_type.in_(list(where.media_types)))))
    return list(await session.scalars(statement))


async def claim_archive_file(session: AsyncSession, archive_file_id: uuid.UUID, *,
                             from_statuses: Sequence[str] = ("queued",)) -> ArchiveFile | None:
    """Mark it ``processing`` if it is in one of ``from_statuses``; the row, or None when another took it."""
    result = await session.execute(
        sa.update(ArchiveFile).where(ArchiveFile.id == archive_file_id, ArchiveFile.status.in_(list(from_statuses)))
        .values(status="processing", error=None, updated_at=utcnow()))
    if getattr(result, "rowcount", 0) != 1:
        return None
    row: ArchiveFile | None = await session.get(ArchiveFile, archive_file_id, populate_existing=True)
    return row


async def set_archive_file_status(session: AsyncSession, archive_file_id: uuid.UUID, status: str, *,
                                  error: dict[str, Any] | None = None, chunk_count: int | None = None,
                                  embedding_model: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": utcnow()}
    if chunk_count is not None:
        values["chunk_count"] = chunk_count
    if embedding_model is not None:
        values["embedding_model"] = embedding_model
    await session.execute(sa.update(ArchiveFile).where(ArchiveFile.id == archive_file_id).values(**values))


async def requeue_archive(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID,
                          embedding_model: str) -> int:
    """Queue every file of the archive again (a re-index, with ``embedding_model`` from now on)."""
    await session.execute(sa.update(Archive).where(Archive.tenant_id == tenant_id, Archive.id == archive_id)
                          .values(embedding_model=embedding_model, dimensions=None, updated_at=utcnow()))
    result = await session.execute(
        sa.update(ArchiveFile).where(ArchiveFile.tenant_id == tenant_id, ArchiveFile.archive_id == archive_id)
        .values(status="queued", error=None, updated_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------------------------------- chunks


async def has_vector_column(session: AsyncSession) -> bool:
    """Whether this database has the pgvector ``embedding_vector`` column (PostgreSQL with pgvector)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    found = await session.scalar(sa.text(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'knowledge_chunks' "
        "AND column_name = 'embedding_vector' AND table_schema = current_schema()"))
    return found is not None


async def ensure_vector_index(session: AsyncSession, dimensions: int) -> None:
    """The HNSW index of the vectors with ``dimensions`` values (cosine), made if missing."""
    dimensions = int(dimensions)  # formatted into DDL: an int, never text
    await session.execute(sa.text(
        f"CREATE INDEX IF NOT EXISTS ix_knowledge_chunks_hnsw_{dimensions} ON knowledge_chunks USING hnsw "
        f"((embedding_vector::vector({dimensions})) vector_cosine_ops) WHERE dimensions = {dimensions}"))


class _Vector(sa.types.UserDefinedType[Any]):
    """pgvector's ``vector(n)``, for casting a query vector (the column itself is outside the models)."""

    cache_ok = True

    def __init__(self, dimensions: int) -> None:
        self.dimensions = int(dimensions)

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.dimensions})"


def _vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


async def replace_chunks(session: AsyncSession, archive_file: ArchiveFile, chunks: Sequence[dict[str, Any]], *,
                         vectors: Sequence[Sequence[float]] | None = None, pgvector: bool = False) -> None:
    """Replace the archive file's chunks by ``chunks`` (column values; ``vectors`` in the same order are
    also written to the pgvector column when ``pgvector``)."""
    await session.execute(sa.delete(KnowledgeChunk).where(KnowledgeChunk.archive_file_id == archive_file.id))
    if chunks:
        rows = [{"tenant_id": archive_file.tenant_id, "archive_id": archive_file.archive_id,
                 "archive_file_id": archive_file.id, "file_id": archive_file.file_id, **chunk} for chunk in chunks]
        if pgvector and vectors is not None:
            ids = list(await session.scalars(sa.insert(KnowledgeChunk).returning(KnowledgeChunk.id), rows))
            await session.execute(
                sa.text("UPDATE knowledge_chunks SET embedding_vector = CAST(:vector AS vector) WHERE id = :id"),
                [{"id": chunk_id, "vector": _vector_literal(vector)} for chunk_id, vector in zip(ids, vectors,
                                                                                                   strict=True)])
        else:
            await session.execute(sa.insert(KnowledgeChunk), rows)
    await bump_index_version(session, archive_file.archive_id)


async def load_vectors(session: AsyncSession, tenant_id: uuid.UUID, archive_id: uuid.UUID,
                       dimensions: int) -> tuple[list[str], list[bytes], list[str]]:
    """``(chunk ids, embeddings, file ids)`` of the archive's chunks with ``dimensions`` values."""
    rows = await session.execute(
        sa.select(KnowledgeChunk.id, KnowledgeChunk.embedding, KnowledgeChunk.file_id)
        .where(KnowledgeChunk.tenant_id == tenant_id, KnowledgeChunk.archive_id == archive_id,
               KnowledgeChunk.dimensions == dimensions).order_by(KnowledgeChunk.id))
    ids: list[str] = []
    blobs: list[bytes] = []
    files: list[str] = []
    for chunk_id, blob, file_id in rows:
        ids.append(str(chunk_id))
        blobs.append(bytes(blob))
        files.append(str(file_id))
    return ids, blobs, files


def query_words(query: str) -> list[str]:
    """The words of a query (letters, digits, underscores), lowercased, each once, at most 32."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))[:_MAX_QUERY_WORDS]


async def keyword_search(session: AsyncSession, tenant_id: uuid.UUID, query: str, where: ChunkFilter,
                         k: int) -> list[tuple[int, float]]:
    """``(chunk id, score)`` by the engine's full-text ranking (any word of the query matches), best first."""
    words = query_words(query)
    if not words or not where.archive_ids:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        fts = sa.table(FTS_TABLE, sa.column("rowid", sa.Integer))
        match = " OR ".join(f'"{word}"' for word in words)  # words only: no quote or operator inside
        rank = sa.func.bm25(sa.literal_column(FTS_TABLE))
        statement = (sa.select(KnowledgeChunk.id, rank.label("rank"))
                     .select_from(fts.join(KnowledgeChunk, KnowledgeChunk.id == fts.c.rowid))
                     .where(sa.literal_column(FTS_TABLE).op("MATCH")(match)))
        statement = where.apply(statement, tenant_id).order_by(rank).limit(k)
        return [(int(row[0]), -float(row[1])) for row in await session.execute(statement)]
    vector: sa.ColumnElement[Any] = sa.literal_column("knowledge_chunks.search_vector")
    tsquery = sa.func.to_tsquery("simple", " | ".join(words))
    score = sa.func.ts_rank_cd(vector, tsquery)
    statement = sa.select(KnowledgeChunk.id, score.label("score")).where(vector.op("@@")(tsquery))
    statement = where.apply(statement, tenant_id).order_by(score.desc(), KnowledgeChunk.id).limit(k)
    return [(int(row[0]), float(row[1])) for row in await session.execute(statement)]


async def vector_search(session: AsyncSession, tenant_id: uuid.UUID, vector: Sequence[float], dimensions: int,
                        where: ChunkFilter, k: int) -> list[tuple[int, float]]:
    """``(chunk id, cosine similarity)`` nearest first, by pgvector's HNSW index (PostgreSQL with pgvector)."""
    dimensions = int(dimensions)
    await session.execute(sa.text(f"SET LOCAL hnsw.ef_search = {max(40, min(4 * int(k), 1000))}"))
    distance = sa.literal_column(f"(knowledge_chunks.embedding_vector::vector({dimensions}))").op("<=>")(
        sa.cast(sa.bindparam("query_vector", _vector_literal(vector), type_=sa.Text), _Vector(dimensions)))
    statement = sa.select(KnowledgeChunk.id, distance.label("distance")).where(
        sa.text(f"knowledge_chunks.dimensions = {dimensions}"))
    statement = where.apply(statement, tenant_id).order_by(distance).limit(k)
    return [(int(row[0]), 1.0 - float(row[1])) for row in await session.execute(statement)]


async def chunks_by_id(session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[int]) -> dict[int, ChunkRow]:
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(KnowledgeChunk, StoredFile.filename, StoredFile.media_type)
        .join(StoredFile, StoredFile.id == KnowledgeChunk.file_id)
        .where(KnowledgeChunk.tenant_id == tenant_id, KnowledgeChunk.id.in_(list(ids))))
    found: dict[int, ChunkRow] = {}
    for chunk, filename, media_type in rows:
        found[chunk.id] = ChunkRow(chunk.id, chunk.archive_id, chunk.file_id, filename, media_type, chunk.text,
                                   chunk.page, chunk.section, chunk.char_start, chunk.char_end, chunk.ordinal)
    return found
