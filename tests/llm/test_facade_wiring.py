"""The facade's wiring: a config's ``catalog:`` entries belong to its facade (and those derived from it),
the route, router and backend caches stay bounded whatever model ids callers send, one call counts its
tokens once, and a ready-made request streams through the same pipeline as it generates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentadapter import LLM
from agentadapter.config import FileConfig, parse_config
from agentadapter.llm import bounds, catalog, tokens
from agentadapter.llm.backends.base import estimate_tokens as estimate_tokens_of
from agentadapter.llm.errors import ServerError
from agentadapter.llm.messages import Request
from agentadapter.llm.policy.cache import MemoryCache
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.llm.resolve import Resolver
from agentadapter.llm.transport import create_transport
from agentadapter.testing import FunctionBackend, final_response, offline_llm

MODEL = "openai/gpt-4o-mini"  # in the catalog, with a price


def _priced(input_usd: float) -> dict[str, Any]:
    return {MODEL: {"pricing": {"input": input_usd, "output": 2 * input_usd}}}


def _facade(catalog_section: dict[str, Any] | None = None) -> LLM:
    return LLM(config={"catalog": catalog_section or {}}, environ={"OPENAI_API_KEY": "sk-test"})


# ------------------------------------------------------------------------------- scoped overrides


def test_each_facade_sees_its_own_catalog_entries_and_no_other() -> None:
    listed = catalog.lookup(MODEL).pricing
    assert listed is not None and listed.input not in (7.0, 9.0)
    first, second, plain = _facade(_priced(7.0)), _facade(_priced(9.0)), _facade()

    assert first.capabilities(MODEL).pricing.input == 7.0  # type: ignore[union-attr]
    assert second.capabilities(MODEL).pricing.input == 9.0  # type: ignore[union-attr]
    assert plain.capabilities(MODEL).pricing == listed
    assert catalog.lookup(MODEL).pricing == listed  # the process-wide catalog is untouched
    # The entry keeps what it did not override (the catalog's window), and is this facade's estimate too.
    assert first.capabilities(MODEL).context_window == catalog.lookup(MODEL).context_window
    assert first.estimate_cost(MODEL, "hi", max_tokens=10) != plain.estimate_cost(MODEL, "hi", max_tokens=10)


def test_a_derived_facade_keeps_its_parents_entries_and_adds_its_own_for_itself_only() -> None:
    parent = _facade(_priced(7.0))
    child = parent.derive(tags={"tenant": "t1"})
    assert child.capabilities(MODEL).pricing.input == 7.0  # type: ignore[union-attr]

    other = parent.derive(config=parse_config({"catalog": {"acme/in-house": {"pricing": {"input": 1, "output": 1}}}}))
    assert other.catalog.find("acme/in-house") is not None
    assert other.capabilities(MODEL).pricing.input == 7.0  # type: ignore[union-attr]
    assert parent.catalog.find("acme/in-house") is None and catalog.find("acme/in-house") is None


async def test_a_call_is_priced_at_its_own_facades_price() -> None:
    answer = FunctionBackend(lambda request: "ok", name="inhouse")
    config = {"catalog": {"inhouse/m": {"pricing": {"input": 1_000_000.0, "output": 0.0}}}}
    priced = LLM(config=config, backends={"inhouse": answer}, environ={})
    unpriced = offline_llm(backends={"inhouse": answer})

    assert (await priced.generate("inhouse/m", "hello")).cost_usd == pytest.approx(
        (await priced.generate("inhouse/m", "hello")).usage.input_tokens)
    assert (await unpriced.generate("inhouse/m", "hello")).cost_usd is None


# ------------------------------------------------------------------------------------ bounded caches


def test_ten_thousand_model_ids_keep_the_route_and_router_caches_at_their_bound() -> None:
    resolver = Resolver(FileConfig(), transport=create_transport("httpx"), environ={"OPENAI_API_KEY": "sk-test"},
                        cache_size=64)
    for index in range(10_000):
        resolver.router(f"openai/model-{index}")
    sizes = resolver.cache_sizes()
    assert sizes["routes"] == 64 and sizes["routers"] == 64
    assert sizes["backends"] == 1  # one provider, one instance
    assert resolver.router("openai/model-9999").route.targets[0].model == "model-9999"


def test_ten_thousand_spellings_of_a_provider_keep_the_backend_pool_at_its_bound() -> None:
    resolver = Resolver(FileConfig(), transport=create_transport("httpx"), environ={"OPENAI_API_KEY": "sk-test"},
                        cache_size=64)
    for index in range(10_000):
        resolver.route(f"{' ' * index}openai/gpt-4o-mini")  # every one its own backend name
    assert resolver.cache_sizes()["backends"] == 64


def test_the_facades_router_cache_is_bounded_too() -> None:
    llm = _facade()
    for index in range(10_000):
        llm.router(f"openai/model-{index}")
    sizes = llm.resolver.cache_sizes()
    assert 0 < sizes["routers"] <= 1024 and sizes["routes"] <= 1024


# ------------------------------------------------------------------------------------- one estimate


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How often each estimator runs (the exact counter and the four-characters-a-token estimate)."""
    counts = {"count_tokens_local": 0, "estimate_tokens": 0, "bounds": 0}
    real_count, real_estimate = tokens.count_tokens_local, estimate_tokens_of

    def count_tokens_local(*args: Any, **kwargs: Any) -> tokens.TokenCount:
        counts["count_tokens_local"] += 1
        return real_count(*args, **kwargs)

    def estimate_tokens(request: Request) -> int:
        counts["estimate_tokens"] += 1
        return real_estimate(request)

    def bounds_count(*args: Any, **kwargs: Any) -> tokens.TokenCount:
        counts["bounds"] += 1
        return real_count(*args, **kwargs)

    monkeypatch.setattr(tokens, "count_tokens_local", count_tokens_local)
    monkeypatch.setattr(tokens, "estimate_tokens", estimate_tokens)
    monkeypatch.setattr(bounds, "count_tokens_local", bounds_count)
    yield counts


