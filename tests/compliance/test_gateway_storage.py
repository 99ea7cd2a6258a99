"""The Responses API's stored conversations (behind ``previous_response_id``) follow the tenant's storage policy
as thread messages do - kept as sent under ``keep``, masked or hashed otherwise, and continued from what was
stored - and go with their user's erasure (and their tenant's), in the database (SQLite and PostgreSQL) and on
Redis (under this test's own key prefix)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Message
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.redis_connections import RedisConnections
from agentadapter.server.routes.compliance import erasure_parts
from agentadapter.service import compliance
from agentadapter.service.common import Caller
from agentadapter.service.responses import RedisResponseStore, load_conversation, save_conversation
from agentadapter.store import api_keys, users
from agentadapter.store.stored_responses import StoredResponse
from fakes.openai_server import OpenAIFake
from server.conftest import Api, AppFactory
from server.test_gateway import serve
from services import redis_url_or_skip
from store.databases import unique

MINI = "openai/gpt-4o-mini"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


@dataclass
class Gateway:
    api: Api
    fake: OpenAIFake
    base_url: str
    tenant_id: uuid.UUID

    def client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0)

    async def policy(self, **change: Any) -> None:
        changed = await self.api.request("PATCH", "/v1/compliance/policy", json=change)
        assert changed.status_code == 200, changed.text

    async def user_key(self) -> tuple[uuid.UUID, str]:
        """A user of the tenant and a member API key that acts as them."""
        async with self.api.state.db.writer() as session:
            user = await users.get_or_create_user(session, self.tenant_id, f"sub-{uuid.uuid4().hex[:8]}")
            _, key = await api_keys.create_api_key(session, self.tenant_id, role="member", user_id=user.id)
        return user.id, key

    async def stored(self, response_id: str) -> dict[str, Any] | None:
        async with self.api.state.db.session() as session:
            data = await session.scalar(sa.select(StoredResponse.data).where(
                StoredResponse.tenant_id == self.tenant_id, StoredResponse.response_id == response_id))
        return dict(data) if data is not None else None

    async def erase(self, user_id: uuid.UUID | None, parts: compliance.ErasureParts | None = None) -> dict[str, Any]:
        """Ask for an erasure and carry it out at once (the window forced), as the housekeeping would."""
        caller = Caller.system(self.tenant_id, "test")
        async with self.api.state.db.write_session() as session:
            row = await compliance.request_erasure(session, caller, user_id=user_id)
        return await compliance.execute_erasure(parts or erasure_parts(self.api.state), self.tenant_id, row.id,
                                                caller=caller, force=True)


@pytest.fixture(params=["sqlite", "postgres"])
async def gateway(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as fake:
        llm = LLM(environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.url + "/v1"},
                  retry=RetryPolicy(max_retries=0))
        async with make_api(database=request.param, llm=llm) as api, serve(api.app) as base_url:
            yield Gateway(api, fake, base_url, (await api.tenant()).id)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[RedisConnections, str]]:
    """Redis connections and a key prefix of this test's own (its keys are deleted afterwards)."""
    redis = RedisConnections(redis_url_or_skip())
    prefix = f"{unique('aa-test-responses')}:"
    yield redis, prefix
    keys = [key async for key in redis.commands.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.commands.delete(*keys)
    await redis.aclose()


def _texts(data: dict[str, Any]) -> str:
    return json.dumps(data["messages"])


async def test_a_stored_conversation_is_masked_by_the_tenants_policy(gateway: Gateway) -> None:
    user_id, key = await gateway.user_key()
    client = gateway.client(key)
    said = f"mail me at {EMAIL}, card {CARD}"

    # keep (the default): stored as sent, naming its user.
    kept = await client.responses.create(model=MINI, input=said)
    data = await gateway.stored(kept.id)
    assert data is not None and EMAIL in _texts(data) and CARD in _texts(data)
    assert data["user_id"] == str(user_id) and data["model"] == MINI

    # mask: neither the input nor the answer (the fake echoes the input) keeps them.
    await gateway.policy(pii_mode="mask")
    masked = await client.responses.create(model=MINI, input=said)
    assert EMAIL in masked.output_text  # the caller's own answer is not masked: only what is kept is
    data = await gateway.stored(masked.id)
    assert data is not None
    assert EMAIL not in _texts(data) and CARD not in _texts(data)
    assert "[EMAIL]" in _texts(data) and "[CARD]" in _texts(data)
    # A follow-up continues from what was kept: the provider is given the masked history, the new input as sent.
    follow_up = await client.responses.create(model=MINI, input=f"and {EMAIL} again?", previous_response_id=masked.id)
    sent = json.dumps(gateway.fake.requests[-1].json["messages"])
    assert sent.count(EMAIL) == 1 and "[EMAIL]" in sent and CARD not in sent
    data = await gateway.stored(follow_up.id)
    assert data is not None and EMAIL not in _texts(data) and len(data["messages"]) == 4

    # hash: the tenant's keyed token, the same for the same address; streamed answers are stored alike.
    await gateway.policy(pii_mode="hash")
    stream = await client.responses.create(model=MINI, input=said, stream=True)
    completed = [event async for event in stream][-1].response  # type: ignore[union-attr]
    data = await gateway.stored(completed.id)
    assert data is not None and EMAIL not in _texts(data) and "[EMAIL:" in _texts(data)
    assert len(set(re.findall(r"\[EMAIL:[0-9a-f]+\]", _texts(data)))) == 1

    # Back to keep: stored as sent again.
    await gateway.policy(pii_mode="keep")
    again = await client.responses.create(model=MINI, input=said)
    data = await gateway.stored(again.id)
    assert data is not None and EMAIL in _texts(data)


async def test_a_users_erasure_deletes_their_stored_responses(gateway: Gateway) -> None:
    erased_id, erased_key = await gateway.user_key()
    _, kept_key = await gateway.user_key()
    mine = [(await gateway.client(erased_key).responses.create(model=MINI, input=f"mine {i}")).id for i in range(2)]
    theirs = (await gateway.client(kept_key).responses.create(model=MINI, input="theirs")).id
    tenants = (await gateway.client((await gateway.api.tenant()).member).responses.create(model=MINI, input="x")).id
    assert all([await gateway.stored(r) for r in (*mine, theirs, tenants)])

    report = await gateway.erase(erased_id)
    assert report["deleted"]["stored_responses"] == 2
    assert [await gateway.stored(r) for r in mine] == [None, None]
    # Someone else's, and the tenant keys', stay; continuing from the erased one is a 404 like any unknown id.
    assert await gateway.stored(theirs) is not None and await gateway.stored(tenants) is not None
    with pytest.raises(openai.NotFoundError):
        await gateway.client(kept_key).responses.create(model=MINI, input="x", previous_response_id=mine[0])

    # The tenant's erasure takes the rest.
    tenant_report = await gateway.erase(None)
    assert tenant_report["deleted"]["stored_responses"] == 2
    async with gateway.api.state.db.session() as session:
        left = await session.scalar(sa.select(sa.func.count()).select_from(StoredResponse).where(
            StoredResponse.tenant_id == gateway.tenant_id))
    assert left == 0


async def test_the_redis_store_masks_and_goes_with_its_users_erasure(
    gateway: Gateway, redis_prefix: tuple[RedisConnections, str]
) -> None:
    redis, prefix = redis_prefix
    store = RedisResponseStore(redis, ttl_s=60, prefix=f"{prefix}responses:", db=gateway.api.state.db)
    erased_id, _ = await gateway.user_key()
    kept_id, _ = await gateway.user_key()
    tenant = gateway.tenant_id
    said = [Message.user(f"I am {EMAIL}"), Message.assistant("noted")]
    await save_conversation(store, tenant, "resp_kept_as_sent", said, MINI, user_id=erased_id)
    assert EMAIL in json.dumps(await store.get(tenant, "resp_kept_as_sent"))

    await gateway.policy(pii_mode="mask")
    await save_conversation(store, tenant, "resp_erased", said, MINI, user_id=erased_id)
    await save_conversation(store, tenant, "resp_other_user", said, MINI, user_id=kept_id)
    await save_conversation(store, tenant, "resp_no_user", said, MINI)
    stored = await store.get(tenant, "resp_erased")
    assert stored is not None and EMAIL not in json.dumps(stored) and stored["user_id"] == str(erased_id)
    assert [m.text for m in await load_conversation(store, tenant, "resp_erased")] == ["I am [EMAIL]", "noted"]
    index = store.user_index(tenant, erased_id)
    assert len(await redis.commands.zrange(index, 0, -1)) == 2
    assert 0 < await redis.commands.pttl(index) <= 60_000

    # The user's erasure, reaching this test's prefix: their two responses and their index go; the rest stays.
    parts = erasure_parts(gateway.api.state)
    parts.redis, parts.redis_prefixes = redis.commands, (prefix,)
    report = await gateway.erase(erased_id, parts)
    assert report["redis_keys_removed"] == 3
    assert await store.get(tenant, "resp_erased") is None and await store.get(tenant, "resp_kept_as_sent") is None
    assert not await redis.commands.exists(index)
    assert await store.get(tenant, "resp_other_user") is not None and await store.get(tenant, "resp_no_user")

    # The tenant's erasure: every key naming the tenant (responses and indexes).
    tenant_report = await gateway.erase(None, parts)
    assert tenant_report["redis_keys_removed"] == 3
    assert [key async for key in redis.commands.scan_iter(match=f"{prefix}*")] == []
