"""The edges of authentication: ill-typed JWT time claims, reserved subjects, who may grant credits,
key lifetimes, and the throttling of addresses whose credentials keep failing (with the negative
cache that spares the database a flood of bad keys) - on the real app and SQLite, Redis when shared.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from agentadapter.server.auth import is_reserved_subject
from agentadapter.server.auth_throttle import AuthThrottle, ExpiringSet
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.ratelimit import InProcessRateLimiter, Limit
from agentadapter.store import api_keys
from agentadapter.store.models import User, utcnow
from server.conftest import JWT_SECRET, Api, AppFactory
from services import redis_url_or_skip

NO_THROTTLE = {"auth_failures_per_minute": 0}
FULLWIDTH_DEFAULT = "".join(chr(ord(c) + 0xFEE0) for c in "Default")
"""``Default`` in fullwidth letters, which NFKC folds into plain ones."""


def signed(payload: dict[str, Any], *, key: str = JWT_SECRET) -> str:
    """An HS256 token over exactly ``payload`` (json.dumps writes NaN and Infinity as Python reads them)."""
    return jwt.encode(payload, key, algorithm="HS256")


def claims(tenant_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "user-1", "tenant_id": str(tenant_id), "exp": now + 300, "iat": now}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def bad_key() -> str:
    return api_keys.KEY_PREFIX + secrets.token_urlsafe(32)


@asynccontextmanager
async def client_at(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app that connects from ``address``."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def count_key_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key the database is asked about, from now on."""
    asked: list[str] = []
    real = api_keys.find_api_key

    async def counting(session: Any, key: str) -> Any:
        asked.append(key)
        return await real(session, key)

    monkeypatch.setattr(api_keys, "find_api_key", counting)
    return asked


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["details"]["limit"]) == \
        ("rate_limit_error", "too_many_auth_failures", "client")
    assert int(response.headers["retry-after"]) >= 1
    assert error["details"]["retry_after_s"] == int(response.headers["retry-after"])


# ------------------------------------------------------------------------------------- time claims


@pytest.mark.parametrize(("claim", "value"), [
    ("exp", "99999999999"),       # a string PyJWT would read with int()
    ("exp", True),                # a bool is not a number
    ("exp", math.nan),
    ("exp", math.inf),
    ("exp", 1e300),               # past any datetime
    ("exp", 10**30),
    ("nbf", "0"),
    ("nbf", False),
    ("nbf", -math.inf),
    ("nbf", -1),
    ("iat", "now"),
    ("iat", ""),
    ("iat", {"seconds": 1}),
    ("iat", [1]),
])
async def test_time_claims_must_be_json_numbers_a_datetime_holds(make_api: AppFactory, claim: str,
                                                                  value: Any) -> None:
    async with make_api(server=NO_THROTTLE) as api:
        tenant = await api.tenant()
        response = await api.client.get("/v1/agents", headers=bearer(signed(claims(tenant.id, **{claim: value}))))
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_claim", claim)
        assert f"'{claim}' claim must be a number" in error["message"]


async def test_a_null_time_claim_and_an_unparsable_number_are_401s_not_500s(make_api: AppFactory) -> None:
    async with make_api(server=NO_THROTTLE) as api:
        tenant = await api.tenant()
        null_nbf = await api.client.get("/v1/agents", headers=bearer(signed(claims(tenant.id) | {"nbf": None})))
        assert (null_nbf.status_code, null_nbf.json()["error"]["code"]) == (401, "invalid_claim")
        # A 5000-digit exp, signed by hand: more digits than Python turns into an int.
        payload = jwt.utils.base64url_encode(b'{"sub": "u", "tenant_id": "%s", "exp": %s}'
                                             % (str(tenant.id).encode(), b"9" * 5000)).decode()
        header = jwt.utils.base64url_encode(b'{"alg": "HS256", "typ": "JWT"}').decode()
        signature = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
            f"{header}.{payload}".encode(), JWT_SECRET.encode())
        huge = f"{header}.{payload}.{jwt.utils.base64url_encode(signature).decode()}"
        response = await api.client.get("/v1/agents", headers=bearer(huge))
        assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_token")


async def test_float_time_claims_are_numbers_and_pass(api: Api) -> None:
    tenant = await api.tenant()
    now = time.time()
    token = signed(claims(tenant.id, exp=now + 300.5, nbf=now - 1.25, iat=now))
    assert (await api.client.get("/v1/agents", headers=bearer(token))).status_code == 200


# ------------------------------------------------------------------------------------- subjects


@pytest.mark.parametrize("subject", ["default", "DEFAULT", " default ", FULLWIDTH_DEFAULT, "api_key:aa_12345678",
                                     "API_KEY:aa_12345678", "system", "cli"])
def test_reserved_subjects_are_recognised_in_any_spelling(subject: str) -> None:
    assert is_reserved_subject(subject)


