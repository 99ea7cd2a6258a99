"""Erasure in the database: every row of a user (or of a tenant) deleted, every mention of them scrubbed.

The known relations are followed first - a user's runs (their agent steps, messages and events
cascade) and those runs' usage records, the user's API keys and their usage records, the files the
user uploaded (memberships and index chunks cascade), the user row (settings and consents cascade,
``created_by`` references become NULL) - and then every table of the metadata is swept, so a table
added later is covered without being named here: a UUID column holding one of the user's ids is
set NULL (or its row deleted when the column is required), and a text or JSON column whose value
mentions one of the user's identifiers (ids, e-mail, subject) has each mention replaced by
``[erased]`` (or its row deleted when the column is part of the key). A tenant's erasure deletes the
tenant row (every table with a ``tenant_id`` cascades from it) after deleting the rows of tables
that name the tenant without a foreign key (budget counters). The blobs of deleted files are the
caller's to remove (their keys are returned), after the transaction commits.

A deleted row's bytes stay in the database file until its page is reused: on SQLite the erasure's
transaction runs with ``secure_delete`` (freed content is overwritten with zeros) and
:func:`checkpoint` then moves the write-ahead log into the file and truncates it, so the old pages
are gone from both. PostgreSQL removes dead tuples at its next (auto)vacuum.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.database import Database
from agentadapter.store.files_models import ArchiveFile, StoredFile
from agentadapter.store.models import ApiKey, Base, Run, Tenant, UsageRecord, User

__all__ = [
    "ERASED",
    "ErasureCounts",
    "checkpoint",
    "erase_tenant_rows",
    "erase_user_rows",
    "secure_delete",
    "user_identifiers",
]

ERASED = "[erased]"
PERSONAL_TABLES = ("threads",)
"""Tables (beside runs) whose rows a user created are that user's own content (conversations): deleted
with them, where the other tables' rows they created (agents, workflows, datasets) stay the tenant's."""
MIN_IDENTIFIER_LENGTH = 6
"""Identifiers shorter than this (a subject like ``bob``) are not searched in free text: they hit ordinary words."""


@dataclass(slots=True)
class ErasureCounts:
    """What an erasure removed: rows deleted and rows scrubbed per table, and the blobs to delete."""

    deleted: dict[str, int] = field(default_factory=dict)
    scrubbed: dict[str, int] = field(default_factory=dict)
    storage_keys: list[str] = field(default_factory=list)
    api_key_ids: list[uuid.UUID] = field(default_factory=list)

    def add(self, kind: dict[str, int], table: str, count: int) -> None:
        if count:
            kind[table] = kind.get(table, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": dict(sorted(self.deleted.items())),
            "scrubbed": dict(sorted(self.scrubbed.items())),
            "files_removed": len(self.storage_keys),
        }


async def secure_delete(session: AsyncSession, on: bool = True) -> None:
    """SQLite: overwrite what this session's connection deletes with zeros (a no-op elsewhere)."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(sa.text(f"PRAGMA secure_delete = {'ON' if on else 'OFF'}"))


