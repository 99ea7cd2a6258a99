"""Rate limits per API key (or JWT user) and per tenant: in process, shared through Redis, and Redis down."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from agentadapter.server.auth import Principal
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.ratelimit import InProcessRateLimiter, Limit, RedisRateLimiter, build_rate_limiter
from agentadapter.server.settings import ServerSettings
from server.conftest import JWT_SECRET, Api, AppFactory
from services import redis_url_or_skip


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def user_token(tenant_id: uuid.UUID, subject: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": subject, "tenant_id": str(tenant_id), "exp": now + 300, "iat": now}, JWT_SECRET,
                      algorithm="HS256")


def assert_limited(response: httpx.Response, scope: str, rpm: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert error["details"]["limit"] == scope
    assert ("tenant's" in error["message"]) == (scope == "tenant")
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1 and f"retry in {retry_after} s" in error["message"]
    assert response.headers["X-RateLimit-Limit"] == str(rpm)
    assert response.headers["X-RateLimit-Remaining"] == "0"


def test_limits_are_off_by_default_and_burst_defaults_to_the_rate() -> None:
    assert build_rate_limiter(ServerSettings(), None) is None
    limiter = build_rate_limiter(ServerSettings(rate_limit_key_rpm=30, rate_limit_tenant_rpm=100,
                                                rate_limit_tenant_burst=10), None)
    assert isinstance(limiter, InProcessRateLimiter)
    assert limiter.limits == (Limit("key", 30, 30), Limit("tenant", 100, 10))


async def test_limits_off_leave_the_state_without_a_limiter(api: Api) -> None:
    assert api.state.limiter is None
    for _ in range(5):
        assert (await api.request("GET", "/v1/agents")).status_code == 200


async def test_a_key_over_its_limit_gets_429_and_other_keys_do_not(make_api: AppFactory) -> None:
    async with make_api(server={"rate_limit_key_rpm": 60, "rate_limit_key_burst": 3}) as api:
        for _ in range(3):
            assert (await api.request("GET", "/v1/agents")).status_code == 200
        assert_limited(await api.request("GET", "/v1/agents"), "key", 60)
        # Another key of the same tenant has a bucket of its own.
        assert (await api.request("GET", "/v1/agents", as_="member")).status_code == 200
        # Operational endpoints are not limited.
        assert (await api.client.get("/healthz")).status_code == 200


async def test_the_tenant_limit_covers_all_of_its_keys_and_users(make_api: AppFactory) -> None:
    async with make_api(server={"rate_limit_tenant_rpm": 60, "rate_limit_tenant_burst": 4}) as api:
        tenant = await api.tenant("a")
        callers = [tenant.headers("admin"), tenant.headers("member"), bearer(user_token(tenant.id, "alice")),
                   tenant.headers("viewer")]
        for headers in callers:
            assert (await api.client.get("/v1/agents", headers=headers)).status_code == 200
        assert_limited(await api.client.get("/v1/agents", headers=bearer(user_token(tenant.id, "bob"))),
                       "tenant", 60)
        # Another tenant is not affected.
        assert (await api.request("GET", "/v1/agents", tenant="b")).status_code == 200


async def test_jwt_users_are_limited_each_on_their_own(make_api: AppFactory) -> None:
    async with make_api(server={"rate_limit_key_rpm": 60, "rate_limit_key_burst": 2}) as api:
        tenant = await api.tenant("a")
        alice = bearer(user_token(tenant.id, "alice"))
        for _ in range(2):
            assert (await api.client.get("/v1/agents", headers=alice)).status_code == 200
        assert_limited(await api.client.get("/v1/agents", headers=alice), "key", 60)
        assert (await api.client.get("/v1/agents", headers=bearer(user_token(tenant.id, "bob")))).status_code == 200


async def test_a_denied_request_takes_no_token_from_the_other_bucket() -> None:
    now = [0.0]
    limiter = InProcessRateLimiter([Limit("key", 60, 1), Limit("tenant", 60, 2)], clock=lambda: now[0])
    tenant = uuid.uuid4()
    first = Principal(tenant, uuid.uuid4(), "admin", "api_key", "k1", key_id=uuid.uuid4())
    second = Principal(tenant, uuid.uuid4(), "admin", "api_key", "k2", key_id=uuid.uuid4())
    await limiter.check(first)
    with pytest.raises(HTTPProblem) as denied:
        await limiter.check(first)  # its key bucket is empty: the tenant keeps its token
    assert denied.value.details is not None and denied.value.details["limit"] == "key"
    assert denied.value.headers is not None and denied.value.headers["Retry-After"] == "1"
    await limiter.check(second)
    with pytest.raises(HTTPProblem):
        await limiter.check(second)
    now[0] = 1.0  # a second later: one token per second is back
    await limiter.check(first)


async def test_two_servers_share_one_limit_through_redis(make_api: AppFactory) -> None:
    redis_url = redis_url_or_skip()
    server = {"rate_limit_tenant_rpm": 60, "rate_limit_tenant_burst": 3}
    settings: dict[str, Any] = {"redis_url": redis_url}
    async with make_api(database="postgres", settings=settings, server=server) as first:
        assert isinstance(first.state.limiter, RedisRateLimiter)
        # Each test run limits a tenant of its own: buckets are keyed by the tenant's id.
        tenant = await first.tenant("shared")
        # PostgreSQL: both servers use the session's database, so they know the same tenants and keys.
        async with make_api(database="postgres", settings=settings, server=server) as second:
            headers = tenant.headers("admin")
            answers = []
            for client in (first.client, second.client, first.client, second.client):
                answers.append(await client.get("/v1/agents", headers=headers))
            assert [r.status_code for r in answers[:3]] == [200, 200, 200]
            assert_limited(answers[3], "tenant", 60)


async def test_requests_pass_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    # Port 1 on loopback: nothing listens there, connections are refused at once.
    limiter = RedisRateLimiter([Limit("key", 60, 1)], "redis://127.0.0.1:1/0")
    principal = Principal(uuid.uuid4(), uuid.uuid4(), "admin", "api_key", "k", key_id=uuid.uuid4())
    try:
        with caplog.at_level("WARNING", logger="agentadapter.server.ratelimit"):
            for _ in range(3):  # over the burst of 1, and still let through
                await limiter.check(principal)
        assert "rate limits are not enforced" in caplog.text and "127.0.0.1:1" in caplog.text
    finally:
        await limiter.aclose()


async def test_the_api_answers_when_the_limiters_redis_is_down(make_api: AppFactory) -> None:
    async with make_api(server={"rate_limit_key_rpm": 60, "rate_limit_key_burst": 1}) as api:
        limiter = RedisRateLimiter(api.state.limiter.limits if api.state.limiter else (), "redis://127.0.0.1:1/0")
        api.state.limiter = limiter
        try:
            for _ in range(3):
                assert (await api.request("GET", "/v1/agents")).status_code == 200
        finally:
            await limiter.aclose()
