"""Budgets stop a call before it is sent, hold under a concurrent burst, and alert at a threshold."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from agentadapter import LLM
from agentadapter.llm.errors import BudgetExceededError, ConfigurationError
from agentadapter.llm.policy.budget import Budget, BudgetAlert, BudgetGuard
from fakes.openai_server import OpenAIFake

USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as server:
        yield server


def llm_with(fake: OpenAIFake, budget_specs: list[dict], **kwargs) -> LLM:
    environ = {"OPENAI_API_KEY": "sk-test-budget", "OPENAI_BASE_URL": f"{fake.url}/v1"}
    return LLM(config={"budgets": budget_specs}, environ=environ, **kwargs)


async def test_a_request_budget_stops_the_call_before_it_is_sent(fake):
    llm = llm_with(fake, [{"scope": "global", "limit_usd": 0.0001, "window": "request"}])
    with pytest.raises(BudgetExceededError, match="nothing was sent") as caught:
        await llm.generate("openai/gpt-4o", "hi", max_tokens=4000)  # 4000 x $10/M = $0.04 > $0.0001
    assert caught.value.scope == "global" and caught.value.limit_usd == 0.0001
    assert fake.requests == []
    await llm.aclose()


async def test_a_burst_of_concurrent_calls_cannot_exceed_a_day_budget(fake):
    # gpt-4o-mini: each call may cost ~ (few input + 1000 output) -> about $0.0006; the budget fits two.
    llm = llm_with(fake, [{"scope": "global", "limit_usd": 0.0013, "window": "day"}])
    for _ in range(10):
        fake.reply("ok", usage=USAGE)
    results = await asyncio.gather(
        *(llm.generate("openai/gpt-4o-mini", "hi", max_tokens=1000) for _ in range(10)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) == 2 and len(refused) == 8
    assert len(fake.requests) == 2  # refused calls never reached the server
    spent = await llm.budgets.spent("global", "day")
    assert spent == pytest.approx(2 * (1000 * 0.15 + 100 * 0.6) / 1e6)  # settled to the actual cost
    assert spent <= 0.0013
    await llm.aclose()


async def test_scoped_budgets_and_failed_calls_release_their_reservation(fake):
    llm = llm_with(fake, [{"scope": "agent:researcher", "limit_usd": 0.001, "window": "day"}])
    fake.fail(400, {"error": {"message": "bad"}})
    with pytest.raises(Exception, match="HTTP 400"):
        await llm.generate("openai/gpt-4o-mini", "hi", max_tokens=1000, tags={"agent": "researcher"})
    assert await llm.budgets.spent("agent:researcher", "day") == 0.0
    fake.reply("ok", usage=USAGE)
    await llm.generate("openai/gpt-4o-mini", "hi", max_tokens=1000, tags={"agent": "researcher"})
    fake.reply("other agents are not limited", usage=USAGE)
    for _ in range(3):
        fake.reply("x", usage=USAGE)
        await llm.generate("openai/gpt-4o-mini", "hi", max_tokens=5000, tags={"agent": "writer"})
    await llm.aclose()


async def test_an_alert_fires_once_at_its_threshold(fake):
    alerts: list[BudgetAlert] = []
    guard = BudgetGuard([Budget("global", 0.001, "day", alert_at=0.5)], on_alert=[alerts.append])
    llm = llm_with(fake, [], budgets=guard)
    for _ in range(4):
        fake.reply("ok", usage=USAGE)  # $0.00021 each: the 3rd call crosses $0.0005
        await llm.generate("openai/gpt-4o-mini", "hi", max_tokens=100)
    assert len(alerts) == 1
    assert alerts[0].spent_usd >= 0.0005 and alerts[0].threshold == 0.5
    await llm.aclose()


async def test_alert_webhook_and_async_callbacks():
    received: list[str] = []

    async def callback(alert: BudgetAlert) -> None:
        received.append("callback")

    async def webhook(alert: BudgetAlert) -> None:
        raise ConnectionError("hook down")  # a failing webhook never fails the call

    guard = BudgetGuard([Budget("global", 1.0, "total", alert_at=0.1)], on_alert=[callback], webhook=webhook)
    reservation = await guard.reserve(0.5, {})
    await reservation.settle(0.2)
    assert received == ["callback"]


async def test_windows_roll_over():
    now = [dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.UTC)]
    guard = BudgetGuard([Budget("global", 1.0, "day")], clock=lambda: now[0])
    await guard.reserve(0.9, {})
    with pytest.raises(BudgetExceededError):
        await guard.reserve(0.2, {})
    now[0] += dt.timedelta(minutes=2)  # a new day
    await guard.reserve(0.2, {})


@pytest.mark.parametrize(
    ("scope", "tags", "applies"),
    [
        ("global", {}, True),
        ("project:x", {"project": "x"}, True),
        ("project:x", {"project": "y"}, False),
        ("key:k1", {"api_key": "k1"}, True),
        ("tag:team=ml", {"team": "ml"}, True),
        ("tag:team=ml", {"team": "web"}, False),
    ],
)
def test_scopes(scope, tags, applies):
    assert Budget(scope, 1.0).applies_to(tags) is applies


@pytest.mark.parametrize("scope", ["bogus", "tag:noequals", "agent:"])
def test_bad_scopes_are_refused(scope):
    with pytest.raises(ConfigurationError):
        Budget(scope, 1.0)
    with pytest.raises(ConfigurationError):
        Budget("global", 0)


# ------------------------------------------------------------------------------ unpriced models

UNPRICED = "openai/in-house-finetune-7"  # no catalog entry: no price


@pytest.fixture
def clean_catalog():
    from agentadapter.llm import catalog

    catalog.clear_overrides()
    yield catalog
    catalog.clear_overrides()


async def test_an_unpriced_model_under_a_budget_is_refused_naming_the_ways_out(fake, clean_catalog):
    from agentadapter.llm.errors import UnpricedModelError

    llm = llm_with(fake, [{"scope": "project:demo", "limit_usd": 5.0, "window": "day"}])
    fake.reply("ok", usage=USAGE)
    with pytest.raises(UnpricedModelError) as caught:
        await llm.generate(UNPRICED, "hi", max_tokens=100, tags={"project": "demo"})
    error = caught.value
    assert isinstance(error, BudgetExceededError)
    assert error.model == UNPRICED and error.scope == "project:demo" and error.limit_usd == 5.0
    message = str(error)
    assert UNPRICED in message and "project:demo" in message and "nothing was sent" in message
    assert "catalog:" in message and "allow_unpriced: true" in message
    assert fake.requests == []
    # A budget that does not apply to the call does not refuse it; the answer's cost is unknown, not 0.
    response = await llm.generate(UNPRICED, "hi", max_tokens=100, tags={"project": "other"})
    assert response.cost_usd is None and len(fake.requests) == 1
    await llm.aclose()


async def test_a_budget_that_allows_unpriced_calls_lets_them_through_at_zero(fake, clean_catalog):
    llm = llm_with(fake, [{"scope": "global", "limit_usd": 1.0, "window": "day", "allow_unpriced": True}])
    fake.reply("ok", usage=USAGE)
    response = await llm.generate(UNPRICED, "hi", max_tokens=100)
    assert response.cost_usd is None and len(fake.requests) == 1
    assert await llm.budgets.spent("global", "day") == 0.0
    totals = await llm.usage(("model",))
    assert totals[0].unpriced_requests == 1 and totals[0].cost_usd == 0.0
    await llm.aclose()


async def test_a_configured_price_makes_the_model_priced_again(fake, clean_catalog):
    llm = LLM(config={"budgets": [{"scope": "global", "limit_usd": 1.0, "window": "day"}],
                      "catalog": {UNPRICED: {"pricing": {"input": 1.0, "output": 2.0}}}},
              environ={"OPENAI_API_KEY": "sk-test-budget", "OPENAI_BASE_URL": f"{fake.url}/v1"})
    fake.reply("ok", usage=USAGE)
    response = await llm.generate(UNPRICED, "hi", max_tokens=100)
    assert response.cost_usd == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)
    assert await llm.budgets.spent("global", "day") == pytest.approx(response.cost_usd)
    await llm.aclose()


async def test_every_applicable_budget_must_allow_unpriced_calls(clean_catalog):
    from agentadapter.llm.bounds import CallBound
    from agentadapter.llm.errors import UnpricedModelError

    guard = BudgetGuard([Budget("global", 10.0, "day", allow_unpriced=True),
                         Budget("agent:writer", 1.0, "day")])
    bound = CallBound(0.0, UNPRICED, 10, 10, priced=False, output_enforced=True)
    held = await guard.reserve_bound(bound, {"agent": "reader"})  # only the global budget applies
    await held.settle(None)
    with pytest.raises(UnpricedModelError, match="agent:writer"):
        await guard.reserve_bound(bound, {"agent": "writer"})
