"""``web_search``: search the web through a pluggable provider; results normalized and cached.

A :class:`SearchProvider` turns a query into :class:`SearchResult` objects (``title``, ``url``,
``snippet``). Three ship, each speaking its vendor's HTTP API through the adapter's transport seam
(:mod:`agentadapter.llm.transport`): :class:`SearXNGProvider` (a SearXNG instance's JSON API,
``GET /search?format=json``), :class:`BraveProvider` (``GET /res/v1/web/search`` with the
``X-Subscription-Token`` header) and :class:`TavilyProvider` (``POST /search`` with a bearer key).
:class:`WebSearch` is the tool: it normalizes results (markup stripped, snippets capped, duplicates
and non-web URLs dropped), keeps them in a small TTL cache keyed by provider and query, and turns
provider failures into errors the model can read.

The built-in ``web_search`` picks its provider from the environment on first use:
``AGENTADAPTER_WEB_SEARCH_PROVIDER`` (``searxng`` | ``brave`` | ``tavily``) if set, else the first
configured of ``SEARXNG_URL``, ``BRAVE_API_KEY``, ``TAVILY_API_KEY``; ``BRAVE_BASE_URL`` and
``TAVILY_BASE_URL`` override the vendors' URLs.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.agents.tools.errors import WebSearchError
from agentadapter.llm.errors import APIConnectionError, APITimeoutError
from agentadapter.llm.transport import AiohttpTransport, HTTPRequest, HTTPResponse, Timeout, Transport

__all__ = [
    "BraveProvider",
    "SearXNGProvider",
    "SearchProvider",
    "SearchResponse",
    "SearchResult",
    "TavilyProvider",
    "WebSearch",
    "provider_from_env",
    "web_search",
]

MAX_RESULTS = 20


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One normalized search result."""

    title: str
    url: str
    snippet: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url, "snippet": self.snippet}


@dataclass(slots=True)
class SearchResponse:
    """What ``web_search`` returns: the results, where they came from, and whether from the cache."""

    query: str
    provider: str
    results: list[SearchResult]
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "provider": self.provider, "cached": self.cached,
                "results": [r.to_dict() for r in self.results]}


class SearchProvider(ABC):
    """A web search API. Subclasses implement :meth:`search`; raise :class:`WebSearchError` on failure."""

    name: str = "provider"

    @abstractmethod
    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        """Up to ``max_results`` results for ``query`` (raw: :class:`WebSearch` normalizes them)."""

    @property
    def cache_key(self) -> str:
        """Distinguishes providers in the cache (name and endpoint)."""
        return self.name


class _HTTPProvider(SearchProvider):
    key_env = ""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 15.0,
                 transport: Transport[Any] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = Timeout(connect=min(timeout_s, 10.0), read=timeout_s, total=timeout_s)
        self.transport = transport
        """The HTTP transport to use; None: a short-lived aiohttp one per search."""

    @property
    def cache_key(self) -> str:
        return f"{self.name}:{self.base_url}"

    async def _send(self, request: HTTPRequest) -> Any:
        request.timeout, request.provider = self.timeout, self.name
        transport = self.transport or AiohttpTransport()
        try:
            response = await transport.send(request)
        except APITimeoutError as exc:
            raise WebSearchError(f"the search provider {self.name} did not answer within {self.timeout.total:g} s; "
                                 "try again", reason="timeout") from exc
        except APIConnectionError as exc:
            raise WebSearchError(f"cannot reach the search provider {self.name} at {self.base_url}: {exc}",
                                 reason="connect") from exc
        finally:
            if self.transport is None:
                await transport.aclose()
        return self._json(response)

    def _json(self, response: HTTPResponse) -> Any:
        status = response.status
        if status in (401, 403):
            hint = f"; check {self.key_env}" if self.key_env else ""
            raise WebSearchError(f"the search provider {self.name} refused the request ({status}){hint}",
                                 reason="auth")
        if status == 429:
            raise WebSearchError(f"the search provider {self.name} is rate limiting (429); search again later",
                                 reason="rate_limited")
        if status >= 400:
            body = response.content[:300].decode("utf-8", errors="replace")
            raise WebSearchError(f"the search provider {self.name} answered {status}: {body}", reason="status")
        try:
            return response.json()
        except ValueError as exc:
            raise WebSearchError(f"the search provider {self.name} answered something that is not JSON",
                                 reason="invalid_response") from exc


