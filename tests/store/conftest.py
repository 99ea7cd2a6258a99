"""Fixtures for the store's tests: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentadapter.store import tenants
from agentadapter.store.database import Database
from agentadapter.store.models import Tenant
from store.databases import DATABASES, new_database_url, unique


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("templates")


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, template_dir: Path) -> str:
    return new_database_url(request.param, tmp_path, template_dir)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    async with db.writer() as session:
        return await tenants.create_tenant(session, unique("tenant"))


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    async with db.writer() as session:
        return await tenants.create_tenant(session, unique("other"))
