"""The budgets' spend and reservations in the database, shared by every server process.

:class:`DatabaseBudgetStore` is the :class:`~agentadapter.llm.policy.budget.BudgetStore` of the
service: one ``budget_counters`` row per budget window (``<scope>|<window>|<window key>``), holding
what is committed and what calls in flight have reserved. A reservation is one conditional
``UPDATE`` (``... WHERE committed + reserved + amount <= limit``), which the database applies
atomically however many processes reserve at once: two servers sharing the database cannot spend
past a limit together. The row is created first, if missing, by ``INSERT .. ON CONFLICT DO
NOTHING``. The budgets themselves come from ``agentadapter.yaml`` (``budgets:``); the server points
its ``LLM``'s budget guard at this store.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.database import Database
from agentadapter.store.models import BudgetCounter, utcnow

__all__ = ["DatabaseBudgetStore"]

_KEY_LENGTH = 300


def _stored_key(key: str) -> str:
    """``key`` itself, or (past the column's 300 characters) its start and a digest of the whole."""
    if len(key) <= _KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{key[:_KEY_LENGTH - len(digest) - 1]}#{digest}"


class DatabaseBudgetStore:
    """Budget counters on the service's database (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _ensure(self, session: AsyncSession, key: str) -> None:
        insert: Any = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        await session.execute(
            insert(BudgetCounter)
            .values(key=key, committed_usd=0.0, reserved_usd=0.0, alerted=False, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key"])
        )

    async def try_reserve(self, key: str, amount: float, limit: float) -> tuple[bool, float]:
        key = _stored_key(key)
        table = BudgetCounter
        async with self.db.writer() as session:
            await self._ensure(session, key)
            reserved = (await session.execute(
                sa.update(table)
                .where(table.key == key, table.committed_usd + table.reserved_usd + amount <= limit)
                .values(reserved_usd=table.reserved_usd + amount, updated_at=utcnow())
                .returning(table.committed_usd, table.reserved_usd)
            )).first()
            if reserved is not None:
                return True, float(reserved.committed_usd + reserved.reserved_usd - amount)
            used = (await session.execute(
                sa.select(table.committed_usd + table.reserved_usd).where(table.key == key)
            )).scalar_one()
            return False, float(used)

    async def settle(self, key: str, reserved: float, actual: float) -> float:
        key = _stored_key(key)
        table = BudgetCounter
        left = table.reserved_usd - reserved
        statement = (
            sa.update(table)
            .where(table.key == key)
            .values(reserved_usd=sa.case((left > 0, left), else_=0.0), committed_usd=table.committed_usd + actual,
                    updated_at=utcnow())
            .returning(table.committed_usd)
        )
        async with self.db.writer() as session:
            committed = (await session.execute(statement)).scalar_one_or_none()
            if committed is None:  # the row was deleted (counters reset) while the call was in flight
                await self._ensure(session, key)
                committed = (await session.execute(statement)).scalar_one()
            return float(committed)

    async def spent(self, key: str) -> float:
        async with self.db.session() as session:
            committed = await session.scalar(
                sa.select(BudgetCounter.committed_usd).where(BudgetCounter.key == _stored_key(key)))
        return float(committed or 0.0)

    async def mark_alerted(self, key: str) -> bool:
        key = _stored_key(key)
        async with self.db.writer() as session:
            await self._ensure(session, key)
            first = (await session.execute(
                sa.update(BudgetCounter)
                .where(BudgetCounter.key == key, BudgetCounter.alerted.is_(False))
                .values(alerted=True, updated_at=utcnow())
                .returning(BudgetCounter.key)
            )).first()
            return first is not None
