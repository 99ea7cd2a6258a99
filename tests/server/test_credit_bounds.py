"""Credits cannot be overdrawn by more than one call's bound, through the gateway on SQLite and PostgreSQL.

Fifty OpenAI clients call the gateway at once over real HTTP; behind it a loopback OpenAI server
reports far more tokens than any estimate (200,000 input tokens each, and on every second call more
output than the ``max_tokens`` it was sent). Each call is held at its worst case first, the output
default the server holds for is what the provider is sent, and settling charges the excess only down
to minus one hold: the balance ends no lower than that, every hold is released, and each overrun shows
in the tenant's credit transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web

from agentadapter.llm import bounds
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Message, Request
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.openai_server import OpenAIFake
from fakes.server import Recorded
from server.conftest import Api, AppFactory
from server.test_gateway import serve

MODEL = "openai/gpt-4o-mini"  # $0.15 in, $0.60 out per million tokens; writes at most 16,384
DEFAULT_MAX_OUTPUT = 4096
HOLDS = 10


class OverbillingOpenAI(OpenAIFake):
    """Answers only once ``holds`` calls have arrived (so every hold is taken before any is settled),
    each reporting 200,000 input tokens and, on every second call, 30,000 output tokens."""

    def __init__(self, holds: int) -> None:
        super().__init__()
        self.holds = holds
        self.everyone_here = asyncio.Event()

    async def _chat(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        number = len(self.requests)
        if number >= self.holds:
            self.everyone_here.set()
        await self.everyone_here.wait()
        sent = recorded.json or {}
        output = 30_000 if number % 2 else int(sent.get("max_tokens") or sent.get("max_completion_tokens") or 0)
        self.reply("billed generously", usage={"prompt_tokens": 200_000, "completion_tokens": output,
                                               "total_tokens": 200_000 + output})
        return await super()._chat(request, recorded)


@pytest.fixture(params=["sqlite", "postgres"])
async def gateway(request: pytest.FixtureRequest,
                  make_api: AppFactory) -> AsyncIterator[tuple[Api, OverbillingOpenAI, str]]:
    provider = OverbillingOpenAI(HOLDS)
    async with provider:
        llm = LLM(config={}, environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": provider.url + "/v1"},
                  retry=RetryPolicy(max_retries=0))
        server = {"credit_default_max_output_tokens": DEFAULT_MAX_OUTPUT}
        async with make_api(database=request.param, llm=llm, server=server) as api, serve(api.app) as base_url:
            yield api, provider, base_url


async def test_fifty_overbilled_calls_leave_the_balance_no_lower_than_minus_one_bound(
        gateway: tuple[Api, OverbillingOpenAI, str]) -> None:
    api, provider, base_url = gateway
    expected = bounds.call_bound(Request(model="gpt-4o-mini", messages=[Message.user("How much?")],
                                         max_tokens=DEFAULT_MAX_OUTPUT), MODEL)
    operator = {"Authorization": f"Bearer {await api.key(role='admin', scopes=('credits:admin',))}"}
    granted = await api.client.post("/v1/credits/grants", headers=operator,
                                    json={"amount_usd": (HOLDS + 0.5) * expected.usd})  # room for ten holds
    assert granted.status_code == 201, granted.text
    client = openai.AsyncOpenAI(base_url=base_url, api_key=await api.key(role="member"), max_retries=0)

    async def call(number: int) -> Any:
        messages: Any = [{"role": "user", "content": "How much?"}]
        if number % 2:  # half of them stream
            stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
            return [chunk async for chunk in stream]
        return await client.chat.completions.create(model=MODEL, messages=messages)

    try:
        async with asyncio.timeout(120):
            results = await asyncio.gather(*(call(n) for n in range(50)), return_exceptions=True)
    finally:
        await client.close()
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) == HOLDS and len(refused) == 50 - HOLDS, [r for r in results if isinstance(r, Exception)]
    assert {(r.status_code, r.code) for r in refused} == {(402, "insufficient_credits")}
    # The output bound held is the one the provider was told; none was given by the clients.
    sent = [r.json or {} for r in provider.requests]
    assert [s.get("max_tokens") or s.get("max_completion_tokens") for s in sent] == [DEFAULT_MAX_OUTPUT] * HOLDS

    account = (await api.request("GET", "/v1/credits", as_="viewer")).json()
    charges = (await api.client.get("/v1/credits/transactions", params={"kind": "charge", "limit": 100},
                                    headers=operator)).json()["data"]
    assert len(charges) == HOLDS
    held = [c["details"]["held_usd"] for c in charges]
    assert held == pytest.approx([expected.usd] * HOLDS, rel=0.01)
    assert account["reserved_usd"] == pytest.approx(0.0, abs=1e-12)  # every hold released
    assert -max(held) - 1e-12 <= account["balance_usd"] < 0  # below zero, by no more than one call's bound
    for charge in charges:  # each overrun shows: its cost, what was charged of the excess and what was not
        details = charge["details"]
        assert details["cost_usd"] > 2 * details["held_usd"]
        assert details["overrun_usd"] == pytest.approx(details["cost_usd"] - details["held_usd"])
        assert -charge["amount_usd"] == pytest.approx(details["cost_usd"] - details["uncollected_usd"])
        assert details["bound"]["model"] == MODEL and details["bound"]["output_tokens"] == DEFAULT_MAX_OUTPUT
    granted_usd = (HOLDS + 0.5) * expected.usd
    assert -sum(c["amount_usd"] for c in charges) == pytest.approx(granted_usd - account["balance_usd"])
