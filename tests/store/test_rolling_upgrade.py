"""Rolling upgrades: the newest migration only expands, and the previous schema serves today's reads.

During a rolling upgrade the migration runs while instances of the previous release still serve, and
new instances start while old ones still write (docs/operations.md, "Rolling upgrades: expand, then
contract"). On SQLite, from an empty database:

- migrated to the revision before the newest, then to the newest: no table or column the previous
  revision had is gone, and every column the newest adds to an existing table is nullable or has a
  server default (so the previous release's inserts, which do not name it, still work);
- at the revision before the newest, every mapped class of the current models whose table the newest
  migration did not touch is read through the ORM (the current code's read path: every column it maps),
  and the current code's tenant bootstrap and run listing work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agentadapter.store import migrate, tenants
from agentadapter.store import runs as run_store
from agentadapter.store.database import Database
from agentadapter.store.models import Base


def _previous_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    newest = script.get_revision(migrate.head())
    assert newest is not None and isinstance(newest.down_revision, str), "the newest migration must have one parent"
    return newest.down_revision


async def _schema(db: Database) -> dict[str, dict[str, dict[str, Any]]]:
    """Table -> column -> {nullable, default} as the database has them."""

    def reflect(connection: sa.Connection) -> dict[str, dict[str, dict[str, Any]]]:
        inspector = sa.inspect(connection)
        return {table: {c["name"]: {"nullable": c["nullable"], "default": c.get("default")}
                        for c in inspector.get_columns(table)}
                for table in inspector.get_table_names() if table != "alembic_version"}

    async with db.engine.connect() as connection:
        return await connection.run_sync(reflect)


async def _database_at(path: Path, revision: str) -> Database:
    db = Database(f"sqlite:///{path}")
    await migrate.upgrade(db, revision)
    return db


async def test_the_newest_migration_only_expands(tmp_path: Path) -> None:
    db = await _database_at(tmp_path / "upgrade.db", _previous_revision())
    try:
        before = await _schema(db)
        await migrate.upgrade(db)
        after = await _schema(db)
    finally:
        await db.dispose()
    assert set(before) <= set(after), f"tables dropped: {sorted(set(before) - set(after))}"
    for table, columns in before.items():
        assert set(columns) <= set(after[table]), f"{table}: columns dropped {sorted(set(columns) - set(after[table]))}"
        for name in set(after[table]) - set(columns):
            added = after[table][name]
            assert added["nullable"] or added["default"] is not None, (
                f"{table}.{name} was added NOT NULL without a server default: the previous release's inserts into "
                f"{table} would fail during a rolling upgrade (add it nullable now, constrain it in a later release)")


async def test_the_previous_schema_serves_the_current_reads_of_untouched_tables(tmp_path: Path) -> None:
    newest = await _database_at(tmp_path / "newest.db", "head")
    try:
        at_head = await _schema(newest)
    finally:
        await newest.dispose()
    db = await _database_at(tmp_path / "previous.db", _previous_revision())
    try:
        previous = await _schema(db)
        untouched = {t for t, columns in previous.items() if at_head.get(t) == columns}
        assert untouched, "the newest migration touched every table"
        async with db.writer() as session:  # the current code's bootstrap of the default tenant
            tenant = await tenants.ensure_tenant(session)
        read = []
        async with db.session() as session:
            for mapper in Base.registry.mappers:
                table = mapper.local_table
                if isinstance(table, sa.Table) and table.name in untouched:
                    await session.execute(sa.select(mapper.class_).limit(1))
                    read.append(table.name)
            if "runs" in untouched:
                await run_store.list_runs(session, tenant.id, limit=10)
        assert {"tenants", "runs"} <= untouched, untouched
        assert "runs" in read and "tenants" in read, read
    finally:
        await db.dispose()