async def checkpoint(db: Database) -> None:
    """SQLite: copy the write-ahead log into the database file and truncate it (a no-op elsewhere).

    Best effort: with a reader holding an old snapshot the log is not truncated now, only at a later
    checkpoint (SQLite makes one every thousand pages).
    """
    if db.dialect != "sqlite":
        return
    async with db.engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def user_identifiers(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> tuple[User, list[str]]:
    """The user and every string that identifies them (ids in both forms, e-mail, subject, API key ids)."""
    user: User | None = await session.scalar(sa.select(User).where(User.tenant_id == tenant_id, User.id == user_id))
    if user is None:
        from agentadapter.store.errors import RecordNotFound

        raise RecordNotFound("user", user_id)
    key_ids = list(await session.scalars(sa.select(ApiKey.id).where(ApiKey.user_id == user_id)))
    texts = {str(user_id), user_id.hex}
    for key_id in key_ids:
        texts |= {str(key_id), key_id.hex}
    for value in (user.email, user.subject, user.display_name):
        if value and len(value) >= MIN_IDENTIFIER_LENGTH and value != "default":
            texts.add(value)
    return user, sorted(texts, key=len, reverse=True)


async def erase_user_rows(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> ErasureCounts:
    """Delete and scrub everything of the user in the tenant, in the caller's transaction."""
    counts = ErasureCounts()
    _, identifiers = await user_identifiers(session, tenant_id, user_id)
    key_ids = list(await session.scalars(sa.select(ApiKey.id).where(ApiKey.user_id == user_id)))
    counts.api_key_ids = key_ids
    run_ids = list(
        await session.scalars(sa.select(Run.id).where(Run.tenant_id == tenant_id, Run.created_by == user_id))
    )
    await _count_children(session, counts, "run_id", run_ids)
    for start in range(0, len(run_ids), 500):
        batch = run_ids[start : start + 500]
        counts.add(
            counts.deleted,
            "usage_records",
            _rowcount(
                await session.execute(
                    sa.delete(UsageRecord).where(
                        UsageRecord.tenant_id == tenant_id, UsageRecord.run_id.in_([str(r) for r in batch])
                    )
                )
            ),
        )
        counts.add(counts.deleted, "runs", _rowcount(await session.execute(sa.delete(Run).where(Run.id.in_(batch)))))
    for name in PERSONAL_TABLES:
        table = Base.metadata.tables.get(name)
        if table is not None and "created_by" in table.c and "tenant_id" in table.c:
            result = await session.execute(
                sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.created_by == user_id)
            )
            counts.add(counts.deleted, name, _rowcount(result))
    if key_ids:
        counts.add(
            counts.deleted,
            "usage_records",
            _rowcount(
                await session.execute(
                    sa.delete(UsageRecord).where(
                        UsageRecord.tenant_id == tenant_id, UsageRecord.api_key_id.in_([str(k) for k in key_ids])
                    )
                )
            ),
        )
    files = (
        await session.execute(
            sa.select(StoredFile.id, StoredFile.storage_key).where(
                StoredFile.tenant_id == tenant_id, StoredFile.created_by == user_id
            )
        )
    ).all()
    if files:
        file_ids = [row[0] for row in files]
        from agentadapter.store.archives import bump_index_version

        for archive_id in set(
            await session.scalars(sa.select(ArchiveFile.archive_id).where(ArchiveFile.file_id.in_(file_ids)))
        ):
            await bump_index_version(session, archive_id)
        await _count_children(session, counts, "file_id", file_ids)
        counts.add(
            counts.deleted,
            "files",
            _rowcount(await session.execute(sa.delete(StoredFile).where(StoredFile.id.in_(file_ids)))),
        )
        counts.storage_keys = [row[1] for row in files]
    counts.add(
        counts.deleted, "api_keys", _rowcount(await session.execute(sa.delete(ApiKey).where(ApiKey.user_id == user_id)))
    )
    await _count_children(session, counts, "user_id", [user_id], skip={"api_keys", "erasure_requests"})
    counts.add(
        counts.deleted,
        "users",
        _rowcount(await session.execute(sa.delete(User).where(User.tenant_id == tenant_id, User.id == user_id))),
    )
    await _sweep(session, counts, tenant_id, {user_id, *key_ids}, identifiers)
    return counts


async def erase_tenant_rows(session: AsyncSession, tenant_id: uuid.UUID) -> ErasureCounts:
    """Delete the tenant and every row it owns, in the caller's transaction."""
    counts = ErasureCounts()
    counts.storage_keys = list(
        await session.scalars(sa.select(StoredFile.storage_key).where(StoredFile.tenant_id == tenant_id))
    )
    texts = [str(tenant_id), tenant_id.hex]
    for table in Base.metadata.sorted_tables:
        if "tenant_id" in table.c:
            if table.name != "tenants":
                counts.add(
                    counts.deleted,
                    table.name,
                    int(
                        await session.scalar(
                            sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
                        )
                        or 0
                    ),
                )
            continue
        if table.name == "tenants":
            continue
        # A table that names tenants without a foreign key (budget counters' keys): its rows naming this one go.
        for column in _text_columns(table):
            condition = sa.or_(*(sa.cast(column, sa.Text).like(f"%{text}%") for text in texts))
            counts.add(counts.deleted, table.name, _rowcount(await session.execute(sa.delete(table).where(condition))))
    counts.add(
        counts.deleted, "tenants", _rowcount(await session.execute(sa.delete(Tenant).where(Tenant.id == tenant_id)))
    )
    return counts


async def _count_children(
    session: AsyncSession, counts: ErasureCounts, column: str, ids: list[uuid.UUID], skip: Iterable[str] = ()
) -> None:
    """Count the rows that cascade from deleting ``ids`` (tables whose ``column`` is a CASCADE foreign key)."""
    if not ids:
        return
    for table in Base.metadata.sorted_tables:
        if table.name in skip or column not in table.c:
            continue
        foreign = next(iter(table.c[column].foreign_keys), None)
        if foreign is None or foreign.ondelete != "CASCADE":
            continue
        for start in range(0, len(ids), 500):
            counts.add(
                counts.deleted,
                table.name,
                int(
                    await session.scalar(
                        sa.select(sa.func.count())
                        .select_from(table)
                        .where(table.c[column].in_(ids[start : start + 500]))
                    )
                    or 0
                ),
            )


def _text_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [c for c in table.c if isinstance(c.type, sa.String | sa.Text | sa.JSON)]


def _scrub(value: Any, identifiers: list[str]) -> Any:
    if isinstance(value, str):
        for text in identifiers:
            if text in value:
                value = value.replace(text, ERASED)
        return value
    if isinstance(value, Mapping):
        return {_scrub(k, identifiers): _scrub(v, identifiers) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, identifiers) for v in value]
    return value


