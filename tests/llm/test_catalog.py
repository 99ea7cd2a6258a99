"""The model catalog: its data, lookup (ids, aliases, dated ids, resellers), defaults for unknown
models, user overrides, and the cost formula with tiers, cache reads and cache writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from importlib import resources

import pytest

from agentadapter.llm import catalog
from agentadapter.llm.catalog import Capabilities, PriceTier, Pricing, cost_usd, find, lookup, override
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.messages import Usage


@pytest.fixture(autouse=True)
def _no_overrides() -> Iterator[None]:
    catalog.clear_overrides()
    yield
    catalog.clear_overrides()


# ------------------------------------------------------------------------------------------ the data


def test_catalog_has_the_required_breadth() -> None:
    models = catalog.known_models()
    assert len([m for m in models if not m.startswith("test/")]) >= 40
    providers = {model_id.split("/", 1)[0] for model_id in models}
    assert {"openai", "anthropic", "gemini", "xai", "groq", "deepseek", "mistral", "cohere", "test"} <= providers
    for required in (
        "openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/o3",
        "openai/o3-mini", "openai/o4-mini", "openai/gpt-5", "openai/gpt-5-mini", "openai/gpt-5-nano",
        "anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4", "anthropic/claude-haiku-4-5",
        "anthropic/claude-3-5-haiku", "anthropic/claude-opus-4-1", "anthropic/claude-opus-4-5",
        "gemini/gemini-2.5-pro", "gemini/gemini-2.5-flash", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.0-flash",
        "xai/grok-4", "xai/grok-3", "xai/grok-3-mini", "groq/llama-3.3-70b-versatile", "groq/llama-3.1-8b-instant",
        "deepseek/deepseek-chat", "deepseek/deepseek-reasoner", "mistral/mistral-large-latest",
        "mistral/mistral-medium-latest", "mistral/mistral-small-latest", "mistral/codestral-latest",
        "cohere/command-a-03-2025", "cohere/command-r-plus-08-2024", "cohere/command-r-08-2024",
        "test/echo", "test/tools",
    ):
        assert required in models, required


def test_every_entry_is_complete_and_sane() -> None:
    raw = json.loads(resources.files("agentadapter.llm").joinpath("catalog.json").read_text("utf-8"))["models"]
    for model_id, data in raw.items():
        assert "/" in model_id
        for flag in ("tools", "parallel_tools", "vision", "json_schema", "streaming", "reasoning", "prompt_caching"):
            assert isinstance(data[flag], bool), (model_id, flag)
        assert data["api"] in catalog.API_KINDS, model_id
        assert 0 < data["max_output_tokens"] <= data["context_window"], model_id
        pricing = data["pricing"]
        assert pricing["source"] and pricing["as_of"], model_id
        assert pricing["input"] >= 0 and pricing["output"] >= 0, model_id
        for tier in pricing.get("tiers", []):
            assert tier["above_input_tokens"] > 0 and tier["input"] >= pricing["input"], model_id
        entry = find(model_id)
        assert entry is not None and entry.known and entry.source == "catalog"


def test_apis_follow_each_provider() -> None:
    assert lookup("openai/gpt-4o").api == "chat"
    assert lookup("openai/o3").api == "responses"
    assert lookup("openai/gpt-5-mini").api == "responses"
    assert lookup("anthropic/claude-sonnet-4-5").api == "anthropic"
    assert lookup("gemini/gemini-2.5-pro").api == "gemini"
    assert lookup("cohere/command-a-03-2025").api == "cohere"
    assert lookup("xai/grok-4").api == "responses"
    assert lookup("groq/llama-3.3-70b-versatile").api == "chat"


# -------------------------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("model_id", "canonical"),
    [
        ("openai/gpt-4o", "openai/gpt-4o"),
        ("openai/gpt-4o-2024-08-06", "openai/gpt-4o"),  # alias
        ("openai/gpt-4o-2099-01-01", "openai/gpt-4o"),  # an unlisted date falls back to the family
        ("openai/o3-mini-2025-01-31", "openai/o3-mini"),
        ("anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5"),  # Vertex spelling
        ("anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku"),
        ("xai/grok-4-0709", "xai/grok-4"),
        ("gemini/gemini-2.0-flash-001", "gemini/gemini-2.0-flash"),
        ("OpenAI/GPT-4o", "openai/gpt-4o"),  # case does not matter
        ("cohere/command-r", "cohere/command-r-08-2024"),
        ("openai/gpt-5.6", "openai/gpt-5.6-sol"),
    ],
)
def test_lookup_by_id_alias_and_dated_id(model_id: str, canonical: str) -> None:
    assert lookup(model_id) is catalog.known_models()[canonical]


def test_openrouter_maps_to_the_vendor_entry() -> None:
    sonnet = lookup("openrouter/anthropic/claude-sonnet-4.5")
    vendor = lookup("anthropic/claude-sonnet-4-5")
    assert sonnet.known and sonnet.context_window == vendor.context_window
    assert sonnet.pricing == vendor.pricing  # OpenRouter bills the upstream list price
    assert sonnet.api == "chat"  # OpenRouter speaks chat completions
    assert sonnet.source is not None and "anthropic/claude-sonnet-4-5" in sonnet.source
    assert lookup("openrouter/google/gemini-2.5-pro").pricing == lookup("gemini/gemini-2.5-pro").pricing
    assert lookup("openrouter/openai/gpt-4o-mini").vision is True
    free = lookup("openrouter/openai/gpt-4o-mini:free")
    assert free.pricing is not None and free.pricing.input == 0.0 and free.pricing.output == 0.0


def test_azure_deployments_named_after_a_model_map_to_openai() -> None:
    entry = lookup("azure/gpt-5")
    assert entry.known and entry.reasoning and entry.pricing == lookup("openai/gpt-5").pricing
    assert find("azure/my-custom-deployment") is None


def test_open_weight_hosts_are_not_mapped() -> None:
    # The same weights on another host have other limits and prices: no guessing.
    assert find("together/meta-llama/Llama-3.3-70B-Instruct-Turbo") is None
    assert find("my-vllm/llama-3.3-70b-versatile") is None
    assert find("openrouter/meta-llama/llama-3.3-70b-instruct") is None


def test_unknown_models_get_conservative_defaults_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    model_id = "nowhere/unknown-model-for-warning-test"
    with caplog.at_level(logging.WARNING, logger="agentadapter.catalog"):
        first = lookup(model_id)
        second = lookup(model_id)
    assert first is second
    assert first.known is False and first.pricing is None and first.source == "defaults"
    assert first.context_window == 8192 and first.vision is False
    warnings = [r for r in caplog.records if r.name == "agentadapter.catalog"]
    assert len(warnings) == 1
    assert model_id in warnings[0].getMessage() and "catalog.override" in warnings[0].getMessage()
    assert find(model_id) is None  # find never warns and never invents


def test_lookup_is_memoized_but_overrides_invalidate_it() -> None:
    before = lookup("openai/gpt-4o-mini")
    assert lookup("openai/gpt-4o-mini") is before
    override("openai/gpt-4o-mini", context_window=64000)
    assert lookup("openai/gpt-4o-mini").context_window == 64000
    assert lookup("openai/gpt-4o-mini-2024-07-18").context_window == 64000


# ----------------------------------------------------------------------------------------- overrides


def test_override_adds_a_model_with_pricing_and_aliases() -> None:
    entry = override(
        "my-vllm/llama-3", context_window=32768, max_output_tokens=4096, vision=False, aliases=["llama3"],
        pricing={"input": 0.2, "output": 0.4, "tiers": [{"above_input_tokens": 16000, "input": 0.4, "output": 0.8}]},
    )
    assert entry.known and entry.source == "override"
    assert lookup("my-vllm/llama-3") is entry
    assert lookup("my-vllm/llama3") is entry
    assert entry.pricing is not None and entry.pricing.tiers == (PriceTier(16000, 0.4, 0.8),)
    assert "my-vllm/llama-3" in catalog.known_models()
    assert "my-vllm/llama3" not in catalog.known_models()


def test_override_keeps_what_it_does_not_change() -> None:
    entry = override("anthropic/claude-sonnet-4-5", context_window=1_000_000)
    assert entry.context_window == 1_000_000
    assert entry.pricing == find("anthropic/claude-sonnet-4-5-20250929").pricing  # type: ignore[union-attr]
    assert entry.api == "anthropic" and entry.vision


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"contxt_window": 1000}, "unknown field.*contxt_window"),
        ({"context_window": -5}, "context_window must be a positive whole number"),
        ({"vision": "yes"}, "vision must be true or false"),
        ({"api": "grpc"}, "api must be one of"),
        ({"pricing": {"input": 1.0}}, "needs both 'input' and 'output'"),
        ({"pricing": {"input": 1.0, "output": 2.0, "currency": "EUR"}}, "unknown price field.*currency"),
        ({"pricing": {"input": 1.0, "output": 2.0, "tiers": [{"input": 2.0, "output": 3.0}]}}, "above_input_tokens"),
        ({"pricing": {"input": "3", "output": 2.0}}, "input must be a non-negative number"),
        ({"pricing": {"input": 1.0, "output": 2.0, "tiers": [{"above_input_tokens": 10, "input": -1, "output": 3.0}]}},
         "tier above 10 tokens, input"),
    ],
)
def test_override_rejects_bad_values_clearly(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        override("openai/gpt-4o", **values)


def test_override_may_name_its_source() -> None:
    entry = override("openai/gpt-4o", source="detected: vLLM", context_window=1000)
    assert entry.source == "detected: vLLM"


def test_override_needs_a_provider() -> None:
    with pytest.raises(ConfigurationError, match="provider/model"):
        override("gpt-4o", context_window=1000)


# -------------------------------------------------------------------------------------------- cost

M = 1_000_000


@pytest.mark.parametrize(
    ("model_id", "usage", "expected"),
    [
        # 1M uncached in x $2.50 + 1M out x $10
        ("openai/gpt-4o", Usage(input_tokens=M, output_tokens=M), 12.5),
        # 0.5M uncached x 0.15 + 0.5M cached x 0.075 + 1M out x 0.60
        ("openai/gpt-4o-mini", Usage(input_tokens=M, output_tokens=M, cached_input_tokens=M // 2), 0.7125),
        # reasoning tokens are part of output_tokens, priced as output
        ("openai/o4-mini", Usage(input_tokens=100_000, output_tokens=50_000, reasoning_tokens=40_000), 0.11 + 0.22),
        # Anthropic: 10k uncached x $3 + 50k cache reads x $0.30 + 40k cache writes x $3.75 + 2k out x $15
        (
            "anthropic/claude-sonnet-4-5",
            Usage(input_tokens=100_000, output_tokens=2_000, cached_input_tokens=50_000, cache_write_tokens=40_000),
            0.03 + 0.015 + 0.15 + 0.03,
        ),
        # Anthropic above 200K (1M beta): the whole request at $6 / $22.50, writes at $7.50, reads at $0.60
        (
            "anthropic/claude-sonnet-4-5",
            Usage(input_tokens=300_000, output_tokens=10_000, cached_input_tokens=100_000, cache_write_tokens=100_000),
            0.6 + 0.06 + 0.75 + 0.225,
        ),
        # Haiku 4.5 cache writes at $1.25
        ("anthropic/claude-haiku-4-5", Usage(input_tokens=10_000, output_tokens=1_000, cache_write_tokens=10_000),
         0.0125 + 0.005),
        # Gemini 2.5 Pro at 200K exactly: the base tier
        ("gemini/gemini-2.5-pro", Usage(input_tokens=200_000, output_tokens=10_000), 0.25 + 0.1),
        # Gemini 2.5 Pro above 200K: $2.50 in, $15 out, cached $0.25
        ("gemini/gemini-2.5-pro", Usage(input_tokens=300_000, output_tokens=10_000, cached_input_tokens=100_000),
         0.5 + 0.025 + 0.15),
        # Haiku 5.5's own tier starts above 100K
        ("anthropic/claude-haiku-5-5", Usage(input_tokens=100_001, output_tokens=1_000), 0.0500005 + 0.0025),
        # DeepSeek cache hits
        ("deepseek/deepseek-v4-flash", Usage(input_tokens=M, output_tokens=M, cached_input_tokens=M), 0.0028 + 0.28),
        # grok-4 above 128K
        ("xai/grok-4", Usage(input_tokens=200_000, output_tokens=1_000), 1.2 + 0.03),
        # no cached price published: cached tokens cost the input price (never under-stated)
        ("groq/llama-3.3-70b-versatile", Usage(input_tokens=M, output_tokens=0, cached_input_tokens=M), 0.59),
    ],
)
def test_cost_for_real_models(model_id: str, usage: Usage, expected: float) -> None:
    assert cost_usd(usage, lookup(model_id).pricing) == pytest.approx(expected)


def test_cost_without_a_price_is_none() -> None:
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), None) is None


def test_a_tier_without_cache_prices_scales_the_base_ones() -> None:
    pricing = Pricing(1.0, 2.0, cached_input=0.1, cache_write=1.25, tiers=(PriceTier(1000, 2.0, 3.0),))
    assert pricing.for_input(1000) == (1.0, 2.0, 0.1, 1.25)
    assert pricing.for_input(1001) == pytest.approx((2.0, 3.0, 0.2, 2.5))


def test_tiers_apply_in_order_whatever_order_they_are_given() -> None:
    pricing = Pricing(1.0, 1.0, tiers=(PriceTier(500, 3.0, 3.0), PriceTier(100, 2.0, 2.0)))
    assert pricing.tiers[0].above_input_tokens == 100
    assert pricing.for_input(50)[0] == 1.0
    assert pricing.for_input(200)[0] == 2.0
    assert pricing.for_input(600)[0] == 3.0


def test_capabilities_stay_compatible() -> None:
    # The facade, the resolver and the backends build and read these fields.
    caps = Capabilities()
    assert (caps.context_window, caps.max_output_tokens, caps.known, caps.api) == (8192, 4096, False, "chat")
    assert Pricing(1.0, 2.0).for_input(10) == (1.0, 2.0, 1.0, 1.0)
