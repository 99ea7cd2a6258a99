"""The knowledge runtime of a process: storage, scanner, extractors, background ingestion and hybrid search.

:class:`Knowledge` is built once per process from the operator's :class:`KnowledgeSettings`
(``AGENTADAPTER_*``), the database and the service's facade (whose operator-configured embedding model
embeds every archive: tenants never name local models). Ingestion of an archive file - read the blob,
extract (in a thread), chunk, embed in batches, replace the chunks, mark it ``ready`` or ``failed``
with the extractor's error - runs in the background in this process: :meth:`Knowledge.enqueue` starts
it (``concurrency`` at a time) and answers at once; :meth:`Knowledge.start` resumes what was queued when
the process stopped. Hybrid search embeds the query with each archive's model, ranks vectors (pgvector's
HNSW index on PostgreSQL with pgvector; else exact search over a cached matrix per archive, refreshed
when its ``index_version`` moves) and keywords (FTS5 / ``tsvector``), and fuses both rankings by
reciprocal rank. Results carry their citation: file, page, section, character span.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentadapter.knowledge import (
    ChunkingOptions,
    ClamdScanner,
    ExtractionError,
    Extractors,
    KnowledgeError,
    VectorMatrix,
    chunk_document,
    default_extractors,
    missing_dependencies,
    reciprocal_rank_fusion,
    storage_from_url,
)
from agentadapter.knowledge.search import to_blob
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.observability.logging import get_logger
from agentadapter.service.errors import Unavailable
from agentadapter.store import archives as archive_store
from agentadapter.store.archives import ChunkFilter
from agentadapter.store.files_models import Archive, StoredFile
from agentadapter.store.models import utcnow

if TYPE_CHECKING:
    from agentadapter.knowledge import BlobStorage
    from agentadapter.llm.client import LLM
    from agentadapter.store.database import Database

__all__ = ["Knowledge", "KnowledgeSettings", "SearchHit", "knowledge_of"]

logger = get_logger("agentadapter.knowledge")


class KnowledgeSettings(BaseSettings):
    """The operator's knowledge settings (``AGENTADAPTER_*``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_", extra="ignore")

    files_url: str | None = None
    """Where uploaded files are kept: a directory (path or ``file://``); unset: ``files`` in the data dir."""
    files_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """Largest file accepted (POST /v1/files accepts a body this large, beyond AGENTADAPTER_MAX_BODY_BYTES)."""
    embedding_model: str = "local/embed/default"
    """The model archives are embedded with (the operator's: an alias, a provider model, a local one)."""
    chunk_max_tokens: int = Field(default=200, ge=8, le=8192)
    chunk_overlap_tokens: int = Field(default=40, ge=0)
    embed_batch: int = Field(default=64, ge=1, le=2048)
    """Chunks embedded per call."""
    ingest_concurrency: int = Field(default=1, ge=1, le=64)
    """Files ingested at once by one process."""
    ingest_stale_s: float = Field(default=600.0, gt=0)
    """A file ``processing`` for longer than this (its process died) is ingested again at start-up."""
    clamd_address: str | None = None
    """ClamAV's daemon: a socket path, ``unix:///path`` or ``tcp://host:port``; unset: uploads are not scanned."""
    clamd_timeout_s: float = Field(default=30.0, gt=0)
    vector_cache_mb: int = Field(default=1024, ge=0)
    """Memory for the archives' vector matrices of the embedded search (least recently searched dropped first)."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A found chunk and where it comes from."""

    chunk_id: int
    score: float
    """The fused score (reciprocal rank)."""
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
    vector_rank: int | None = None
    keyword_rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "score": round(self.score, 6), "archive_id": str(self.archive_id),
                "archive": self.archive, "file_id": str(self.file_id), "filename": self.filename,
                "media_type": self.media_type, "text": self.text, "page": self.page, "section": self.section,
                "char_start": self.char_start, "char_end": self.char_end, "vector_rank": self.vector_rank,
                "keyword_rank": self.keyword_rank}


@dataclass(slots=True)
class _CachedMatrix:
    version: int
    matrix: VectorMatrix