async def _sweep(
    session: AsyncSession, counts: ErasureCounts, tenant_id: uuid.UUID, ids: set[uuid.UUID], identifiers: list[str]
) -> None:
    """Every table of the metadata: references to ``ids`` cleared, mentions of ``identifiers`` scrubbed."""
    for table in Base.metadata.sorted_tables:
        scope = [table.c.tenant_id == tenant_id] if "tenant_id" in table.c else []
        primary = [c for c in table.primary_key.columns]
        for column in table.c:
            if isinstance(column.type, sa.Uuid) and not column.primary_key:
                condition = sa.and_(*scope, column.in_(list(ids)))
                if column.nullable:
                    result = await session.execute(sa.update(table).where(condition).values({column.name: None}))
                    counts.add(counts.scrubbed, table.name, _rowcount(result))
                else:
                    result = await session.execute(sa.delete(table).where(condition))
                    counts.add(counts.deleted, table.name, _rowcount(result))
        for column in _text_columns(table):
            condition = sa.and_(*scope, sa.or_(*(sa.cast(column, sa.Text).like(f"%{text}%") for text in identifiers)))
            rows = (await session.execute(sa.select(*primary, column).where(condition))).all()
            for row in rows:
                key = {c.name: row[i] for i, c in enumerate(primary)}
                where = sa.and_(*(c == key[c.name] for c in primary))
                if column.primary_key:
                    counts.add(
                        counts.deleted, table.name, _rowcount(await session.execute(sa.delete(table).where(where)))
                    )
                    continue
                cleaned = _scrub(row[-1], identifiers)
                if cleaned != row[-1]:
                    await session.execute(sa.update(table).where(where).values({column.name: cleaned}))
                    counts.add(counts.scrubbed, table.name, 1)
