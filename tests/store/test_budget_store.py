"""The budgets' database store: two LLMs on two connections to one database (two server processes)
cannot spend past a budget together, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from agentadapter.llm.errors import BudgetExceededError
from agentadapter.llm.policy.budget import Budget, BudgetAlert, BudgetGuard
from agentadapter.store.budgets import DatabaseBudgetStore
from agentadapter.store.database import Database
from agentadapter.testing import offline_llm
from fakes.priced import PRICE_PER_TOKEN, PRICED_MODEL, priced_backend
from store.databases import unique

CALL = 1000 * PRICE_PER_TOKEN  # $0.125: each call's estimate and actual cost


async def test_two_llms_sharing_the_database_cannot_overspend_a_budget(db: Database, database_url: str) -> None:
    scope = f"tag:test={unique('burst')}"  # the PostgreSQL database is shared: a budget of its own
    second = Database(database_url)  # another process's connection pool
    alerts: list[BudgetAlert] = []
    llms = [
        offline_llm(backends={"priced": priced_backend()}, budgets=BudgetGuard(
            [Budget(scope, 5 * CALL, "day", alert_at=0.5)], store=DatabaseBudgetStore(database),
            on_alert=[alerts.append]))
        for database in (db, second)
    ]
    tags = {"test": scope.split("=", 1)[1]}
    try:
        results = await asyncio.gather(
            *(llms[i % 2].generate(PRICED_MODEL, "hi", max_tokens=1000, tags=tags) for i in range(24)),
            return_exceptions=True,
        )
        answered = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BudgetExceededError)]
        assert len(answered) == 5 and len(refused) == 19, results
        assert {r.cost_usd for r in answered} == {CALL}
        for llm in llms:
            assert await llm.budgets.spent(scope, "day") == 5 * CALL
        assert len(alerts) == 1  # one alert across both processes
        # Everything settled: nothing stays reserved, so a call that fits the rest of a new budget goes through.
        ok, used = await llms[0].budgets.store.try_reserve(
            f"{scope}|day|{dt.datetime.now(dt.UTC):%Y-%m-%d}", 0.0, 5 * CALL)
        assert ok and used == 5 * CALL
        with pytest.raises(BudgetExceededError, match="is spent or reserved"):
            await llms[1].generate(PRICED_MODEL, "one more", max_tokens=1, tags=tags)
    finally:
        for llm in llms:
            await llm.aclose()
        await second.dispose()


async def test_the_store_settles_and_reports_spend(db: Database) -> None:
    store = DatabaseBudgetStore(db)
    key = unique("global|day") + "|" + "x" * 400  # longer than the column: stored under a digest
    assert await store.spent(key) == 0.0
    assert await store.try_reserve(key, 0.75, 1.0) == (True, 0.0)
    assert await store.try_reserve(key, 0.5, 1.0) == (False, 0.75)
    assert await store.settle(key, 0.75, 0.25) == 0.25
    assert await store.try_reserve(key, 0.5, 1.0) == (True, 0.25)
    assert await store.settle(key, 0.5, 0.5) == 0.75
    assert await store.spent(key) == 0.75
    assert await store.mark_alerted(key) is True
    assert await store.mark_alerted(key) is False
