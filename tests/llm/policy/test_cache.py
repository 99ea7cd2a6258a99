"""The response cache: a hit makes no request and costs nothing; streams replay; three stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentadapter import LLM
from agentadapter.llm.messages import Message, Request
from agentadapter.llm.policy.cache import MemoryCache, RedisCache, SQLiteCache, cache_key, cacheable
from fakes.openai_server import OpenAIFake
from services import redis_url_or_skip

USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as server:
        yield server


def llm_with(fake: OpenAIFake, **kwargs) -> LLM:
    environ = {"OPENAI_API_KEY": "sk-test-cache", "OPENAI_BASE_URL": f"{fake.url}/v1"}
    return LLM(config={"cache": {"backend": "memory", "ttl_s": 60}}, environ=environ, **kwargs)


async def test_a_hit_makes_no_request_and_costs_nothing(fake):
    llm = llm_with(fake)
    fake.reply("the answer", usage=USAGE)
    first = await llm.generate("openai/gpt-4o-mini", "question", temperature=0)
    assert not first.cached and first.cost_usd and first.cost_usd > 0
    second = await llm.generate("openai/gpt-4o-mini", "question", temperature=0)
    assert second.cached and second.cost_usd == 0.0 and second.text == "the answer"
    assert second.attempts[0].target == "cache"
    assert len(fake.requests) == 1
    totals = await llm.usage()
    assert sum(t.cached_responses for t in totals) == 1
    await llm.aclose()


async def test_only_deterministic_requests_are_cached_unless_opted_in(fake):
    llm = llm_with(fake)
    for _ in range(4):
        fake.reply("varies", usage=USAGE)
    await llm.generate("openai/gpt-4o-mini", "q")
    await llm.generate("openai/gpt-4o-mini", "q")  # temperature unset: not cached
    assert len(fake.requests) == 2
    await llm.generate("openai/gpt-4o-mini", "q", cache={"response": True})
    assert (await llm.generate("openai/gpt-4o-mini", "q", cache={"response": True})).cached
    assert not (await llm.generate("openai/gpt-4o-mini", "q", seed=1, cache={"response": False})).cached
    await llm.aclose()


async def test_a_cached_stream_replays_as_a_stream(fake):
    llm = llm_with(fake)
    fake.reply("one two three", usage=USAGE)
    first = llm.stream("openai/gpt-4o-mini", "q", seed=7)
    live_text = "".join([e.text async for e in first if e.kind == "text"])
    replay = llm.stream("openai/gpt-4o-mini", "q", seed=7)
    kinds = [e.kind async for e in replay]
    assert kinds.count("text") == 3 and kinds[-1] == "finish"
    assert replay.response is not None and replay.response.cached and replay.response.text == live_text
    assert len(fake.requests) == 1
    await llm.aclose()


def test_keys_ignore_tags_but_not_settings():
    base = Request(model="m", messages=[Message.user("hi")], temperature=0)
    tagged = Request(model="m", messages=[Message.user("hi")], temperature=0, tags={"run": "1"})
    hotter = Request(model="m", messages=[Message.user("hi")], temperature=0.5)
    assert cache_key("a/m", base) == cache_key("a/m", tagged)
    assert cache_key("a/m", base) != cache_key("a/m", hotter) != cache_key("b/m", base)
    assert cacheable(base) and not cacheable(hotter)


async def test_memory_lru_and_expiry():
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"1", 60)
    await cache.set("b", b"2", 60)
    await cache.get("a")  # a is now the most recent
    await cache.set("c", b"3", 60)
    assert await cache.get("b") is None and await cache.get("a") == b"1"
    await cache.set("d", b"4", -1)
    assert await cache.get("d") is None


async def test_sqlite_store(tmp_path):
    cache = SQLiteCache(tmp_path / "cache.db")
    await cache.set("k", b"value", 60)
    assert await cache.get("k") == b"value"
    await cache.set("old", b"x", -1)
    assert await cache.get("old") is None
    assert await SQLiteCache(tmp_path / "cache.db").get("k") == b"value"  # shared through the file


async def test_redis_store():
    import uuid

    cache = RedisCache(redis_url_or_skip(), prefix=f"test:{uuid.uuid4().hex}:")
    await cache.set("k", b"value", 60)
    assert await cache.get("k") == b"value"
    assert await cache.get("missing") is None
    await cache.client.aclose()


def test_unknown_cache_backend():
    from agentadapter.llm.errors import ConfigurationError
    from agentadapter.llm.policy.cache import create_cache

    with pytest.raises(ConfigurationError):
        create_cache("disk", data_dir=None, redis_url=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        create_cache("redis", data_dir=None, redis_url=None)  # type: ignore[arg-type]
    assert create_cache("off", data_dir=None, redis_url=None) is None  # type: ignore[arg-type]
