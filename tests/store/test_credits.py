"""Tenant credits: grants, a concurrent burst that cannot overdraw the balance, charges recorded once per
reservation, unmetered tenants, calls that cost more than their hold (bounded, and shown) and models
without a price - on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from agentadapter.llm import catalog
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.errors import InsufficientCreditsError, InvalidRequestError
from agentadapter.llm.messages import Request, Response, TextPart, Usage
from agentadapter.store import credits
from agentadapter.store.balances import ChargeSink, Settlement, charge_record
from agentadapter.store.database import Database
from agentadapter.store.models import CreditAccount, Tenant
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
    spent = sum(r.cost_usd or 0.0 for r in answered)
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
    assert account is not None and (account.balance_usd, account.reserved_usd, account.charged_usd) == (0.75, 0.0, 0.25)
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


# ------------------------------------------------------------------------------- bounds and overruns

OVERRUN_MODEL = "overrun/model"
"""Input $1 and output $125 per million tokens, writes at most 8,000 tokens."""


def _overrun_backend(calls_to_hold: int, arrived: list[Request]) -> FunctionBackend:
    """A provider whose usage reports far more than was estimated: 200,000 input tokens on every call,
    and 30,000 output tokens on every second call (beyond the max_tokens it was sent). Each call waits
    until ``calls_to_hold`` calls have arrived, so all their holds are taken before any is settled."""
    catalog.override(OVERRUN_MODEL, pricing={"input": 1.0, "output": 125.0}, max_output_tokens=8000)
    everyone_here = asyncio.Event()

    async def answer(request: Request) -> Response:
        arrived.append(request)
        number = len(arrived)
        if number >= calls_to_hold:
            everyone_here.set()
        await everyone_here.wait()
        output = 30_000 if number % 2 else request.max_tokens or 0
        return Response(id=f"overrun-{number}", provider="overrun", model=request.model,
                        parts=[TextPart("costly")], usage=Usage(input_tokens=200_000, output_tokens=output))

    return FunctionBackend(answer, name="overrun")


async def test_fifty_concurrent_overrunning_calls_leave_the_balance_above_minus_one_bound(
        db: Database, tenant: Tenant) -> None:
    arrived: list[Request] = []
    guard = credits.CreditGuard(db, tenant.id, required=False)
    llm = offline_llm(backends={"overrun": _overrun_backend(10, arrived)}, guards=[guard], default_max_tokens=1000)
    bound = llm.call_bound(OVERRUN_MODEL, llm.request("hi"))
    assert (bound.output_tokens, bound.output_enforced, bound.priced) == (1000, True, True)
    await fund(db, tenant, 10.5 * bound.usd)  # room for exactly ten holds
    overruns_before = REGISTRY.get_sample_value("agentadapter_credit_overruns_total") or 0.0
    try:
        async with asyncio.timeout(60):
            results = await asyncio.gather(*(llm.generate(OVERRUN_MODEL, "hi") for _ in range(50)),
                                           return_exceptions=True)
    finally:
        await llm.aclose()
    answered = [r for r in results if isinstance(r, Response)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert len(answered) == 10 and len(refused) == 40, results
    assert [r.max_tokens for r in arrived] == [1000] * 10  # the bound held is the bound sent
    assert all(r.cost_usd is not None and r.cost_usd > 2 * bound.usd for r in answered)
    assert sum(r.usage.output_tokens > 1000 for r in answered) == 5  # half wrote beyond their max_tokens

    async with db.session() as session:
        account = await credits.account(session, tenant.id)
        page = await credits.transactions(session, tenant.id, limit=100, kind="charge")
    assert account is not None
    assert account.reserved_usd == pytest.approx(0.0, abs=1e-12)  # every hold released
    # The first settled call took the balance below zero; no call took it further than one bound.
    assert -bound.usd - 1e-12 <= account.balance_usd < 0
    assert account.balance_usd == pytest.approx(-bound.usd)
    charged = page.items
    assert len(charged) == 10 and all(t.reserved_usd == pytest.approx(bound.usd) for t in charged)
    assert -sum(t.amount_usd for t in charged) == pytest.approx(10.5 * bound.usd - account.balance_usd)
    costs = sorted(r.cost_usd or 0.0 for r in answered)
    for entry in charged:  # every overrun shows: what it cost, what was held, charged and written off
        details = entry.details
        assert details["overrun_usd"] == pytest.approx(details["cost_usd"] - bound.usd) and details["overrun_usd"] > 0
        assert 0 <= details["uncollected_usd"] <= details["overrun_usd"]
        assert -entry.amount_usd == pytest.approx(details["cost_usd"] - details["uncollected_usd"])
        assert details["bound"] == bound.describe() and entry.description == "cost beyond the call's hold"
    assert sorted(t.details["cost_usd"] for t in charged) == pytest.approx(costs)
    assert REGISTRY.get_sample_value("agentadapter_credit_overruns_total") == overruns_before + 10


async def test_an_overrun_is_charged_in_full_when_the_balance_covers_it(db: Database, tenant: Tenant) -> None:
    await fund(db, tenant, 100.0)
    guard = credits.CreditGuard(db, tenant.id, required=False)
    hold = await guard.reserve(1.0, {})
    other = await guard.reserve(2.0, {})  # another call in progress: its hold is not drawn on
    await hold.settle(30.0)
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
        [entry] = (await credits.transactions(session, tenant.id, kind="charge")).items
    assert account is not None and (account.balance_usd, account.reserved_usd) == (70.0, 2.0)
    assert (entry.amount_usd, entry.details["overrun_usd"], entry.details["uncollected_usd"]) == (-30.0, 29.0, 0.0)
    await other.settle(1.5)
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
    assert account is not None and (account.balance_usd, account.reserved_usd) == (68.5, 0.0)


async def test_an_overrun_beyond_the_balance_stops_at_minus_its_own_hold(db: Database, tenant: Tenant) -> None:
    await fund(db, tenant, 1.0)
    guard = credits.CreditGuard(db, tenant.id, required=False)
    hold = await guard.reserve(0.5, {})
    await hold.settle(3.0)  # 0.5 available beyond the hold, plus the hold itself: 1.0 of the 2.5 overrun
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
        [entry] = (await credits.transactions(session, tenant.id, kind="charge")).items
    assert account is not None and (account.balance_usd, account.reserved_usd) == (-0.5, 0.0)
    assert (entry.amount_usd, entry.details["overrun_usd"], entry.details["uncollected_usd"]) == (-1.5, 2.5, 1.5)
    with pytest.raises(InsufficientCreditsError, match="available"):
        await guard.reserve(0.0, {})  # a negative balance holds nothing, not even a free call
    async with db.session() as session:
        with pytest.raises(InsufficientCreditsError, match="nothing is left"):
            await credits.check_can_start(session, tenant.id, required=False)


async def test_a_model_without_a_price_is_refused_or_held_at_the_operators_flat_amount(
        db: Database, tenant: Tenant) -> None:
    await fund(db, tenant, 1.0)
    backend = FunctionBackend(lambda request: "free?", name="mystery")
    strict = offline_llm(backends={"mystery": backend}, guards=[credits.CreditGuard(db, tenant.id, False)])
    flat = offline_llm(backends={"mystery": backend},
                       guards=[credits.CreditGuard(db, tenant.id, False, unpriced_hold_usd=0.25)])
    try:
        with pytest.raises(InsufficientCreditsError) as refused:
            await strict.generate("mystery/model", "hi", max_tokens=10)
        message = str(refused.value)
        assert "mystery/model has no known price" in message and "nothing was sent" in message
        assert "AGENTADAPTER_CREDIT_UNPRICED_HOLD_USD" in message and backend.requests == []
        answer = await flat.generate("mystery/model", "hi", max_tokens=10)
        assert answer.cost_usd is None
    finally:
        await strict.aclose()
        await flat.aclose()
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
        [entry] = (await credits.transactions(session, tenant.id, kind="charge")).items
    assert account is not None and (account.balance_usd, account.reserved_usd) == (0.75, 0.0)
    assert (entry.amount_usd, entry.details) == (-0.25, {})


async def test_charges_written_twice_move_the_balance_once(db: Database, tenant: Tenant) -> None:
    """A journal replayed after a crash hands the writer charges already in the database: a batch of only
    those inserts nothing and moves no balance (and must not fail: it would hold up every later batch)."""
    await fund(db, tenant, 10.0)
    records = [charge_record(tenant.id, uuid.uuid4(), Settlement(0.5, 9.5, 0.0, 0.0), 1.0, 0.5, {"model": "m"},
                              "call")
               for _ in range(3)]
    sink = ChargeSink()
    for _ in range(2):  # the batch, then the same batch replayed
        async with db.writer() as session:
            await sink.write(session, records)
    async with db.session() as session:
        account = await session.get(CreditAccount, tenant.id)
    assert account is not None and account.balance_usd == pytest.approx(8.5)
    assert account.charged_usd == pytest.approx(1.5)  # the running total Redis balances take charges from
    assert sorted(await charges(db, tenant)) == [-0.5, -0.5, -0.5]
