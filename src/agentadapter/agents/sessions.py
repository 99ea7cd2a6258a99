"""Conversations that outlive a run: the :class:`Session` store, and compaction of a long history.

A :class:`Session` keeps one conversation's messages between runs. :func:`run_in_session` runs an
agent on a new input after the session's history and adds the input and the messages the run
produced to it. Implementations: :class:`InMemorySession` (a process's memory),
:class:`RedisSession` (a Redis list per conversation, under a key prefix) and the service
database's thread store (:class:`agentadapter.store.threads.ThreadSession`).

A history grows until it no longer fits the model's context window. :class:`Compaction` says when
and how to shorten it: once the history's tokens (counted offline: :mod:`agentadapter.llm.tokens`)
reach ``threshold`` of the context window (the catalog's, or ``context_window``), ``trim`` drops the
oldest messages and ``summarize`` replaces them with a summary written by the agent's own model;
the last ``keep_last`` messages are always kept as they are. :func:`compact` does it to a list of
messages, so any store can use it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agentadapter.agents.context import AgentInput, default_llm
from agentadapter.agents.run_config import RunConfig
from agentadapter.llm import catalog
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, Request, TextPart, coerce_messages
from agentadapter.llm.tokens import count_tokens_local

if TYPE_CHECKING:
    from agentadapter.agents.base import BaseAgent
    from agentadapter.agents.result import AgentResult
    from agentadapter.llm.client import LLM

__all__ = [
    "SUMMARY_PREFIX",
    "Compaction",
    "CompactionResult",
    "InMemorySession",
    "RedisSession",
    "Session",
    "compact",
    "history_tokens",
    "run_in_session",
]

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
"""How a summary message starts (a ``user`` message: every provider takes it first in a conversation)."""

_SUMMARY_INSTRUCTIONS = (
    "Summarize the conversation below for whoever continues it: keep every fact, name, number, decision "
    "and open question; drop pleasantries. Answer with the summary only."
)


class Session(ABC):
    """One conversation's messages, kept between runs (oldest first)."""

    session_id: str

    @abstractmethod
    async def get_messages(self) -> list[Message]:
        """The conversation so far."""

    @abstractmethod
    async def add_messages(self, messages: Sequence[Message]) -> None:
        """Append messages to the conversation."""

    @abstractmethod
    async def replace_messages(self, messages: Sequence[Message]) -> None:
        """Replace the whole conversation (after compaction)."""

    async def clear(self) -> None:
        """Forget the conversation."""
        await self.replace_messages([])


class InMemorySession(Session):
    """A conversation in this process's memory (tests, scripts, one-process apps)."""

    def __init__(self, session_id: str = "default", messages: Sequence[Message] = ()) -> None:
        self.session_id = session_id
        self._messages = list(messages)

    async def get_messages(self) -> list[Message]:
        return list(self._messages)

    async def add_messages(self, messages: Sequence[Message]) -> None:
        self._messages.extend(messages)

    async def replace_messages(self, messages: Sequence[Message]) -> None:
        self._messages = list(messages)


class RedisSession(Session):
    """A conversation in a Redis list (``<prefix>session:<id>``), one JSON message per item.

    ``redis`` is a ``redis.asyncio`` client (the caller keeps and closes it) or a URL (a client of its
    own, closed by :meth:`aclose`). ``ttl_s`` makes an idle conversation expire.
    """

    def __init__(
        self, session_id: str, redis: Any, *, prefix: str = "agentadapter:", ttl_s: float | None = None
    ) -> None:
        if isinstance(redis, str):
            import redis.asyncio as redis_asyncio  # an optional extra: imported when used

            self._redis: Any = redis_asyncio.Redis.from_url(redis)
            self._owns = True
        else:
            self._redis, self._owns = redis, False
        self.session_id = session_id
        self.key = f"{prefix}session:{session_id}"
        self.ttl_s = ttl_s

    async def get_messages(self) -> list[Message]:
        items = await self._redis.lrange(self.key, 0, -1)
        return coerce_messages([json.loads(item) for item in items]) if items else []

    async def add_messages(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.key, *(json.dumps(m.to_dict()) for m in messages))
            if self.ttl_s:
                pipe.pexpire(self.key, int(self.ttl_s * 1000))
            await pipe.execute()

    async def replace_messages(self, messages: Sequence[Message]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:  # readers never see it half written
            pipe.delete(self.key)
            if messages:
                pipe.rpush(self.key, *(json.dumps(m.to_dict()) for m in messages))
                if self.ttl_s:
                    pipe.pexpire(self.key, int(self.ttl_s * 1000))
            await pipe.execute()

    async def aclose(self) -> None:
        if self._owns:
            await self._redis.aclose()


# ----------------------------------------------------------------------------------- compaction


@dataclass(frozen=True, slots=True)
class Compaction:
    """When and how a conversation's history is shortened before a run."""

    strategy: Literal["trim", "summarize"] = "trim"
    """``trim``: drop the oldest messages; ``summarize``: replace them with a summary by the agent's model."""
    threshold: float = 0.8
    """Compact once the history reaches this fraction of the context window (0 < threshold <= 1)."""
    context_window: int | None = None
    """Tokens the model takes; None: the catalog's number for the model."""
    keep_last: int = 2
    """The newest messages, always kept as they are."""

    def __post_init__(self) -> None:
        if self.strategy not in ("trim", "summarize"):
            raise InvalidRequestError(f"compaction strategy must be trim or summarize, not {self.strategy!r}")
        if not 0 < self.threshold <= 1:
            raise InvalidRequestError(f"compaction threshold must be above 0 and at most 1, not {self.threshold!r}")
        if self.context_window is not None and self.context_window < 1:
            raise InvalidRequestError(f"compaction context_window must be a positive number of tokens, "
                                      f"not {self.context_window!r}")
        if self.keep_last < 1:
            raise InvalidRequestError(f"compaction keep_last must be at least 1, not {self.keep_last!r}")

    def budget(self, model: str) -> int:
        """The history's token budget for ``model``."""
        window = self.context_window or catalog.lookup(model).context_window
        return max(1, int(window * self.threshold))

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "threshold": self.threshold, "context_window": self.context_window,
                "keep_last": self.keep_last}


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """A history after :func:`compact`: its messages, and what was done."""

    messages: list[Message]
    compacted: bool
    removed: int = 0
    """Messages dropped or folded into the summary."""
    tokens_before: int = 0
    tokens_after: int = 0
    summary: str | None = None


