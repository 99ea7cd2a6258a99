"""The gateway follows the tenant's required consents as runs do: a user's call without one is a 403
``consent_required`` in each endpoint's own shape (OpenAI's for chat completions, responses and embeddings,
Anthropic's for messages), answered once the consent is recorded; the tenant's API keys are not checked; and
the answer is cached per user, so a burst of calls makes one lookup.

Called with the official ``openai`` and ``anthropic`` packages over real HTTP (uvicorn on loopback, an
OpenAI-format provider fake behind it), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import jwt
import openai
import pytest

from agentadapter.llm.client import LLM
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.service import compliance
from agentadapter.service.compliance import ConsentQuery, forget_consents, set_consent_hook
from agentadapter.store import api_keys, users
from fakes.openai_server import OpenAIFake
from server.conftest import JWT_SECRET, Api, AppFactory
from server.test_gateway import serve

MINI = "openai/gpt-4o-mini"
SMALL = "openai/text-embedding-3-small"


@dataclass
class Gateway:
    api: Api
    base_url: str
    tenant_id: uuid.UUID

    def openai(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0)

    def anthropic(self, key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.base_url.removesuffix("/v1"), api_key=key, max_retries=0)

    def user_token(self, subject: str, role: str = "member") -> str:
        now = int(time.time())
        return jwt.encode({"sub": subject, "tenant_id": str(self.tenant_id), "role": role, "exp": now + 300,
                           "iat": now}, JWT_SECRET, algorithm="HS256")

    async def require(self, *purposes: str) -> None:
        changed = await self.api.request("PATCH", "/v1/compliance/policy", json={"required_consents": list(purposes)})
        assert changed.status_code == 200, changed.text

    async def consent(self, user_id: uuid.UUID, **answers: bool) -> None:
        recorded = await self.api.request("PUT", f"/v1/compliance/consents/{user_id}", json={"consents": answers})
        assert recorded.status_code == 200, recorded.text


@pytest.fixture(autouse=True)
def _no_cached_consents() -> Iterator[None]:
    forget_consents()
    yield
    forget_consents()


@pytest.fixture(params=["sqlite", "postgres"])
async def gateway(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Gateway]:
    async with OpenAIFake() as openai_fake:
        llm = LLM(environ={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url + "/v1"},
                  retry=RetryPolicy(max_retries=0))
        # A long cache, so that what the tests see taking effect at once is the invalidation, not the expiry.
        async with make_api(database=request.param, llm=llm, server={"auth_cache_s": 300.0}) as api, \
                serve(api.app) as base_url:
            yield Gateway(api, base_url, (await api.tenant()).id)


async def _every_endpoint(gateway: Gateway, key: str) -> list[Any]:
    """Each endpoint called by ``key``: its answer, or the exception the SDK raised."""
    client, claude_client = gateway.openai(key), gateway.anthropic(key)
    calls = [
        client.chat.completions.create(model=MINI, messages=[{"role": "user", "content": "hi"}]),
        client.chat.completions.create(model=MINI, messages=[{"role": "user", "content": "hi"}], stream=True),
        client.responses.create(model=MINI, input="hi"),
        client.embeddings.create(model=SMALL, input="hi"),
        claude_client.messages.create(model=MINI, max_tokens=20, messages=[{"role": "user", "content": "hi"}]),
    ]
    results: list[Any] = []
    for call in calls:
        try:
            results.append(await call)
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            results.append(exc)
    return results


def _refusals(results: list[Any]) -> list[dict[str, Any]]:
    """The error objects of refused calls (every result must be one)."""
    errors = []
    for result in results:
        assert isinstance(result, openai.PermissionDeniedError | anthropic.PermissionDeniedError), result
        assert result.status_code == 403
        body = result.body
        assert isinstance(body, dict)
        errors.append(body)
    return errors


async def test_a_users_calls_need_the_consents_the_policy_requires(gateway: Gateway) -> None:
    token = gateway.user_token(f"sub-{uuid.uuid4().hex[:8]}")
    tenant_keys = await gateway.api.tenant()
    assert not [r for r in await _every_endpoint(gateway, token) if isinstance(r, Exception)]  # nothing required
    await gateway.require("external_providers", "training")

    refused = await _every_endpoint(gateway, token)
    errors = _refusals(refused)
    # OpenAI's shape (the SDK gives ``body`` as the error object) for its endpoints, Anthropic's for messages.
    for error in errors[:4]:
        assert error["type"] == "permission_error" and error["code"] == "consent_required"
        assert error["details"]["missing"] == ["external_providers", "training"]
        assert "external_providers, training" in error["message"] and "PUT /v1/compliance/consents/" in error["message"]
    assert all(isinstance(r, openai.PermissionDeniedError) and r.code == "consent_required" for r in refused[:4])
    anthropic_error = errors[4]
    assert anthropic_error["type"] == "error"
    assert anthropic_error["error"]["type"] == "permission_error"
    assert anthropic_error["error"]["code"] == "consent_required"
    assert anthropic_error["error"]["details"]["missing"] == ["external_providers", "training"]
    user_id = uuid.UUID(errors[0]["details"]["user_id"])

    # The tenant's API keys (acting as its default user, who stands for the tenant) are not checked.
    for role in ("admin", "member"):
        assert not [r for r in await _every_endpoint(gateway, getattr(tenant_keys, role)) if isinstance(r, Exception)]

    # One consent recorded: the other is still missing, and named alone - at once, despite the cache.
    await gateway.consent(user_id, external_providers=True)
    with pytest.raises(openai.PermissionDeniedError) as one_left:
        await gateway.openai(token).chat.completions.create(model=MINI, messages=[{"role": "user", "content": "hi"}])
    assert isinstance(one_left.value.body, dict) and one_left.value.body["details"]["missing"] == ["training"]
    # The user records the other themselves: every endpoint answers.
    recorded = await gateway.api.client.put(f"/v1/compliance/consents/{user_id}",
                                            headers={"Authorization": f"Bearer {token}"},
                                            json={"consents": {"training": True}})
    assert recorded.status_code == 200, recorded.text
    answered = await _every_endpoint(gateway, token)
    assert not [r for r in answered if isinstance(r, Exception)], answered
    assert answered[0].choices[0].message.content and answered[3].data[0].embedding

    # Withdrawn: refused again at once.
    await gateway.consent(user_id, training=False)
    _refusals(await _every_endpoint(gateway, token))
    # The policy no longer requires it: answered at once (a policy change drops the tenant's cached answers).
    await gateway.require("external_providers")
    assert not [r for r in await _every_endpoint(gateway, token) if isinstance(r, Exception)]


async def test_a_users_own_api_key_is_checked_as_they_are(gateway: Gateway) -> None:
    """A member's key made for them acts as them (as for runs); the tenant's keys stand for no person."""
    async with gateway.api.state.db.writer() as session:
        user = await users.get_or_create_user(session, gateway.tenant_id, f"sub-{uuid.uuid4().hex[:8]}")
        _, key = await api_keys.create_api_key(session, gateway.tenant_id, role="member", user_id=user.id)
    await gateway.require("training")
    errors = _refusals(await _every_endpoint(gateway, key))
    assert errors[0]["details"] == {"missing": ["training"], "user_id": str(user.id)}
    await gateway.consent(user.id, training=True)
    assert not [r for r in await _every_endpoint(gateway, key) if isinstance(r, Exception)]


async def test_a_burst_of_calls_makes_one_lookup(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[tuple[uuid.UUID, uuid.UUID]] = []
    look_up = compliance._look_up_consents

    async def counted(db: Any, key: tuple[uuid.UUID, uuid.UUID], ttl_s: float) -> tuple[str, ...]:
        lookups.append(key)
        return await look_up(db, key, ttl_s)

    monkeypatch.setattr(compliance, "_look_up_consents", counted)
    asked: list[ConsentQuery] = []

    async def consent_service(query: ConsentQuery) -> dict[str, bool]:
        asked.append(query)
        await asyncio.sleep(0.05)  # the burst arrives while the first lookup waits for the answer
        return {"training": True}

    set_consent_hook(consent_service)
    try:
        await gateway.require("training")
        token = gateway.user_token(f"sub-{uuid.uuid4().hex[:8]}")
        client = gateway.openai(token)
        await client.models.list()  # the user row is made at the first authentication, not inside the burst
        burst = await asyncio.gather(*(client.chat.completions.create(
            model=MINI, messages=[{"role": "user", "content": f"call {i}"}]) for i in range(20)))
        assert len(burst) == 20 and len(lookups) == 1 and len(asked) == 1
        # The tenant's API key: one lookup (which finds its default user) for a burst too, and no consent asked.
        member = (await gateway.api.tenant()).member
        await asyncio.gather(*(gateway.openai(member).chat.completions.create(
            model=MINI, messages=[{"role": "user", "content": "x"}]) for _ in range(20)))
        assert len(lookups) == 2 and len(asked) == 1
    finally:
        set_consent_hook(None)


async def test_a_failing_consent_service_is_a_503_in_each_shape(gateway: Gateway) -> None:
    def broken(query: ConsentQuery) -> dict[str, bool]:
        raise ConnectionError("down")

    set_consent_hook(broken)
    try:
        await gateway.require("training")
        token = gateway.user_token(f"sub-{uuid.uuid4().hex[:8]}")
        with pytest.raises(openai.InternalServerError) as failed:
            await gateway.openai(token).embeddings.create(model=SMALL, input="hi")
        assert failed.value.status_code == 503 and failed.value.code == "consent_service_unavailable"
        with pytest.raises(anthropic.APIStatusError) as failed_messages:
            await gateway.anthropic(token).messages.create(model=MINI, max_tokens=20,
                                                           messages=[{"role": "user", "content": "hi"}])
        body = failed_messages.value.body
        assert failed_messages.value.status_code == 503 and isinstance(body, dict)
        assert body["error"]["code"] == "consent_service_unavailable"
    finally:
        set_consent_hook(None)
