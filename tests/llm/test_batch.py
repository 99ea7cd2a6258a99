"""llm.batch over loopback fakes of OpenAI's Batch API and Anthropic's Message Batches: 100 requests round-trip
with per-item results in request order, per-item failures, the batch price and the usage ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter import LLM
from agentadapter.llm import catalog
from agentadapter.llm.batch import BatchJob, resume_batch
from agentadapter.llm.batch_wire import BatchState
from agentadapter.llm.errors import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    ConfigurationError,
    InvalidRequestError,
)
from agentadapter.llm.messages import Message, Request, Usage
from fakes.batch_servers import AnthropicBatchFake, OpenAIBatchFake


@pytest.fixture
async def openai_fake() -> AsyncIterator[OpenAIBatchFake]:
    async with OpenAIBatchFake() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[AnthropicBatchFake]:
    async with AnthropicBatchFake() as fake:
        yield fake  # type: ignore[misc]


def llm_for(openai: OpenAIBatchFake | None = None, anthropic: AnthropicBatchFake | None = None) -> LLM:
    backends: dict[str, Any] = {}
    if openai is not None:
        backends["openai"] = {"base_url": f"{openai.url}/v1", "api_key": "test-key"}
    if anthropic is not None:
        backends["anthropic"] = {"base_url": anthropic.url, "api_key": "sk-ant-test-key"}
    return LLM(config={"backends": backends}, environ={})


def prompts(count: int) -> list[str]:
    return [f"question {i}" + (" FAIL" if i % 25 == 7 else "") for i in range(count)]


@pytest.mark.parametrize(("kind", "model", "standard"), [
    ("openai", "openai/gpt-4o-mini", (10 * 0.15 + 5 * 0.6) / 1e6),
    ("anthropic", "anthropic/claude-haiku-4-5", (10 * 1.0 + 5 * 5.0) / 1e6),
])
async def test_a_batch_of_100_round_trips_in_request_order_at_the_batch_price(
        openai_fake: OpenAIBatchFake, anthropic_fake: AnthropicBatchFake, kind: str, model: str,
        standard: float) -> None:
    llm = llm_for(openai_fake, anthropic_fake)
    job = await llm.batch(model, prompts(100), max_tokens=50, tags={"team": "eval"})
    assert isinstance(job, BatchJob) and job.provider == kind
    seen: list[BatchState] = []
    result = await job.wait(poll_interval=0, progress=seen.append)
    await llm.aclose()
    # Progress was reported while the job ran, and ended with every item accounted for.
    assert len(seen) >= 3 and not seen[0].ended and seen[-1].ended
    assert 0 < seen[1].done < 100 and seen[-1].done == 100
    # One item per request, in request order, although the fakes answer in reverse order.
    assert [item.index for item in result.items] == list(range(100))
    failing = {i for i in range(100) if i % 25 == 7}
    assert {item.index for item in result.failed} == failing
    for item in result.items:
        if item.index in failing:
            assert isinstance(item.error, BadRequestError) and item.response is None
            assert "refused" in str(item.error)
        else:
            assert item.response is not None and item.response.text == f"echo: question {item.index}"
            assert item.response.usage == Usage(input_tokens=10, output_tokens=5)
            assert item.response.cost_usd == pytest.approx(standard / 2)
    assert result.cost_usd == pytest.approx(96 * standard / 2)
    # Every answer is in the usage ledger, tagged with the batch and the caller's tags.
    [totals] = await llm.usage(filters={"batch": job.id, "team": "eval"})
    assert totals.requests == 96 and totals.cost_usd == pytest.approx(96 * standard / 2)


async def test_openai_batch_lines_carry_the_chat_completions_bodies(openai_fake: OpenAIBatchFake) -> None:
    llm = llm_for(openai_fake)
    job = await llm.batch("openai/gpt-4o-mini", [
        "plain prompt",
        [Message.system("Be brief."), Message.user("with a system prompt")],
        {"messages": "a dict request", "temperature": 0.2},
        Request(model="ignored", messages=[Message.user("a Request")]),
    ], max_tokens=20)
    await job.wait(poll_interval=0)
    await llm.aclose()
    entries = next(iter(openai_fake.jobs.values())).requests
    assert [e["custom_id"] for e in entries] == [f"request-{i}" for i in range(4)]
    assert {e["body"]["model"] for e in entries} == {"gpt-4o-mini"}
    assert entries[1]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert entries[2]["body"]["temperature"] == 0.2 and entries[2]["body"]["max_tokens"] == 20
    assert all("stream" not in e["body"] for e in entries)


async def test_a_job_can_be_polled_and_resumed_elsewhere(openai_fake: OpenAIBatchFake) -> None:
    llm = llm_for(openai_fake)
    job = await llm.batch("openai/gpt-4o-mini", prompts(5))
    state = await job.poll()
    assert state.status in ("in_progress", "validating") and not state.ended
    with pytest.raises(InvalidRequestError, match=r"job\.wait"):
        await job.results()
    other = llm_for(openai_fake)
    resumed = resume_batch(other, job.state())
    result = await resumed.wait(poll_interval=0)
    await llm.aclose()
    await other.aclose()
    assert [item.response.text if item.response else None for item in result.items][:2] == [
        "echo: question 0", "echo: question 1"]


async def test_waiting_past_the_timeout_leaves_the_job_running(openai_fake: OpenAIBatchFake) -> None:
    openai_fake.polls_in_progress = 50
    llm = llm_for(openai_fake)
    job = await llm.batch("openai/gpt-4o-mini", prompts(3))
    with pytest.raises(APITimeoutError, match="goes on at the provider"):
        await job.wait(poll_interval=10, timeout=1)
    await llm.aclose()


async def test_cancelled_items_are_reported_per_item(anthropic_fake: AnthropicBatchFake) -> None:
    anthropic_fake.polls_in_progress = 3
    llm = llm_for(anthropic=anthropic_fake)
    job = await llm.batch("anthropic/claude-haiku-4-5", prompts(8), max_tokens=10)
    await job.poll()  # two items are answered
    await job.cancel()
    result = await job.wait(poll_interval=0)
    await llm.aclose()
    assert job.last is not None and job.last.status == "cancelled"
    answered = [item for item in result.items if item.ok]
    assert [item.index for item in answered] == [0, 1]
    assert all("canceled" in str(item.error) for item in result.items[2:])


async def test_batches_are_refused_where_no_batch_api_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = LLM(config={"models": {"pair": {"strategy": "failover", "targets": ["openai/gpt-4o", "openai/gpt-4o-mini"]}}},
              environ={"OPENAI_API_KEY": "k", "GEMINI_API_KEY": "k"})
    with pytest.raises(CapabilityError, match="no batch API"):
        await llm.batch("gemini/gemini-2.5-flash", ["hi"])
    with pytest.raises(CapabilityError, match="one provider"):
        await llm.batch("pair", ["hi"])
    with pytest.raises(InvalidRequestError, match="at least one"):
        await llm.batch("openai/gpt-4o-mini", [])
    await llm.aclose()


def test_batch_prices_are_in_the_catalog() -> None:
    for model in ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"):
        pricing = catalog.lookup(model).pricing
        assert pricing is not None and pricing.batch == 0.5 and pricing.batch_source
    usage = Usage(input_tokens=100_000, output_tokens=100_000)
    pricing = catalog.lookup("anthropic/claude-sonnet-4-5").pricing
    assert catalog.batch_cost_usd(usage, pricing) == pytest.approx((0.1 * 3.0 + 0.1 * 15.0) / 2)
    groq = catalog.lookup("groq/llama-3.3-70b-versatile").pricing
    assert catalog.batch_cost_usd(usage, groq) == catalog.cost_usd(usage, groq)  # no batch price: the standard one
    with pytest.raises(ConfigurationError, match="batch"):
        catalog.Pricing.from_dict({"input": 1, "output": 2, "batch": 2})


async def test_waiting_rides_out_a_passing_failure_of_a_poll(openai_fake: OpenAIBatchFake) -> None:
    llm = llm_for(openai_fake)
    job = await llm.batch("openai/gpt-4o-mini", prompts(4))
    openai_fake.fail(503, {"error": {"message": "overloaded", "type": "server_error"}}, times=2)
    result = await job.wait(poll_interval=0)
    assert len(result.items) == 4 and not result.failed
    openai_fake.fail(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
    with pytest.raises(AuthenticationError):
        await job.poll()
    await llm.aclose()
