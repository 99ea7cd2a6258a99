"""The facade over a real loopback server: env-configured presets, retries, error translation,
deadlines, both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentadapter import LLM
from agentadapter.llm.errors import (
    APITimeoutError,
    AuthenticationError,
    ContextWindowExceededError,
    RateLimitError,
)
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.openai_server import OpenAIFake


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as server:
        yield server


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def env_llm(fake: OpenAIFake, transport: str = "aiohttp", **kwargs) -> LLM:
    environ = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{fake.url}/v1",
               "GROQ_API_KEY": "gsk-test", "GROQ_BASE_URL": f"{fake.url}/openai/v1"}
    return LLM(config={}, environ=environ, transport=transport, **kwargs)


async def test_env_configured_presets_reach_the_server(fake, transport):
    llm = env_llm(fake, transport)
    fake.reply("hello", usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                               "prompt_tokens_details": {"cached_tokens": 4}})
    response = await llm.generate("openai/gpt-4o-mini", "hi")
    assert response.text == "hello"
    assert fake.last.path == "/v1/chat/completions"
    assert fake.last.headers["authorization"] == "Bearer sk-test"
    assert (response.usage.input_tokens, response.usage.cached_input_tokens) == (10, 4)
    # 6 uncached x 0.15 + 4 cached x 0.075 + 2 out x 0.60, per million
    assert response.cost_usd == pytest.approx((6 * 0.15 + 4 * 0.075 + 2 * 0.6) / 1e6)
    fake.reply("from groq")
    assert (await llm.generate("groq/llama-3.3-70b-versatile", "hi")).text == "from groq"
    assert fake.last.path == "/openai/v1/chat/completions"
    assert fake.last.headers["authorization"] == "Bearer gsk-test"
    await llm.aclose()


async def test_429_is_retried_then_raises_rate_limit(fake, transport):
    llm = env_llm(fake, transport, retry=RetryPolicy(max_retries=2))
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    fake.fail(429, body, headers={"retry-after-ms": "10"}, times=3)
    with pytest.raises(RateLimitError) as caught:
        await llm.generate("openai/gpt-4o-mini", "hi")
    assert len(fake.requests) == 3  # the first try and two retries
    assert caught.value.retry_after == pytest.approx(0.01)
    assert caught.value.status == 429 and caught.value.provider == "openai"
    await llm.aclose()


async def test_429_then_success(fake):
    llm = env_llm(fake)
    fake.fail(429, {"error": {"message": "slow down"}}, headers={"retry-after": "0"})
    fake.reply("ok")
    response = await llm.generate("openai/gpt-4o-mini", "hi")
    assert response.text == "ok" and response.attempts[0].retries == 1
    await llm.aclose()


async def test_401_raises_after_exactly_one_request(fake, transport):
    llm = env_llm(fake, transport)
    fake.fail(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                              "code": "invalid_api_key"}}, headers={"x-request-id": "req_123"})
    with pytest.raises(AuthenticationError) as caught:
        await llm.generate("openai/gpt-4o-mini", "hi")
    assert len(fake.requests) == 1
    assert caught.value.request_id == "req_123"
    assert "OPENAI_API_KEY" in str(caught.value)
    await llm.aclose()


async def test_context_length_400(fake):
    llm = env_llm(fake)
    fake.fail(400, {"error": {"message": "This model's maximum context length is 128000 tokens.",
                              "type": "invalid_request_error", "code": "context_length_exceeded"}})
    with pytest.raises(ContextWindowExceededError):
        await llm.generate("openai/gpt-4o-mini", "hi")
    assert len(fake.requests) == 1
    await llm.aclose()


async def test_one_deadline_bounds_every_retry(fake):
    llm = env_llm(fake, retry=RetryPolicy(max_retries=5))
    fake.fail(0, None, delay=1.0, times=10)  # every request hangs for a second
    with pytest.raises(APITimeoutError):
        await llm.generate("openai/gpt-4o-mini", "hi", timeout=0.3)
    # The timeout spent the request's whole deadline, so no retry was started after it.
    assert len(fake.requests) == 1
    await llm.aclose()


async def test_stream_through_the_facade(fake, transport):
    llm = env_llm(fake, transport)
    fake.reply("streamed words here", usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
    stream = llm.stream("openai/gpt-4o-mini", "hi")
    text = "".join([event.text async for event in stream if event.kind == "text"])
    assert text == "streamed words here"
    assert stream.response is not None and stream.response.usage.output_tokens == 3
    assert stream.response.cost_usd is not None and stream.response.cost_usd > 0
    await llm.aclose()