@pytest.mark.parametrize("subject", ["alice", "defaults", "default-user", "api-key", "auth0|default"])
def test_ordinary_subjects_are_not_reserved(subject: str) -> None:
    assert not is_reserved_subject(subject)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])  # PostgreSQL's text refuses NUL: a 401, not a 500
async def test_a_jwt_never_acts_as_the_api_key_user(make_api: AppFactory, database: str) -> None:
    async with make_api(database=database, server=NO_THROTTLE) as api:
        tenant = await api.tenant()
        key_user = (await api.request("GET", "/v1/settings")).json()["user_id"]
        for subject in ("default", "Default", " default", FULLWIDTH_DEFAULT.lower(), "api_key:" + tenant.admin[:11]):
            token = signed(claims(tenant.id, sub=subject, role="viewer"))
            response = await api.client.get("/v1/settings", headers=bearer(token))
            assert response.status_code == 401, (subject, response.text)
            assert response.json()["error"]["code"] == "reserved_subject"
        for subject, why in (("de\u200bfault", "zero-width space"), ("a\x00b", "NUL"), ("a\ud800", "lone surrogate"),
                             ("x" * 256, "too long"),
                             ("   ", "blank")):
            response = await api.client.get("/v1/settings", headers=bearer(signed(claims(tenant.id, sub=subject))))
            assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_claim"), why
        # Nothing was created or changed: the key's user is still the tenant's only user, and an admin.
        async with api.state.db.session() as session:
            found = (await session.scalars(sa.select(User).where(User.tenant_id == tenant.id))).all()
        assert [(str(u.id), u.role, u.is_default) for u in found] == [(key_user, "admin", True)]
        assert (await api.request("GET", "/v1/audit-logs")).status_code == 200


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_tenant_claim_with_control_characters_is_a_401(make_api: AppFactory, database: str) -> None:
    async with make_api(database=database, server=NO_THROTTLE) as api:
        for value in ("acme\x00", "acme\udc00", "t" * 300):
            response = await api.client.get("/v1/agents", headers=bearer(signed(
                {"sub": "u", "tenant": value, "exp": int(time.time()) + 60})))
            assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_claim")


# ------------------------------------------------------------------------------------- credit grants


async def test_only_operator_keys_grant_credits_unless_jwts_are_allowed(make_api: AppFactory) -> None:
    grant = {"amount_usd": 1.0, "description": "invoice 7"}
    for allowed in (False, True):
        async with make_api(server={"jwt_credits_admin": allowed}) as api:
            tenant = await api.tenant()
            admin_jwt = signed(claims(tenant.id, sub="ops", role="admin", scope="openid credits:admin"))
            by_jwt = await api.client.post("/v1/credits/grants", json=grant, headers=bearer(admin_jwt))
            if allowed:
                assert by_jwt.status_code == 201, by_jwt.text
            else:
                assert by_jwt.status_code == 403
                error = by_jwt.json()["error"]
                assert "AGENTADAPTER_JWT_CREDITS_ADMIN" in error["message"] and error["details"]["kind"] == "jwt"
            # An operator's key (made from the command line, as `keys create --scope credits:admin` does).
            operator = await api.key(role="admin", scopes=("credits:admin",))
            assert (await api.client.post("/v1/credits/grants", json=grant,
                                          headers=bearer(operator))).status_code == 201
            # Neither a wildcard nor a plain admin, by key or by token.
            for refused in (await api.key(role="admin", scopes=("*",)), tenant.admin,
                            signed(claims(tenant.id, sub="boss", role="admin", scope="*"))):
                response = await api.client.post("/v1/credits/grants", json=grant, headers=bearer(refused))
                assert response.status_code == 403, response.text
            balance = (await api.request("GET", "/v1/credits")).json()["balance_usd"]
            assert balance == (2.0 if allowed else 1.0)


# ------------------------------------------------------------------------------------- key lifetimes


@pytest.mark.parametrize("days", [0, -1, math.nan, math.inf, 1e9])
def test_a_key_lifetime_must_be_positive_and_finite(days: float) -> None:
    with pytest.raises(ValueError, match="more than 0"):
        api_keys.expiry_in(days)


async def test_keys_cannot_be_made_expired_or_with_a_naive_expiry(api: Api) -> None:
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        with pytest.raises(ValueError, match="in the future"):
            await api_keys.create_api_key(session, tenant.id, expires_at=utcnow())
        with pytest.raises(ValueError, match="time zone"):
            await api_keys.create_api_key(session, tenant.id, expires_at=datetime.now() + timedelta(days=1))
        row, _ = await api_keys.create_api_key(session, tenant.id, expires_at=api_keys.expiry_in(0.5))
        assert row.expires_at is not None