def _items(data: Any, *path: str) -> list[Mapping[str, Any]]:
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return [item for item in data if isinstance(item, Mapping)] if isinstance(data, list) else []


class SearXNGProvider(_HTTPProvider):
    """A SearXNG instance (its JSON output format must be enabled in its settings)."""

    name = "searxng"

    def __init__(self, base_url: str, *, language: str | None = None, safesearch: int | None = None,
                 timeout_s: float = 15.0, transport: Transport[Any] | None = None) -> None:
        super().__init__(base_url, timeout_s=timeout_s, transport=transport)
        self.language, self.safesearch = language, safesearch

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        params: dict[str, Any] = {"q": query, "format": "json"}
        if self.language:
            params["language"] = self.language
        if self.safesearch is not None:
            params["safesearch"] = self.safesearch
        data = await self._send(HTTPRequest("GET", f"{self.base_url}/search?{urlencode(params)}",
                                            headers={"Accept": "application/json"}))
        # SearXNG has no result-count parameter: it answers a page (about 20) and we keep the first ones.
        return [SearchResult(str(i.get("title") or ""), str(i.get("url") or ""), str(i.get("content") or ""))
                for i in _items(data, "results")]


class BraveProvider(_HTTPProvider):
    """The Brave Search web search API."""

    name = "brave"
    key_env = "BRAVE_API_KEY"

    def __init__(self, api_key: str, *, base_url: str = "https://api.search.brave.com", timeout_s: float = 15.0,
                 transport: Transport[Any] | None = None) -> None:
        if not api_key:
            raise WebSearchError("BraveProvider needs an API key: set BRAVE_API_KEY or pass api_key=",
                                 reason="not_configured")
        super().__init__(base_url, api_key=api_key, timeout_s=timeout_s, transport=transport)

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        params = urlencode({"q": query, "count": max(1, min(max_results, MAX_RESULTS))})
        data = await self._send(HTTPRequest(
            "GET", f"{self.base_url}/res/v1/web/search?{params}",
            headers={"Accept": "application/json", "X-Subscription-Token": self.api_key or ""},
        ))
        return [SearchResult(str(i.get("title") or ""), str(i.get("url") or ""), str(i.get("description") or ""))
                for i in _items(data, "web", "results")]


class TavilyProvider(_HTTPProvider):
    """The Tavily search API."""

    name = "tavily"
    key_env = "TAVILY_API_KEY"

    def __init__(self, api_key: str, *, base_url: str = "https://api.tavily.com", search_depth: str = "basic",
                 timeout_s: float = 15.0, transport: Transport[Any] | None = None) -> None:
        if not api_key:
            raise WebSearchError("TavilyProvider needs an API key: set TAVILY_API_KEY or pass api_key=",
                                 reason="not_configured")
        super().__init__(base_url, api_key=api_key, timeout_s=timeout_s, transport=transport)
        self.search_depth = search_depth

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        body = {"query": query, "max_results": max(1, min(max_results, MAX_RESULTS)),
                "search_depth": self.search_depth}
        data = await self._send(HTTPRequest(
            "POST", f"{self.base_url}/search", json=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        ))
        return [SearchResult(str(i.get("title") or ""), str(i.get("url") or ""), str(i.get("content") or ""))
                for i in _items(data, "results")]


