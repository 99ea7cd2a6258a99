"""Migrations: the models and the migrations agree (autogenerate finds nothing), and they go up and down.

Both run on SQLite (a fresh file) and on PostgreSQL (the session's throw-away database), the two
databases the service supports.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from agentadapter.llm.errors import ConfigurationError
from agentadapter.store import migrate, tenants
from agentadapter.store.database import Database, normalize_url
from agentadapter.store.files_models import FTS_TABLE, include_object
from agentadapter.store.models import Base, CreditAccount, CreditTransaction
from services import postgres_url_or_skip
from store.databases import forget_migrated

TABLES = {t.name for t in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = postgres_url_or_skip()
        forget_migrated(url)
    db = Database(url)
    try:
        await migrate.downgrade(db, "base") if await migrate.current(db) else None
        yield db
    finally:
        await migrate.upgrade(db)  # leave the shared database migrated for the other tests
        await db.dispose()


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    # SQLite's full-text index of the knowledge chunks is a virtual table and its shadow tables, made by the
    # migration outside the models.
    return {name for name in names if not name.startswith(FTS_TABLE)} - {"alembic_version"}


async def _difference(db: Database) -> list[object]:
    async with db.engine.connect() as connection:
        return await connection.run_sync(lambda sync: compare_metadata(
            MigrationContext.configure(sync, opts={"compare_type": True, "include_object": include_object}), Base.metadata))


async def test_upgrade_creates_the_models_tables_and_autogenerate_finds_no_difference(empty_db: Database) -> None:
    assert await migrate.current(empty_db) is None
    assert await migrate.upgrade(empty_db) == migrate.head()
    assert await _tables(empty_db) == TABLES
    assert await _difference(empty_db) == []


async def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    assert await migrate.downgrade(empty_db, "base") is None
    assert await _tables(empty_db) == set()
    assert await migrate.current(empty_db) is None
    await migrate.upgrade(empty_db)
    assert await migrate.current(empty_db) == migrate.head()
    assert await _difference(empty_db) == []


async def test_the_accounts_charged_total_is_backfilled_from_the_charges_recorded(empty_db: Database) -> None:
    await migrate.upgrade(empty_db, "0010")
    async with empty_db.writer() as session:
        tenant = await tenants.create_tenant(session, "backfill")
        now = datetime.now(UTC)
        # The account as revision 0010 has it (the model has the new column already).
        await session.execute(sa.text(
            "INSERT INTO credit_accounts (tenant_id, balance_usd, reserved_usd, created_at, updated_at) "
            "VALUES (:tenant, 6.5, 0, :now, :now)").bindparams(sa.bindparam("tenant", type_=sa.Uuid()),
                                                              sa.bindparam("now", type_=sa.DateTime(timezone=True))),
            {"tenant": tenant.id, "now": now})
        for kind, amount in (("grant", 10.0), ("charge", -1.5), ("charge", -2.0), ("adjustment", 0.0)):
            session.add(CreditTransaction(id=uuid.uuid4(), tenant_id=tenant.id, kind=kind, amount_usd=amount,
                                          balance_after_usd=0.0, reserved_usd=0.0, description="", details={},
                                          created_at=now))
    await migrate.upgrade(empty_db)
    async with empty_db.session() as session:
        account = await session.get(CreditAccount, tenant.id)
    assert account is not None and account.charged_usd == 3.5


async def test_upgrade_is_idempotent(empty_db: Database) -> None:
    first = await migrate.upgrade(empty_db)
    assert await migrate.upgrade(empty_db) == first


async def test_sqlite_connections_use_wal_and_foreign_keys_and_never_wait_on_the_loop(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with db.engine.connect() as connection:
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            cache = (await connection.exec_driver_sql("PRAGMA cache_size")).scalar()
        # cache_size < 0 is KiB: every pooled connection's page cache stays small (flat server memory).
        # busy_timeout 0: statements run on the event loop's thread, so a writer waits for another
        # process's lock asynchronously (tests/store/test_sqlite_driver.py), never in SQLite's busy handler.
        assert (journal, timeout, foreign_keys, cache) == ("wal", 0, 1, -256)
    finally:
        await db.dispose()


def test_database_urls_are_normalized_to_async_drivers(tmp_path: Path) -> None:
    assert normalize_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
    assert normalize_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert normalize_url(f"sqlite:///{tmp_path}/x.db") == f"sqlite+aiosqlite:///{tmp_path}/x.db"
    for bad in ("mysql://u@h/d", "postgresql+psycopg2://u@h/d", "not a url"):
        with pytest.raises(ConfigurationError):
            normalize_url(bad)


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert migrate.head() == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == "0011"
