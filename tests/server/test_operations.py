"""The service around the resources: health, readiness, metrics, OpenAPI, security headers, CORS, the body
limit, the one error shape, and the refusals at start-up (unsafe secrets, an unmigrated database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from agentadapter.config import Settings
from agentadapter.llm.errors import ConfigurationError
from agentadapter.server.app import create_app
from agentadapter.server.settings import check_secrets
from server.conftest import Api, AppFactory
from services import redis_url_or_skip


async def test_health_readiness_and_metrics(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"]["status"] == "ok"
    assert "redis" not in ready.json()["checks"]
    await api.request("GET", "/v1/agents")
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'agentadapter_http_requests_total{method="GET",route="/v1/agents",status="200"}' in metrics.text
    assert "agentadapter_http_request_duration_seconds_bucket" in metrics.text


async def test_readiness_checks_redis_when_configured(make_api: AppFactory) -> None:
    async with make_api(settings={"redis_url": "redis://127.0.0.1:1/0"}) as api:
        down = await api.client.get("/readyz")
        assert down.status_code == 503 and down.json()["checks"]["redis"]["status"] == "error"


async def test_readiness_with_a_live_redis(make_api: AppFactory) -> None:
    url = redis_url_or_skip()
    async with make_api(settings={"redis_url": url}) as api:
        ready = await api.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis"]["status"] == "ok"


async def test_openapi_documents_every_resource_and_the_bearer_scheme(api: Api) -> None:
    assert (await api.client.get("/docs")).status_code == 200
    schema = (await api.client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = schema["paths"]
    for path in ("/v1/agents", "/v1/agents/{agent_id}/clone", "/v1/runs/{run_id}/events", "/v1/runs/{run_id}/cancel",
                 "/v1/runs/{run_id}/messages", "/v1/workflows/{workflow_id}/run", "/v1/settings", "/v1/providers"):
        assert path in paths, path
    assert paths["/v1/agents"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in paths["/healthz"]["get"]


async def test_security_headers_and_request_ids(api: Api) -> None:
    response = await api.request("GET", "/v1/agents", headers={"X-Request-ID": "client-id-42"})
    headers = response.headers
    assert (headers["x-content-type-options"], headers["x-frame-options"], headers["referrer-policy"]) == \
        ("nosniff", "DENY", "no-referrer")
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["cache-control"] == "no-store" and headers["x-request-id"] == "client-id-42"
    assert "strict-transport-security" not in headers
    odd = await api.client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["x-request-id"] != "bad id\twith spaces" and len(odd.headers["x-request-id"]) == 20
    docs = await api.client.get("/docs")
    # The docs' assets come from this server: the page may load nothing from elsewhere.
    policy = docs.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline';" in policy and "https:" not in policy and "cdn" not in policy


async def test_cors_allows_the_configured_origins(make_api: AppFactory) -> None:
    async with make_api(settings={"cors_origins": ["https://app.example.com"]}) as api:
        preflight = await api.client.options("/v1/agents", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        other = await api.client.options("/v1/agents", headers={
            "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers


async def test_bodies_over_the_limit_are_refused_with_413(make_api: AppFactory) -> None:
    async with make_api(server={"max_body_bytes": 2048}) as api:
        big = {"name": "big", "model": "test/echo", "instructions": "x" * 5000}
        declared = await api.request("POST", "/v1/agents", json=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "request_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "big", "instructions": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}'

        streamed = await api.request("POST", "/v1/agents", content=chunks(),
                                     headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "request_too_large"
        small = await api.request("POST", "/v1/agents", json={"name": "small", "model": "test/echo"})
        assert small.status_code == 201


async def test_every_error_has_one_shape(make_api: AppFactory) -> None:
    async with make_api(raise_errors=False) as api:
        broken = APIRouter()

        @broken.get("/v1/broken")
        async def fail() -> None:
            raise RuntimeError("boom")

        api.app.include_router(broken)
        cases = {
            "no route": await api.client.get("/v1/nothing-here"),
            "bad method": await api.request("PUT", "/v1/agents"),
            "bad json": await api.request("POST", "/v1/agents", content=b"{not json",
                                          headers={"Content-Type": "application/json"}),
            "bad id": await api.request("GET", "/v1/agents/not-a-uuid"),
            "crash": await api.client.get("/v1/broken"),
        }
        statuses = {name: r.status_code for name, r in cases.items()}
        assert statuses == {"no route": 404, "bad method": 405, "bad json": 422, "bad id": 422, "crash": 500}
        for name, response in cases.items():
            error = response.json()["error"]
            assert set(error) == {"type", "message", "code", "param", "details"}, name
            assert error["message"], name
        assert cases["bad id"].json()["error"]["param"] == "agent_id"
        crash = cases["crash"]
        assert crash.json()["error"]["type"] == "api_error" and crash.headers["x-request-id"] in \
            crash.json()["error"]["message"]


def test_the_server_refuses_unsafe_secrets_outside_development(tmp_path: Path) -> None:
    weak = Settings.model_construct(**{**Settings(data_dir=tmp_path).model_dump(), "env": "production"})
    with pytest.raises(ConfigurationError, match="AGENTADAPTER_SECRET_KEY"):
        create_app(weak)
    with pytest.raises(ValueError, match="AGENTADAPTER_SECRET_KEY must be set"):
        Settings(data_dir=tmp_path, env="production")
    strong_key = "k" * 44
    for jwt_secret, message in (("short", "needs at least 32"), ("changeme", "default"), (strong_key, "reuses")):
        settings = Settings(data_dir=tmp_path, env="production", secret_key=strong_key, jwt_secret=jwt_secret)
        with pytest.raises(ConfigurationError, match=message):
            check_secrets(settings)
    check_secrets(Settings(data_dir=tmp_path, env="production", secret_key=strong_key, jwt_secret="j" * 48))
    check_secrets(Settings(data_dir=tmp_path))  # development: the default secret is allowed


async def test_the_server_refuses_to_start_on_an_unmigrated_database_when_told_not_to_migrate(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}"),
                     server_settings=__import__("agentadapter.server.settings", fromlist=["x"]).ServerSettings(
                         migrate_on_start=False, gc_freeze=False))
    with pytest.raises(ConfigurationError, match="agentadapter db upgrade"):
        async with app.router.lifespan_context(app):
            pass
    celery = create_app(Settings(data_dir=tmp_path, executor="celery"))
    with pytest.raises(ConfigurationError, match="EXECUTOR=celery"):
        async with celery.router.lifespan_context(celery):
            pass


async def test_a_first_start_creates_the_default_tenant_on_a_fresh_data_dir(tmp_path: Path) -> None:
    from agentadapter.server.settings import ServerSettings
    from agentadapter.store import tenants, users

    app = create_app(Settings(data_dir=tmp_path), server_settings=ServerSettings(gc_freeze=False))
    async with app.router.lifespan_context(app):
        assert (tmp_path / "agentadapter.db").exists()
        db = app.state.agentadapter.db
        async with db.session() as session:
            tenant = await tenants.get_tenant_by_name(session, "default")
            assert tenant is not None
            assert (await users.default_user(session, tenant.id)).is_default
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 200