@dataclass(slots=True)
class Knowledge:
    """The process's knowledge parts (see the module's docstring)."""

    db: Database
    llm: LLM
    settings: KnowledgeSettings
    storage: BlobStorage
    scanner: ClamdScanner | None = None
    extractors: Extractors = field(default_factory=default_extractors)
    _matrices: OrderedDict[uuid.UUID, _CachedMatrix] = field(default_factory=OrderedDict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None
    _pgvector: bool | None = None
    _vector_indexes: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, db: Database, llm: LLM, data_dir: Path, settings: KnowledgeSettings | None = None) -> Knowledge:
        settings = settings or KnowledgeSettings()
        scanner = (ClamdScanner(settings.clamd_address, timeout_s=settings.clamd_timeout_s)
                   if settings.clamd_address else None)
        return cls(db=db, llm=llm, settings=settings, storage=storage_from_url(settings.files_url, data_dir / "files"),
                   scanner=scanner)

    def require(self) -> None:
        """Refuse (503 ``knowledge_not_installed``) when the ``knowledge`` extra is not installed."""
        missing = missing_dependencies()
        if missing:
            raise Unavailable(f"files and archives need the knowledge extra, which this server lacks "
                              f"({', '.join(missing)} missing); the operator installs it with "
                              "pip install 'agentadapter[knowledge]'",
                              code="knowledge_not_installed", retry_after_s=3600)

    @property
    def chunking(self) -> ChunkingOptions:
        return ChunkingOptions(self.settings.chunk_max_tokens,
                               min(self.settings.chunk_overlap_tokens, self.settings.chunk_max_tokens // 2))

    # ------------------------------------------------------------------------------------- ingestion

    async def start(self) -> None:
        """Resume ingestion of what is queued, and of what a process that died left ``processing``."""
        async with self.db.session() as session:
            queued = await archive_store.queued_archive_files(session, limit=10_000)
            stale = await archive_store.queued_archive_files(
                session, limit=10_000, processing_before=utcnow() - timedelta(seconds=self.settings.ingest_stale_s))
        for archive_file_id in queued:
            self.enqueue(archive_file_id)
        for archive_file_id in stale:
            self.enqueue(archive_file_id, stale=True)

    def enqueue(self, archive_file_id: uuid.UUID, *, stale: bool = False) -> None:
        """Ingest the archive file in the background (``concurrency`` at a time); answers at once."""
        task = asyncio.get_running_loop().create_task(self._ingest_later(archive_file_id, stale),
                                                      name=f"ingest-{archive_file_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ingest_later(self, archive_file_id: uuid.UUID, stale: bool) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.ingest_concurrency)
        async with self._slots:
            try:
                await self.ingest(archive_file_id, from_statuses=("queued", "processing") if stale else ("queued",))
            except Exception:
                logger.exception("ingestion of archive file %s failed", archive_file_id)

    async def wait_idle(self) -> None:
        """Until every ingestion started here has ended (tests, the CLI, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop ingesting (what was cut is ``processing``, taken again after ``ingest_stale_s``)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def ingest(self, archive_file_id: uuid.UUID, *, from_statuses: Sequence[str] = ("queued",)) -> str:
        """Ingest one archive file now; returns its final status (``ready``/``failed``), or ``skipped`` when
        another process took it or it is gone."""
        async with self.db.write_session() as session:
            claimed = await archive_store.claim_archive_file(session, archive_file_id, from_statuses=from_statuses)
            if claimed is None:
                return "skipped"
            archive = await session.get(Archive, claimed.archive_id)
            stored = await session.get(StoredFile, claimed.file_id)
            await session.commit()
        if archive is None or stored is None:
            return "skipped"
        try:
            chunks, vectors, dimensions = await self._prepare(archive, stored)
        except (KnowledgeError, AgentAdapterError, ImportError) as exc:  # ImportError: the knowledge extra is missing
            code = "not_installed" if isinstance(exc, ImportError) else getattr(exc, "code", None) or type(exc).__name__
            await self._finish(archive_file_id, "failed", error={"code": code, "message": str(exc)})
            return "failed"
        async with self.db.write_session() as session:
            pgvector = await self._has_pgvector(session)
            if pgvector and dimensions not in self._vector_indexes:
                await archive_store.ensure_vector_index(session, dimensions)
                self._vector_indexes.add(dimensions)
            row = await archive_store.claim_archive_file(session, archive_file_id, from_statuses=("processing",))
            if row is None:
                return "skipped"  # removed from the archive meanwhile
            await archive_store.replace_chunks(session, row, chunks, vectors=vectors, pgvector=pgvector)
            current = await session.get(Archive, archive.id, populate_existing=True)
            if current is not None and current.dimensions is None:
                current.dimensions = dimensions
            await archive_store.set_archive_file_status(session, archive_file_id, "ready", chunk_count=len(chunks),
                                                        embedding_model=archive.embedding_model)
            await session.commit()
        return "ready"

    async def _finish(self, archive_file_id: uuid.UUID, status: str, *, error: dict[str, Any] | None) -> None:
        async with self.db.write_session() as session:
            await archive_store.set_archive_file_status(session, archive_file_id, status, error=error, chunk_count=0)
            await session.commit()

    async def _prepare(self, archive: Archive, stored: StoredFile) -> tuple[list[dict[str, Any]], list[list[float]],
                                                                           int]:
        data = await self.storage.get(stored.storage_key)
        options = ChunkingOptions(archive.chunk_max_tokens, min(archive.chunk_overlap_tokens,
                                                                archive.chunk_max_tokens // 2))

        def cut() -> list[Any]:
            try:
                return chunk_document(self.extractors.extract(data, stored.media_type), options)
            except ImportError as exc:  # the knowledge extra is missing: say so on the file, not in a log only
                raise ExtractionError(f"this server cannot read {stored.media_type} files: {exc}; the operator "
                                      "installs pip install 'agentadapter[knowledge]'", code="not_installed") from exc

        pieces = await asyncio.to_thread(cut)
        vectors: list[list[float]] = []
        batch = self.settings.embed_batch
        for offset in range(0, len(pieces), batch):
            texts = [piece.text for piece in pieces[offset:offset + batch]]
            response = await self.llm.embed(archive.embedding_model, texts, input_type="document",
                                            tags={"purpose": "knowledge", "tenant": str(archive.tenant_id)})
            vectors.extend(response.vectors)
        dimensions = len(vectors[0]) if vectors else 0
        rows = [{"ordinal": index, "text": piece.text, "page": piece.page,
                 "section": piece.section[:500] if piece.section else None, "char_start": piece.char_start,
                 "char_end": piece.char_end, "tokens": piece.tokens, "dimensions": dimensions,
                 "embedding": to_blob(vector)} for index, (piece, vector) in enumerate(zip(pieces, vectors,
                                                                                            strict=True))]
        return rows, vectors, dimensions

    async def _has_pgvector(self, session: Any) -> bool:
        if self._pgvector is None:
            self._pgvector = await archive_store.has_vector_column(session)
        return self._pgvector

    # ---------------------------------------------------------------------------------------- search

    async def search(self, tenant_id: uuid.UUID, archives: Sequence[Archive], query: str, *, k: int = 8,
                     file_ids: Sequence[uuid.UUID] | None = None,
                     media_types: Sequence[str] | None = None) -> list[SearchHit]:
        """The ``k`` best chunks of ``archives`` (the tenant's, checked by the caller) for ``query``."""
        if not archives or not query.strip():
            return []
        candidates = max(4 * k, 20)
        names = {archive.id: archive.name for archive in archives}
        where = ChunkFilter([a.id for a in archives], file_ids=file_ids, media_types=media_types)
        by_model: dict[str, list[Archive]] = {}
        for archive in archives:
            if archive.dimensions:
                by_model.setdefault(archive.embedding_model, []).append(archive)
        vector_hits: list[tuple[int, float]] = []
        for model, group in by_model.items():
            response = await self.llm.embed(model, [query], input_type="query",
                                            tags={"purpose": "knowledge", "tenant": str(tenant_id)})
            vector_hits.extend(await self._vector_hits(tenant_id, group, response.vectors[0], where, candidates))
        vector_hits.sort(key=lambda pair: -pair[1])
        async with self.db.session() as session:
            keyword_hits = await archive_store.keyword_search(session, tenant_id, query, where, candidates)
            vector_ranking = [str(chunk_id) for chunk_id, _ in vector_hits[:candidates]]
            keyword_ranking = [str(chunk_id) for chunk_id, _ in keyword_hits]
            fused = reciprocal_rank_fusion([vector_ranking, keyword_ranking])[:k]
            rows = await archive_store.chunks_by_id(session, tenant_id, [int(chunk_id) for chunk_id, _ in fused])
        vector_rank = {chunk_id: rank for rank, chunk_id in enumerate(vector_ranking, start=1)}
        keyword_rank = {chunk_id: rank for rank, chunk_id in enumerate(keyword_ranking, start=1)}
        hits = []
        for chunk_id, score in fused:
            row = rows.get(int(chunk_id))
            if row is None:
                continue  # deleted between the ranking and the read
            hits.append(SearchHit(row.id, score, row.archive_id, names.get(row.archive_id, ""), row.file_id,
                                  row.filename, row.media_type, row.text, row.page, row.section, row.char_start,
                                  row.char_end, vector_rank.get(chunk_id), keyword_rank.get(chunk_id)))
        return hits

    async def _vector_hits(self, tenant_id: uuid.UUID, archives: Sequence[Archive], query: Sequence[float],
                           where: ChunkFilter, k: int) -> list[tuple[int, float]]:
        dimensions = len(query)
        async with self.db.session() as session:
            if await self._has_pgvector(session):
                group = ChunkFilter([a.id for a in archives], file_ids=where.file_ids, media_types=where.media_types)
                return await archive_store.vector_search(session, tenant_id, query, dimensions, group, k)
            allowed: set[str] | None = None
            if where.file_ids is not None or where.media_types is not None:
                allowed = {str(f) for f in await archive_store.filtered_file_ids(session, tenant_id, where)}
            hits: list[tuple[int, float]] = []
            for archive in archives:
                matrix = await self._matrix(session, tenant_id, archive, dimensions)
                hits.extend((int(chunk_id), score) for chunk_id, score in
                            matrix.search(query, k, allowed_groups=allowed))
        return hits

    async def _matrix(self, session: Any, tenant_id: uuid.UUID, archive: Archive, dimensions: int) -> VectorMatrix:
        version = await archive_store.index_version(session, tenant_id, archive.id)
        cached = self._matrices.get(archive.id)
        if cached is not None and cached.version == version and cached.matrix.dimensions == dimensions:
            self._matrices.move_to_end(archive.id)
            return cached.matrix
        ids, blobs, files = await archive_store.load_vectors(session, tenant_id, archive.id, dimensions)
        matrix = await asyncio.to_thread(VectorMatrix, ids, blobs, dimensions, files)
        self._matrices[archive.id] = _CachedMatrix(version, matrix)
        self._matrices.move_to_end(archive.id)
        budget = self.settings.vector_cache_mb * 1024 * 1024
        while len(self._matrices) > 1 and sum(c.matrix.matrix.nbytes for c in self._matrices.values()) > budget:
            self._matrices.popitem(last=False)  # the least recently searched archive loads again when needed
        return matrix


_BY_DATABASE: dict[int, Knowledge] = {}


def knowledge_of(parts: Any) -> Knowledge | None:
    """The knowledge runtime of a process's parts: its own (``parts.knowledge``), else one made for its
    database and facade (a worker's runtime); None for parts without a database."""
    own = getattr(parts, "knowledge", None)
    if isinstance(own, Knowledge):
        return own
    db = getattr(parts, "db", None)
    settings = getattr(parts, "settings", None)
    if db is None:
        return None
    made = _BY_DATABASE.get(id(db))
    if made is None or made.db is not db:
        data_dir = getattr(settings, "data_dir", None) or Path.cwd()
        made = Knowledge.of(db, parts.llm, Path(data_dir))
        _BY_DATABASE[id(db)] = made
    return made
