"""``file_search``: search archives of files and answer with passages and their citations.

:class:`FileSearch` wraps a search it is handed - an async function of ``(query, max_results)`` that
returns hits as mappings (``filename``, ``text``, ``page``, ``section``, ``char_start``, ``char_end``,
``archive``, ``score``) - so this module knows nothing of databases or tenants: the application layer
builds the search over a tenant's archives and gives the tool to the agents it builds (RAG by
default). The model sees numbered passages, each with its source (file, page or section, character
span), and is asked to cite them as ``[n]``; the text is capped at ``max_chars``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from agentadapter.agents.tools._text import cap_text
from agentadapter.agents.tools.decorator import FunctionTool

__all__ = ["FileSearch", "Searcher", "format_hits"]

Searcher = Callable[[str, int], Awaitable[Sequence[Mapping[str, Any]]]]
"""``search(query, max_results)`` -> hits, best first."""


def _source(hit: Mapping[str, Any]) -> str:
    where = [str(hit.get("filename") or "unknown file")]
    if hit.get("page") is not None:
        where.append(f"page {hit['page']}")
    if hit.get("section"):
        where.append(f"section {hit['section']!r}")
    where.append(f"characters {hit.get('char_start', 0)}-{hit.get('char_end', 0)}")
    if hit.get("archive"):
        where.append(f"archive {hit['archive']}")
    return ", ".join(where)


def format_hits(query: str, hits: Sequence[Mapping[str, Any]], max_chars: int) -> str:
    """The passages as the model reads them: numbered, each with its source."""
    if not hits:
        return f"No passage of the searched files matches {query!r}."
    blocks = [f"[{index}] {_source(hit)}\n{str(hit.get('text', '')).strip()}" for index, hit in enumerate(hits, 1)]
    body = "\n\n".join(blocks)
    return (f"{len(hits)} passages for {query!r}; cite them as [n] when you use them.\n\n"
            + cap_text(body, max_chars, what="passages"))


class FileSearch:
    """The file_search tool over one search (see the module's docstring)."""

    def __init__(self, search: Searcher, *, archives: Sequence[str] = (), max_results: int = 5,
                 max_chars: int = 12_000, timeout_s: float = 60.0, name: str = "file_search") -> None:
        self.search = search
        self.archives = list(archives)
        """The archives' names (for the tool's description)."""
        self.max_results = max_results
        self.max_chars = max_chars
        self.timeout_s = timeout_s
        self.name = name

    def as_tool(self) -> FunctionTool:
        """The tool an agent gets: ``file_search(query, max_results)``."""
        searcher = self
        limit = self.max_results

        async def file_search(query: str, max_results: int = limit) -> str:
            """Search the user's files for passages relevant to a question; answers cite them as [n].

            Args:
                query: What to look for, in natural language or keywords.
                max_results: How many passages to return (1-20).
            """
            count = max(1, min(int(max_results), 20))
            hits = await searcher.search(query, count)
            return format_hits(query, hits, searcher.max_chars)

        description = "Search the user's files for passages relevant to a question, with citations."
        if self.archives:
            description += f" Searches the archives: {', '.join(self.archives)}."
        return FunctionTool.wrap(file_search, name=self.name, description=description, timeout=self.timeout_s)
