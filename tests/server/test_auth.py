"""Authentication and roles: API keys (hashed, revocable, scoped), JWTs (HS256 with the shared secret,
RS256 from a JWKS URL; exp, nbf, iss, aud checked), and the viewer < member < admin ladder."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agentadapter.server.auth import Principal
from agentadapter.server.deps import get_principal
from agentadapter.store import api_keys
from server.conftest import JWT_SECRET, Api, AppFactory

ISSUER = "https://auth.example.com"
AUDIENCE = "agentadapter"


def token(tenant_claim: str, *, key: Any = JWT_SECRET, algorithm: str = "HS256", headers: dict[str, Any] | None = None,
          **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "user-1", "tenant_id": tenant_claim, "exp": now + 300, "iat": now, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_requests_without_valid_credentials_get_401_in_the_error_shape(api: Api) -> None:
    missing = await api.client.get("/v1/agents")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {"error": {"type": "authentication_error", "message": missing.json()["error"]["message"],
                                        "code": "missing_token", "param": None, "details": None}}
    assert "keys create" in missing.json()["error"]["message"]
    for header, code in (("Basic abc", "invalid_scheme"), ("Bearer aa_" + "x" * 43, "invalid_api_key"),
                         ("Bearer not-a-jwt", "invalid_token")):
        response = await api.client.get("/v1/agents", headers={"Authorization": header})
        assert (response.status_code, response.json()["error"]["code"]) == (401, code)


async def test_a_revoked_key_stops_working(make_api: AppFactory) -> None:
    async with make_api(server={"auth_cache_s": 0}) as api:
        tenant = await api.tenant()
        assert (await api.request("GET", "/v1/agents")).status_code == 200
        async with api.state.db.writer() as session:
            key_id = next(k.id for k in await api_keys.list_api_keys(session, tenant.id) if k.name == "admin")
            await api_keys.revoke_api_key(session, tenant.id, key_id)
        refused = await api.request("GET", "/v1/agents")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/agents", {"name": "x", "model": "test/echo"}),
    ("POST", "/v1/runs", {"agent_id": str(uuid.uuid4()), "input": "x"}),
    ("POST", "/v1/workflows", {"name": "w", "spec": {"agents": [{"name": "a", "model": "test/echo"}]}}),
    ("PATCH", "/v1/settings", {"prefer_local": True}),
])
async def test_viewers_read_but_cannot_write(api: Api, method: str, path: str, body: dict[str, Any]) -> None:
    for read in ("/v1/agents", "/v1/runs", "/v1/workflows", "/v1/settings", "/v1/providers"):
        assert (await api.request("GET", read, as_="viewer")).status_code == 200
    refused = await api.request(method, path, as_="viewer", json=body)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["details"]["role"]) == \
        ("permission_error", "insufficient_permissions", "viewer")


async def test_members_write_and_only_admins_read_the_audit_log(api: Api) -> None:
    created = await api.request("POST", "/v1/agents", as_="member", json={"name": "by-member", "model": "test/echo"})
    assert created.status_code == 201
    assert (await api.request("GET", "/v1/audit-logs", as_="member")).status_code == 403
    log = await api.request("GET", "/v1/audit-logs", as_="admin")
    assert log.status_code == 200
    entry = log.json()["data"][0]
    assert (entry["action"], entry["resource_id"], entry["actor_type"]) == \
        ("agent.create", created.json()["id"], "api_key")
    assert entry["request_id"] == created.headers["x-request-id"]


async def test_scopes_narrow_a_key(api: Api) -> None:
    runs_only = await api.key(role="admin", scopes=("runs:read",))
    assert (await api.client.get("/v1/runs", headers=bearer(runs_only))).status_code == 200
    assert (await api.client.get("/v1/agents", headers=bearer(runs_only))).status_code == 403
    writer = await api.key(role="member", scopes=("agents:write",))
    assert (await api.client.get("/v1/agents", headers=bearer(writer))).status_code == 200
    assert (await api.client.post("/v1/agents", headers=bearer(writer),
                                  json={"name": "scoped", "model": "test/echo"})).status_code == 201
    assert (await api.client.get("/v1/runs", headers=bearer(writer))).status_code == 403


async def test_an_hs256_jwt_gives_its_subject_their_own_user_and_settings(api: Api) -> None:
    tenant = await api.tenant()
    alice = token(str(tenant.id), sub="alice", role="member", email="alice@example.com")
    mine = await api.client.patch("/v1/settings", headers=bearer(alice), json={"rag_archives": ["s3://alice"]})
    assert mine.status_code == 200
    by_name = token(tenant.name, sub="alice", tenant_id=None, tenant=tenant.name, roles=["viewer", "member"])
    assert (await api.client.get("/v1/settings", headers=bearer(by_name))).json()["user_id"] == mine.json()["user_id"]
    default_user = (await api.request("GET", "/v1/settings")).json()
    assert default_user["user_id"] != mine.json()["user_id"] and default_user["rag_archives"] == []
    agent = await api.client.post("/v1/agents", headers=bearer(alice), json={"name": "alices", "model": "test/echo"})
    assert agent.json()["created_by"] == mine.json()["user_id"]
    viewer = token(str(tenant.id), sub="bob", role="viewer")
    assert (await api.client.post("/v1/agents", headers=bearer(viewer), json={"name": "b"})).status_code == 403
    no_role = token(str(tenant.id), sub="carol")
    assert (await api.client.post("/v1/agents", headers=bearer(no_role),
                                  json={"name": "carols", "model": "test/echo"})).status_code == 201


@pytest.mark.parametrize(("claims", "code"), [
    ({"exp": int(time.time()) - 60}, "token_expired"),
    ({"nbf": int(time.time()) + 600}, "token_not_yet_valid"),
    ({"exp": None}, "missing_claim"),
    ({"sub": None}, "missing_claim"),
    ({"tenant_id": None}, "missing_tenant"),
    ({"tenant_id": "no-such-tenant"}, "unknown_tenant"),
    ({"tenant_id": str(uuid.uuid4())}, "unknown_tenant"),
])
async def test_jwt_claims_are_checked(api: Api, claims: dict[str, Any], code: str) -> None:
    tenant = await api.tenant()
    response = await api.client.get("/v1/agents", headers=bearer(token(str(tenant.id), **claims)))
    assert response.status_code == 401 and response.json()["error"]["code"] == code, response.json()


async def test_a_jwt_signed_with_another_secret_or_algorithm_is_refused(api: Api) -> None:
    tenant = await api.tenant()
    forged = token(str(tenant.id), key="another-secret-that-is-long-enough-for-hs256-0123456789")
    assert (await api.client.get("/v1/agents", headers=bearer(forged))).json()["error"]["code"] == "invalid_token"
    unsigned = jwt.encode({"sub": "x", "tenant_id": str(tenant.id), "exp": int(time.time()) + 60}, None,
                          algorithm="none")
    response = await api.client.get("/v1/agents", headers=bearer(unsigned))
    assert response.json()["error"]["code"] == "unsupported_algorithm"


async def test_issuer_and_audience_are_enforced_when_configured(make_api: AppFactory) -> None:
    async with make_api(settings={"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}) as api:
        tenant = await api.tenant()
        good = token(str(tenant.id), iss=ISSUER, aud=AUDIENCE)
        assert (await api.client.get("/v1/agents", headers=bearer(good))).status_code == 200
        for claims, code in (({"iss": "https://evil.example.com", "aud": AUDIENCE}, "invalid_issuer"),
                             ({"iss": ISSUER, "aud": "someone-else"}, "invalid_audience"),
                             ({"aud": AUDIENCE}, "missing_claim")):
            response = await api.client.get("/v1/agents", headers=bearer(token(str(tenant.id), **claims)))
            assert response.json()["error"]["code"] == code


class JWKSServer:
    """An identity provider's JWKS endpoint (httpx MockTransport), counting its fetches."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "key-1"
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return httpx.Response(200, json={"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]})


@pytest.fixture
async def jwks_api(make_api: AppFactory) -> AsyncIterator[tuple[Api, JWKSServer]]:
    idp = JWKSServer()
    async with make_api(settings={"jwt_secret": None, "jwks_url": "https://idp.example.com/.well-known/jwks.json"},
                        jwks_transport=httpx.MockTransport(idp.handler)) as api:
        yield api, idp


async def test_an_rs256_jwt_is_checked_against_the_cached_jwks(jwks_api: tuple[Api, JWKSServer]) -> None:
    api, idp = jwks_api
    tenant = await api.tenant()
    signed = token(str(tenant.id), key=idp.private, algorithm="RS256", headers={"kid": "key-1"}, role="admin")
    for _ in range(3):
        assert (await api.client.get("/v1/audit-logs", headers=bearer(signed))).status_code == 200
    assert idp.fetches == 1
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = token(str(tenant.id), key=other, algorithm="RS256", headers={"kid": "key-1"})
    assert (await api.client.get("/v1/agents", headers=bearer(forged))).json()["error"]["code"] == "invalid_token"
    unknown = token(str(tenant.id), key=idp.private, algorithm="RS256", headers={"kid": "rotated"})
    response = await api.client.get("/v1/agents", headers=bearer(unknown))
    assert response.json()["error"]["code"] == "unknown_key"
    hs = token(str(tenant.id))  # HS256 is not accepted without a shared secret
    assert (await api.client.get("/v1/agents", headers=bearer(hs))).json()["error"]["code"] == "unsupported_algorithm"


async def test_an_unreachable_jwks_is_a_503(make_api: AppFactory) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    async with make_api(settings={"jwt_secret": None, "jwks_url": "https://idp.example.com/jwks"},
                        jwks_transport=httpx.MockTransport(down)) as api:
        tenant = await api.tenant()
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        response = await api.client.get("/v1/agents", headers=bearer(
            token(str(tenant.id), key=private, algorithm="RS256", headers={"kid": "k"})))
        assert response.status_code == 503 and response.json()["error"]["code"] == "jwks_unavailable"


async def test_routes_take_the_principal_from_a_dependency_tests_can_override(api: Api) -> None:
    tenant = await api.tenant()
    async with api.state.db.session() as session:
        from agentadapter.store import users

        user = await users.default_user(session, tenant.id)

    async def as_viewer() -> Principal:
        return Principal(tenant_id=tenant.id, user_id=user.id, role="viewer", kind="jwt", subject="override")

    api.app.dependency_overrides[get_principal] = as_viewer
    try:
        assert (await api.client.get("/v1/agents")).status_code == 200
        assert (await api.client.post("/v1/agents", json={"name": "x"})).status_code == 403
    finally:
        api.app.dependency_overrides.clear()
