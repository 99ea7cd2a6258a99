"""Long-term memory of an agent: facts it keeps across runs, in its namespace of a shared context.

:class:`AgentMemory` stores short texts under ``memory/<id>`` in the agent's namespace of a
:class:`~agentadapter.protocol.context.SharedContext` (``agents/<name>/memory/...``), so every agent
has its own and a supervisor can still read it. It lasts as long as the context does: a run's own
in-process context ends with the run; a Redis context with a namespace of its own
(``RedisSharedContext(url, namespace="memory")``) keeps it across runs and processes.
:meth:`AgentMemory.search` ranks the facts by BM25 over their words (no embedding model needed),
newest first among equals; :meth:`AgentMemory.tools` gives an agent ``remember`` and
``search_memory`` tools over it.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.llm.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.protocol.context import SharedContext

__all__ = ["MEMORY_PREFIX", "AgentMemory", "MemoryItem"]

MEMORY_PREFIX = "memory/"
"""Where the facts live in the agent's namespace."""

_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TEXT = 4000


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """One remembered fact."""

    key: str
    text: str
    tags: tuple[str, ...] = ()
    created_at: float = 0.0
    score: float = field(default=0.0, compare=False)
    """Its relevance to the last search (0 outside a search)."""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "text": self.text, "tags": list(self.tags), "created_at": self.created_at}


class AgentMemory:
    """An agent's long-term memory in a shared context (see the module docstring)."""

    def __init__(self, context: SharedContext, agent: str) -> None:
        self.agent = agent
        self._space = context.namespace(agent)

    async def remember(self, text: str, *, key: str | None = None, tags: Sequence[str] = ()) -> str:
        """Keep ``text`` (under ``key``, replacing what was there; a new key when None); return the key."""
        text = text.strip()
        if not text:
            raise InvalidRequestError("a memory needs some text")
        if len(text) > _MAX_TEXT:
            raise InvalidRequestError(f"a memory is at most {_MAX_TEXT} characters, not {len(text)}; keep a summary")
        key = key or uuid.uuid4().hex[:12]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise InvalidRequestError(f"memory key {key!r}: use 1 to 64 letters, digits, '_', '.' or '-'")
        await self._space.set(MEMORY_PREFIX + key, {"text": text, "tags": list(tags), "created_at": time.time()},
                              writer=self.agent)
        return key

    async def recall(self, key: str) -> MemoryItem | None:
        value = await self._space.get(MEMORY_PREFIX + key)
        return _item(key, value) if value is not None else None

    async def forget(self, key: str) -> bool:
        return await self._space.delete(MEMORY_PREFIX + key, writer=self.agent)

    async def items(self) -> list[MemoryItem]:
        """Every fact, newest first."""
        found = await self._space.items(MEMORY_PREFIX)
        items = [_item(k.removeprefix(MEMORY_PREFIX), v) for k, v in found.items()]
        return sorted(items, key=lambda i: i.created_at, reverse=True)

    async def search(self, query: str, *, limit: int = 5) -> list[MemoryItem]:
        """The facts that share words with ``query``, best first (BM25; newer first among equals)."""
        terms = set(_words(query))
        items = await self.items()
        if not terms or not items:
            return []
        documents = [_words(i.text + " " + " ".join(i.tags)) for i in items]
        average = sum(len(d) for d in documents) / len(documents) or 1.0
        frequency = Counter(t for d in documents for t in set(d) if t in terms)
        scored: list[MemoryItem] = []
        for item, words in zip(items, documents, strict=True):
            counts = Counter(words)
            score = 0.0
            for term in terms & counts.keys():
                idf = math.log(1 + (len(documents) - frequency[term] + 0.5) / (frequency[term] + 0.5))
                tf = counts[term]
                score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(words) / average))
            if score > 0:
                scored.append(MemoryItem(item.key, item.text, item.tags, item.created_at, score))
        scored.sort(key=lambda i: (i.score, i.created_at), reverse=True)  # stable: newest first among equals
        return scored[:limit]

    def tools(self) -> list[FunctionTool]:
        """``remember(text)`` and ``search_memory(query)`` for the agent, over this memory."""
        memory = self

        async def remember(text: str) -> str:
            """Remember a fact for later conversations (a short sentence).

            Args:
                text: The fact to keep.
            """
            return f"remembered as {await memory.remember(text)}"

        async def search_memory(query: str) -> str:
            """Search what you remembered in earlier conversations.

            Args:
                query: Words to look for.
            """
            found = await memory.search(query)
            return "\n".join(f"- {i.text}" for i in found) or "nothing remembered about that"

        return [FunctionTool.wrap(remember), FunctionTool.wrap(search_memory)]


def _item(key: str, value: Any) -> MemoryItem:
    data = value if isinstance(value, dict) else {"text": str(value)}
    return MemoryItem(key, str(data.get("text", "")), tuple(str(t) for t in data.get("tags") or ()),
                      float(data.get("created_at") or 0.0))