def provider_from_env(environ: Mapping[str, str] | None = None) -> SearchProvider:
    """The provider the environment configures (see the module docstring), or :class:`WebSearchError`."""
    env = os.environ if environ is None else environ
    searxng = env.get("SEARXNG_URL") or env.get("SEARXNG_BASE_URL")
    brave = env.get("BRAVE_API_KEY") or env.get("BRAVE_SEARCH_API_KEY")
    tavily = env.get("TAVILY_API_KEY")
    chosen = (env.get("AGENTADAPTER_WEB_SEARCH_PROVIDER") or "").strip().lower()
    if not chosen:
        chosen = "searxng" if searxng else "brave" if brave else "tavily" if tavily else ""
    if chosen == "searxng" and searxng:
        return SearXNGProvider(searxng)
    if chosen == "brave" and brave:
        return BraveProvider(brave, base_url=env.get("BRAVE_BASE_URL") or "https://api.search.brave.com")
    if chosen == "tavily" and tavily:
        return TavilyProvider(tavily, base_url=env.get("TAVILY_BASE_URL") or "https://api.tavily.com")
    if chosen in ("searxng", "brave", "tavily"):
        needed = {"searxng": "SEARXNG_URL", "brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY"}[chosen]
        raise WebSearchError(f"web search is set to use {chosen} but {needed} is not set", reason="not_configured")
    if chosen:
        raise WebSearchError(f"AGENTADAPTER_WEB_SEARCH_PROVIDER={chosen!r} is not a known provider; use searxng, "
                             "brave or tavily", reason="not_configured")
    raise WebSearchError("web search is not configured: set SEARXNG_URL, BRAVE_API_KEY or TAVILY_API_KEY (and "
                         "optionally AGENTADAPTER_WEB_SEARCH_PROVIDER)", reason="not_configured")


_TAG = re.compile(r"<[^>]+>")


def _clean(text: str, limit: int) -> str:
    text = " ".join(html.unescape(_TAG.sub("", text)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(slots=True)
class _CacheEntry:
    expires: float
    results: list[SearchResult] = field(default_factory=list)


class WebSearch:
    """The web_search tool: a provider, normalization, and a TTL cache."""

    def __init__(self, provider: SearchProvider | None = None, *, cache_ttl_s: float = 300.0, cache_size: int = 256,
                 max_results: int = 5, max_snippet_chars: int = 400, name: str = "web_search",
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._provider = provider
        self._environ = environ
        self.cache_ttl_s, self.cache_size = cache_ttl_s, cache_size
        self.max_results = max(1, min(max_results, MAX_RESULTS))
        self.max_snippet_chars = max_snippet_chars
        self.name = name
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str, int], _CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def provider(self) -> SearchProvider:
        """The provider given, else the one the environment configures (resolved on first use)."""
        if self._provider is None:
            self._provider = provider_from_env(self._environ)
        return self._provider

    def as_tool(self, *, name: str | None = None) -> FunctionTool:
        """The tool an agent gets: ``web_search(query, max_results=5)``."""
        searcher = self

        async def web_search(query: str, max_results: int = self.max_results) -> dict[str, Any]:
            """Search the web; returns results with title, url and snippet.

            Args:
                query: What to search for, as you would type it into a search engine.
                max_results: How many results to return (1 to 20).
            """
            return (await searcher.search(query, max_results)).to_dict()

        return FunctionTool.wrap(web_search, name=name or self.name, timeout=60.0)

    async def search(self, query: str, max_results: int | None = None) -> SearchResponse:
        """Normalized results for ``query``, from the cache when a fresh answer is there."""
        query = " ".join(query.split())
        if not query:
            raise WebSearchError("the search query is empty", reason="empty")
        count = max(1, min(max_results or self.max_results, MAX_RESULTS))
        provider = self.provider
        key = (provider.cache_key, query.casefold(), count)
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.expires > now:
                self._cache.move_to_end(key)
                return SearchResponse(query, provider.name, list(entry.results), cached=True)
        raw = await provider.search(query, count)
        results = self._normalize(raw, count)
        if self.cache_ttl_s > 0:
            with self._lock:
                self._cache[key] = _CacheEntry(self._clock() + self.cache_ttl_s, results)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return SearchResponse(query, provider.name, list(results))

    def _normalize(self, raw: list[SearchResult], count: int) -> list[SearchResult]:
        seen: set[str] = set()
        results: list[SearchResult] = []
        for item in raw:
            url = item.url.strip()
            if not url.startswith(("http://", "https://")) or url in seen:
                continue
            seen.add(url)
            title = _clean(item.title, 300) or url
            results.append(SearchResult(title, url, _clean(item.snippet, self.max_snippet_chars)))
            if len(results) == count:
                break
        return results

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


web_search = WebSearch().as_tool()
"""The built-in ``web_search`` tool: the provider the environment configures, a 5-minute cache."""
