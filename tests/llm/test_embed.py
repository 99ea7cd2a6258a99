"""``LLM.embed`` end to end against loopback fakes: inputs checked before any request, batching in order,
usage and cost in the ledger, the cache, budgets, retries, failover between two providers, the deadline."""

from __future__ import annotations

import math

import pytest

from agentadapter import LLM
from agentadapter.llm import catalog
from agentadapter.llm.embeddings import EmbeddingLimits, EmbeddingResponse, plan_batches
from agentadapter.llm.errors import AllTargetsFailedError, BudgetExceededError, InvalidRequestError
from agentadapter.llm.policy.cache import MemoryCache
from agentadapter.llm.policy.retry import RetryPolicy
from fakes.cohere_server import CohereFake
from fakes.embedding import fake_tokens, fake_vector
from fakes.openai_server import OpenAIFake

FAST = RetryPolicy(max_retries=2, initial_delay=0.0, max_delay=0.0)
SMALL = "text-embedding-3-small"


def openai_llm(fake: OpenAIFake, **kwargs) -> LLM:
    config = kwargs.pop("config", {})
    config.setdefault("backends", {})["openai"] = {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": "sk-x"}
    return LLM(config=config, environ={}, retry=kwargs.pop("retry", FAST), **kwargs)


def embed_requests(fake) -> list:
    return [r for r in fake.requests if r.path.endswith(("/embeddings", "/embed", ":batchEmbedContents"))]


async def test_one_text_and_many_come_back_in_order_with_usage_and_cost():
    async with OpenAIFake() as fake:
        llm = openai_llm(fake)
        one = await llm.embed(f"openai/{SMALL}", "hello world")
        assert isinstance(one, EmbeddingResponse)
        assert one.vectors == [fake_vector(SMALL, "hello world", 8)]
        assert (one.provider, one.model, one.dimensions, one.cached) == ("openai", SMALL, 8, False)
        texts = [f"text number {i}" for i in range(5)]
        many = await llm.embed(f"openai/{SMALL}", texts)
        assert many.vectors == [fake_vector(SMALL, t, 8) for t in texts]  # the fake sends them reversed
        tokens = sum(fake_tokens(t) for t in texts)
        assert many.usage.input_tokens == tokens
        price = catalog.embedding_model(f"openai/{SMALL}").price
        assert many.cost_usd == pytest.approx(tokens * price / 1_000_000)
        assert [(a.target, a.error_type) for a in many.attempts] == [(f"openai/{SMALL}", None)]
        body = fake.last.json
        assert body == {"model": SMALL, "input": texts, "encoding_format": "base64"}  # OpenAI's compact form
        assert fake.last.headers["authorization"] == "Bearer sk-x"
        (totals,) = await llm.usage()
        assert totals.requests == 2 and totals.input_tokens == tokens + fake_tokens("hello world")
        assert totals.output_tokens == 0 and totals.cost_usd == pytest.approx(
            (tokens + fake_tokens("hello world")) * price / 1_000_000)
        await llm.aclose()


async def test_dimensions_are_sent_and_honoured():
    async with OpenAIFake() as fake:
        llm = openai_llm(fake)
        response = await llm.embed(f"openai/{SMALL}", ["a text"], dimensions=4)
        assert fake.last.json["dimensions"] == 4 and response.dimensions == 4
        # ada-002 cannot shorten its vectors: refused before any request.
        sent = len(fake.requests)
        with pytest.raises(InvalidRequestError, match="cannot shorten"):
            await llm.embed("openai/text-embedding-ada-002", "a text", dimensions=4)
        with pytest.raises(InvalidRequestError, match="at most 1536"):
            await llm.embed(f"openai/{SMALL}", "a text", dimensions=4096)
        assert len(fake.requests) == sent
        await llm.aclose()


@pytest.mark.parametrize(("inputs", "message"), [
    ([], "empty"),
    ("", "input 0 is empty"),
    (["fine", "   "], "input 1 is empty"),
    ([[1, 2, 3]], "token arrays"),
    (42, "string or a list of strings"),
])
async def test_bad_inputs_are_refused_before_any_request(inputs, message):
    async with OpenAIFake() as fake:
        llm = openai_llm(fake)
        with pytest.raises(InvalidRequestError, match=message):
            await llm.embed(f"openai/{SMALL}", inputs)
        assert fake.requests == []
        await llm.aclose()


async def test_an_over_long_input_is_refused_before_any_request():
    async with CohereFake() as fake:  # embed-english-v3.0 reads 512 tokens a text
        llm = LLM(config={"backends": {"cohere": {"type": "cohere", "base_url": fake.url, "api_key": "co"}}},
                  environ={})
        with pytest.raises(InvalidRequestError, match=r"input 1 is about .* more than the 512"):
            await llm.embed("cohere/embed-english-v3.0", ["short", "word " * 2000])
        assert fake.requests == []
        await llm.aclose()


def test_batches_keep_order_and_respect_every_limit():
    limits = EmbeddingLimits(max_inputs=3, max_input_tokens=10, max_batch_tokens=12)
    assert plan_batches([1, 1, 1, 1], limits) == [(0, 3), (3, 4)]
    assert plan_batches([5, 5, 5, 5], limits) == [(0, 2), (2, 4)]
    assert plan_batches([10, 10], limits) == [(0, 1), (1, 2)]
    assert plan_batches([1], limits) == [(0, 1)]


async def test_a_call_larger_than_one_request_is_split_in_order_and_summed():
    async with OpenAIFake() as fake:
        llm = LLM(config={"backends": {"mistral": {"type": "mistral", "base_url": f"{fake.url}/v1",
                                                   "api_key": "m"}}}, environ={})
        texts = [f"passage {i}: " + "x" * 400 for i in range(300)]  # about 104 tokens each
        response = await llm.embed("mistral/mistral-embed", texts)
        requests = embed_requests(fake)
        # Mistral takes at most 128 texts and 16,384 tokens a request: 300 texts of ~104 tokens need 3.
        sizes = [len(r.json["input"]) for r in requests]
        assert sum(sizes) == 300 and len(sizes) == 3 and max(sizes) <= 128
        assert all(sum(fake_tokens(t) for t in r.json["input"]) <= 16_384 for r in requests)
        assert [t for r in requests for t in r.json["input"]] == texts
        assert requests[0].json["encoding_format"] == "float"  # only OpenAI and Azure are asked for base64
        assert response.vectors == [fake_vector("mistral-embed", t, 8) for t in texts]
        assert response.usage.input_tokens == sum(fake_tokens(t) for t in texts)
        assert len(response.attempts) == 1
        await llm.aclose()


async def test_the_cache_answers_a_repeated_call_without_a_request():
    async with OpenAIFake() as fake:
        llm = openai_llm(fake, cache=MemoryCache())
        first = await llm.embed(f"openai/{SMALL}", ["a", "b"])
        again = await llm.embed(f"openai/{SMALL}", ["a", "b"])
        assert len(embed_requests(fake)) == 1
        assert again.cached and again.vectors == first.vectors and again.cost_usd == 0.0
        assert [a.target for a in again.attempts] == ["cache"]
        # Another order, another dimensions or another input type is another call.
        await llm.embed(f"openai/{SMALL}", ["b", "a"])
        await llm.embed(f"openai/{SMALL}", ["a", "b"], dimensions=4)
        assert len(embed_requests(fake)) == 3
        (totals,) = await llm.usage()
        assert totals.requests == 4 and totals.cached_responses == 1
        await llm.aclose()


async def test_retries_then_fails_over_to_another_provider():
    async with OpenAIFake() as primary, CohereFake() as backup:
        config = {
            "backends": {
                "openai": {"type": "openai", "base_url": f"{primary.url}/v1", "api_key": "sk"},
                "cohere": {"type": "cohere", "base_url": backup.url, "api_key": "co"},
            },
            "models": {"embedder": {"targets": [f"openai/{SMALL}", "cohere/embed-v4.0"]}},
        }
        llm = LLM(config=config, environ={}, retry=FAST)
        primary.fail(500, {"error": {"message": "server trouble"}}, times=3)
        response = await llm.embed("embedder", ["one", "two"], input_type="query")
        assert response.provider == "cohere" and response.model == "embed-v4.0"
        assert response.vectors == [fake_vector("embed-v4.0:search_query", t, 8) for t in ("one", "two")]
        assert [(a.target, a.error_type, a.retries) for a in response.attempts] == [
            (f"openai/{SMALL}", "ServerError", 2), ("cohere/embed-v4.0", None, 0)]
        assert len(primary.requests) == 3
        assert backup.last.json["input_type"] == "search_query"
        # The cost is the provider that answered, at its price.
        price = catalog.embedding_model("cohere/embed-v4.0").price
        assert response.cost_usd == pytest.approx(response.usage.input_tokens * price / 1_000_000)
        (totals,) = await llm.usage(group_by=("provider",))
        assert totals.key == {"provider": "cohere"}
        await llm.aclose()


async def test_a_bad_request_does_not_fail_over_and_every_error_is_kept():
    async with OpenAIFake() as first, OpenAIFake() as second:
        config = {
            "backends": {"a": {"type": "openai", "base_url": f"{first.url}/v1", "api_key": "k"},
                         "b": {"type": "openai", "base_url": f"{second.url}/v1", "api_key": "k"}},
            "models": {"e": {"targets": [f"a/{SMALL}", f"b/{SMALL}"]}},
        }
        llm = LLM(config=config, environ={}, retry=FAST)
        first.fail(400, {"error": {"message": "bad input", "type": "invalid_request_error"}})
        with pytest.raises(AllTargetsFailedError) as caught:
            await llm.embed("e", "x")
        assert [type(e).__name__ for e in caught.value.errors] == ["BadRequestError"]
        assert second.requests == []
        await llm.aclose()


async def test_a_provider_without_embeddings_fails_over_to_one_with_them():
    async with OpenAIFake() as groq, OpenAIFake() as openai:
        config = {
            "backends": {"groq": {"type": "groq", "base_url": f"{groq.url}/v1", "api_key": "g"},
                         "openai": {"type": "openai", "base_url": f"{openai.url}/v1", "api_key": "o"}},
            "models": {"e": {"targets": ["groq/some-model", f"openai/{SMALL}"]}},
        }
        llm = LLM(config=config, environ={}, retry=FAST)
        response = await llm.embed("e", "x")
        assert response.provider == "openai"
        assert response.attempts[0].error_type == "CapabilityError" and groq.requests == []
        await llm.aclose()


async def test_budgets_hold_the_input_and_refuse_what_does_not_fit():
    async with OpenAIFake() as fake:
        config = {"budgets": [{"scope": "global", "limit_usd": 0.000001, "window": "day"}]}
        llm = openai_llm(fake, config=config)
        await llm.embed(f"openai/{SMALL}", "a few words")  # 3 tokens: far below the limit
        with pytest.raises(BudgetExceededError):
            await llm.embed("openai/text-embedding-3-large", ["many words " * 500] * 10)
        assert len(embed_requests(fake)) == 1
        await llm.aclose()


async def test_the_deadline_bounds_retries():
    async with OpenAIFake() as fake:
        llm = openai_llm(fake, retry=RetryPolicy(max_retries=5, initial_delay=30.0, max_delay=30.0))
        fake.fail(500, {"error": {"message": "server trouble"}}, times=6)
        with pytest.raises(Exception) as caught:
            await llm.embed(f"openai/{SMALL}", "x", timeout=5.0)
        # A 30 s back-off would cross the 5 s deadline: it is not slept, the error is the answer.
        assert type(caught.value).__name__ == "ServerError"
        assert len(fake.requests) == 1
        with pytest.raises(InvalidRequestError, match="timeout"):
            await llm.embed(f"openai/{SMALL}", "x", timeout=0)
        await llm.aclose()


async def test_embed_sync_and_unit_vectors():
    async with OpenAIFake() as fake:
        llm = openai_llm(fake)
        try:
            response = await _in_thread(lambda: llm.embed_sync(f"openai/{SMALL}", ["a", "b"]))
        finally:
            llm.close()
        assert len(response.vectors) == 2
        assert math.isclose(sum(v * v for v in response.vectors[0]), 1.0, rel_tol=1e-5)


async def _in_thread(fn):
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn)