def history_tokens(messages: Sequence[Message], model: str) -> int:
    """The input tokens ``messages`` cost ``model`` (counted offline; estimated without a local tokenizer)."""
    if not messages:
        return 0
    return count_tokens_local(Request(model=model, messages=list(messages)), model).tokens


def _drop_orphans(messages: list[Message]) -> list[Message]:
    # A history may not start with tool results whose calls were dropped.
    while messages and messages[0].role == "tool":
        messages = messages[1:]
    return messages


def _trim(messages: list[Message], model: str, budget: int, keep_last: int) -> list[Message]:
    start = 0
    kept = messages
    while start < len(messages) - keep_last and history_tokens(kept, model) > budget:
        start += 1
        kept = _drop_orphans(messages[start:])
        start = len(messages) - len(kept)
    return kept


async def compact(
    messages: Sequence[Message], model: str, compaction: Compaction | None = None, *, llm: LLM | None = None,
) -> CompactionResult:
    """Shorten ``messages`` if they reach the compaction's share of ``model``'s context window.

    ``summarize`` asks ``model`` (through ``llm``, the default facade when None) for a summary of the
    older messages; if the summary and the newest messages still do not fit, the oldest of them are
    trimmed too.
    """
    compaction = compaction or Compaction()
    history = list(messages)
    before = history_tokens(history, model)
    budget = compaction.budget(model)
    if before <= budget or len(history) <= compaction.keep_last:
        return CompactionResult(history, False, tokens_before=before, tokens_after=before)
    summary: str | None = None
    if compaction.strategy == "summarize":
        older, newer = history[: -compaction.keep_last], history[-compaction.keep_last :]
        transcript = "\n".join(f"{m.role}: {m.text}" for m in older if m.text)
        response = await (llm or default_llm()).generate(
            model, [Message("system", [TextPart(_SUMMARY_INSTRUCTIONS)]), Message("user", [TextPart(transcript)])],
        )
        summary = response.text.strip()
        kept = [Message("user", [TextPart(SUMMARY_PREFIX + summary)]), *_drop_orphans(newer)]
        if history_tokens(kept, model) > budget:
            kept = [kept[0], *_trim(kept[1:], model, max(1, budget - history_tokens(kept[:1], model)),
                                    min(compaction.keep_last, len(kept) - 1))]
    else:
        kept = _trim(history, model, budget, compaction.keep_last)
    removed = len(history) - len(kept) + (1 if summary is not None else 0)
    return CompactionResult(kept, True, removed=removed, tokens_before=before,
                            tokens_after=history_tokens(kept, model), summary=summary)


def _agent_model(agent: BaseAgent) -> str | None:
    model = getattr(agent, "model", None)
    if isinstance(model, str):
        return model
    if isinstance(model, Sequence) and model and isinstance(model[0], str):
        return model[0]  # a failover route: its first target's window is the one planned for
    return None


async def run_in_session(
    agent: BaseAgent, input: AgentInput, session: Session, config: RunConfig | None = None, *,
    compaction: Compaction | None = None, deps: Any = None,
) -> AgentResult:
    """Run ``agent`` on ``input`` after the session's history, and add the input and the run's messages to it.

    With ``compaction`` the history is compacted first (and stored compacted). A run that does not
    complete (paused, failed) adds nothing: the conversation goes on from where it was.
    """
    config = config or RunConfig()
    history = await session.get_messages()
    model = _agent_model(agent)
    if compaction is not None and model is not None and history:
        compacted = await compact(history, model, compaction, llm=config.llm)
        if compacted.compacted:
            history = compacted.messages
            await session.replace_messages(history)
    result = await agent.run(input, config, deps=deps, history=history)
    if result.status == "completed":
        new = result.new_messages or [Message("assistant", [TextPart(result.text)])]
        await session.add_messages([*coerce_messages(input), *new])
    return result
