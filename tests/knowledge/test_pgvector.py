"""The same API on PostgreSQL with pgvector (a private PostgreSQL 16 server): the migration adds the vector
column, ingestion fills it and makes the HNSW index, and search ranks by it - with the same answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from agentadapter.server.app import create_app
from agentadapter.store import migrate
from agentadapter.store.database import Database
from agentadapter.testing import FunctionBackend, offline_llm
from knowledge import test_api, test_rag
from knowledge.servers import PgvectorServer
from server.conftest import Api, make_settings, server_settings


@pytest.fixture
async def pgvector_api(pgvector_server: PgvectorServer, tmp_path: Path) -> AsyncIterator[Api]:
    import httpx

    name = f"knowledge_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pgvector_server.url().replace("postgresql://", "postgres://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = pgvector_server.url(name)
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()
    llm = offline_llm(backends={"reader": FunctionBackend(test_rag.reader, name="reader")})
    app = create_app(make_settings(url, tmp_path), server_settings=server_settings(), llm=llm)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app, client)
    await llm.aclose()


async def _vector_state(api: Api) -> tuple[bool, list[str]]:
    async with api.state.db.session() as session:
        column = await session.scalar(sa.text(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'knowledge_chunks' "
            "AND column_name = 'embedding_vector'"))
        indexes = list(await session.scalars(sa.text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'knowledge_chunks' AND indexdef LIKE '%hnsw%'")))
    return bool(column), indexes


async def test_search_and_rag_on_pgvector(pgvector_api: Api) -> None:
    api = pgvector_api
    await test_api.test_upload_ingest_and_search_with_citations(api)
    column, indexes = await _vector_state(api)
    assert column and indexes == ["ix_knowledge_chunks_hnsw_384"]
    async with api.state.db.session() as session:
        filled = await session.scalar(sa.text("SELECT count(*) FROM knowledge_chunks WHERE embedding_vector IS NULL"))
    assert filled == 0
    await test_rag.test_agents_search_the_settings_archives_and_cite_them(api)
    await test_api.test_tenants_never_see_each_others_files_archives_or_hits(api)
