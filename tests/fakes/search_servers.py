"""Loopback fakes of the web search APIs ``web_search`` speaks: SearXNG, Brave and Tavily.

Each answers in its vendor's JSON shape with the :class:`Hit` objects set on ``hits`` (snippets may
carry markup, as Brave's do), checks the credential the vendor checks (a 401 in the vendor's error
shape otherwise), and records every request (:attr:`FakeServer.requests`):

- :class:`SearXNGFake`: ``GET /search?q=...&format=json`` (403 unless ``format=json``, as a
  SearXNG instance without the JSON format enabled answers) -> ``{query, number_of_results,
  results: [{title, url, content, engine, score}], answers, suggestions, ...}``.
- :class:`BraveFake`: ``GET /res/v1/web/search?q=...&count=N`` with ``X-Subscription-Token`` ->
  ``{type: "search", query: {original}, web: {type: "search", results: [{title, url,
  description, ...}]}}``.
- :class:`TavilyFake`: ``POST /search`` with ``Authorization: Bearer <key>`` and a JSON body
  ``{query, max_results, ...}`` -> ``{query, answer, results: [{title, url, content, score,
  raw_content}], response_time}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from .server import FakeServer, Recorded


@dataclass
class Hit:
    title: str
    url: str
    snippet: str


DEFAULT_HITS = [
    Hit("Python (programming language)", "https://en.wikipedia.org/wiki/Python_(programming_language)",
        "Python is a high-level, general-purpose programming language."),
    Hit("Welcome to Python.org", "https://www.python.org/", "The official home of the Python Programming Language."),
    Hit("Python Tutorial", "https://docs.python.org/3/tutorial/", "This tutorial introduces the reader informally."),
]


class _SearchFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.hits: list[Hit] = list(DEFAULT_HITS)


class SearXNGFake(_SearchFake):
    def __init__(self) -> None:
        super().__init__()
        self.route("GET", "/search", self._search)

    async def _search(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if request.query.get("format") != "json":
            return web.Response(status=403, text="Forbidden")
        query = request.query.get("q", "")
        results = [{"title": h.title, "url": h.url, "content": h.snippet, "engine": "duckduckgo",
                    "engines": ["duckduckgo"], "parsed_url": [*urlsplit(h.url), ""],
                    "score": 1.0 / (i + 1), "category": "general", "positions": [i + 1]}
                   for i, h in enumerate(self.hits)]
        return web.json_response({"query": query, "number_of_results": len(results), "results": results,
                                  "answers": [], "corrections": [], "infoboxes": [], "suggestions": [],
                                  "unresponsive_engines": []})


class BraveFake(_SearchFake):
    def __init__(self, api_key: str = "brave-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.route("GET", "/res/v1/web/search", self._search)

    async def _search(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if request.headers.get("X-Subscription-Token") != self.api_key:
            return web.json_response({"type": "ErrorResponse", "error": {
                "id": "0d9a9c1f", "status": 401, "code": "SUBSCRIPTION_TOKEN_INVALID",
                "detail": "The provided subscription token is invalid."}, "time": 1700000000}, status=401)
        count = int(request.query.get("count", "20"))
        results = [{"type": "search_result", "title": h.title, "url": h.url, "description": h.snippet,
                    "is_source_local": False, "is_source_both": False, "language": "en", "family_friendly": True,
                    "meta_url": {"scheme": urlsplit(h.url).scheme, "hostname": urlsplit(h.url).hostname}}
                   for h in self.hits[:count]]
        return web.json_response({"type": "search", "query": {"original": request.query.get("q", "")},
                                  "mixed": {"type": "mixed", "main": []},
                                  "web": {"type": "search", "results": results, "family_friendly": True}})


class TavilyFake(_SearchFake):
    def __init__(self, api_key: str = "tvly-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.route("POST", "/search", self._search)

    async def _search(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": {"error": "Unauthorized: missing or invalid API key."}}, status=401)
        try:
            body = json.loads(recorded.body)
        except ValueError:
            return web.json_response({"detail": {"error": "Invalid JSON body"}}, status=400)
        if not isinstance(body.get("query"), str):
            return web.json_response({"detail": {"error": "query is required"}}, status=400)
        count = int(body.get("max_results", 5))
        results = [{"title": h.title, "url": h.url, "content": h.snippet, "score": 0.9 - i * 0.1,
                    "raw_content": None} for i, h in enumerate(self.hits[:count])]
        return web.json_response({"query": body["query"], "follow_up_questions": None, "answer": None,
                                  "images": [], "results": results, "response_time": 0.42})