# ------------------------------------------------------------------------------------- throttling


async def test_an_address_that_keeps_failing_is_throttled_and_others_are_not(
    make_api: AppFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with make_api(server={"auth_failures_per_minute": 3}) as api:
        tenant = await api.tenant()
        asked = count_key_lookups(monkeypatch)
        async with client_at(api, "198.51.100.7") as attacker, client_at(api, "203.0.113.9") as neighbour:
            answers = [await attacker.get("/v1/agents", headers=bearer(bad_key())) for _ in range(3)]
            assert [r.status_code for r in answers] == [401, 401, 401]
            assert len(asked) == 3
            fourth = await attacker.get("/v1/agents", headers=bearer(bad_key()))
            assert_throttled(fourth)
            for _ in range(20):  # the flood goes on: refused before any lookup
                assert_throttled(await attacker.get("/v1/agents", headers=bearer(bad_key())))
            assert_throttled(await attacker.get("/v1/agents", headers=bearer(tenant.admin)))
            assert len(asked) == 4  # three failures and the one that used the address's failures up
            # Another address is not affected, with a valid key or with a wrong one.
            assert (await neighbour.get("/v1/agents", headers=bearer(tenant.admin))).status_code == 200
            assert (await neighbour.get("/v1/agents", headers=bearer(bad_key()))).status_code == 401


async def test_bad_jwts_count_and_a_missing_token_does_not(make_api: AppFactory) -> None:
    async with make_api(server={"auth_failures_per_minute": 2}) as api:
        tenant = await api.tenant()
        forged = signed(claims(tenant.id), key="another-secret-that-is-long-enough-for-hs256-0123456789")
        async with client_at(api, "198.51.100.8") as client:
            for _ in range(5):  # no credentials tried: nothing to guess
                assert (await client.get("/v1/agents")).json()["error"]["code"] == "missing_token"
            assert [(await client.get("/v1/agents", headers=bearer(forged))).status_code for _ in range(2)] == \
                [401, 401]
            assert_throttled(await client.get("/v1/agents", headers=bearer(forged)))


async def test_a_repeated_bad_key_is_looked_up_once(make_api: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    for cache_s, lookups in ((30.0, 1), (0.0, 5)):
        async with make_api(server={**NO_THROTTLE, "auth_negative_cache_s": cache_s}) as api:
            asked = count_key_lookups(monkeypatch)
            key = bad_key()
            for _ in range(5):
                response = await api.client.get("/v1/agents", headers=bearer(key))
                assert response.json()["error"]["code"] == "invalid_api_key"
            assert len(asked) == lookups


async def test_failures_are_counted_together_through_redis(make_api: AppFactory) -> None:
    redis_url = redis_url_or_skip()
    settings: dict[str, Any] = {"redis_url": redis_url}
    server = {"auth_failures_per_minute": 60, "auth_failures_burst": 3}
    # The buckets are keyed by the address: a random one from the documentation range, this run's own.
    address = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    async with make_api(settings=settings, server=server) as first, make_api(settings=settings, server=server) as second, \
            client_at(first, address) as one, client_at(second, address) as two:
        answers = [await client.get("/v1/agents", headers=bearer(bad_key())) for client in (one, two, one)]
        assert [r.status_code for r in answers] == [401, 401, 401]
        assert_throttled(await two.get("/v1/agents", headers=bearer(bad_key())))
        assert_throttled(await one.get("/v1/agents", headers=bearer(bad_key())))


async def test_a_throttled_address_is_let_in_again_once_its_bucket_refills() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    throttle = AuthThrottle(InProcessRateLimiter([Limit("client", 60, 2)], clock=clock), clock=clock)
    fail: Callable[[], Awaitable[None]] = lambda: throttle.failed("192.0.2.1")  # noqa: E731
    await fail()
    await fail()
    with pytest.raises(HTTPProblem) as denied:
        await fail()
    assert denied.value.status == 429 and denied.value.headers == {"Retry-After": "1"}
    with pytest.raises(HTTPProblem):
        throttle.refuse_if_throttled("192.0.2.1")
    throttle.refuse_if_throttled("192.0.2.2")
    now[0] = 1.0  # one failure per second comes back
    throttle.refuse_if_throttled("192.0.2.1")
    await fail()
    await throttle.aclose()


def test_the_expiring_set_forgets_the_least_recently_seen_and_the_expired() -> None:
    now = [0.0]
    seen = ExpiringSet(2, clock=lambda: now[0])
    seen.add("a", 10)
    seen.add("b", 10)
    assert "a" in seen  # a is now the most recently seen
    seen.add("c", 10)
    assert ("a" in seen, "b" in seen, "c" in seen, len(seen)) == (True, False, True, 2)
    now[0] = 10.0
    assert "a" not in seen and seen.remaining("c") == 0.0 and len(seen) == 0
