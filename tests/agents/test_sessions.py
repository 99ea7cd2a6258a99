"""Sessions: a conversation kept between runs (in memory, in Redis), and its compaction near the context window."""

from __future__ import annotations

import uuid

import pytest

from agentadapter.agents import LLMAgent, RunConfig
from agentadapter.agents.sessions import (
    SUMMARY_PREFIX,
    Compaction,
    InMemorySession,
    RedisSession,
    Session,
    compact,
    history_tokens,
    run_in_session,
)
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, TextPart
from services import redis_url_or_skip

from .conftest import scripted, texts


def _turns(n: int, words: int = 30) -> list[Message]:
    return [Message("user" if i % 2 == 0 else "assistant", [TextPart(f"turn {i} " + "word " * words)])
            for i in range(n)]


async def _contract(session: Session) -> None:
    assert await session.get_messages() == []
    await session.add_messages([Message("user", [TextPart("hi")]), Message("assistant", [TextPart("hello")])])
    await session.add_messages([Message("user", [TextPart("again")])])
    assert [m.text for m in await session.get_messages()] == ["hi", "hello", "again"]
    await session.replace_messages([Message("user", [TextPart("only")])])
    assert [(m.role, m.text) for m in await session.get_messages()] == [("user", "only")]
    await session.clear()
    assert await session.get_messages() == []


async def test_the_in_memory_session_keeps_a_conversation():
    await _contract(InMemorySession("s1"))


async def test_the_redis_session_keeps_a_conversation_under_its_prefix():
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(redis_url_or_skip())
    prefix = f"test-sessions-{uuid.uuid4().hex[:8]}:"
    try:
        session = RedisSession("c1", client, prefix=prefix, ttl_s=60)
        await _contract(session)
        await session.add_messages([Message("user", [TextPart("kept")])])
        assert await client.exists(f"{prefix}session:c1") == 1
        again = RedisSession("c1", client, prefix=prefix)  # another process would see the same conversation
        assert [m.text for m in await again.get_messages()] == ["kept"]
        assert 0 < await client.pttl(f"{prefix}session:c1") <= 60_000
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_history_under_the_threshold_is_left_alone():
    history = _turns(4, words=5)
    result = await compact(history, "script/m", Compaction(context_window=10_000))
    assert not result.compacted and result.messages == history


async def test_trim_drops_the_oldest_messages_until_the_history_fits():
    history = _turns(10)
    window = 400
    result = await compact(history, "script/m", Compaction("trim", threshold=0.5, context_window=window, keep_last=2))
    assert result.compacted and 2 <= len(result.messages) < len(history)
    assert result.messages == history[-len(result.messages):]  # the newest, unchanged
    assert result.tokens_after <= window * 0.5 < result.tokens_before
    assert history_tokens(result.messages, "script/m") == result.tokens_after


async def test_summarize_replaces_older_messages_with_the_models_summary():
    script, llm, _ = scripted("They talked about turns 0 to 7.")
    history = _turns(10)
    result = await compact(history, "script/m", Compaction("summarize", context_window=500, keep_last=2), llm=llm)
    assert result.compacted and result.summary == "They talked about turns 0 to 7."
    assert result.messages[0].text == SUMMARY_PREFIX + "They talked about turns 0 to 7."
    assert result.messages[1:] == history[-2:]
    shown = texts(script.requests[0])
    assert "turn 0" in shown[-1] and "turn 7" in shown[-1] and "turn 8" not in shown[-1]


def test_compaction_settings_are_checked():
    for bad, message in [(lambda: Compaction("drop"), "trim or summarize"),  # type: ignore[arg-type]
                         (lambda: Compaction(threshold=0), "above 0"),
                         (lambda: Compaction(context_window=0), "positive"),
                         (lambda: Compaction(keep_last=0), "at least 1")]:
        with pytest.raises(InvalidRequestError, match=message):
            bad()


async def test_a_conversation_continues_over_three_runs_and_is_compacted_on_a_tiny_window():
    script, llm, config = scripted(*(f"answer {i} " + "word " * 40 for i in range(3)))
    agent = LLMAgent("chat", model="script/m")
    session = InMemorySession("c")
    compaction = Compaction("trim", threshold=1.0, context_window=100, keep_last=2)
    for i in range(3):
        result = await run_in_session(agent, f"question {i}", session, RunConfig(llm=llm), compaction=compaction)
        assert result.status == "completed"
    kept = [m.text for m in await session.get_messages()]
    # The third run saw the second exchange (its history) but no longer the first: it was trimmed.
    third = texts(script.requests[2])
    assert any("question 1" in t for t in third) and not any("question 0" in t for t in third)
    assert kept[-2:] == ["question 2", "answer 2 " + "word " * 40]
    assert "question 0" not in kept
    assert config.llm is llm