def _two_target_llm(**kwargs: Any) -> tuple[LLM, FunctionBackend, FunctionBackend]:
    def down(request: Request) -> str:
        raise ServerError("cheap is down")

    cheap, dear = FunctionBackend(down, name="cheap"), FunctionBackend(lambda r: "answer", name="dear")
    config = {
        "models": {"pair": {"strategy": "cost", "targets": ["cheap/m", "dear/m"]}},
        "catalog": {"cheap/m": {"context_window": 100_000, "pricing": {"input": 0.1, "output": 0.2}},
                    "dear/m": {"context_window": 100_000, "pricing": {"input": 1.0, "output": 2.0}}},
        "budgets": [{"scope": "global", "limit_usd": 100.0, "window": "day"}],
    }
    llm = LLM(config=config, backends={"cheap": cheap, "dear": dear}, environ={},
              retry=RetryPolicy(max_retries=0), **kwargs)
    return llm, cheap, dear


async def test_a_generate_on_a_two_target_route_counts_its_tokens_once(counted: dict[str, int]) -> None:
    llm, cheap, dear = _two_target_llm()
    response = await llm.generate("pair", "what is the capital of Norway?", max_tokens=50)
    # The cost strategy, the budget's bound over both targets, both capability checks: one count.
    assert [a.target for a in response.attempts] == ["cheap/m", "dear/m"]
    assert len(cheap.requests) == 1 and len(dear.requests) == 1
    assert counted == {"count_tokens_local": 1, "estimate_tokens": 1, "bounds": 0}


async def test_a_stream_on_a_two_target_route_counts_its_tokens_once(counted: dict[str, int]) -> None:
    llm, _, _ = _two_target_llm()
    events = [event async for event in llm.stream("pair", "what is the capital of Norway?", max_tokens=50)]
    assert final_response(events).text == "answer"
    assert counted == {"count_tokens_local": 1, "estimate_tokens": 1, "bounds": 0}


async def test_a_call_no_step_needs_a_count_for_counts_nothing(counted: dict[str, int]) -> None:
    llm = offline_llm(backends={"fn": FunctionBackend(lambda r: "ok", name="fn")})
    await llm.generate("fn/unknown-model", "hello")  # unknown model, no budgets, no limits
    assert counted["count_tokens_local"] == 0


# ------------------------------------------------------------------------------------- one pipeline


async def test_stream_request_runs_a_ready_made_request_through_the_facade_pipeline() -> None:
    llm, _, dear = _two_target_llm(tags={"tenant": "t1"}, cache=MemoryCache())
    request = llm.request("hello", max_tokens=20, temperature=0)
    stream = llm.stream_request("pair", request)
    events = [event async for event in stream]

    assert stream.response is final_response(events) and stream.response.text == "answer"
    assert dear.requests[0].tags == {"tenant": "t1"}  # tagged by the facade
    assert llm.budgets.active and stream.response.cost_usd is not None
    totals = await llm.usage(("tenant",))
    assert [t.requests for t in totals] == [1]  # in the ledger once
    replayed = await llm.generate_request("pair", llm.request("hello", max_tokens=20, temperature=0))
    assert replayed.cached and replayed.text == "answer"  # the stream filled the cache
    assert len(dear.requests) == 1
