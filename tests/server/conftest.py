"""Fixtures for the API tests: the real app on a real database, called through the ASGI transport.

``api`` starts the app's lifespan on a fresh migrated SQLite file (``pg_api``: the session's
PostgreSQL database) with an offline ``LLM`` (only ``test/...`` models answer) and hands out an
:class:`Api`: an ``httpx.AsyncClient`` plus helpers that make tenants and keys of each role through
the store, as ``agentadapter tenants create`` / ``keys create`` do.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi import FastAPI
from typer.testing import CliRunner

from agentadapter.config import Settings, get_settings
from agentadapter.observability.logging import configure_logging
from agentadapter.server.app import create_app
from agentadapter.server.settings import ServerSettings
from agentadapter.server.state import AppState
from agentadapter.store import api_keys, tenants
from agentadapter.testing import offline_llm
from store.databases import new_database_url, unique

JWT_SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"


@dataclass
class TenantKeys:
    """A tenant and an API key for each role."""

    id: uuid.UUID
    name: str
    admin: str
    member: str
    viewer: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    tenants: dict[str, TenantKeys] = field(default_factory=dict)

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.agentadapter
        return state

    async def tenant(self, label: str = "a") -> TenantKeys:
        """A tenant (made on first use under this label) with an admin, a member and a viewer key."""
        if label not in self.tenants:
            async with self.state.db.writer() as session:
                tenant = await tenants.create_tenant(session, unique(f"tenant-{label}"))
                keys = {role: (await api_keys.create_api_key(session, tenant.id, role=role, name=role))[1]
                        for role in ("admin", "member", "viewer")}
            self.tenants[label] = TenantKeys(tenant.id, tenant.name, **keys)
        return self.tenants[label]

    async def key(self, label: str = "a", *, role: str = "member", scopes: tuple[str, ...] = ()) -> str:
        tenant = await self.tenant(label)
        async with self.state.db.writer() as session:
            return (await api_keys.create_api_key(session, tenant.id, role=role, scopes=scopes))[1]

    async def request(self, method: str, path: str, *, as_: str = "admin", tenant: str = "a",
                      **kwargs: Any) -> httpx.Response:
        keys = await self.tenant(tenant)
        headers = {**keys.headers(as_), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def create_agent(self, tenant: str = "a", **fields: Any) -> dict[str, Any]:
        body = {"name": unique("agent"), "model": "test/echo", "instructions": "Answer briefly.", **fields}
        response = await self.request("POST", "/v1/agents", tenant=tenant, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def wait_run(self, run_id: str, tenant: str = "a", timeout: float = 10.0) -> dict[str, Any]:
        """The run once it has ended."""
        async with asyncio.timeout(timeout):
            while True:
                run = (await self.request("GET", f"/v1/runs/{run_id}", tenant=tenant)).json()
                if run["status"] in ("completed", "failed", "cancelled"):
                    return dict(run)
                await asyncio.sleep(0.02)


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url, "jwt_secret": JWT_SECRET}
    values.update(overrides)
    return Settings(**values)


def server_settings(**overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {"gc_freeze": False, "sse_heartbeat_s": 5.0, "sse_poll_s": 0.05}
    values.update(overrides)
    return ServerSettings(**values)


AppFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("templates")


@pytest.fixture
def make_api(tmp_path: Path, template_dir: Path) -> AppFactory:
    """``async with make_api(database="sqlite", settings=..., server=..., **create_app_kwargs) as api``."""
    import contextlib

    @contextlib.asynccontextmanager
    async def factory(database: str = "sqlite", settings: dict[str, Any] | None = None,
                      server: dict[str, Any] | None = None, raise_errors: bool = True,
                      **kwargs: Any) -> AsyncIterator[Api]:
        url = new_database_url(database, tmp_path, template_dir)
        llm = kwargs.pop("llm", None) or offline_llm()
        app = create_app(make_settings(url, tmp_path, **(settings or {})), server_settings=server_settings(
            **(server or {})), llm=llm, **kwargs)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_errors)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield Api(app, client)
        await llm.aclose()

    return factory


@pytest.fixture
async def api(make_api: AppFactory) -> AsyncIterator[Api]:
    async with make_api() as ready:
        yield ready


@pytest.fixture(params=["sqlite", "postgres"])
async def any_api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    """The API on SQLite and on PostgreSQL (the representative slice that runs on both)."""
    async with make_api(database=request.param) as ready:
        yield ready


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, typer.Typer]]:
    """The service's commands on a fresh SQLite data dir (none of the caller's service settings)."""
    from agentadapter.cli.service import register

    for name in ("AGENTADAPTER_DATABASE_URL", "AGENTADAPTER_REDIS_URL", "AGENTADAPTER_ENV",
                 "AGENTADAPTER_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTADAPTER_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    app = typer.Typer()
    app.command("version")(lambda: None)  # a second command, so that typer keeps subcommand names
    register(app)
    yield CliRunner(), app
    get_settings.cache_clear()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[io.StringIO, pytest.LogCaptureFixture]]:
    """The JSON log output at DEBUG (every request and answer is logged), and caplog on the same records."""
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    root = logging.getLogger("agentadapter")
    root.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield stream, caplog
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.NOTSET)
    root.propagate = True
