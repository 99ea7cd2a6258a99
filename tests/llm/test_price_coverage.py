"""Which of a provider's models are priced: the catalog offline, the provider's listing live (OpenRouter's
pass-through prices included), and ``agentadapter models --provider X [--live]`` saying which are unpriced."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from typer.testing import CliRunner

from agentadapter import LLM
from agentadapter.cli import app
from agentadapter.llm.price_coverage import listing_pricing, price_coverage
from fakes.openai_server import OpenAIFake

OPENROUTER_LISTING = [
    {"id": "anthropic/claude-sonnet-4.5", "pricing": {"prompt": "0.000003", "completion": "0.000015"}},
    {"id": "mistralai/some-new-model", "pricing": {"prompt": "0.0000002", "completion": "0.0000006",
                                                   "input_cache_read": "0.00000005"}},
    {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
    {"id": "someone/unlisted-price"},
]


@pytest.fixture
async def openrouter() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as fake:
        fake.models = OPENROUTER_LISTING
        yield fake


async def test_live_coverage_uses_the_catalog_then_the_listings_own_prices(openrouter: OpenAIFake) -> None:
    llm = LLM(config={"backends": {"openrouter": {"base_url": f"{openrouter.url}/api/v1", "api_key": "test-key"}}},
              environ={})
    rows = {row.model_id: row for row in await price_coverage(llm, "openrouter", live=True)}
    await llm.aclose()
    sonnet = rows["openrouter/anthropic/claude-sonnet-4.5"]
    assert sonnet.origin == "catalog" and sonnet.pricing is not None and sonnet.pricing.input == 3.0
    new = rows["openrouter/mistralai/some-new-model"]
    assert new.origin == "listing" and new.pricing is not None
    assert (new.pricing.input, new.pricing.output, new.pricing.cached_input) == (0.2, 0.6, 0.05)
    # A dynamic price (-1, the auto router) and a missing one are unpriced, never guessed.
    assert not rows["openrouter/openrouter/auto"].priced and not rows["openrouter/someone/unlisted-price"].priced
    assert openrouter.requests[-1].path == "/api/v1/models"
    assert openrouter.requests[-1].headers["authorization"] == "Bearer test-key"


async def test_offline_coverage_lists_the_catalogs_entries() -> None:
    llm = LLM(config={}, environ={})
    rows = await price_coverage(llm, "perplexity")
    assert {row.model_id for row in rows} >= {"perplexity/sonar", "perplexity/sonar-pro"}
    assert all(row.priced and row.origin == "catalog" for row in rows)
    await llm.aclose()


def test_listing_pricing_reads_per_token_strings() -> None:
    assert listing_pricing({"prompt": "0.000001", "completion": 2e-6}, "x") is not None
    assert listing_pricing({"prompt": "free", "completion": "0"}, "x") is None
    assert listing_pricing(None, "x") is None


@pytest.fixture
def threaded_openrouter() -> Iterator[OpenAIFake]:
    """The fake on a loop of its own, for the CLI (which runs its own event loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = OpenAIFake()
    fake.models = OPENROUTER_LISTING
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result()
    yield fake
    asyncio.run_coroutine_threadsafe(fake.close(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def test_the_cli_says_which_models_are_unpriced(threaded_openrouter: OpenAIFake, tmp_path, monkeypatch) -> None:
    runner = CliRunner()
    config = tmp_path / "agentadapter.yaml"
    config.write_text(f"backends:\n  openrouter: {{base_url: '{threaded_openrouter.url}/api/v1', api_key: k}}\n")
    result = runner.invoke(app, ["models", "--provider", "openrouter", "--live", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Unpriced (2)" in result.stdout and "openrouter/openrouter/auto" in result.stdout
    as_json = runner.invoke(app, ["models", "-p", "openrouter", "--live", "--json", "--config", str(config)])
    rows = {row["model"]: row for row in json.loads(as_json.stdout)}
    assert rows["openrouter/mistralai/some-new-model"]["price_from"] == "listing"
    offline = runner.invoke(app, ["models", "--provider", "perplexity"])
    assert offline.exit_code == 0 and "Every model listed is priced." in offline.stdout
    refused = runner.invoke(app, ["models", "--live"])
    assert refused.exit_code == 2 and "--provider" in refused.output
