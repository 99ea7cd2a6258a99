"""Tenant credits: grants, a concurrent burst that cannot overdraw the balance, charges recorded once per
reservation, and unmetered tenants - on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from agentadapter.llm.errors import InsufficientCreditsError, InvalidRequestError
from agentadapter.store import credits
from agentadapter.store.database import Database
from agentadapter.store.models import Tenant
from agentadapter.testing import offline_llm
from fakes.priced import PRICE_PER_TOKEN, PRICED_MODEL, priced_backend

CALL = 1000 * PRICE_PER_TOKEN  # $0.125


async def fund(db: Database, tenant: Tenant, amount: float) -> None:
    async with db.writer() as session:
        await credits.grant(session, tenant.id, amount, actor="test", description="top-up")


async def charges(db: Database, tenant: Tenant) -> list[float]:
    async with db.session() as session:
        page = await credits.transactions(session, tenant.id, limit=100, kind="charge")
    return [t.amount_usd for t in page.items]


async def test_a_concurrent_burst_cannot_overdraw_the_balance(db: Database, tenant: Tenant) -> None:
    await fund(db, tenant, 10 * CALL)
    guard = credits.CreditGuard(db, tenant.id, required=False)
    llm = offline_llm(backends={"priced": priced_backend()}, guards=[guard])
    try:
        results = await asyncio.gather(
            *(llm.generate(PRICED_MODEL, "hi", max_tokens=1000) for _ in range(40)), return_exceptions=True)
    finally:
        await llm.aclose()
    answered = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    # Actual costs equal the estimates, so exactly the ten calls the balance covers go through.
    assert len(answered) == 10 and len(refused) == 30, results
    assert "held by calls in progress" in str(refused[0]) and "agentadapter credits add" in str(refused[0])
    assert refused[0].needed_usd == CALL
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
    assert account is not None
    assert account.balance_usd >= 0 and account.reserved_usd == 0
    spent = sum(r.cost_usd for r in answered)
    assert 10 * CALL - account.balance_usd == pytest.approx(spent)
    assert -sum(await charges(db, tenant)) == pytest.approx(spent)


async def test_settling_one_reservation_twice_charges_once(db: Database, tenant: Tenant) -> None:
    await fund(db, tenant, 1.0)
    guard = credits.CreditGuard(db, tenant.id, required=False)
    hold = await guard.reserve(0.5, {})
    assert isinstance(hold, credits.CreditHold)
    again = credits.CreditHold(guard, hold.id, hold.amount_usd)  # the same reservation, settled elsewhere
    await hold.settle(0.25)
    await again.settle(0.25)
    await hold.settle(0.25)
    assert await charges(db, tenant) == [-0.25]
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
        history = await credits.transactions(session, tenant.id)
    assert account is not None and (account.balance_usd, account.reserved_usd) == (0.75, 0.0)
    assert [(t.kind, t.amount_usd, t.balance_after_usd) for t in history.items] == [
        ("charge", -0.25, 0.75), ("grant", 1.0, 1.0)]
    assert history.items[0].reservation_id == hold.id and history.items[1].actor == "test"


async def test_a_tenant_without_an_account_is_unmetered_unless_credits_are_required(db: Database,
                                                                                   tenant: Tenant) -> None:
    relaxed = credits.guard_factory(db, required=False)
    strict = credits.guard_factory(db, required=True)
    assert await relaxed(tenant.id) == []
    async with db.session() as session:
        await credits.check_can_start(session, tenant.id, required=False)
        with pytest.raises(InsufficientCreditsError, match="AGENTADAPTER_CREDITS_REQUIRED"):
            await credits.check_can_start(session, tenant.id, required=True)
    [guard] = await strict(tenant.id)
    llm = offline_llm(backends={"priced": priced_backend()}, guards=[guard])
    try:
        with pytest.raises(InsufficientCreditsError, match="has none; nothing was sent"):
            await llm.generate(PRICED_MODEL, "hi", max_tokens=10)
        await fund(db, tenant, CALL)
        assert len(await relaxed(tenant.id)) == 1  # metered from its first grant on
        answer = await llm.generate(PRICED_MODEL, "hi", max_tokens=1000)
        assert answer.cost_usd == CALL
        async with db.session() as session:
            with pytest.raises(InsufficientCreditsError, match="nothing is left"):
                await credits.check_can_start(session, tenant.id, required=False)
    finally:
        await llm.aclose()


async def test_grants_must_be_positive(db: Database, tenant: Tenant) -> None:
    for amount in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidRequestError, match="positive amount"):
            await fund(db, tenant, amount)
    async with db.session() as session:
        assert await credits.account(session, tenant.id) is None
