"""The facade's wiring: which API a model uses, the usage ledger, cost estimates, context checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentadapter import LLM
from agentadapter.llm.errors import ContextWindowExceededError, InvalidRequestError
from agentadapter.testing import offline_llm
from fakes.openai_server import OpenAIFake
from fakes.responses_server import ResponsesFake


@pytest.fixture
async def servers() -> AsyncIterator[tuple[OpenAIFake, ResponsesFake]]:
    chat, responses = OpenAIFake(), ResponsesFake()
    await chat.start()
    await responses.start()
    yield chat, responses
    await chat.close()
    await responses.close()


async def test_the_catalog_picks_the_responses_api_and_a_call_can_override_it(servers):
    chat, responses = servers
    llm = LLM(config={}, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{responses.url}/v1"})
    answer = await llm.generate("openai/gpt-5", "hi")  # the catalog prefers the Responses API for gpt-5
    assert responses.requests[-1].path == "/v1/responses" and answer.text
    llm2 = LLM(config={}, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{chat.url}/v1"})
    chat.reply("via chat")
    assert (await llm2.generate("openai/gpt-5", "hi", api="chat")).text == "via chat"
    assert chat.requests[-1].path == "/v1/chat/completions"
    chat.reply("plain")
    assert (await llm2.generate("openai/gpt-4o-mini", "hi")).text == "plain"  # chat by default
    with pytest.raises(InvalidRequestError, match="OpenAI-style providers only"):
        await offline_llm().generate("test/echo", "hi", api="responses")
    with pytest.raises(InvalidRequestError, match="not known"):
        await llm2.generate("openai/gpt-4o-mini", "hi", api="graphql")
    await llm.aclose()
    await llm2.aclose()


async def test_usage_ledger_aggregates_by_tags():
    llm = offline_llm()
    await llm.generate("test/echo", "one", tags={"agent": "a"})
    await llm.generate("test/echo", "two two", tags={"agent": "b"})
    await llm.stream("test/tools", "three", tags={"agent": "a"}).collect()
    by_agent = {t.key["agent"]: t for t in await llm.usage(group_by=["agent"])}
    assert by_agent["a"].requests == 2 and by_agent["b"].requests == 1
    assert by_agent["a"].input_tokens > 0 and by_agent["a"].cost_usd == 0.0
    by_model = await llm.usage()
    assert {t.key["model"] for t in by_model} == {"echo", "tools"}


def test_estimate_cost_makes_no_network_call():
    llm = LLM(config={}, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    cost = llm.estimate_cost("openai/gpt-4o-mini", "x" * 4000, max_tokens=1000)
    # about 1,000 input tokens at $0.15/M plus 1,000 output at $0.60/M
    assert cost == pytest.approx((1000 * 0.15 + 1000 * 0.6) / 1e6, rel=0.1)


async def test_a_prompt_far_over_the_window_fails_before_sending():
    llm = LLM(config={}, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    with pytest.raises(ContextWindowExceededError, match="nothing was sent"):
        await llm.generate("openai/gpt-4o-mini", "word " * 200_000)