async def test_the_tokens_per_minute_limit_counts_embedding_tokens():
    from agentadapter.llm.errors import RateLimitError

    async with OpenAIFake() as fake:
        config = {"backends": {"openai": {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": "k",
                                          "rate_limit": {"tokens_per_minute": 100, "mode": "fail"}}}}
        llm = LLM(config=config, environ={}, retry=FAST)
        text = "x" * 320  # 80 tokens by the fakes' rule and the local estimate alike
        await llm.embed(f"openai/{SMALL}", text)
        with pytest.raises(RateLimitError, match="client-side limit"):
            await llm.embed(f"openai/{SMALL}", text + "y")  # 80 more do not fit in what is left of 100
        assert len(embed_requests(fake)) == 1
        await llm.aclose()


async def test_telemetry_counts_the_texts_and_the_tokens():
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    async with OpenAIFake() as fake:
        llm = openai_llm(fake)
        texts_before = sample("agentadapter_llm_embedded_texts_total", provider="openai", model=SMALL)
        tokens_before = sample("agentadapter_llm_tokens_total", provider="openai", model=SMALL, kind="input")
        await llm.embed(f"openai/{SMALL}", ["abcd", "efgh", "ijkl"])
        assert sample("agentadapter_llm_embedded_texts_total", provider="openai", model=SMALL) == texts_before + 3
        assert sample("agentadapter_llm_tokens_total", provider="openai", model=SMALL, kind="input") == tokens_before + 3
        health = llm.health()[f"openai/{SMALL}"]
        assert (health.successes, health.in_flight, health.breaker) == (1, 0, "closed")
        await llm.aclose()
