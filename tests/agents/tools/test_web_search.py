"""``web_search`` against loopback fakes of SearXNG, Brave and Tavily: wire shapes, normalization, cache."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from agentadapter.agents import LLMAgent
from agentadapter.agents.tools.errors import WebSearchError
from agentadapter.agents.tools.web_search import (
    BraveProvider,
    SearchProvider,
    SearchResult,
    SearXNGProvider,
    TavilyProvider,
    WebSearch,
    provider_from_env,
)
from fakes.search_servers import BraveFake, Hit, SearXNGFake, TavilyFake

from .conftest import call, reply, scripted, tool_results

EXPECTED = [
    {"title": "Python (programming language)", "url": "https://en.wikipedia.org/wiki/Python_(programming_language)",
     "snippet": "Python is a high-level, general-purpose programming language."},
    {"title": "Welcome to Python.org", "url": "https://www.python.org/",
     "snippet": "The official home of the Python Programming Language."},
]


@pytest.fixture
async def searxng() -> AsyncIterator[SearXNGFake]:
    async with SearXNGFake() as fake:
        yield fake


@pytest.fixture
async def brave() -> AsyncIterator[BraveFake]:
    async with BraveFake() as fake:
        yield fake


@pytest.fixture
async def tavily() -> AsyncIterator[TavilyFake]:
    async with TavilyFake() as fake:
        yield fake


async def test_searxng(searxng: SearXNGFake) -> None:
    response = await WebSearch(SearXNGProvider(searxng.url)).search("python  language", max_results=2)
    assert response.to_dict() == {"query": "python language", "provider": "searxng", "cached": False,
                                  "results": EXPECTED}
    request = searxng.requests[0]
    assert (request.method, request.path, request.query) == ("GET", "/search",
                                                              {"q": "python language", "format": "json"})


async def test_brave(brave: BraveFake) -> None:
    response = await WebSearch(BraveProvider("brave-test-key", base_url=brave.url)).search("python", 2)
    assert [r.to_dict() for r in response.results] == EXPECTED and response.provider == "brave"
    request = brave.requests[0]
    assert request.path == "/res/v1/web/search" and request.query == {"q": "python", "count": "2"}
    assert request.headers["x-subscription-token"] == "brave-test-key"
    assert request.headers["accept"] == "application/json"


async def test_tavily(tavily: TavilyFake) -> None:
    response = await WebSearch(TavilyProvider("tvly-test-key", base_url=tavily.url)).search("python", 2)
    assert [r.to_dict() for r in response.results] == EXPECTED and response.provider == "tavily"
    request = tavily.requests[0]
    assert (request.method, request.path) == ("POST", "/search")
    assert request.headers["authorization"] == "Bearer tvly-test-key"
    assert request.json == {"query": "python", "max_results": 2, "search_depth": "basic"}


async def test_results_are_normalized(brave: BraveFake) -> None:
    brave.hits = [
        Hit("<strong>Python</strong> &amp; more", "https://a.example/", "The <strong>best</strong>\n  language " + "x" * 600),
        Hit("Duplicate", "https://a.example/", "same url again"),
        Hit("Not the web", "javascript:alert(1)", "dropped"),
        Hit("", "https://b.example/page", "  untitled  "),
    ]
    search = WebSearch(BraveProvider("brave-test-key", base_url=brave.url), max_snippet_chars=40)
    results = (await search.search("python")).results
    assert results[0].title == "Python & more"
    assert results[0].snippet.startswith("The best language xxx") and results[0].snippet.endswith("…")
    assert len(results[0].snippet) == 40
    assert results[1] == SearchResult("https://b.example/page", "https://b.example/page", "untitled")
    assert len(results) == 2


async def test_results_are_cached_per_provider_and_query_until_they_expire(searxng: SearXNGFake) -> None:
    now = [1000.0]
    search = WebSearch(SearXNGProvider(searxng.url), cache_ttl_s=60, clock=lambda: now[0])
    first = await search.search("Python")
    again = await search.search("  python ")
    assert not first.cached and again.cached and again.results == first.results
    assert len(searxng.requests) == 1
    await search.search("python", max_results=3)  # another count is another question
    assert len(searxng.requests) == 2
    now[0] += 61
    assert not (await search.search("python")).cached
    assert len(searxng.requests) == 3


async def test_the_cache_is_bounded(searxng: SearXNGFake) -> None:
    search = WebSearch(SearXNGProvider(searxng.url), cache_size=2)
    for query in ("a", "b", "c"):
        await search.search(query)
    assert (await search.search("c")).cached and (await search.search("b")).cached
    assert not (await search.search("a")).cached


async def test_provider_failures_become_readable_errors(brave: BraveFake, searxng: SearXNGFake) -> None:
    with pytest.raises(WebSearchError, match="refused the request \\(401\\); check BRAVE_API_KEY") as caught:
        await WebSearch(BraveProvider("wrong-key", base_url=brave.url)).search("python")
    assert caught.value.reason == "auth"
    brave.fail(429, {"error": "rate limited"})
    with pytest.raises(WebSearchError, match="rate limiting") as caught:
        await WebSearch(BraveProvider("brave-test-key", base_url=brave.url)).search("python")
    searxng.fail(200, raw=b"<html>not json</html>")
    with pytest.raises(WebSearchError, match="not JSON"):
        await WebSearch(SearXNGProvider(searxng.url)).search("python")
    searxng.fail(502, {"error": "bad gateway"})
    with pytest.raises(WebSearchError, match="answered 502"):
        await WebSearch(SearXNGProvider(searxng.url)).search("python")
    with pytest.raises(WebSearchError, match="cannot reach the search provider searxng") as caught:
        await WebSearch(SearXNGProvider("http://127.0.0.1:9")).search("python")
    assert caught.value.reason == "connect"
    with pytest.raises(WebSearchError, match="empty"):
        await WebSearch(SearXNGProvider(searxng.url)).search("   ")


def test_the_provider_comes_from_the_environment() -> None:
    assert isinstance(provider_from_env({"SEARXNG_URL": "http://search.lan"}), SearXNGProvider)
    brave = provider_from_env({"BRAVE_API_KEY": "k", "BRAVE_BASE_URL": "http://127.0.0.1:1"})
    assert isinstance(brave, BraveProvider) and brave.base_url == "http://127.0.0.1:1"
    tavily = provider_from_env({"TAVILY_API_KEY": "t", "BRAVE_API_KEY": "k", "AGENTADAPTER_WEB_SEARCH_PROVIDER": "tavily"})
    assert isinstance(tavily, TavilyProvider) and tavily.base_url == "https://api.tavily.com"
    with pytest.raises(WebSearchError, match="set SEARXNG_URL, BRAVE_API_KEY or TAVILY_API_KEY"):
        provider_from_env({})
    with pytest.raises(WebSearchError, match="TAVILY_API_KEY is not set"):
        provider_from_env({"AGENTADAPTER_WEB_SEARCH_PROVIDER": "tavily"})
    with pytest.raises(WebSearchError, match="not a known provider"):
        provider_from_env({"AGENTADAPTER_WEB_SEARCH_PROVIDER": "bing", "SEARXNG_URL": "http://x"})


class CountingProvider(SearchProvider):
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        self.calls += 1
        return [SearchResult(f"{query} {i}", f"https://example.com/{i}", "s") for i in range(max_results)]


async def test_an_agent_searches_and_sees_provider_errors_as_error_results(tavily: TavilyFake) -> None:
    search = WebSearch(TavilyProvider("tvly-test-key", base_url=tavily.url))
    unconfigured = WebSearch(environ={}).as_tool(name="other_search")
    _, _, config = scripted(
        reply(call("web_search", query="python", max_results=2)),
        reply(call("other_search", query="python")),
        "found it",
    )
    agent = LLMAgent("researcher", model="script/m", tools=[search.as_tool(), unconfigured])
    result = await agent.run("search", config)
    assert result.output == "found it"
    (found, found_error), (failed, failed_error) = tool_results(result)
    assert not found_error and json.loads(found)["results"] == EXPECTED
    assert failed_error and "WebSearchError" in failed and "TAVILY_API_KEY" in failed


async def test_custom_providers_plug_in() -> None:
    provider = CountingProvider()
    search = WebSearch(provider, max_results=3)
    assert [r.url for r in (await search.search("q")).results] == [f"https://example.com/{i}" for i in range(3)]
    assert (await search.search("q")).cached and provider.calls == 1
    assert len((await search.search("q", max_results=50)).results) == 20  # capped
